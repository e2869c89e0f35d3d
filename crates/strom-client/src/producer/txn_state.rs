//! The transactional producer's state, without I/O (the state half of Java's
//! `TransactionManager`): which calls are allowed now, which partitions the
//! coordinator knows are in the transaction, and how an error leaves the
//! producer — *abortable* (this transaction cannot commit; abort it and go on)
//! or *fatal* (every later call fails; close the producer).
//!
//! The application's calls (`transactions.rs`) and the sender task both
//! change it, under one mutex held only for these synchronous steps.

use std::collections::BTreeSet;
use std::fmt;

use strom_protocol::ErrorCode;

use super::accumulator::ProducerIdentity;
use super::ProducerError;
use crate::error::ClientError;

/// A partition as the producer keys it: (topic, partition).
pub(crate) type PartitionKey = (String, i32);

/// Java's `TransactionManager.State`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxnState {
    /// `init_transactions` has not completed.
    Uninitialized,
    /// `init_transactions` is running (or ran out of time and may be called again).
    Initializing,
    /// Between transactions.
    Ready,
    /// After `begin_transaction`: sends and offsets are accepted.
    InTransaction,
    /// `commit_transaction` is flushing or waiting for EndTxn.
    Committing,
    /// `abort_transaction` is failing unsent batches or waiting for EndTxn.
    Aborting,
    /// The transaction cannot commit; only `abort_transaction` goes on.
    AbortableError,
    /// Nothing goes on; the producer must be closed.
    FatalError,
}

impl fmt::Display for TxnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            TxnState::Uninitialized => "UNINITIALIZED",
            TxnState::Initializing => "INITIALIZING",
            TxnState::Ready => "READY",
            TxnState::InTransaction => "IN_TRANSACTION",
            TxnState::Committing => "COMMITTING_TRANSACTION",
            TxnState::Aborting => "ABORTING_TRANSACTION",
            TxnState::AbortableError => "ABORTABLE_ERROR",
            TxnState::FatalError => "FATAL_ERROR",
        };
        f.write_str(name)
    }
}

/// The transaction protocol in use, chosen at `init_transactions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TransactionVersion {
    /// KIP-98's classic protocol: AddPartitionsToTxn before a partition's
    /// first batch, AddOffsetsToTxn before TxnOffsetCommit, EndTxn ≤ v4; the
    /// epoch stays across transactions.
    V1,
    /// KIP-890 part 2: Produce v12 and TxnOffsetCommit v5 add their partition
    /// themselves; every EndTxn v5 returns a new epoch (or producer id).
    V2,
}

/// How a transaction ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxnResult {
    Commit,
    Abort,
}

/// How a failed transactional request or batch leaves the producer.
#[derive(Clone, Debug)]
pub(crate) enum TxnFailure {
    /// Every later call fails with this cause.
    Fatal(ProducerError),
    /// The transaction must be aborted. `bump`: its sequence numbers or
    /// producer state are in doubt, so the abort also takes a new epoch
    /// (KIP-360).
    Abortable { cause: ProducerError, bump: bool },
}

/// The requests that end a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EndPlan {
    /// Send EndTxn: the coordinator knows of the transaction (an EndTxn for
    /// an empty one is refused with INVALID_TXN_STATE, so Java skips it).
    pub end_txn: bool,
    /// Then InitProducerId with the current producer id and epoch (KIP-360),
    /// whose new epoch restarts every sequence.
    pub bump_after: bool,
}

/// What `init_transactions` does from the current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InitKind {
    /// InitProducerId without a producer id: a new incarnation, which fences
    /// every earlier one.
    Fresh,
    /// After an abortable error: abort the transaction and continue under the
    /// current producer id with a bumped epoch (KIP-360).
    Recover,
}

/// Errors a failed batch makes fatal, as Java's `maybeTransitionToErrorState`;
/// any other failure of a transactional batch is abortable.
const FATAL_BATCH_ERRORS: &[ErrorCode] = &[
    ErrorCode::ClusterAuthorizationFailed,
    ErrorCode::TransactionalIdAuthorizationFailed,
    ErrorCode::ProducerFenced,
    ErrorCode::UnsupportedVersion,
];

