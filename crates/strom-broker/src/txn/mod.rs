//! The transaction coordinator (Kafka's exactly-once, KIP-98) as a pure state
//! machine, and the record codec of its internal topic `__transaction_state`.
//!
//! # What it is
//!
//! One [`TransactionCoordinator`] holds the [`TransactionMetadata`] of every
//! `transactional.id` that hashes to one `__transaction_state` partition this
//! broker leads (Kafka's `TxnMetadataCacheEntry`): it is created when the
//! broker becomes leader of that partition, with the partition's leader epoch
//! as the *coordinator epoch*, filled with [`TransactionCoordinator::load`]
//! from the partition's records, and dropped when leadership moves. It
//! decides InitProducerId, AddPartitionsToTxn (including the v4+ verify-only
//! form of KIP-890), AddOffsetsToTxn, EndTxn, DescribeTransactions and
//! ListTransactions, and aborts transactions that outlive their timeout.
//!
//! It does no I/O and reads no clock: every entry point takes `now_ms` and
//! returns a [`Step`] — the answer for the request plus [`Output`]s for the
//! caller to carry out.
//!
//! # The caller's contract
//!
//! - **Persist, then answer.** An [`Output::Persist`] is a record for
//!   `__transaction_state` (key = the transactional id, value = the new
//!   metadata, or a tombstone). The change it describes is *pending*: it takes
//!   effect in memory only when the caller reports the write with
//!   [`TransactionCoordinator::persist_completed`]. Send a step's reply only
//!   after its Persist is durable (Kafka answers from the append callback);
//!   if the write fails, report the failure and answer with the write's error
//!   instead (Kafka maps a failed append to COORDINATOR_NOT_AVAILABLE,
//!   NOT_COORDINATOR or UNKNOWN_SERVER_ERROR). While a change is pending, other
//!   requests for the same id get CONCURRENT_TRANSACTIONS, as in Kafka.
//! - **Markers after the decision is durable.** Once a PrepareCommit or
//!   PrepareAbort record is durable, `persist_completed` returns
//!   [`Output::WriteMarkers`]: write the control batches to every partition of
//!   the transaction (WriteTxnMarkers), retrying until they are written, then
//!   call [`TransactionCoordinator::markers_written`], which returns the
//!   Persist of the CompleteCommit / CompleteAbort record.
//! - **Timers.** Call [`TransactionCoordinator::expire_timed_out`] and
//!   [`TransactionCoordinator::retry_completions`] (for a Complete* record
//!   whose write failed) every
//!   `transaction.abort.timed.out.transaction.cleanup.interval.ms`, and
//!   [`TransactionCoordinator::expire_transactional_ids`] every
//!   `transactional.id.expiration` cleanup interval ([`TxnConfig`]).
//! - **Failover.** After loading a partition, call
//!   [`TransactionCoordinator::recover`]: transactions that were decided
//!   (Prepare*) but not completed resume their marker writing.
//! - Producer ids come from the caller through [`ProducerIdAllocator`] (the
//!   controller hands out blocks), passed to the calls that may need one.
//!
//! # Transaction versions
//!
//! [`TransactionVersion::Tv1`] is the classic protocol of KIP-98 (Kafka's
//! `transaction.version` 0 and 1, which behave alike here: level 1 only added
//! flexible log records and KIP-890 part-1 partition verification, neither of
//! which changes the client's contract). A producer keeps the epoch InitProducerId
//! gave it across transactions; a retried EndTxn that already completed
//! succeeds if it asks for the same outcome.
//!
//! [`TransactionVersion::Tv2`] is KIP-890 part 2 (EndTxn v5+): every EndTxn
//! bumps the producer epoch and returns the new one, and the markers carry it.
//! A late EndTxn, AddPartitionsToTxn or produce from an earlier transaction
//! therefore carries a stale epoch and is fenced instead of applying to the
//! next transaction — the hazard Jepsen reported against the classic protocol.
//! A retry of the EndTxn that did the bump (epoch one below the current) is
//! recognised and answered idempotently.
//!
//! Behaviour follows Kafka 4.x (`TransactionCoordinator`, `TransactionMetadata`,
//! `TransactionStateManager`, KIP-98, KIP-360, KIP-890).
//!
//! # Deliberate deviations (each explained where it is made)
//!
//! - A coordinator-initiated abort (timeout, fencing InitProducerId) bumps
//!   the epoch by two whatever the client's version, as Kafka does when its
//!   `transaction.version` is 2; at the last epoch it does not rotate the
//!   producer id, so the fenced producer stays fenced.
//! - A TV2 EndTxn one epoch below the current counts as a retry only if the
//!   transaction it would repeat was ended by TV2: otherwise a TV2 zombie
//!   could be handed a TV1 producer's live epoch.
//! - A KIP-360 InitProducerId with a stale epoch is fenced instead of
//!   aborting the current producer's ongoing transaction.
//! - The retry of a KIP-360 InitProducerId at an exhausted epoch is answered
//!   (Kafka fails it with an internal error).
//! - Strom writes `TransactionLogValue` v1 always (Kafka writes v0 until
//!   `transaction.version` 1); both are read.
//! - Named limits: transactional ids up to 32767 bytes (INVALID_REQUEST
//!   beyond), `max_partitions_per_transaction` (UNKNOWN_SERVER_ERROR beyond,
//!   which is what Kafka answers once the record outgrows the topic).
//! - A failed Complete* write is retried by
//!   [`TransactionCoordinator::retry_completions`] (Kafka's marker channel
//!   retries internally).

