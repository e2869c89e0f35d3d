//! Records inside a v2 batch (Kafka's `DefaultRecord`): encoding, bounded
//! decoding, and a no-allocation walk over the records of an uncompressed batch.
//!
//! ```text
//! length varint            bytes after this field
//! attributes i8            unused, 0
//! timestamp_delta varlong  record timestamp - batch base_timestamp
//! offset_delta varint      record offset - batch base_offset
//! key_length varint, key   -1 = null key
//! value_length varint, value
//! header_count varint, then per header:
//!   key_length varint, key (UTF-8, never null); value_length varint, value (-1 = null)
//! ```
//!
//! Decoding checks every length against the bytes that remain *before*
//! allocating, so a hostile batch cannot make us allocate more than its own size
//! (plus the caller's decompression cap).

use bytes::{BufMut, Bytes};

use super::varint::{put_varint, put_varlong, read_varint, read_varlong, varint_len, varlong_len};
use super::{compression, BatchHeader, Compression, RecordError, TimestampType, BATCH_HEADER_LEN};

/// Smallest possible encoded record: a one-byte varint for each of length,
/// timestamp delta, offset delta, key length, value length and header count,
/// plus the attributes byte. Used to bound record counts by available bytes.
pub const MIN_RECORD_BYTES: usize = 7;
/// Smallest possible encoded header: key length and value length varints.
const MIN_HEADER_BYTES: usize = 2;

/// One record of a v2 batch, with timestamp and offset relative to the batch.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Record {
    /// Record-level attributes; unused by Kafka and written as 0.
    pub attributes: i8,
    /// Timestamp minus the batch's `base_timestamp` (see [`Record::timestamp`]).
    pub timestamp_delta: i64,
    /// Offset minus the batch's `base_offset` (see [`Record::offset`]).
    pub offset_delta: i32,
    /// The key; `None` is Kafka's null key (distinct from an empty key).
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone on compacted topics.
    pub value: Option<Bytes>,
    /// Record headers, in wire order (keys may repeat).
    pub headers: Vec<Header>,
}

/// A record header (KIP-82).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Header {
    /// Header key; Kafka writes it as UTF-8 and never null.
    pub key: String,
    /// Header value; may be null.
    pub value: Option<Bytes>,
}

impl Record {
    /// Absolute offset of this record in its partition.
    pub fn offset(&self, batch: &BatchHeader) -> i64 {
        batch.base_offset.wrapping_add(i64::from(self.offset_delta))
    }

    /// The timestamp a consumer sees: under LogAppendTime every record carries
    /// the batch's max timestamp (the append time), otherwise base + delta.
    pub fn timestamp(&self, batch: &BatchHeader) -> i64 {
        match batch.timestamp_type() {
            TimestampType::LogAppendTime => batch.max_timestamp,
            TimestampType::CreateTime => batch.base_timestamp.wrapping_add(self.timestamp_delta),
        }
    }

    /// Bytes of the record body, i.e. everything after the length varint.
    fn body_len(&self) -> Result<i32, RecordError> {
        let mut len = 1 + varlong_len(self.timestamp_delta) + varint_len(self.offset_delta);
        len += bytes_field_len(self.key.as_deref())?;
        len += bytes_field_len(self.value.as_deref())?;
        len += varint_len(len_i32(self.headers.len())?);
        for h in &self.headers {
            len += bytes_field_len(Some(h.key.as_bytes()))?;
            len += bytes_field_len(h.value.as_deref())?;
        }
        len_i32(len)
    }

    /// Bytes [`encode_record`] writes for this record, including its length prefix.
    pub fn encoded_len(&self) -> Result<usize, RecordError> {
        let body = self.body_len()?;
        Ok(varint_len(body) + body as usize)
    }
}

fn len_i32(len: usize) -> Result<i32, RecordError> {
    i32::try_from(len).map_err(|_| RecordError::InvalidRecord("record field longer than i32::MAX"))
}

fn bytes_field_len(field: Option<&[u8]>) -> Result<usize, RecordError> {
    match field {
        None => Ok(varint_len(-1)),
        Some(b) => Ok(varint_len(len_i32(b.len())?) + b.len()),
    }
}

fn put_bytes_field(out: &mut impl BufMut, field: Option<&[u8]>) {
    match field {
        None => put_varint(out, -1),
        Some(b) => {
            // Lengths were checked by body_len before anything was written.
            put_varint(out, b.len() as i32);
            out.put_slice(b);
        }
    }
}

