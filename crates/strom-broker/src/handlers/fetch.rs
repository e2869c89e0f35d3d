//! Fetch (key 1): read committed records, long-polling until `min_bytes` are
//! available or `max_wait_ms` passes.
//!
//! Fetch sessions (KIP-227): this broker does not create sessions. It answers
//! every request with session id 0, which tells clients to keep sending full
//! fetch requests; a request naming a session gets FETCH_SESSION_ID_NOT_FOUND,
//! after which clients start over without one.

use std::time::Duration;

use bytes::Bytes;
use strom_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use strom_protocol::messages::{FetchRequest, FetchResponse, StrBytes};
use strom_protocol::ErrorCode;

use super::metadata::{topic_id, wire_uuid};
use super::HandlerResult;
use crate::dispatch::Request;
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

/// One pass over the requested partitions; returns the response and the bytes read.
fn read_all(
    state: &State,
    req: &FetchRequest,
    version: i16,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
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
                out.partitions
                    .push(partition_error(fp.partition, ErrorCode::UnknownTopicId));
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
                out.partitions.push(partition_error(fp.partition, code));
                continue;
            };
            if let Err(code) = partition.check_leader_epoch(fp.current_leader_epoch) {
                any_error = true;
                out.partitions.push(partition_error(fp.partition, code));
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
                    pd.records = Some(read.records);
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
            out.partitions.push(pd);
        }
        if version >= 13 {
            out.topic = StrBytes::default();
        } else {
            out.topic_id = wire_uuid(&strom_controller::TopicId([0; 16]));
        }
        topics.push(out);
    }
    (topics, total, any_error)
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
        let (topics, total, any_error) = read_all(state, &req, request.version);
        let done = total >= min_bytes.max(1)
            || any_error
            || req.topics.is_empty()
            || tokio::time::Instant::now() >= deadline;
        if done || min_bytes == 0 {
            response.responses = topics;
            return Ok(request.respond(&response));
        }
        // Sleep until an append or the deadline, whichever is first.
        if tokio::time::timeout_at(deadline, data_version.changed())
            .await
            .is_err()
        {
            let (topics, _, _) = read_all(state, &req, request.version);
            response.responses = topics;
            return Ok(request.respond(&response));
        }
    }
}
