//! InitProducerId (key 22). Without a transactional id (idempotent
//! producers): a producer id never handed out before (ids are allocated in
//! blocks recorded in the metadata log, so they stay unique across restarts),
//! epoch 0. With one: the transaction coordinator's answer — an epoch that
//! fences earlier incarnations (KIP-98), or the continuation of a producer
//! that hit an abortable error (KIP-360, v3+).

use bytes::Bytes;
use strom_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use strom_protocol::ErrorCode;

use super::{fenced_for_version, HandlerResult};
use crate::dispatch::Request;
use crate::state::State;
use crate::txn::ProducerIdAndEpoch;

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: InitProducerIdRequest = request.decode(state, body)?;
    let mut response = InitProducerIdResponse::default();
    response.producer_id = -1;
    response.producer_epoch = -1;
    match req.transactional_id.as_ref().map(|id| id.as_str()) {
        Some("") => {
            response.error_code = ErrorCode::InvalidRequest.code();
        }
        Some(id) => {
            let expected = (req.producer_id >= 0)
                .then(|| ProducerIdAndEpoch::new(req.producer_id, req.producer_epoch));
            match state
                .txn
                .init_producer_id(state, id, req.transaction_timeout_ms, expected)
                .await
            {
                Ok(p) => {
                    response.producer_id = p.producer_id;
                    response.producer_epoch = p.producer_epoch;
                }
                Err(code) => {
                    response.error_code = fenced_for_version(code, request.version, 4).code();
                }
            }
        }
        None => match state.controller.allocate_producer_id() {
            Ok(id) => {
                response.producer_id = id;
                response.producer_epoch = 0;
            }
            Err(e) => {
                tracing::error!(error = %e, "producer id allocation failed");
                response.error_code = ErrorCode::KafkaStorageError.code();
            }
        },
    }
    Ok(request.respond(&response))
}
