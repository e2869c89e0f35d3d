//! Heartbeat (key 12): keeps a classic member alive and tells it when to rejoin.

use bytes::Bytes;
use strom_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::state::{now_ms, State};

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: HeartbeatRequest = request.decode(state, body)?;
    let mut response = HeartbeatResponse::default();
    let group_id = req.group_id.as_str();
    let code = if group_id.is_empty() {
        ErrorCode::InvalidGroupId
    } else {
        let mut groups = state.groups.lock().await;
        match groups.groups.get_mut(group_id) {
            None => ErrorCode::UnknownMemberId,
            Some(entry) => entry.classic.heartbeat(
                req.member_id.as_str(),
                req.group_instance_id.as_ref().map(|s| s.as_str()),
                req.generation_id,
                now_ms(),
            ),
        }
    };
    response.error_code = code.code();
    Ok(request.respond(&response))
}
