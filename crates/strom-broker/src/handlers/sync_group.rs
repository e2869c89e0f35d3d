//! SyncGroup (key 14): the leader hands out assignments; everyone receives theirs.

use std::time::Duration;

use bytes::Bytes;
use strom_protocol::messages::{StrBytes, SyncGroupRequest, SyncGroupResponse};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::group::classic;
use crate::group::coordinator::Reply;
use crate::state::{now_ms, State};

/// Longest a follower waits for the leader's assignment before answering
/// REBALANCE_IN_PROGRESS (the client then rejoins).
const SYNC_WAIT: Duration = Duration::from_secs(300);

fn error_response(code: ErrorCode) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = code.code();
    r
}

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: SyncGroupRequest = request.decode(state, body)?;
    let group_id = req.group_id.as_str().to_owned();
    if group_id.is_empty() {
        return Ok(request.respond(&error_response(ErrorCode::InvalidGroupId)));
    }
    let coordinator = &state.groups;
    let (id, rx) = coordinator.register();
    {
        let mut groups = coordinator.lock().await;
        let Some(entry) = groups.groups.get_mut(&group_id) else {
            coordinator.forget(id);
            return Ok(request.respond(&error_response(ErrorCode::UnknownMemberId)));
        };
        let sync = classic::SyncRequest {
            request_id: id,
            member_id: req.member_id.as_str().to_owned(),
            group_instance_id: req
                .group_instance_id
                .as_ref()
                .map(|s| s.as_str().to_owned()),
            generation_id: req.generation_id,
            protocol_type: req.protocol_type.as_ref().map(|s| s.as_str().to_owned()),
            protocol_name: req.protocol_name.as_ref().map(|s| s.as_str().to_owned()),
            assignments: req
                .assignments
                .iter()
                .map(|a| (a.member_id.as_str().to_owned(), a.assignment.clone()))
                .collect(),
        };
        let outputs = entry.classic.sync(sync, now_ms());
        coordinator
            .apply_outputs(state, &group_id, entry, outputs)
            .await;
    }
    let result = match tokio::time::timeout(SYNC_WAIT, rx).await {
        Ok(Ok(Reply::Sync(r))) => r,
        _ => {
            coordinator.forget(id);
            return Ok(request.respond(&error_response(ErrorCode::RebalanceInProgress)));
        }
    };
    let mut response = SyncGroupResponse::default();
    response.error_code = result.error.code();
    if request.version >= 5 {
        response.protocol_type = result.protocol_type.map(StrBytes::from);
        response.protocol_name = result.protocol_name.map(StrBytes::from);
    }
    response.assignment = result.assignment;
    Ok(request.respond(&response))
}
