//! EndTxn (key 26): commit or abort the ongoing transaction. v5+ is
//! transaction version 2 (KIP-890): the answer carries the bumped epoch the
//! producer continues with.

use bytes::Bytes;
use strom_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::{fenced_for_version, HandlerResult};
use crate::dispatch::Request;
use crate::state::State;
use crate::txn::{ProducerIdAndEpoch, TransactionVersion, TxnResult};

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: EndTxnRequest = request.decode(state, body)?;
    let version = if request.version >= 5 {
        TransactionVersion::Tv2
    } else {
        TransactionVersion::Tv1
    };
    let result = if req.committed {
        TxnResult::Commit
    } else {
        TxnResult::Abort
    };
    let mut response = EndTxnResponse::default();
    response.producer_id = -1;
    response.producer_epoch = -1;
    match state
        .txn
        .end_txn(
            state,
            req.transactional_id.as_str(),
            ProducerIdAndEpoch::new(req.producer_id, req.producer_epoch),
            result,
            version,
        )
        .await
    {
        Ok(p) => {
            if version == TransactionVersion::Tv2 {
                response.producer_id = p.producer_id;
                response.producer_epoch = p.producer_epoch;
            }
        }
        Err(code) => response.error_code = fenced_for_version(code, request.version, 2).code(),
    }
    Ok(request.respond(&response))
}
