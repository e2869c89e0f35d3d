//! Producer state (Kafka's `ProducerStateManager` and `ProducerAppendInfo`
//! semantics): per producer id the epoch, the last five batches' sequence and
//! offset ranges (for duplicate detection), the last timestamp (for
//! expiration), the coordinator epoch of the last transaction marker and the
//! first offset of the open transaction; plus, for the whole partition, the
//! open transactions ordered by first offset (the first one bounds the last
//! stable offset).
//!
//! Transactions: a producer's first transactional batch opens its
//! transaction, a transaction marker (control batch, written by the
//! transaction coordinator) closes it. Between the two, a non-transactional
//! batch from that producer is refused (`INVALID_TXN_STATE`). A marker is
//! refused if its producer epoch is older than the producer's
//! (`INVALID_PRODUCER_EPOCH`) or its coordinator epoch older than the last
//! marker's (`TRANSACTION_COORDINATOR_FENCED`); otherwise the producer takes
//! the marker's epoch — a KIP-890 (transactions V2) marker carries a bumped
//! epoch, which empties the batch cache so the next epoch starts at sequence 0.
//!
//! Memory: about 250 bytes per producer id plus 16 per open transaction; ids
//! are removed by [`crate::PartitionLog::expire_producers`]
//! (`producer.id.expiration.ms`), never while their transaction is open.

use std::collections::{BTreeSet, HashMap, VecDeque};

use strom_protocol::records::{BatchHeader, ControlRecordType, NO_PRODUCER_EPOCH};

use crate::append::AppendOrigin;
use crate::error::AppendError;

/// Batches remembered per producer for duplicate detection; the Java producer
/// keeps at most five requests in flight per partition.
pub const MAX_CACHED_BATCHES: usize = 5;

/// Sequence and offset range of one appended batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    /// First sequence number.
    pub first_seq: i32,
    /// Last sequence number.
    pub last_seq: i32,
    /// Offset of the first record.
    pub first_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The batch's max timestamp.
    pub timestamp: i64,
}

/// What the log knows about one producer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerStateEntry {
    /// The producer id.
    pub producer_id: i64,
    /// Latest epoch seen.
    pub producer_epoch: i16,
    /// Up to [`MAX_CACHED_BATCHES`] most recent batches of `producer_epoch`, oldest first.
    pub batches: VecDeque<BatchMetadata>,
    /// Max timestamp of the producer's latest batch (drives expiration).
    pub last_timestamp: i64,
    /// Coordinator epoch of the last transaction marker, -1 if none.
    pub coordinator_epoch: i32,
    /// First offset of the producer's open transaction, if any.
    pub current_txn_first_offset: Option<i64>,
}

/// The content of a transaction marker (Kafka's `EndTransactionMarker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndTxnMarker {
    /// COMMIT or ABORT.
    pub kind: ControlRecordType,
    /// Epoch of the transaction coordinator that wrote the marker.
    pub coordinator_epoch: i32,
}

/// A transaction closed by a marker (Kafka's `CompletedTxn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of the transaction's first batch.
    pub first_offset: i64,
    /// Offset of the marker.
    pub last_offset: i64,
    /// Whether the marker was ABORT.
    pub aborted: bool,
}

impl ProducerStateEntry {
    fn new(producer_id: i64) -> Self {
        ProducerStateEntry {
            producer_id,
            producer_epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            last_timestamp: -1,
            coordinator_epoch: -1,
            current_txn_first_offset: None,
        }
    }

