//! InitProducerId (key 22) for idempotent producers: a producer id never
//! handed out before (ids are allocated in blocks recorded in the metadata
//! log, so they stay unique across restarts), epoch 0.

use bytes::Bytes;
use strom_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::state::State;

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: InitProducerIdRequest = request.decode(state, body)?;
    let mut response = InitProducerIdResponse::default();
    response.producer_id = -1;
    response.producer_epoch = -1;
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|id| id.is_empty())
    {
        response.error_code = ErrorCode::InvalidRequest.code();
        return Ok(request.respond(&response));
    }
    if req.transactional_id.is_some() {
        // The transaction coordinator is not served yet (FindCoordinator is not
        // advertised), so a transactional client never gets this far honestly.
        response.error_code = ErrorCode::CoordinatorNotAvailable.code();
        return Ok(request.respond(&response));
    }
    match state.controller.allocate_producer_id() {
        Ok(id) => {
            response.producer_id = id;
            response.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "producer id allocation failed");
            response.error_code = ErrorCode::KafkaStorageError.code();
        }
    }
    Ok(request.respond(&response))
}
