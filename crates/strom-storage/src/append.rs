//! The write paths of [`PartitionLog`]: leader appends from producers and
//! follower appends from replication.

use std::ops::Range;

use strom_protocol::records::{
    decode_records, set_base_offset, set_log_append_time, set_partition_leader_epoch,
    validate_batch, BatchHeader, BatchIter,
};

use crate::error::{AppendError, StorageError};
use crate::log::{AppendInfo, PartitionLog};
use crate::producer_state::{EndTxnMarker, PendingUpdates};
use crate::segment::Segment;
use crate::txn::read_marker;

/// Largest decompressed records section of one produced batch that the
/// keyed-records check of a compacted topic decodes; a larger batch is rejected
/// (`CORRUPT_MESSAGE` via [`AppendError::Corrupt`]). This bounds the memory the
/// check costs per batch; Kafka has no such cap.
pub const COMPACTED_APPEND_MAX_UNCOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// Validates a produce buffer: whole v2 batches, CRC32C, sane record counts.
///
/// Producer batches (`from_producer`) need exactly `last_offset_delta + 1`
/// records; batches replicated from a leader may hold fewer, or none, because
/// the leader's cleaner removed records but kept the batch's offset range.
fn validate_records(
    records: &[u8],
    from_producer: bool,
) -> Result<Vec<(BatchHeader, Range<usize>)>, AppendError> {
    let mut out = Vec::new();
    for item in BatchIter::new(records) {
        let (_, range) = item?;
        let h = validate_batch(&records[range.clone()])?;
        let span = i64::from(h.last_offset_delta) + 1;
        let count = i64::from(h.records_count);
        let bad_count = if from_producer {
            count == 0 || count != span
        } else {
            count > span
        };
        if bad_count {
            return Err(AppendError::InvalidRecord(format!(
                "batch has {} records but last offset delta {}",
                h.records_count, h.last_offset_delta
            )));
        }
        out.push((h, range));
    }
    if out.is_empty() {
        return Err(AppendError::InvalidRecord("no record batches".into()));
    }
    Ok(out)
}

/// Kafka's rule for compacted topics: every record needs a key, or the
/// produce fails with `INVALID_RECORD`. Decodes (and decompresses) the batch,
/// so it runs only for compacted topics.
fn require_keys(batch: &[u8]) -> Result<(), AppendError> {
    let records = decode_records(batch, COMPACTED_APPEND_MAX_UNCOMPRESSED_BYTES)?;
    if records.iter().any(|r| r.key.is_none()) {
        return Err(AppendError::InvalidRecord(
            "compacted topic cannot accept a record without a key".into(),
        ));
    }
    Ok(())
}

/// Kafka's rules for a transaction marker written by a leader: only a
/// coordinator writes one, as a transactional control batch of a producer id
/// holding exactly one readable marker record (COMMIT or ABORT).
fn leader_marker(
    h: &BatchHeader,
    batch: &[u8],
    origin: AppendOrigin,
) -> Result<EndTxnMarker, AppendError> {
    if origin == AppendOrigin::Client {
        return Err(AppendError::InvalidRecord(
            "clients may not write control batches (transaction markers)".into(),
        ));
    }
    if !h.has_producer_id() || !h.is_transactional() || h.records_count != 1 {
        return Err(AppendError::InvalidRecord(
            "a transaction marker is a transactional batch of one record with a producer id".into(),
        ));
    }
    match read_marker(batch) {
        Ok(Some(marker)) => Ok(marker),
        Ok(None) => Err(AppendError::InvalidRecord(
            "transaction marker without a record".into(),
        )),
        Err(reason) => Err(AppendError::InvalidRecord(reason)),
    }
}

/// The marker of a control batch replicated from the leader, if readable; an
/// unreadable one is logged and changes no producer state (the leader
/// validated what it wrote; this keeps a follower from stalling on a batch
/// an older version let through).
fn follower_marker(h: &BatchHeader, batch: &[u8]) -> Option<EndTxnMarker> {
    if !h.is_control() || h.records_count == 0 {
        return None;
    }
    read_marker(batch).unwrap_or_else(|reason| {
        tracing::warn!(offset = h.base_offset, %reason, "follower ignores an unreadable control batch");
        None
    })
}

/// Who wrote a batch (Kafka's `AppendOrigin`): the rules differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer: sequence numbers are checked for idempotence; control
    /// batches are refused (`INVALID_RECORD`).
    Client,
    /// A coordinator of this broker writing on a producer's behalf
    /// (transactional offset commits, transaction markers built with
    /// `strom_protocol::records::control_batch`): the producer id and epoch
    /// are checked, and for a marker the coordinator epoch; sequence numbers
    /// are not (Kafka skips them too).
    Coordinator,
}

