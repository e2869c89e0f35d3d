//! Building v2 record batches: for tests, tools, the Rust client, and the
//! transaction markers (control batches) the broker writes itself.
//!
//! ```
//! use bytes::Bytes;
//! use strom_protocol::records::{decode_records, validate_batch, Compression, RecordBatchBuilder};
//! let mut builder = RecordBatchBuilder::new(Compression::Lz4);
//! builder.push(1_700_000_000_000, Some(Bytes::from_static(b"k")), Some(Bytes::from_static(b"v")), vec![]);
//! let batch = builder.build().unwrap();
//! assert_eq!(validate_batch(&batch).unwrap().records_count, 1);
//! assert_eq!(decode_records(&batch, 1 << 20).unwrap()[0].value.as_deref(), Some(&b"v"[..]));
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::record::{encode_record, Header, Record};
use super::{
    compression, write_crc, Compression, RecordError, TimestampType, BATCH_HEADER_LEN, CONTROL_BIT,
    LOG_OVERHEAD, MAGIC_V2, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
    NO_SEQUENCE, TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT,
};

/// Kafka's "no timestamp", used as base and max timestamp of an empty batch.
pub const NO_TIMESTAMP: i64 = -1;
/// Offset of `batch_length` in the header, patched once the size is known.
const BATCH_LENGTH_AT: usize = 8;

/// Accumulates records and writes one valid v2 batch: correct
/// `last_offset_delta`, `records_count`, `max_timestamp`, `batch_length` and CRC32C.
///
/// Defaults match a plain (non-idempotent) producer: base offset 0, no leader
/// epoch, no producer id/epoch/sequence, CreateTime, not transactional.
#[derive(Clone, Debug)]
pub struct RecordBatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    timestamp_type: TimestampType,
    /// Under LogAppendTime, the max timestamp to write instead of the records' maximum.
    log_append_time_ms: Option<i64>,
    compression: Compression,
    records: Vec<Record>,
    /// Timestamp of the first record; deltas are relative to it.
    base_timestamp: i64,
    max_timestamp: i64,
}

impl RecordBatchBuilder {
    /// An empty builder that will compress the records section with `compression`.
    pub fn new(compression: Compression) -> Self {
        RecordBatchBuilder {
            base_offset: 0,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            control: false,
            timestamp_type: TimestampType::CreateTime,
            log_append_time_ms: None,
            compression,
            records: Vec::new(),
            base_timestamp: NO_TIMESTAMP,
            max_timestamp: NO_TIMESTAMP,
        }
    }

    /// Offset of the first record (the broker overwrites it on append).
    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    /// Leader epoch stamped by the appending leader.
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Idempotent-producer identity: id, epoch and the sequence of the first record.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch as part of a transaction.
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Marks the batch as a control batch; see [`control_batch`] for markers.
    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// CreateTime or LogAppendTime. Under LogAppendTime without
    /// [`log_append_time`](Self::log_append_time), max timestamp is the records' maximum.
    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.timestamp_type = timestamp_type;
        self
    }

    /// LogAppendTime with `append_time_ms` as the batch's max timestamp, i.e. the
    /// batch the broker would store after [`set_log_append_time`](super::set_log_append_time).
    pub fn log_append_time(mut self, append_time_ms: i64) -> Self {
        self.timestamp_type = TimestampType::LogAppendTime;
        self.log_append_time_ms = Some(append_time_ms);
        self
    }

    /// Codec for the records section.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Appends a record with the next offset delta. The first record's
    /// timestamp becomes the batch's base timestamp.
    pub fn push(
        &mut self,
        timestamp_ms: i64,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<Header>,
    ) -> &mut Self {
        if self.records.is_empty() {
            self.base_timestamp = timestamp_ms;
            self.max_timestamp = timestamp_ms;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        let offset_delta = i32::try_from(self.records.len()).unwrap_or(i32::MAX);
        self.records.push(Record {
            attributes: 0,
            timestamp_delta: timestamp_ms.wrapping_sub(self.base_timestamp),
            offset_delta,
            key,
            value,
            headers,
        });
        self
    }

    fn attributes(&self) -> i16 {
        let mut attributes = i16::from(self.compression.id());
        if self.timestamp_type == TimestampType::LogAppendTime {
            attributes |= TIMESTAMP_TYPE_BIT;
        }
        if self.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if self.control {
            attributes |= CONTROL_BIT;
        }
        attributes
    }

    /// Writes the batch. An empty builder yields an empty batch (records_count
    /// 0), the shape the log cleaner keeps to preserve producer state.
    /// Fails only if a field or the batch exceeds `i32::MAX` bytes or the codec fails.
    pub fn build(&self) -> Result<BytesMut, RecordError> {
        let records_count = i32::try_from(self.records.len())
            .map_err(|_| RecordError::InvalidRecord("more than i32::MAX records"))?;
        let mut records = Vec::new();
        for record in &self.records {
            encode_record(record, &mut records)?;
        }
        let records = compression::compress(self.compression, &records)?;
        let max_timestamp = self.log_append_time_ms.unwrap_or(self.max_timestamp);

        let mut out = BytesMut::with_capacity(BATCH_HEADER_LEN + records.len());
        out.put_i64(self.base_offset);
        out.put_i32(0); // batch_length, patched below
        out.put_i32(self.partition_leader_epoch);
        out.put_i8(MAGIC_V2);
        out.put_u32(0); // crc, written last
        out.put_i16(self.attributes());
        out.put_i32((records_count - 1).max(0));
        out.put_i64(self.base_timestamp);
        out.put_i64(max_timestamp);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(records_count);
        debug_assert_eq!(out.len(), BATCH_HEADER_LEN);
        out.put_slice(&records);

        let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
            .map_err(|_| RecordError::InvalidRecord("batch larger than i32::MAX bytes"))?;
        out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
        write_crc(&mut out);
        Ok(out)
    }
}

