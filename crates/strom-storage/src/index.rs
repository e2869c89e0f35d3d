//! The sparse offset index of a segment (`<base>.index`).
//!
//! On disk, as Kafka: 8-byte entries, a 4-byte offset relative to the segment's
//! base offset and a 4-byte position in the `.log` file, both big-endian. An
//! entry is added every `index.interval.bytes` of log and names the *base offset*
//! of the batch starting at that position (Kafka writes the batch's last offset;
//! either satisfies "entry offset ≤ every offset in the batches from here on",
//! which is all lookups rely on).
//!
//! The file is append-only (no mmap: the workspace forbids `unsafe`); the entries
//! are also kept in memory for binary search: 8 bytes per entry, at most
//! `segment.index.bytes` per segment.

use crate::io::SegmentFile;

/// Bytes per offset index entry.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;

/// One entry: offset relative to the segment base, byte position in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Offset minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment's `.log` file.
    pub position: u32,
}

/// The greatest entry whose relative offset is ≤ `target`, if any.
pub fn floor_entry(entries: &[OffsetEntry], target: u32) -> Option<OffsetEntry> {
    let n = entries.partition_point(|e| e.relative_offset <= target);
    n.checked_sub(1).map(|i| entries[i])
}

/// A segment's offset index: the file plus its entries in memory.
#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: i64,
    file: Box<dyn SegmentFile>,
    entries: Vec<OffsetEntry>,
    max_entries: usize,
}

impl OffsetIndex {
    /// Wraps `file` without reading it; call [`OffsetIndex::load`] or [`OffsetIndex::reset`].
    pub fn new(file: Box<dyn SegmentFile>, base_offset: i64, max_index_bytes: u64) -> Self {
        OffsetIndex {
            base_offset,
            file,
            entries: Vec::new(),
            max_entries: (max_index_bytes / OFFSET_INDEX_ENTRY_BYTES as u64) as usize,
        }
    }

