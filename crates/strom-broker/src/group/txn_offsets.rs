//! The group coordinator's side of transactions (KIP-98, KIP-447):
//! TxnOffsetCommit writes a producer's offsets into `__consumer_offsets` as a
//! transactional batch and holds them pending; the transaction coordinator's
//! COMMIT or ABORT marker in that partition then applies or drops them
//! ([`GroupCoordinator::complete_transaction`]).
//!
//! Ordering: the offsets' batch is appended and the pending offsets recorded
//! under the coordinator's lock, and the transaction coordinator writes the
//! marker before it calls `complete_transaction`, so the pending offsets of a
//! transaction are always in place when its marker is applied. A zombie's
//! TxnOffsetCommit that lands after its transaction's marker is the hanging
//! transaction KIP-890 closes; see the verification hook in
//! `handlers/txn_offset_commit.rs`.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use strom_protocol::records::{Compression, RecordBatchBuilder, NO_SEQUENCE};
use strom_protocol::ErrorCode;

use super::coordinator::{GroupCoordinator, GroupEntry, OFFSETS_TOPIC};
use super::records::{OffsetValue, OffsetsKey};
use crate::state::State;

/// Which groups hold pending offsets of which producer id. Entries may outlive
/// the offsets they point at (a group deleted, an OffsetDelete): lookups check
/// the group, and the producer's transaction marker removes the entry.
#[derive(Default)]
pub struct OpenTransactions {
    groups_by_producer: HashMap<i64, BTreeSet<String>>,
}

impl OpenTransactions {
    /// Notes that `group_id` holds pending offsets of `producer_id`.
    pub fn add(&mut self, producer_id: i64, group_id: &str) {
        let groups = self.groups_by_producer.entry(producer_id).or_default();
        if !groups.contains(group_id) {
            groups.insert(group_id.to_owned());
        }
    }

    /// Removes and returns the groups of `producer_id` that `in_partition`
    /// selects (those stored in the partition the marker was written to).
    pub fn take(&mut self, producer_id: i64, in_partition: impl Fn(&str) -> bool) -> Vec<String> {
        let Some(groups) = self.groups_by_producer.get_mut(&producer_id) else {
            return Vec::new();
        };
        let taken: Vec<String> = groups.iter().filter(|g| in_partition(g)).cloned().collect();
        for g in &taken {
            groups.remove(g);
        }
        if groups.is_empty() {
            self.groups_by_producer.remove(&producer_id);
        }
        taken
    }

    /// Number of producers with open transactions holding offsets.
    pub fn producers(&self) -> usize {
        self.groups_by_producer.len()
    }
}

