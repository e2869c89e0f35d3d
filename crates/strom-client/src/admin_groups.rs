//! Consumer-group administration on [`Admin`], shaped like Java's `Admin`
//! group calls: list and describe groups, list / alter / delete a group's
//! committed offsets, delete groups, plus the partition-level calls the group
//! tools need (ListOffsets, CreatePartitions).
//!
//! Every group call goes to the group's coordinator, found with
//! FindCoordinator (key type 0; one batched request for many groups from v4,
//! KIP-699). While a coordinator is loading its groups or has moved
//! (COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE)
//! or a connection breaks, the call looks the coordinator up again and retries
//! until [`DEFAULT_API_TIMEOUT`] has passed, as Java's `AdminApiDriver` does.

mod coordinator;
mod describe;
mod offsets;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use strom_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use strom_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use strom_protocol::messages::{
    CreatePartitionsRequest, DeleteGroupsRequest, ListGroupsRequest, OffsetDeleteRequest, StrBytes,
};
use strom_protocol::ErrorCode;
use tokio::time::Instant;
use tracing::debug;

use crate::admin::Admin;
use crate::consumer::offsets::list_offsets;
use crate::consumer::{ConsumerConfig, ConsumerError, OffsetAndMetadata, TopicPartition};
use crate::error::ClientError;
use describe::describe_on;
use offsets::{by_topic, offset_commit_request, offset_fetch_on, single};

/// Bound on one admin call, retries included (Java's `default.api.timeout.ms`).
/// A dead coordinator makes a call wait this long before it fails.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause before retrying a retriable error (Java's `retry.backoff.ms`).
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// FindCoordinator's key type for a group (1 is a transactional id).
const KEY_TYPE_GROUP: i8 = 0;
/// How long CreatePartitions may take on the broker (Java's default API timeout).
const CREATE_PARTITIONS_TIMEOUT_MS: i32 = 60_000;
/// Newest `ConsumerProtocolAssignment` schema this client knows. Newer
/// payloads are read as this version and their extra trailing fields ignored,
/// as Java's `ConsumerProtocol.deserializeAssignment` does.
const ASSIGNMENT_MAX_VERSION: i16 = 3;

/// One group as ListGroups reports it (Java's `GroupListing`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// `consumer` for consumer groups, empty for a group that only stores
    /// offsets (simple consumers, admin commits), else e.g. `connect`.
    pub protocol_type: String,
    /// Kafka's state name (`Stable`, `Empty`, ...), from brokers with ListGroups v4+.
    pub state: Option<String>,
    /// `classic` or `consumer` (KIP-848), from brokers with ListGroups v5+.
    pub group_type: Option<String>,
}

impl GroupListing {
    /// Whether Java's `listConsumerGroups` would list it: protocol type
    /// `consumer` or none (a group that only has committed offsets).
    pub fn is_consumer_group(&self) -> bool {
        self.protocol_type.is_empty() || self.protocol_type == "consumer"
    }
}

/// A group's state and members (Java's `ConsumerGroupDescription`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// `classic` (JoinGroup / SyncGroup members) or `consumer` (KIP-848 members).
    pub group_type: String,
    /// Kafka's state name: `Empty`, `Stable`, `PreparingRebalance`, ... A broker
    /// older than DescribeGroups v6 describes a group it does not know as `Dead`.
    pub state: String,
    /// `consumer` for consumer groups, empty for a group that only stores offsets.
    pub protocol_type: String,
    /// The partition assignor: the classic group's chosen protocol (`range`,
    /// `cooperative-sticky`, ...) or the KIP-848 server-side assignor.
    pub assignor: String,
    pub members: Vec<MemberDescription>,
    /// The broker id of the group coordinator that answered.
    pub coordinator: i32,
    /// The group epoch of a KIP-848 group; None for classic groups.
    pub group_epoch: Option<i32>,
}

