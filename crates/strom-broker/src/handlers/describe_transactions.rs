//! DescribeTransactions (key 65): state, timeout, start time, producer and
//! partitions of transactional ids (`kafka-transactions.sh describe`).

use bytes::Bytes;
use strom_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use strom_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, StrBytes,
};

use super::HandlerResult;
use crate::dispatch::Request;
use crate::state::State;

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: DescribeTransactionsRequest = request.decode(state, body)?;
    let mut response = DescribeTransactionsResponse::default();
    for id in &req.transactional_ids {
        let mut t = TransactionState::default();
        t.transactional_id = id.clone();
        t.producer_id = -1;
        t.producer_epoch = -1;
        t.transaction_start_time_ms = -1;
        match state.txn.describe(state, id.as_str()) {
            Ok(meta) => {
                t.transaction_state = StrBytes::from(meta.state.name());
                t.transaction_timeout_ms = meta.txn_timeout_ms;
                t.transaction_start_time_ms = meta.txn_start_timestamp_ms;
                t.producer_id = meta.producer_id;
                t.producer_epoch = meta.producer_epoch;
                for tp in &meta.partitions {
                    if t.topics.last().is_none_or(|d| d.topic.as_str() != tp.topic) {
                        let mut d = TopicData::default();
                        d.topic = StrBytes::from(tp.topic.clone());
                        t.topics.push(d);
                    }
                    if let Some(d) = t.topics.last_mut() {
                        d.partitions.push(tp.partition);
                    }
                }
            }
            Err(code) => t.error_code = code.code(),
        }
        response.transaction_states.push(t);
    }
    Ok(request.respond(&response))
}
