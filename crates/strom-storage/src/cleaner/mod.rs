//! Log compaction (`cleanup.policy=compact`), after Kafka's log cleaner.
//!
//! The log below the active segment is split at the *first dirty offset*
//! (persisted in `cleaner-offset-checkpoint`) into a clean section, already
//! deduplicated by earlier passes, and a dirty section ending at the *first
//! uncleanable offset*: the active segment's base, the first offset of any
//! open transaction, and the first segment younger than
//! `min.compaction.lag.ms`. A pass ([`PartitionLog::clean`]):
//!
//! 1. maps every key of the dirty section to its latest offset (a bounded
//!    key → offset map; if the keys do not fit, only the prefix that fits is
//!    mapped and the rest waits for the next pass, as in Kafka), skipping the
//!    records of aborted transactions so they can never shadow a committed
//!    value;
//! 2. rewrites every segment from the log start up to the end of the mapped
//!    range, in groups that may merge small neighbours into one segment
//!    (keeping the first one's base offset): a record survives if it is past
//!    the map, or the latest of its key and not a tombstone past its delete
//!    horizon; keyless records go; records of aborted transactions (per the
//!    aborted-transaction index) go whatever their key. Records of committed
//!    transactions are ordinary records. Batches that lose records are re-encoded
//!    with their codec; offsets never change. A batch left empty is dropped
//!    unless it is its producer's last, which is kept empty so the producer's
//!    sequence survives (Kafka does the same);
//! 3. sets the delete horizon (now + `delete.retention.ms`, KIP-534) on batches
//!    first cleaned with tombstones; a later pass after the horizon drops them;
//! 4. swaps the cleaned segments in crash-safely (`swap.rs`), each with the
//!    aborted-transaction entries of the segments it replaces, and moves the
//!    first dirty offset to the end of the mapped range.
//!
//! Because the dirty section ends at the first unstable offset, no open
//! transaction is ever cleaned: every transactional batch below it belongs
//! to a transaction whose marker is in the log.
//!
//! Deviations from Kafka, all on the safe side (they keep records, never lose
//! them): transaction markers (control batches) are always kept — Kafka
//! removes a marker once its transaction's records are gone and its delete
//! horizon has passed — so their `.txnindex` entries stay valid as they are;
//! the pass runs under the log's `&mut self`, so appends to this partition
//! wait for it (Kafka cleans concurrently, copying segments in the
//! background); the checkpoint is one file per partition, not per log
//! directory; the earliest delete horizon is remembered in memory only, so
//! after a restart expired tombstones wait for the next pass the dirty ratio
//! triggers.

mod aborted;
mod filter;
mod offset_map;
mod swap;

use std::collections::HashMap;

use bytes::Bytes;
use strom_protocol::records::{decode_batch, BatchHeader};

use aborted::AbortedBatches;
use offset_map::OffsetMap;
pub use offset_map::ENTRY_OVERHEAD_BYTES;
pub(crate) use swap::recover_swaps;
#[doc(hidden)]
pub use swap::SwapStep;

use crate::checkpoint::write_offset_file;
use crate::error::StorageError;
use crate::log::PartitionLog;
use crate::segment::Segment;
use filter::{FilterContext, Filtered};
use swap::CLEANED_SUFFIX;

/// Per-partition file holding the first dirty offset.
pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// Kafka's `log.cleaner.dedupe.buffer.size` default, 128 MiB.
pub const DEFAULT_DEDUPE_BUFFER_BYTES: usize = 128 * 1024 * 1024;
/// Default cap on one batch's decompressed records while cleaning, 64 MiB.
pub const DEFAULT_MAX_BATCH_UNCOMPRESSED_BYTES: usize = 64 * 1024 * 1024;
/// Cleaned batches are written to the new segment in chunks of about this size
/// (Kafka's `log.cleaner.io.buffer.size` is 512 KiB).
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// Resources of one cleaning pass (broker-wide settings in Kafka).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanerConfig {
    /// `log.cleaner.dedupe.buffer.size` (per pass here; Kafka divides it
    /// among its cleaner threads): the most memory the key → offset map may
    /// charge, counting each distinct key as its length plus
    /// [`ENTRY_OVERHEAD_BYTES`]. When the dirty section has more keys, the pass
    /// cleans only the prefix whose keys fit. Default 128 MiB.
    pub dedupe_buffer_bytes: usize,
    /// Largest decompressed records section of one batch the cleaner decodes;
    /// a larger batch is kept unchanged and its keys are not mapped (which can
    /// only keep records). Bounds the pass's per-batch memory. Default 64 MiB.
    pub max_batch_uncompressed_bytes: usize,
    /// Test hook: stop the first group's swap after this step, as if the
    /// process died there; the log goes offline and must be reopened.
    #[doc(hidden)]
    pub crash_after: Option<SwapStep>,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            dedupe_buffer_bytes: DEFAULT_DEDUPE_BUFFER_BYTES,
            max_batch_uncompressed_bytes: DEFAULT_MAX_BATCH_UNCOMPRESSED_BYTES,
            crash_after: None,
        }
    }
}

