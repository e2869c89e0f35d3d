//! The leader-epoch cache: for each leader epoch, the first offset written in
//! it. Followers use it (via OffsetForLeaderEpoch, KIP-101/KIP-279) to find where
//! their log diverges from the leader's.
//!
//! Persisted as `leader-epoch-checkpoint` in Kafka's text format: a version line
//! `0`, a count line, then `epoch startOffset` lines.

use std::path::{Path, PathBuf};

use crate::checkpoint::write_atomic;
use crate::error::StorageError;

/// Version line of the checkpoint file.
const CHECKPOINT_VERSION: &str = "0";

/// One epoch and the first offset appended in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    /// Leader epoch.
    pub epoch: i32,
    /// First offset of the epoch.
    pub start_offset: i64,
}

/// Entries sorted by epoch and start offset, both strictly increasing.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
    /// Changed since the checkpoint was last fsynced.
    unsynced: bool,
}

/// Renders entries in the checkpoint format.
pub fn encode(entries: &[EpochEntry]) -> String {
    let mut s = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for e in entries {
        s.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    s
}

/// Parses the checkpoint format, checking that entries increase.
pub fn decode(text: &str) -> Result<Vec<EpochEntry>, String> {
    let mut lines = text.lines();
    if lines.next() != Some(CHECKPOINT_VERSION) {
        return Err("unknown version".into());
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("malformed count")?;
    let mut entries: Vec<EpochEntry> = Vec::new();
    for line in lines.by_ref().take(count) {
        let mut parts = line.split_whitespace();
        let (Some(epoch), Some(offset), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("malformed line {line:?}"));
        };
        let e = EpochEntry {
            epoch: epoch.parse().map_err(|_| format!("bad epoch {epoch:?}"))?,
            start_offset: offset
                .parse()
                .map_err(|_| format!("bad offset {offset:?}"))?,
        };
        if e.epoch < 0 || e.start_offset < 0 {
            return Err(format!("negative entry {line:?}"));
        }
        if entries
            .last()
            .is_some_and(|l| l.epoch >= e.epoch || l.start_offset > e.start_offset)
        {
            return Err(format!("entries not increasing at {line:?}"));
        }
        entries.push(e);
    }
    if entries.len() != count || lines.any(|l| !l.trim().is_empty()) {
        return Err("count does not match entries".into());
    }
    Ok(entries)
}

impl LeaderEpochCache {
    /// An empty cache that will persist to `path`.
    pub fn empty(path: PathBuf) -> Self {
        LeaderEpochCache {
            path,
            entries: Vec::new(),
            unsynced: true,
        }
    }

    /// Loads `path`. `Err(reason)` if present but unreadable (the caller
    /// rebuilds the cache from the log); a missing file gives `Ok(None)`.
    pub fn load(path: &Path) -> Result<Option<Self>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        Ok(Some(LeaderEpochCache {
            path: path.to_path_buf(),
            entries: decode(&text)?,
            unsynced: false,
        }))
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `assign`): a no-op
    /// if `epoch` is already the latest; otherwise entries that are not below
    /// the new one in both epoch and offset are dropped and it is appended.
    /// Returns whether anything changed (the checkpoint then needs writing).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        if let Some(last) = self.entries.last() {
            if last.epoch == epoch && last.start_offset <= start_offset {
                return false;
            }
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.unsynced = true;
        true
    }

    /// The entries as they would be after [`LeaderEpochCache::assign`] of each
    /// `(epoch, start offset)` in order, if that changes anything.
    pub fn preview_assign(&self, assigns: &[(i32, i64)]) -> Option<Vec<EpochEntry>> {
        let mut copy = LeaderEpochCache {
            path: PathBuf::new(),
            entries: self.entries.clone(),
            unsynced: false,
        };
        let mut changed = false;
        for &(epoch, start_offset) in assigns {
            changed |= copy.assign(epoch, start_offset);
        }
        changed.then_some(copy.entries)
    }

    /// Replaces the entries with a preview whose checkpoint was written.
    pub fn replace_entries(&mut self, entries: Vec<EpochEntry>) {
        self.entries = entries;
        self.unsynced = true;
    }

    /// Drops entries starting at or after `end_offset` (the log was truncated to it).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        let changed = self.entries.len() != before;
        self.unsynced |= changed;
        changed
    }

    /// Drops entries wholly below `start_offset` (the log start moved there); the
    /// latest of them is kept, moved up to `start_offset`.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self
            .entries
            .partition_point(|e| e.start_offset < start_offset);
        if below == 0 {
            return false;
        }
        let mut latest = self.entries[below - 1];
        latest.start_offset = start_offset;
        let at_start = self
            .entries
            .get(below)
            .is_some_and(|e| e.start_offset == start_offset);
        self.entries.drain(..below);
        if !at_start {
            self.entries.insert(0, latest);
        }
        self.unsynced = true;
        true
    }

    /// The latest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// OffsetForLeaderEpoch (KIP-101/279): the largest epoch ≤ `requested` and
    /// the end offset of `requested` (the start of the next higher epoch, or the
    /// log end offset if `requested` is the latest). `None` when the epoch is
    /// unknown (undefined epoch -1 or newer than every entry), which the broker
    /// answers with epoch -1 / offset -1.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if requested < 0 {
            return None;
        }
        if self.latest_epoch() == Some(requested) {
            return Some((requested, log_end_offset));
        }
        let higher = self.entries.iter().find(|e| e.epoch > requested)?;
        let floor = self.entries.iter().rev().find(|e| e.epoch <= requested);
        Some((floor.map_or(requested, |e| e.epoch), higher.start_offset))
    }

    /// Writes the checkpoint atomically; with `sync`, durably.
    pub fn write(&mut self, sync: bool) -> Result<(), StorageError> {
        write_atomic(&self.path, encode(&self.entries).as_bytes(), sync)?;
        if sync {
            self.unsynced = false;
        }
        Ok(())
    }

    /// Writes `entries` (a preview) to the checkpoint without fsync.
    pub fn write_preview(&self, entries: &[EpochEntry]) -> Result<(), StorageError> {
        write_atomic(&self.path, encode(entries).as_bytes(), false)
    }

    /// Fsyncs the checkpoint if it changed since the last fsync.
    pub fn sync_if_needed(&mut self) -> Result<(), StorageError> {
        if self.unsynced {
            self.write(true)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::empty(PathBuf::from("/nonexistent"));
        for &(e, o) in entries {
            c.assign(e, o);
        }
        c
    }

    #[test]
    fn assign_appends_only_new_epochs() {
        let mut c = cache(&[(1, 0)]);
        assert!(!c.assign(1, 10));
        assert!(c.assign(3, 20));
        assert_eq!(c.entries().len(), 2);
    }

    #[test]
    fn assign_of_lower_epoch_removes_conflicting_entries() {
        let mut c = cache(&[(1, 0), (3, 20), (5, 40)]);
        c.assign(4, 30);
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 1,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 3,
                    start_offset: 20
                },
                EpochEntry {
                    epoch: 4,
                    start_offset: 30
                }
            ]
        );
    }

    #[test]
    fn end_offset_follows_kip_101_and_279() {
        let c = cache(&[(1, 0), (3, 20), (5, 40)]);
        assert_eq!(c.end_offset_for(5, 55), Some((5, 55)));
        assert_eq!(c.end_offset_for(3, 55), Some((3, 40)));
        // Epoch 4 never led: answer the largest epoch below it and where 5 began.
        assert_eq!(c.end_offset_for(4, 55), Some((3, 40)));
        // Older than every entry: the requested epoch ends where the first starts.
        assert_eq!(c.end_offset_for(0, 55), Some((0, 0)));
        assert_eq!(c.end_offset_for(6, 55), None);
        assert_eq!(c.end_offset_for(-1, 55), None);
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(1, 0), (3, 20), (5, 40)]);
        c.truncate_from_end(40);
        assert_eq!(c.latest_epoch(), Some(3));
        c.truncate_from_start(25);
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 3,
                start_offset: 25
            }]
        );
    }

    #[test]
    fn checkpoint_text_round_trips_and_rejects_garbage() {
        let c = cache(&[(1, 0), (3, 20)]);
        let text = encode(c.entries());
        assert_eq!(text, "0\n2\n1 0\n3 20\n");
        assert_eq!(decode(&text).unwrap(), c.entries());
        assert!(decode("0\n3\n1 0\n3 20\n").is_err());
        assert!(decode("0\n2\n3 0\n1 20\n").is_err());
        assert!(decode("1\n0\n").is_err());
        assert!(decode("0\n1\n1 x\n").is_err());
    }
}
