//! The aborted-transaction index of a segment (`<base>.txnindex`), Kafka's
//! `TransactionIndex`.
//!
//! On disk, as Kafka: 34-byte entries, big-endian — `version i16 = 0`,
//! `producer_id i64`, `first_offset i64`, `last_offset i64`,
//! `last_stable_offset i64` — one per ABORT marker in the segment, in marker
//! order, so `last_offset` (the marker's offset) strictly increases. A
//! read_committed fetch asks for the entries overlapping its range
//! ([`crate::PartitionLog::aborted_transactions`]) so that the consumer can
//! drop the aborted records it was sent.
//!
//! Unlike Kafka, which creates the file on the first abort, every segment has
//! one from its creation (usually empty): a missing file then means a lost
//! file, and the index is rebuilt from the log instead of silently reading as
//! "nothing aborted" (which would show aborted records to read_committed
//! consumers).
//!
//! The entries are also kept in memory: 32 bytes per aborted transaction. A
//! marker batch takes at least 61 bytes of log, so a segment's entries never
//! need more memory than about half its log size (the pathological case of a
//! segment holding nothing but abort markers); real logs need far less.

use std::io;

use strom_protocol::records::BATCH_HEADER_LEN;

use crate::io::SegmentFile;

/// Bytes per entry of a `.txnindex` file (Kafka's `AbortedTxn.TOTAL_SIZE`).
pub const ABORTED_TXN_ENTRY_BYTES: usize = 34;
/// The entry version Kafka writes and reads.
const ABORTED_TXN_VERSION: i16 = 0;
/// Entries read per chunk while loading, so loading a large index needs a
/// bounded buffer (about 136 KiB) on top of the entries themselves.
const LOAD_CHUNK_ENTRIES: usize = 4096;

/// One aborted transaction (Kafka's `AbortedTxn`): what a read_committed
/// consumer needs to skip its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    /// The last stable offset right after the marker was written: the first
    /// offset of the earliest transaction still open, else `last_offset + 1`.
    /// A search for aborted transactions below an upper bound stops at the
    /// first entry whose value reaches the bound: no later marker can abort a
    /// transaction that started below it.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// Appends the 34-byte on-disk form to `out`.
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&ABORTED_TXN_VERSION.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.last_stable_offset.to_be_bytes());
    }

    /// Parses one entry; `Err` names what is wrong with it.
    fn decode(b: &[u8]) -> Result<AbortedTxn, String> {
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(a)
        };
        let version = i16::from_be_bytes([b[0], b[1]]);
        if version != ABORTED_TXN_VERSION {
            return Err(format!("unknown aborted transaction version {version}"));
        }
        let txn = AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        };
        if txn.producer_id < 0
            || txn.first_offset < 0
            || txn.first_offset > txn.last_offset
            || txn.last_stable_offset < 0
        {
            return Err(format!("invalid aborted transaction entry {txn:?}"));
        }
        Ok(txn)
    }
}

/// A segment's aborted-transaction index: the file plus its entries in memory.
#[derive(Debug)]
pub struct TransactionIndex {
    file: Box<dyn SegmentFile>,
    /// Ordered by strictly increasing `last_offset`.
    entries: Vec<AbortedTxn>,
    /// The file changed since the last fsync. Most segments never abort a
    /// transaction; tracking this spares them an fsync per flush.
    dirty: bool,
}

impl TransactionIndex {
    /// Wraps `file` without reading it; call [`TransactionIndex::load`] or
    /// [`TransactionIndex::reset`].
    pub fn new(file: Box<dyn SegmentFile>) -> Self {
        TransactionIndex {
            file,
            entries: Vec::new(),
            dirty: false,
        }
    }