/// The state itself.
#[derive(Debug)]
pub(crate) struct TxnStatus {
    pub state: TxnState,
    /// The cause of the current error state.
    last_error: Option<ProducerError>,
    /// The producer id and epoch, once InitProducerId answered.
    pub identity: Option<ProducerIdentity>,
    pub version: TransactionVersion,
    /// Partitions the coordinator has in this transaction: added with
    /// AddPartitionsToTxn (V1), or written to by a produce (V2).
    partitions: BTreeSet<PartitionKey>,
    /// V1: partitions with records in this transaction, not yet sent to the
    /// coordinator. Their batches wait.
    new_partitions: BTreeSet<PartitionKey>,
    /// V1: partitions of the AddPartitionsToTxn request in flight.
    pending_partitions: BTreeSet<PartitionKey>,
    /// The coordinator knows of this transaction (a partition or the
    /// offsets partition was added): ending it needs an EndTxn. Java's
    /// `transactionStarted`.
    pub started: bool,
    /// The end of this transaction must also bump the epoch (KIP-360).
    pub epoch_bump_required: bool,
}

impl TxnStatus {
    pub fn new() -> TxnStatus {
        TxnStatus {
            state: TxnState::Uninitialized,
            last_error: None,
            identity: None,
            version: TransactionVersion::V2,
            partitions: BTreeSet::new(),
            new_partitions: BTreeSet::new(),
            pending_partitions: BTreeSet::new(),
            started: false,
            epoch_bump_required: false,
        }
    }

    /// The error every call gets in an error state (Java's `maybeFailWithError`).
    pub fn fail_if_error(&self) -> Result<(), ProducerError> {
        let cause = || Box::new(self.last_error.clone().unwrap_or(ProducerError::Closed));
        match self.state {
            TxnState::FatalError => Err(ProducerError::TransactionFatal(cause())),
            TxnState::AbortableError => Err(ProducerError::TransactionAbortable(cause())),
            _ => Ok(()),
        }
    }

    /// Whether `send` may queue a record now (Java's `failIfNotReadyForSend`).
    pub fn check_send(&self) -> Result<(), ProducerError> {
        self.fail_if_error()?;
        if self.identity.is_none() {
            return Err(illegal(
                "cannot send before init_transactions has completed on a transactional producer",
            ));
        }
        if self.state != TxnState::InTransaction {
            return Err(illegal(format!(
                "cannot send in state {}: call begin_transaction first",
                self.state
            )));
        }
        Ok(())
    }

    /// `begin_transaction`: Ready → InTransaction.
    pub fn begin(&mut self) -> Result<(), ProducerError> {
        self.fail_if_error()?;
        match self.state {
            TxnState::Ready => {
                self.state = TxnState::InTransaction;
                Ok(())
            }
            TxnState::Uninitialized | TxnState::Initializing => {
                Err(illegal("call init_transactions before begin_transaction"))
            }
            s => Err(illegal(format!(
                "cannot begin a transaction in state {s}: end the current one first"
            ))),
        }
    }

    /// `init_transactions`: what it does from here.
    pub fn start_init(&mut self) -> Result<InitKind, ProducerError> {
        match self.state {
            TxnState::Uninitialized | TxnState::Initializing => {
                self.state = TxnState::Initializing;
                Ok(InitKind::Fresh)
            }
            TxnState::AbortableError => Ok(InitKind::Recover),
            TxnState::FatalError => self.fail_if_error().map(|()| InitKind::Fresh),
            s => Err(illegal(format!(
                "init_transactions was already called (state {s})"
            ))),
        }
    }

    /// InitProducerId answered: the producer is ready for transactions.
    pub fn initialized(&mut self, identity: ProducerIdentity, version: TransactionVersion) {
        self.identity = Some(identity);
        self.version = version;
        self.clear_transaction();
        self.state = TxnState::Ready;
    }

