//! Producer-state snapshots: `<offset>.snapshot` holds the producer table as of
//! offset `offset` (every batch below it applied). Written when a segment rolls
//! and on close; the latest two are kept.
//!
//! Format (big-endian), Strom's own: `version: u16 = 1`, `crc32c: u32` of
//! everything after it, `count: u32`, then per producer: `producer_id i64`,
//! `producer_epoch i16`, `coordinator_epoch i32`, `last_timestamp i64`,
//! `current_txn_first_offset i64` (-1 = none), `batch_count u8` (≤ 5), and per
//! batch `first_seq i32, last_seq i32, first_offset i64, last_offset i64,
//! timestamp i64`. Unlike Kafka (which keeps only the last batch), all five
//! cached batches survive a restart, so duplicate detection does too.

use std::collections::VecDeque;
use std::fs;
use std::path::Path;

use crate::checkpoint::{
    offset_file, parse_offset_file_name, remove_file_if_exists, write_atomic, SNAPSHOT_EXT,
};
use crate::error::StorageError;
use crate::producer_state::{
    BatchMetadata, ProducerStateEntry, ProducerStateManager, MAX_CACHED_BATCHES,
};

/// Current snapshot format version.
const SNAPSHOT_VERSION: u16 = 1;
/// Snapshots kept after a new one is written.
pub const SNAPSHOTS_RETAINED: usize = 2;
/// Bytes of one producer entry without its batches.
const ENTRY_BYTES: usize = 8 + 2 + 4 + 8 + 8 + 1;

