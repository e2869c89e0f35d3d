//! One segment: `<base>.log` with its `.index`, `.timeindex` and `.txnindex`.
//!
//! A segment holds whole batches with increasing offsets starting at or after
//! its base offset. The in-memory fields (`size`, `next_offset`, largest
//! timestamp) describe exactly the bytes that were written successfully; a
//! failed append is cut off again so the file matches them.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strom_protocol::records::BatchHeader;

use crate::checkpoint::{
    offset_file, remove_file_if_exists, INDEX_EXT, LOG_EXT, SEGMENT_EXTS, TIME_INDEX_EXT,
    TXN_INDEX_EXT,
};
use crate::config::LogConfig;
use crate::error::StorageError;
use crate::index::OffsetIndex;
use crate::io::{FileSystem, SegmentFile};
use crate::time_index::TimeIndex;
use crate::txn_index::{AbortedTxn, TransactionIndex};

mod scan;
#[cfg(test)]
mod tests;

use scan::read_header_at;

/// What recovery cut off the end of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// Byte position the file was truncated to.
    pub position: u64,
    /// Bytes removed.
    pub bytes_removed: u64,
    /// The segment's next offset after truncation.
    pub next_offset: i64,
    /// Why the first removed batch was rejected.
    pub reason: String,
}

/// A failed [`Segment::append`].
#[derive(Debug)]
pub struct AppendFailure {
    /// The I/O error.
    pub error: StorageError,
    /// Whether the partial write was cut off again (the segment is consistent).
    pub rolled_back: bool,
}

/// One log segment and its indexes.
#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    log: Box<dyn SegmentFile>,
    index: OffsetIndex,
    time_index: TimeIndex,
    txn_index: TransactionIndex,
    /// The `.txnindex` does not describe the log (missing, damaged, or reset
    /// by recovery) and must be rebuilt from producer state replay before
    /// anyone reads it; see [`Segment::rebuild_txn_index`].
    txn_index_stale: bool,
    /// Bytes of whole batches in the log file.
    size: u64,
    /// Last offset + 1, or the base offset when empty.
    next_offset: i64,
    /// Largest batch max timestamp, -1 if none.
    max_timestamp: i64,
    /// Base offset of the first batch with `max_timestamp`, -1 if none.
    offset_of_max_timestamp: i64,
    /// Log bytes appended since the last offset index entry.
    bytes_since_last_index_entry: u64,
    /// When the segment got its first batch (drives `segment.ms`).
    roll_base_ms: Option<i64>,
    /// Written since the last fsync.
    dirty: bool,
    /// Records appended to the `.log` since its last fdatasync (by
    /// [`Segment::sync`] or [`Segment::take_records_sync`]).
    log_unsynced: bool,
    index_interval_bytes: u64,
}

impl Segment {
    fn open_files(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        suffix: &str,
    ) -> Result<Segment, StorageError> {
        let path_of = |ext: &str| {
            let mut path = offset_file(dir, base_offset, ext).into_os_string();
            path.push(suffix);
            PathBuf::from(path)
        };
        let open = |ext: &str| {
            let path = path_of(ext);
            let file = if ext == LOG_EXT {
                fs.open(&path)
            } else {
                fs.open_index(&path)
            };
            file.map_err(|e| StorageError::io("open", path, e))
        };
        let log_path = path_of(LOG_EXT);
        // Checked before opening, which creates the file: a missing index
        // must be rebuilt, not read as "no aborted transactions".
        let txn_index_existed = path_of(TXN_INDEX_EXT).exists();
        let log = open(LOG_EXT)?;
        let index = OffsetIndex::new(open(INDEX_EXT)?, base_offset, config.segment_index_bytes);
        let time_index = TimeIndex::new(
            open(TIME_INDEX_EXT)?,
            base_offset,
            config.segment_index_bytes,
        );
        let txn_index = TransactionIndex::new(open(TXN_INDEX_EXT)?);
        let size = log
            .size()
            .map_err(|e| StorageError::io("stat", &log_path, e))?;
        Ok(Segment {
            base_offset,
            log_path,
            log,
            index,
            time_index,
            txn_index,
            txn_index_stale: !txn_index_existed,
            size,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            bytes_since_last_index_entry: 0,
            roll_base_ms: None,
            dirty: false,
            log_unsynced: false,
            index_interval_bytes: config.index_interval_bytes,
        })
    }

