//! The metadata of one transactional id and its states, with Kafka's names and
//! the byte codes `__transaction_state` stores them under.

use std::collections::BTreeSet;

use super::records::TxnLogValue;
use super::{
    is_epoch_exhausted, ProducerIdAndEpoch, TopicPartition, TransactionVersion, TxnResult,
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};

/// The state of a transactional id (Kafka's `TransactionState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnState {
    /// No transaction in progress: just initialised, or the last one completed
    /// and a new InitProducerId reset it.
    Empty,
    /// A transaction has partitions (AddPartitionsToTxn / AddOffsetsToTxn).
    Ongoing,
    /// EndTxn(commit) is durable; markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fencing InitProducerId is durable; markers
    /// are being written.
    PrepareAbort,
    /// The commit markers are written.
    CompleteCommit,
    /// The abort markers are written.
    CompleteAbort,
    /// The transactional id expired; its tombstone is being written. Never
    /// persisted as a state (the tombstone is).
    Dead,
    /// Kafka's transient state while an InitProducerId fences an ongoing
    /// transaction. Kafka never persists it and neither does Strom: a fence
    /// is written directly as PrepareAbort with the bumped epoch. Kept for the
    /// byte code, and read back as PrepareAbort should a log contain it.
    PrepareEpochFence,
}

impl TxnState {
    /// Every state, in byte-code order.
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// The byte stored as `TransactionLogValue.TransactionStatus`.
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state stored under byte code `id`, if any.
    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Kafka's name, as DescribeTransactions and ListTransactions report it.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The state named `name` (ListTransactions state filters).
    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether Kafka allows a transition from `from` to `self`
    /// (`validPreviousStates`). PrepareAbort from Empty / Complete* is the
    /// KIP-890 abort of a transaction the client is unsure it started.
    pub fn valid_from(self, from: TxnState) -> bool {
        use TxnState::*;
        match self {
            Empty => matches!(from, Empty | CompleteCommit | CompleteAbort),
            Ongoing => matches!(from, Ongoing | Empty | CompleteCommit | CompleteAbort),
            PrepareCommit => from == Ongoing,
            PrepareAbort => matches!(
                from,
                Ongoing | PrepareEpochFence | Empty | CompleteCommit | CompleteAbort
            ),
            CompleteCommit => from == PrepareCommit,
            CompleteAbort => from == PrepareAbort,
            Dead => matches!(from, Empty | CompleteCommit | CompleteAbort),
            PrepareEpochFence => from == Ongoing,
        }
    }

    /// Whether an idle transactional id in this state may expire
    /// (Kafka's `isExpirationAllowed`): never while a transaction is open.
    pub fn is_expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    /// The outcome a Prepare* or Complete* state stands for.
    pub fn result(self) -> Option<TxnResult> {
        match self {
            TxnState::PrepareCommit | TxnState::CompleteCommit => Some(TxnResult::Commit),
            TxnState::PrepareAbort | TxnState::CompleteAbort => Some(TxnResult::Abort),
            _ => None,
        }
    }

    /// PrepareCommit or PrepareAbort: decided, markers not all written.
    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// CompleteCommit or CompleteAbort.
    pub fn is_complete(self) -> bool {
        matches!(self, TxnState::CompleteCommit | TxnState::CompleteAbort)
    }
}

