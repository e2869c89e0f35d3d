//! Offset lookups and commits: ListOffsets against partition leaders (resets,
//! seek to beginning/end, offsets for times) and OffsetCommit / OffsetFetch
//! against the group coordinator found with FindCoordinator.
//!
//! Every call retries retriable errors (refreshing metadata or forgetting the
//! coordinator when the error says so) until its deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use strom_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use strom_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use strom_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use strom_protocol::messages::{
    FindCoordinatorRequest, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest,
    OffsetFetchResponse,
};
use strom_protocol::ErrorCode;
use tokio::time::Instant;
use tracing::debug;

use super::{ConsumerConfig, ConsumerError, OffsetAndMetadata, TopicPartition};
use crate::cluster::Cluster;
use crate::error::ClientError;

/// One partition's ListOffsets answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: i64,
    /// The timestamp of the record found, or -1 for the log ends.
    pub timestamp: i64,
    pub leader_epoch: Option<i32>,
}

/// ListOffsets for each partition in `targets` (timestamp, or -2 earliest / -1
/// latest), one request per leader. A partition with no matching record
/// (offset -1) is absent from the answer.
pub async fn list_offsets(
    cluster: &Cluster,
    config: &ConsumerConfig,
    targets: &BTreeMap<TopicPartition, i64>,
    deadline: Instant,
) -> Result<BTreeMap<TopicPartition, ListedOffset>, ConsumerError> {
    let mut remaining = targets.clone();
    let mut found = BTreeMap::new();
    loop {
        let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, i64)>> = BTreeMap::new();
        let mut stale = false;
        for (tp, ts) in &remaining {
            match cluster.leader(&tp.topic, tp.partition) {
                Some(node) => by_leader.entry(node).or_default().push((tp.clone(), *ts)),
                None => stale = true,
            }
        }
        let mut last_error = None;
        for (node, parts) in by_leader {
            match list_from_leader(cluster, config, node, &parts).await {
                Ok(answers) => {
                    for (tp, answer) in answers {
                        match answer {
                            Ok(listed) => {
                                remaining.remove(&tp);
                                if let Some(l) = listed {
                                    found.insert(tp, l);
                                }
                            }
                            Err(e) if e.is_retriable() => {
                                stale |= e.invalidates_metadata();
                                last_error = Some(e);
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Err(e) if e.is_retriable() => {
                    stale |= e.invalidates_metadata();
                    last_error = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        if remaining.is_empty() {
            return Ok(found);
        }
        if Instant::now() + config.retry_backoff >= deadline {
            return Err(last_error.map_or(
                ConsumerError::Timeout {
                    operation: "ListOffsets",
                },
                ConsumerError::Client,
            ));
        }
        tokio::time::sleep(config.retry_backoff).await;
        if stale {
            let topics: Vec<String> = remaining.keys().map(|tp| tp.topic.clone()).collect();
            if let Err(e) = cluster.refresh(&topics).await {
                debug!(error = %e, "metadata refresh failed");
            }
        }
    }
}

type PartitionAnswer = (TopicPartition, Result<Option<ListedOffset>, ClientError>);

async fn list_from_leader(
    cluster: &Cluster,
    config: &ConsumerConfig,
    node: i32,
    parts: &[(TopicPartition, i64)],
) -> Result<Vec<PartitionAnswer>, ClientError> {
    let conn = cluster.connection(node).await?;
    let version = conn.version_for::<ListOffsetsRequest>()?;
    let mut req = ListOffsetsRequest::default();
    req.replica_id = -1;
    if version >= 2 {
        req.isolation_level = config.isolation_level.wire();
    }
    let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for (tp, ts) in parts {
        let mut p = ListOffsetsPartition::default();
        p.partition_index = tp.partition;
        p.timestamp = *ts;
        topics.entry(tp.topic.as_str()).or_default().push(p);
    }
    for (name, partitions) in topics {
        let mut t = ListOffsetsTopic::default();
        t.name = name.into();
        t.partitions = partitions;
        req.topics.push(t);
    }
    let resp = conn.send(&req).await?;
    let mut out = Vec::new();
    for t in resp.topics {
        for p in t.partitions {
            let tp = TopicPartition::new(t.name.as_str(), p.partition_index);
            let answer = ClientError::check(p.error_code, None).map(|()| {
                (p.offset >= 0).then_some(ListedOffset {
                    offset: p.offset,
                    timestamp: p.timestamp,
                    leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                })
            });
            out.push((tp, answer));
        }
    }
    Ok(out)
}

/// Who commits: a member of the group's current generation (classic) or
/// epoch (consumer protocol). Without one a commit is a "simple" commit, which
/// the coordinator accepts only for a group without members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberIdentity {
    pub member_id: String,
    /// The generation id (classic) or member epoch (consumer protocol).
    pub generation: i32,
    pub group_instance_id: Option<String>,
}

/// The group coordinator of `group.id`, found lazily and forgotten after
/// NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE.
#[derive(Clone)]
pub struct Coordinator {
    group_id: String,
    node: Option<i32>,
}

/// Errors after which the coordinator must be looked up again.
pub(super) fn coordinator_moved(code: i16) -> bool {
    code == ErrorCode::NotCoordinator.code() || code == ErrorCode::CoordinatorNotAvailable.code()
}

impl Coordinator {
    pub fn new(group_id: String) -> Coordinator {
        Coordinator {
            group_id,
            node: None,
        }
    }

    async fn connection(
        &mut self,
        cluster: &Cluster,
    ) -> Result<Arc<crate::connection::Connection>, ClientError> {
        if let Some(node) = self.node {
            if let Ok(c) = cluster.connection(node).await {
                return Ok(c);
            }
            self.node = None;
        }
        let node = self.lookup(cluster).await?;
        cluster.connection(node).await
    }

    /// Forgets the coordinator so the next call looks it up again.
    pub fn forget(&mut self) {
        self.node = None;
    }

    /// The coordinator's node id: the cached one, or FindCoordinator's answer
    /// (with the broker added to the metadata cache when it is new).
    pub async fn lookup(&mut self, cluster: &Cluster) -> Result<i32, ClientError> {
        if let Some(node) = self.node {
            return Ok(node);
        }
        let conn = cluster.any_connection().await?;
        let version = conn.version_for::<FindCoordinatorRequest>()?;
        let mut req = FindCoordinatorRequest::default();
        req.key_type = 0;
        if version >= 4 {
            req.coordinator_keys = vec![self.group_id.as_str().into()];
        } else {
            req.key = self.group_id.as_str().into();
        }
        let resp = conn.send(&req).await?;
        let node = if version >= 4 {
            let c = resp
                .coordinators
                .first()
                .ok_or_else(|| ClientError::NoMetadata {
                    what: format!("coordinator of group {}", self.group_id),
                })?;
            ClientError::check(
                c.error_code,
                c.error_message.as_ref().map(|m| m.to_string()),
            )?;
            c.node_id
        } else {
            ClientError::check(
                resp.error_code,
                resp.error_message.as_ref().map(|m| m.to_string()),
            )?;
            resp.node_id
        };
        if cluster.broker(node).is_none() {
            cluster.refresh(&[]).await?;
        }
        self.node = Some(node);
        Ok(node)
    }

    /// Runs `op` against the coordinator, retrying retriable errors until `deadline`.
    async fn retrying<T, F, Fut>(
        &mut self,
        cluster: &Cluster,
        config: &ConsumerConfig,
        deadline: Instant,
        operation: &'static str,
        mut op: F,
    ) -> Result<T, ConsumerError>
    where
        F: FnMut(Arc<crate::connection::Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        loop {
            let result = match self.connection(cluster).await {
                Ok(conn) => op(conn).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e)
                    if e.is_retriable()
                        || e.code() == Some(ErrorCode::UnstableOffsetCommit.code()) =>
                {
                    if e.code().is_some_and(coordinator_moved)
                        || matches!(e, ClientError::ConnectionClosed { .. })
                    {
                        self.node = None;
                    }
                    if Instant::now() + config.retry_backoff >= deadline {
                        debug!(operation, error = %e, "giving up at the deadline");
                        return Err(e.into());
                    }
                    tokio::time::sleep(config.retry_backoff).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// OffsetCommit as `member` of the group, or as a "simple" commit
    /// (generation -1, no member id) that the coordinator accepts for a group
    /// without members.
    pub async fn commit(
        &mut self,
        cluster: &Cluster,
        config: &ConsumerConfig,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        member: Option<&MemberIdentity>,
        deadline: Instant,
    ) -> Result<(), ConsumerError> {
        let mut req = OffsetCommitRequest::default();
        req.group_id = self.group_id.as_str().into();
        req.generation_id_or_member_epoch = -1;
        if let Some(m) = member {
            req.generation_id_or_member_epoch = m.generation;
            req.member_id = m.member_id.as_str().into();
            req.group_instance_id = m.group_instance_id.as_deref().map(Into::into);
        }
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, om) in offsets {
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = tp.partition;
            p.committed_offset = om.offset;
            p.committed_leader_epoch = om.leader_epoch.unwrap_or(-1);
            p.committed_metadata = Some(om.metadata.as_str().into());
            topics.entry(tp.topic.as_str()).or_default().push(p);
        }
        for (name, partitions) in topics {
            let mut t = OffsetCommitRequestTopic::default();
            t.name = name.into();
            t.partitions = partitions;
            req.topics.push(t);
        }
        let req = &req;
        self.retrying(
            cluster,
            config,
            deadline,
            "OffsetCommit",
            |conn| async move {
                let version = conn.version_for::<OffsetCommitRequest>()?;
                let resp = if version < 7 && req.group_instance_id.is_some() {
                    // Static membership needs v7; older coordinators take the member id alone.
                    let mut older = req.clone();
                    older.group_instance_id = None;
                    conn.send(&older).await?
                } else {
                    conn.send(req).await?
                };
                // The first failing partition decides: a commit is all or nothing for the caller.
                for t in &resp.topics {
                    for p in &t.partitions {
                        ClientError::check(p.error_code, None)?;
                    }
                }
                Ok(())
            },
        )
        .await
    }

    /// OffsetFetch: the committed offset of each partition that has one.
    pub async fn committed(
        &mut self,
        cluster: &Cluster,
        config: &ConsumerConfig,
        partitions: &[TopicPartition],
        deadline: Instant,
    ) -> Result<HashMap<TopicPartition, OffsetAndMetadata>, ConsumerError> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic
                .entry(tp.topic.as_str())
                .or_default()
                .push(tp.partition);
        }
        let group_id = self.group_id.clone();
        let by_topic = &by_topic;
        let group_id = &group_id;
        self.retrying(
            cluster,
            config,
            deadline,
            "OffsetFetch",
            |conn| async move {
                let version = conn.version_for::<OffsetFetchRequest>()?;
                let mut req = OffsetFetchRequest::default();
                // Offsets of open transactions are not handed out (KIP-447).
                req.require_stable = version >= 7;
                if version >= 8 {
                    let mut g = OffsetFetchRequestGroup::default();
                    g.group_id = group_id.as_str().into();
                    g.topics = Some(
                        by_topic
                            .iter()
                            .map(|(name, parts)| {
                                let mut t = OffsetFetchRequestTopics::default();
                                t.name = (*name).into();
                                t.partition_indexes = parts.clone();
                                t
                            })
                            .collect(),
                    );
                    req.groups = vec![g];
                } else {
                    req.group_id = group_id.as_str().into();
                    req.topics = Some(
                        by_topic
                            .iter()
                            .map(|(name, parts)| {
                                let mut t = OffsetFetchRequestTopic::default();
                                t.name = (*name).into();
                                t.partition_indexes = parts.clone();
                                t
                            })
                            .collect(),
                    );
                }
                let resp = conn.send(&req).await?;
                committed_from(resp, version)
            },
        )
        .await
    }
}

/// Flattens both OffsetFetch response shapes (v8+ per group, older top-level).
fn committed_from(
    resp: OffsetFetchResponse,
    version: i16,
) -> Result<HashMap<TopicPartition, OffsetAndMetadata>, ClientError> {
    let mut out = HashMap::new();
    let mut add =
        |topic: &str, partition: i32, offset: i64, epoch: i32, meta: Option<String>, code: i16| {
            ClientError::check(code, None)?;
            if offset >= 0 {
                out.insert(
                    TopicPartition::new(topic, partition),
                    OffsetAndMetadata {
                        offset,
                        leader_epoch: (epoch >= 0).then_some(epoch),
                        metadata: meta.unwrap_or_default(),
                    },
                );
            }
            Ok::<(), ClientError>(())
        };
    if version >= 8 {
        for g in resp.groups {
            ClientError::check(g.error_code, None)?;
            for t in g.topics {
                for p in t.partitions {
                    let meta = p.metadata.as_ref().map(|m| m.to_string());
                    add(
                        t.name.as_str(),
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                        meta,
                        p.error_code,
                    )?;
                }
            }
        }
    } else {
        ClientError::check(resp.error_code, None)?;
        for t in resp.topics {
            for p in t.partitions {
                let meta = p.metadata.as_ref().map(|m| m.to_string());
                add(
                    t.name.as_str(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    meta,
                    p.error_code,
                )?;
            }
        }
    }
    Ok(out)
}