/// The two transaction markers (Kafka's `ControlRecordType` ids 0 and 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// The transaction was aborted; read_committed consumers skip its records.
    Abort,
    /// The transaction was committed.
    Commit,
}

/// Version of the control record key and of the end-transaction-marker value we write.
const CONTROL_RECORD_VERSION: i16 = 0;

impl ControlRecordType {
    /// The type id stored in the control record key.
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
        }
    }

    /// Maps a key's type id; other ids (KRaft's leader-change, snapshot, voter
    /// records) are not transaction markers and yield `None`.
    pub fn from_id(id: i16) -> Option<Self> {
        match id {
            0 => Some(ControlRecordType::Abort),
            1 => Some(ControlRecordType::Commit),
            _ => None,
        }
    }
}

/// Writes a transaction marker batch, as the broker does on `WriteTxnMarkers`:
/// transactional + control flags, no sequence, one record whose key is
/// `[version i16 = 0][type i16]` and value `[version i16 = 0][coordinator_epoch i32]`.
pub fn control_batch(
    kind: ControlRecordType,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    base_offset: i64,
    partition_leader_epoch: i32,
    timestamp: i64,
) -> BytesMut {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(CONTROL_RECORD_VERSION);
    key.put_i16(kind.id());
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(CONTROL_RECORD_VERSION);
    value.put_i32(coordinator_epoch);
    let mut builder = RecordBatchBuilder::new(Compression::None)
        .base_offset(base_offset)
        .partition_leader_epoch(partition_leader_epoch)
        .producer(producer_id, producer_epoch, NO_SEQUENCE)
        .transactional(true)
        .control(true);
    builder.push(
        timestamp,
        Some(key.freeze()),
        Some(value.freeze()),
        Vec::new(),
    );
    // One ten-byte uncompressed record cannot hit any of build()'s size limits.
    builder
        .build()
        .expect("a one-record uncompressed control batch always builds")
}

/// Reads a transaction marker record: its type and the coordinator epoch.
/// `None` for other control records or malformed ones. Newer key/value versions
/// are read by their version-0 prefix, as Kafka does.
pub fn parse_control_record(record: &Record) -> Option<(ControlRecordType, i32)> {
    let key = record.key.as_deref()?;
    let value = record.value.as_deref()?;
    if key.len() < 4 || value.len() < 6 {
        return None;
    }
    let key_version = i16::from_be_bytes([key[0], key[1]]);
    let value_version = i16::from_be_bytes([value[0], value[1]]);
    if key_version < 0 || value_version < 0 {
        return None;
    }
    let kind = ControlRecordType::from_id(i16::from_be_bytes([key[2], key[3]]))?;
    let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
    Some((kind, coordinator_epoch))
}
