//! Record batches (format v2): the header view, validation and patching, record
//! decoding, a builder, and compression codecs.
//!
//! - `batch`: the 61-byte header, CRC32C, patching the broker-owned fields, [`BatchIter`].
//! - `validate`: per-batch produce-path checks that never decompress ([`validate_for_append`]).
//! - `record`: records inside a batch, bounded decoding ([`decode_records`]) and encoding.
//! - `builder`: [`RecordBatchBuilder`] and transaction markers ([`control_batch`]).
//! - [`compression`]: gzip, snappy (xerial), lz4 (frame), zstd, with capped output.
//!
//! The broker's produce path needs only the header, [`validate_for_append`] and the
//! patching functions; decoding records is for clients, tools and compaction.

mod batch;
mod builder;
pub mod compression;
mod record;
mod validate;
mod varint;

pub use batch::*;
pub use builder::{
    control_batch, parse_control_record, ControlRecordType, RecordBatchBuilder, NO_TIMESTAMP,
};
pub use compression::{compress, decompress};
pub use record::{
    decode_batch, decode_batch_iter, decode_records, decode_records_section, encode_record,
    records_iter, DecodedRecords, Header, Record, RecordsIter, MIN_RECORD_BYTES,
};
pub use validate::{validate_batch_structure, validate_for_append};

use crate::ErrorCode;

use thiserror::Error;

/// Why a record batch was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than the header or `batch_length` claims.
    #[error("record batch truncated: needed {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    /// A magic byte other than 2.
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// `batch_length` smaller than the fixed header.
    #[error("invalid batch length {0}")]
    InvalidBatchLength(i32),
    /// Negative counts.
    #[error("invalid record count {records_count} / last offset delta {last_offset_delta}")]
    InvalidRecordCount {
        records_count: i32,
        last_offset_delta: i32,
    },
    /// Stored CRC32C differs from the computed one.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    /// Compression id 5..7.
    #[error("unknown compression codec id {0}")]
    UnknownCompression(u8),
    /// Decompressed output would exceed the caller's cap.
    #[error("decompressed records exceed the limit of {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    /// The codec rejected its input.
    #[error("{codec:?} decompression failed: {reason}")]
    Decompression { codec: Compression, reason: String },
    /// A record inside the batch could not be decoded.
    #[error("malformed record: {0}")]
    MalformedRecord(&'static str),
    /// The batch is well-formed but breaks a rule Kafka enforces with
    /// INVALID_RECORD (e.g. records_count inconsistent with last_offset_delta).
    #[error("invalid record batch: {0}")]
    InvalidRecord(&'static str),
    /// A producer sent a control batch; only the broker writes transaction markers.
    #[error("clients are not allowed to write control records")]
    ControlBatchFromClient,
    /// A producer sent a LogAppendTime batch; only the broker may set that type.
    #[error("producer set timestamp type LogAppendTime")]
    LogAppendTimeFromClient,
    /// The codec failed while compressing (not expected with in-memory buffers).
    #[error("{codec:?} compression failed: {reason}")]
    CompressionFailed { codec: Compression, reason: String },
}

impl RecordError {
    /// The Kafka error code a produce response carries for this rejection,
    /// following what Kafka's `LogValidator` and record readers throw: a batch
    /// that is corrupt on the wire is CORRUPT_MESSAGE, a well-formed batch that
    /// breaks a rule is INVALID_RECORD.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            RecordError::Truncated { .. }
            | RecordError::InvalidBatchLength(_)
            | RecordError::InvalidRecordCount { .. }
            | RecordError::CrcMismatch { .. }
            | RecordError::UnknownCompression(_)
            | RecordError::DecompressedTooLarge { .. }
            | RecordError::Decompression { .. }
            | RecordError::MalformedRecord(_) => ErrorCode::CorruptMessage,
            RecordError::UnsupportedMagic(_)
            | RecordError::InvalidRecord(_)
            | RecordError::ControlBatchFromClient => ErrorCode::InvalidRecord,
            RecordError::LogAppendTimeFromClient => ErrorCode::InvalidTimestamp,
            RecordError::CompressionFailed { .. } => ErrorCode::UnknownServerError,
        }
    }
}

/// Compression codec ids as stored in the batch attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Id 0: records stored as written.
    None,
    /// Id 1: gzip (RFC 1952).
    Gzip,
    /// Id 2: snappy in xerial framing (raw snappy also read).
    Snappy,
    /// Id 3: the LZ4 frame format.
    Lz4,
    /// Id 4: zstd frames (KIP-110).
    Zstd,
}

impl Compression {
    /// Every codec, for tests and tools that iterate over them.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
}

impl Compression {
    /// Maps the 3-bit attribute value to a codec.
    pub fn from_id(id: u8) -> Result<Self, RecordError> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(RecordError::UnknownCompression(other)),
        }
    }
    /// The 3-bit attribute value.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// How record timestamps were assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker at append (`message.timestamp.type=LogAppendTime`).
    LogAppendTime,
}
