//! InitProducerId with a `transactional.id`: hand the producer an epoch that
//! fences every earlier incarnation (KIP-98), let a producer that hit an
//! abortable error bump its own epoch (KIP-360), and move to a new producer id
//! when the epochs run out.

use strom_protocol::ErrorCode;

use super::coordinator::{Entry, ProducerIdAllocator, Step, TransactionCoordinator};
use super::state::{TransactionMetadata, TxnState};
use super::{is_epoch_exhausted, ProducerIdAndEpoch, NO_PRODUCER_EPOCH};

/// Longest transactional id, in bytes: `__transaction_state` keys store it
/// with an int16 length (`TransactionLogKey` v0 is not flexible), while
/// flexible requests could carry longer ones. Kafka fails such a request while
/// serializing the record; Strom refuses it up front with INVALID_REQUEST.
pub const MAX_TRANSACTIONAL_ID_BYTES: usize = i16::MAX as usize;

impl TransactionCoordinator {
    /// InitProducerId for `transactional_id` (the handler serves requests
    /// without one directly from the allocator, as Kafka does).
    ///
    /// - A new id gets a fresh producer id at epoch 0.
    /// - An existing id with no open transaction gets its epoch bumped, which
    ///   fences the previous incarnation; when the epoch is exhausted, a fresh
    ///   producer id at epoch 0 instead.
    /// - An Ongoing transaction is aborted first, with an epoch bump that
    ///   fences its producer, and the request answered
    ///   CONCURRENT_TRANSACTIONS; the client retries, finds the abort complete
    ///   and gets the next epoch. While a commit or abort completes:
    ///   CONCURRENT_TRANSACTIONS.
    /// - `expected` (KIP-360, InitProducerId v3+) is the producer id and epoch
    ///   the client holds: it continues after an error only if it still owns
    ///   the id (else PRODUCER_FENCED), and a retry of an InitProducerId that
    ///   already bumped gets the same answer again without a second bump. A
    ///   stale `expected` never aborts the current producer's transaction.
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        txn_timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
        ids: &mut dyn ProducerIdAllocator,
        now_ms: i64,
    ) -> Step<ProducerIdAndEpoch> {
        if transactional_id.is_empty() || transactional_id.len() > MAX_TRANSACTIONAL_ID_BYTES {
            return Step::err(ErrorCode::InvalidRequest);
        }
        if txn_timeout_ms <= 0 || txn_timeout_ms > self.config.max_timeout_ms {
            return Step::err(ErrorCode::InvalidTransactionTimeout);
        }
        if !self.entries.contains_key(transactional_id) {
            let producer_id = match ids.allocate_producer_id() {
                Ok(id) => id,
                Err(code) => return Step::err(code),
            };
            let meta = TransactionMetadata::new(
                transactional_id.to_owned(),
                producer_id,
                txn_timeout_ms,
                now_ms,
            );
            self.entries
                .insert(transactional_id.to_owned(), Entry::new(meta));
        }
        let Some(entry) = self.entries.get(transactional_id) else {
            return Step::err(ErrorCode::InvalidProducerIdMapping);
        };
        if entry.pending.is_some() {
            return Step::err(ErrorCode::ConcurrentTransactions);
        }
        let meta = &entry.meta;
        if let Some(expected) = expected {
            if !owns_producer_id(meta, expected) {
                return Step::err(ErrorCode::ProducerFenced);
            }
        }
        let (target, reply) = match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Step::err(ErrorCode::ConcurrentTransactions);
            }
            // Deviation: Kafka lets any holder of the producer id abort the
            // transaction here; a stale epoch is a zombie, and letting it
            // abort (and fence) the current producer's transaction gains
            // nothing, so it is fenced itself. The current holder recovering
            // with KIP-360, or a new incarnation (no `expected`), aborts.
            TxnState::Ongoing
                if expected.is_some_and(|e| e.producer_epoch != meta.producer_epoch) =>
            {
                return Step::err(ErrorCode::ProducerFenced);
            }
            TxnState::Ongoing => (
                meta.fenced_abort(now_ms),
                Err(ErrorCode::ConcurrentTransactions),
            ),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                match next_producer(meta, txn_timeout_ms, expected, ids, now_ms) {
                    Ok(target) => {
                        let reply = Ok(target.producer());
                        (target, reply)
                    }
                    Err(code) => return Step::err(code),
                }
            }
            // Never a resting state (see `TxnState`); refuse rather than guess.
            TxnState::Dead | TxnState::PrepareEpochFence => {
                return Step::err(ErrorCode::InvalidTxnState);
            }
        };
        let mut outputs = Vec::new();
        match self.prepare(transactional_id, target, &mut outputs) {
            Ok(()) => Step { reply, outputs },
            Err(code) => Step::err(code),
        }
    }
}

/// KIP-360: whether a client holding `expected` may re-initialise. It may if
/// the id has never been initialised (the client recovers from
/// UNKNOWN_PRODUCER_ID with a fresh id), if it holds the current producer id
/// (its epoch is checked next), or if it holds the previous one at an
/// exhausted epoch (a retry of the InitProducerId that rotated the id).
fn owns_producer_id(meta: &TransactionMetadata, expected: ProducerIdAndEpoch) -> bool {
    meta.producer_epoch == NO_PRODUCER_EPOCH
        || expected.producer_id == meta.producer_id
        || (expected.producer_id == meta.last_producer_id
            && is_epoch_exhausted(expected.producer_epoch))
}

/// The metadata after InitProducerId on an id with no open transaction
/// (Kafka's `prepareIncrementProducerEpoch` / `prepareProducerIdRotation`).
fn next_producer(
    meta: &TransactionMetadata,
    txn_timeout_ms: i32,
    expected: Option<ProducerIdAndEpoch>,
    ids: &mut dyn ProducerIdAllocator,
    now_ms: i64,
) -> Result<TransactionMetadata, ErrorCode> {
    let mut next = meta.clone();
    next.state = TxnState::Empty;
    next.partitions.clear();
    next.txn_start_timestamp_ms = -1;
    next.txn_timeout_ms = txn_timeout_ms;
    next.txn_last_update_timestamp_ms = now_ms;
    next.next_producer_id = super::NO_PRODUCER_ID;
    let current = meta.producer_epoch;
    let bump = match expected {
        // A new incarnation: fence everyone, remember nothing to retry.
        None => true,
        // The holder continues after an error (or the id is new).
        Some(e) if current == NO_PRODUCER_EPOCH || e.producer_epoch == current => true,
        // A retry of the call that bumped to the current epoch: same answer.
        // (Kafka reaches this only when the epoch is not exhausted; at the
        // boundary it fails with an internal error, Strom answers the retry.)
        Some(e) if e.producer_epoch == meta.last_producer_epoch => false,
        Some(_) => return Err(ErrorCode::ProducerFenced),
    };
    if !bump {
        return Ok(next);
    }
    // What a retry of this very call will carry, so it can be recognised.
    next.last_producer_epoch = if expected.is_some() {
        current
    } else {
        NO_PRODUCER_EPOCH
    };
    next.last_producer_id = meta.producer_id;
    if meta.is_epoch_exhausted() {
        next.producer_id = ids.allocate_producer_id()?;
        next.producer_epoch = 0;
    } else {
        next.producer_epoch = current + 1;
    }
    Ok(next)
}
