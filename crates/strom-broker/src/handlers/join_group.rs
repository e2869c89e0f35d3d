//! JoinGroup (key 11): join a classic group; answered when the rebalance completes.

use std::time::Duration;

use bytes::Bytes;
use strom_protocol::messages::join_group_response::JoinGroupResponseMember;
use strom_protocol::messages::{JoinGroupRequest, JoinGroupResponse, StrBytes};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::group::classic;
use crate::group::coordinator::{new_member_id, GroupEntry, Reply};
use crate::state::{now_ms, State};

/// Slack beyond the rebalance timeout before a waiting join gives up on its own.
const JOIN_WAIT_SLACK: Duration = Duration::from_secs(5);

fn error_response(code: ErrorCode, member_id: &str) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    // Valid at every version: v7+ may carry null, older ones need a string.
    r.protocol_name = Some(StrBytes::default());
    r.error_code = code.code();
    r.generation_id = -1;
    r.member_id = StrBytes::from(member_id);
    r
}

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: JoinGroupRequest = request.decode(state, body)?;
    let group_id = req.group_id.as_str().to_owned();
    if group_id.is_empty() {
        return Ok(request.respond(&error_response(
            ErrorCode::InvalidGroupId,
            req.member_id.as_str(),
        )));
    }
    if let Err(code) = state.groups.ensure_offsets_topic(state) {
        return Ok(request.respond(&error_response(code, req.member_id.as_str())));
    }
    let coordinator = &state.groups;
    let (id, rx) = coordinator.register();
    // JoinGroup v0 has no rebalance timeout; Kafka uses the session timeout.
    let rebalance_timeout_ms = if request.version >= 1 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    let client_id = request.header.client_id.clone().unwrap_or_default();
    let instance_id = req
        .group_instance_id
        .as_ref()
        .map(|s| s.as_str().to_owned());
    let join = classic::JoinRequest {
        request_id: id,
        member_id: req.member_id.as_str().to_owned(),
        group_instance_id: instance_id.clone(),
        protocol_type: req.protocol_type.as_str().to_owned(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.as_str().to_owned(), p.metadata.clone()))
            .collect(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms,
        client_id: client_id.clone(),
        client_host: request.client_host.clone(),
        require_known_member_id: request.version >= 4,
        supports_skip_assignment: request.version >= 9,
        reason: req.reason.as_ref().map(|s| s.as_str().to_owned()),
    };
    {
        let now = now_ms();
        let mut groups = coordinator.lock().await;
        if !groups.groups.contains_key(&group_id) && !req.member_id.is_empty() {
            // Kafka: a member id for a group that does not exist is unknown; no group is created.
            drop(groups);
            coordinator.forget(id);
            return Ok(request.respond(&error_response(
                ErrorCode::UnknownMemberId,
                req.member_id.as_str(),
            )));
        }
        let entry = groups
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| GroupEntry::new(&group_id, now));
        match &entry.consumer {
            // A KIP-848 group with members does not take classic members.
            Some(c) if !c.is_empty() => {
                coordinator.forget(id);
                return Ok(request.respond(&error_response(
                    ErrorCode::InconsistentGroupProtocol,
                    req.member_id.as_str(),
                )));
            }
            // An empty one becomes a classic group again; its offsets stay
            // and its consumer-group records are tombstoned.
            Some(_) => {
                let consumer = entry.consumer.take();
                if let Err(code) = coordinator
                    .persist_consumer_group(state, &group_id, entry)
                    .await
                {
                    entry.consumer = consumer;
                    coordinator.forget(id);
                    let code = match code {
                        ErrorCode::InvalidCommitOffsetSize => ErrorCode::UnknownServerError,
                        code => code,
                    };
                    return Ok(request.respond(&error_response(code, req.member_id.as_str())));
                }
            }
            None => {}
        }
        let prefix = instance_id.unwrap_or(client_id);
        let outputs = entry
            .classic
            .join(join, &coordinator.config.group, now, || {
                new_member_id(&prefix)
            });
        coordinator
            .apply_outputs(state, &group_id, entry, outputs)
            .await;
    }
    let wait = Duration::from_millis(rebalance_timeout_ms.max(0) as u64) + JOIN_WAIT_SLACK;
    let result = match tokio::time::timeout(wait, rx).await {
        Ok(Ok(Reply::Join(r))) => r,
        _ => {
            coordinator.forget(id);
            return Ok(request.respond(&error_response(
                ErrorCode::RebalanceInProgress,
                req.member_id.as_str(),
            )));
        }
    };
    let mut response = JoinGroupResponse::default();
    response.error_code = result.error.code();
    response.generation_id = result.generation_id;
    if request.version >= 7 {
        response.protocol_type = result.protocol_type.map(StrBytes::from);
        response.protocol_name = result.protocol_name.map(StrBytes::from);
    } else {
        // Before v7 the protocol name is not nullable: no protocol is "".
        response.protocol_name = Some(StrBytes::from(result.protocol_name.unwrap_or_default()));
    }
    response.leader = StrBytes::from(result.leader);
    response.member_id = StrBytes::from(result.member_id);
    response.skip_assignment = request.version >= 9 && result.skip_assignment;
    response.members = result
        .members
        .into_iter()
        .map(|m| {
            let mut out = JoinGroupResponseMember::default();
            out.member_id = StrBytes::from(m.member_id);
            out.group_instance_id = m.group_instance_id.map(StrBytes::from);
            out.metadata = m.metadata;
            out
        })
        .collect();
    Ok(request.respond(&response))
}