/// Serializes the table.
pub fn encode(state: &ProducerStateManager) -> Vec<u8> {
    let mut body = Vec::new();
    let mut entries: Vec<&ProducerStateEntry> = state.entries().collect();
    entries.sort_by_key(|e| e.producer_id);
    body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        body.extend_from_slice(&e.producer_id.to_be_bytes());
        body.extend_from_slice(&e.producer_epoch.to_be_bytes());
        body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        body.extend_from_slice(&e.last_timestamp.to_be_bytes());
        body.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
        body.push(e.batches.len() as u8);
        for b in &e.batches {
            body.extend_from_slice(&b.first_seq.to_be_bytes());
            body.extend_from_slice(&b.last_seq.to_be_bytes());
            body.extend_from_slice(&b.first_offset.to_be_bytes());
            body.extend_from_slice(&b.last_offset.to_be_bytes());
            body.extend_from_slice(&b.timestamp.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(6 + body.len());
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.buf.len() < N {
            return Err("snapshot truncated".into());
        }
        let (head, rest) = self.buf.split_at(N);
        self.buf = rest;
        let mut a = [0u8; N];
        a.copy_from_slice(head);
        Ok(a)
    }
    fn i16(&mut self) -> Result<i16, String> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Result<i64, String> {
        self.take().map(i64::from_be_bytes)
    }
}

/// Parses a snapshot, rejecting unknown versions, CRC mismatches and any
/// inconsistency (never panics, never allocates beyond the input's size).
pub fn decode(bytes: &[u8]) -> Result<ProducerStateManager, String> {
    if bytes.len() < 10 {
        return Err("snapshot too short".into());
    }
    let version = u16::from_be_bytes([bytes[0], bytes[1]]);
    if version != SNAPSHOT_VERSION {
        return Err(format!("unknown snapshot version {version}"));
    }
    let stored = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    let body = &bytes[6..];
    if crc32c::crc32c(body) != stored {
        return Err("snapshot CRC mismatch".into());
    }
    let mut r = Reader { buf: body };
    let count = u32::from_be_bytes(r.take()?) as usize;
    if count > r.buf.len() / ENTRY_BYTES {
        return Err(format!("snapshot claims {count} producers"));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let producer_id = r.i64()?;
        let producer_epoch = r.i16()?;
        let coordinator_epoch = r.i32()?;
        let last_timestamp = r.i64()?;
        let txn = r.i64()?;
        let n = r.take::<1>()?[0] as usize;
        if n > MAX_CACHED_BATCHES || producer_id < 0 {
            return Err(format!("bad snapshot entry for producer {producer_id}"));
        }
        let mut batches = VecDeque::with_capacity(n);
        for _ in 0..n {
            batches.push_back(BatchMetadata {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                first_offset: r.i64()?,
                last_offset: r.i64()?,
                timestamp: r.i64()?,
            });
        }
        entries.push(ProducerStateEntry {
            producer_id,
            producer_epoch,
            batches,
            last_timestamp,
            coordinator_epoch,
            current_txn_first_offset: (txn >= 0).then_some(txn),
        });
    }
    if !r.buf.is_empty() {
        return Err("trailing bytes in snapshot".into());
    }
    Ok(ProducerStateManager::from_entries(entries))
}

/// Offsets of the snapshot files in `dir`, ascending.
pub fn list(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io("list directory", dir, e))? {
        let entry = entry.map_err(|e| StorageError::io("list directory", dir, e))?;
        if let Some(o) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_offset_file_name(n, SNAPSHOT_EXT))
        {
            out.push(o);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Writes the snapshot for `offset`, then keeps only the latest
/// [`SNAPSHOTS_RETAINED`]. Without `sync` a crash may leave it torn; the CRC
/// then makes loading skip it.
pub fn write(
    dir: &Path,
    offset: i64,
    state: &ProducerStateManager,
    sync: bool,
) -> Result<(), StorageError> {
    write_atomic(
        &offset_file(dir, offset, SNAPSHOT_EXT),
        &encode(state),
        sync,
    )?;
    let all = list(dir)?;
    for old in &all[..all.len().saturating_sub(SNAPSHOTS_RETAINED)] {
        remove_file_if_exists(&offset_file(dir, *old, SNAPSHOT_EXT))?;
    }
    Ok(())
}

/// Deletes snapshots above `offset` (the log was truncated below them).
pub fn delete_above(dir: &Path, offset: i64) -> Result<(), StorageError> {
    for o in list(dir)?.into_iter().filter(|o| *o > offset) {
        remove_file_if_exists(&offset_file(dir, o, SNAPSHOT_EXT))?;
    }
    Ok(())
}

/// Deletes every snapshot (the log was emptied).
pub fn delete_all(dir: &Path) -> Result<(), StorageError> {
    for o in list(dir)? {
        remove_file_if_exists(&offset_file(dir, o, SNAPSHOT_EXT))?;
    }
    Ok(())
}

/// The newest readable snapshot at or below `max_offset` and its offset.
/// Unreadable ones are logged and deleted.
pub fn load_latest(
    dir: &Path,
    max_offset: i64,
) -> Result<Option<(i64, ProducerStateManager)>, StorageError> {
    for offset in list(dir)?.into_iter().rev().filter(|o| *o <= max_offset) {
        let path = offset_file(dir, offset, SNAPSHOT_EXT);
        let result = fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| decode(&b));
        match result {
            Ok(state) => return Ok(Some((offset, state))),
            Err(reason) => {
                tracing::warn!(snapshot = %path.display(), %reason, "ignoring unreadable producer snapshot");
                remove_file_if_exists(&path)?;
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ProducerStateManager {
        let mut batches = VecDeque::new();
        batches.push_back(BatchMetadata {
            first_seq: 0,
            last_seq: 4,
            first_offset: 10,
            last_offset: 14,
            timestamp: 99,
        });
        ProducerStateManager::from_entries([ProducerStateEntry {
            producer_id: 5,
            producer_epoch: 2,
            batches,
            last_timestamp: 99,
            coordinator_epoch: -1,
            current_txn_first_offset: None,
        }])
    }

    #[test]
    fn snapshot_round_trips() {
        let s = sample();
        assert_eq!(decode(&encode(&s)).unwrap(), s);
    }

    #[test]
    fn open_transactions_and_coordinator_epochs_survive_in_the_version_1_layout() {
        let entry = ProducerStateEntry {
            producer_id: 5,
            producer_epoch: 2,
            batches: VecDeque::new(),
            last_timestamp: 99,
            coordinator_epoch: 7,
            current_txn_first_offset: Some(1234),
        };
        let state = ProducerStateManager::from_entries([entry]);
        let bytes = encode(&state);
        // The layout the module docs describe, which files already on disk use.
        let mut body = Vec::new();
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&5i64.to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(&7i32.to_be_bytes());
        body.extend_from_slice(&99i64.to_be_bytes());
        body.extend_from_slice(&1234i64.to_be_bytes());
        body.push(0);
        assert_eq!(&bytes[..2], &1u16.to_be_bytes());
        assert_eq!(&bytes[6..], &body[..]);
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded, state);
        assert_eq!(decoded.first_ongoing_txn_offset(), Some(1234));
    }

    #[test]
    fn every_single_byte_corruption_is_rejected_without_panic() {
        let bytes = encode(&sample());
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(decode(&b).is_err(), "flip at {i} accepted");
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err());
        }
    }

    #[test]
    fn only_latest_two_snapshots_are_kept_and_corrupt_ones_skipped() {
        let dir = tempfile::tempdir().unwrap();
        for o in [10, 20, 30] {
            write(dir.path(), o, &sample(), false).unwrap();
        }
        assert_eq!(list(dir.path()).unwrap(), vec![20, 30]);
        fs::write(offset_file(dir.path(), 30, SNAPSHOT_EXT), b"garbage").unwrap();
        let (offset, _) = load_latest(dir.path(), 100).unwrap().unwrap();
        assert_eq!(offset, 20);
        assert_eq!(load_latest(dir.path(), 19).unwrap(), None);
    }
}