    /// Last sequence appended in the current epoch, -1 if none.
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_seq)
    }

    /// The cached batch with exactly this epoch and sequence range.
    pub fn find_duplicate(
        &self,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Option<BatchMetadata> {
        if epoch != self.producer_epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }

    /// Takes `epoch`; a different epoch empties the batch cache (sequences
    /// restart at 0 in a new epoch).
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.producer_epoch {
            self.producer_epoch = epoch;
            self.batches.clear();
        }
    }

    /// Records an appended data batch starting at `first_offset` (no
    /// validation: used for appends already checked and for replay). A
    /// transactional batch opens a transaction if none is open.
    pub(crate) fn apply_data(&mut self, h: &BatchHeader, first_offset: i64) {
        debug_assert!(!h.is_control());
        self.set_epoch(h.producer_epoch);
        self.last_timestamp = h.max_timestamp;
        let last_offset = first_offset + i64::from(h.last_offset_delta);
        if h.is_transactional() && self.current_txn_first_offset.is_none() {
            self.current_txn_first_offset = Some(first_offset);
        }
        if h.base_sequence >= 0 {
            self.batches.push_back(BatchMetadata {
                first_seq: h.base_sequence,
                last_seq: h.last_sequence(),
                first_offset,
                last_offset,
                timestamp: h.max_timestamp,
            });
            while self.batches.len() > MAX_CACHED_BATCHES {
                self.batches.pop_front();
            }
        }
    }

    /// Records a transaction marker at `offset` (no validation): the producer
    /// takes the marker's epoch and coordinator epoch, and its open
    /// transaction, if any, is returned as completed. A marker without an open
    /// transaction completes nothing (Kafka: an empty transaction needs no
    /// index entry and does not hold back the last stable offset).
    pub(crate) fn apply_marker(
        &mut self,
        h: &BatchHeader,
        marker: EndTxnMarker,
        offset: i64,
    ) -> Option<CompletedTxn> {
        debug_assert!(h.is_control());
        let completed = self.current_txn_first_offset.map(|first| CompletedTxn {
            producer_id: self.producer_id,
            first_offset: first,
            last_offset: offset,
            aborted: marker.kind == ControlRecordType::Abort,
        });
        self.set_epoch(h.producer_epoch);
        self.coordinator_epoch = marker.coordinator_epoch;
        self.last_timestamp = h.max_timestamp;
        self.current_txn_first_offset = None;
        completed
    }
}

/// Whether `next` directly follows `last` (sequences wrap from `i32::MAX` to 0).
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// The producer-state table of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerStateEntry>,
    /// Open transactions as `(first offset, producer id)`, smallest first
    /// offset first (Kafka's `ongoingTxns`): exactly the entries with a
    /// `current_txn_first_offset`, kept in step on every change of one.
    ongoing_txns: BTreeSet<(i64, i64)>,
}

/// Changes checked by [`ProducerStateManager::check`], applied by
/// [`ProducerStateManager::commit`] once the batches are written.
#[derive(Debug, Default)]
pub struct PendingUpdates {
    entries: HashMap<i64, ProducerStateEntry>,
    /// Transactions closed by markers in the append, in offset order.
    completed: Vec<CompletedTxn>,
}

impl ProducerStateManager {
    /// Builds a table from entries (snapshot loading).
    pub fn from_entries(entries: impl IntoIterator<Item = ProducerStateEntry>) -> Self {
        let producers: HashMap<i64, ProducerStateEntry> =
            entries.into_iter().map(|e| (e.producer_id, e)).collect();
        let ongoing_txns = producers
            .values()
            .filter_map(|e| e.current_txn_first_offset.map(|f| (f, e.producer_id)))
            .collect();
        ProducerStateManager {
            producers,
            ongoing_txns,
        }
    }

    /// Keeps `ongoing_txns` in step when `producer_id`'s open transaction
    /// changes from `before` to `after`.
    fn track_txn(&mut self, producer_id: i64, before: Option<i64>, after: Option<i64>) {
        if before == after {
            return;
        }
        if let Some(first) = before {
            self.ongoing_txns.remove(&(first, producer_id));
        }
        if let Some(first) = after {
            self.ongoing_txns.insert((first, producer_id));
        }
    }

    /// First offset of the earliest open transaction.
    pub fn first_ongoing_txn_offset(&self) -> Option<i64> {
        self.ongoing_txns.first().map(|&(first, _)| first)
    }

    /// Number of open transactions.
    #[cfg(test)]
    pub fn ongoing_txn_count(&self) -> usize {
        self.ongoing_txns.len()
    }