/// What a cleaning pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    /// Original segments rewritten (merged groups count each member).
    pub segments_cleaned: usize,
    /// Log bytes of those segments before the pass.
    pub bytes_before: u64,
    /// Log bytes of the segments that replaced them.
    pub bytes_after: u64,
    /// Records removed: superseded, keyless, and expired tombstones.
    pub records_removed: u64,
    /// Tombstones among `records_removed` (records of aborted transactions are
    /// removed without being decoded and never count here).
    pub tombstones_removed: u64,
    /// Records of aborted transactions among `records_removed`.
    pub aborted_records_removed: u64,
    /// Distinct keys mapped from the dirty section.
    pub keys_mapped: usize,
    /// The new first dirty offset: everything below it is now clean.
    pub cleaned_up_to: i64,
    /// The map filled up before the end of the dirty section, so only a
    /// prefix of it was cleaned; the next pass continues from `cleaned_up_to`.
    pub map_full: bool,
}

/// How much of a compacted log is waiting for the cleaner (Kafka's `LogToClean`).
#[derive(Clone, Debug, PartialEq)]
pub struct CleanableInfo {
    /// Start of the dirty section.
    pub first_dirty_offset: i64,
    /// End of the dirty section (exclusive).
    pub first_uncleanable_offset: i64,
    /// Bytes of segments in the clean section.
    pub clean_bytes: u64,
    /// Bytes of segments in the dirty section (segment granularity).
    pub dirty_bytes: u64,
    /// The oldest dirty record is older than `max.compaction.lag.ms`.
    pub max_compaction_lag_exceeded: bool,
    /// A tombstone kept by an earlier pass has reached its delete horizon.
    pub delete_horizon_passed: bool,
}

impl CleanableInfo {
    /// `dirty / (clean + dirty)`, 0 for an empty log.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// Whether the cleaner should pick this log now: dirty ratio at least
    /// `min_cleanable_dirty_ratio` (with something dirty), the max compaction
    /// lag exceeded, or expired tombstones to drop.
    pub fn needs_cleaning(&self, min_cleanable_dirty_ratio: f64) -> bool {
        (self.dirty_bytes > 0 && self.dirty_ratio() >= min_cleanable_dirty_ratio)
            || self.max_compaction_lag_exceeded
            || self.delete_horizon_passed
    }
}

impl PartitionLog {
    /// The cleanable state of the log for a cleaner choosing the dirtiest log,
    /// or `None` if the log is not compacted. Reads one batch header; no records.
    pub fn cleanable(&self, now_ms: i64) -> Result<Option<CleanableInfo>, StorageError> {
        self.check_online()?;
        if !self.config.cleanup_policy_compact {
            return Ok(None);
        }
        let (first_dirty, first_uncleanable) = self.cleanable_range(now_ms)?;
        let (mut clean_bytes, mut dirty_bytes) = (0, 0);
        let active = self.segments.len() - 1;
        for i in self.segment_index_for(self.log_start_offset)..active {
            let end = self.segments[i + 1].base_offset();
            if end <= first_dirty {
                clean_bytes += self.segments[i].size();
            } else if self.segments[i].base_offset() < first_uncleanable {
                dirty_bytes += self.segments[i].size();
            }
        }
        let mut max_compaction_lag_exceeded = false;
        if first_dirty < first_uncleanable {
            let i = self.segment_index_for(first_dirty);
            if let Some((_, h)) = self.segments[i].find_batch(first_dirty)? {
                max_compaction_lag_exceeded = h.max_timestamp >= 0
                    && now_ms.saturating_sub(h.max_timestamp) > self.config.max_compaction_lag_ms;
            }
        }
        Ok(Some(CleanableInfo {
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: first_uncleanable,
            clean_bytes,
            dirty_bytes,
            max_compaction_lag_exceeded,
            delete_horizon_passed: self.earliest_delete_horizon_ms.is_some_and(|t| now_ms >= t),
        }))
    }