    /// Creates a new empty segment (truncating any stale files of that name).
    pub fn create(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
    ) -> Result<Segment, StorageError> {
        Self::create_with_suffix(fs, dir, base_offset, config, "")
    }

    /// [`Segment::create`] with `suffix` appended to the four file names
    /// (the log cleaner writes `<base>.log.cleaned` and its indexes).
    pub fn create_with_suffix(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        suffix: &str,
    ) -> Result<Segment, StorageError> {
        let mut s = Self::open_files(fs, dir, base_offset, config, suffix)?;
        s.log
            .set_len(0)
            .and_then(|_| s.index.reset())
            .and_then(|_| s.time_index.reset())
            .and_then(|_| s.txn_index.reset())
            .map_err(|e| StorageError::io("create segment", &s.log_path, e))?;
        s.txn_index_stale = false;
        s.size = 0;
        s.dirty = true;
        Ok(s)
    }

    /// Opens an existing segment. With `recover`, every batch is read and
    /// CRC-checked and the offset and time indexes rebuilt; otherwise the
    /// indexes are loaded and sanity-checked, falling back to recovery if they
    /// (or the log tail) are bad. A recovered segment, or one whose
    /// `.txnindex` is missing or does not fit the log, comes back with
    /// [`Segment::txn_index_stale`] set: the caller rebuilds that index by
    /// replaying producer state, which needs the state before this segment.
    pub fn open(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        recover: bool,
        now_ms: i64,
    ) -> Result<(Segment, Option<Truncation>), StorageError> {
        let mut s = Self::open_files(fs, dir, base_offset, config, "")?;
        let mut recover = recover;
        if !recover {
            if let Err(reason) = s.load_indexes()? {
                tracing::warn!(segment = %s.log_path.display(), %reason, "rebuilding segment indexes");
                recover = true;
            }
        }
        let truncation = if recover {
            let truncation = s.recover()?;
            // Rebuilt indexes go to disk now rather than at the next sync.
            s.index
                .write_buffered()
                .and_then(|_| s.time_index.write_buffered())
                .map_err(|e| s.io_err("write rebuilt index", e))?;
            truncation
        } else {
            None
        };
        if !s.txn_index_stale {
            s.load_txn_index()?;
        }
        if s.size > 0 {
            // segment.ms counts from the first batch; after a restart Kafka uses
            // that batch's timestamp, falling back to "now" when it has none.
            let first = read_header_at(s.log.as_ref(), 0, s.size)
                .map_err(|e| s.io_err("read", e))?
                .ok()
                .map_or(-1, |h| h.max_timestamp);
            s.roll_base_ms = Some(if first >= 0 { first } else { now_ms });
        }
        Ok((s, truncation))
    }

    /// Loads the `.txnindex` and checks it against the log; marks it stale
    /// (to be rebuilt) if it does not fit.
    fn load_txn_index(&mut self) -> Result<(), StorageError> {
        let loaded = self
            .txn_index
            .load(self.base_offset, self.size)
            .map_err(|e| self.io_err("read transaction index", e))?;
        let result = loaded.and_then(|()| match self.txn_index.entries().last() {
            Some(t) if t.last_offset >= self.next_offset => Err(format!(
                "aborted transaction marker {} beyond the log end {}",
                t.last_offset, self.next_offset
            )),
            _ => Ok(()),
        });
        if let Err(reason) = result {
            tracing::warn!(segment = %self.log_path.display(), %reason, "rebuilding transaction index");
            self.txn_index_stale = true;
        }
        Ok(())
    }

    fn io_err(&self, op: &'static str, e: io::Error) -> StorageError {
        StorageError::io(op, &self.log_path, e)
    }