    /// Reads and checks the file of a segment starting at `base_offset` whose
    /// log holds `log_len` bytes. `Ok(Err(reason))` means the index must be
    /// rebuilt; nothing larger than the log could justify is read.
    pub fn load(&mut self, base_offset: i64, log_len: u64) -> io::Result<Result<(), String>> {
        self.entries.clear();
        let len = self.file.size()?;
        let entry = ABORTED_TXN_ENTRY_BYTES as u64;
        if len % entry != 0 {
            return Ok(Err(format!(
                "transaction index length {len} is not a multiple of {entry}"
            )));
        }
        // Every entry stands for a marker batch of the segment.
        let max_entries = log_len / BATCH_HEADER_LEN as u64;
        if len / entry > max_entries {
            return Ok(Err(format!(
                "transaction index has {} entries for a {log_len}-byte log",
                len / entry
            )));
        }
        let mut buf = vec![0u8; (len as usize).min(LOAD_CHUNK_ENTRIES * ABORTED_TXN_ENTRY_BYTES)];
        let mut pos = 0u64;
        while pos < len {
            let n = ((len - pos) as usize).min(buf.len());
            self.file.read_exact_at(&mut buf[..n], pos)?;
            for chunk in buf[..n].chunks_exact(ABORTED_TXN_ENTRY_BYTES) {
                let txn = match AbortedTxn::decode(chunk) {
                    Ok(t) => t,
                    Err(reason) => {
                        self.entries.clear();
                        return Ok(Err(reason));
                    }
                };
                let in_order = self
                    .entries
                    .last()
                    .is_none_or(|l| l.last_offset < txn.last_offset);
                if txn.last_offset < base_offset || !in_order {
                    self.entries.clear();
                    return Ok(Err(format!(
                        "aborted transaction {txn:?} out of order or below the segment"
                    )));
                }
                self.entries.push(txn);
            }
            pos += n as u64;
        }
        Ok(Ok(()))
    }