    /// `commit_transaction` / `abort_transaction`: enters Committing /
    /// Aborting, or resumes the same call after it ran out of time.
    pub fn start_completion(&mut self, result: TxnResult) -> Result<(), ProducerError> {
        match (result, self.state) {
            (TxnResult::Commit, TxnState::Committing) | (TxnResult::Abort, TxnState::Aborting) => {
                Ok(())
            }
            (_, TxnState::FatalError) => self.fail_if_error(),
            (TxnResult::Commit, TxnState::AbortableError) => self.fail_if_error(),
            (TxnResult::Commit, TxnState::InTransaction) => {
                self.state = TxnState::Committing;
                Ok(())
            }
            (TxnResult::Abort, TxnState::InTransaction | TxnState::AbortableError) => {
                self.state = TxnState::Aborting;
                // Nothing more joins a transaction being aborted.
                self.new_partitions.clear();
                Ok(())
            }
            (TxnResult::Commit, TxnState::Aborting) => Err(illegal(
                "abort_transaction did not complete: call abort_transaction again",
            )),
            (TxnResult::Abort, TxnState::Committing) => Err(illegal(
                "commit_transaction did not complete: call commit_transaction again",
            )),
            (_, s) => Err(illegal(format!(
                "no transaction to end in state {s}: call begin_transaction first"
            ))),
        }
    }

    /// `send_offsets_to_transaction` is allowed only inside a transaction.
    pub fn check_in_transaction(&self) -> Result<(), ProducerError> {
        self.fail_if_error()?;
        if self.state != TxnState::InTransaction {
            return Err(illegal(format!(
                "cannot send offsets in state {}: not in a transaction",
                self.state
            )));
        }
        Ok(())
    }

    /// The transaction ended (EndTxn answered, or there was nothing to end):
    /// continue with `identity`, Ready for the next one.
    pub fn completed(&mut self, identity: ProducerIdentity) {
        self.identity = Some(identity);
        self.clear_transaction();
        self.state = TxnState::Ready;
    }

    fn clear_transaction(&mut self) {
        self.last_error = None;
        self.partitions.clear();
        self.new_partitions.clear();
        self.pending_partitions.clear();
        self.started = false;
        self.epoch_bump_required = false;
    }

    /// A record of the transaction was placed in `partition` (Java's
    /// `maybeAddPartition`): under V1 it must be added before its batch goes.
    pub fn add_partition(&mut self, partition: &PartitionKey) {
        if self.version == TransactionVersion::V1
            && !self.partitions.contains(partition)
            && !self.pending_partitions.contains(partition)
        {
            self.new_partitions.insert(partition.clone());
        }
    }

    /// Whether a batch of `partition` may be sent (Java's
    /// `isSendToPartitionAllowed`): under V1 only once the coordinator added it.
    pub fn send_allowed(&self, partition: &PartitionKey) -> bool {
        match self.version {
            TransactionVersion::V1 => self.partitions.contains(partition),
            TransactionVersion::V2 => true,
        }
    }

    /// A batch of `partition` is being sent. Under V2 that produce adds the
    /// partition, so from here on the transaction needs an EndTxn.
    pub fn drained(&mut self, partition: &PartitionKey) {
        if self.version == TransactionVersion::V2 {
            self.partitions.insert(partition.clone());
            self.started = true;
        }
    }

    /// V1: the partitions to add now, when no AddPartitionsToTxn is in
    /// flight; they become pending until [`partitions_added`](Self::partitions_added).
    pub fn take_partitions_to_add(&mut self) -> Option<(ProducerIdentity, Vec<PartitionKey>)> {
        let live = matches!(self.state, TxnState::InTransaction | TxnState::Committing);
        if self.version != TransactionVersion::V1
            || !live
            || !self.pending_partitions.is_empty()
            || self.new_partitions.is_empty()
        {
            return None;
        }
        let identity = self.identity?;
        self.pending_partitions = std::mem::take(&mut self.new_partitions);
        Some((identity, self.pending_partitions.iter().cloned().collect()))
    }

