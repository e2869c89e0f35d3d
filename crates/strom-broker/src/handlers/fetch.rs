//! Fetch (key 1): read committed records, long-polling until `min_bytes` are
//! available or `max_wait_ms` passes.
//!
//! Fetch sessions (KIP-227): this broker does not create sessions. It answers
//! every request with session id 0, which tells clients to keep sending full
//! fetch requests; a request naming a session gets FETCH_SESSION_ID_NOT_FOUND,
//! after which clients start over without one.

use std::time::Duration;

use bytes::Bytes;
use strom_protocol::fetch_response::encode_fetch_response;
use strom_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use strom_protocol::messages::{FetchRequest, FetchResponse, StrBytes};
use strom_protocol::ErrorCode;
use strom_storage::LogSlice;

use super::metadata::{topic_id, wire_uuid};
use super::HandlerResult;
use crate::dispatch::{Outcome, Request};
use crate::state::State;

/// Longest wait a client may ask for. Kafka has no cap; this one keeps a
/// connection from being parked for an unbounded time.
pub const MAX_WAIT_MS_LIMIT: i32 = 60_000;

/// Isolation level value for read_committed.
const READ_COMMITTED: i8 = 1;

fn partition_error(index: i32, code: ErrorCode) -> PartitionData {
    let mut p = PartitionData::default();
    p.partition_index = index;
    p.error_code = code.code();
    p.high_watermark = -1;
    p.last_stable_offset = -1;
    p.log_start_offset = -1;
    p
}

/// One pass over the requested partitions.
struct Pass {
    topics: Vec<FetchableTopicResponse>,
    /// Each partition's record set, in response order (`None`: null records).
    record_sets: Vec<Option<LogSlice>>,
    /// Record bytes found.
    total: usize,
    any_error: bool,
}

/// Adds a partition's answer and its record set, keeping the two in step.
fn push(
    out: &mut FetchableTopicResponse,
    record_sets: &mut Vec<Option<LogSlice>>,
    pd: PartitionData,
    records: Option<LogSlice>,
) {
    out.partitions.push(pd);
    record_sets.push(records);
}

fn read_all(state: &State, req: &FetchRequest, version: i16) -> Pass {
    let image = state.controller.image();
    let read_committed = req.isolation_level == READ_COMMITTED;
    let max_bytes = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    };
    let mut total = 0usize;
    let mut any_error = false;
    let mut topics = Vec::with_capacity(req.topics.len());
    let mut record_sets = Vec::new();
    for topic in &req.topics {
        let mut out = FetchableTopicResponse::default();
        out.topic = topic.topic.clone();
        out.topic_id = topic.topic_id;
        // v13+ names topics by id only.
        let name = if version >= 13 {
            image
                .topic_by_id(&topic_id(&topic.topic_id))
                .map(|t| t.name.clone())
        } else {
            Some(topic.topic.as_str().to_owned())
        };
        for fp in &topic.partitions {
            let Some(name) = name.as_deref() else {
                any_error = true;
                let pd = partition_error(fp.partition, ErrorCode::UnknownTopicId);
                push(&mut out, &mut record_sets, pd, None);
                continue;
            };
            let Some(partition) = state.replicas.get(name, fp.partition) else {
                any_error = true;
                let code = if version >= 13 {
                    ErrorCode::UnknownTopicId
                } else {
                    ErrorCode::UnknownTopicOrPartition
                };
                let code = if image.topic(name).is_some() {
                    ErrorCode::UnknownTopicOrPartition
                } else {
                    code
                };
                push(
                    &mut out,
                    &mut record_sets,
                    partition_error(fp.partition, code),
                    None,
                );
                continue;
            };
            if let Err(code) = partition.check_leader_epoch(fp.current_leader_epoch) {
                any_error = true;
                push(
                    &mut out,
                    &mut record_sets,
                    partition_error(fp.partition, code),
                    None,
                );
                continue;
            }
            let budget = max_bytes
                .saturating_sub(total)
                .min(fp.partition_max_bytes.max(0) as usize);
            // KIP-74: the first batch of the response is returned whole even if
            // larger than the limits, so a consumer can always make progress.
            let min_one = total == 0;
            let mut pd = PartitionData::default();
            pd.partition_index = fp.partition;
            let mut records = None;
            match partition.read(fp.fetch_offset, budget, read_committed, min_one) {
                Ok(read) => {
                    pd.high_watermark = read.high_watermark;
                    pd.last_stable_offset = read.last_stable_offset;
                    pd.log_start_offset = read.log_start_offset;
                    if read_committed {
                        pd.aborted_transactions = Some(
                            read.aborted_transactions
                                .iter()
                                .map(|&(producer_id, first_offset)| {
                                    let mut a = AbortedTransaction::default();
                                    a.producer_id = producer_id;
                                    a.first_offset = first_offset;
                                    a
                                })
                                .collect(),
                        );
                    } else {
                        // Kafka sends null to read_uncommitted consumers.
                        pd.aborted_transactions = None;
                    }
                    total += read.records.len();
                    records = Some(read.records);
                }
                Err(e) => {
                    any_error = true;
                    pd = partition_error(fp.partition, e.code);
                    pd.high_watermark = partition.high_watermark();
                    pd.last_stable_offset = partition.last_stable_offset();
                    pd.log_start_offset = partition.log_start_offset();
                }
            }
            if version >= 12 {
                // KIP-951 leader hint; earlier versions cannot carry it.
                pd.current_leader.leader_id = state.config.node_id;
                pd.current_leader.leader_epoch = partition.leader_epoch();
            }
            push(&mut out, &mut record_sets, pd, records);
        }
        if version >= 13 {
            out.topic = StrBytes::default();
        } else {
            out.topic_id = wire_uuid(&strom_controller::TopicId([0; 16]));
        }
        topics.push(out);
    }
    Pass {
        topics,
        record_sets,
        total,
        any_error,
    }
}

/// The response frame, record sets left in their files for `sendfile`.
fn respond(request: &Request<'_>, mut response: FetchResponse, pass: Pass) -> Outcome {
    response.responses = pass.topics;
    let header = request.header;
    match encode_fetch_response(
        header.correlation_id,
        request.version,
        &response,
        pass.record_sets,
    ) {
        Ok(frame) => Outcome::RespondParts(frame),
        // Our own response did not encode: a bug, not the client's fault.
        Err(e) => Outcome::Close(format!("failed to encode fetch response: {e}")),
    }
}

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: FetchRequest = request.decode(state, body)?;
    let mut response = FetchResponse::default();
    if req.session_id != 0 {
        response.error_code = ErrorCode::FetchSessionIdNotFound.code();
        return Ok(request.respond(&response));
    }
    let wait = Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_MS_LIMIT) as u64);
    let deadline = tokio::time::Instant::now() + wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    let mut data_version = state.data_version.subscribe();
    loop {
        data_version.borrow_and_update();
        let pass = read_all(state, &req, request.version);
        let done = pass.total >= min_bytes.max(1)
            || pass.any_error
            || req.topics.is_empty()
            || tokio::time::Instant::now() >= deadline;
        if done || min_bytes == 0 {
            return Ok(respond(request, response, pass));
        }
        // Sleep until an append or the deadline, whichever is first.
        if tokio::time::timeout_at(deadline, data_version.changed())
            .await
            .is_err()
        {
            let pass = read_all(state, &req, request.version);
            return Ok(respond(request, response, pass));
        }
    }
}
