//! OffsetFetch (key 9): a group's committed offsets (v8+: several groups).

use bytes::Bytes;
use strom_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use strom_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, StrBytes};

use super::HandlerResult;
use crate::dispatch::Request;
use crate::group::coordinator::Groups;
use crate::group::records::OffsetValue;
use crate::state::State;

/// (topic, [(partition, committed value if any)]) for one group.
type GroupOffsets = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;

/// The requested offsets; `None` topics means every committed offset.
fn lookup(
    groups: &Groups,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> GroupOffsets {
    let entry = groups.groups.get(group_id);
    match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(name, partitions)| {
                let found = partitions
                    .into_iter()
                    .map(|p| {
                        (
                            p,
                            entry.and_then(|e| e.offsets.get(&(name.clone(), p)).cloned()),
                        )
                    })
                    .collect();
                (name, found)
            })
            .collect(),
        None => {
            let mut out: GroupOffsets = Vec::new();
            for ((topic, p), v) in entry.map(|e| e.offsets.iter()).into_iter().flatten() {
                match out.last_mut() {
                    Some((t, list)) if t == topic => list.push((*p, Some(v.clone()))),
                    _ => out.push((topic.clone(), vec![(*p, Some(v.clone()))])),
                }
            }
            out
        }
    }
}

fn parts(v: &Option<OffsetValue>) -> (i64, i32, StrBytes) {
    match v {
        Some(v) => (
            v.offset,
            v.leader_epoch,
            StrBytes::from(v.metadata.as_str()),
        ),
        None => (-1, -1, StrBytes::default()),
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
            out.topics = lookup(&groups, g.group_id.as_str(), topics)
                .into_iter()
                .map(|(name, partitions)| {
                    let mut t = OffsetFetchResponseTopics::default();
                    t.name = StrBytes::from(name);
                    t.partitions = partitions
                        .iter()
                        .map(|(p, v)| {
                            let (offset, epoch, metadata) = parts(v);
                            let mut r = OffsetFetchResponsePartitions::default();
                            r.partition_index = *p;
                            r.committed_offset = offset;
                            r.committed_leader_epoch = epoch;
                            r.metadata = Some(metadata);
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
        response.topics = lookup(&groups, req.group_id.as_str(), topics)
            .into_iter()
            .map(|(name, partitions)| {
                let mut t = OffsetFetchResponseTopic::default();
                t.name = StrBytes::from(name);
                t.partitions = partitions
                    .iter()
                    .map(|(p, v)| {
                        let (offset, epoch, metadata) = parts(v);
                        let mut r = OffsetFetchResponsePartition::default();
                        r.partition_index = *p;
                        r.committed_offset = offset;
                        if request.version >= 5 {
                            r.committed_leader_epoch = epoch;
                        }
                        r.metadata = Some(metadata);
                        r
                    })
                    .collect();
                t
            })
            .collect();
    }
    Ok(request.respond(&response))
}