/// Appends `record` in the v2 wire format. Fails only when a field or the
/// whole record exceeds `i32::MAX` bytes; nothing is written in that case.
pub fn encode_record(record: &Record, out: &mut impl BufMut) -> Result<(), RecordError> {
    let body = record.body_len()?;
    put_varint(out, body);
    out.put_i8(record.attributes);
    put_varlong(out, record.timestamp_delta);
    put_varint(out, record.offset_delta);
    put_bytes_field(out, record.key.as_deref());
    put_bytes_field(out, record.value.as_deref());
    put_varint(out, record.headers.len() as i32);
    for h in &record.headers {
        put_bytes_field(out, Some(h.key.as_bytes()));
        put_bytes_field(out, h.value.as_deref());
    }
    Ok(())
}

/// Walks the length prefixes of the records in an *uncompressed* records
/// section (the bytes after the 61-byte header), yielding each record's body
/// without allocating. It expects exactly `records_count` records that tile
/// the section; a short, long or inconsistent section yields one error and ends.
pub fn records_iter(records: &[u8], records_count: i32) -> RecordsIter<'_> {
    RecordsIter {
        buf: records,
        pos: 0,
        remaining: records_count.max(0) as usize,
        failed: false,
    }
}

/// Iterator returned by [`records_iter`].
pub struct RecordsIter<'a> {
    buf: &'a [u8],
    pos: usize,
    remaining: usize,
    failed: bool,
}

impl<'a> RecordsIter<'a> {
    fn step(&mut self) -> Result<&'a [u8], RecordError> {
        let rest = &self.buf[self.pos..];
        if self.remaining > rest.len() / MIN_RECORD_BYTES {
            return Err(RecordError::InvalidRecord(
                "record count exceeds the bytes in the batch",
            ));
        }
        let mut at = 0;
        let len = read_varint(rest, &mut at)?;
        let body = usize::try_from(len)
            .ok()
            .filter(|len| *len >= MIN_RECORD_BYTES - 1)
            .and_then(|len| rest.get(at..at + len))
            .ok_or(RecordError::MalformedRecord("record length out of range"))?;
        self.pos += at + body.len();
        self.remaining -= 1;
        Ok(body)
    }
}

impl<'a> Iterator for RecordsIter<'a> {
    type Item = Result<&'a [u8], RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = if self.remaining == 0 {
            if self.pos == self.buf.len() {
                return None;
            }
            Err(RecordError::InvalidRecord(
                "bytes left after the last record",
            ))
        } else {
            self.step()
        };
        self.failed = item.is_err();
        Some(item)
    }
}

/// Reads a length-prefixed field of `body` at `*pos`; -1 is null. `body`
/// starts at byte `base` of `src`, and fields are slices of `src`, so decoded
/// keys and values share the batch's allocation.
fn read_bytes_field(
    src: &Bytes,
    base: usize,
    body: &[u8],
    pos: &mut usize,
    nullable: bool,
) -> Result<Option<Bytes>, RecordError> {
    let len = read_varint(body, pos)?;
    if len < 0 {
        return if len == -1 && nullable {
            Ok(None)
        } else {
            Err(RecordError::MalformedRecord("negative field length"))
        };
    }
    let len = len as usize;
    if len > body.len() - *pos {
        return Err(RecordError::MalformedRecord("field longer than its record"));
    }
    let start = base + *pos;
    *pos += len;
    Ok(Some(src.slice(start..start + len)))
}

/// Decodes the record body (everything after its length prefix) that starts
/// at byte `base` of `src`.
fn decode_body(src: &Bytes, base: usize, body: &[u8]) -> Result<Record, RecordError> {
    let Some((&attributes, _)) = body.split_first() else {
        return Err(RecordError::MalformedRecord("empty record"));
    };
    let mut pos = 1;
    let timestamp_delta = read_varlong(body, &mut pos)?;
    let offset_delta = read_varint(body, &mut pos)?;
    let key = read_bytes_field(src, base, body, &mut pos, true)?;
    let value = read_bytes_field(src, base, body, &mut pos, true)?;
    let header_count = read_varint(body, &mut pos)?;
    let header_count = usize::try_from(header_count)
        .ok()
        .filter(|n| *n <= (body.len() - pos) / MIN_HEADER_BYTES)
        .ok_or(RecordError::MalformedRecord("header count out of range"))?;
    let mut headers = Vec::with_capacity(header_count);
    for _ in 0..header_count {
        let key = read_bytes_field(src, base, body, &mut pos, false)?.unwrap_or_default();
        // Lossy like Java's consumer: a non-UTF-8 key must not make a record unreadable.
        let key = String::from_utf8_lossy(&key).into_owned();
        let value = read_bytes_field(src, base, body, &mut pos, true)?;
        headers.push(Header { key, value });
    }
    if pos != body.len() {
        return Err(RecordError::MalformedRecord(
            "record length does not match its fields",
        ));
    }
    Ok(Record {
        attributes: attributes as i8,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    })
}

