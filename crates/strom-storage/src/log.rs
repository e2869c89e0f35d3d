//! [`PartitionLog`]: the log of one partition, its read path, rolling,
//! flushing and closing. Appends live in `append.rs`, opening/recovery in
//! `recovery.rs`, retention/truncation in `retention.rs`, lookups by time or
//! epoch in `lookup.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use strom_protocol::records::BatchHeader;

use crate::checkpoint::{
    offset_file, remove_file_if_exists, sync_dir, write_offset_file, LOG_START_OFFSET_FILE,
    RECOVERY_POINT_FILE, SEGMENT_EXTS,
};
use crate::config::LogConfig;
use crate::epoch_cache::LeaderEpochCache;
use crate::error::{ReadError, StorageError};
use crate::io::FileSystem;
use crate::producer_state::{ProducerStateEntry, ProducerStateManager};
use crate::segment::Segment;
use crate::slice::LogSlice;
use crate::snapshot;

/// The outcome of a successful [`PartitionLog::append`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended (of the original append if `duplicate`).
    pub first_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Largest batch max timestamp in the request (the append time under LogAppendTime).
    pub max_timestamp: i64,
    /// Base offset of the batch holding `max_timestamp` (batch granularity).
    pub offset_of_max_timestamp: i64,
    /// The stamped append time under LogAppendTime, else -1.
    pub log_append_time_ms: i64,
    /// Records appended (0 for a duplicate).
    pub records: u64,
    /// An idempotent retry: the offsets are the original ones and nothing was written.
    pub duplicate: bool,
}

/// The outcome of a [`PartitionLog::read`] (records in memory) or
/// [`PartitionLog::read_slice`] (records as a [`LogSlice`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadResult<R = Bytes> {
    /// Whole batches, byte-for-byte as stored (empty if nothing is readable).
    pub records: R,
    /// Offset after the last batch returned (`fetch_offset` if none): where the
    /// next fetch should start.
    pub next_offset: i64,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
    /// Log end offset at the time of the read.
    pub log_end_offset: i64,
}

/// Files to fdatasync for a records-only flush; see
/// [`PartitionLog::take_records_sync`].
#[derive(Debug)]
pub struct RecordsSync {
    files: Vec<(PathBuf, Arc<std::fs::File>)>,
    /// The partition directory, when a segment file was created since its last sync.
    dir: Option<PathBuf>,
    /// Everything below this offset is durable once [`RecordsSync::run`] returns.
    pub log_end_offset: i64,
}

