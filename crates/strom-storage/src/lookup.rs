//! Lookups by timestamp (ListOffsets) and by leader epoch (OffsetForLeaderEpoch).

use strom_protocol::records::{BatchHeader, TimestampType};

use crate::error::StorageError;
use crate::log::PartitionLog;

/// Where inside a batch the first record with timestamp ≥ `target` is.
///
/// Batch granularity for now: exact when the batch's first record already
/// qualifies (always under LogAppendTime); otherwise the batch's base offset
/// with its max timestamp, so a consumer seeking there misses nothing. This is
/// the seam for record-level precision with `strom_protocol::records::decode_records`.
fn locate_in_batch(h: &BatchHeader, target: i64) -> (i64, i64) {
    match h.timestamp_type() {
        TimestampType::LogAppendTime => (h.base_offset, h.max_timestamp),
        TimestampType::CreateTime if h.base_timestamp >= target => {
            (h.base_offset, h.base_timestamp)
        }
        TimestampType::CreateTime => (h.base_offset, h.max_timestamp),
    }
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
                    let (offset, ts) = locate_in_batch(&h, timestamp_ms);
                    return Ok(Some((offset.max(self.log_start_offset), ts)));
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (-3, KIP-734): `(offset, timestamp)` of the
    /// first batch with the largest timestamp in the log (its base offset: batch
    /// granularity), or `None` for an empty log.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
        for segment in &self.segments {
            if let Some((ts, offset)) = segment.max_timestamp() {
                if best.is_none_or(|(_, b)| ts > b) {
                    best = Some((offset.max(self.log_start_offset), ts));
                }
            }
        }
        best
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
