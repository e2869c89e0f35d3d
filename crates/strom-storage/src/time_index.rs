//! The sparse time index of a segment (`<base>.timeindex`).
//!
//! On disk, as Kafka: 12-byte entries, an 8-byte timestamp and a 4-byte offset
//! relative to the segment base, big-endian. Timestamps strictly increase: an
//! entry `(t, o)` says "the largest timestamp in this segment up to offset `o`'s
//! batch is `t`, first reached by the batch at `o`". An entry is considered at
//! every offset-index entry and when the segment is sealed (rolled or closed),
//! so after a seal the last entry holds the segment's largest timestamp.
//!
//! Entries are kept in memory (16 bytes each) like the offset index.

use crate::io::SegmentFile;

/// Bytes per time index entry.
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

/// One entry: a timestamp and the offset (relative) of the batch that reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp so far in the segment.
    pub timestamp: i64,
    /// Offset minus segment base of the batch that first had it.
    pub relative_offset: u32,
}

/// The greatest entry whose timestamp is ≤ `target`, if any.
pub fn floor_entry(entries: &[TimeEntry], target: i64) -> Option<TimeEntry> {
    let n = entries.partition_point(|e| e.timestamp <= target);
    n.checked_sub(1).map(|i| entries[i])
}

/// A segment's time index: the file plus its entries in memory.
#[derive(Debug)]
pub struct TimeIndex {
    base_offset: i64,
    file: Box<dyn SegmentFile>,
    entries: Vec<TimeEntry>,
    max_entries: usize,
}

impl TimeIndex {
    /// Wraps `file` without reading it.
    pub fn new(file: Box<dyn SegmentFile>, base_offset: i64, max_index_bytes: u64) -> Self {
        TimeIndex {
            base_offset,
            file,
            entries: Vec::new(),
            max_entries: (max_index_bytes / TIME_INDEX_ENTRY_BYTES as u64) as usize,
        }
    }

