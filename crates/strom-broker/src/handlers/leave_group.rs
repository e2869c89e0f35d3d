//! LeaveGroup (key 13): members leave (v3+: several at once, by member or instance id).

use bytes::Bytes;
use strom_protocol::messages::leave_group_response::MemberResponse;
use strom_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::state::{now_ms, State};

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: LeaveGroupRequest = request.decode(state, body)?;
    let group_id = req.group_id.as_str().to_owned();
    let members: Vec<(String, Option<String>)> = if request.version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.as_str().to_owned(),
                    m.group_instance_id.as_ref().map(|s| s.as_str().to_owned()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.as_str().to_owned(), None)]
    };
    let mut response = LeaveGroupResponse::default();
    if group_id.is_empty() {
        response.error_code = ErrorCode::InvalidGroupId.code();
        return Ok(request.respond(&response));
    }
    let coordinator = &state.groups;
    let codes = {
        let mut groups = coordinator.lock().await;
        match groups.groups.get_mut(&group_id) {
            None => vec![ErrorCode::UnknownMemberId; members.len()],
            Some(entry) => {
                let (codes, outputs) = entry.classic.leave(&members, now_ms());
                coordinator
                    .apply_outputs(state, &group_id, entry, outputs)
                    .await;
                codes
            }
        }
    };
    if request.version >= 3 {
        response.members = members
            .iter()
            .zip(&codes)
            .map(|((member_id, instance_id), code)| {
                let mut m = MemberResponse::default();
                m.member_id = member_id.as_str().into();
                m.group_instance_id = instance_id.as_deref().map(Into::into);
                m.error_code = code.code();
                m
            })
            .collect();
    } else {
        response.error_code = codes.first().copied().unwrap_or(ErrorCode::None).code();
    }
    Ok(request.respond(&response))
}