    /// The last stable offset to record with `txn` once its marker is applied
    /// (Kafka's `lastStableOffset(completedTxn)`): the first offset of the
    /// earliest transaction of another producer still open, else the offset
    /// after the marker.
    pub fn last_stable_offset_after(&self, txn: &CompletedTxn) -> i64 {
        self.ongoing_txns
            .iter()
            .find(|&&(_, pid)| pid != txn.producer_id)
            .map_or(txn.last_offset + 1, |&(first, _)| first)
    }

    /// The entry for `producer_id`.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// All entries (any order).
    pub fn entries(&self) -> impl Iterator<Item = &ProducerStateEntry> {
        self.producers.values()
    }

    /// Number of producer ids tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Validates one batch of a leader append, to be written at
    /// `first_offset`, against the committed state plus earlier batches of the
    /// same request. A control batch must come with its `marker` (the caller
    /// parsed it and refused control batches from clients). `Ok(Some(meta))`
    /// means the batch is a retry of an appended one.
    ///
    /// Checks in Kafka's order: duplicate (clients only), producer epoch,
    /// then for a marker the coordinator epoch, for data the sequence
    /// (clients only) and the transaction state.
    pub fn check(
        &self,
        pending: &mut PendingUpdates,
        h: &BatchHeader,
        first_offset: i64,
        origin: AppendOrigin,
        marker: Option<EndTxnMarker>,
    ) -> Result<Option<BatchMetadata>, AppendError> {
        let pid = h.producer_id;
        if origin == AppendOrigin::Client && !h.is_control() {
            if let Some(dup) = self.producers.get(&pid).and_then(|e| {
                e.find_duplicate(h.producer_epoch, h.base_sequence, h.last_sequence())
            }) {
                return Ok(Some(dup));
            }
        }
        let entry = pending.entries.entry(pid).or_insert_with(|| {
            self.producers
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| ProducerStateEntry::new(pid))
        });
        let known = entry.producer_epoch != NO_PRODUCER_EPOCH;
        if known && h.producer_epoch < entry.producer_epoch {
            return Err(AppendError::InvalidProducerEpoch {
                producer_id: pid,
                producer_epoch: h.producer_epoch,
                current_epoch: entry.producer_epoch,
            });
        }
        if h.is_control() {
            let Some(marker) = marker else {
                return Err(AppendError::InvalidRecord(format!(
                    "control batch of producer {pid} is not a transaction marker"
                )));
            };
            if marker.coordinator_epoch < entry.coordinator_epoch {
                return Err(AppendError::TransactionCoordinatorFenced {
                    producer_id: pid,
                    coordinator_epoch: marker.coordinator_epoch,
                    current_coordinator_epoch: entry.coordinator_epoch,
                });
            }
            pending
                .completed
                .extend(entry.apply_marker(h, marker, first_offset));
            return Ok(None);
        }
        if origin == AppendOrigin::Client {
            if h.base_sequence < 0 {
                return Err(AppendError::InvalidRecord(format!(
                    "producer {pid} sent sequence {}",
                    h.base_sequence
                )));
            }
            if h.producer_epoch != entry.producer_epoch {
                // A bumped epoch restarts sequences at 0; an unknown producer
                // (state expired or removed by retention, KIP-360) may resume anywhere.
                if known && h.base_sequence != 0 {
                    return Err(out_of_order(h, -1));
                }
            } else if let Some(last) = entry.batches.back() {
                if !in_sequence(last.last_seq, h.base_sequence) {
                    let oldest = entry
                        .batches
                        .front()
                        .map_or(last.first_seq, |b| b.first_seq);
                    if h.base_sequence <= last.last_seq && h.last_sequence() < oldest {
                        return Err(AppendError::DuplicateSequence {
                            producer_id: pid,
                            first_sequence: h.base_sequence,
                            last_sequence: h.last_sequence(),
                        });
                    }
                    return Err(out_of_order(h, last.last_seq));
                }
            } else if known && h.base_sequence != 0 {
                // A known epoch with nothing cached: a transaction marker
                // started it (KIP-890 bumps the epoch on the marker), so
                // sequences start at 0, as Kafka requires.
                return Err(out_of_order(h, -1));
            }
        }
        if entry.current_txn_first_offset.is_some() && !h.is_transactional() {
            return Err(AppendError::InvalidTxnState(format!(
                "producer {pid} sent a non-transactional batch while its transaction \
                 starting at offset {} is open",
                entry.current_txn_first_offset.unwrap_or(-1)
            )));
        }
        entry.apply_data(h, first_offset);
        Ok(None)
    }

    /// Applies checked updates after the batches were written and returns
    /// the transactions their markers closed, in offset order.
    pub fn commit(&mut self, pending: PendingUpdates) -> Vec<CompletedTxn> {
        for (pid, entry) in pending.entries {
            let before = self
                .producers
                .get(&pid)
                .and_then(|e| e.current_txn_first_offset);
            self.track_txn(pid, before, entry.current_txn_first_offset);
            self.producers.insert(pid, entry);
        }
        pending.completed
    }

    /// Records a batch without validation (recovery replay, follower
    /// appends). `marker` is the content of a control batch; a control batch
    /// without one (emptied by the cleaner, or unreadable) changes nothing.
    /// Returns the transaction a marker closed.
    pub fn replay(
        &mut self,
        h: &BatchHeader,
        marker: Option<EndTxnMarker>,
    ) -> Option<CompletedTxn> {
        if !h.has_producer_id() || (h.is_control() && marker.is_none()) {
            return None;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerStateEntry::new(h.producer_id));
        let before = entry.current_txn_first_offset;
        let completed = match marker {
            Some(marker) if h.is_control() => entry.apply_marker(h, marker, h.base_offset),
            _ => {
                entry.apply_data(h, h.base_offset);
                None
            }
        };
        let after = entry.current_txn_first_offset;
        self.track_txn(h.producer_id, before, after);
        completed
    }

    /// Removes producers whose last batch is `expiration_ms` older than `now_ms`
    /// and that have no open transaction. Returns how many were removed.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        // Keeping every producer with an open transaction keeps `ongoing_txns` valid.
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        debug_assert_eq!(
            self.ongoing_txns.len(),
            self.producers
                .values()
                .filter(|e| e.current_txn_first_offset.is_some())
                .count()
        );
        before - self.producers.len()
    }
}