    /// Reads the file and sanity-checks it. `Ok(Err(reason))` means rebuild.
    pub fn load(&mut self) -> std::io::Result<Result<(), String>> {
        self.entries.clear();
        let len = self.file.size()?;
        if len % TIME_INDEX_ENTRY_BYTES as u64 != 0 {
            return Ok(Err(format!(
                "time index length {len} is not a multiple of 12"
            )));
        }
        if len / TIME_INDEX_ENTRY_BYTES as u64 > self.max_entries as u64 + 1 {
            return Ok(Err(format!(
                "time index length {len} exceeds segment.index.bytes"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buf, 0)?;
        let mut prev: Option<TimeEntry> = None;
        for c in buf.chunks_exact(TIME_INDEX_ENTRY_BYTES) {
            let e = TimeEntry {
                timestamp: i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
                relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            };
            if e.relative_offset > i32::MAX as u32 {
                return Ok(Err(format!("time index entry {e:?} has an invalid offset")));
            }
            if let Some(p) = prev {
                if e.timestamp <= p.timestamp || e.relative_offset < p.relative_offset {
                    return Ok(Err(format!("time index entries not increasing at {e:?}")));
                }
            }
            prev = Some(e);
            self.entries.push(e);
        }
        Ok(Ok(()))
    }

    /// Empties the index and its file.
    pub fn reset(&mut self) -> std::io::Result<()> {
        self.entries.clear();
        self.file.set_len(0)
    }

    /// Whether no further entry fits in `segment.index.bytes`.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// The last entry (the largest timestamp indexed), if any.
    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// Absolute offset of an entry.
    pub fn offset_of(&self, e: TimeEntry) -> i64 {
        self.base_offset + i64::from(e.relative_offset)
    }

    /// Which of `candidates` (timestamp, absolute offset), in order, would be
    /// appended: those that raise the last timestamp.
    pub fn filter_new(&self, candidates: &[(i64, i64)]) -> Vec<(i64, i64)> {
        // As Kafka, an empty index behaves as if its last timestamp were -1
        // (no timestamp), so batches without timestamps are never indexed.
        let mut last = self.last().map_or(-1, |e| e.timestamp);
        let mut out = Vec::new();
        for &(ts, off) in candidates {
            if ts > last {
                out.push((ts, off));
                last = ts;
            }
        }
        out
    }

    /// Appends entries that raise the last timestamp. With `force`, ignores the
    /// size limit (the final entry written when a segment is sealed, as Kafka).
    pub fn append(&mut self, candidates: &[(i64, i64)], force: bool) -> std::io::Result<()> {
        let mut new = self.filter_new(candidates);
        if !force {
            new.truncate(self.max_entries.saturating_sub(self.entries.len()));
        }
        if new.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(new.len() * TIME_INDEX_ENTRY_BYTES);
        let mut entries = Vec::with_capacity(new.len());
        for (timestamp, offset) in new {
            let relative_offset = (offset - self.base_offset) as u32;
            buf.extend_from_slice(&timestamp.to_be_bytes());
            buf.extend_from_slice(&relative_offset.to_be_bytes());
            entries.push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
        self.file.append(&buf)?;
        self.entries.extend(entries);
        Ok(())
    }

    /// Cuts the file back to the entries in memory.
    pub fn truncate_file(&mut self) -> std::io::Result<()> {
        self.file
            .set_len((self.entries.len() * TIME_INDEX_ENTRY_BYTES) as u64)
    }

    /// Drops entries whose batch offset is ≥ `offset`.
    pub fn truncate_to_offset(&mut self, offset: i64) -> std::io::Result<()> {
        let keep = self
            .entries
            .partition_point(|e| self.base_offset + i64::from(e.relative_offset) < offset);
        self.entries.truncate(keep);
        self.truncate_file()
    }

    /// The entry to start a timestamp search from: greatest timestamp ≤ `ts`.
    pub fn lookup(&self, ts: i64) -> Option<TimeEntry> {
        floor_entry(&self.entries, ts)
    }

    /// Writes entries the file buffers to disk, without fsync.
    pub fn write_buffered(&self) -> std::io::Result<()> {
        self.file.write_buffered()
    }

    /// Fsyncs the file.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn floor_entry_returns_greatest_timestamp_not_above_target(
            stamps in proptest::collection::btree_set(-5i64..10_000, 0..200),
            target in -10i64..10_500,
        ) {
            let entries: Vec<TimeEntry> = stamps.into_iter().enumerate()
                .map(|(i, t)| TimeEntry { timestamp: t, relative_offset: i as u32 }).collect();
            let expected = entries.iter().rev().find(|e| e.timestamp <= target).copied();
            prop_assert_eq!(floor_entry(&entries, target), expected);
        }
    }

    fn index_in(dir: &std::path::Path, max: u64) -> TimeIndex {
        let f = crate::io::StdFile::open(&dir.join("t.timeindex")).unwrap();
        TimeIndex::new(Box::new(f), 1000, max)
    }

    #[test]
    fn only_increasing_timestamps_are_appended_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = index_in(dir.path(), 1200);
        t.append(&[(50, 1000), (40, 1001), (60, 1005), (60, 1006)], false)
            .unwrap();
        assert_eq!(t.entries.len(), 2);
        let mut again = index_in(dir.path(), 1200);
        again.load().unwrap().unwrap();
        assert_eq!(
            again.last().map(|e| (e.timestamp, again.offset_of(e))),
            Some((60, 1005))
        );
        assert_eq!(again.lookup(55).map(|e| e.timestamp), Some(50));
        assert_eq!(again.lookup(49), None);
    }

    #[test]
    fn decreasing_timestamps_on_disk_fail_sanity_check() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for (ts, off) in [(10i64, 0u32), (5, 1)] {
            bytes.extend_from_slice(&ts.to_be_bytes());
            bytes.extend_from_slice(&off.to_be_bytes());
        }
        std::fs::write(dir.path().join("t.timeindex"), bytes).unwrap();
        assert!(index_in(dir.path(), 1200).load().unwrap().is_err());
    }

    #[test]
    fn truncate_to_offset_drops_entries_at_or_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = index_in(dir.path(), 1200);
        t.append(&[(1, 1000), (2, 1010), (3, 1020)], false).unwrap();
        t.truncate_to_offset(1010).unwrap();
        assert_eq!(t.entries.len(), 1);
    }
}
