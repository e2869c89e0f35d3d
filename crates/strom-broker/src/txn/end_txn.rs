//! EndTxn: commit or abort, under the classic rules (TV1) or KIP-890's (TV2).

use strom_protocol::ErrorCode;

use super::coordinator::{ProducerIdAllocator, Step, TransactionCoordinator};
use super::state::{TransactionMetadata, TxnState};
use super::{ProducerIdAndEpoch, TransactionVersion, TxnResult, NO_PRODUCER_ID};

/// What an EndTxn does once validated.
enum Decision {
    /// Answer now, change nothing (idempotent retry or refusal).
    Answer(Result<ProducerIdAndEpoch, ErrorCode>),
    /// Start completing the transaction.
    Prepare(TxnState),
}

impl TransactionCoordinator {
    /// EndTxn from the client. `version` is the client's transaction protocol
    /// (TV2 for EndTxn v5+).
    ///
    /// An Ongoing transaction moves to PrepareCommit / PrepareAbort; the reply
    /// is sent once that record is durable, and the markers follow (see the
    /// module docs). Under TV2 the prepared record carries the next epoch and
    /// the reply returns it (or, when the epoch is exhausted, a new producer id
    /// at epoch 0); under TV1 the epoch stays and the reply carries no
    /// producer, as Kafka's.
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        result: TxnResult,
        version: TransactionVersion,
        ids: &mut dyn ProducerIdAllocator,
        now_ms: i64,
    ) -> Step<ProducerIdAndEpoch> {
        if transactional_id.is_empty() {
            return Step::err(ErrorCode::InvalidRequest);
        }
        let Some(entry) = self.entries.get(transactional_id) else {
            return Step::err(ErrorCode::InvalidProducerIdMapping);
        };
        let meta = &entry.meta;
        let pending = entry.pending.is_some();
        let decision = match version {
            TransactionVersion::Tv1 => decide_tv1(meta, producer, result, pending),
            TransactionVersion::Tv2 => decide_tv2(meta, producer, result, pending),
        };
        let to = match decision {
            Decision::Answer(reply) => {
                return Step {
                    reply,
                    outputs: Vec::new(),
                }
            }
            Decision::Prepare(to) => to,
        };
        let target = match prepared(meta, to, version, ids, now_ms) {
            Ok(target) => target,
            Err(code) => return Step::err(code),
        };
        let reply = match version {
            TransactionVersion::Tv1 => ProducerIdAndEpoch::NONE,
            // The client continues with the producer the transaction
            // completes into.
            TransactionVersion::Tv2 if target.next_producer_id != NO_PRODUCER_ID => {
                ProducerIdAndEpoch::new(target.next_producer_id, 0)
            }
            TransactionVersion::Tv2 => target.producer(),
        };
        let mut outputs = Vec::new();
        match self.prepare(transactional_id, target, &mut outputs) {
            Ok(()) => Step {
                reply: Ok(reply),
                outputs,
            },
            Err(code) => Step::err(code),
        }
    }
}

fn prepare_state(result: TxnResult) -> TxnState {
    match result {
        TxnResult::Commit => TxnState::PrepareCommit,
        TxnResult::Abort => TxnState::PrepareAbort,
    }
}

/// The answer to an EndTxn that finds its transaction already decided: the
/// same outcome in progress is CONCURRENT_TRANSACTIONS (retry later), the same
/// outcome done is `done`, a different outcome is INVALID_TXN_STATE.
fn decided(
    state: TxnState,
    result: TxnResult,
    done: Result<ProducerIdAndEpoch, ErrorCode>,
) -> Decision {
    let answer = match (state.result() == Some(result), state.is_prepare()) {
        (false, _) => Err(ErrorCode::InvalidTxnState),
        (true, true) => Err(ErrorCode::ConcurrentTransactions),
        (true, false) => done,
    };
    Decision::Answer(answer)
}

