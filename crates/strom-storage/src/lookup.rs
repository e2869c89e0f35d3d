//! Lookups by timestamp (ListOffsets) and by leader epoch (OffsetForLeaderEpoch).

use strom_protocol::records::{decode_records, BatchHeader, Record, TimestampType};

use crate::error::StorageError;
use crate::log::PartitionLog;
use crate::segment::Segment;

/// Cap on the decompressed size of one batch read for a timestamp lookup.
/// Batches are bounded by `max.message.bytes` when written; this bounds what a
/// corrupt or hostile compressed batch can make a lookup allocate.
const MAX_LOOKUP_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// The first record of the batch at `pos` whose timestamp is ≥ `target` and
/// whose offset is ≥ `min_offset`, as `(offset, timestamp)`. Under
/// LogAppendTime every record carries the batch's max timestamp.
fn locate_in_batch(
    segment: &Segment,
    pos: u64,
    h: &BatchHeader,
    target: i64,
    min_offset: i64,
) -> Result<Option<(i64, i64)>, StorageError> {
    if h.timestamp_type() == TimestampType::LogAppendTime || h.is_control() {
        return Ok(
            (h.max_timestamp >= target).then_some((h.base_offset.max(min_offset), h.max_timestamp))
        );
    }
    let records = batch_records(segment, pos, h)?;
    Ok(records
        .iter()
        .map(|r| (r.offset(h), r.timestamp(h)))
        .find(|(offset, ts)| *offset >= min_offset && *ts >= target))
}

/// Decodes the records of the batch at `pos`; a batch that does not decode
/// (it passed its CRC when written, so this means a codec bug) reads as empty.
fn batch_records(
    segment: &Segment,
    pos: u64,
    h: &BatchHeader,
) -> Result<Vec<Record>, StorageError> {
    let bytes = segment.read_bytes(pos, h.total_len())?;
    Ok(decode_records(&bytes, MAX_LOOKUP_DECOMPRESSED_BYTES).unwrap_or_else(|e| {
        tracing::warn!(offset = h.base_offset, error = %e, "batch could not be decoded for a timestamp lookup");
        Vec::new()
    }))
}

impl PartitionLog {
    /// ListOffsets by timestamp: the first record at or after the log start
    /// offset whose timestamp is ≥ `timestamp_ms`, as `(offset, timestamp)`, or
    /// `None` if every record is older. See `locate_in_batch` for the precision
    /// inside a batch.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let start = self.segment_index_for(self.log_start_offset);
        for segment in &self.segments[start..] {
            if segment
                .max_timestamp()
                .is_none_or(|(ts, _)| ts < timestamp_ms)
            {
                continue;
            }
            let mut pos = segment.time_lookup_position(timestamp_ms);
            while pos < segment.size() {
                let h = segment.header_at(pos)?;
                if h.last_offset() >= self.log_start_offset && h.max_timestamp >= timestamp_ms {
                    if let Some(found) =
                        locate_in_batch(segment, pos, &h, timestamp_ms, self.log_start_offset)?
                    {
                        return Ok(Some(found));
                    }
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (-3, KIP-734): `(offset, timestamp)` of the
    /// first record with the largest timestamp in the log, or `None` for an
    /// empty log.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<(&Segment, i64, i64)> = None;
        for segment in &self.segments {
            if let Some((ts, offset)) = segment.max_timestamp() {
                if best.is_none_or(|(_, _, b)| ts > b) {
                    best = Some((segment, offset, ts));
                }
            }
        }
        let (segment, offset, ts) = best?;
        // The segment remembers the batch; find the record inside it.
        let exact = segment
            .find_batch(offset)
            .ok()
            .flatten()
            .and_then(|(pos, h)| {
                if h.timestamp_type() == TimestampType::LogAppendTime || h.is_control() {
                    return Some(h.base_offset);
                }
                let records = batch_records(segment, pos, &h).ok()?;
                records
                    .iter()
                    .find(|r| r.timestamp(&h) == ts)
                    .map(|r| r.offset(&h))
            });
        Some((exact.unwrap_or(offset).max(self.log_start_offset), ts))
    }

    /// OffsetForLeaderEpoch (KIP-101/279): `(epoch, end offset)` for
    /// `leader_epoch` — the largest known epoch ≤ it and where the next higher
    /// epoch starts (the log end offset for the latest). `None` means
    /// UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
    pub fn epoch_end_offset(&self, leader_epoch: i32) -> Option<(i32, i64)> {
        self.epochs
            .end_offset_for(leader_epoch, self.log_end_offset())
    }

    /// The latest leader epoch appended, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// The leader-epoch cache entries `(epoch, start offset)`, oldest first.
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.epochs
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }
}