fn out_of_order(h: &BatchHeader, last_seq: i32) -> AppendError {
    AppendError::OutOfOrderSequence {
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        first_sequence: h.base_sequence,
        last_sequence: last_seq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::records::BatchHeader;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 1,
            max_timestamp: 1,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: records,
        }
    }

    fn append(
        m: &mut ProducerStateManager,
        h: BatchHeader,
        offset: i64,
    ) -> Result<Option<BatchMetadata>, AppendError> {
        let mut p = PendingUpdates::default();
        let r = m.check(&mut p, &h, offset, AppendOrigin::Client, None)?;
        m.commit(p);
        Ok(r)
    }

    #[test]
    fn unknown_producer_may_start_at_any_sequence() {
        let mut m = ProducerStateManager::default();
        assert!(append(&mut m, header(7, 0, 42, 2), 0).unwrap().is_none());
        assert_eq!(m.get(7).unwrap().last_seq(), 43);
    }

    #[test]
    fn retry_of_cached_batch_is_duplicate_with_original_offsets() {
        let mut m = ProducerStateManager::default();
        append(&mut m, header(7, 0, 0, 2), 100).unwrap();
        append(&mut m, header(7, 0, 2, 3), 102).unwrap();
        let dup = append(&mut m, header(7, 0, 0, 2), 200).unwrap().unwrap();
        assert_eq!((dup.first_offset, dup.last_offset), (100, 101));
    }

    #[test]
    fn gap_in_sequence_is_out_of_order() {
        let mut m = ProducerStateManager::default();
        append(&mut m, header(7, 0, 0, 2), 0).unwrap();
        assert!(matches!(
            append(&mut m, header(7, 0, 5, 1), 2),
            Err(AppendError::OutOfOrderSequence {
                last_sequence: 1,
                ..
            })
        ));
    }

    #[test]
    fn sequence_older_than_cache_is_duplicate_sequence() {
        let mut m = ProducerStateManager::default();
        for i in 0..7 {
            append(&mut m, header(7, 0, i, 1), i64::from(i)).unwrap();
        }
        assert!(matches!(
            append(&mut m, header(7, 0, 0, 1), 7),
            Err(AppendError::DuplicateSequence { .. })
        ));
    }

    #[test]
    fn old_epoch_is_fenced_and_new_epoch_must_start_at_zero() {
        let mut m = ProducerStateManager::default();
        append(&mut m, header(7, 3, 0, 1), 0).unwrap();
        assert!(matches!(
            append(&mut m, header(7, 2, 1, 1), 1),
            Err(AppendError::InvalidProducerEpoch {
                current_epoch: 3,
                ..
            })
        ));
        assert!(matches!(
            append(&mut m, header(7, 4, 5, 1), 1),
            Err(AppendError::OutOfOrderSequence { .. })
        ));
        append(&mut m, header(7, 4, 0, 1), 1).unwrap();
        assert_eq!(m.get(7).unwrap().producer_epoch, 4);
    }

    #[test]
    fn sequence_wraps_from_i32_max_to_zero() {
        let mut m = ProducerStateManager::default();
        append(&mut m, header(7, 0, i32::MAX, 1), 0).unwrap();
        append(&mut m, header(7, 0, 0, 1), 1).unwrap();
    }

    #[test]
    fn only_five_batches_are_cached() {
        let mut m = ProducerStateManager::default();
        for i in 0..8 {
            append(&mut m, header(7, 0, i, 1), i64::from(i)).unwrap();
        }
        assert_eq!(m.get(7).unwrap().batches.len(), MAX_CACHED_BATCHES);
    }

    fn txn(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            attributes: strom_protocol::records::TRANSACTIONAL_BIT,
            ..header(pid, epoch, seq, records)
        }
    }

    fn marker_header(pid: i64, epoch: i16, offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            attributes: strom_protocol::records::TRANSACTIONAL_BIT
                | strom_protocol::records::CONTROL_BIT,
            ..header(pid, epoch, -1, 1)
        }
    }

    fn end(kind: ControlRecordType, coordinator_epoch: i32) -> EndTxnMarker {
        EndTxnMarker {
            kind,
            coordinator_epoch,
        }
    }

    /// A marker appended by the coordinator at `offset`; returns what it completed.
    fn write_marker(
        m: &mut ProducerStateManager,
        pid: i64,
        epoch: i16,
        marker: EndTxnMarker,
        offset: i64,
    ) -> Result<Vec<CompletedTxn>, AppendError> {
        let mut p = PendingUpdates::default();
        let h = marker_header(pid, epoch, offset);
        m.check(&mut p, &h, offset, AppendOrigin::Coordinator, Some(marker))?;
        Ok(m.commit(p))
    }

    #[test]
    fn markers_complete_transactions_and_the_ongoing_set_follows() {
        let mut m = ProducerStateManager::default();
        append(&mut m, txn(1, 0, 0, 2), 10).unwrap();
        append(&mut m, txn(2, 0, 0, 1), 12).unwrap();
        append(&mut m, txn(1, 0, 2, 1), 13).unwrap();
        assert_eq!(m.first_ongoing_txn_offset(), Some(10));
        assert_eq!(m.ongoing_txn_count(), 2);
        let done = write_marker(&mut m, 1, 0, end(ControlRecordType::Abort, 0), 14).unwrap();
        let expected = CompletedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 14,
            aborted: true,
        };
        assert_eq!(done, vec![expected]);
        assert_eq!(m.first_ongoing_txn_offset(), Some(12));
        assert_eq!(m.last_stable_offset_after(&expected), 12);
        // An empty transaction completes nothing.
        assert!(
            write_marker(&mut m, 1, 0, end(ControlRecordType::Commit, 0), 15)
                .unwrap()
                .is_empty()
        );
        let done = write_marker(&mut m, 2, 0, end(ControlRecordType::Commit, 0), 16).unwrap();
        assert!(!done[0].aborted);
        assert_eq!(m.last_stable_offset_after(&done[0]), 17);
        assert_eq!(m.first_ongoing_txn_offset(), None);
    }

    #[test]
    fn marker_rules_follow_kafka() {
        let mut m = ProducerStateManager::default();
        append(&mut m, txn(1, 3, 0, 1), 0).unwrap();
        assert!(matches!(
            write_marker(&mut m, 1, 2, end(ControlRecordType::Commit, 0), 1),
            Err(AppendError::InvalidProducerEpoch { .. })
        ));
        write_marker(&mut m, 1, 3, end(ControlRecordType::Commit, 5), 1).unwrap();
        assert!(matches!(
            write_marker(&mut m, 1, 3, end(ControlRecordType::Commit, 4), 2),
            Err(AppendError::TransactionCoordinatorFenced {
                coordinator_epoch: 4,
                current_coordinator_epoch: 5,
                ..
            })
        ));
        // A bumped epoch on the marker (KIP-890) restarts sequences at 0.
        write_marker(&mut m, 1, 4, end(ControlRecordType::Abort, 5), 2).unwrap();
        let entry = m.get(1).unwrap();
        assert_eq!((entry.producer_epoch, entry.batches.len()), (4, 0));
        assert!(matches!(
            append(&mut m, txn(1, 4, 1, 1), 3),
            Err(AppendError::OutOfOrderSequence { .. })
        ));
        append(&mut m, txn(1, 4, 0, 1), 3).unwrap();
        // Non-transactional data while the transaction is open.
        assert!(matches!(
            append(&mut m, header(1, 4, 1, 1), 4),
            Err(AppendError::InvalidTxnState(_))
        ));
        // A control batch without a marker is refused.
        let mut p = PendingUpdates::default();
        let h = marker_header(1, 4, 4);
        assert!(matches!(
            m.check(&mut p, &h, 4, AppendOrigin::Coordinator, None),
            Err(AppendError::InvalidRecord(_))
        ));
    }

    #[test]
    fn replay_applies_markers_without_validation() {
        let mut m = ProducerStateManager::default();
        let mut h = txn(1, 5, 0, 1);
        h.base_offset = 7;
        assert_eq!(m.replay(&h, None), None);
        assert_eq!(m.first_ongoing_txn_offset(), Some(7));
        // An older producer and coordinator epoch is applied as written.
        let h = marker_header(1, 4, 8);
        m.replay(&h, Some(end(ControlRecordType::Abort, 0)))
            .expect("completes the transaction");
        assert_eq!(m.get(1).unwrap().producer_epoch, 4);
        assert_eq!(m.first_ongoing_txn_offset(), None);
        // A control batch whose marker is unknown (emptied by the cleaner)
        // changes nothing and creates no producer.
        assert_eq!(m.replay(&marker_header(2, 0, 9), None), None);
        assert!(m.get(2).is_none());
    }

    #[test]
    fn producers_with_open_transactions_never_expire() {
        let mut m = ProducerStateManager::default();
        append(&mut m, txn(1, 0, 0, 1), 0).unwrap();
        append(&mut m, header(2, 0, 0, 1), 1).unwrap();
        assert_eq!(m.expire(10_000, 5000), 1);
        assert_eq!(m.first_ongoing_txn_offset(), Some(0));
        assert!(m.get(1).is_some());
    }

    #[test]
    fn expiration_removes_idle_producers() {
        let mut m = ProducerStateManager::default();
        append(&mut m, header(7, 0, 0, 1), 0).unwrap();
        assert_eq!(m.expire(1000, 5000), 0);
        assert_eq!(m.expire(10_000, 5000), 1);
        assert_eq!(m.len(), 0);
    }
}