/// The records of a records section (already decompressed), decoded one at
/// a time; returned by [`decode_batch_iter`] and used by
/// [`decode_records_section`]. Exactly `records_count` records must tile the
/// section; the first malformed record yields an error and ends iteration.
pub struct DecodedRecords {
    section: Bytes,
    pos: usize,
    remaining: usize,
    failed: bool,
}

impl DecodedRecords {
    /// Iterates over `section`, which should hold `records_count` records.
    pub fn new(section: Bytes, records_count: i32) -> DecodedRecords {
        DecodedRecords {
            section,
            pos: 0,
            remaining: records_count.max(0) as usize,
            failed: false,
        }
    }

    /// Records not yet yielded, as the batch header counts them.
    pub fn remaining(&self) -> usize {
        self.remaining.min(self.section.len() / MIN_RECORD_BYTES)
    }

    /// Every record left, or the first error.
    fn into_vec(self) -> Result<Vec<Record>, RecordError> {
        let mut out = Vec::with_capacity(self.remaining());
        for record in self {
            out.push(record?);
        }
        Ok(out)
    }
}

impl Iterator for DecodedRecords {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut bodies = RecordsIter {
            buf: &self.section,
            pos: self.pos,
            remaining: self.remaining,
            failed: self.failed,
        };
        let item = bodies.next();
        let at = bodies.pos;
        (self.remaining, self.failed) = (bodies.remaining, bodies.failed);
        let item = item.map(|body| {
            // The body ends where the walk stopped; it starts `body.len()` before.
            body.and_then(|body| decode_body(&self.section, at - body.len(), body))
        });
        self.pos = at;
        self.failed |= matches!(item, Some(Err(_)));
        item
    }
}

/// Decodes every record in the records section of a batch (already
/// decompressed), checking that exactly `records_count` records tile it.
pub fn decode_records_section(
    section: &Bytes,
    records_count: i32,
) -> Result<Vec<Record>, RecordError> {
    DecodedRecords::new(section.clone(), records_count).into_vec()
}

/// Validates a whole batch (header, length, CRC) and decodes its records,
/// decompressing as its attributes say. Decompressed output is capped at
/// `max_uncompressed_bytes`; uncompressed batches are bounded by their own size.
/// Copies the batch once; use [`decode_batch`] to share a `Bytes` instead.
pub fn decode_records(
    batch: &[u8],
    max_uncompressed_bytes: usize,
) -> Result<Vec<Record>, RecordError> {
    decode_batch(&Bytes::copy_from_slice(batch), max_uncompressed_bytes).map(|(_, records)| records)
}

/// Like [`decode_records`], but also returns the header (needed for absolute
/// offsets and timestamps) and, for uncompressed batches, hands out keys and
/// values as slices of `batch` without copying.
pub fn decode_batch(
    batch: &Bytes,
    max_uncompressed_bytes: usize,
) -> Result<(BatchHeader, Vec<Record>), RecordError> {
    let (header, records) = decode_batch_iter(batch, max_uncompressed_bytes)?;
    Ok((header, records.into_vec()?))
}

/// Like [`decode_batch`], but the records are decoded as the returned
/// iterator is advanced, so a caller can build its own record type without
/// an intermediate vector. The batch's CRC and header are checked (and the
/// batch decompressed) before this returns.
pub fn decode_batch_iter(
    batch: &Bytes,
    max_uncompressed_bytes: usize,
) -> Result<(BatchHeader, DecodedRecords), RecordError> {
    let header = super::validate_batch(batch)?;
    let section = match header.compression()? {
        Compression::None => batch.slice(BATCH_HEADER_LEN..),
        codec => Bytes::from(compression::decompress(
            codec,
            &batch[BATCH_HEADER_LEN..],
            max_uncompressed_bytes,
        )?),
    };
    Ok((header, DecodedRecords::new(section, header.records_count)))
}
