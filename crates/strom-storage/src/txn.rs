//! Transactions in the partition log: reading transaction markers, indexing
//! aborted transactions, the first unstable offset, and the aborted
//! transactions a read_committed fetch needs (KIP-98).
//!
//! Markers are control batches that the transaction coordinator appends
//! through [`PartitionLog::append_with_origin`] with
//! [`crate::AppendOrigin::Coordinator`]; producer state decides what they
//! close (`producer_state.rs`), and each ABORT that closes a transaction adds
//! an entry to the `.txnindex` of the segment holding the marker
//! (`txn_index.rs`). Recovery rebuilds a segment's index by replaying
//! producer state from a snapshot taken at or before the segment.

use bytes::Bytes;
use strom_protocol::records::{decode_batch, parse_control_record, BatchHeader};

use crate::error::StorageError;
use crate::log::PartitionLog;
use crate::producer_state::{CompletedTxn, EndTxnMarker, ProducerStateManager};
use crate::snapshot;
use crate::txn_index::AbortedTxn;

/// Largest control batch whose marker is decoded. Kafka's markers are 78
/// bytes; anything this large is not a marker we wrote, and reading it would
/// only cost memory.
pub(crate) const MAX_CONTROL_BATCH_BYTES: usize = 4096;

/// The transaction marker in a control batch: `Ok(None)` for a control batch
/// without records (the cleaner emptied it), `Err` for one that is not a
/// readable marker (too large, corrupt, or another control record type).
pub(crate) fn read_marker(batch: &[u8]) -> Result<Option<EndTxnMarker>, String> {
    if batch.len() > MAX_CONTROL_BATCH_BYTES {
        return Err(format!(
            "control batch of {} bytes is larger than {MAX_CONTROL_BATCH_BYTES}",
            batch.len()
        ));
    }
    let (h, records) = decode_batch(&Bytes::copy_from_slice(batch), MAX_CONTROL_BATCH_BYTES)
        .map_err(|e| e.to_string())?;
    debug_assert!(h.is_control());
    let Some(record) = records.first() else {
        return Ok(None);
    };
    let (kind, coordinator_epoch) = parse_control_record(record)
        .ok_or_else(|| "control record is not a transaction marker".to_string())?;
    Ok(Some(EndTxnMarker {
        kind,
        coordinator_epoch,
    }))
}

