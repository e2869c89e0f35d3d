//! ConsumerGroupHeartbeat (key 68): the KIP-848 consumer protocol. Members
//! join, heartbeat and leave with one request; the broker computes the
//! assignment (server-side assignors) and hands it out incrementally.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use strom_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use strom_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, StrBytes,
};
use strom_protocol::ErrorCode;

use super::metadata::{topic_id, wire_uuid};
use super::HandlerResult;
use crate::dispatch::Request;
use crate::group::consumer::{
    self, ConsumerGroup, LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};
use crate::group::coordinator::{new_member_id, topics_view, GroupEntry};
use crate::state::{now_ms, State};

fn error(code: ErrorCode, message: &str) -> ConsumerGroupHeartbeatResponse {
    let mut r = ConsumerGroupHeartbeatResponse::default();
    r.error_code = code.code();
    r.error_message = Some(StrBytes::from(message));
    r
}

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: ConsumerGroupHeartbeatRequest = request.decode(state, body)?;
    let group_id = req.group_id.as_str().to_owned();
    if group_id.is_empty() {
        return Ok(request.respond(&error(ErrorCode::InvalidRequest, "GroupId can't be empty.")));
    }
    // KIP-1082: from v1 the client chooses its member id.
    if request.version >= 1 && req.member_id.is_empty() {
        return Ok(request.respond(&error(
            ErrorCode::InvalidRequest,
            "MemberId can't be empty.",
        )));
    }
    if let Err(code) = state.groups.ensure_offsets_topic(state) {
        return Ok(request.respond(&error(code, "the offsets topic is not available")));
    }
    let coordinator = &state.groups;
    let cfg = &coordinator.config.consumer;
    let now = now_ms();
    let topics = topics_view(&state.controller.image());
    let mut groups = coordinator.lock().await;
    if !groups.groups.contains_key(&group_id) {
        if req.member_epoch != 0 {
            return Ok(request.respond(&error(
                ErrorCode::GroupIdNotFound,
                &format!("Group {group_id} not found."),
            )));
        }
        groups
            .groups
            .insert(group_id.clone(), GroupEntry::new(&group_id, now));
    }
    let entry = groups.groups.get_mut(&group_id).expect("inserted above");
    if entry.consumer.is_none() {
        if entry.classic.members().next().is_some() {
            return Ok(request.respond(&error(
                ErrorCode::GroupIdNotFound,
                &format!("Group {group_id} is not a consumer group."),
            )));
        }
        // An empty classic group (or one holding only offsets) becomes a consumer group.
        entry.consumer = Some(ConsumerGroup::new(group_id.clone()));
    }
    let group = entry.consumer.as_mut().expect("set above");
    // Kept to undo the change if its records cannot be written: the member
    // then gets an error and the group stays as the log describes it, as in
    // Kafka (whose in-memory state is reverted when a write fails). Costs a
    // copy of the group per heartbeat.
    let before = group.clone();
    let member_id = req.member_id.as_str().to_owned();
    let instance_id = req.instance_id.as_ref().map(|s| s.as_str().to_owned());
    let result = if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH
        || req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
    {
        group.leave(&member_id, instance_id.as_deref(), req.member_epoch)
    } else {
        let owned = req.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|tp| {
                    (
                        topic_id(&tp.topic_id),
                        tp.partitions.iter().copied().collect::<BTreeSet<i32>>(),
                    )
                })
                .collect::<BTreeMap<_, _>>()
        });
        let heartbeat = consumer::HeartbeatRequest {
            member_id,
            member_epoch: req.member_epoch,
            instance_id,
            rack_id: req.rack_id.as_ref().map(|s| s.as_str().to_owned()),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            subscribed_topic_names: req
                .subscribed_topic_names
                .as_ref()
                .map(|names| names.iter().map(|n| n.as_str().to_owned()).collect()),
            subscribed_topic_regex: req
                .subscribed_topic_regex
                .as_ref()
                .map(|s| s.as_str().to_owned()),
            server_assignor: req.server_assignor.as_ref().map(|s| s.as_str().to_owned()),
            owned_partitions: owned,
            client_id: request.header.client_id.clone().unwrap_or_default(),
            client_host: request.client_host.clone(),
        };
        group.heartbeat(heartbeat, &topics, cfg, now, || {
            new_member_id("").trim_start_matches('-').to_owned()
        })
    };
    let (reply, outputs) = match result {
        Ok(r) => r,
        Err(code) => return Ok(request.respond(&error(code, &format!("{code:?}")))),
    };
    for output in &outputs {
        if let consumer::Output::MemberRemoved { member_id, reason } = output {
            tracing::info!(group = %group_id, member_id, ?reason, "consumer group member removed");
        }
    }
    // The answer waits for the records (Kafka answers after the write).
    if !outputs.is_empty() {
        if let Err(code) = coordinator
            .persist_consumer_group(state, &group_id, entry)
            .await
        {
            entry.consumer = Some(before);
            let code = match code {
                ErrorCode::InvalidCommitOffsetSize => ErrorCode::UnknownServerError,
                code => code,
            };
            return Ok(request.respond(&error(code, "the group's state could not be written")));
        }
    }
    drop(groups);
    let mut response = ConsumerGroupHeartbeatResponse::default();
    response.member_id = Some(StrBytes::from(reply.member_id));
    response.member_epoch = reply.member_epoch;
    response.heartbeat_interval_ms = reply.heartbeat_interval_ms;
    response.assignment = reply.assignment.map(|assignment| {
        let mut a = Assignment::default();
        a.topic_partitions = assignment
            .into_iter()
            .map(|(id, partitions)| {
                let mut tp = TopicPartitions::default();
                tp.topic_id = wire_uuid(&id);
                tp.partitions = partitions.into_iter().collect();
                tp
            })
            .collect();
        a
    });
    Ok(request.respond(&response))
}
