//! Replays `__consumer_offsets` into groups' state (start-up), in log order,
//! one partition after the other.
//!
//! Offsets in a transactional batch are held pending for their producer until
//! that producer's COMMIT or ABORT marker appears later in the same partition
//! (KIP-98): a commit applies them unless a later record of the log already
//! committed the partition, an abort drops them. A transaction with no marker
//! by the end of the log is still open: its offsets stay pending and the
//! transaction coordinator completes them when it writes the marker.
//!
//! No I/O: the caller reads the batches and hands them over decoded.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use strom_protocol::records::{parse_control_record, BatchHeader, ControlRecordType, Record};

use super::consumer_records::{ConsumerKey, GroupRecordsLoad};
use super::coordinator::OFFSETS_TOPIC;
use super::offsets::GroupOffsets;
use super::records::{GroupValue, OffsetValue, OffsetsKey};

/// Groups' state as read back so far.
#[derive(Default)]
pub struct Replay {
    /// Classic group metadata by group (`None`: tombstoned).
    pub metadata: HashMap<String, Option<GroupValue>>,
    /// Offsets by group, committed and pending.
    pub offsets: HashMap<String, GroupOffsets>,
    /// KIP-848 consumer group records by group.
    pub consumers: HashMap<String, GroupRecordsLoad>,
    /// The partition being replayed: groups holding pending offsets of each
    /// producer id, for its transaction marker to complete.
    open: HashMap<i64, BTreeSet<String>>,
}

impl Replay {
    /// The next batches come from another partition: transaction markers only
    /// complete offsets written in their own partition.
    pub fn end_partition(&mut self) {
        self.open.clear();
    }