/// One member of a group (Java's `MemberDescription`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    /// The static member id (`group.instance.id`, KIP-345), if any.
    pub group_instance_id: Option<String>,
    pub client_id: String,
    /// The member's address as the coordinator saw it (Kafka writes `/127.0.0.1`).
    pub client_host: String,
    /// Partitions currently assigned to the member, sorted. Empty while a
    /// classic group rebalances or when its protocol type is not `consumer`.
    pub assignment: Vec<TopicPartition>,
    /// The member epoch of a KIP-848 member; None for classic members.
    pub member_epoch: Option<i32>,
}

/// Which offset ListOffsets looks up (Java's `OffsetSpec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the high watermark, as the admin reads uncommitted).
    Latest,
    /// The first offset whose timestamp is at least this many ms since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    /// The ListOffsets `timestamp` field.
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

/// One partition's ListOffsets answer (Java's `ListOffsetsResultInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListOffsetsResultInfo {
    /// The offset found, or -1 when no record has a timestamp at or after the
    /// one asked for.
    pub offset: i64,
    /// The found record's timestamp; -1 for the log ends.
    pub timestamp: i64,
    pub leader_epoch: Option<i32>,
}

/// Per-group answers of one coordinator request.
type GroupAnswers<T> = Vec<(String, Result<T, ClientError>)>;

/// Errors after which a group request is retried, after looking the
/// coordinator up again.
fn coordinator_retriable(e: &ClientError) -> bool {
    match e.code() {
        Some(code) => [
            ErrorCode::CoordinatorLoadInProgress,
            ErrorCode::NotCoordinator,
            ErrorCode::CoordinatorNotAvailable,
        ]
        .iter()
        .any(|c| c.code() == code),
        None => e.is_retriable(),
    }
}

fn opt_string(s: Option<&StrBytes>) -> Option<String> {
    s.map(|s| s.to_string())
}