impl PartitionLog {
    /// The first offset of the earliest open transaction (Kafka's first
    /// unstable offset), never below the log start offset; `None` when no
    /// transaction is open. The broker's last stable offset is
    /// `min(high watermark, first unstable offset)`: read_committed consumers
    /// never read at or past it.
    ///
    /// Kafka also holds the last stable offset at a completed transaction's
    /// first offset until its marker is below the high watermark; this log
    /// does not know the high watermark, so a completed transaction stops
    /// counting as soon as its marker is appended. Its outcome is decided by
    /// then (the coordinator logged it before writing markers), and an ABORT
    /// is already in the aborted-transaction index.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .first_ongoing_txn_offset()
            .map(|first| first.max(self.log_start_offset))
    }

    /// The aborted transactions overlapping `[start_offset,
    /// upper_bound_offset)`: marker at or after `start_offset`, first offset
    /// below `upper_bound_offset` (Kafka's `collectAbortedTransactions`). A
    /// fetch passes its fetch offset and the offset after the last batch it
    /// returns. Reads the in-memory indexes of the segments from the one
    /// holding `start_offset` on, stopping at the first entry whose last
    /// stable offset reaches the bound, so the result only holds
    /// transactions that overlap the range.
    pub fn aborted_transactions(
        &self,
        start_offset: i64,
        upper_bound_offset: i64,
    ) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        for segment in &self.segments[self.segment_index_for(start_offset)..] {
            if segment.collect_aborted_txns(start_offset, upper_bound_offset, &mut out) {
                break;
            }
        }
        out
    }

    /// Adds the aborted ones among `completed` (transactions closed by markers
    /// just written to the active segment) to its transaction index, with the
    /// last stable offset after the append. The markers are already in the
    /// log, so a failure takes the log offline; recovery rebuilds the index.
    pub(crate) fn index_completed_txns(
        &mut self,
        completed: &[CompletedTxn],
    ) -> Result<(), StorageError> {
        let aborted: Vec<AbortedTxn> = completed
            .iter()
            .filter(|t| t.aborted)
            .map(|t| aborted_entry(&self.producers, t))
            .collect();
        if aborted.is_empty() {
            return Ok(());
        }
        debug_assert!(aborted
            .iter()
            .all(|t| t.last_offset >= self.active().base_offset()));
        if let Err(e) = self.active_mut().append_aborted_txns(&aborted) {
            return Err(self.go_offline(e));
        }
        Ok(())
    }

    /// Calls `f(segment index, header, marker)` for every batch that ends at
    /// or after `from` and starts before `to`, in order. `marker` is the
    /// content of a control batch (read from the log; an unreadable one is
    /// logged and passed as `None`).
    pub(crate) fn for_each_batch_in(
        &self,
        from: i64,
        to: i64,
        mut f: impl FnMut(usize, &BatchHeader, Option<EndTxnMarker>),
    ) -> Result<(), StorageError> {
        let first = self.segment_index_for(from);
        for (i, segment) in self.segments.iter().enumerate().skip(first) {
            if segment.base_offset() >= to {
                break;
            }
            let mut pos = if i == first {
                match segment.find_batch(from)? {
                    Some((pos, _)) => pos,
                    None => continue,
                }
            } else {
                0
            };
            while pos < segment.size() {
                let h = segment.header_at(pos)?;
                if h.base_offset >= to {
                    return Ok(());
                }
                let marker = if h.is_control() && h.records_count > 0 {
                    let len = h.total_len().min(MAX_CONTROL_BATCH_BYTES + 1);
                    match read_marker(&segment.read_bytes(pos, len)?) {
                        Ok(marker) => marker,
                        Err(reason) => {
                            tracing::warn!(dir = %self.dir.display(), offset = h.base_offset, %reason, "ignoring an unreadable control batch");
                            None
                        }
                    }
                } else {
                    None
                };
                f(i, &h, marker);
                pos += h.total_len() as u64;
            }
        }
        Ok(())
    }

    /// Rebuilds the transaction index of every segment marked stale (by
    /// recovery, or because its `.txnindex` was missing or damaged): replays
    /// producer state from the newest snapshot at or before the first stale
    /// segment (or from the log start) to the end of the last one, and gives
    /// each stale segment the ABORT markers it holds. Costs one header read
    /// per batch of the replayed range plus one small read per marker.
    pub(crate) fn rebuild_stale_txn_indexes(&mut self) -> Result<(), StorageError> {
        let stale: Vec<usize> = (0..self.segments.len())
            .filter(|&i| self.segments[i].txn_index_stale())
            .collect();
        let (Some(&first), Some(&last)) = (stale.first(), stale.last()) else {
            return Ok(());
        };
        let end = self
            .segments
            .get(last + 1)
            .map_or(self.log_end_offset(), |s| s.base_offset());
        let (from, mut state) = self.load_producer_snapshot(self.segments[first].base_offset())?;
        let mut rebuilt: Vec<Vec<AbortedTxn>> = vec![Vec::new(); self.segments.len()];
        self.for_each_batch_in(from, end, |i, h, marker| {
            if let Some(txn) = state.replay(h, marker) {
                if txn.aborted && self.segments[i].txn_index_stale() {
                    rebuilt[i].push(aborted_entry(&state, &txn));
                }
            }
        })?;
        for i in stale {
            self.segments[i].rebuild_txn_index(&rebuilt[i])?;
        }
        Ok(())
    }

    /// The newest readable producer snapshot at or below `max_offset`, as
    /// `(offset to replay from, state)`; without one, the first segment's
    /// base offset and an empty table.
    pub(crate) fn load_producer_snapshot(
        &self,
        max_offset: i64,
    ) -> Result<(i64, ProducerStateManager), StorageError> {
        let first_base = self.segments[0].base_offset();
        Ok(match snapshot::load_latest(&self.dir, max_offset)? {
            Some((offset, state)) => (offset.max(first_base), state),
            None => (first_base, ProducerStateManager::default()),
        })
    }
}

/// The index entry for an aborted `txn`, with the last stable offset once
/// `state` has applied its marker.
fn aborted_entry(state: &ProducerStateManager, txn: &CompletedTxn) -> AbortedTxn {
    AbortedTxn {
        producer_id: txn.producer_id,
        first_offset: txn.first_offset,
        last_offset: txn.last_offset,
        last_stable_offset: state.last_stable_offset_after(txn),
    }
}
