//! AddPartitionsToTxn (key 24). v0–v3 come from a transactional producer
//! before it first writes to a partition in a transaction. v4+ batches
//! several transactions and may be `verify_only` (KIP-890 part 1): partition
//! leaders ask whether a transactional produce belongs to an ongoing
//! transaction, and nothing changes.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use strom_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use strom_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use strom_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, StrBytes};
use strom_protocol::ErrorCode;

use super::{fenced_for_version, HandlerResult};
use crate::dispatch::Request;
use crate::state::State;
use crate::txn::{ProducerIdAndEpoch, TopicPartition};

/// Answers one transaction's partitions. Unknown partitions fail with
/// UNKNOWN_TOPIC_OR_PARTITION and the others with OPERATION_NOT_ATTEMPTED, as
/// Kafka does; otherwise the coordinator's answer.
async fn add(
    state: &State,
    version: i16,
    transactional_id: &str,
    producer: ProducerIdAndEpoch,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
) -> BTreeMap<TopicPartition, ErrorCode> {
    let image = state.controller.image();
    let mut requested = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for topic in topics {
        let known = image.topic(topic.name.as_str());
        for &p in &topic.partitions {
            let tp = TopicPartition::new(topic.name.as_str(), p);
            let exists = known.is_some_and(|t| p >= 0 && (p as usize) < t.partitions.len());
            if exists {
                requested.insert(tp);
            } else {
                unknown.insert(tp);
            }
        }
    }
    if !unknown.is_empty() {
        return unknown
            .into_iter()
            .map(|tp| (tp, ErrorCode::UnknownTopicOrPartition))
            .chain(
                requested
                    .into_iter()
                    .map(|tp| (tp, ErrorCode::OperationNotAttempted)),
            )
            .collect();
    }
    match state
        .txn
        .add_partitions(state, transactional_id, producer, &requested, verify_only)
        .await
    {
        Ok(results) => results,
        Err(code) => {
            let code = fenced_for_version(code, version, 2);
            requested.into_iter().map(|tp| (tp, code)).collect()
        }
    }
}

/// Groups per-partition results by topic, in the response's shape.
fn by_topic(results: BTreeMap<TopicPartition, ErrorCode>) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (tp, code) in results {
        if out.last().is_none_or(|t| t.name.as_str() != tp.topic) {
            let mut t = AddPartitionsToTxnTopicResult::default();
            t.name = StrBytes::from(tp.topic.clone());
            out.push(t);
        }
        let mut r = AddPartitionsToTxnPartitionResult::default();
        r.partition_index = tp.partition;
        r.partition_error_code = code.code();
        if let Some(t) = out.last_mut() {
            t.results_by_partition.push(r);
        }
    }
    out
}

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: AddPartitionsToTxnRequest = request.decode(state, body)?;
    let mut response = AddPartitionsToTxnResponse::default();
    if request.version < 4 {
        let results = add(
            state,
            request.version,
            req.v3_and_below_transactional_id.as_str(),
            ProducerIdAndEpoch::new(
                req.v3_and_below_producer_id,
                req.v3_and_below_producer_epoch,
            ),
            &req.v3_and_below_topics,
            false,
        )
        .await;
        response.results_by_topic_v3_and_below = by_topic(results);
        return Ok(request.respond(&response));
    }
    let mut seen = BTreeSet::new();
    for txn in &req.transactions {
        let mut result = AddPartitionsToTxnResult::default();
        result.transactional_id = txn.transactional_id.clone();
        let results = if !seen.insert(txn.transactional_id.as_str().to_owned()) {
            // Kafka refuses a transactional id named twice in one request.
            txn.topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|&p| {
                        (
                            TopicPartition::new(t.name.as_str(), p),
                            ErrorCode::InvalidRequest,
                        )
                    })
                })
                .collect()
        } else {
            add(
                state,
                request.version,
                txn.transactional_id.as_str(),
                ProducerIdAndEpoch::new(txn.producer_id, txn.producer_epoch),
                &txn.topics,
                txn.verify_only,
            )
            .await
        };
        result.topic_results = by_topic(results);
        response.results_by_transaction.push(result);
    }
    Ok(request.respond(&response))
}
