//! Idempotent-producer state (Kafka's `ProducerStateManager` semantics): per
//! producer id the epoch, the last five batches' sequence and offset ranges
//! (for duplicate detection) and the last timestamp (for expiration).
//!
//! Memory: about 250 bytes per producer id; ids are removed by
//! [`crate::PartitionLog::expire_producers`] (`producer.id.expiration.ms`).

use std::collections::{HashMap, VecDeque};

use strom_protocol::records::{BatchHeader, NO_PRODUCER_EPOCH};

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
    /// First offset of the open transaction, if any (transactions come later).
    pub current_txn_first_offset: Option<i64>,
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

    /// Records an appended batch starting at `first_offset` (no validation:
    /// used for appends already checked and for replay during recovery).
    pub fn apply(&mut self, h: &BatchHeader, first_offset: i64) {
        if h.producer_epoch != self.producer_epoch {
            self.producer_epoch = h.producer_epoch;
            self.batches.clear();
        }
        self.last_timestamp = h.max_timestamp;
        let last_offset = first_offset + i64::from(h.last_offset_delta);
        if h.is_control() {
            // A transaction marker closes the open transaction and has no sequence.
            self.current_txn_first_offset = None;
            return;
        }
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
}

/// Whether `next` directly follows `last` (sequences wrap from `i32::MAX` to 0).
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// The producer-state table of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerStateEntry>,
}

/// Changes checked by [`ProducerStateManager::check`], applied by
/// [`ProducerStateManager::commit`] once the batches are written.
#[derive(Debug, Default)]
pub struct PendingUpdates {
    entries: HashMap<i64, ProducerStateEntry>,
}

impl ProducerStateManager {
    /// Builds a table from entries (snapshot loading).
    pub fn from_entries(entries: impl IntoIterator<Item = ProducerStateEntry>) -> Self {
        ProducerStateManager {
            producers: entries.into_iter().map(|e| (e.producer_id, e)).collect(),
        }
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

    /// Validates one batch of a client append, to be written at `first_offset`,
    /// against the committed state plus earlier batches of the same request.
    /// `Ok(Some(meta))` means the batch is a retry of an appended one.
    pub fn check(
        &self,
        pending: &mut PendingUpdates,
        h: &BatchHeader,
        first_offset: i64,
        origin: AppendOrigin,
    ) -> Result<Option<BatchMetadata>, AppendError> {
        let pid = h.producer_id;
        if origin == AppendOrigin::Client {
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
        if !h.is_control() && origin == AppendOrigin::Client {
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
            }
        }
        entry.apply(h, first_offset);
        Ok(None)
    }

    /// Applies checked updates after the batches were written.
    pub fn commit(&mut self, pending: PendingUpdates) {
        self.producers.extend(pending.entries);
    }

    /// Records a batch without validation (recovery replay, follower appends).
    pub fn replay(&mut self, h: &BatchHeader) {
        if !h.has_producer_id() {
            return;
        }
        self.producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerStateEntry::new(h.producer_id))
            .apply(h, h.base_offset);
    }

    /// Removes producers whose last batch is `expiration_ms` older than `now_ms`
    /// and that have no open transaction. Returns how many were removed.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
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
        let r = m.check(&mut p, &h, offset, AppendOrigin::Client)?;
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

    #[test]
    fn expiration_removes_idle_producers() {
        let mut m = ProducerStateManager::default();
        append(&mut m, header(7, 0, 0, 1), 0).unwrap();
        assert_eq!(m.expire(1000, 5000), 0);
        assert_eq!(m.expire(10_000, 5000), 1);
        assert_eq!(m.len(), 0);
    }
}
