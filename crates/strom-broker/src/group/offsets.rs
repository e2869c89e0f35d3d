//! One group's offsets: the committed ones, and the ones written inside
//! transactions that are still open (KIP-98 pending transactional offsets).
//!
//! A TxnOffsetCommit writes ordinary offset records to `__consumer_offsets`,
//! but in a transactional batch of the producer; they take effect only when
//! the transaction's COMMIT marker follows them in the log, and vanish with an
//! ABORT marker. Until then they are held here per producer id, invisible to
//! OffsetFetch (which answers UNSTABLE_OFFSET_COMMIT for them when asked for
//! stable offsets).
//!
//! Every offset remembers the log offset of the record that wrote it, because
//! Kafka resolves a mix of plain and transactional commits of one partition by
//! log order: when a transaction commits, its offset replaces the committed
//! one only if its record is later in the log (Kafka's
//! `OffsetMetadataManager.replayEndTransactionMarker`). Without that, the
//! commit marker of an older transaction would roll a newer plain commit back.
//!
//! This is a plain data structure: no I/O, no clock.

use std::collections::BTreeMap;

use super::records::OffsetValue;

/// A topic partition of the group's offsets: `(topic, partition)`.
pub type OffsetKey = (String, i32);

/// An offset and the log offset of the `__consumer_offsets` record that wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PositionedOffset {
    pub value: OffsetValue,
    /// Where the record sits in the group's `__consumer_offsets` partition
    /// (for plain commits applied by [`GroupOffsets::insert`], a lower bound
    /// that orders it correctly against every other record of the group; see
    /// [`GroupOffsets::next_record_offset`]).
    pub record_offset: i64,
}

/// What completing a transaction did to one group's offsets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    /// Pending offsets that became the committed offset.
    pub materialized: usize,
    /// Pending offsets dropped: the transaction aborted, or a later record in
    /// the log had already committed that partition.
    pub dropped: usize,
}

/// The offsets of one group.
#[derive(Clone, Debug, Default)]
pub struct GroupOffsets {
    /// Committed offsets, visible to OffsetFetch.
    committed: BTreeMap<OffsetKey, PositionedOffset>,
    /// Offsets written by open transactions, by producer id. Bounded by what
    /// each producer wrote: at most one entry per partition it committed,
    /// removed when its transaction completes or the partition's offsets are
    /// deleted.
    pending: BTreeMap<i64, BTreeMap<OffsetKey, PositionedOffset>>,
    /// A log offset no record of this group applied so far has reached.
    ///
    /// Plain commits are applied by callers that do not learn where their
    /// record landed ([`GroupOffsets::insert`]). They are stamped with this
    /// value, which then moves on by one. Since every record of the group is
    /// appended under the coordinator's lock before it is applied, and each
    /// record takes at least one offset, the stamp never exceeds the record's
    /// real log offset, is larger than every record applied before it, and is
    /// smaller than every record appended after it: comparisons with pending
    /// offsets' real log offsets give the log order.
    next_record_offset: i64,
}

impl GroupOffsets {
    /// The committed offset of a partition.
    pub fn get(&self, key: &OffsetKey) -> Option<&OffsetValue> {
        self.committed.get(key).map(|p| &p.value)
    }

    /// The committed offset of a partition and where its record is.
    pub fn get_positioned(&self, key: &OffsetKey) -> Option<&PositionedOffset> {
        self.committed.get(key)
    }

    /// Every committed offset, in topic-partition order.
    pub fn iter(&self) -> impl Iterator<Item = (&OffsetKey, &OffsetValue)> {
        self.committed.iter().map(|(k, p)| (k, &p.value))
    }

    /// The partitions with a committed offset.
    pub fn keys(&self) -> impl Iterator<Item = &OffsetKey> {
        self.committed.keys()
    }

    /// Number of committed offsets.
    pub fn len(&self) -> usize {
        self.committed.len()
    }

    /// Whether there is no committed offset (pending ones do not count; see
    /// [`GroupOffsets::has_any_pending`]).
    pub fn is_empty(&self) -> bool {
        self.committed.is_empty()
    }

    /// Whether the partition has a committed offset.
    pub fn has_committed(&self, key: &OffsetKey) -> bool {
        self.committed.contains_key(key)
    }

    /// Whether the group holds an offset for the partition, committed or
    /// pending in an open transaction: exactly when an offset tombstone for it
    /// deletes something, which is when Kafka's OffsetDelete writes one.
    pub fn contains_key(&self, key: &OffsetKey) -> bool {
        self.has_committed(key) || self.has_pending(key)
    }

