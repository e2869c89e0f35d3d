//! AddOffsetsToTxn (key 25): the consumer group's `__consumer_offsets`
//! partition joins the transaction, so that the offsets a TxnOffsetCommit
//! writes there are committed or aborted with it (`sendOffsetsToTransaction`).

use bytes::Bytes;
use strom_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::{fenced_for_version, HandlerResult};
use crate::dispatch::Request;
use crate::state::State;
use crate::txn::ProducerIdAndEpoch;

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: AddOffsetsToTxnRequest = request.decode(state, body)?;
    let mut response = AddOffsetsToTxnResponse::default();
    if let Err(code) = state
        .txn
        .add_offsets(
            state,
            req.transactional_id.as_str(),
            ProducerIdAndEpoch::new(req.producer_id, req.producer_epoch),
            req.group_id.as_str(),
        )
        .await
    {
        response.error_code = fenced_for_version(code, request.version, 2).code();
    }
    Ok(request.respond(&response))
}
