//! Moving the ends of the log: retention and DeleteRecords raise the log start
//! offset and delete whole segments; `truncate_to` cuts the end (replication).

use crate::checkpoint::{write_offset_file, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use crate::error::StorageError;
use crate::log::PartitionLog;
use crate::segment::Segment;
use crate::snapshot;

/// What [`PartitionLog::apply_retention`] deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub deleted_segments: usize,
    /// Log bytes deleted.
    pub deleted_bytes: u64,
    /// Log start offset afterwards.
    pub log_start_offset: i64,
}

impl PartitionLog {
    /// Deletes whole segments that are below the log start offset, older than
    /// `retention.ms` (their largest timestamp is more than that before
    /// `now_ms`), or needed to bring the log under `retention.bytes`, oldest
    /// first, as Kafka does. Only segments wholly below `high_watermark` are
    /// eligible (unreplicated data is never deleted).
    ///
    /// The active segment is eligible too when it is non-empty: like Kafka, the
    /// log then rolls first, so an idle partition's expired data goes away and
    /// the log is left empty with log start = log end offset.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        high_watermark: i64,
    ) -> Result<RetentionOutcome, StorageError> {
        self.check_online()?;
        let mut outcome = RetentionOutcome::default();
        // Segments wholly below the log start offset (after DeleteRecords).
        let below_start = self
            .segments
            .windows(2)
            .take_while(|w| w[1].base_offset() <= self.log_start_offset)
            .count();
        self.delete_oldest(below_start, &mut outcome)?;

        // Time and size retention apply only with cleanup.policy `delete`
        // (alone or with `compact`); a compact-only log keeps every segment.
        if self.config.cleanup_policy_delete && self.config.retention_ms >= 0 {
            let mut n = 0;
            while n < self.segments.len() && self.deletable(n, high_watermark) {
                let largest = self.segments[n].largest_timestamp()?;
                if now_ms.saturating_sub(largest) <= self.config.retention_ms {
                    break;
                }
                n += 1;
            }
            self.delete_oldest(n, &mut outcome)?;
        }
        if self.config.cleanup_policy_delete && self.config.retention_bytes >= 0 {
            let mut excess = self.size_bytes() as i64 - self.config.retention_bytes;
            let mut n = 0;
            while n < self.segments.len() && self.deletable(n, high_watermark) {
                let size = self.segments[n].size() as i64;
                if excess - size < 0 {
                    break;
                }
                excess -= size;
                n += 1;
            }
            self.delete_oldest(n, &mut outcome)?;
        }
        outcome.log_start_offset = self.log_start_offset;
        Ok(outcome)
    }

    /// Whether segment `i` may be deleted by retention: all its offsets are
    /// below the high watermark, and it is not an empty active segment.
    fn deletable(&self, i: usize, high_watermark: i64) -> bool {
        let segment = &self.segments[i];
        let upper = self
            .segments
            .get(i + 1)
            .map_or(segment.next_offset(), |s| s.base_offset());
        let empty_active = i + 1 == self.segments.len() && segment.size() == 0;
        upper <= high_watermark && !empty_active
    }

    /// Deletes the `n` oldest segments (rolling first if that includes the
    /// active one) and raises the log start offset to the new first segment.
    fn delete_oldest(
        &mut self,
        n: usize,
        outcome: &mut RetentionOutcome,
    ) -> Result<(), StorageError> {
        if n == 0 {
            return Ok(());
        }
        if n >= self.segments.len() {
            self.roll()?;
        }
        let removed: Vec<Segment> = self.segments.drain(..n).collect();
        let new_start = self.segments[0].base_offset();
        outcome.deleted_segments += removed.len();
        outcome.deleted_bytes += removed.iter().map(|s| s.size()).sum::<u64>();
        self.raise_log_start_offset(new_start)?;
        for segment in &removed {
            tracing::info!(dir = %self.dir.display(), base_offset = segment.base_offset(), "deleting segment");
            segment.delete_files(&self.dir)?;
        }
        Ok(())
    }

    /// Raises (never lowers) the log start offset, persists it and trims the
    /// leader-epoch cache.
    fn raise_log_start_offset(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset <= self.log_start_offset {
            return Ok(());
        }
        self.log_start_offset = offset;
        write_offset_file(&self.dir.join(LOG_START_OFFSET_FILE), offset, true)?;
        if self.epochs.truncate_from_start(offset) {
            self.epochs.write(true)?;
        }
        Ok(())
    }

    /// DeleteRecords: makes `offset` the log start offset (if higher), persists
    /// it and deletes segments wholly below it. The broker checks `offset`
    /// against the high watermark first, as Kafka does; here it must not exceed
    /// the log end offset. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError> {
        self.check_online()?;
        let log_end_offset = self.log_end_offset();
        if offset < 0 || offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset,
            });
        }
        self.raise_log_start_offset(offset)?;
        let below = self
            .segments
            .windows(2)
            .take_while(|w| w[1].base_offset() <= self.log_start_offset)
            .count();
        let mut outcome = RetentionOutcome::default();
        self.delete_oldest(below, &mut outcome)?;
        Ok(self.log_start_offset)
    }

    /// Removes every record at or above `offset` (a follower truncating to the
    /// leader's log, KIP-101). If `offset` falls inside a batch, the whole batch
    /// goes and the log end offset becomes that batch's base offset. Below the
    /// first segment, the log is emptied and restarts at `offset`. The epoch
    /// cache, producer state and recovery point follow.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        self.check_online()?;
        if offset < 0 || offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset < self.segments[0].base_offset() {
            return self.truncate_fully_and_start_at(offset);
        }
        let keep = self.segment_index_for(offset);
        let removed: Vec<Segment> = self.segments.drain(keep + 1..).collect();
        for segment in &removed {
            segment.delete_files(&self.dir)?;
        }
        let bytes = self.active_mut().truncate_to(offset)?;
        let log_end_offset = self.log_end_offset();
        tracing::info!(dir = %self.dir.display(), offset, log_end_offset, bytes, segments_deleted = removed.len(), "truncated log");
        self.after_truncation(log_end_offset)
    }

    /// Deletes every segment and starts an empty log at `offset`. Producer
    /// state goes too, snapshots included, as in Kafka: none of it describes
    /// the log that will be copied in from `offset` (a transaction left open
    /// here would hold back the first unstable offset for ever).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        self.check_online()?;
        for segment in self.segments.drain(..).collect::<Vec<_>>() {
            segment.delete_files(&self.dir)?;
        }
        snapshot::delete_all(&self.dir)?;
        self.segments
            .push(Segment::create(&self.fs, &self.dir, offset, &self.config)?);
        self.log_start_offset = offset;
        write_offset_file(&self.dir.join(LOG_START_OFFSET_FILE), offset, true)?;
        self.after_truncation(offset)
    }

    fn after_truncation(&mut self, log_end_offset: i64) -> Result<(), StorageError> {
        if self.log_start_offset > log_end_offset {
            self.log_start_offset = log_end_offset;
            write_offset_file(&self.dir.join(LOG_START_OFFSET_FILE), log_end_offset, true)?;
        }
        if self.cleaner_checkpoint > log_end_offset {
            // Offsets above the new end will be written again, uncleaned.
            self.cleaner_checkpoint = log_end_offset;
            write_offset_file(
                &self.dir.join(crate::cleaner::CLEANER_CHECKPOINT_FILE),
                log_end_offset,
                true,
            )?;
        }
        if self.recovery_point > log_end_offset {
            self.recovery_point = log_end_offset;
            write_offset_file(&self.dir.join(RECOVERY_POINT_FILE), log_end_offset, true)?;
        }
        if self.epochs.truncate_from_end(log_end_offset)
            | self.epochs.truncate_from_start(self.log_start_offset)
        {
            self.epochs.write(true)?;
        }
        snapshot::delete_above(&self.dir, log_end_offset)?;
        self.rebuild_producer_state()
    }

    /// Forgets producers whose last batch timestamp is more than
    /// `producer_id_expiration_ms` (`producer.id.expiration.ms`, Kafka default
    /// one day) before `now_ms` and that have no open transaction; a later
    /// batch from such a producer is accepted at any sequence. Returns how many
    /// were removed. The broker calls this periodically.
    pub fn expire_producers(&mut self, now_ms: i64, producer_id_expiration_ms: i64) -> usize {
        self.producers.expire(now_ms, producer_id_expiration_ms)
    }
}