    /// Applies a plain (non-transactional) commit whose record was just
    /// appended, without knowing its log offset (see `next_record_offset`).
    /// Returns the previously committed value.
    pub fn insert(&mut self, key: OffsetKey, value: OffsetValue) -> Option<OffsetValue> {
        let record_offset = self.next_record_offset;
        self.next_record_offset += 1;
        self.committed
            .insert(
                key,
                PositionedOffset {
                    value,
                    record_offset,
                },
            )
            .map(|p| p.value)
    }

    /// Applies a plain commit whose record is at `record_offset` (loading).
    pub fn insert_at(&mut self, key: OffsetKey, value: OffsetValue, record_offset: i64) {
        self.saw_record(record_offset);
        self.committed.insert(
            key,
            PositionedOffset {
                value,
                record_offset,
            },
        );
    }

    /// Applies an offset tombstone (OffsetDelete, expiry, group deletion): the
    /// committed offset goes, and so do the pending offsets of every open
    /// transaction for that partition, as Kafka's replay of a tombstone does.
    /// Returns the committed value removed.
    pub fn remove(&mut self, key: &OffsetKey) -> Option<OffsetValue> {
        self.pending.retain(|_, offsets| {
            offsets.remove(key);
            !offsets.is_empty()
        });
        self.committed.remove(key).map(|p| p.value)
    }

    /// Records that the group has a record at `record_offset` (every record
    /// read back while loading, tombstones included).
    pub fn saw_record(&mut self, record_offset: i64) {
        self.next_record_offset = self.next_record_offset.max(record_offset + 1);
    }

    /// Holds an offset written by `producer_id`'s open transaction at
    /// `record_offset`. A later commit of the same partition in the same
    /// transaction replaces it, as in Kafka.
    pub fn add_pending(
        &mut self,
        producer_id: i64,
        key: OffsetKey,
        value: OffsetValue,
        record_offset: i64,
    ) {
        self.saw_record(record_offset);
        self.pending.entry(producer_id).or_default().insert(
            key,
            PositionedOffset {
                value,
                record_offset,
            },
        );
    }

    /// Whether an open transaction holds an offset for the partition.
    pub fn has_pending(&self, key: &OffsetKey) -> bool {
        self.pending
            .values()
            .any(|offsets| offsets.contains_key(key))
    }

    /// Whether `producer_id` has pending offsets in this group.
    pub fn has_pending_from(&self, producer_id: i64) -> bool {
        self.pending.contains_key(&producer_id)
    }

