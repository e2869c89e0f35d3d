//! Deciding, batch by batch, what the cleaner keeps, and re-encoding batches
//! that lost records (Kafka's `MemoryRecords.filterTo` with the cleaner's
//! retention rules).
//!
//! A rewritten batch keeps its base offset, last offset delta (Kafka's
//! `overrideLastOffset`, so the producer's last sequence survives), producer
//! id/epoch, base sequence, partition leader epoch, timestamp type and codec;
//! the retained records keep their offset deltas and timestamps. Only
//! `records_count`, `max_timestamp` and — when the delete horizon is set —
//! `base_timestamp` and the records' timestamp deltas change.

use std::collections::HashMap;

use bytes::{BufMut, Bytes};
use strom_protocol::records::{
    compress, decode_batch, encode_record, write_crc, BatchHeader, Compression, Record,
    RecordError, TimestampType, BATCH_HEADER_LEN, COMPRESSION_MASK, DELETE_HORIZON_BIT,
    LOG_OVERHEAD, MAGIC_V2, NO_TIMESTAMP,
};

use super::aborted::AbortedBatches;
use super::offset_map::OffsetMap;

/// What one cleaning pass knows when it filters a batch.
pub(crate) struct FilterContext<'a> {
    /// Latest offset per key in the mapped part of the dirty section.
    pub map: &'a OffsetMap,
    /// Records at or above this offset were not mapped and are kept as they are.
    pub map_end: i64,
    /// The pass's clock: tombstones whose horizon is at or before it go.
    pub now_ms: i64,
    /// `delete.retention.ms`: the horizon set on batches first seen with tombstones.
    pub delete_retention_ms: i64,
    /// Cap on one batch's decompressed records; larger batches are kept whole.
    pub max_uncompressed_bytes: usize,
    /// Producer id → last offset of its last data batch, for producers the log
    /// still tracks: that batch is kept (possibly empty) to preserve sequences.
    pub last_batch_of_producer: &'a HashMap<i64, i64>,
    /// Batches of aborted transactions: all their records go.
    pub aborted: &'a AbortedBatches,
}

/// The fate of one batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Filtered {
    /// Keep the stored bytes.
    Unchanged,
    /// Remove the batch entirely.
    Dropped(Removed),
    /// Replace the batch with these bytes.
    Rewritten(Vec<u8>, Removed),
}

/// Records a batch lost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Removed {
    /// Records removed (including tombstones).
    pub records: u64,
    /// Tombstones among them.
    pub tombstones: u64,
    /// Records of an aborted transaction among them.
    pub aborted: u64,
}

impl FilterContext<'_> {
    fn is_last_batch_of_producer(&self, h: &BatchHeader) -> bool {
        h.has_producer_id()
            && self.last_batch_of_producer.get(&h.producer_id) == Some(&h.last_offset())
    }

    /// Kafka's record retention rule: past the map, keep; without a key, drop
    /// (keys are mandatory on compacted topics); otherwise keep only the
    /// latest record of its key, and a tombstone only until its horizon.
    fn keep(&self, record: &Record, offset: i64, horizon_passed: bool) -> bool {
        if offset >= self.map_end {
            return true;
        }
        let Some(key) = &record.key else {
            return false;
        };
        let latest = offset >= self.map.get(key).unwrap_or(-1);
        latest && (record.value.is_some() || !horizon_passed)
    }

    /// Decides what happens to `batch` (whose header is `h`).
    pub fn filter(&self, batch: &[u8], h: &BatchHeader) -> Filtered {
        // Transaction markers are kept as written (see the module docs of
        // `cleaner`); committed transactional data is filtered like any data.
        if h.is_control() || h.base_offset >= self.map_end {
            return Filtered::Unchanged;
        }
        if self.aborted.contains(h) {
            let count = u64::try_from(h.records_count).unwrap_or(0);
            let removed = Removed {
                records: count,
                tombstones: 0,
                aborted: count,
            };
            return if self.is_last_batch_of_producer(h) {
                Filtered::Rewritten(empty_batch(h), removed)
            } else {
                Filtered::Dropped(removed)
            };
        }
        if h.records_count == 0 {
            return if self.is_last_batch_of_producer(h) {
                Filtered::Unchanged
            } else {
                Filtered::Dropped(Removed::default())
            };
        }
        let records = match decode_batch(
            &Bytes::copy_from_slice(batch),
            self.max_uncompressed_bytes,
        ) {
            Ok((_, records)) => records,
            Err(error) => {
                tracing::warn!(base_offset = h.base_offset, %error, "cleaner keeps an undecodable batch as it is");
                return Filtered::Unchanged;
            }
        };
        let horizon_passed = h.has_delete_horizon() && self.now_ms >= h.base_timestamp;
        let mut removed = Removed::default();
        let mut kept = Vec::with_capacity(records.len());
        for record in records {
            if self.keep(&record, record.offset(h), horizon_passed) {
                kept.push(record);
            } else {
                removed.records += 1;
                removed.tombstones += u64::from(record.value.is_none());
            }
        }
        let set_horizon = !h.has_delete_horizon() && kept.iter().any(|r| r.value.is_none());
        if removed.records == 0 && !set_horizon {
            return Filtered::Unchanged;
        }
        if kept.is_empty() {
            return if self.is_last_batch_of_producer(h) {
                Filtered::Rewritten(empty_batch(h), removed)
            } else {
                Filtered::Dropped(removed)
            };
        }
        let horizon = set_horizon.then(|| self.now_ms.saturating_add(self.delete_retention_ms));
        match rebuild(h, &kept, horizon) {
            Ok(bytes) => Filtered::Rewritten(bytes, removed),
            Err(error) => {
                tracing::warn!(base_offset = h.base_offset, %error, "cleaner could not re-encode a batch; keeping it");
                Filtered::Unchanged
            }
        }
    }
}