    /// Empties the index and its file (before a rebuild).
    pub fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        if self.file.size()? > 0 {
            self.dirty = true;
            self.file.set_len(0)?;
        }
        Ok(())
    }

    /// Appends entries to the file, then to memory. Each must end after the
    /// last one held. On error the file is cut back to the entries in memory
    /// (if that fails too the error is returned all the same and the caller
    /// must treat the file as unknown).
    pub fn append(&mut self, new: &[AbortedTxn]) -> io::Result<()> {
        if new.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(new.len() * ABORTED_TXN_ENTRY_BYTES);
        let mut last = self.entries.last().map(|e| e.last_offset);
        for txn in new {
            debug_assert!(last.is_none_or(|l| l < txn.last_offset));
            debug_assert!(txn.first_offset <= txn.last_offset);
            last = Some(txn.last_offset);
            txn.encode(&mut buf);
        }
        self.dirty = true;
        // Written at once even where the file buffers appends: aborts are
        // rare, and the entry then survives a process crash like the marker.
        if let Err(e) = self
            .file
            .append(&buf)
            .and_then(|()| self.file.write_buffered())
        {
            let _ = self.truncate_file();
            return Err(e);
        }
        self.entries.extend_from_slice(new);
        Ok(())
    }

    fn truncate_file(&mut self) -> io::Result<()> {
        self.file
            .set_len((self.entries.len() * ABORTED_TXN_ENTRY_BYTES) as u64)
    }

    /// Drops the entries whose marker is at or after `offset` (the log is
    /// being truncated there).
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.dirty = true;
        self.truncate_file()
    }

    /// The entries, ordered by marker offset.
    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Adds to `out` the entries that overlap `[start_offset, upper_bound_offset)`
    /// — marker at or after the start, first offset below the bound — and
    /// returns whether the search is complete: an entry's last stable offset
    /// reached the bound, so later segments cannot hold more (Kafka's
    /// `TransactionIndex.collectAbortedTxns`).
    pub fn collect(
        &self,
        start_offset: i64,
        upper_bound_offset: i64,
        out: &mut Vec<AbortedTxn>,
    ) -> bool {
        let from = self
            .entries
            .partition_point(|e| e.last_offset < start_offset);
        for txn in &self.entries[from..] {
            if txn.first_offset < upper_bound_offset {
                out.push(*txn);
            }
            if txn.last_stable_offset >= upper_bound_offset {
                return true;
            }
        }
        false
    }

    /// Writes entries the file buffers to disk, without fsync.
    pub fn write_buffered(&self) -> io::Result<()> {
        self.file.write_buffered()
    }

    /// Fsyncs the file if it changed since the last fsync.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::StdFile;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    fn open(path: &std::path::Path) -> TransactionIndex {
        TransactionIndex::new(Box::new(StdFile::open(path).unwrap()))
    }

    proptest::proptest! {
        #[test]
        fn any_valid_entry_round_trips(
            producer_id in 0i64..=i64::MAX,
            first_offset in 0i64..i64::MAX / 2,
            len in 0i64..i64::MAX / 2,
            last_stable_offset in 0i64..=i64::MAX,
        ) {
            let t = AbortedTxn { producer_id, first_offset, last_offset: first_offset + len, last_stable_offset };
            let mut buf = Vec::new();
            t.encode(&mut buf);
            proptest::prop_assert_eq!(AbortedTxn::decode(&buf), Ok(t));
        }
    }

    #[test]
    fn entries_use_kafkas_34_byte_big_endian_layout() {
        let mut buf = Vec::new();
        txn(0x0102, 3, 4, 5).encode(&mut buf);
        assert_eq!(buf.len(), ABORTED_TXN_ENTRY_BYTES);
        assert_eq!(&buf[..2], &[0, 0]);
        assert_eq!(&buf[2..10], &0x0102i64.to_be_bytes());
        assert_eq!(&buf[10..18], &3i64.to_be_bytes());
        assert_eq!(&buf[18..26], &4i64.to_be_bytes());
        assert_eq!(&buf[26..34], &5i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&buf).unwrap(), txn(0x0102, 3, 4, 5));
    }

    #[test]
    fn index_round_trips_through_its_file_and_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txnindex");
        let mut index = open(&path);
        index.reset().unwrap();
        index
            .append(&[txn(1, 100, 105, 106), txn(2, 101, 110, 111)])
            .unwrap();
        index.append(&[txn(1, 120, 130, 125)]).unwrap();
        let mut loaded = open(&path);
        loaded.load(100, 1 << 20).unwrap().unwrap();
        assert_eq!(loaded.entries(), index.entries());
        loaded.truncate_to(110).unwrap();
        assert_eq!(loaded.entries(), &[txn(1, 100, 105, 106)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 34);
    }

    #[test]
    fn collect_applies_the_range_and_stops_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = open(&dir.path().join("t.txnindex"));
        index
            .append(&[
                txn(1, 0, 5, 3),
                txn(2, 3, 8, 9),
                txn(3, 9, 12, 13),
                txn(4, 13, 20, 21),
            ])
            .unwrap();
        let mut out = Vec::new();
        // Entry 1 ends before the start; entry 3 starts at the bound. Entry 2's
        // last stable offset (9) reaches the bound: the search is complete.
        assert!(index.collect(6, 9, &mut out));
        assert_eq!(out, vec![txn(2, 3, 8, 9)]);
        out.clear();
        assert!(!index.collect(0, 100, &mut out));
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn damaged_files_are_rejected_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txnindex");
        let mut good = Vec::new();
        txn(1, 10, 20, 21).encode(&mut good);
        txn(1, 30, 40, 41).encode(&mut good);
        let patched = |at: usize, byte: u8| {
            let mut b = good.clone();
            b[at] = byte;
            b
        };
        let big = 1 << 20;
        let cases: Vec<(&str, Vec<u8>, u64)> = vec![
            ("partial entry", good[..33].to_vec(), big),
            ("more entries than the log allows", good.clone(), 61),
            ("out of order", [&good[34..], &good[..34]].concat(), big),
            ("unknown version", patched(1, 1), big),
            ("negative producer id", patched(2, 0x80), big),
        ];
        for (case, bytes, log_len) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let mut index = open(&path);
            assert!(index.load(0, log_len).unwrap().is_err(), "{case}");
            assert!(index.entries().is_empty());
        }
        std::fs::write(&path, &good).unwrap();
        assert!(
            open(&path).load(25, 1 << 20).unwrap().is_err(),
            "entry below the base"
        );
        open(&path).load(0, 1 << 20).unwrap().unwrap();
    }
}