pub mod coordinator;
mod end_txn;
mod init;
pub mod records;
pub mod runtime;
pub mod state;
#[cfg(test)]
mod tests;

pub use coordinator::{
    ListFilter, ListedTransaction, Output, PersistToken, ProducerIdAllocator, Step,
    TransactionCoordinator, TxnConfig, TxnConfigError,
};
pub use init::MAX_TRANSACTIONAL_ID_BYTES;
pub use records::{TxnLogValue, TxnRecordError};
pub use state::{TransactionMetadata, TxnState};

/// Kafka's `RecordBatch.NO_PRODUCER_ID`: no producer id.
pub const NO_PRODUCER_ID: i64 = -1;

/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`: no epoch (a transactional id whose
/// first InitProducerId has not been persisted yet).
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// The internal topic that stores transaction metadata.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Whether `epoch` leaves no room for another bump. Clients never get
/// `i16::MAX` itself so that the coordinator can always fence the current
/// producer by bumping once more (Kafka's `isEpochExhausted`).
pub fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// A partition of a topic. Ordered by topic, then partition, so a transaction's
/// partitions group by topic the way `__transaction_state` stores them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic name.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A producer id with its epoch, as InitProducerId and EndTxn v5+ return them
/// and as every transactional request carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProducerIdAndEpoch {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
}

impl ProducerIdAndEpoch {
    /// `(producer_id, producer_epoch)`.
    pub fn new(producer_id: i64, producer_epoch: i16) -> Self {
        Self {
            producer_id,
            producer_epoch,
        }
    }

    /// Kafka's "no producer": what a TV1 EndTxn response and error responses carry.
    pub const NONE: ProducerIdAndEpoch = ProducerIdAndEpoch {
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
    };
}

/// Commit or abort (Kafka's `TransactionResult`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnResult {
    /// Make the transaction's records visible to read_committed consumers.
    Commit,
    /// Discard them.
    Abort,
}

/// The transaction protocol a client speaks; see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TransactionVersion {
    /// Classic KIP-98 transactions: the epoch stays the same across transactions.
    #[default]
    Tv1,
    /// KIP-890 part 2: EndTxn bumps the epoch.
    Tv2,
}

impl TransactionVersion {
    /// From the `transaction.version` feature level stored in
    /// `TransactionLogValue.ClientTransactionVersion`: 2 and above bump epochs.
    pub fn from_feature_level(level: i16) -> Self {
        if level >= 2 {
            TransactionVersion::Tv2
        } else {
            TransactionVersion::Tv1
        }
    }

    /// The feature level written to `__transaction_state`: 0 for classic
    /// clients (what Kafka records for them), 2 for KIP-890 clients.
    pub fn feature_level(self) -> i16 {
        match self {
            TransactionVersion::Tv1 => 0,
            TransactionVersion::Tv2 => 2,
        }
    }

    /// Whether every EndTxn bumps the epoch (Kafka's `supportsEpochBump`).
    pub fn bumps_epoch_on_end(self) -> bool {
        self == TransactionVersion::Tv2
    }
}