    /// The AddPartitionsToTxn answer for the pending partitions.
    pub fn partitions_added(&mut self, result: Result<(), TxnFailure>) {
        let pending = std::mem::take(&mut self.pending_partitions);
        match result {
            Ok(()) => {
                self.partitions.extend(pending);
                self.started = true;
            }
            Err(failure) => self.fail(failure),
        }
    }

    /// AddOffsetsToTxn (V1) or TxnOffsetCommit (V2) added the group's offsets
    /// partition: the coordinator knows of the transaction.
    pub fn offsets_added(&mut self) {
        self.started = true;
    }

    /// Enters the error state `failure` calls for. An abortable error while
    /// aborting leaves the state Aborting (Java skips the transition too) but
    /// is remembered, so that repeating the abort plans for it (a lost
    /// producer id mapping skips EndTxn); nothing leaves the fatal state.
    pub fn fail(&mut self, failure: TxnFailure) {
        match failure {
            TxnFailure::Fatal(cause) => {
                if self.state != TxnState::FatalError {
                    self.state = TxnState::FatalError;
                    self.last_error = Some(cause);
                }
            }
            TxnFailure::Abortable { cause, bump } => {
                self.epoch_bump_required |= bump;
                match self.state {
                    TxnState::FatalError => {}
                    TxnState::Aborting => self.last_error = Some(cause),
                    _ => {
                        self.state = TxnState::AbortableError;
                        self.last_error = Some(cause);
                    }
                }
            }
        }
    }

    /// A transactional batch failed for good with `err`.
    pub fn batch_failed(&mut self, err: &ProducerError) {
        // Records failed because of the error state itself change nothing.
        if matches!(
            err,
            ProducerError::TransactionAbortable(_)
                | ProducerError::TransactionFatal(_)
                | ProducerError::TransactionAborted
        ) {
            return;
        }
        let fatal = match err {
            ProducerError::Client(ClientError::UnsupportedVersion { .. }) => true,
            e => e
                .kafka_code()
                .is_some_and(|c| FATAL_BATCH_ERRORS.iter().any(|f| f.code() == c)),
        };
        if fatal {
            self.fail(TxnFailure::Fatal(err.clone()));
        } else {
            // The batch's sequence numbers may never have reached the broker:
            // the next transaction starts from a new epoch (KIP-360).
            self.fail(TxnFailure::Abortable {
                cause: err.clone(),
                bump: true,
            });
        }
    }

    /// The error batches not yet sent fail with, when the transaction cannot
    /// commit (Java's `abortUndrainedBatches`).
    pub fn undrained_error(&self) -> Option<ProducerError> {
        match self.state {
            TxnState::FatalError | TxnState::AbortableError => self.fail_if_error().err(),
            TxnState::Aborting => Some(ProducerError::TransactionAborted),
            _ => None,
        }
    }

    /// Whether a transaction is open and `abort_transaction` would end it
    /// (what `close` aborts, as Java's sender does on shutdown).
    pub fn has_open_transaction(&self) -> bool {
        matches!(
            self.state,
            TxnState::InTransaction | TxnState::AbortableError
        )
    }

    /// How ending the transaction goes.
    pub fn end_plan(&self, result: TxnResult) -> EndPlan {
        let pid_mapping_lost = self.last_error.as_ref().and_then(ProducerError::kafka_code)
            == Some(ErrorCode::InvalidProducerIdMapping.code());
        let bump = self.epoch_bump_required;
        if pid_mapping_lost {
            // No EndTxn gets past a lost mapping: straight to InitProducerId.
            return EndPlan {
                end_txn: false,
                bump_after: true,
            };
        }
        match self.version {
            TransactionVersion::V1 => EndPlan {
                end_txn: self.started,
                bump_after: bump,
            },
            // An EndTxn v5 bumps the epoch itself, and aborts even an empty
            // transaction to do so.
            TransactionVersion::V2 => EndPlan {
                end_txn: self.started || (bump && result == TxnResult::Abort),
                bump_after: false,
            },
        }
    }
}

