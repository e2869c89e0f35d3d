//! Request building and answer parsing for a group's committed offsets
//! (OffsetCommit, OffsetFetch in both its per-group v8+ and older shapes).

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use strom_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use strom_protocol::messages::{
    OffsetCommitRequest, OffsetFetchRequest, OffsetFetchResponse, StrBytes,
};
use strom_protocol::ErrorCode;
use tracing::debug;

use super::GroupAnswers;
use crate::connection::Connection;
use crate::consumer::{OffsetAndMetadata, TopicPartition};
use crate::error::ClientError;

/// The answer for `group_id` of a single-group call.
pub(super) fn single<T>(
    mut answers: BTreeMap<String, Result<T, ClientError>>,
    group_id: &str,
) -> Result<T, ClientError> {
    answers.remove(group_id).unwrap_or_else(|| {
        Err(ClientError::Decode(format!(
            "the coordinator answered nothing for group {group_id}"
        )))
    })
}

/// Partition indexes grouped by topic, sorted.
pub(super) fn by_topic(partitions: &[TopicPartition]) -> BTreeMap<String, Vec<i32>> {
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        out.entry(tp.topic.clone()).or_default().push(tp.partition);
    }
    for indexes in out.values_mut() {
        indexes.sort_unstable();
        indexes.dedup();
    }
    out
}

pub(super) fn offset_commit_request(
    group_id: &str,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
) -> OffsetCommitRequest {
    let mut req = OffsetCommitRequest::default();
    req.group_id = group_id.into();
    req.generation_id_or_member_epoch = -1;
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
    req
}

/// OffsetFetch for one group (the request shape of the negotiated version).
pub(super) async fn offset_fetch_on(
    conn: Arc<Connection>,
    groups: Vec<String>,
    by_topic: Option<&BTreeMap<String, Vec<i32>>>,
) -> Result<GroupAnswers<BTreeMap<TopicPartition, OffsetAndMetadata>>, ClientError> {
    let Some(group) = groups.into_iter().next() else {
        return Ok(Vec::new());
    };
    let version = conn.version_for::<OffsetFetchRequest>()?;
    let mut req = OffsetFetchRequest::default();
    if version >= 8 {
        let mut g = OffsetFetchRequestGroup::default();
        g.group_id = group.as_str().into();
        g.topics = by_topic.map(|topics| {
            topics
                .iter()
                .map(|(name, indexes)| {
                    let mut t = OffsetFetchRequestTopics::default();
                    t.name = name.as_str().into();
                    t.partition_indexes = indexes.clone();
                    t
                })
                .collect()
        });
        req.groups = vec![g];
    } else {
        req.group_id = group.as_str().into();
        req.topics = by_topic.map(|topics| {
            topics
                .iter()
                .map(|(name, indexes)| {
                    let mut t = OffsetFetchRequestTopic::default();
                    t.name = name.as_str().into();
                    t.partition_indexes = indexes.clone();
                    t
                })
                .collect()
        });
    }
    let resp = conn.send(&req).await?;
    Ok(vec![(group, committed_offsets(resp, version))])
}

/// The committed offsets of an OffsetFetch answer (both response shapes);
/// partitions without an offset or with an error are skipped, as Java does.
fn committed_offsets(
    resp: OffsetFetchResponse,
    version: i16,
) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>, ClientError> {
    // (topic, partition, offset, leader epoch, metadata, error code)
    let mut rows: Vec<(String, i32, i64, i32, Option<StrBytes>, i16)> = Vec::new();
    if version >= 8 {
        for g in resp.groups {
            ClientError::check(g.error_code, None)?;
            for t in g.topics {
                for p in t.partitions {
                    let (o, e) = (p.committed_offset, p.committed_leader_epoch);
                    rows.push((
                        t.name.to_string(),
                        p.partition_index,
                        o,
                        e,
                        p.metadata,
                        p.error_code,
                    ));
                }
            }
        }
    } else {
        ClientError::check(resp.error_code, None)?;
        for t in resp.topics {
            for p in t.partitions {
                let (o, e) = (p.committed_offset, p.committed_leader_epoch);
                rows.push((
                    t.name.to_string(),
                    p.partition_index,
                    o,
                    e,
                    p.metadata,
                    p.error_code,
                ));
            }
        }
    }
    let mut out = BTreeMap::new();
    for (topic, partition, offset, epoch, metadata, code) in rows {
        if code != ErrorCode::None.code() {
            debug!(
                topic,
                partition, code, "OffsetFetch: skipping a partition with an error"
            );
            continue;
        }
        if offset < 0 {
            continue;
        }
        out.insert(
            TopicPartition::new(topic, partition),
            OffsetAndMetadata {
                offset,
                leader_epoch: (epoch >= 0).then_some(epoch),
                metadata: metadata.map(|m| m.to_string()).unwrap_or_default(),
            },
        );
    }
    Ok(out)
}
