//! The coordinator of one `__transaction_state` partition: configuration,
//! outputs, the persist-then-apply machinery, partitions, timers, load and
//! recovery, and the admin views. InitProducerId lives in `init.rs`, EndTxn in
//! `end_txn.rs`.

use std::collections::{BTreeMap, BTreeSet};

use strom_protocol::ErrorCode;
use thiserror::Error;

use super::records::TxnLogValue;
use super::state::{TransactionMetadata, TxnState};
use super::{ProducerIdAndEpoch, TopicPartition, TransactionVersion, TxnResult};
use crate::group::coordinator::OFFSETS_TOPIC;

/// Configuration of the transaction coordinator (Kafka's broker properties
/// in the field docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms` (default 900000, 15 minutes): the largest
    /// `transaction.timeout.ms` a producer may ask for; larger gets
    /// INVALID_TRANSACTION_TIMEOUT. Bounds how long an abandoned transaction
    /// can hold back the last stable offset of its partitions.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms` (default 604800000, 7 days): an id with
    /// no transaction open and no change for this long is forgotten
    /// (tombstoned). Bounds the coordinator's memory by the ids in recent use.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (default
    /// 10000): how often the caller should run
    /// [`TransactionCoordinator::expire_timed_out`]. A timed-out transaction
    /// is aborted up to this much after its deadline.
    pub abort_timed_out_transaction_cleanup_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` (default
    /// 3600000): how often the caller should run
    /// [`TransactionCoordinator::expire_transactional_ids`].
    pub remove_expired_transaction_cleanup_interval_ms: i64,
    /// Strom's limit on the partitions of one transaction (default 100000).
    /// Each costs memory here and about 4 bytes (plus its topic name) in the
    /// transaction's `__transaction_state` record. Kafka has no count limit;
    /// it fails the append once the record outgrows the topic's
    /// `max.message.bytes` and answers UNKNOWN_SERVER_ERROR, which is what
    /// Strom answers past this limit too.
    pub max_partitions_per_transaction: usize,
}

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            remove_expired_transaction_cleanup_interval_ms: 3_600_000,
            max_partitions_per_transaction: 100_000,
        }
    }
}

/// A [`TxnConfig`] value Kafka would refuse at startup.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{property} must be at least {min}, got {value}")]
pub struct TxnConfigError {
    /// Kafka's property name.
    pub property: &'static str,
    /// The configured value.
    pub value: i64,
    /// The smallest allowed value.
    pub min: i64,
}

impl TxnConfig {
    /// Checks every field is at least 1, as Kafka's config definitions do.
    pub fn validate(&self) -> Result<(), TxnConfigError> {
        let checks: [(&'static str, i64); 5] = [
            ("transaction.max.timeout.ms", i64::from(self.max_timeout_ms)),
            (
                "transactional.id.expiration.ms",
                self.transactional_id_expiration_ms,
            ),
            (
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                self.abort_timed_out_transaction_cleanup_interval_ms,
            ),
            (
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                self.remove_expired_transaction_cleanup_interval_ms,
            ),
            (
                "max.partitions.per.transaction",
                i64::try_from(self.max_partitions_per_transaction).unwrap_or(i64::MAX),
            ),
        ];
        for (property, value) in checks {
            if value < 1 {
                return Err(TxnConfigError {
                    property,
                    value,
                    min: 1,
                });
            }
        }
        Ok(())
    }
}

/// Hands out producer ids never used before (the caller allocates them from
/// the controller's blocks). An error is answered to the client as is (Kafka
/// answers COORDINATOR_LOAD_IN_PROGRESS while a new block is on its way).
pub trait ProducerIdAllocator {
    /// A fresh producer id.
    fn allocate_producer_id(&mut self) -> Result<i64, ErrorCode>;
}

impl<F: FnMut() -> Result<i64, ErrorCode>> ProducerIdAllocator for F {
    fn allocate_producer_id(&mut self) -> Result<i64, ErrorCode> {
        self()
    }
}

/// Names one [`Output::Persist`] so its completion cannot be mistaken for
/// another's: a completion from before a reload (older coordinator epoch) or
/// for an earlier write is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PersistToken {
    /// The coordinator epoch of the instance that asked for the write.
    pub coordinator_epoch: i32,
    /// Increases with every write that instance asks for.
    pub seq: u64,
}

/// What the caller must do after an event, in order. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Append this record to `__transaction_state` (key: the transactional id,
    /// [`super::records::encode_key`]; value: [`TxnLogValue::encode`], or a
    /// tombstone when `None`), then report the outcome with
    /// [`TransactionCoordinator::persist_completed`]. The step's reply is
    /// sent only once this is durable.
    Persist {
        /// Passed back to `persist_completed`.
        token: PersistToken,
        /// The record key.
        transactional_id: String,
        /// The record value; `None` for the tombstone of an expired id.
        value: Option<TxnLogValue>,
    },
    /// Write a COMMIT or ABORT control batch for `producer_id` /
    /// `producer_epoch` to every partition in `partitions` (WriteTxnMarkers),
    /// retrying until each is written or its partition is gone, then call
    /// [`TransactionCoordinator::markers_written`].
    WriteMarkers {
        /// The transaction's id.
        transactional_id: String,
        /// The producer id of the transaction's records.
        producer_id: i64,
        /// The marker epoch: the transaction's epoch, or the bumped one under
        /// TV2 and after a fence, so that older producers are rejected after it.
        producer_epoch: i16,
        /// Commit or abort.
        result: TxnResult,
        /// Every partition the transaction wrote to (or may have).
        partitions: BTreeSet<TopicPartition>,
        /// Lets partition leaders refuse markers from a deposed coordinator.
        coordinator_epoch: i32,
        /// WriteTxnMarkers v2 carries it so leaders apply TV2's epoch rules.
        transaction_version: TransactionVersion,
    },
    /// The transaction is over: its Complete* record is durable. For the
    /// runtime's logs and metrics; nothing to do.
    TransactionCompleted {
        /// The transaction's id.
        transactional_id: String,
        /// The producer id of the transaction's records.
        producer_id: i64,
        /// The epoch its markers carried.
        producer_epoch: i16,
        /// Commit or abort.
        result: TxnResult,
    },
}

/// The answer to a request and what to do before sending it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "outputs must be carried out and the reply sent"]
pub struct Step<T> {
    /// The answer. Send it only after every [`Output::Persist`] in `outputs`
    /// is durable; if one fails, answer with that failure's error instead.
    pub reply: Result<T, ErrorCode>,
    /// Carry these out in order.
    pub outputs: Vec<Output>,
}

impl<T> Step<T> {
    pub(super) fn err(code: ErrorCode) -> Self {
        Self {
            reply: Err(code),
            outputs: Vec::new(),
        }
    }
}

/// ListTransactions filters (Kafka: empty sets match everything).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only these states (the handler parses names with [`TxnState::from_name`]
    /// and reports unknown ones as `unknown_state_filters`).
    pub states: BTreeSet<TxnState>,
    /// Only these producer ids.
    pub producer_ids: BTreeSet<i64>,
    /// ListTransactions v1 `DurationFilter` (KIP-994): only transactions
    /// "running longer than" this, i.e. started more than this long ago; ids
    /// whose first transaction has not started never match. Negative = no filter.
    pub min_duration_ms: Option<i64>,
}

/// One row of ListTransactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedTransaction {
    /// The transactional id.
    pub transactional_id: String,
    /// Its current producer id.
    pub producer_id: i64,
    /// Its state.
    pub state: TxnState,
}

/// A change waiting for its record to become durable (Kafka's `pendingState`
/// plus the `TxnTransitMetadata` it carries).
#[derive(Clone, Debug)]
pub(super) struct Pending {
    token: PersistToken,
    /// The metadata once the record is durable; state Dead = remove the id.
    target: TransactionMetadata,
}

/// One transactional id: its durable metadata and the change in flight.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) meta: TransactionMetadata,
    pub(super) pending: Option<Pending>,
    /// In a Prepare* state: every marker is written, only the Complete*
    /// record is missing (its write failed, or is in flight). Not persisted:
    /// after a reload the markers are simply written again.
    pub(super) markers_written: bool,
}

impl Entry {
    pub(super) fn new(meta: TransactionMetadata) -> Self {
        Self {
            meta,
            pending: None,
            markers_written: false,
        }
    }
}

/// The transaction coordinator for one `__transaction_state` partition. See
/// the module docs for the caller's contract.
#[derive(Clone, Debug)]
pub struct TransactionCoordinator {
    pub(super) config: TxnConfig,
    coordinator_epoch: i32,
    /// Ordered for deterministic timers, listings and tests.
    pub(super) entries: BTreeMap<String, Entry>,
    next_persist_seq: u64,
}

impl TransactionCoordinator {
    /// An empty coordinator for a partition led at `coordinator_epoch`.
    pub fn new(config: TxnConfig, coordinator_epoch: i32) -> Self {
        Self {
            config,
            coordinator_epoch,
            entries: BTreeMap::new(),
            next_persist_seq: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// The leader epoch of the `__transaction_state` partition.
    pub fn coordinator_epoch(&self) -> i32 {
        self.coordinator_epoch
    }

    /// The durable metadata of `transactional_id` (a pending change not applied).
    pub fn get(&self, transactional_id: &str) -> Option<&TransactionMetadata> {
        self.entries.get(transactional_id).map(|e| &e.meta)
    }

    /// Whether a change of `transactional_id` waits for its record.
    pub fn has_pending(&self, transactional_id: &str) -> bool {
        self.entries
            .get(transactional_id)
            .is_some_and(|e| e.pending.is_some())
    }

    /// The number of transactional ids held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no transactional id is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records that `target` replaces the metadata of `transactional_id` once
    /// persisted, and asks for the write. Refuses a transition Kafka's state
    /// graph does not allow (which the callers' checks should make
    /// unreachable; loaded data is the one way to get there).
    pub(super) fn prepare(
        &mut self,
        transactional_id: &str,
        target: TransactionMetadata,
        outputs: &mut Vec<Output>,
    ) -> Result<(), ErrorCode> {
        let token = PersistToken {
            coordinator_epoch: self.coordinator_epoch,
            seq: self.next_persist_seq,
        };
        let entry = self
            .entries
            .get_mut(transactional_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if entry.pending.is_some() {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        if !target.state.valid_from(entry.meta.state) {
            return Err(ErrorCode::InvalidTxnState);
        }
        self.next_persist_seq += 1;
        let value = (target.state != TxnState::Dead).then(|| target.to_log_value());
        entry.pending = Some(Pending { token, target });
        outputs.push(Output::Persist {
            token,
            transactional_id: transactional_id.to_owned(),
            value,
        });
        Ok(())
    }

    /// The record asked for by the Persist with `token` was written (`Ok`) or
    /// not (`Err`, any code). On success the change takes effect and what
    /// follows it is returned: markers once a Prepare* is durable (or the
    /// Complete* record directly when the transaction has no partitions), the
    /// completion notice once a Complete* is durable. On failure the change is
    /// dropped, as Kafka does; the client retries. A token that is not the
    /// pending one (stale, duplicate) is ignored.
    pub fn persist_completed(
        &mut self,
        transactional_id: &str,
        token: PersistToken,
        result: Result<(), ErrorCode>,
        now_ms: i64,
    ) -> Vec<Output> {
        let Some(entry) = self.entries.get_mut(transactional_id) else {
            return Vec::new();
        };
        if entry.pending.as_ref().map(|p| p.token) != Some(token) {
            return Vec::new();
        }
        let Some(pending) = entry.pending.take() else {
            return Vec::new();
        };
        if result.is_err() {
            return Vec::new();
        }
        if pending.target.state == TxnState::Dead {
            self.entries.remove(transactional_id);
            return Vec::new();
        }
        let before = std::mem::replace(&mut entry.meta, pending.target);
        entry.markers_written = false;
        let mut outputs = Vec::new();
        let state = entry.meta.state;
        if state.is_prepare() {
            self.start_markers(transactional_id, now_ms, &mut outputs);
        } else if let (true, Some(result)) = (state.is_complete(), state.result()) {
            outputs.push(Output::TransactionCompleted {
                transactional_id: transactional_id.to_owned(),
                producer_id: before.producer_id,
                producer_epoch: before.producer_epoch,
                result,
            });
        }
        outputs
    }

    /// For a durable Prepare* state: the markers to write, or, when there is
    /// no partition to mark (a TV2 abort of an empty transaction), the
    /// Complete* record right away (Kafka completes such a transaction
    /// without sending anything).
    fn start_markers(&mut self, transactional_id: &str, now_ms: i64, outputs: &mut Vec<Output>) {
        let Some(entry) = self.entries.get_mut(transactional_id) else {
            return;
        };
        let meta = &entry.meta;
        let Some(result) = meta.state.result() else {
            return;
        };
        if meta.partitions.is_empty() {
            let target = meta.completed(now_ms);
            entry.markers_written = true;
            // Cannot fail: the entry exists, nothing is pending, and
            // Complete* follows Prepare*.
            let _ = self.prepare(transactional_id, target, outputs);
            return;
        }
        outputs.push(Output::WriteMarkers {
            transactional_id: transactional_id.to_owned(),
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            result,
            partitions: meta.partitions.clone(),
            coordinator_epoch: self.coordinator_epoch,
            transaction_version: meta.client_transaction_version,
        });
    }

    /// Every marker asked for by the [`Output::WriteMarkers`] with these
    /// values is written: persist the Complete* state. Refused (no outputs)
    /// when the transaction is not, or no longer, the one the markers were for.
    pub fn markers_written(
        &mut self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        result: TxnResult,
        now_ms: i64,
    ) -> Step<()> {
        let Some(entry) = self.entries.get_mut(transactional_id) else {
            return Step::err(ErrorCode::InvalidProducerIdMapping);
        };
        let meta = &entry.meta;
        if meta.producer() != producer {
            return Step::err(ErrorCode::InvalidProducerIdMapping);
        }
        if !meta.state.is_prepare() || meta.state.result() != Some(result) {
            return Step::err(ErrorCode::InvalidTxnState);
        }
        let target = meta.completed(now_ms);
        entry.markers_written = true;
        let mut outputs = Vec::new();
        let reply = self.prepare(transactional_id, target, &mut outputs);
        Step { reply, outputs }
    }

    /// AddPartitionsToTxn for one transaction. With `verify_only` (v4+, sent
    /// by partition leaders for KIP-890 part-1 verification) nothing changes:
    /// each partition is answered NONE if it is in the ongoing transaction and
    /// TRANSACTION_ABORTABLE if not (the leader maps that code for older
    /// produce versions, as Kafka's `AddPartitionsToTxnManager` does).
    /// Otherwise the partitions join the transaction, which starts if none was
    /// open. Errors apply to every partition of the request.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        partitions: &BTreeSet<TopicPartition>,
        verify_only: bool,
        now_ms: i64,
    ) -> Step<BTreeMap<TopicPartition, ErrorCode>> {
        if transactional_id.is_empty() {
            return Step::err(ErrorCode::InvalidRequest);
        }
        let Some(entry) = self.entries.get(transactional_id) else {
            return Step::err(ErrorCode::InvalidProducerIdMapping);
        };
        let meta = &entry.meta;
        if meta.producer_id != producer.producer_id || meta.is_uninitialized() {
            return Step::err(ErrorCode::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != producer.producer_epoch {
            return Step::err(ErrorCode::ProducerFenced);
        }
        if verify_only {
            // Kafka does not look at a pending change here: partitions join
            // `meta` only once their record is durable, and the produce is
            // checked again when appended.
            if meta.state.is_prepare() {
                return Step::err(ErrorCode::ConcurrentTransactions);
            }
            let ongoing = meta.state == TxnState::Ongoing;
            let results = partitions
                .iter()
                .map(|p| {
                    let code = if ongoing && meta.partitions.contains(p) {
                        ErrorCode::None
                    } else {
                        ErrorCode::TransactionAbortable
                    };
                    (p.clone(), code)
                })
                .collect();
            return Step {
                reply: Ok(results),
                outputs: Vec::new(),
            };
        }
        if entry.pending.is_some() || meta.state.is_prepare() {
            return Step::err(ErrorCode::ConcurrentTransactions);
        }
        let all_ok: BTreeMap<TopicPartition, ErrorCode> = partitions
            .iter()
            .map(|p| (p.clone(), ErrorCode::None))
            .collect();
        if meta.state == TxnState::Ongoing && partitions.is_subset(&meta.partitions) {
            // Nothing new to persist (Kafka's shortcut).
            return Step {
                reply: Ok(all_ok),
                outputs: Vec::new(),
            };
        }
        let mut target = meta.clone();
        if meta.state != TxnState::Ongoing {
            target.txn_start_timestamp_ms = now_ms;
        }
        target.state = TxnState::Ongoing;
        target.partitions.extend(partitions.iter().cloned());
        if target.partitions.len() > self.config.max_partitions_per_transaction {
            return Step::err(ErrorCode::UnknownServerError);
        }
        target.txn_last_update_timestamp_ms = now_ms;
        let mut outputs = Vec::new();
        let reply = self
            .prepare(transactional_id, target, &mut outputs)
            .map(|()| all_ok);
        Step { reply, outputs }
    }

    /// AddOffsetsToTxn: the `__consumer_offsets` partition of `group_id`
    /// (from `offsets_partition_for`, the group coordinator's hash) joins the
    /// transaction, so TxnOffsetCommit can write there and the markers make
    /// the offsets visible on commit.
    pub fn add_offsets(
        &mut self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        group_id: &str,
        offsets_partition_for: impl FnOnce(&str) -> i32,
        now_ms: i64,
    ) -> Step<()> {
        let partition = TopicPartition::new(OFFSETS_TOPIC, offsets_partition_for(group_id));
        let step = self.add_partitions(
            transactional_id,
            producer,
            &BTreeSet::from([partition]),
            false,
            now_ms,
        );
        Step {
            reply: step.reply.map(|_| ()),
            outputs: step.outputs,
        }
    }

    /// Aborts every transaction Ongoing for longer than its timeout (Kafka's
    /// `abortTimedOutTransactions`), bumping the epoch so the abandoned
    /// producer is fenced. Ids with a change in flight are skipped until the
    /// next run.
    pub fn expire_timed_out(&mut self, now_ms: i64) -> Vec<Output> {
        let expired: Vec<(String, TransactionMetadata)> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.pending.is_none()
                    && e.meta.state == TxnState::Ongoing
                    && e.meta.txn_start_timestamp_ms + i64::from(e.meta.txn_timeout_ms) < now_ms
            })
            .map(|(id, e)| (id.clone(), e.meta.fenced_abort(now_ms)))
            .collect();
        let mut outputs = Vec::new();
        for (id, target) in expired {
            // Cannot fail: selected above as present, idle and Ongoing.
            let _ = self.prepare(&id, target, &mut outputs);
        }
        outputs
    }

    /// Writes again the Complete* record of every transaction whose markers
    /// are all written but whose Complete* write failed (Kafka's marker
    /// channel retries that append). Run it with [`Self::expire_timed_out`];
    /// until it succeeds the transaction stays decided, its clients get
    /// CONCURRENT_TRANSACTIONS, and nothing is lost.
    pub fn retry_completions(&mut self, now_ms: i64) -> Vec<Output> {
        let due: Vec<(String, TransactionMetadata)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.pending.is_none() && e.markers_written && e.meta.state.is_prepare())
            .map(|(id, e)| (id.clone(), e.meta.completed(now_ms)))
            .collect();
        let mut outputs = Vec::new();
        for (id, target) in due {
            // Cannot fail: selected above as present, idle and Prepare*.
            let _ = self.prepare(&id, target, &mut outputs);
        }
        outputs
    }

    /// Tombstones every id with no open transaction that has not changed for
    /// `transactional.id.expiration.ms` (Kafka's
    /// `removeExpiredTransactionalIds`); each is forgotten once its tombstone
    /// is durable.
    pub fn expire_transactional_ids(&mut self, now_ms: i64) -> Vec<Output> {
        let cutoff = now_ms.saturating_sub(self.config.transactional_id_expiration_ms);
        let expired: Vec<(String, TransactionMetadata)> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.pending.is_none()
                    && e.meta.state.is_expiration_allowed()
                    && e.meta.txn_last_update_timestamp_ms <= cutoff
            })
            .map(|(id, e)| {
                let mut target = e.meta.clone();
                target.state = TxnState::Dead;
                target.partitions.clear();
                (id.clone(), target)
            })
            .collect();
        let mut outputs = Vec::new();
        for (id, target) in expired {
            // Cannot fail: selected above as present, idle and expirable.
            let _ = self.prepare(&id, target, &mut outputs);
        }
        outputs
    }

    /// DescribeTransactions for one id. TRANSACTIONAL_ID_NOT_FOUND for an id
    /// unknown or being expired (Kafka hides Dead ids).
    pub fn describe(&self, transactional_id: &str) -> Result<&TransactionMetadata, ErrorCode> {
        if transactional_id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        match self.entries.get(transactional_id) {
            Some(e) if !is_being_expired(e) => Ok(&e.meta),
            _ => Err(ErrorCode::TransactionalIdNotFound),
        }
    }

    /// ListTransactions: the ids matching `filter`, in id order.
    pub fn list(&self, filter: &ListFilter, now_ms: i64) -> Vec<ListedTransaction> {
        self.entries
            .values()
            .filter(|e| !is_being_expired(e))
            .map(|e| &e.meta)
            .filter(|m| filter.states.is_empty() || filter.states.contains(&m.state))
            .filter(|m| {
                filter.producer_ids.is_empty() || filter.producer_ids.contains(&m.producer_id)
            })
            .filter(|m| {
                filter.min_duration_ms.is_none_or(|d| {
                    d < 0
                        || (m.txn_start_timestamp_ms >= 0 && now_ms - m.txn_start_timestamp_ms > d)
                })
            })
            .map(|m| ListedTransaction {
                transactional_id: m.transactional_id.clone(),
                producer_id: m.producer_id,
                state: m.state,
            })
            .collect()
    }

    /// Applies one `__transaction_state` record while loading the partition,
    /// in log order (the last record of an id wins; `None` is a tombstone).
    /// Call before serving requests: any change in flight for the id is
    /// dropped.
    pub fn load(&mut self, transactional_id: &str, value: Option<TxnLogValue>) {
        match value {
            Some(v) if v.transaction_status != TxnState::Dead => {
                let meta = TransactionMetadata::from_log_value(transactional_id.to_owned(), v);
                self.entries
                    .insert(transactional_id.to_owned(), Entry::new(meta));
            }
            _ => {
                self.entries.remove(transactional_id);
            }
        }
    }

    /// After loading: resumes the transactions that were decided but not
    /// completed when the previous coordinator stopped, by asking for their
    /// markers again (Kafka's load callback `addTxnMarkersToSend`). Markers
    /// are idempotent on the partitions, so writing some twice is harmless.
    pub fn recover(&mut self, now_ms: i64) -> Vec<Output> {
        let decided: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.pending.is_none() && e.meta.state.is_prepare())
            .map(|(id, _)| id.clone())
            .collect();
        let mut outputs = Vec::new();
        for id in decided {
            self.start_markers(&id, now_ms, &mut outputs);
        }
        outputs
    }
}

fn is_being_expired(entry: &Entry) -> bool {
    entry
        .pending
        .as_ref()
        .is_some_and(|p| p.target.state == TxnState::Dead)
}