    /// Reads the file and sanity-checks it against a log of `log_len` bytes.
    /// `Ok(Err(reason))` means the index must be rebuilt.
    pub fn load(&mut self, log_len: u64) -> std::io::Result<Result<(), String>> {
        self.entries.clear();
        let len = self.file.size()?;
        if len % OFFSET_INDEX_ENTRY_BYTES as u64 != 0 {
            return Ok(Err(format!(
                "offset index length {len} is not a multiple of 8"
            )));
        }
        if len / OFFSET_INDEX_ENTRY_BYTES as u64 > self.max_entries as u64 {
            return Ok(Err(format!(
                "offset index length {len} exceeds segment.index.bytes"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buf, 0)?;
        let mut prev: Option<OffsetEntry> = None;
        for chunk in buf.chunks_exact(OFFSET_INDEX_ENTRY_BYTES) {
            let e = OffsetEntry {
                relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            };
            if e.relative_offset > i32::MAX as u32 || u64::from(e.position) >= log_len {
                return Ok(Err(format!("offset index entry {e:?} beyond the log")));
            }
            if let Some(p) = prev {
                if e.relative_offset <= p.relative_offset || e.position <= p.position {
                    return Ok(Err(format!("offset index entries not increasing at {e:?}")));
                }
            }
            prev = Some(e);
            self.entries.push(e);
        }
        Ok(Ok(()))
    }

    /// Empties the index and its file (before a rebuild).
    pub fn reset(&mut self) -> std::io::Result<()> {
        self.entries.clear();
        self.file.set_len(0)
    }

    /// Whether no further entry fits in `segment.index.bytes`.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// Entries held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// Appends entries (absolute offsets) to the file, then to memory. Entries
    /// that do not fit are dropped (the index just gets sparser; the segment
    /// rolls at the next append). On error the file may hold a partial entry;
    /// the caller truncates it with [`OffsetIndex::truncate_file`].
    pub fn append(&mut self, new: &[(i64, u32)]) -> std::io::Result<()> {
        let room = self.max_entries.saturating_sub(self.entries.len());
        let new = &new[..new.len().min(room)];
        if new.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(new.len() * OFFSET_INDEX_ENTRY_BYTES);
        let mut entries = Vec::with_capacity(new.len());
        for &(offset, position) in new {
            let relative_offset = (offset - self.base_offset) as u32;
            debug_assert!(self
                .last()
                .is_none_or(|l| l.relative_offset < relative_offset));
            buf.extend_from_slice(&relative_offset.to_be_bytes());
            buf.extend_from_slice(&position.to_be_bytes());
            entries.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        self.file.append(&buf)?;
        self.entries.extend(entries);
        Ok(())
    }

    /// Cuts the file back to the entries in memory (after a failed append).
    pub fn truncate_file(&mut self) -> std::io::Result<()> {
        self.file
            .set_len((self.entries.len() * OFFSET_INDEX_ENTRY_BYTES) as u64)
    }

    /// `(offset, position)` of the greatest entry with offset ≤ `offset`, or the
    /// segment start.
    pub fn lookup(&self, offset: i64) -> (i64, u64) {
        let relative = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        match floor_entry(&self.entries, relative) {
            Some(e) => (
                self.base_offset + i64::from(e.relative_offset),
                u64::from(e.position),
            ),
            None => (self.base_offset, 0),
        }
    }

    /// `(offset, position)` of the greatest entry at or below both
    /// `max_position` and `max_offset`: a batch boundary before which every
    /// batch ends within both bounds.
    pub fn floor_within(&self, max_position: u64, max_offset: i64) -> Option<(i64, u64)> {
        let by_position = self
            .entries
            .partition_point(|e| u64::from(e.position) <= max_position);
        let by_offset = self
            .entries
            .partition_point(|e| self.base_offset + i64::from(e.relative_offset) <= max_offset);
        let e = self.entries[..by_position.min(by_offset)].last()?;
        Some((
            self.base_offset + i64::from(e.relative_offset),
            u64::from(e.position),
        ))
    }

    /// Drops entries at or after `position` (the log is being truncated there).
    pub fn truncate_to_position(&mut self, position: u64) -> std::io::Result<()> {
        let keep = self
            .entries
            .partition_point(|e| u64::from(e.position) < position);
        self.entries.truncate(keep);
        self.truncate_file()
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
        fn floor_entry_returns_greatest_entry_not_above_target(
            mut offsets in proptest::collection::btree_set(0u32..10_000, 0..200),
            target in 0u32..10_500,
        ) {
            let entries: Vec<OffsetEntry> = std::mem::take(&mut offsets)
                .into_iter()
                .enumerate()
                .map(|(i, o)| OffsetEntry { relative_offset: o, position: i as u32 * 10 })
                .collect();
            let expected = entries.iter().rev().find(|e| e.relative_offset <= target).copied();
            prop_assert_eq!(floor_entry(&entries, target), expected);
        }
    }

    fn index_in(dir: &std::path::Path, base: i64, max_bytes: u64) -> OffsetIndex {
        let file = crate::io::StdFile::open(&dir.join("i.index")).unwrap();
        OffsetIndex::new(Box::new(file), base, max_bytes)
    }

    #[test]
    fn entries_survive_reload_and_lookup_is_floor() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = index_in(dir.path(), 100, 1024);
        idx.append(&[(110, 4000), (130, 8000)]).unwrap();
        assert_eq!(idx.lookup(99), (100, 0));
        assert_eq!(idx.lookup(109), (100, 0));
        assert_eq!(idx.lookup(110), (110, 4000));
        assert_eq!(idx.lookup(129), (110, 4000));
        assert_eq!(idx.lookup(1000), (130, 8000));
        let mut again = index_in(dir.path(), 100, 1024);
        again.load(10_000).unwrap().unwrap();
        assert_eq!(again.len(), 2);
        assert_eq!(again.lookup(131), (130, 8000));
    }

    #[test]
    fn entry_beyond_log_length_fails_sanity_check() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = index_in(dir.path(), 0, 1024);
        idx.append(&[(5, 4000)]).unwrap();
        let mut again = index_in(dir.path(), 0, 1024);
        assert!(again.load(4000).unwrap().is_err());
        assert!(again.load(4001).unwrap().is_ok());
    }

    #[test]
    fn partial_entry_fails_sanity_check() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("i.index"), [0u8; 9]).unwrap();
        let mut idx = index_in(dir.path(), 0, 1024);
        assert!(idx.load(1 << 20).unwrap().is_err());
    }

    #[test]
    fn full_index_drops_entries_and_reports_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = index_in(dir.path(), 0, 16);
        idx.append(&[(1, 10), (2, 20), (3, 30)]).unwrap();
        assert_eq!(idx.len(), 2);
        assert!(idx.is_full());
    }

    #[test]
    fn truncate_to_position_drops_later_entries_in_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = index_in(dir.path(), 0, 1024);
        idx.append(&[(1, 10), (2, 20), (3, 30)]).unwrap();
        idx.truncate_to_position(20).unwrap();
        assert_eq!(idx.len(), 1);
        let mut again = index_in(dir.path(), 0, 1024);
        again.load(100).unwrap().unwrap();
        assert_eq!(again.len(), 1);
    }
}
