//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod batch;
pub mod compact;
pub mod txn;

use std::path::Path;

use strom_storage::{AppendInfo, LogConfig, PartitionLog};

/// A fixed "now" for tests that do not care about time.
pub const NOW: i64 = 1_700_000_000_000;

/// Small segments and dense indexes, so tests exercise rolls and index lookups.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

pub fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config, true, NOW).expect("open")
}

pub fn reopen_unclean(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config, false, NOW).expect("open unclean")
}

/// Appends `n` records of `value_len` bytes with timestamp `ts` as one batch.
pub fn append_plain(log: &mut PartitionLog, n: usize, value_len: usize, ts: i64) -> AppendInfo {
    let mut b = batch::plain(n, value_len, ts);
    log.append(&mut b, 0, None, NOW).expect("append")
}

/// Reads everything from `offset` to the log end, across segments.
pub fn read_all(log: &PartitionLog, mut offset: i64) -> Vec<u8> {
    let mut out = Vec::new();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20, i64::MAX, true).expect("read");
        assert!(r.next_offset > offset, "read made no progress at {offset}");
        out.extend_from_slice(&r.records);
        offset = r.next_offset;
    }
    out
}

/// `(base offset, last offset)` of every batch in `bytes`.
pub fn batch_ranges(bytes: &[u8]) -> Vec<(i64, i64)> {
    strom_protocol::records::BatchIter::new(bytes)
        .map(|b| {
            let (h, _) = b.expect("whole batches");
            (h.base_offset, h.last_offset())
        })
        .collect()
}