impl Admin {
    /// Every group on every broker (ListGroups to each broker in the metadata,
    /// merged), sorted by group id. Includes non-consumer groups; see
    /// [`GroupListing::is_consumer_group`].
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        let deadline = Instant::now() + DEFAULT_API_TIMEOUT;
        self.cluster().refresh(&[]).await?;
        let mut merged = BTreeMap::new();
        for broker in self.cluster().brokers() {
            loop {
                match self.list_groups_on(broker.id).await {
                    Ok(groups) => {
                        merged.extend(groups.into_iter().map(|g| (g.group_id.clone(), g)));
                        break;
                    }
                    Err(e) if e.is_retriable() && Instant::now() + RETRY_BACKOFF < deadline => {
                        debug!(broker = broker.id, error = %e, "ListGroups: retrying");
                        tokio::time::sleep(RETRY_BACKOFF).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(merged.into_values().collect())
    }

    async fn list_groups_on(&self, node: i32) -> Result<Vec<GroupListing>, ClientError> {
        let conn = self.cluster().connection(node).await?;
        let version = conn.version_for::<ListGroupsRequest>()?;
        let resp = conn.send(&ListGroupsRequest::default()).await?;
        ClientError::check(resp.error_code, None)?;
        Ok(resp
            .groups
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.group_id.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: (version >= 4).then(|| g.group_state.to_string()),
                group_type: (version >= 5).then(|| g.group_type.to_string()),
            })
            .collect())
    }

    /// Describes groups; one result per group id. A group the coordinator
    /// does not know is GROUP_ID_NOT_FOUND (or, from brokers before
    /// DescribeGroups v6, a description in state `Dead`). KIP-848 groups,
    /// which DescribeGroups does not describe, are asked again with
    /// ConsumerGroupDescribe.
    pub async fn describe_groups(
        &self,
        group_ids: &[&str],
    ) -> Result<BTreeMap<String, Result<GroupDescription, ClientError>>, ClientError> {
        self.on_coordinators(group_ids, "DescribeGroups", describe_on)
            .await
    }

    /// The committed offsets of `group_id`: of `partitions`, or of every
    /// partition with a committed offset when None. Partitions without a
    /// committed offset, or that the coordinator answers with an error, are
    /// left out (Java's `listConsumerGroupOffsets` maps them to null or skips them).
    pub async fn list_group_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>, ClientError> {
        let by_topic = partitions.map(by_topic);
        let by_topic = by_topic.as_ref();
        let answers = self
            .on_coordinators(&[group_id], "OffsetFetch", |_, conn, groups| async move {
                offset_fetch_on(conn, groups, by_topic).await
            })
            .await?;
        single(answers, group_id)
    }

    /// Commits `offsets` for `group_id` as an administrator: generation -1 and
    /// no member id, as Java's `alterConsumerGroupOffsets`. The coordinator
    /// accepts that only while the group has no members; otherwise every
    /// partition answers UNKNOWN_MEMBER_ID. One result per partition.
    pub async fn alter_group_offsets(
        &self,
        group_id: &str,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<BTreeMap<TopicPartition, Result<(), ClientError>>, ClientError> {
        if offsets.is_empty() {
            return Ok(BTreeMap::new());
        }
        let req = &offset_commit_request(group_id, offsets);
        let answers = self
            .on_coordinators(&[group_id], "OffsetCommit", |_, conn, _| async move {
                let resp = conn.send(req).await?;
                let mut results = BTreeMap::new();
                for t in resp.topics {
                    for p in t.partitions {
                        let result = ClientError::check(p.error_code, None);
                        // A coordinator error on any partition is about the
                        // whole group: retry the commit elsewhere.
                        if let Err(e) = &result {
                            if coordinator_retriable(e) {
                                return Ok(vec![(req.group_id.to_string(), Err(e.clone()))]);
                            }
                        }
                        results.insert(
                            TopicPartition::new(t.name.as_str(), p.partition_index),
                            result,
                        );
                    }
                }
                Ok(vec![(req.group_id.to_string(), Ok(results))])
            })
            .await?;
        single(answers, group_id)
    }

    /// Deletes groups and their committed offsets; one result per group id.
    /// A group with members is NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND.
    pub async fn delete_groups(
        &self,
        group_ids: &[&str],
    ) -> Result<BTreeMap<String, Result<(), ClientError>>, ClientError> {
        self.on_coordinators(group_ids, "DeleteGroups", |_, conn, groups| async move {
            let mut req = DeleteGroupsRequest::default();
            req.groups_names = groups.iter().map(|g| g.as_str().into()).collect();
            let resp = conn.send(&req).await?;
            Ok(resp
                .results
                .into_iter()
                .map(|r| {
                    let result =
                        ClientError::check(r.error_code, opt_string(r.error_message.as_ref()));
                    (r.group_id.to_string(), result)
                })
                .collect())
        })
        .await
    }

    /// Deletes the committed offsets of `partitions` from `group_id`
    /// (OffsetDelete, KIP-496). A group-level error (GROUP_ID_NOT_FOUND,
    /// NON_EMPTY_GROUP, ...) fails the call; a partition the group's members
    /// still subscribe to answers GROUP_SUBSCRIBED_TO_TOPIC on its own.
    pub async fn delete_group_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Result<(), ClientError>>, ClientError> {
        let mut req = OffsetDeleteRequest::default();
        req.group_id = group_id.into();
        for (name, indexes) in by_topic(partitions) {
            let mut t = OffsetDeleteRequestTopic::default();
            t.name = name.as_str().into();
            t.partitions = indexes
                .into_iter()
                .map(|i| {
                    let mut p = OffsetDeleteRequestPartition::default();
                    p.partition_index = i;
                    p
                })
                .collect();
            req.topics.push(t);
        }
        let req = &req;
        let answers = self
            .on_coordinators(&[group_id], "OffsetDelete", |_, conn, _| async move {
                let resp = conn.send(req).await?;
                let group = req.group_id.to_string();
                if let Err(e) = ClientError::check(resp.error_code, None) {
                    return Ok(vec![(group, Err(e))]);
                }
                let results = resp
                    .topics
                    .into_iter()
                    .flat_map(|t| {
                        let name = t.name.to_string();
                        t.partitions.into_iter().map(move |p| {
                            let tp = TopicPartition::new(name.as_str(), p.partition_index);
                            (tp, ClientError::check(p.error_code, None))
                        })
                    })
                    .collect();
                Ok(vec![(group, Ok(results))])
            })
            .await?;
        single(answers, group_id)
    }

    /// Looks up offsets by `OffsetSpec` with ListOffsets to each partition's
    /// leader (Java's `listOffsets`, reading uncommitted). Retriable errors are
    /// retried until [`DEFAULT_API_TIMEOUT`], so a partition that does not
    /// exist makes the call wait that long and then fail.
    pub async fn list_offsets(
        &self,
        specs: &BTreeMap<TopicPartition, OffsetSpec>,
    ) -> Result<BTreeMap<TopicPartition, ListOffsetsResultInfo>, ClientError> {
        let topics: BTreeSet<String> = specs.keys().map(|tp| tp.topic.clone()).collect();
        let topics: Vec<String> = topics.into_iter().collect();
        self.cluster().refresh(&topics).await?;
        let targets = specs
            .iter()
            .map(|(tp, spec)| (tp.clone(), spec.wire()))
            .collect();
        let config = ConsumerConfig {
            retry_backoff: RETRY_BACKOFF,
            ..ConsumerConfig::default()
        };
        let deadline = Instant::now() + DEFAULT_API_TIMEOUT;
        let found = list_offsets(self.cluster(), &config, &targets, deadline)
            .await
            .map_err(|e| match e {
                ConsumerError::Client(c) => c,
                // ListOffsets fails only with a client error or at its deadline.
                other => {
                    debug!(error = %other, "ListOffsets gave up");
                    ClientError::RequestTimeout {
                        timeout_ms: DEFAULT_API_TIMEOUT.as_millis() as u64,
                    }
                }
            })?;
        Ok(specs
            .keys()
            .map(|tp| {
                let info = found.get(tp).map_or(
                    ListOffsetsResultInfo {
                        offset: -1,
                        timestamp: -1,
                        leader_epoch: None,
                    },
                    |l| ListOffsetsResultInfo {
                        offset: l.offset,
                        timestamp: l.timestamp,
                        leader_epoch: l.leader_epoch,
                    },
                );
                (tp.clone(), info)
            })
            .collect())
    }

    /// Grows topics to the given total partition counts (CreatePartitions);
    /// one result per topic. Asking for fewer partitions than a topic has, or
    /// as many, is INVALID_PARTITIONS.
    pub async fn create_partitions(
        &self,
        totals: &[(&str, i32)],
    ) -> Result<BTreeMap<String, Result<(), ClientError>>, ClientError> {
        let mut req = CreatePartitionsRequest::default();
        req.timeout_ms = CREATE_PARTITIONS_TIMEOUT_MS;
        for (name, total) in totals {
            let mut t = CreatePartitionsTopic::default();
            t.name = (*name).into();
            t.count = *total;
            t.assignments = None;
            req.topics.push(t);
        }
        let resp = self.cluster().any_connection().await?.send(&req).await?;
        Ok(resp
            .results
            .into_iter()
            .map(|r| {
                let result = ClientError::check(r.error_code, opt_string(r.error_message.as_ref()));
                (r.name.to_string(), result)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_coordinator_errors_and_broken_connections_retry_a_group_call() {
        assert!(coordinator_retriable(&ClientError::kafka(14, None)));
        assert!(coordinator_retriable(&ClientError::kafka(15, None)));
        assert!(coordinator_retriable(&ClientError::kafka(16, None)));
        assert!(coordinator_retriable(&ClientError::ConnectionClosed {
            addr: "x".into()
        }));
        assert!(!coordinator_retriable(&ClientError::kafka(68, None))); // NON_EMPTY_GROUP
        assert!(!coordinator_retriable(&ClientError::kafka(25, None))); // UNKNOWN_MEMBER_ID
        assert!(!coordinator_retriable(&ClientError::kafka(6, None)));
    }
}