impl PartitionLog {
    /// Appends one or more v2 batches as sent by a producer
    /// ([`AppendOrigin::Client`]); see [`PartitionLog::append_with_origin`].
    pub fn append(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        append_time_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        self.append_with_origin(
            records,
            leader_epoch,
            append_time_ms,
            now_ms,
            AppendOrigin::Client,
        )
    }

    /// Appends one or more v2 batches as a leader.
    ///
    /// Validates every batch (header, CRC32C, record count), checks producer
    /// state (idempotence, epochs, transactions — see `producer_state.rs`;
    /// transaction markers only from [`AppendOrigin::Coordinator`]), assigns
    /// dense offsets from the log end offset, stamps
    /// `leader_epoch` and, if `append_time_ms` is set, LogAppendTime — patching
    /// `records` in place and never re-encoding — rolls the segment if needed,
    /// writes, and updates indexes, producer state and the leader-epoch cache.
    /// On a compacted log (`cleanup.policy=compact`) every record must have a
    /// key ([`AppendError::InvalidRecord`] otherwise); that check decodes the
    /// records, the only per-record work on this path.
    /// An ABORT marker that closes a transaction adds an entry to the
    /// aborted-transaction index ([`PartitionLog::aborted_transactions`]).
    /// Nothing is fsynced ([`PartitionLog::flush`] does that). On any error the
    /// log end offset is unchanged, except after a failed write of the
    /// aborted-transaction index, which takes the log offline (the markers are
    /// written; reopening rebuilds the index).
    pub fn append_with_origin(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        append_time_ms: Option<i64>,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<AppendInfo, AppendError> {
        self.check_online()?;
        let batches = validate_records(records, true)?;
        let total = records.len() as u64;
        if total > self.config.segment_bytes {
            return Err(AppendError::RecordBatchTooLarge {
                batch_bytes: total,
                segment_bytes: self.config.segment_bytes,
            });
        }
        let mut markers = Vec::with_capacity(batches.len());
        for (h, range) in &batches {
            let marker = if h.is_control() {
                Some(leader_marker(h, &records[range.clone()], origin)?)
            } else {
                None
            };
            markers.push(marker);
        }
        if self.config.cleanup_policy_compact {
            for (_, range) in &batches {
                require_keys(&records[range.clone()])?;
            }
        }
        let first_offset = self.log_end_offset();
        let mut pending = PendingUpdates::default();
        let mut next = first_offset;
        for ((h, _), marker) in batches.iter().zip(markers) {
            if h.has_producer_id() {
                if let Some(dup) = self
                    .producers
                    .check(&mut pending, h, next, origin, marker)?
                {
                    return Ok(AppendInfo {
                        first_offset: dup.first_offset,
                        last_offset: dup.last_offset,
                        max_timestamp: dup.timestamp,
                        offset_of_max_timestamp: dup.first_offset,
                        log_append_time_ms: -1,
                        records: 0,
                        duplicate: true,
                    });
                }
            }
            next += i64::from(h.last_offset_delta) + 1;
        }
        let last_offset = next - 1;

        // Patch the broker-owned fields and re-read the headers.
        let mut headers = Vec::with_capacity(batches.len());
        let mut base = first_offset;
        for (h, range) in &batches {
            let batch = &mut records[range.clone()];
            set_base_offset(batch, base);
            set_partition_leader_epoch(batch, leader_epoch);
            if let Some(t) = append_time_ms {
                set_log_append_time(batch, t);
            }
            debug_assert!(validate_batch(batch).is_ok());
            let patched = BatchHeader::parse(batch)?;
            base += i64::from(h.last_offset_delta) + 1;
            headers.push(patched);
        }
        assert_eq!(base, last_offset + 1, "offsets must be dense");

        if self
            .active()
            .should_roll(&self.config, total, last_offset, now_ms)
        {
            self.roll()?;
        }
        // The epoch checkpoint goes first: an entry starting at the old log end
        // offset with no data behind it is dropped again on the next open.
        self.write_batches(records, &headers, now_ms)?;
        let completed = self.producers.commit(pending);
        self.index_completed_txns(&completed)?;
        let records_appended: u64 = headers.iter().map(|h| h.records_count as u64).sum();
        self.unflushed_messages = self.unflushed_messages.saturating_add(records_appended);
        debug_assert_eq!(self.log_end_offset(), last_offset + 1);

        let (mut max_timestamp, mut offset_of_max_timestamp) = (-1, first_offset);
        for h in &headers {
            if h.max_timestamp > max_timestamp {
                max_timestamp = h.max_timestamp;
                offset_of_max_timestamp = h.base_offset;
            }
        }
        Ok(AppendInfo {
            first_offset,
            last_offset,
            max_timestamp,
            offset_of_max_timestamp,
            log_append_time_ms: append_time_ms.unwrap_or(-1),
            records: records_appended,
            duplicate: false,
        })
    }

    /// Writes validated, patched batches to the active segment and updates the
    /// leader-epoch cache. The epoch checkpoint goes first: an entry starting at
    /// the old log end offset with no data behind it is dropped again on the
    /// next open, whereas data without its epoch entry would be wrong.
    fn write_batches(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let assigns: Vec<(i32, i64)> = headers
            .iter()
            .map(|h| (h.partition_leader_epoch, h.base_offset))
            .collect();
        let new_epochs = self.epochs.preview_assign(&assigns);
        if let Some(entries) = &new_epochs {
            self.epochs.write_preview(entries)?;
        }
        if let Err(failure) = self.active_mut().append(records, headers, now_ms) {
            let error = failure.error;
            return Err(if failure.rolled_back {
                error
            } else {
                self.go_offline(error)
            });
        }
        if let Some(entries) = new_epochs {
            self.epochs.replace_entries(entries);
        }
        Ok(())
    }

    /// Appends batches fetched from the leader as a follower: offsets, leader
    /// epochs and timestamps are kept as the leader assigned them; CRCs are
    /// checked, offsets must increase from the log end offset (gaps allowed, as
    /// after compaction), and producer state is updated without validation
    /// (the leader validated): transaction markers close transactions and
    /// ABORTs are indexed as on the leader. Rolls segments like
    /// [`PartitionLog::append`].
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        self.check_online()?;
        let batches = validate_records(records, false)?;
        let total = records.len() as u64;
        if total > self.config.segment_bytes {
            return Err(AppendError::RecordBatchTooLarge {
                batch_bytes: total,
                segment_bytes: self.config.segment_bytes,
            });
        }
        let mut expected = self.log_end_offset();
        for (h, _) in &batches {
            if h.base_offset < expected {
                return Err(AppendError::InvalidRecord(format!(
                    "follower append at offset {} below expected {expected}",
                    h.base_offset
                )));
            }
            expected = h.last_offset() + 1;
        }
        let markers: Vec<Option<EndTxnMarker>> = batches
            .iter()
            .map(|(h, range)| follower_marker(h, &records[range.clone()]))
            .collect();
        let headers: Vec<BatchHeader> = batches.into_iter().map(|(h, _)| h).collect();
        let first_offset = headers[0].base_offset;
        let last_offset = expected - 1;
        if self
            .active()
            .should_roll(&self.config, total, last_offset, now_ms)
            || last_offset - self.active().base_offset() > i64::from(i32::MAX)
        {
            self.roll()?;
        }
        if self.active().size() == 0 && self.active().base_offset() < first_offset {
            // A gap before the first batch of an empty segment: start the
            // segment at the batch so relative offsets stay small.
            let base = self.active().base_offset();
            let empty = self.segments.pop().expect("active segment");
            empty.delete_files(&self.dir)?;
            let created = Segment::create(&self.fs, &self.dir, first_offset, &self.config);
            match created {
                Ok(s) => self.segments.push(s),
                Err(e) => {
                    self.segments
                        .push(Segment::create(&self.fs, &self.dir, base, &self.config)?);
                    return Err(e.into());
                }
            }
            self.dir_dirty = true;
        }
        self.write_batches(records, &headers, now_ms)?;
        let mut records_appended = 0u64;
        let (mut max_timestamp, mut offset_of_max_timestamp) = (-1, first_offset);
        let mut completed = Vec::new();
        for (h, marker) in headers.iter().zip(markers) {
            completed.extend(self.producers.replay(h, marker));
            records_appended += h.records_count as u64;
            if h.max_timestamp > max_timestamp {
                max_timestamp = h.max_timestamp;
                offset_of_max_timestamp = h.base_offset;
            }
        }
        self.index_completed_txns(&completed)?;
        self.unflushed_messages = self.unflushed_messages.saturating_add(records_appended);
        Ok(AppendInfo {
            first_offset,
            last_offset,
            max_timestamp,
            offset_of_max_timestamp,
            log_append_time_ms: -1,
            records: records_appended,
            duplicate: false,
        })
    }
}
