//! Opening a partition log: listing the directory, loading or recovering
//! segments, and rebuilding the leader-epoch cache and producer state.
//!
//! After an unclean stop, every segment holding offsets at or above the
//! recovery point is read batch by batch, CRC-checked and re-indexed; the first
//! partial or invalid batch and everything after it (including later segments)
//! is removed. After a clean stop, indexes are loaded and sanity-checked (and
//! rebuilt if missing or inconsistent). Either way, the log tail after the last
//! index entry is scanned to find the log end offset. The transaction
//! indexes of recovered segments (and missing or damaged ones) are rebuilt by
//! replaying producer state.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use crate::checkpoint::{
    parse_offset_file_name, read_offset_file, remove_file_if_exists, write_offset_file,
    LEADER_EPOCH_CHECKPOINT, LOG_EXT, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE, SEGMENT_EXTS,
    TMP_EXT,
};
use crate::cleaner;
use crate::config::LogConfig;
use crate::epoch_cache::LeaderEpochCache;
use crate::error::StorageError;
use crate::io::{FileSystem, StdFileSystem};
use crate::log::PartitionLog;
use crate::producer_state::ProducerStateManager;
use crate::segment::Segment;
use crate::snapshot;

/// Lists segment base offsets in `dir`, deleting temp files and index files
/// whose segment log is gone.
fn scan_dir(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut logs = BTreeSet::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io("list directory", dir, e))? {
        let entry = entry.map_err(|e| StorageError::io("list directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(&format!(".{TMP_EXT}")) || name.ends_with(".deleted") {
            remove_file_if_exists(&entry.path())?;
        } else if let Some(base) = parse_offset_file_name(name, LOG_EXT) {
            logs.insert(base);
        } else if let Some(base) = SEGMENT_EXTS[1..]
            .iter()
            .find_map(|ext| parse_offset_file_name(name, ext))
        {
            indexes.push((base, entry.path()));
        }
    }
    for (base, path) in indexes {
        if !logs.contains(&base) {
            remove_file_if_exists(&path)?;
        }
    }
    Ok(logs.into_iter().collect())
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir` on the real file system.
    /// `clean_shutdown` says whether the previous process closed it with
    /// [`PartitionLog::close`]; if not, the unflushed tail is recovered.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<PartitionLog, StorageError> {
        Self::open_with_fs(dir, config, clean_shutdown, now_ms, Arc::new(StdFileSystem))
    }

    /// [`PartitionLog::open`] with segment and index files opened through `fs`
    /// (fault injection in tests).
    pub fn open_with_fs(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
        now_ms: i64,
        fs: Arc<dyn FileSystem>,
    ) -> Result<PartitionLog, StorageError> {
        config.validate()?;
        fs::create_dir_all(dir).map_err(|e| StorageError::io("create directory", dir, e))?;
        // A cleaner swap interrupted by a crash is finished or undone first,
        // so the listing sees one consistent set of segments.
        cleaner::recover_swaps(dir)?;
        let bases = scan_dir(dir)?;
        let recovery_point = read_offset_file(&dir.join(RECOVERY_POINT_FILE)).unwrap_or_else(|reason| {
            tracing::warn!(dir = %dir.display(), %reason, "unreadable recovery point; recovering everything");
            None
        });
        let stored_log_start =
            read_offset_file(&dir.join(LOG_START_OFFSET_FILE)).unwrap_or_else(|reason| {
                tracing::warn!(dir = %dir.display(), %reason, "unreadable log start offset");
                None
            });

        let mut segments = Vec::with_capacity(bases.len().max(1));
        let mut first_recovered = None;
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let recover =
                !clean_shutdown && next_base.is_none_or(|n| n > recovery_point.unwrap_or(0));
            let (mut segment, truncation) =
                Segment::open(&fs, dir, base, &config, recover, now_ms)?;
            if recover || truncation.is_some() {
                first_recovered.get_or_insert(base);
            }
            if let Some(n) = next_base.filter(|n| segment.next_offset() > *n) {
                tracing::warn!(dir = %dir.display(), base, next_base = n, "segment overlaps the next one; truncating");
                segment.truncate_to(n)?;
            }
            segments.push(segment);
            if truncation.is_some() {
                for &later in &bases[i + 1..] {
                    tracing::warn!(dir = %dir.display(), base_offset = later, "deleting segment after a torn one");
                    for ext in SEGMENT_EXTS {
                        remove_file_if_exists(&crate::checkpoint::offset_file(dir, later, ext))?;
                    }
                }
                break;
            }
        }
        if segments.is_empty() {
            let base = stored_log_start.unwrap_or(0);
            segments.push(Segment::create(&fs, dir, base, &config)?);
        }
        let first_base = segments[0].base_offset();
        let log_end_offset = segments.last().map_or(first_base, |s| s.next_offset());
        let log_start_offset = stored_log_start
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end_offset);

        let cleaner_checkpoint = read_offset_file(&dir.join(cleaner::CLEANER_CHECKPOINT_FILE))
            .unwrap_or_else(|reason| {
                tracing::warn!(dir = %dir.display(), %reason, "unreadable cleaner checkpoint; the whole log counts as dirty");
                None
            })
            .unwrap_or(log_start_offset)
            .min(log_end_offset);
        let epochs = LeaderEpochCache::empty(dir.join(LEADER_EPOCH_CHECKPOINT));
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            fs,
            segments,
            log_start_offset,
            recovery_point: recovery_point.unwrap_or(0).min(log_end_offset),
            epochs,
            producers: ProducerStateManager::default(),
            unflushed_messages: 0,
            last_flush_ms: now_ms,
            offline: None,
            dir_dirty: true,
            cleaner_checkpoint,
            earliest_delete_horizon_ms: None,
        };
        log.rebuild_epoch_cache(first_recovered)?;
        log.rebuild_producer_state()?;
        if stored_log_start != Some(log_start_offset) {
            write_offset_file(&dir.join(LOG_START_OFFSET_FILE), log_start_offset, true)?;
        }
        // Per-partition detail is debug: a broker opens thousands of logs;
        // truncations and rebuilds above are logged at warn.
        tracing::debug!(
            dir = %dir.display(),
            log_start_offset,
            log_end_offset,
            segments = log.segments.len(),
            clean_shutdown,
            "opened partition log"
        );
        Ok(log)
    }

    /// Loads the epoch checkpoint, trims it to the log, and replays batch epochs
    /// from `replay_from` (or from the start if the checkpoint is unusable).
    fn rebuild_epoch_cache(&mut self, replay_from: Option<i64>) -> Result<(), StorageError> {
        let path = self.dir.join(LEADER_EPOCH_CHECKPOINT);
        let first_base = self.segments[0].base_offset();
        let (mut cache, replay_from) = match LeaderEpochCache::load(&path) {
            Ok(Some(cache)) => (cache, replay_from),
            Ok(None) => (LeaderEpochCache::empty(path), Some(first_base)),
            Err(reason) => {
                tracing::warn!(checkpoint = %path.display(), %reason, "rebuilding leader-epoch cache from the log");
                (LeaderEpochCache::empty(path), Some(first_base))
            }
        };
        let log_end_offset = self.log_end_offset();
        let mut changed = cache.truncate_from_end(log_end_offset);
        if let Some(from) = replay_from {
            self.for_each_header_from(from, |h| {
                changed |= cache.assign(h.partition_leader_epoch, h.base_offset);
            })?;
        }
        changed |= cache.truncate_from_start(self.log_start_offset);
        self.epochs = cache;
        if changed || replay_from == Some(first_base) {
            self.epochs.write(true)?;
        }
        Ok(())
    }

    /// Rebuilds producer state (open transactions included) from the newest
    /// snapshot at or below the log end offset plus the batches after it,
    /// after rebuilding any stale transaction index (which may need an older
    /// snapshot: the state before the stale segment).
    pub(crate) fn rebuild_producer_state(&mut self) -> Result<(), StorageError> {
        let log_end_offset = self.log_end_offset();
        snapshot::delete_above(&self.dir, log_end_offset)?;
        self.rebuild_stale_txn_indexes()?;
        let (from, mut state) = self.load_producer_snapshot(log_end_offset)?;
        if from < log_end_offset {
            self.for_each_batch_in(from, log_end_offset, |_, h, marker| {
                state.replay(h, marker);
            })?;
        }
        self.producers = state;
        Ok(())
    }
}