    /// Applies one batch read back from the log.
    pub fn batch(&mut self, header: &BatchHeader, records: Vec<Record>) {
        if header.is_control() {
            let marker = records.first().and_then(parse_control_record);
            if let Some((kind, _coordinator_epoch)) = marker {
                self.end_transaction(header.producer_id, kind == ControlRecordType::Commit);
            }
            return;
        }
        let producer_id = header.is_transactional().then_some(header.producer_id);
        for record in records {
            let record_offset = record.offset(header);
            let Some(key) = record.key else {
                continue;
            };
            match OffsetsKey::decode(key.clone()) {
                Ok(Some(OffsetsKey::Offset {
                    group,
                    topic,
                    partition,
                })) => self.offset(
                    group,
                    (topic, partition),
                    record.value,
                    record_offset,
                    producer_id,
                ),
                Ok(Some(OffsetsKey::Group { group })) => match record.value.map(GroupValue::decode)
                {
                    Some(Ok(v)) => {
                        self.metadata.insert(group, Some(v));
                    }
                    None => {
                        self.metadata.insert(group, None);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "skipping unreadable group record")
                    }
                },
                Ok(None) => self.consumer_record(key, record.value),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping unreadable {OFFSETS_TOPIC} key")
                }
            }
        }
    }

    /// An offset record (or tombstone) at `record_offset`; `producer_id` is
    /// set when it was written inside a transaction.
    fn offset(
        &mut self,
        group: String,
        key: (String, i32),
        value: Option<Bytes>,
        record_offset: i64,
        producer_id: Option<i64>,
    ) {
        let value = match value.map(OffsetValue::decode) {
            Some(Ok(v)) => Some(v),
            None => None,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "skipping unreadable offset record");
                return;
            }
        };
        let offsets = self.offsets.entry(group.clone()).or_default();
        match (value, producer_id) {
            (Some(v), Some(pid)) => {
                offsets.add_pending(pid, key, v, record_offset);
                self.open.entry(pid).or_default().insert(group);
            }
            (Some(v), None) => offsets.insert_at(key, v, record_offset),
            // A tombstone deletes the committed offset and every pending one,
            // whoever wrote it (Kafka's replay does the same).
            (None, _) => {
                offsets.saw_record(record_offset);
                offsets.remove(&key);
            }
        }
    }

    /// A transaction marker of `producer_id` in the partition being replayed.
    fn end_transaction(&mut self, producer_id: i64, commit: bool) {
        for group in self.open.remove(&producer_id).unwrap_or_default() {
            if let Some(offsets) = self.offsets.get_mut(&group) {
                offsets.complete(producer_id, commit);
            }
        }
    }

    /// Adds one KIP-848 record to its group's state.
    fn consumer_record(&mut self, key: Bytes, value: Option<Bytes>) {
        match ConsumerKey::decode(key) {
            Ok(Some(key)) => {
                let group = key.group().to_owned();
                if let Err(e) = self.consumers.entry(group).or_default().apply(key, value) {
                    tracing::warn!(error = %e, "skipping unreadable consumer group record");
                }
            }
            // Share and streams group records are not ours to load.
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "skipping unreadable {OFFSETS_TOPIC} key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use strom_protocol::records::{control_batch, decode_batch, Compression, RecordBatchBuilder};

    use super::*;

    const G: &str = "g";

    fn offset_record(partition: i32, offset: i64) -> (Bytes, Option<Bytes>) {
        let key = OffsetsKey::Offset {
            group: G.to_owned(),
            topic: "t".to_owned(),
            partition,
        };
        let value = OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 1,
            expire_timestamp_ms: -1,
        };
        (key.encode(), Some(value.encode()))
    }

    /// A batch at `base_offset`: plain, or transactional for `producer_id`.
    fn batch(
        base_offset: i64,
        producer_id: Option<i64>,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Bytes {
        let mut b = RecordBatchBuilder::new(Compression::None).base_offset(base_offset);
        if let Some(pid) = producer_id {
            b = b.producer(pid, 0, -1).transactional(true);
        }
        for (k, v) in records {
            b.push(1, Some(k), v, Vec::new());
        }
        b.build().unwrap().freeze()
    }

    fn marker(base_offset: i64, producer_id: i64, commit: bool) -> Bytes {
        let kind = if commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        };
        control_batch(kind, producer_id, 0, 0, base_offset, 0, 1).freeze()
    }

    fn replay(batches: &[Bytes]) -> Replay {
        let mut r = Replay::default();
        for b in batches {
            let (header, records) = decode_batch(b, 1 << 20).unwrap();
            r.batch(&header, records);
        }
        r
    }

    fn committed(r: &Replay, partition: i32) -> Option<i64> {
        r.offsets[G]
            .get(&("t".to_owned(), partition))
            .map(|v| v.offset)
    }

    #[test]
    fn a_commit_marker_applies_the_transactions_offsets() {
        let r = replay(&[
            batch(0, Some(7), vec![offset_record(0, 10), offset_record(1, 11)]),
            marker(2, 7, true),
        ]);
        assert_eq!(committed(&r, 0), Some(10));
        assert_eq!(committed(&r, 1), Some(11));
        assert!(!r.offsets[G].has_any_pending());
    }

    #[test]
    fn an_abort_marker_drops_the_transactions_offsets() {
        let r = replay(&[
            batch(0, None, vec![offset_record(0, 5)]),
            batch(1, Some(7), vec![offset_record(0, 10)]),
            marker(2, 7, false),
        ]);
        assert_eq!(committed(&r, 0), Some(5));
        assert!(!r.offsets[G].has_any_pending());
    }

    #[test]
    fn without_a_marker_the_offsets_stay_pending() {
        let r = replay(&[batch(0, Some(7), vec![offset_record(0, 10)])]);
        assert_eq!(committed(&r, 0), None);
        assert!(r.offsets[G].has_pending_from(7));
    }

    #[test]
    fn a_plain_commit_between_the_offsets_and_the_marker_wins() {
        let r = replay(&[
            batch(0, Some(7), vec![offset_record(0, 10)]),
            batch(1, None, vec![offset_record(0, 20)]),
            marker(2, 7, true),
        ]);
        assert_eq!(committed(&r, 0), Some(20));
    }

    #[test]
    fn a_tombstone_drops_pending_offsets_of_its_partition() {
        let r = replay(&[
            batch(0, Some(7), vec![offset_record(0, 10)]),
            batch(1, None, vec![(offset_record(0, 0).0, None)]),
            marker(2, 7, true),
        ]);
        assert_eq!(committed(&r, 0), None);
        assert!(!r.offsets[G].has_any_pending());
    }

    #[test]
    fn a_marker_in_another_partition_does_not_complete_the_offsets() {
        let mut r = replay(&[batch(0, Some(7), vec![offset_record(0, 10)])]);
        r.end_partition();
        let (h, recs) = decode_batch(&marker(0, 7, true), 1 << 20).unwrap();
        r.batch(&h, recs);
        assert_eq!(committed(&r, 0), None);
        assert!(r.offsets[G].has_pending_from(7));
    }
}
