//! Per-batch checks for the produce path that never decompress (DESIGN §2: the
//! broker does no per-record work and no decompression on append).
//!
//! Kafka's `LogValidator` does these checks for batches from clients; the
//! broker maps [`RecordError::error_code`](super::RecordError::error_code) to the
//! partition's error in the produce response.

use super::record::records_iter;
use super::{
    validate_batch, BatchHeader, Compression, RecordError, TimestampType, BATCH_HEADER_LEN,
};

/// Checks that hold for any stored v2 batch, whoever wrote it: header, exact
/// length and CRC ([`validate_batch`]), a known codec, a record count
/// consistent with `last_offset_delta`, and — for uncompressed batches — that
/// the record length prefixes tile the records section with exactly
/// `records_count` records. Empty batches (records_count 0) pass: the log
/// cleaner keeps them to preserve producer state, so replicas and recovery see them.
pub fn validate_batch_structure(batch: &[u8]) -> Result<BatchHeader, RecordError> {
    let header = validate_batch(batch)?;
    let codec = header.compression()?;
    if header.records_count > 0 && header.records_count - 1 != header.last_offset_delta {
        return Err(RecordError::InvalidRecord(
            "inconsistent batch offset range and count of records",
        ));
    }
    if codec == Compression::None {
        for record in records_iter(&batch[BATCH_HEADER_LEN..], header.records_count) {
            record?;
        }
    }
    Ok(header)
}

/// Everything the broker checks on a batch from a producer before appending
/// it, without decompressing: [`validate_batch_structure`], plus Kafka's
/// client-origin rules — at least one record, no control flag (markers are
/// written only by the broker: [`RecordError::ControlBatchFromClient`]), a
/// non-negative base sequence when a producer id is set, and CreateTime (a
/// producer may not claim LogAppendTime: [`RecordError::LogAppendTimeFromClient`]).
///
/// Topic-config checks (timestamp range, compacted topics needing keys, size
/// limits) need the topic's configuration and stay with the broker.
pub fn validate_for_append(batch: &[u8]) -> Result<BatchHeader, RecordError> {
    let header = validate_batch_structure(batch)?;
    if header.records_count == 0 {
        return Err(RecordError::InvalidRecord("record batch has no records"));
    }
    if header.is_control() {
        return Err(RecordError::ControlBatchFromClient);
    }
    if header.has_producer_id() && header.base_sequence < 0 {
        return Err(RecordError::InvalidRecord(
            "negative base sequence in a batch with a producer id",
        ));
    }
    if header.timestamp_type() == TimestampType::LogAppendTime {
        return Err(RecordError::LogAppendTimeFromClient);
    }
    Ok(header)
}
