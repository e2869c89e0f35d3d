//! Fetch (key 1): read committed records, long-polling until `min_bytes` are
//! available or `max_wait_ms` passes. Fetch sessions (KIP-227, v7+) are kept
//! by `fetch_session.rs`: an incremental fetch reads every partition of its
//! session and answers only those with news.

use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_controller::{ClusterImage, TopicId};
use strom_protocol::fetch_response::encode_fetch_response;
use strom_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use strom_protocol::messages::{FetchRequest, FetchResponse, StrBytes};
use strom_protocol::ErrorCode;
use strom_storage::LogSlice;

use super::metadata::wire_uuid;
use super::HandlerResult;
use crate::dispatch::{Outcome, Request};
use crate::fetch_session::{
    Answer, Context, FetchTarget, Shown, TopicKey, FINAL_EPOCH, NO_SESSION,
};
use crate::state::State;

/// Longest wait a client may ask for. Kafka has no cap; this one keeps a
/// connection from being parked for an unbounded time.
pub const MAX_WAIT_MS_LIMIT: i32 = 60_000;

/// Isolation level value for read_committed.
const READ_COMMITTED: i8 = 1;

/// First Fetch version with sessions.
const SESSIONS_VERSION: i16 = 7;

/// First Fetch version naming topics by id.
const TOPIC_IDS_VERSION: i16 = 13;

fn partition_error(index: i32, code: ErrorCode) -> PartitionData {
    let mut p = PartitionData::default();
    p.partition_index = index;
    p.error_code = code.code();
    p.high_watermark = -1;
    p.last_stable_offset = -1;
    p.log_start_offset = -1;
    p
}

/// One partition's answer in a pass, with its record set.
struct Entry {
    pd: PartitionData,
    records: Option<LogSlice>,
}

/// One pass over the partitions to read, in order.
struct Pass {
    entries: Vec<Entry>,
    /// Record bytes found.
    total: usize,
    any_error: bool,
}

/// The partitions a request names, keyed as its version names topics.
fn requested(req: &FetchRequest, uses_topic_ids: bool) -> Vec<FetchTarget> {
    let mut out = Vec::new();
    for topic in &req.topics {
        let key = topic_key(uses_topic_ids, &topic.topic, &topic.topic_id);
        for fp in &topic.partitions {
            out.push(FetchTarget {
                topic: key.clone(),
                partition: fp.partition,
                fetch_offset: fp.fetch_offset,
                partition_max_bytes: fp.partition_max_bytes,
                current_leader_epoch: fp.current_leader_epoch,
            });
        }
    }
    out
}

/// The partitions an incremental request drops from its session.
fn forgotten(req: &FetchRequest, uses_topic_ids: bool) -> Vec<(TopicKey, i32)> {
    req.forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let key = topic_key(uses_topic_ids, &t.topic, &t.topic_id);
            t.partitions.iter().map(move |p| (key.clone(), *p))
        })
        .collect()
}

fn topic_key(
    uses_topic_ids: bool,
    name: &StrBytes,
    id: &strom_protocol::messages::Uuid,
) -> TopicKey {
    if uses_topic_ids {
        TopicKey::Id(id.to_bytes())
    } else {
        TopicKey::Name(name.as_str().to_owned())
    }
}

fn read_all(state: &State, req: &FetchRequest, targets: &[FetchTarget]) -> Pass {
    let image = state.controller.image();
    let read_committed = req.isolation_level == READ_COMMITTED;
    let max_bytes = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    };
    let mut total = 0usize;
    let mut any_error = false;
    let mut entries = Vec::with_capacity(targets.len());
    for target in targets {
        let (pd, records) = read_partition(
            state,
            &image,
            target,
            max_bytes.saturating_sub(total),
            total == 0,
            read_committed,
        );
        any_error |= pd.error_code != 0;
        total += records.as_ref().map_or(0, |r| r.len());
        entries.push(Entry { pd, records });
    }
    Pass {
        entries,
        total,
        any_error,
    }
}

/// Reads one partition within `budget` bytes (`min_one`: the first batch
/// whole even if larger, KIP-74, so a consumer always makes progress).
fn read_partition(
    state: &State,
    image: &ClusterImage,
    target: &FetchTarget,
    budget: usize,
    min_one: bool,
    read_committed: bool,
) -> (PartitionData, Option<LogSlice>) {
    let name = match &target.topic {
        TopicKey::Id(id) => image.topic_by_id(&TopicId(*id)).map(|t| t.name.as_str()),
        TopicKey::Name(name) => Some(name.as_str()),
    };
    let Some(name) = name else {
        return (
            partition_error(target.partition, ErrorCode::UnknownTopicId),
            None,
        );
    };
    let Some(partition) = state.replicas.get(name, target.partition) else {
        let code = if image.topic(name).is_some() || matches!(target.topic, TopicKey::Name(_)) {
            ErrorCode::UnknownTopicOrPartition
        } else {
            ErrorCode::UnknownTopicId
        };
        return (partition_error(target.partition, code), None);
    };
    if let Err(code) = partition.check_leader_epoch(target.current_leader_epoch) {
        return (partition_error(target.partition, code), None);
    }
    let budget = budget.min(target.partition_max_bytes.max(0) as usize);
    let mut pd = PartitionData::default();
    pd.partition_index = target.partition;
    let mut records = None;
    match partition.read(target.fetch_offset, budget, read_committed, min_one) {
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
            records = Some(read.records);
        }
        Err(e) => {
            pd = partition_error(target.partition, e.code);
            pd.high_watermark = partition.high_watermark();
            pd.last_stable_offset = partition.last_stable_offset();
            pd.log_start_offset = partition.log_start_offset();
        }
    }
    // KIP-951 leader hint (v12+; older versions do not carry it).
    pd.current_leader.leader_id = state.config.node_id;
    pd.current_leader.leader_epoch = partition.leader_epoch();
    (pd, records)
}