impl std::fmt::Display for TxnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything the coordinator knows about one transactional id (Kafka's
/// `TransactionMetadata`). Read-only outside this module: changes go through
/// the coordinator so that each one is persisted before it takes effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionMetadata {
    /// The `transactional.id` (the record key).
    pub transactional_id: String,
    /// The producer id in use.
    pub producer_id: i64,
    /// The producer id before the last InitProducerId or TV2 EndTxn (Kafka
    /// 4.x `previousProducerId`, stored as the tagged field
    /// `previous_producer_id`). Differs from `producer_id` after a rotation;
    /// lets a retry from the old id be recognised (KIP-360, KIP-890).
    pub last_producer_id: i64,
    /// While a TV2 EndTxn that exhausted the epoch is being completed: the
    /// producer id the client continues with, at epoch 0 (tagged field
    /// `next_producer_id`). [`NO_PRODUCER_ID`] otherwise.
    pub next_producer_id: i64,
    /// The current epoch; [`NO_PRODUCER_EPOCH`] before the first InitProducerId
    /// is persisted.
    pub producer_epoch: i16,
    /// The epoch before the last bump, so a retried InitProducerId (KIP-360)
    /// can be answered without bumping again. Not stored in
    /// `__transaction_state` (Kafka's schema has no field for it), so such a
    /// retry across a coordinator failover is fenced, as in Kafka.
    pub last_producer_epoch: i16,
    /// The client's `transaction.timeout.ms`.
    pub txn_timeout_ms: i32,
    /// The current state.
    pub state: TxnState,
    /// The partitions of the ongoing (or completing) transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// When the current transaction started (first partition added), or -1.
    pub txn_start_timestamp_ms: i64,
    /// When this metadata last changed; idle ids expire from here.
    pub txn_last_update_timestamp_ms: i64,
    /// The protocol of the client's last transition; see [`TransactionVersion`].
    pub client_transaction_version: TransactionVersion,
}

impl TransactionMetadata {
    /// A transactional id seen for the first time: `producer_id` allocated,
    /// no epoch yet, Empty (Kafka inserts the same before its first append).
    pub(super) fn new(
        transactional_id: String,
        producer_id: i64,
        txn_timeout_ms: i32,
        now_ms: i64,
    ) -> Self {
        Self {
            transactional_id,
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            txn_start_timestamp_ms: -1,
            txn_last_update_timestamp_ms: now_ms,
            client_transaction_version: TransactionVersion::Tv1,
        }
    }

    /// The current producer id and epoch.
    pub fn producer(&self) -> ProducerIdAndEpoch {
        ProducerIdAndEpoch::new(self.producer_id, self.producer_epoch)
    }

    /// Whether the current epoch leaves no room for a bump.
    pub fn is_epoch_exhausted(&self) -> bool {
        is_epoch_exhausted(self.producer_epoch)
    }

    /// Whether no InitProducerId for this id was ever persisted: its producer
    /// id was never handed out, so no request can legitimately carry it.
    pub fn is_uninitialized(&self) -> bool {
        self.producer_epoch == NO_PRODUCER_EPOCH
    }

