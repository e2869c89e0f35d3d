//! ListTransactions (key 66): transactional ids filtered by state, producer
//! id and (v1, KIP-994) how long the transaction has been running
//! (`kafka-transactions.sh list`, `find-hanging`).

use bytes::Bytes;
use strom_protocol::messages::list_transactions_response::TransactionState;
use strom_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, StrBytes};

use super::HandlerResult;
use crate::dispatch::Request;
use crate::state::State;
use crate::txn::{ListFilter, TxnState};

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: ListTransactionsRequest = request.decode(state, body)?;
    let mut response = ListTransactionsResponse::default();
    let mut filter = ListFilter::default();
    for name in &req.state_filters {
        match TxnState::from_name(name.as_str()) {
            Some(s) => {
                filter.states.insert(s);
            }
            None => response.unknown_state_filters.push(name.clone()),
        }
    }
    if !response.unknown_state_filters.is_empty() && filter.states.is_empty() {
        // Only unknown states asked for: nothing can match (Kafka answers empty).
        return Ok(request.respond(&response));
    }
    filter.producer_ids = req.producer_id_filters.iter().copied().collect();
    if request.version >= 1 && req.duration_filter >= 0 {
        filter.min_duration_ms = Some(req.duration_filter);
    }
    for listed in state.txn.list(&filter) {
        let mut t = TransactionState::default();
        t.transactional_id = StrBytes::from(listed.transactional_id);
        t.producer_id = listed.producer_id;
        t.transaction_state = StrBytes::from(listed.state.name());
        response.transaction_states.push(t);
    }
    Ok(request.respond(&response))
}