/// The response frame of the entries `carried` keeps, grouped into topics
/// (consecutive partitions of one topic share an entry), record sets left in
/// their files for `sendfile`.
fn respond(
    request: &Request<'_>,
    mut response: FetchResponse,
    targets: &[FetchTarget],
    pass: Pass,
    carried: &[bool],
) -> Outcome {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut record_sets = Vec::new();
    let mut last: Option<&TopicKey> = None;
    for ((target, entry), keep) in targets.iter().zip(pass.entries).zip(carried) {
        if !keep {
            continue;
        }
        if last != Some(&target.topic) {
            let mut t = FetchableTopicResponse::default();
            match &target.topic {
                TopicKey::Name(name) => t.topic = StrBytes::from(name.clone()),
                TopicKey::Id(id) => t.topic_id = wire_uuid(&TopicId(*id)),
            }
            topics.push(t);
            last = Some(&target.topic);
        }
        let mut pd = entry.pd;
        if request.version < 12 {
            pd.current_leader = Default::default();
        }
        topics.last_mut().expect("pushed above").partitions.push(pd);
        record_sets.push(entry.records);
    }
    response.responses = topics;
    let header = request.header;
    match encode_fetch_response(
        header.correlation_id,
        request.version,
        &response,
        record_sets,
    ) {
        Ok(frame) => Outcome::RespondParts(frame),
        // Our own response did not encode: a bug, not the client's fault.
        Err(e) => Outcome::Close(format!("failed to encode fetch response: {e}")),
    }
}

/// What the session cache compares for each entry of a pass.
fn answers(pass: &Pass) -> Vec<Answer> {
    pass.entries
        .iter()
        .map(|e| Answer {
            shown: Shown {
                high_watermark: e.pd.high_watermark,
                last_stable_offset: e.pd.last_stable_offset,
                log_start_offset: e.pd.log_start_offset,
            },
            error: e.pd.error_code != 0,
            has_records: e.records.as_ref().is_some_and(|r| !r.is_empty()),
        })
        .collect()
}

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: FetchRequest = request.decode(state, body)?;
    let mut response = FetchResponse::default();
    let uses_topic_ids = request.version >= TOPIC_IDS_VERSION;
    // Before v7 there are no session fields: every fetch is full and sessionless.
    let (session_id, epoch) = if request.version >= SESSIONS_VERSION {
        (req.session_id, req.session_epoch)
    } else {
        (0, FINAL_EPOCH)
    };
    let opened = state.fetch_sessions.lock().unwrap().open(
        session_id,
        epoch,
        uses_topic_ids,
        requested(&req, uses_topic_ids),
        &forgotten(&req, uses_topic_ids),
        Instant::now(),
    );
    let (context, targets) = match opened {
        Ok(opened) => opened,
        Err(code) => {
            response.error_code = code.code();
            return Ok(request.respond(&response));
        }
    };
    let wait = Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_MS_LIMIT) as u64);
    let deadline = tokio::time::Instant::now() + wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    let mut data_version = state.data_version.subscribe();
    let pass = loop {
        data_version.borrow_and_update();
        let pass = read_all(state, &req, &targets);
        let done = pass.total >= min_bytes.max(1)
            || pass.any_error
            || targets.is_empty()
            || tokio::time::Instant::now() >= deadline;
        if done || min_bytes == 0 {
            break pass;
        }
        // Sleep until an append or the deadline, whichever is first.
        if tokio::time::timeout_at(deadline, data_version.changed())
            .await
            .is_err()
        {
            break read_all(state, &req, &targets);
        }
    };
    let (response_session, carried) = state.fetch_sessions.lock().unwrap().finish(
        context,
        uses_topic_ids,
        &targets,
        &answers(&pass),
        Instant::now(),
    );
    if context == Context::Full && response_session != NO_SESSION {
        tracing::debug!(
            session = response_session,
            partitions = targets.len(),
            "fetch session opened"
        );
    }
    response.session_id = response_session;
    Ok(respond(request, response, &targets, pass, &carried))
}
