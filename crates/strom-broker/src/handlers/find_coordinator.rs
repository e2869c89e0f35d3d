//! FindCoordinator (key 10): which broker coordinates a group or a
//! transactional id (this one: a single node owns every `__consumer_offsets`
//! and `__transaction_state` partition). v4+ batches keys.

use bytes::Bytes;
use strom_protocol::messages::find_coordinator_response::Coordinator;
use strom_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse, StrBytes};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::state::State;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

fn coordinator_for(
    state: &State,
    key: &str,
    key_type: i8,
) -> Result<(), (ErrorCode, &'static str)> {
    if key_type == KEY_TYPE_TRANSACTION {
        if key.is_empty() {
            return Err((ErrorCode::InvalidRequest, "empty transactional id"));
        }
        return state
            .txn
            .find_coordinator(state, key)
            .map_err(|c| (c, "the transaction state topic is not available"));
    }
    if key_type != KEY_TYPE_GROUP {
        return Err((ErrorCode::InvalidRequest, "unknown coordinator key type"));
    }
    if key.is_empty() {
        return Err((ErrorCode::InvalidRequest, "empty group id"));
    }
    state
        .groups
        .ensure_offsets_topic(state)
        .map_err(|c| (c, "the offsets topic is not available"))
}

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: FindCoordinatorRequest = request.decode(state, body)?;
    let host = StrBytes::from(state.config.advertised_host.as_str());
    let (node_id, port) = (state.config.node_id, state.config.advertised_port);
    let mut response = FindCoordinatorResponse::default();
    if request.version >= 4 {
        for key in &req.coordinator_keys {
            let mut c = Coordinator::default();
            c.key = key.clone();
            match coordinator_for(state, key.as_str(), req.key_type) {
                Ok(()) => {
                    c.node_id = node_id;
                    c.host = host.clone();
                    c.port = port;
                }
                Err((code, message)) => {
                    c.node_id = -1;
                    c.port = -1;
                    c.error_code = code.code();
                    c.error_message = Some(StrBytes::from(message));
                }
            }
            response.coordinators.push(c);
        }
    } else {
        match coordinator_for(state, req.key.as_str(), req.key_type) {
            Ok(()) => {
                response.node_id = node_id;
                response.host = host;
                response.port = port;
            }
            Err((code, message)) => {
                response.node_id = -1;
                response.port = -1;
                response.error_code = code.code();
                if request.version >= 1 {
                    response.error_message = Some(StrBytes::from(message));
                }
            }
        }
    }
    Ok(request.respond(&response))
}