/// Java's `IllegalStateException` analogue.
fn illegal(message: impl Into<String>) -> ProducerError {
    ProducerError::IllegalState(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: ProducerIdentity = ProducerIdentity {
        producer_id: 7,
        producer_epoch: 0,
    };

    fn ready(version: TransactionVersion) -> TxnStatus {
        let mut s = TxnStatus::new();
        assert_eq!(s.start_init().unwrap(), InitKind::Fresh);
        s.initialized(ID, version);
        s
    }

    fn key(p: i32) -> PartitionKey {
        ("t".to_string(), p)
    }

    fn kafka(code: ErrorCode) -> ProducerError {
        ProducerError::Client(ClientError::kafka(code.code(), None))
    }

    #[test]
    fn calls_in_the_wrong_state_are_illegal() {
        let mut s = TxnStatus::new();
        assert!(matches!(
            s.check_send(),
            Err(ProducerError::IllegalState(_))
        ));
        assert!(matches!(s.begin(), Err(ProducerError::IllegalState(_))));
        assert!(s.start_completion(TxnResult::Commit).is_err());
        let mut s = ready(TransactionVersion::V2);
        assert!(matches!(
            s.check_send(),
            Err(ProducerError::IllegalState(_))
        ));
        assert!(s.check_in_transaction().is_err());
        assert!(s.start_completion(TxnResult::Abort).is_err());
        assert!(matches!(
            s.start_init(),
            Err(ProducerError::IllegalState(_))
        ));
        s.begin().unwrap();
        assert!(s.begin().is_err());
        s.check_send().unwrap();
        s.check_in_transaction().unwrap();
        s.start_completion(TxnResult::Commit).unwrap();
        assert!(s.check_send().is_err());
        // A commit that ran out of time is resumed by commit, not by abort.
        s.start_completion(TxnResult::Commit).unwrap();
        assert!(s.start_completion(TxnResult::Abort).is_err());
        s.completed(ID);
        assert_eq!(s.state, TxnState::Ready);
    }

    #[test]
    fn v1_partitions_wait_for_add_partitions_to_txn() {
        let mut s = ready(TransactionVersion::V1);
        s.begin().unwrap();
        s.add_partition(&key(0));
        s.add_partition(&key(1));
        assert!(!s.send_allowed(&key(0)));
        let (_, parts) = s.take_partitions_to_add().unwrap();
        assert_eq!(parts, vec![key(0), key(1)]);
        // One request at a time; a partition pending is not asked for twice.
        s.add_partition(&key(1));
        s.add_partition(&key(2));
        assert!(s.take_partitions_to_add().is_none());
        s.partitions_added(Ok(()));
        assert!(s.started && s.send_allowed(&key(0)) && !s.send_allowed(&key(2)));
        let (_, parts) = s.take_partitions_to_add().unwrap();
        assert_eq!(parts, vec![key(2)]);
        s.partitions_added(Err(TxnFailure::Fatal(kafka(ErrorCode::ProducerFenced))));
        assert_eq!(s.state, TxnState::FatalError);
        assert!(!s.send_allowed(&key(2)));
    }

    #[test]
    fn v2_sends_at_once_and_the_first_batch_starts_the_transaction() {
        let mut s = ready(TransactionVersion::V2);
        s.begin().unwrap();
        s.add_partition(&key(0));
        assert!(s.send_allowed(&key(0)) && s.take_partitions_to_add().is_none());
        assert!(!s.end_plan(TxnResult::Commit).end_txn);
        s.drained(&key(0));
        let plan = s.end_plan(TxnResult::Commit);
        assert!(plan.end_txn && !plan.bump_after);
    }

    #[test]
    fn a_failed_batch_is_abortable_and_fencing_is_fatal() {
        let mut s = ready(TransactionVersion::V1);
        s.begin().unwrap();
        s.batch_failed(&kafka(ErrorCode::TransactionAbortable));
        assert_eq!(s.state, TxnState::AbortableError);
        assert!(s.epoch_bump_required);
        assert!(matches!(
            s.start_completion(TxnResult::Commit),
            Err(ProducerError::TransactionAbortable(_))
        ));
        assert!(matches!(
            s.check_send(),
            Err(ProducerError::TransactionAbortable(_))
        ));
        assert!(matches!(
            s.undrained_error(),
            Some(ProducerError::TransactionAbortable(_))
        ));
        assert_eq!(s.start_init().unwrap(), InitKind::Recover);
        s.start_completion(TxnResult::Abort).unwrap();
        assert!(matches!(
            s.undrained_error(),
            Some(ProducerError::TransactionAborted)
        ));
        // Batches failed by the abort itself leave the state alone.
        s.batch_failed(&ProducerError::TransactionAborted);
        assert_eq!(s.state, TxnState::Aborting);
        s.completed(ProducerIdentity {
            producer_epoch: 1,
            ..ID
        });
        assert!(!s.epoch_bump_required && s.fail_if_error().is_ok());

        s.begin().unwrap();
        s.batch_failed(&kafka(ErrorCode::ProducerFenced));
        let err = s.begin().unwrap_err();
        assert!(err.is_fenced() && err.is_fatal(), "{err}");
        // Fatal stays fatal.
        s.fail(TxnFailure::Abortable {
            cause: kafka(ErrorCode::TransactionAbortable),
            bump: false,
        });
        assert!(s
            .start_completion(TxnResult::Abort)
            .unwrap_err()
            .is_fenced());
        assert!(s.start_init().unwrap_err().is_fatal());
    }

    #[test]
    fn lost_producer_id_mapping_skips_end_txn() {
        let mut s = ready(TransactionVersion::V1);
        s.begin().unwrap();
        s.offsets_added();
        assert!(s.end_plan(TxnResult::Commit).end_txn);
        s.fail(TxnFailure::Abortable {
            cause: kafka(ErrorCode::InvalidProducerIdMapping),
            bump: true,
        });
        s.start_completion(TxnResult::Abort).unwrap();
        let plan = s.end_plan(TxnResult::Abort);
        assert!(!plan.end_txn && plan.bump_after);

        // The same answer to the abort's own EndTxn: the repeated abort skips it.
        let mut s = ready(TransactionVersion::V2);
        s.begin().unwrap();
        s.drained(&key(0));
        s.start_completion(TxnResult::Abort).unwrap();
        assert!(s.end_plan(TxnResult::Abort).end_txn);
        s.fail(TxnFailure::Abortable {
            cause: kafka(ErrorCode::InvalidProducerIdMapping),
            bump: true,
        });
        assert_eq!(s.state, TxnState::Aborting);
        s.start_completion(TxnResult::Abort).unwrap();
        let plan = s.end_plan(TxnResult::Abort);
        assert!(!plan.end_txn && plan.bump_after);
    }

    #[test]
    fn an_abort_that_needs_a_new_epoch_gets_it_by_protocol() {
        let abortable = TxnFailure::Abortable {
            cause: kafka(ErrorCode::TransactionAbortable),
            bump: true,
        };
        // V1: EndTxn only for a started transaction, then InitProducerId.
        let mut s = ready(TransactionVersion::V1);
        s.begin().unwrap();
        s.fail(abortable.clone());
        s.start_completion(TxnResult::Abort).unwrap();
        let plan = s.end_plan(TxnResult::Abort);
        assert!(!plan.end_txn && plan.bump_after);
        // V2: the EndTxn bumps, even for an empty transaction.
        let mut s = ready(TransactionVersion::V2);
        s.begin().unwrap();
        s.fail(abortable);
        s.start_completion(TxnResult::Abort).unwrap();
        let plan = s.end_plan(TxnResult::Abort);
        assert!(plan.end_txn && !plan.bump_after);
    }
}