impl RecordsSync {
    /// Fdatasyncs the files (and fsyncs the directory). Blocking: run it off
    /// the async runtime's workers.
    pub fn run(&self) -> Result<(), StorageError> {
        for (path, file) in &self.files {
            file.sync_data()
                .map_err(|e| StorageError::io("fsync", path, e))?;
        }
        if let Some(dir) = &self.dir {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

/// The log of one partition: a directory `<data>/<topic>-<partition>/` of
/// segments plus checkpoints.
///
/// **One writer.** Every method that changes the log takes `&mut self`; reads
/// take `&self` and use positional reads, so the broker can put the log in an
/// `RwLock` and serve fetches concurrently between appends.
///
/// Resources: four open files per segment, both sparse indexes of every
/// segment in memory (about 16 bytes per `index.interval.bytes` of log, see
/// [`LogConfig::segment_index_bytes`]), 32 bytes per aborted transaction in
/// the log (its `.txnindex` entry), and about 250 bytes per tracked producer
/// id.
#[derive(Debug)]
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) fs: Arc<dyn FileSystem>,
    /// Sorted by base offset, never empty; the last one is the active segment.
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start_offset: i64,
    /// Every offset below this is fsynced.
    pub(crate) recovery_point: i64,
    pub(crate) epochs: LeaderEpochCache,
    pub(crate) producers: ProducerStateManager,
    pub(crate) unflushed_messages: u64,
    pub(crate) last_flush_ms: i64,
    /// Set after an I/O failure that only a reopen can repair.
    pub(crate) offline: Option<String>,
    /// Segment files were created since the last flush, so the directory
    /// itself must be fsynced for their names to be durable.
    pub(crate) dir_dirty: bool,
    /// The log cleaner's first dirty offset: offsets below it (down to the log
    /// start) have been compacted. Persisted in `cleaner-offset-checkpoint`.
    pub(crate) cleaner_checkpoint: i64,
    /// Earliest delete horizon of a tombstone the last cleaning pass kept
    /// (in memory only), so the cleaner knows when a pass would drop it.
    pub(crate) earliest_delete_horizon_ms: Option<i64>,
}

impl PartitionLog {
    pub(crate) fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }
    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    pub(crate) fn check_online(&self) -> Result<(), StorageError> {
        match &self.offline {
            None => Ok(()),
            Some(reason) => Err(StorageError::LogOffline {
                dir: self.dir.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// Takes the log offline (until reopened) and returns the error.
    pub(crate) fn go_offline(&mut self, error: StorageError) -> StorageError {
        tracing::error!(dir = %self.dir.display(), %error, "partition log offline");
        self.offline = Some(error.to_string());
        error
    }

    /// Starts a new active segment at the log end offset (a no-op if the active
    /// segment is empty). Seals the old one and snapshots producer state.
    pub fn roll(&mut self) -> Result<(), StorageError> {
        self.check_online()?;
        if self.active().size() == 0 {
            return Ok(());
        }
        let new_base = self.log_end_offset();
        self.active_mut().seal()?;
        snapshot::write(&self.dir, new_base, &self.producers, false)?;
        let segment = match Segment::create(&self.fs, &self.dir, new_base, &self.config) {
            Ok(s) => s,
            Err(e) => {
                // Stale files at `new_base` would overlap the still-active
                // segment on the next open; remove them or stop writing.
                let cleanup = SEGMENT_EXTS.iter().try_for_each(|ext| {
                    remove_file_if_exists(&offset_file(&self.dir, new_base, ext))
                });
                return Err(match cleanup {
                    Ok(()) => e,
                    Err(_) => self.go_offline(e),
                });
            }
        };
        self.segments.push(segment);
        self.dir_dirty = true;
        tracing::debug!(dir = %self.dir.display(), base_offset = new_base, "rolled segment");
        Ok(())
    }

    /// Reads whole batches for a fetch starting at `fetch_offset`, into memory.
    /// See [`PartitionLog::read_slice`]; memory: one buffer of at most
    /// `max(max_bytes, first batch)` bytes.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        upper_bound: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult, ReadError> {
        let r = self.read_slice(fetch_offset, max_bytes, upper_bound, min_one_batch)?;
        let records = r
            .records
            .into_bytes()
            .map_err(|e| StorageError::io("read", &self.dir, e))?;
        Ok(ReadResult {
            records,
            next_offset: r.next_offset,
            log_start_offset: r.log_start_offset,
            log_end_offset: r.log_end_offset,
        })
    }

    /// Locates whole batches for a fetch starting at `fetch_offset`, without
    /// reading them: the result names a range of a segment file, which a
    /// server sends with `sendfile`.
    ///
    /// Starts at the batch containing `fetch_offset` and returns consecutive
    /// batches from that one segment: only batches whose last offset is below
    /// `upper_bound` (the high watermark or last stable offset, exclusive), at
    /// most `max_bytes`, except that with `min_one_batch` the first batch is
    /// returned whole even if larger (KIP-74).
    pub fn read_slice(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        upper_bound: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult<LogSlice>, ReadError> {
        let (log_start_offset, log_end_offset) = (self.log_start_offset, self.log_end_offset());
        if fetch_offset < log_start_offset || fetch_offset > log_end_offset {
            return Err(ReadError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset,
                log_end_offset,
            });
        }
        let mut result = ReadResult {
            records: LogSlice::default(),
            next_offset: fetch_offset,
            log_start_offset,
            log_end_offset,
        };
        let mut i = self.segment_index_for(fetch_offset);
        while i < self.segments.len() {
            let segment = &self.segments[i];
            if let Some((pos, first)) = segment.find_batch(fetch_offset)? {
                let extent =
                    segment.read_extent(pos, &first, max_bytes, upper_bound, min_one_batch)?;
                if let Some((len, next)) = extent {
                    result.records = segment.slice(pos, len)?;
                    result.next_offset = next;
                }
                break;
            }
            i += 1;
        }
        Ok(result)
    }

    /// Index of the segment whose range contains `offset` (the first segment
    /// for offsets below it).
    pub(crate) fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1)
    }

    /// Calls `f` with every batch header whose batch ends at or after `offset`, in order.
    pub(crate) fn for_each_header_from(
        &self,
        offset: i64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        let first = self.segment_index_for(offset);
        for (i, segment) in self.segments.iter().enumerate().skip(first) {
            let pos = if i == first {
                match segment.find_batch(offset)? {
                    Some((pos, _)) => pos,
                    None => continue,
                }
            } else {
                0
            };
            segment.for_each_header(pos, |_, h| f(h))?;
        }
        Ok(())
    }

    /// Fsyncs every segment written since the last flush (log and indexes,
    /// the aborted-transaction index included) and
    /// the epoch checkpoint, then durably records the recovery point (the log
    /// end offset). A failed fsync takes the log offline: after such a failure
    /// the kernel may have dropped the dirty pages, so only recovery can tell
    /// what is on disk.
    pub fn flush(&mut self, now_ms: i64) -> Result<(), StorageError> {
        self.check_online()?;
        let log_end_offset = self.log_end_offset();
        for i in 0..self.segments.len() {
            if let Err(e) = self.segments[i].sync() {
                return Err(self.go_offline(e));
            }
        }
        if let Err(e) = self.epochs.sync_if_needed() {
            return Err(self.go_offline(e));
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        write_offset_file(&self.dir.join(RECOVERY_POINT_FILE), log_end_offset, true)?;
        self.recovery_point = log_end_offset;
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
        Ok(())
    }

    /// Takes what a records-only flush must fdatasync — the `.log` files
    /// appended to since their last sync, and the directory if a segment was
    /// created — so that the caller syncs it without holding the log: appends
    /// go on meanwhile, and the next flush covers them all (group commit).
    /// Counts the taken records as flushed (`flush.messages`); the caller
    /// reports a failed sync with [`PartitionLog::records_sync_failed`].
    ///
    /// Unlike [`PartitionLog::flush`], indexes and the recovery point are left
    /// to the next full flush (`flush.ms`, or close): after a crash, recovery
    /// starts from the older recovery point, rescans, and finds these records
    /// again. `None` when the files cannot be shared (fault injection): then
    /// use [`PartitionLog::flush`].
    pub fn take_records_sync(&mut self, now_ms: i64) -> Result<Option<RecordsSync>, StorageError> {
        self.check_online()?;
        let mut files = Vec::new();
        for segment in &mut self.segments {
            match segment.take_records_sync() {
                Ok(Some(file)) => files.push(file),
                Ok(None) => {}
                Err(()) => return Ok(None),
            }
        }
        let dir = self.dir_dirty.then(|| self.dir.clone());
        self.dir_dirty = false;
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
        Ok(Some(RecordsSync {
            files,
            dir,
            log_end_offset: self.log_end_offset(),
        }))
    }

    /// A records sync failed: the kernel may have dropped dirty pages, so the
    /// log goes offline until recovery can tell what is on disk.
    pub fn records_sync_failed(&mut self, error: StorageError) -> StorageError {
        self.go_offline(error)
    }

    /// Clean shutdown in place: seals the active segment, writes a producer
    /// snapshot, flushes. The log must not be appended to afterwards; the
    /// broker calls this once every connection is closed.
    pub fn close_in_place(&mut self) -> Result<(), StorageError> {
        self.check_online()?;
        self.active_mut().seal()?;
        let log_end_offset = self.log_end_offset();
        snapshot::write(&self.dir, log_end_offset, &self.producers, true)?;
        let now = self.last_flush_ms;
        self.flush(now)?;
        write_offset_file(
            &self.dir.join(LOG_START_OFFSET_FILE),
            self.log_start_offset,
            true,
        )
    }

    /// Consuming form of [`PartitionLog::close_in_place`].
    pub fn close(mut self) -> Result<(), StorageError> {
        self.close_in_place()
    }

    /// Replaces the configuration (topic configs changed). Applies from the
    /// next append or retention pass; existing segments are not rewritten.
    pub fn set_config(&mut self, config: LogConfig) -> Result<(), StorageError> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// Deletes the partition directory and everything in it (DeleteTopics).
    pub fn delete(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).map_err(|e| StorageError::io("delete directory", dir, e))
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The configuration in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// First offset still readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }
    /// Offsets below this are known to be fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }
    /// Records appended since the last [`PartitionLog::flush`] (for `flush.messages`).
    pub fn unflushed_messages(&self) -> u64 {
        self.unflushed_messages
    }
    /// Time of the last flush, or of opening (for `flush.ms`).
    pub fn last_flush_ms(&self) -> i64 {
        self.last_flush_ms
    }
    /// Total bytes of all segment files (indexes excluded).
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size()).sum()
    }
    /// Number of segments, including the active one.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.base_offset()).collect()
    }
    /// Whether an earlier I/O failure took the log offline (reopen to recover).
    pub fn is_offline(&self) -> bool {
        self.offline.is_some()
    }
    /// Idempotent-producer state for `producer_id`.
    pub fn producer_state(&self, producer_id: i64) -> Option<ProducerStateEntry> {
        self.producers.get(producer_id).cloned()
    }
    /// Number of producer ids tracked.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }
    /// Every tracked producer's state, by producer id (DescribeProducers).
    pub fn producer_states(&self) -> Vec<ProducerStateEntry> {
        let mut all: Vec<ProducerStateEntry> = self.producers.entries().cloned().collect();
        all.sort_by_key(|e| e.producer_id);
        all
    }
}