/// Writes the 61-byte header followed by `section` and fills in length and CRC.
fn assemble(
    h: &BatchHeader,
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    records_count: i32,
    section: &[u8],
) -> Result<Vec<u8>, RecordError> {
    let batch_length = i32::try_from(BATCH_HEADER_LEN - LOG_OVERHEAD + section.len())
        .map_err(|_| RecordError::InvalidRecord("batch larger than i32::MAX bytes"))?;
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + section.len());
    out.put_i64(h.base_offset);
    out.put_i32(batch_length);
    out.put_i32(h.partition_leader_epoch);
    out.put_i8(MAGIC_V2);
    out.put_u32(0); // CRC, written last
    out.put_i16(attributes);
    out.put_i32(h.last_offset_delta);
    out.put_i64(base_timestamp);
    out.put_i64(max_timestamp);
    out.put_i64(h.producer_id);
    out.put_i16(h.producer_epoch);
    out.put_i32(h.base_sequence);
    out.put_i32(records_count);
    debug_assert_eq!(out.len(), BATCH_HEADER_LEN);
    out.put_slice(section);
    write_crc(&mut out);
    Ok(out)
}

/// The batch with only `kept` records, same codec; with `horizon`, the delete
/// horizon goes into `base_timestamp` (KIP-534) and the timestamp deltas are
/// re-based on it so every record keeps its timestamp.
fn rebuild(h: &BatchHeader, kept: &[Record], horizon: Option<i64>) -> Result<Vec<u8>, RecordError> {
    let codec = h.compression()?;
    let base_timestamp = horizon.unwrap_or(h.base_timestamp);
    let mut section = Vec::new();
    let mut max_timestamp = NO_TIMESTAMP;
    for record in kept {
        // The create time as written, whatever the timestamp type.
        let timestamp = h.base_timestamp.wrapping_add(record.timestamp_delta);
        max_timestamp = max_timestamp.max(timestamp);
        let rebased = Record {
            timestamp_delta: timestamp.wrapping_sub(base_timestamp),
            ..record.clone()
        };
        encode_record(&rebased, &mut section)?;
    }
    if h.timestamp_type() == TimestampType::LogAppendTime {
        max_timestamp = h.max_timestamp;
    }
    let section = if codec == Compression::None {
        section
    } else {
        compress(codec, &section)?
    };
    let mut attributes = h.attributes;
    if horizon.is_some() {
        attributes |= DELETE_HORIZON_BIT;
    }
    let count = i32::try_from(kept.len()).expect("fewer records than the original batch");
    assemble(
        h,
        attributes,
        base_timestamp,
        max_timestamp,
        count,
        &section,
    )
}

/// An empty batch standing in for `h` (Kafka's `writeEmptyHeader`): same
/// offsets, producer id, epoch and base sequence, so replaying it restores the
/// producer's last sequence; no records, no codec, no base timestamp.
pub(crate) fn empty_batch(h: &BatchHeader) -> Vec<u8> {
    let attributes = h.attributes & !(COMPRESSION_MASK | DELETE_HORIZON_BIT);
    assemble(h, attributes, NO_TIMESTAMP, h.max_timestamp, 0, &[])
        .expect("an empty batch is 61 bytes")
}