    /// `(first dirty offset, first uncleanable offset)`.
    fn cleanable_range(&self, now_ms: i64) -> Result<(i64, i64), StorageError> {
        let active = self.segments.len() - 1;
        // Never clean an open transaction: its outcome is not known yet.
        let mut uncleanable = self.active().base_offset();
        if let Some(first) = self.first_unstable_offset() {
            uncleanable = uncleanable.min(first);
        }
        let first_dirty = self.cleaner_checkpoint.max(self.log_start_offset);
        if self.config.min_compaction_lag_ms > 0 {
            for segment in &self.segments[self.segment_index_for(first_dirty)..active] {
                if segment.base_offset() >= uncleanable {
                    break;
                }
                let age = now_ms.saturating_sub(segment.largest_timestamp()?);
                if age < self.config.min_compaction_lag_ms {
                    uncleanable = segment.base_offset();
                    break;
                }
            }
        }
        Ok((first_dirty.min(uncleanable), uncleanable))
    }

    /// One cleaning pass with default resources; see [`PartitionLog::clean_with`].
    pub fn clean(&mut self, now_ms: i64) -> Result<CleanOutcome, StorageError> {
        self.clean_with(now_ms, &CleanerConfig::default())
    }

    /// Compacts the log below its first uncleanable offset (never touching the
    /// active segment) — see the `cleaner` module docs — and returns what was
    /// removed. A no-op returning an empty outcome if the log is not compacted.
    /// Offsets of retained records never change. An I/O error while writing
    /// the cleaned copy leaves the log as it was; one during the swap takes it
    /// offline, and reopening completes or rolls back the swap.
    pub fn clean_with(
        &mut self,
        now_ms: i64,
        config: &CleanerConfig,
    ) -> Result<CleanOutcome, StorageError> {
        self.check_online()?;
        let mut outcome = CleanOutcome::default();
        if !self.config.cleanup_policy_compact {
            outcome.cleaned_up_to = self.cleaner_checkpoint;
            return Ok(outcome);
        }
        let (first_dirty, first_uncleanable) = self.cleanable_range(now_ms)?;
        let active = self.segments.len() - 1;
        let start = self.segment_index_for(self.log_start_offset);
        // Every aborted transaction with records in the range to clean,
        // wherever its marker is (possibly in a later, even the active, segment).
        let aborted = AbortedBatches::new(
            self.aborted_transactions(self.segments[start].base_offset(), first_uncleanable),
        );
        let mut map = OffsetMap::new(config.dedupe_buffer_bytes);
        let map_end =
            self.build_offset_map(&mut map, first_dirty, first_uncleanable, &aborted, config)?;
        outcome.map_full = map_end < first_uncleanable;
        outcome.keys_mapped = map.len();
        outcome.cleaned_up_to = map_end;

        let end = self.segments[..active].partition_point(|s| s.base_offset() < map_end);
        let last_batch_of_producer: HashMap<i64, i64> = self
            .producers
            .entries()
            .filter_map(|e| e.batches.back().map(|b| (e.producer_id, b.last_offset)))
            .collect();
        let ctx = FilterContext {
            map: &map,
            map_end,
            now_ms,
            delete_retention_ms: self.config.delete_retention_ms,
            max_uncompressed_bytes: config.max_batch_uncompressed_bytes,
            last_batch_of_producer: &last_batch_of_producer,
            aborted: &aborted,
        };
        let mut horizon = None;
        let mut crash_after = config.crash_after;
        // Oldest group first, as Kafka does. Each merged group shrinks the
        // segment list, so later groups are shifted by what was merged so far.
        let mut merged = 0;
        for group in self.group_segments(start, end) {
            let shifted = group.start - merged..group.end - merged;
            merged += shifted.len() - 1;
            self.clean_group(
                shifted,
                &ctx,
                now_ms,
                crash_after.take(),
                &mut outcome,
                &mut horizon,
            )?;
        }
        self.earliest_delete_horizon_ms = horizon;
        if map_end != self.cleaner_checkpoint {
            self.cleaner_checkpoint = map_end;
            write_offset_file(&self.dir.join(CLEANER_CHECKPOINT_FILE), map_end, true)?;
        }
        tracing::info!(
            dir = %self.dir.display(),
            segments = outcome.segments_cleaned,
            bytes_before = outcome.bytes_before,
            bytes_after = outcome.bytes_after,
            records_removed = outcome.records_removed,
            cleaned_up_to = map_end,
            map_full = outcome.map_full,
            "cleaned log"
        );
        Ok(outcome)
    }

