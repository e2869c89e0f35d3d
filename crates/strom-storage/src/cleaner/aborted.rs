//! Which batches the cleaner may treat as aborted: those of a transaction
//! whose ABORT marker is in the aborted-transaction index (the part of
//! Kafka's `CleanedTransactionMetadata` that decides `isAborted`).

use std::collections::HashMap;

use strom_protocol::records::BatchHeader;

use crate::txn_index::AbortedTxn;

/// The aborted transactions overlapping the range being cleaned, by producer.
#[derive(Debug, Default)]
pub(crate) struct AbortedBatches {
    /// Producer id → `(first offset, marker offset)` of its aborted
    /// transactions, ordered by marker offset (a producer has one transaction
    /// at a time, so the ranges do not overlap).
    by_producer: HashMap<i64, Vec<(i64, i64)>>,
}

impl AbortedBatches {
    /// Groups `txns` (as returned by the aborted-transaction index, in
    /// marker order per segment) by producer.
    pub fn new(txns: impl IntoIterator<Item = AbortedTxn>) -> Self {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in txns {
            by_producer
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        for ranges in by_producer.values_mut() {
            ranges.sort_unstable_by_key(|&(_, last)| last);
            ranges.dedup();
        }
        AbortedBatches { by_producer }
    }

    /// Whether `h` is a data batch of an aborted transaction: transactional,
    /// at or after the transaction's first offset and before its ABORT marker.
    pub fn contains(&self, h: &BatchHeader) -> bool {
        if h.is_control() || !h.is_transactional() {
            return false;
        }
        let Some(ranges) = self.by_producer.get(&h.producer_id) else {
            return false;
        };
        let i = ranges.partition_point(|&(_, marker)| marker <= h.base_offset);
        ranges
            .get(i)
            .is_some_and(|&(first, _)| first <= h.base_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::records::{CONTROL_BIT, TRANSACTIONAL_BIT};

    fn header(pid: i64, base: i64, attributes: i16) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: 0,
            records_count: 1,
        }
    }

    #[test]
    fn only_transactional_data_batches_inside_an_aborted_range_count() {
        let txn = |pid, first, last| AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        };
        let aborted = AbortedBatches::new([txn(1, 10, 20), txn(1, 30, 40), txn(2, 15, 16)]);
        let t = TRANSACTIONAL_BIT;
        for (pid, base, attributes, expected) in [
            (1, 10, t, true),
            (1, 19, t, true),
            (1, 20, t | CONTROL_BIT, false), // the marker itself
            (1, 25, t, false),               // between two aborted transactions
            (1, 35, t, true),
            (1, 35, 0, false), // not transactional
            (1, 41, t, false),
            (2, 15, t, true),
            (3, 15, t, false), // another producer
        ] {
            assert_eq!(
                aborted.contains(&header(pid, base, attributes)),
                expected,
                "producer {pid} offset {base}"
            );
        }
    }
}
