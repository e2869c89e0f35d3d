//! The record batch v2 header: a view over the first 61 bytes of a batch.
//!
//! Layout (big-endian), from Kafka's `DefaultRecordBatch`:
//!
//! ```text
//! 0  base_offset i64          8  batch_length i32       12 partition_leader_epoch i32
//! 16 magic i8                 17 crc u32 (CRC32C of bytes 21..end)
//! 21 attributes i16           23 last_offset_delta i32  27 base_timestamp i64
//! 35 max_timestamp i64        43 producer_id i64        51 producer_epoch i16
//! 53 base_sequence i32        57 records_count i32      61 records...
//! ```
//!
//! The broker owns three fields: base offset, partition leader epoch and (under
//! LogAppendTime) max timestamp. The first two lie outside the CRC, so patching
//! them never touches the checksum; the third is inside it, so it is recomputed.

use super::{Compression, RecordError, TimestampType};

/// Bytes in a v2 batch header, up to and including `records_count`.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batch_length` counts: `base_offset` and `batch_length` itself.
pub const LOG_OVERHEAD: usize = 12;
/// The only record format Strom accepts (Kafka 4 removed v0 and v1).
pub const MAGIC_V2: i8 = 2;
/// Offset of the first byte covered by the CRC.
const CRC_START: usize = 21;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

/// Attribute bits 0..2: the compression codec id.
pub const COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: set for LogAppendTime, clear for CreateTime.
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// Attribute bit 4: the batch is part of a transaction.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attribute bit 5: the batch holds a control record (transaction marker).
pub const CONTROL_BIT: i16 = 0x20;
/// Attribute bit 6: `base_timestamp` is the compaction delete horizon (KIP-534).
pub const DELETE_HORIZON_BIT: i16 = 0x40;

/// "No producer": the producer id of a non-idempotent batch.
pub const NO_PRODUCER_ID: i64 = -1;
/// "No producer epoch".
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// "No sequence".
pub const NO_SEQUENCE: i32 = -1;
/// "No partition leader epoch".
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The decoded 61-byte header of a v2 record batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (assigned by the broker).
    pub base_offset: i64,
    /// Bytes after this field: the whole batch is `batch_length + 12` bytes.
    pub batch_length: i32,
    /// Leader epoch of the leader that appended the batch (assigned by the broker).
    pub partition_leader_epoch: i32,
    /// Record format; always 2 for a batch that passed [`BatchHeader::parse`].
    pub magic: i8,
    /// CRC32C over bytes 21.. of the batch.
    pub crc: u32,
    /// Compression, timestamp type, transactional, control, delete-horizon bits.
    pub attributes: i16,
    /// `last offset - base offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (or the delete horizon when that bit is set).
    pub base_timestamp: i64,
    /// Largest record timestamp in the batch, or the append time under LogAppendTime.
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `batch`. Checks only what the header
    /// itself can tell: length, magic, and that `batch_length` is sane. The CRC
    /// is checked by [`validate_batch`].
    pub fn parse(batch: &[u8]) -> Result<Self, RecordError> {
        if batch.len() < BATCH_HEADER_LEN {
            return Err(RecordError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: batch.len(),
            });
        }
        let magic = batch[MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(RecordError::UnsupportedMagic(magic));
        }
        let batch_length = i32_at(batch, BATCH_LENGTH);
        if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(RecordError::InvalidBatchLength(batch_length));
        }
        let header = BatchHeader {
            base_offset: i64_at(batch, BASE_OFFSET),
            batch_length,
            partition_leader_epoch: i32_at(batch, PARTITION_LEADER_EPOCH),
            magic,
            crc: u32_at(batch, CRC),
            attributes: i16_at(batch, ATTRIBUTES),
            last_offset_delta: i32_at(batch, LAST_OFFSET_DELTA),
            base_timestamp: i64_at(batch, BASE_TIMESTAMP),
            max_timestamp: i64_at(batch, MAX_TIMESTAMP),
            producer_id: i64_at(batch, PRODUCER_ID),
            producer_epoch: i16_at(batch, PRODUCER_EPOCH),
            base_sequence: i32_at(batch, BASE_SEQUENCE),
            records_count: i32_at(batch, RECORDS_COUNT),
        };
        if header.last_offset_delta < 0 || header.records_count < 0 {
            return Err(RecordError::InvalidRecordCount {
                records_count: header.records_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        Ok(header)
    }

    /// Total bytes of this batch on the wire and on disk.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }
    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
    /// Compression codec from the attributes.
    pub fn compression(&self) -> Result<Compression, RecordError> {
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
    }
    /// CreateTime or LogAppendTime.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    /// Whether the batch holds a control record (transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
    /// Whether `base_timestamp` holds the compaction delete horizon (KIP-534).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }
    /// Whether the batch was written by an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// Sequence of the last record (wrapping at `i32::MAX` as Kafka does).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }
}

/// Computes the CRC32C a batch should carry.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Parses the header and checks that `batch` is exactly one whole batch with a
/// valid CRC32C. This is the check applied on produce and on recovery.
pub fn validate_batch(batch: &[u8]) -> Result<BatchHeader, RecordError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len() != batch.len() {
        return Err(RecordError::Truncated {
            needed: header.total_len(),
            available: batch.len(),
        });
    }
    let actual = compute_crc(batch);
    if actual != header.crc {
        return Err(RecordError::CrcMismatch {
            stored: header.crc,
            computed: actual,
        });
    }
    Ok(header)
}

/// Writes the broker-assigned base offset (outside the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the broker-assigned partition leader epoch (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch LogAppendTime with `append_time_ms` as its max timestamp and
/// recomputes the CRC, as Kafka does for `message.timestamp.type=LogAppendTime`.
pub fn set_log_append_time(batch: &mut [u8], append_time_ms: i64) {
    let attributes = i16_at(batch, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&append_time_ms.to_be_bytes());
    write_crc(batch);
}

/// Rewrites the idempotence fields (producer id, epoch, base sequence) and
/// recomputes the CRC: for a producer that resends a sealed batch under a new
/// producer id.
pub fn set_producer_state(batch: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    batch[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&epoch.to_be_bytes());
    batch[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
    write_crc(batch);
}

/// Recomputes the CRC32C and stores it in the header. For code that builds a
/// batch or rewrites a field inside the CRC-covered region (bytes 21..).
pub fn write_crc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Iterates over whole batches in a buffer of concatenated batches (a produce
/// request's `records`, or a range of a segment file).
///
/// Yields `(header, byte range)`. A trailing partial batch ends iteration with
/// [`RecordError::Truncated`]; callers that read segments treat that as a torn
/// tail, callers that read requests as a corrupt message.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BatchIter<'a> {
    /// Iterates over `buf` from its first byte.
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter { buf, pos: 0 }
    }
    /// Bytes consumed by the batches yielded so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(BatchHeader, std::ops::Range<usize>), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return None;
        }
        if rest.len() < LOG_OVERHEAD {
            return Some(Err(RecordError::Truncated {
                needed: LOG_OVERHEAD,
                available: rest.len(),
            }));
        }
        match BatchHeader::parse(rest) {
            Ok(header) => {
                let len = header.total_len();
                if len > rest.len() {
                    return Some(Err(RecordError::Truncated {
                        needed: len,
                        available: rest.len(),
                    }));
                }
                let range = self.pos..self.pos + len;
                self.pos += len;
                Some(Ok((header, range)))
            }
            Err(e) => {
                // Stop for good: nothing after a bad header can be trusted.
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}
