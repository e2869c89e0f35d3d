//! OffsetCommit (key 8): store a group's consumed positions in `__consumer_offsets`.

use bytes::Bytes;
use strom_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use strom_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::group::coordinator::GroupEntry;
use crate::group::records::{OffsetValue, OffsetsKey};
use crate::state::{now_ms, State};

fn all_partitions(req: &OffsetCommitRequest, code: ErrorCode) -> OffsetCommitResponse {
    let mut response = OffsetCommitResponse::default();
    response.topics = req
        .topics
        .iter()
        .map(|t| {
            let mut out = OffsetCommitResponseTopic::default();
            out.name = t.name.clone();
            out.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = OffsetCommitResponsePartition::default();
                    r.partition_index = p.partition_index;
                    r.error_code = code.code();
                    r
                })
                .collect();
            out
        })
        .collect();
    response
}

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: OffsetCommitRequest = request.decode(state, body)?;
    let group_id = req.group_id.as_str().to_owned();
    if group_id.is_empty() {
        return Ok(request.respond(&all_partitions(&req, ErrorCode::InvalidGroupId)));
    }
    let coordinator = &state.groups;
    let generation = if request.version >= 1 {
        req.generation_id_or_member_epoch
    } else {
        -1
    };
    let member_id = req.member_id.as_str();
    let instance_id = req.group_instance_id.as_ref().map(|s| s.as_str());
    let now = now_ms();
    let mut groups = coordinator.lock().await;
    let validation = match groups.groups.get(&group_id) {
        // KIP-848 groups check the member epoch instead of a generation.
        Some(GroupEntry {
            consumer: Some(c), ..
        }) => c.validate_offset_commit(member_id, generation),
        Some(entry) => entry
            .classic
            .validate_offset_commit(member_id, instance_id, generation),
        // A commit for an unknown group is a "simple" commit (no membership):
        // allowed without a generation, as Kafka does for manually assigned consumers.
        None if generation < 0 => Ok(()),
        None => Err(ErrorCode::IllegalGeneration),
    };
    if let Err(code) = validation {
        return Ok(request.respond(&all_partitions(&req, code)));
    }
    let image = state.controller.image();
    let mut response = all_partitions(&req, ErrorCode::None);
    let mut records = Vec::new();
    let mut accepted = Vec::new();
    for (t, topic) in req.topics.iter().enumerate() {
        let name = topic.name.as_str();
        let known = image.topic(name);
        for (p, partition) in topic.partitions.iter().enumerate() {
            let metadata = partition
                .committed_metadata
                .as_ref()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default();
            let code = if known.is_none_or(|t| {
                partition.partition_index < 0
                    || partition.partition_index as usize >= t.partitions.len()
            }) {
                ErrorCode::UnknownTopicOrPartition
            } else if metadata.len() > coordinator.config.offset_metadata_max_bytes {
                ErrorCode::OffsetMetadataTooLarge
            } else {
                let value = OffsetValue {
                    offset: partition.committed_offset,
                    leader_epoch: if request.version >= 6 {
                        partition.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata,
                    commit_timestamp_ms: now,
                    expire_timestamp_ms: -1,
                };
                let key = OffsetsKey::Offset {
                    group: group_id.clone(),
                    topic: name.to_owned(),
                    partition: partition.partition_index,
                };
                records.push((key.encode(), Some(value.encode())));
                accepted.push(((name.to_owned(), partition.partition_index), value, (t, p)));
                ErrorCode::None
            };
            response.topics[t].partitions[p].error_code = code.code();
        }
    }
    if !records.is_empty() {
        if let Err(code) = coordinator.append(state, &group_id, records).await {
            for (_, _, (t, p)) in &accepted {
                response.topics[*t].partitions[*p].error_code = code.code();
            }
            return Ok(request.respond(&response));
        }
        let entry = groups
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| GroupEntry::new(&group_id, now));
        for (key, value, _) in accepted {
            entry.offsets.insert(key, value);
        }
    }
    Ok(request.respond(&response))
}