    /// Appends already validated and patched batches (`headers` describe
    /// `records`, in order). On failure the partial write is cut off if possible.
    pub fn append(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<(), AppendFailure> {
        let start = self.size;
        let mut pos = start;
        let mut since = self.bytes_since_last_index_entry;
        let (mut max_ts, mut max_off) = (self.max_timestamp, self.offset_of_max_timestamp);
        let mut offset_entries = Vec::new();
        let mut time_entries = Vec::new();
        for h in headers {
            debug_assert!(h.base_offset >= self.next_offset);
            if h.max_timestamp > max_ts {
                max_ts = h.max_timestamp;
                max_off = h.base_offset;
            }
            if since > self.index_interval_bytes {
                offset_entries.push((h.base_offset, pos as u32));
                time_entries.push((max_ts, max_off));
                since = 0;
            }
            since += h.total_len() as u64;
            pos += h.total_len() as u64;
        }
        debug_assert_eq!(pos - start, records.len() as u64);
        let result = self
            .log
            .append(records)
            .map_err(|e| ("write", e))
            .and_then(|_| {
                self.index
                    .append(&offset_entries)
                    .map_err(|e| ("write index", e))
            })
            .and_then(|_| {
                self.time_index
                    .append(&time_entries, false)
                    .map_err(|e| ("write time index", e))
            });
        if let Err((op, e)) = result {
            // Entries reach memory only after their write succeeded, so cutting
            // every file back to what memory describes restores consistency.
            let rolled_back = self.log.set_len(start).is_ok()
                && self.index.truncate_file().is_ok()
                && self.time_index.truncate_file().is_ok();
            return Err(AppendFailure {
                error: self.io_err(op, e),
                rolled_back,
            });
        }
        let last = headers
            .last()
            .map_or(self.next_offset - 1, |h| h.last_offset());
        self.size = pos;
        self.next_offset = last + 1;
        self.max_timestamp = max_ts;
        self.offset_of_max_timestamp = max_off;
        self.bytes_since_last_index_entry = since;
        self.roll_base_ms.get_or_insert(now_ms);
        self.dirty = true;
        self.log_unsynced = true;
        Ok(())
    }

    /// Writes the final time index entry (the segment's largest timestamp) when
    /// the segment stops being active or the log is closed, as Kafka does.
    /// Writes index entries still buffered ([`crate::IndexFile`]) to disk.
    pub fn seal(&mut self) -> Result<(), StorageError> {
        if self.max_timestamp >= 0 {
            self.time_index
                .append(&[(self.max_timestamp, self.offset_of_max_timestamp)], true)
                .map_err(|e| self.io_err("write time index", e))?;
            self.dirty = true;
        }
        self.index
            .write_buffered()
            .map_err(|e| self.io_err("write index", e))?;
        self.time_index
            .write_buffered()
            .map_err(|e| self.io_err("write time index", e))?;
        self.txn_index
            .write_buffered()
            .map_err(|e| self.io_err("write transaction index", e))?;
        // Space reserved for appends; the data is unaffected if this fails.
        if let Err(error) = self.log.release_reserved() {
            tracing::warn!(segment = %self.log_path.display(), %error, "reserved blocks not freed");
        }
        Ok(())
    }

    /// Fsyncs the log and its indexes if anything was written since the last sync.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            self.log.sync_data().map_err(|e| self.io_err("fsync", e))?;
            self.index
                .sync()
                .map_err(|e| self.io_err("fsync index", e))?;
            self.time_index
                .sync()
                .map_err(|e| self.io_err("fsync time index", e))?;
            self.txn_index
                .sync()
                .map_err(|e| self.io_err("fsync transaction index", e))?;
            self.dirty = false;
            self.log_unsynced = false;
        }
        Ok(())
    }

    /// The `.log` file to fdatasync for the records appended since its last
    /// sync, if any, counting them as synced from now: the caller syncs it
    /// without holding the log, and takes the log offline if that fails.
    /// `Err(())` when the file cannot be shared ([`SegmentFile::shared_file`]).
    #[allow(clippy::result_unit_err)]
    pub fn take_records_sync(&mut self) -> Result<Option<(PathBuf, Arc<std::fs::File>)>, ()> {
        if !self.log_unsynced {
            return Ok(None);
        }
        let file = self.log.shared_file().ok_or(())?;
        self.log_unsynced = false;
        Ok(Some((self.log_path.clone(), file)))
    }

    /// Deletes the segment's files (the segment must not be used afterwards).
    pub fn delete_files(&self, dir: &Path) -> Result<(), StorageError> {
        for ext in SEGMENT_EXTS {
            remove_file_if_exists(&offset_file(dir, self.base_offset, ext))?;
        }
        Ok(())
    }

    /// Whether `segment.bytes`, `segment.ms`, a full index or a relative offset
    /// overflow require a new segment before appending `bytes` ending at `last_offset`.
    pub fn should_roll(
        &self,
        config: &LogConfig,
        bytes: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        self.size + bytes > config.segment_bytes
            || self
                .roll_base_ms
                .is_some_and(|t| now_ms.saturating_sub(t) > config.max_segment_ms())
            || self.index.is_full()
            || self.time_index.is_full()
            || last_offset - self.base_offset > i64::from(i32::MAX)
    }

    /// The segment's largest timestamp for time retention: the largest batch
    /// timestamp, or the file's modification time when no batch has one.
    pub fn largest_timestamp(&self) -> Result<i64, StorageError> {
        if self.max_timestamp >= 0 {
            return Ok(self.max_timestamp);
        }
        self.log.modified_ms().map_err(|e| self.io_err("stat", e))
    }

    /// Position to start a timestamp search from (from the time index).
    pub fn time_lookup_position(&self, ts: i64) -> u64 {
        match self.time_index.lookup(ts) {
            Some(e) => self.index.lookup(self.time_index.offset_of(e)).1,
            None => 0,
        }
    }

    /// First offset of the segment's file name.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    /// Last offset + 1 (the base offset when empty).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    /// Bytes in the log file.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The aborted transactions whose ABORT marker is in this segment, in
    /// marker order (empty while [`Segment::txn_index_stale`]).
    pub fn aborted_txns(&self) -> &[AbortedTxn] {
        self.txn_index.entries()
    }
    /// Kafka's `collectAbortedTxns` on this segment; see
    /// [`TransactionIndex::collect`]. Returns whether the search is complete.
    pub fn collect_aborted_txns(
        &self,
        start: i64,
        upper_bound: i64,
        out: &mut Vec<AbortedTxn>,
    ) -> bool {
        self.txn_index.collect(start, upper_bound, out)
    }
    /// Whether the `.txnindex` must be rebuilt before it can be trusted.
    pub fn txn_index_stale(&self) -> bool {
        self.txn_index_stale
    }
    /// Records ABORT markers written to this segment (each after the last
    /// one recorded). On failure the caller must take the log offline: the
    /// markers are in the log but not in the index.
    pub fn append_aborted_txns(&mut self, txns: &[AbortedTxn]) -> Result<(), StorageError> {
        debug_assert!(txns.iter().all(|t| t.last_offset < self.next_offset));
        self.txn_index
            .append(txns)
            .map_err(|e| self.io_err("write transaction index", e))?;
        self.dirty |= !txns.is_empty();
        Ok(())
    }
    /// Replaces the `.txnindex` with `txns` (rebuilt by replaying the
    /// segment's markers) and clears [`Segment::txn_index_stale`].
    pub fn rebuild_txn_index(&mut self, txns: &[AbortedTxn]) -> Result<(), StorageError> {
        self.txn_index
            .reset()
            .and_then(|_| self.txn_index.append(txns))
            .map_err(|e| self.io_err("rebuild transaction index", e))?;
        self.txn_index_stale = false;
        self.dirty = true;
        tracing::info!(segment = %self.log_path.display(), aborted = txns.len(), "rebuilt transaction index");
        Ok(())
    }
    /// `(largest batch max timestamp, base offset of its batch)`, if any batch has one.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        (self.max_timestamp >= 0).then_some((self.max_timestamp, self.offset_of_max_timestamp))
    }
}