/// One partition's offset in a TxnOffsetCommit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Leader epoch of the last consumed record, or -1 (TxnOffsetCommit v2+).
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A TxnOffsetCommit as the coordinator sees it (versions 0–5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnOffsetCommit {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The committing member, `""` when not given (before v3).
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// Generation (classic) or member epoch (KIP-848), -1 when not given.
    pub generation_id: i32,
    pub offsets: Vec<TxnOffset>,
}

impl GroupCoordinator {
    /// Handles a TxnOffsetCommit: validates the group and the member as
    /// Kafka does for transactional commits, writes the accepted offsets in
    /// one transactional batch of the producer and, once it is durable, holds
    /// them pending until the transaction's marker. Answers one code per entry
    /// of `request.offsets`, in order.
    pub async fn txn_offset_commit(
        &self,
        state: &State,
        request: &TxnOffsetCommit,
        now_ms: i64,
    ) -> Vec<ErrorCode> {
        let all = |code| vec![code; request.offsets.len()];
        if request.group_id.is_empty() {
            return all(ErrorCode::InvalidGroupId);
        }
        let group_id = request.group_id.as_str();
        let mut groups = self.lock().await;
        let validation = match groups.groups.get(group_id) {
            Some(GroupEntry {
                consumer: Some(c), ..
            }) => c.validate_txn_offset_commit(
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
            ),
            Some(entry) => entry.classic.validate_txn_offset_commit(
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
            ),
            // Kafka creates a "simple" group for a commit without generation
            // (created below, once the offsets are written).
            None if request.generation_id < 0 => Ok(()),
            None => Err(ErrorCode::IllegalGeneration),
        };
        let image = state.controller.image();
        let mut codes = Vec::with_capacity(request.offsets.len());
        let mut accepted = Vec::new();
        for (i, o) in request.offsets.iter().enumerate() {
            let metadata = o.metadata.clone().unwrap_or_default();
            let known = image
                .topic(&o.topic)
                .is_some_and(|t| o.partition >= 0 && (o.partition as usize) < t.partitions.len());
            let code = if !known {
                // Kafka answers unknown partitions before asking the coordinator.
                ErrorCode::UnknownTopicOrPartition
            } else if let Err(code) = validation {
                code
            } else if metadata.len() > self.config.offset_metadata_max_bytes {
                ErrorCode::OffsetMetadataTooLarge
            } else {
                let value = OffsetValue {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                    expire_timestamp_ms: -1,
                };
                accepted.push((i, (o.topic.clone(), o.partition), value));
                ErrorCode::None
            };
            codes.push(code);
        }
        if accepted.is_empty() {
            return codes;
        }
        let records = accepted
            .iter()
            .map(|(_, (topic, partition), value)| {
                let key = OffsetsKey::Offset {
                    group: group_id.to_owned(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                (key.encode(), Some(value.encode()))
            })
            .collect();
        let base_offset = match self
            .append_transactional(state, request, records, now_ms)
            .await
        {
            Ok(base_offset) => base_offset,
            Err(code) => {
                for (i, _, _) in &accepted {
                    codes[*i] = code;
                }
                return codes;
            }
        };
        let entry = groups
            .groups
            .entry(group_id.to_owned())
            .or_insert_with(|| GroupEntry::new(group_id, now_ms));
        for (record, (_, key, value)) in accepted.into_iter().enumerate() {
            let record_offset = base_offset + record as i64;
            entry
                .offsets
                .add_pending(request.producer_id, key, value, record_offset);
        }
        groups.open_transactions.add(request.producer_id, group_id);
        codes
    }

    /// Applies the end of `producer_id`'s transaction to the groups stored in
    /// `__consumer_offsets` partition `offsets_partition`: called once its
    /// COMMIT (`commit`) or ABORT marker is durable there. Committed offsets
    /// replace the group's offsets unless the group's offset record for that
    /// partition is later in the log; aborted ones are dropped.
    pub async fn complete_transaction(
        &self,
        offsets_partition: i32,
        producer_id: i64,
        commit: bool,
    ) {
        let mut groups = self.lock().await;
        let group_ids = groups
            .open_transactions
            .take(producer_id, |g| self.partition_for(g) == offsets_partition);
        for group_id in group_ids {
            let Some(entry) = groups.groups.get_mut(&group_id) else {
                continue;
            };
            let done = entry.offsets.complete(producer_id, commit);
            tracing::debug!(
                group = %group_id,
                producer_id,
                commit,
                materialized = done.materialized,
                dropped = done.dropped,
                "transactional offsets completed"
            );
        }
    }

    /// Appends `records` to the group's `__consumer_offsets` partition as one
    /// transactional batch of the request's producer, waits until it is
    /// durable, and returns the batch's base offset (record `i` is at base + i).
    /// Sequence numbers are not checked (Kafka skips them for coordinator
    /// writes); the producer epoch is, so a fenced producer is refused.
    async fn append_transactional(
        &self,
        state: &State,
        request: &TxnOffsetCommit,
        records: Vec<(Bytes, Option<Bytes>)>,
        now_ms: i64,
    ) -> Result<i64, ErrorCode> {
        self.ensure_offsets_topic(state)?;
        let partition = state
            .replicas
            .get(OFFSETS_TOPIC, self.partition_for(&request.group_id))
            .ok_or(ErrorCode::CoordinatorNotAvailable)?;
        let mut builder = RecordBatchBuilder::new(Compression::None)
            .producer(request.producer_id, request.producer_epoch, NO_SEQUENCE)
            .transactional(true);
        for (key, value) in records {
            builder.push(now_ms, Some(key), value, Vec::new());
        }
        let batch = builder
            .build()
            .map_err(|_| ErrorCode::UnknownServerError)?
            .freeze();
        match partition.append_from_coordinator(&batch, now_ms).await {
            Ok(appended) => {
                state.notify_data();
                Ok(appended.base_offset)
            }
            Err(e) => {
                tracing::warn!(group = %request.group_id, producer_id = request.producer_id, code = ?e.code, message = %e.message, "transactional offset commit not written");
                Err(txn_append_error(e.code))
            }
        }
    }
}

/// The code a TxnOffsetCommit answers for a failed append. A stale producer
/// epoch stays INVALID_PRODUCER_EPOCH in every version: Kafka's group
/// coordinator passes the log's answer through (KIP-588 moved only the
/// transaction coordinator's APIs to PRODUCER_FENCED), and producers treat
/// both as fenced. The rest follows Kafka's coordinator error mapping.
fn txn_append_error(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::InvalidProducerEpoch
        | ErrorCode::ProducerFenced
        | ErrorCode::InvalidTxnState => code,
        ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => {
            ErrorCode::InvalidCommitOffsetSize
        }
        ErrorCode::KafkaStorageError | ErrorCode::NotLeaderOrFollower => ErrorCode::NotCoordinator,
        _ => ErrorCode::CoordinatorNotAvailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_takes_only_the_groups_of_its_partition() {
        let mut open = OpenTransactions::default();
        open.add(7, "a");
        open.add(7, "b");
        open.add(8, "a");
        assert_eq!(open.take(7, |g| g == "a"), vec!["a".to_owned()]);
        assert_eq!(open.take(7, |g| g == "a"), Vec::<String>::new());
        assert_eq!(open.take(7, |_| true), vec!["b".to_owned()]);
        assert_eq!(open.producers(), 1, "producer 7 is forgotten once empty");
    }

    #[test]
    fn a_fenced_producer_stays_invalid_producer_epoch() {
        assert_eq!(
            txn_append_error(ErrorCode::InvalidProducerEpoch),
            ErrorCode::InvalidProducerEpoch
        );
        assert_eq!(
            txn_append_error(ErrorCode::KafkaStorageError),
            ErrorCode::NotCoordinator
        );
    }
}
