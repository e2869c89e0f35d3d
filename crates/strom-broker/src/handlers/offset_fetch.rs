//! OffsetFetch (key 9): a group's committed offsets (v8+: several groups;
//! v7+: `require_stable`, KIP-447).

use bytes::Bytes;
use strom_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use strom_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, StrBytes};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::group::coordinator::Groups;
use crate::group::records::OffsetValue;
use crate::state::State;

/// What OffsetFetch answers for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fetched {
    /// The committed offset, if any.
    Committed(Option<OffsetValue>),
    /// A stable offset was asked for and an open transaction holds an offset
    /// for the partition (KIP-447): the consumer retries once it completes.
    Unstable,
}

/// (topic, [(partition, answer)]) for one group.
type GroupOffsets = Vec<(String, Vec<(i32, Fetched)>)>;

/// The requested offsets; `None` topics means every committed offset.
/// With `require_stable` (v7+), partitions with pending transactional offsets
/// answer UNSTABLE_OFFSET_COMMIT instead of their committed offset, as
/// Kafka's `fetchOffsets` / `fetchAllOffsets` do.
fn lookup(
    groups: &Groups,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> GroupOffsets {
    let entry = groups.groups.get(group_id);
    let answer = |key: &(String, i32)| match entry {
        Some(e) if require_stable && e.offsets.has_pending(key) => Fetched::Unstable,
        Some(e) => Fetched::Committed(e.offsets.get(key).cloned()),
        None => Fetched::Committed(None),
    };
    match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(name, partitions)| {
                let found = partitions
                    .into_iter()
                    .map(|p| (p, answer(&(name.clone(), p))))
                    .collect();
                (name, found)
            })
            .collect(),
        None => {
            let mut out: GroupOffsets = Vec::new();
            for (key, _) in entry.map(|e| e.offsets.iter()).into_iter().flatten() {
                let (topic, p) = key;
                let fetched = answer(key);
                match out.last_mut() {
                    Some((t, list)) if t == topic => list.push((*p, fetched)),
                    _ => out.push((topic.clone(), vec![(*p, fetched)])),
                }
            }
            out
        }
    }
}

/// (offset, leader epoch, metadata, error code) for one partition.
fn parts(v: &Fetched) -> (i64, i32, StrBytes, ErrorCode) {
    match v {
        Fetched::Committed(Some(v)) => (
            v.offset,
            v.leader_epoch,
            StrBytes::from(v.metadata.as_str()),
            ErrorCode::None,
        ),
        Fetched::Committed(None) => (-1, -1, StrBytes::default(), ErrorCode::None),
        Fetched::Unstable => (-1, -1, StrBytes::default(), ErrorCode::UnstableOffsetCommit),
    }
}

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: OffsetFetchRequest = request.decode(state, body)?;
    let groups = state.groups.lock().await;
    let mut response = OffsetFetchResponse::default();
    if request.version >= 8 {
        for g in &req.groups {
            let topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.as_str().to_owned(), t.partition_indexes.clone()))
                    .collect()
            });
            let mut out = OffsetFetchResponseGroup::default();
            out.group_id = g.group_id.clone();
            out.topics = lookup(&groups, g.group_id.as_str(), topics, req.require_stable)
                .into_iter()
                .map(|(name, partitions)| {
                    let mut t = OffsetFetchResponseTopics::default();
                    t.name = StrBytes::from(name);
                    t.partitions = partitions
                        .iter()
                        .map(|(p, v)| {
                            let (offset, epoch, metadata, code) = parts(v);
                            let mut r = OffsetFetchResponsePartitions::default();
                            r.partition_index = *p;
                            r.committed_offset = offset;
                            r.committed_leader_epoch = epoch;
                            r.metadata = Some(metadata);
                            r.error_code = code.code();
                            r
                        })
                        .collect();
                    t
                })
                .collect();
            response.groups.push(out);
        }
    } else {
        let topics = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.as_str().to_owned(), t.partition_indexes.clone()))
                .collect()
        });
        response.topics = lookup(&groups, req.group_id.as_str(), topics, req.require_stable)
            .into_iter()
            .map(|(name, partitions)| {
                let mut t = OffsetFetchResponseTopic::default();
                t.name = StrBytes::from(name);
                t.partitions = partitions
                    .iter()
                    .map(|(p, v)| {
                        let (offset, epoch, metadata, code) = parts(v);
                        let mut r = OffsetFetchResponsePartition::default();
                        r.partition_index = *p;
                        r.committed_offset = offset;
                        if request.version >= 5 {
                            r.committed_leader_epoch = epoch;
                        }
                        r.metadata = Some(metadata);
                        r.error_code = code.code();
                        r
                    })
                    .collect();
                t
            })
            .collect();
    }
    Ok(request.respond(&response))
}