    /// Maps the keys of `[first_dirty, first_uncleanable)`, except those of
    /// control batches and of `aborted` transactions, and returns the end of
    /// the mapped range: `first_uncleanable`, or the offset of the first
    /// record whose key did not fit.
    fn build_offset_map(
        &self,
        map: &mut OffsetMap,
        first_dirty: i64,
        first_uncleanable: i64,
        aborted: &AbortedBatches,
        config: &CleanerConfig,
    ) -> Result<i64, StorageError> {
        if first_dirty >= first_uncleanable {
            return Ok(first_dirty);
        }
        let first = self.segment_index_for(first_dirty);
        let active = self.segments.len() - 1;
        for segment in &self.segments[first..active] {
            let mut pos = match segment.find_batch(first_dirty)? {
                Some((pos, _)) => pos,
                None => continue,
            };
            while pos < segment.size() {
                let h = segment.header_at(pos)?;
                if h.base_offset >= first_uncleanable {
                    return Ok(first_uncleanable);
                }
                if !h.is_control() && !aborted.contains(&h) && h.records_count > 0 {
                    let bytes = Bytes::from(segment.read_bytes(pos, h.total_len())?);
                    match decode_batch(&bytes, config.max_batch_uncompressed_bytes) {
                        Ok((_, records)) => {
                            for record in records {
                                let offset = record.offset(&h);
                                let Some(key) = record.key.as_deref() else {
                                    continue;
                                };
                                if offset >= first_dirty && !map.put(key, offset) {
                                    return Ok(offset);
                                }
                            }
                        }
                        Err(error) => {
                            tracing::warn!(base_offset = h.base_offset, %error, "cleaner skips an undecodable batch");
                        }
                    }
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(first_uncleanable)
    }

    /// Splits segments `start..end` into runs to be rewritten as one segment
    /// each: consecutive segments whose sizes add up to at most
    /// `segment.bytes` and whose offsets fit a 32-bit relative offset.
    fn group_segments(&self, start: usize, end: usize) -> Vec<std::ops::Range<usize>> {
        let mut groups = Vec::new();
        let mut i = start;
        while i < end {
            let base = self.segments[i].base_offset();
            let mut size = self.segments[i].size();
            let mut j = i + 1;
            while j < end {
                let next_size = self.segments[j].size();
                let upper = self.segments[j + 1].base_offset() - 1;
                if size + next_size > self.config.segment_bytes
                    || upper - base > i64::from(i32::MAX)
                {
                    break;
                }
                size += next_size;
                j += 1;
            }
            groups.push(i..j);
            i = j;
        }
        groups
    }

    /// Writes the cleaned copy of `group` and swaps it in.
    fn clean_group(
        &mut self,
        group: std::ops::Range<usize>,
        ctx: &FilterContext<'_>,
        now_ms: i64,
        crash_after: Option<SwapStep>,
        outcome: &mut CleanOutcome,
        horizon: &mut Option<i64>,
    ) -> Result<(), StorageError> {
        let base = self.segments[group.start].base_offset();
        let end = self.segments[group.end].base_offset();
        let mut out =
            Segment::create_with_suffix(&self.fs, &self.dir, base, &self.config, CLEANED_SUFFIX)?;
        let written = self.write_cleaned(&group, &mut out, ctx, now_ms, horizon);
        let written = written
            .and_then(|removed| out.seal().map(|_| removed))
            .and_then(|removed| out.sync().map(|_| removed));
        let (records, tombstones, aborted) = match written {
            Ok(removed) => removed,
            Err(e) => {
                drop(out);
                swap::remove_cleaned(&self.dir, base)?;
                return Err(e);
            }
        };
        let bytes_after = out.size();
        drop(out);
        let members: Vec<i64> = self.segments[group.clone()]
            .iter()
            .map(|s| s.base_offset())
            .collect();
        if let Err(e) = swap::install(&self.dir, &members, end, crash_after) {
            return Err(self.go_offline(e));
        }
        let cleaned = match Segment::open(&self.fs, &self.dir, base, &self.config, false, now_ms) {
            Ok((segment, _)) if segment.txn_index_stale() => {
                // Only a reopen can rebuild it (it needs producer state replay).
                let e = StorageError::io(
                    "reopen cleaned segment",
                    self.dir.clone(),
                    std::io::Error::other("transaction index of the cleaned segment unreadable"),
                );
                return Err(self.go_offline(e));
            }
            Ok((segment, _)) => segment,
            Err(e) => return Err(self.go_offline(e)),
        };
        let replaced: Vec<Segment> = self.segments.splice(group, [cleaned]).collect();
        outcome.segments_cleaned += replaced.len();
        outcome.bytes_before += replaced.iter().map(|s| s.size()).sum::<u64>();
        outcome.bytes_after += bytes_after;
        outcome.records_removed += records;
        outcome.tombstones_removed += tombstones;
        outcome.aborted_records_removed += aborted;
        Ok(())
    }

    /// Filters every batch of `group` into `out` and carries over the
    /// members' aborted-transaction entries (their markers are all kept);
    /// returns `(records removed, tombstones removed, aborted records removed)`.
    fn write_cleaned(
        &self,
        group: &std::ops::Range<usize>,
        out: &mut Segment,
        ctx: &FilterContext<'_>,
        now_ms: i64,
        horizon: &mut Option<i64>,
    ) -> Result<(u64, u64, u64), StorageError> {
        let (mut records, mut tombstones, mut aborted) = (0, 0, 0);
        let mut buf = Vec::new();
        let mut headers = Vec::new();
        for segment in &self.segments[group.clone()] {
            let mut pos = 0;
            while pos < segment.size() {
                let h = segment.header_at(pos)?;
                let bytes = segment.read_bytes(pos, h.total_len())?;
                pos += h.total_len() as u64;
                let kept = match ctx.filter(&bytes, &h) {
                    Filtered::Unchanged => bytes,
                    Filtered::Dropped(removed) => {
                        records += removed.records;
                        tombstones += removed.tombstones;
                        aborted += removed.aborted;
                        continue;
                    }
                    Filtered::Rewritten(rewritten, removed) => {
                        records += removed.records;
                        tombstones += removed.tombstones;
                        aborted += removed.aborted;
                        rewritten
                    }
                };
                let kept_header =
                    BatchHeader::parse(&kept).expect("the cleaner writes valid batch headers");
                if kept_header.has_delete_horizon() && kept_header.records_count > 0 {
                    let t = kept_header.base_timestamp;
                    *horizon = Some(horizon.map_or(t, |h: i64| h.min(t)));
                }
                buf.extend_from_slice(&kept);
                headers.push(kept_header);
                if buf.len() >= WRITE_BUFFER_BYTES {
                    append_cleaned(out, &mut buf, &mut headers, now_ms)?;
                }
            }
        }
        append_cleaned(out, &mut buf, &mut headers, now_ms)?;
        for segment in &self.segments[group.clone()] {
            out.append_aborted_txns(segment.aborted_txns())?;
        }
        Ok((records, tombstones, aborted))
    }
}

fn append_cleaned(
    out: &mut Segment,
    buf: &mut Vec<u8>,
    headers: &mut Vec<BatchHeader>,
    now_ms: i64,
) -> Result<(), StorageError> {
    if headers.is_empty() {
        return Ok(());
    }
    out.append(buf, headers, now_ms).map_err(|f| f.error)?;
    buf.clear();
    headers.clear();
    Ok(())
}
