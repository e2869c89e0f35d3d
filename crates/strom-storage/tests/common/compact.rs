//! Keyed batches and record-level reads for the compaction tests.

use bytes::Bytes;
use strom_protocol::records::{decode_batch, BatchIter, Compression, RecordBatchBuilder};
use strom_storage::{AppendInfo, LogConfig, PartitionLog};

use super::NOW;

pub const DAY: i64 = 24 * 60 * 60 * 1000;

/// A compact-only log with dense indexes; segments roll only when tests say so.
pub fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 128,
        retention_ms: -1,
        cleanup_policy_compact: true,
        cleanup_policy_delete: false,
        ..LogConfig::default()
    }
}

/// `(key, value)`; `None` value = tombstone.
pub type Kv<'a> = (&'a str, Option<&'a str>);

/// One batch of keyed records at timestamps `ts, ts+1, …`.
pub fn kv_batch(records: &[Kv], ts: i64, codec: Compression) -> Vec<u8> {
    kv_batch_with(RecordBatchBuilder::new(codec), records, ts)
}

pub fn kv_batch_with(mut builder: RecordBatchBuilder, records: &[Kv], ts: i64) -> Vec<u8> {
    for (i, (k, v)) in records.iter().enumerate() {
        builder.push(
            ts + i as i64,
            Some(Bytes::copy_from_slice(k.as_bytes())),
            v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            vec![],
        );
    }
    builder.build().unwrap().to_vec()
}

pub fn append_kv(log: &mut PartitionLog, records: &[Kv]) -> AppendInfo {
    let mut b = kv_batch(records, NOW, Compression::None);
    log.append(&mut b, 0, None, NOW).expect("append")
}

/// One stored record as a consumer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<String>,
    pub timestamp: i64,
}

/// Reads every batch from the log start to the log end offset. Stops early if
/// the rest of the log is a gap left by compaction.
pub fn read_batches(log: &PartitionLog) -> Vec<u8> {
    let mut offset = log.log_start_offset();
    let mut out = Vec::new();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20, i64::MAX, true).expect("read");
        if r.next_offset <= offset {
            break;
        }
        out.extend_from_slice(&r.records);
        offset = r.next_offset;
    }
    out
}

/// Every record from the log start, decoded.
pub fn read_records(log: &PartitionLog) -> Vec<Seen> {
    decode_all(&read_batches(log))
}

pub fn decode_all(bytes: &[u8]) -> Vec<Seen> {
    let mut out = Vec::new();
    for item in BatchIter::new(bytes) {
        let (_, range) = item.expect("whole batches");
        let (h, records) =
            decode_batch(&Bytes::copy_from_slice(&bytes[range]), 1 << 24).expect("valid batch");
        for r in records {
            out.push(Seen {
                offset: r.offset(&h),
                key: r
                    .key
                    .as_ref()
                    .map(|k| String::from_utf8(k.to_vec()).unwrap()),
                value: r
                    .value
                    .as_ref()
                    .map(|v| String::from_utf8(v.to_vec()).unwrap()),
                timestamp: r.timestamp(&h),
            });
        }
    }
    out
}

/// `(offset, key, value)` triples, for compact assertions.
pub fn kvs(seen: &[Seen]) -> Vec<(i64, String, Option<String>)> {
    seen.iter()
        .map(|s| (s.offset, s.key.clone().unwrap_or_default(), s.value.clone()))
        .collect()
}
