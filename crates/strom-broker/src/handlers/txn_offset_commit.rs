//! TxnOffsetCommit (key 28, v0–v5): a transactional producer commits a
//! consumer group's offsets as part of its transaction
//! (`sendOffsetsToTransaction`, KIP-98; member fields v3+, KIP-447). The
//! offsets stay pending until the transaction's marker reaches
//! `__consumer_offsets` (see `group::txn_offsets`).

use bytes::Bytes;
use strom_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use strom_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::group::coordinator::OFFSETS_TOPIC;
use crate::group::txn_offsets::{TxnOffset, TxnOffsetCommit};
use crate::state::{now_ms, State};
use crate::txn::{ProducerIdAndEpoch, TopicPartition};

/// The response with `codes[i]` for the i-th partition of the request, in
/// request order.
fn response(
    req: &TxnOffsetCommitRequest,
    version: i16,
    codes: &[ErrorCode],
) -> TxnOffsetCommitResponse {
    let mut codes = codes.iter().copied();
    let mut response = TxnOffsetCommitResponse::default();
    response.topics = req
        .topics
        .iter()
        .map(|t| {
            let mut out = TxnOffsetCommitResponseTopic::default();
            out.name = t.name.clone();
            out.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = TxnOffsetCommitResponsePartition::default();
                    r.partition_index = p.partition_index;
                    r.error_code =
                        for_version(codes.next().unwrap_or(ErrorCode::None), version).code();
                    r
                })
                .collect();
            out
        })
        .collect();
    response
}

/// Clients before v2 may not retry COORDINATOR_LOAD_IN_PROGRESS (KAFKA-7296);
/// Kafka tells them COORDINATOR_NOT_AVAILABLE instead.
fn for_version(code: ErrorCode, version: i16) -> ErrorCode {
    if version < 2 && code == ErrorCode::CoordinatorLoadInProgress {
        ErrorCode::CoordinatorNotAvailable
    } else {
        code
    }
}

fn partition_count(req: &TxnOffsetCommitRequest) -> usize {
    req.topics.iter().map(|t| t.partitions.len()).sum()
}

/// KIP-890: checks with the transaction coordinator that the group's
/// `__consumer_offsets` partition is part of the producer's ongoing
/// transaction, so that a late commit of a finished transaction cannot open a
/// hanging one. v5+ comes from transaction-version-2 clients, which send no
/// AddOffsetsToTxn: the partition is added here instead. Answers as Kafka's
/// verification does for the older versions: a partition outside the
/// transaction is INVALID_TXN_STATE, a stale epoch INVALID_PRODUCER_EPOCH.
async fn verify_offsets_partition_in_transaction(
    state: &State,
    request: &TxnOffsetCommit,
    transactional_id: &str,
    version: i16,
) -> Result<(), ErrorCode> {
    let tp = TopicPartition::new(OFFSETS_TOPIC, state.groups.partition_for(&request.group_id));
    let producer = ProducerIdAndEpoch::new(request.producer_id, request.producer_epoch);
    state
        .txn
        .verify_partition(
            state,
            transactional_id,
            producer,
            &tp,
            version >= 5,
            version < 5,
        )
        .await
}

/// The request as the group coordinator takes it.
pub(crate) fn commit_of(req: &TxnOffsetCommitRequest) -> TxnOffsetCommit {
    TxnOffsetCommit {
        group_id: req.group_id.as_str().to_owned(),
        producer_id: req.producer_id,
        producer_epoch: req.producer_epoch,
        member_id: req.member_id.as_str().to_owned(),
        group_instance_id: req
            .group_instance_id
            .as_ref()
            .map(|s| s.as_str().to_owned()),
        generation_id: req.generation_id_or_member_epoch,
        offsets: req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| TxnOffset {
                    topic: t.name.as_str().to_owned(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.as_str().to_owned()),
                })
            })
            .collect(),
    }
}

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: TxnOffsetCommitRequest = request.decode(state, body)?;
    let all = |code| vec![code; partition_count(&req)];
    // Kafka's transaction coordinator refuses an empty transactional id with
    // INVALID_REQUEST; offsets without a transaction cannot be committed.
    if req.transactional_id.is_empty() {
        return Ok(request.respond(&response(
            &req,
            request.version,
            &all(ErrorCode::InvalidRequest),
        )));
    }
    if req.group_id.is_empty() {
        return Ok(request.respond(&response(
            &req,
            request.version,
            &all(ErrorCode::InvalidGroupId),
        )));
    }
    let commit = commit_of(&req);
    if let Err(code) = verify_offsets_partition_in_transaction(
        state,
        &commit,
        req.transactional_id.as_str(),
        request.version,
    )
    .await
    {
        return Ok(request.respond(&response(&req, request.version, &all(code))));
    }
    let codes = state
        .groups
        .txn_offset_commit(state, &commit, now_ms())
        .await;
    Ok(request.respond(&response(&req, request.version, &codes)))
}