    /// Whether any open transaction holds offsets of this group.
    pub fn has_any_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The producers with pending offsets in this group.
    pub fn pending_producers(&self) -> impl Iterator<Item = i64> + '_ {
        self.pending.keys().copied()
    }

    /// The pending offsets of a producer's open transaction.
    pub fn pending_of(&self, producer_id: i64) -> Option<&BTreeMap<OffsetKey, PositionedOffset>> {
        self.pending.get(&producer_id)
    }

    /// The partitions some open transaction holds an offset for.
    pub fn pending_keys(&self) -> impl Iterator<Item = &OffsetKey> {
        let mut keys: Vec<&OffsetKey> = self.pending.values().flat_map(|o| o.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
    }

    /// `producer_id`'s transaction ended: on commit its offsets become the
    /// committed ones, except where the committed offset's record is later in
    /// the log; on abort they are dropped.
    pub fn complete(&mut self, producer_id: i64, commit: bool) -> Completion {
        let mut outcome = Completion::default();
        let Some(offsets) = self.pending.remove(&producer_id) else {
            return outcome;
        };
        for (key, pending) in offsets {
            let newer_committed = self
                .committed
                .get(&key)
                .is_some_and(|c| c.record_offset > pending.record_offset);
            if commit && !newer_committed {
                self.committed.insert(key, pending);
                outcome.materialized += 1;
            } else {
                outcome.dropped += 1;
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(offset: i64) -> OffsetValue {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
            expire_timestamp_ms: -1,
        }
    }

    fn tp(p: i32) -> OffsetKey {
        ("t".to_owned(), p)
    }

    fn committed(o: &GroupOffsets, p: i32) -> Option<i64> {
        o.get(&tp(p)).map(|v| v.offset)
    }

    #[test]
    fn pending_offsets_are_invisible_until_the_commit() {
        let mut o = GroupOffsets::default();
        o.add_pending(7, tp(0), value(10), 100);
        assert_eq!(committed(&o, 0), None);
        assert!(o.has_pending(&tp(0)));
        assert!(o.contains_key(&tp(0)));
        assert!(!o.has_committed(&tp(0)));
        let done = o.complete(7, true);
        assert_eq!(
            done,
            Completion {
                materialized: 1,
                dropped: 0
            }
        );
        assert_eq!(committed(&o, 0), Some(10));
        assert!(!o.has_any_pending());
    }

    #[test]
    fn an_abort_drops_pending_offsets_and_keeps_the_committed_one() {
        let mut o = GroupOffsets::default();
        o.insert_at(tp(0), value(5), 50);
        o.add_pending(7, tp(0), value(10), 100);
        assert_eq!(o.complete(7, false).dropped, 1);
        assert_eq!(committed(&o, 0), Some(5));
        assert!(!o.has_pending(&tp(0)));
    }

    #[test]
    fn a_plain_commit_after_the_pending_one_wins_at_the_commit_marker() {
        let mut o = GroupOffsets::default();
        o.saw_record(99);
        o.add_pending(7, tp(0), value(10), 100);
        // The plain commit's record was appended after the pending one.
        o.insert(tp(0), value(20));
        assert!(o.get_positioned(&tp(0)).unwrap().record_offset > 100);
        assert_eq!(o.complete(7, true).dropped, 1);
        assert_eq!(committed(&o, 0), Some(20));
    }

    #[test]
    fn a_pending_offset_after_a_plain_commit_wins_at_the_commit_marker() {
        let mut o = GroupOffsets::default();
        o.insert(tp(0), value(20));
        let plain_at = o.get_positioned(&tp(0)).unwrap().record_offset;
        o.add_pending(7, tp(0), value(30), plain_at + 1);
        assert_eq!(o.complete(7, true).materialized, 1);
        assert_eq!(committed(&o, 0), Some(30));
    }

    #[test]
    fn of_two_committing_transactions_the_later_record_wins() {
        let mut o = GroupOffsets::default();
        o.add_pending(1, tp(0), value(10), 100);
        o.add_pending(2, tp(0), value(20), 101);
        // The later transaction's marker comes first.
        o.complete(2, true);
        assert_eq!(o.complete(1, true).dropped, 1);
        assert_eq!(committed(&o, 0), Some(20));
    }

    #[test]
    fn a_tombstone_removes_committed_and_pending_offsets_of_the_partition() {
        let mut o = GroupOffsets::default();
        o.insert_at(tp(0), value(5), 50);
        o.add_pending(1, tp(0), value(10), 100);
        o.add_pending(1, tp(1), value(11), 101);
        o.add_pending(2, tp(0), value(12), 102);
        assert_eq!(o.remove(&tp(0)).map(|v| v.offset), Some(5));
        assert!(!o.has_pending(&tp(0)));
        assert!(!o.has_pending_from(2), "an emptied producer is forgotten");
        assert!(o.has_pending(&tp(1)));
        assert_eq!(o.complete(1, true).materialized, 1);
        assert_eq!(committed(&o, 0), None);
        assert_eq!(committed(&o, 1), Some(11));
    }

    #[test]
    fn a_recommit_in_the_same_transaction_replaces_the_pending_offset() {
        let mut o = GroupOffsets::default();
        o.add_pending(1, tp(0), value(10), 100);
        o.add_pending(1, tp(0), value(15), 101);
        assert_eq!(o.pending_of(1).map(|p| p.len()), Some(1));
        o.complete(1, true);
        assert_eq!(committed(&o, 0), Some(15));
    }

    #[test]
    fn completing_an_unknown_producer_changes_nothing() {
        let mut o = GroupOffsets::default();
        o.insert_at(tp(0), value(5), 50);
        assert_eq!(o.complete(9, true), Completion::default());
        assert_eq!(committed(&o, 0), Some(5));
    }

    #[test]
    fn pending_keys_lists_each_partition_once() {
        let mut o = GroupOffsets::default();
        o.add_pending(1, tp(0), value(10), 100);
        o.add_pending(2, tp(0), value(12), 102);
        o.add_pending(2, tp(1), value(13), 103);
        let keys: Vec<_> = o.pending_keys().cloned().collect();
        assert_eq!(keys, vec![tp(0), tp(1)]);
    }
}