/// Kafka's classic EndTxn (`endTransactionWithTV1`): the epoch must be the
/// current one; a completed transaction answers a retry of the same outcome.
/// A late EndTxn of an earlier transaction is indistinguishable from one for
/// the current transaction here — the hazard TV2 removes.
fn decide_tv1(
    meta: &TransactionMetadata,
    producer: ProducerIdAndEpoch,
    result: TxnResult,
    pending: bool,
) -> Decision {
    if meta.producer_id != producer.producer_id || meta.is_uninitialized() {
        return Decision::Answer(Err(ErrorCode::InvalidProducerIdMapping));
    }
    if meta.producer_epoch != producer.producer_epoch {
        return Decision::Answer(Err(ErrorCode::ProducerFenced));
    }
    if pending {
        return Decision::Answer(Err(ErrorCode::ConcurrentTransactions));
    }
    match meta.state {
        TxnState::Ongoing => Decision::Prepare(prepare_state(result)),
        s if s.is_prepare() || s.is_complete() => decided(s, result, Ok(ProducerIdAndEpoch::NONE)),
        _ => Decision::Answer(Err(ErrorCode::InvalidTxnState)),
    }
}

/// KIP-890 EndTxn (Kafka's `endTransaction` for TV2). Every EndTxn bumps the
/// epoch, so the epoch tells requests apart: the current epoch is a request
/// for the current transaction, one below is a retry of the EndTxn that
/// bumped it, anything else is fenced. Kafka's table for states without an
/// open transaction (PF = PRODUCER_FENCED, ITS = INVALID_TXN_STATE,
/// EB = bump the epoch and abort an empty transaction):
///
/// | state          | abort, retry | abort, current | commit, retry | commit, current |
/// |----------------|--------------|----------------|---------------|-----------------|
/// | Empty          | PF           | EB             | PF            | ITS             |
/// | CompleteAbort  | NONE         | EB             | ITS           | ITS             |
/// | CompleteCommit | ITS          | EB             | NONE          | ITS             |
fn decide_tv2(
    meta: &TransactionMetadata,
    producer: ProducerIdAndEpoch,
    result: TxnResult,
    pending: bool,
) -> Decision {
    let retry_of_rotation = meta.is_end_txn_retry_of_rotation(producer);
    if (meta.producer_id != producer.producer_id || meta.is_uninitialized()) && !retry_of_rotation {
        return Decision::Answer(Err(ErrorCode::InvalidProducerIdMapping));
    }
    let is_retry = retry_of_rotation || meta.is_end_txn_retry_of_bump(producer);
    let current = producer == meta.producer();
    let valid_epoch = match meta.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => is_retry,
        TxnState::CompleteCommit | TxnState::CompleteAbort => is_retry || current,
        _ => current,
    };
    if !valid_epoch {
        return Decision::Answer(Err(ErrorCode::ProducerFenced));
    }
    if pending {
        return Decision::Answer(Err(ErrorCode::ConcurrentTransactions));
    }
    let abort_empty = Decision::Prepare(TxnState::PrepareAbort);
    match (meta.state, result) {
        (TxnState::Ongoing, _) => Decision::Prepare(prepare_state(result)),
        (s, _) if s.is_prepare() => decided(s, result, Err(ErrorCode::ConcurrentTransactions)),
        (TxnState::Empty, TxnResult::Abort) => abort_empty,
        (s, TxnResult::Abort) if s.is_complete() && !is_retry => abort_empty,
        (s, _) if s.is_complete() && is_retry => decided(s, result, Ok(meta.producer())),
        _ => Decision::Answer(Err(ErrorCode::InvalidTxnState)),
    }
}

/// The Prepare* metadata for an EndTxn (Kafka's `prepareAbortOrCommit`).
/// TV2 bumps the epoch, and when that exhausts it, picks the producer id the
/// client continues with once the transaction completes. Aborting with no
/// transaction open (TV2) starts and ends an empty one now.
fn prepared(
    meta: &TransactionMetadata,
    to: TxnState,
    version: TransactionVersion,
    ids: &mut dyn ProducerIdAllocator,
    now_ms: i64,
) -> Result<TransactionMetadata, ErrorCode> {
    let mut next = meta.clone();
    next.state = to;
    next.client_transaction_version = version;
    next.txn_last_update_timestamp_ms = now_ms;
    if meta.state != TxnState::Ongoing {
        next.txn_start_timestamp_ms = now_ms;
        next.partitions.clear();
    }
    if version.bumps_epoch_on_end() {
        if meta.is_epoch_exhausted() {
            next.next_producer_id = ids.allocate_producer_id()?;
        }
        next.last_producer_epoch = meta.producer_epoch;
        next.producer_epoch = meta.producer_epoch.saturating_add(1);
    }
    Ok(next)
}