    /// The record that stores this metadata in `__transaction_state`.
    pub fn to_log_value(&self) -> TxnLogValue {
        TxnLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.last_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            transaction_timeout_ms: self.txn_timeout_ms,
            transaction_status: self.state,
            transaction_partitions: self.partitions.clone(),
            transaction_last_update_timestamp_ms: self.txn_last_update_timestamp_ms,
            transaction_start_timestamp_ms: self.txn_start_timestamp_ms,
            client_transaction_version: self.client_transaction_version.feature_level(),
        }
    }

    /// Metadata rebuilt from its record (Kafka's `readTxnRecordValue`). The
    /// last epoch is unknown after a reload. An Empty record's partitions are
    /// ignored, as Kafka does; a PrepareEpochFence record (which neither Kafka
    /// nor Strom writes) is read as the abort it stands for.
    pub fn from_log_value(transactional_id: String, value: TxnLogValue) -> Self {
        let state = match value.transaction_status {
            TxnState::PrepareEpochFence => TxnState::PrepareAbort,
            s => s,
        };
        let partitions = if state == TxnState::Empty {
            BTreeSet::new()
        } else {
            value.transaction_partitions
        };
        Self {
            transactional_id,
            producer_id: value.producer_id,
            last_producer_id: value.previous_producer_id,
            next_producer_id: value.next_producer_id,
            producer_epoch: value.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms: value.transaction_timeout_ms,
            state,
            partitions,
            txn_start_timestamp_ms: value.transaction_start_timestamp_ms,
            txn_last_update_timestamp_ms: value.transaction_last_update_timestamp_ms,
            client_transaction_version: TransactionVersion::from_feature_level(
                value.client_transaction_version,
            ),
        }
    }

    /// The metadata once the markers of a Prepare* state are written (Kafka's
    /// `prepareComplete`): partitions cleared; after a TV2 EndTxn that
    /// exhausted the epoch, the producer continues as `next_producer_id` at
    /// epoch 0, remembering the old id so a retry from it is recognised.
    pub(super) fn completed(&self, now_ms: i64) -> Self {
        debug_assert!(self.state.is_prepare(), "completing from {}", self.state);
        let mut next = self.clone();
        next.state = if self.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        if self.next_producer_id != NO_PRODUCER_ID {
            next.last_producer_id = self.producer_id;
            next.producer_id = self.next_producer_id;
            next.producer_epoch = 0;
        }
        next.next_producer_id = NO_PRODUCER_ID;
        next.partitions.clear();
        next.txn_last_update_timestamp_ms = now_ms;
        next
    }

    /// The metadata once the coordinator itself aborts the ongoing transaction
    /// (its timeout passed, or a new InitProducerId fences the producer).
    ///
    /// The epoch moves up by two (capped at `i16::MAX`): one bump fences the
    /// producer and the markers carry it; the second keeps the fenced
    /// producer's EndTxn from looking like a TV2 retry (whose epoch is exactly
    /// one below the current). Kafka gets the same two bumps when its
    /// `transaction.version` is 2 (fence bump, then the TV2 abort bump) and
    /// one under TV1, where retries need the exact epoch anyway; Strom always
    /// takes two because a client's version is only known after its first
    /// EndTxn. At the boundary (epoch `i16::MAX - 1`) the cap leaves one bump
    /// and no next producer id, and [`Self::is_end_txn_retry_of_bump`]
    /// excludes that case, so the fenced producer stays fenced (newest Kafka
    /// rotates the producer id there and lets the old producer's abort
    /// continue as a retry). The last epoch is forgotten so a KIP-360
    /// InitProducerId from the fenced producer is refused.
    pub(super) fn fenced_abort(&self, now_ms: i64) -> Self {
        debug_assert_eq!(self.state, TxnState::Ongoing);
        let mut next = self.clone();
        next.state = TxnState::PrepareAbort;
        next.producer_epoch = self.producer_epoch.saturating_add(2);
        next.last_producer_epoch = NO_PRODUCER_EPOCH;
        next.next_producer_id = NO_PRODUCER_ID;
        next.txn_last_update_timestamp_ms = now_ms;
        next
    }

    /// TV2: whether `(producer_id, epoch)` is the request that bumped the
    /// epoch to the current one (Kafka's `retryOnEpochBump`).
    ///
    /// Only a TV2 EndTxn bumps that way, so the decided or completed
    /// transaction must have been ended by one. Deviation: Kafka does not
    /// check this, and after a TV1 producer (whose InitProducerId bumped the
    /// epoch past a TV2 zombie's) ends a transaction without a bump, the
    /// zombie's EndTxn passes as a retry and is handed the live epoch — two
    /// producers could then commit (found by this module's property test).
    /// Epoch `i16::MAX` is reached by a client's EndTxn only while rotating
    /// to a next producer id; otherwise only a coordinator abort reaches it,
    /// and its victim must not pass as a retry either.
    pub(super) fn is_end_txn_retry_of_bump(&self, producer: ProducerIdAndEpoch) -> bool {
        producer.producer_id == self.producer_id
            && i32::from(producer.producer_epoch) + 1 == i32::from(self.producer_epoch)
            && self.client_transaction_version == TransactionVersion::Tv2
            && (self.producer_epoch < i16::MAX || self.next_producer_id != NO_PRODUCER_ID)
    }

    /// TV2: whether `(producer_id, epoch)` is a retry of the EndTxn that
    /// exhausted the old producer id's epochs and completed by rotating to the
    /// current one (Kafka's `retryOnOverflow`). Requiring a completed TV2
    /// transaction at epoch 0 keeps a stale producer of the old id from being
    /// taken for the one that rotated after a new InitProducerId rotated too.
    pub(super) fn is_end_txn_retry_of_rotation(&self, producer: ProducerIdAndEpoch) -> bool {
        producer.producer_id == self.last_producer_id
            && producer.producer_id != self.producer_id
            && producer.producer_epoch == i16::MAX - 1
            && self.producer_epoch == 0
            && self.state.is_complete()
            && self.client_transaction_version == TransactionVersion::Tv2
    }
}
