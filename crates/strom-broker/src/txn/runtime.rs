//! The transaction coordinator's I/O: it feeds requests and the clock to the
//! [`TransactionCoordinator`] of each `__transaction_state` partition and
//! carries out what it asks for — appending its records to
//! `__transaction_state`, writing transaction markers to the partitions of a
//! transaction, running the timers, and loading the partitions at start-up.
//!
//! The state machines sit behind one `std` mutex that is never held across an
//! `await`: a request takes a [`Step`] under the lock, then performs the
//! step's writes without it. A transactional id with a write in flight answers
//! CONCURRENT_TRANSACTIONS (the state machine's rule), so two writes for the
//! same id never race.
//!
//! Markers are written through [`write_markers`], which has the shape of
//! Kafka's WriteTxnMarkers request (producer, epoch, result, coordinator
//! epoch, partitions → a code per partition) so that a partition led by
//! another broker can be sent the same request once the cluster exists.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use strom_protocol::records::{
    control_batch, Compression, ControlRecordType, Record, RecordBatchBuilder,
};
use strom_protocol::ErrorCode;
use tokio::sync::watch;

use super::records::{decode_key, encode_key, TxnLogValue};
use super::{
    ListFilter, ListedTransaction, Output, PersistToken, ProducerIdAndEpoch, Step, TopicPartition,
    TransactionCoordinator, TransactionMetadata, TransactionVersion, TxnConfig, TxnResult,
    TRANSACTION_STATE_TOPIC,
};
use crate::admin;
use crate::group::coordinator::{java_string_hash, OFFSETS_TOPIC};
use crate::state::{now_ms, State};

/// Largest decoded batch read while loading `__transaction_state`.
const LOAD_BATCH_CAP_BYTES: usize = 64 * 1024 * 1024;

/// Pause between attempts to write a marker that failed (a partition offline,
/// a full disk): markers are retried until written, as Kafka's marker channel does.
const MARKER_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Runs the transaction coordinators of this broker.
pub struct TxnRuntime {
    config: TxnConfig,
    /// `transaction.state.log.num.partitions`.
    partitions: i32,
    /// `transaction.state.log.segment.bytes`.
    segment_bytes: i32,
    /// One coordinator per `__transaction_state` partition hosted here.
    shards: Mutex<HashMap<i32, TransactionCoordinator>>,
    /// Set when the broker shuts down: background work (marker writing,
    /// records of timers) stops instead of retrying against closed logs.
    closed: AtomicBool,
    /// Background tasks running (see [`TxnRuntime::close`]).
    running: AtomicUsize,
    /// Signalled when the last background task ends.
    idle: tokio::sync::Notify,
}

/// The outcome of writing one marker, per partition (WriteTxnMarkers' answer).
pub type MarkerResults = BTreeMap<TopicPartition, ErrorCode>;

/// One WriteTxnMarkers entry: the markers of one transaction.
#[derive(Clone, Debug)]
pub struct MarkerRequest {
    /// The producer whose transaction ends.
    pub producer_id: i64,
    /// The epoch the markers carry.
    pub producer_epoch: i16,
    /// Commit or abort.
    pub result: TxnResult,
    /// The epoch of the coordinator that decided, so that partitions refuse a
    /// deposed coordinator's markers.
    pub coordinator_epoch: i32,
    /// The partitions to mark.
    pub partitions: BTreeSet<TopicPartition>,
}

impl TxnRuntime {
    /// A runtime with no partition loaded yet.
    pub fn new(config: TxnConfig, partitions: i32, segment_bytes: i32) -> Self {
        Self {
            config,
            partitions,
            segment_bytes,
            shards: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
        }
    }

    /// Stops background work and waits (at most `limit`) for what is running
    /// to end, so that no marker or record is appended while the logs close
    /// (broker shutdown). Decided transactions whose markers were not all
    /// written are resumed by the next start's recovery.
    pub async fn close(&self, limit: Duration) {
        self.closed.store(true, Ordering::Release);
        let waited = tokio::time::timeout(limit, async {
            loop {
                let idle = self.idle.notified();
                if self.running.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!("transaction coordinator tasks still running at shutdown");
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The `__transaction_state` partition of `transactional_id` (Kafka's
    /// `abs(hashCode) % partitions`).
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        (java_string_hash(transactional_id) & 0x7fff_ffff) % self.partitions
    }

    /// Creates `__transaction_state` on first use, as Kafka does: compacted,
    /// `transaction.state.log.num.partitions` partitions.
    pub fn ensure_topic(&self, state: &State) -> Result<(), ErrorCode> {
        if state
            .controller
            .image()
            .topic(TRANSACTION_STATE_TOPIC)
            .is_some()
        {
            return Ok(());
        }
        let configs = BTreeMap::from([
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            ("compression.type".to_owned(), "uncompressed".to_owned()),
            ("segment.bytes".to_owned(), self.segment_bytes.to_string()),
        ]);
        match admin::create_topic(
            state,
            TRANSACTION_STATE_TOPIC,
            self.partitions,
            1,
            configs,
            false,
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.code == ErrorCode::TopicAlreadyExists => Ok(()),
            Err(e) => {
                tracing::error!(error = %e.message, "creating {TRANSACTION_STATE_TOPIC} failed");
                Err(ErrorCode::CoordinatorNotAvailable)
            }
        }
    }

    /// Runs `f` on the coordinator of `partition`, creating an empty one when
    /// the partition was created after start-up (nothing to load then).
    fn with_shard<T>(
        &self,
        state: &State,
        partition: i32,
        f: impl FnOnce(&mut TransactionCoordinator) -> T,
    ) -> Result<T, ErrorCode> {
        let mut shards = self.shards.lock().expect("txn shards lock");
        let shard = match shards.entry(partition) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let hosted = state
                    .replicas
                    .get(TRANSACTION_STATE_TOPIC, partition)
                    .ok_or(ErrorCode::CoordinatorNotAvailable)?;
                e.insert(TransactionCoordinator::new(
                    self.config.clone(),
                    hosted.leader_epoch(),
                ))
            }
        };
        Ok(f(shard))
    }

    /// Prepares to serve `transactional_id`: the topic exists and its
    /// partition is hosted here. Returns the partition.
    fn route(&self, state: &State, transactional_id: &str) -> Result<i32, ErrorCode> {
        if transactional_id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        self.ensure_topic(state)?;
        Ok(self.partition_for(transactional_id))
    }

    /// FindCoordinator for a transactional id: this broker, once the topic exists.
    pub fn find_coordinator(&self, state: &State, transactional_id: &str) -> Result<(), ErrorCode> {
        self.route(state, transactional_id).map(|_| ())
    }

    /// InitProducerId with a `transactional.id`.
    pub async fn init_producer_id(
        self: &Arc<Self>,
        state: &State,
        transactional_id: &str,
        txn_timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
    ) -> Result<ProducerIdAndEpoch, ErrorCode> {
        let p = self.route(state, transactional_id)?;
        let now = now_ms();
        let step = self.with_shard(state, p, |c| {
            let mut ids = || allocate(state);
            c.init_producer_id(transactional_id, txn_timeout_ms, expected, &mut ids, now)
        })?;
        self.finish(state, p, step).await
    }

    /// AddPartitionsToTxn for one transaction (`verify_only`: KIP-890's check
    /// that the partitions are in the ongoing transaction, nothing changes).
    pub async fn add_partitions(
        self: &Arc<Self>,
        state: &State,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        partitions: &BTreeSet<TopicPartition>,
        verify_only: bool,
    ) -> Result<BTreeMap<TopicPartition, ErrorCode>, ErrorCode> {
        let p = self.route(state, transactional_id)?;
        let now = now_ms();
        let step = self.with_shard(state, p, |c| {
            c.add_partitions(transactional_id, producer, partitions, verify_only, now)
        })?;
        self.finish(state, p, step).await
    }

    /// KIP-890's check for a partition leader (or the group coordinator)
    /// before a producer's first transactional write to `partition`: with
    /// `add` (transaction version 2 requests) the partition joins the
    /// transaction, otherwise it must already be in it. Answers as Kafka's
    /// leaders do: a stale epoch is INVALID_PRODUCER_EPOCH; a partition
    /// outside the transaction is TRANSACTION_ABORTABLE, or INVALID_TXN_STATE
    /// for a request version that predates that code (`legacy_errors`).
    pub async fn verify_partition(
        self: &Arc<Self>,
        state: &State,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        partition: &TopicPartition,
        add: bool,
        legacy_errors: bool,
    ) -> Result<(), ErrorCode> {
        let code = match self
            .add_partitions(
                state,
                transactional_id,
                producer,
                &BTreeSet::from([partition.clone()]),
                !add,
            )
            .await
        {
            Ok(results) => results
                .get(partition)
                .copied()
                .unwrap_or(ErrorCode::UnknownServerError),
            Err(code) => code,
        };
        match code {
            ErrorCode::None => Ok(()),
            ErrorCode::ProducerFenced => Err(ErrorCode::InvalidProducerEpoch),
            ErrorCode::TransactionAbortable if legacy_errors => Err(ErrorCode::InvalidTxnState),
            other => Err(other),
        }
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the
    /// transaction.
    pub async fn add_offsets(
        self: &Arc<Self>,
        state: &State,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        group_id: &str,
    ) -> Result<(), ErrorCode> {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let p = self.route(state, transactional_id)?;
        state.groups.ensure_offsets_topic(state)?;
        let now = now_ms();
        let groups = state.groups.clone();
        let step = self.with_shard(state, p, |c| {
            c.add_offsets(
                transactional_id,
                producer,
                group_id,
                |g| groups.partition_for(g),
                now,
            )
        })?;
        self.finish(state, p, step).await
    }

    /// EndTxn.
    pub async fn end_txn(
        self: &Arc<Self>,
        state: &State,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        result: TxnResult,
        version: TransactionVersion,
    ) -> Result<ProducerIdAndEpoch, ErrorCode> {
        let p = self.route(state, transactional_id)?;
        let now = now_ms();
        let step = self.with_shard(state, p, |c| {
            let mut ids = || allocate(state);
            c.end_txn(transactional_id, producer, result, version, &mut ids, now)
        })?;
        self.finish(state, p, step).await
    }

    /// DescribeTransactions for one id.
    pub fn describe(
        &self,
        state: &State,
        transactional_id: &str,
    ) -> Result<TransactionMetadata, ErrorCode> {
        if transactional_id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        if state
            .controller
            .image()
            .topic(TRANSACTION_STATE_TOPIC)
            .is_none()
        {
            return Err(ErrorCode::TransactionalIdNotFound);
        }
        let p = self.partition_for(transactional_id);
        self.with_shard(state, p, |c| c.describe(transactional_id).cloned())?
    }

    /// ListTransactions over every partition hosted here, in id order.
    pub fn list(&self, filter: &ListFilter) -> Vec<ListedTransaction> {
        let now = now_ms();
        let shards = self.shards.lock().expect("txn shards lock");
        let mut all: Vec<ListedTransaction> =
            shards.values().flat_map(|c| c.list(filter, now)).collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    /// Performs a request's step: its first Persist before answering (the
    /// answer depends on it), everything that follows in the background.
    async fn finish<T>(
        self: &Arc<Self>,
        state: &State,
        partition: i32,
        step: Step<T>,
    ) -> Result<T, ErrorCode> {
        let mut reply = step.reply;
        let mut outputs = VecDeque::from(step.outputs);
        while let Some(output) = outputs.pop_front() {
            match output {
                Output::Persist {
                    token,
                    transactional_id,
                    value,
                } => {
                    let follow = self
                        .persist(state, partition, token, &transactional_id, value)
                        .await;
                    match follow {
                        Ok(next) => self.spawn_outputs(state, partition, next),
                        Err(code) => {
                            if reply.is_ok() {
                                reply = Err(code);
                            }
                        }
                    }
                    // What follows the answer's write does not delay the answer.
                    let rest: Vec<Output> = outputs.drain(..).collect();
                    self.spawn_outputs(state, partition, rest);
                }
                other => self.spawn_outputs(state, partition, vec![other]),
            }
        }
        reply
    }

    /// Appends one `__transaction_state` record and reports the outcome to
    /// the state machine. Returns what it asks for next, or the write's error.
    async fn persist(
        &self,
        state: &State,
        partition: i32,
        token: PersistToken,
        transactional_id: &str,
        value: Option<TxnLogValue>,
    ) -> Result<Vec<Output>, ErrorCode> {
        let written = append_txn_record(state, partition, transactional_id, value).await;
        let now = now_ms();
        let next = self.with_shard(state, partition, |c| {
            c.persist_completed(transactional_id, token, written, now)
        })?;
        written.map(|()| next)
    }

    /// Carries out outputs in the background, in order.
    fn spawn_outputs(self: &Arc<Self>, state: &State, partition: i32, outputs: Vec<Output>) {
        if outputs.is_empty() || self.is_closed() {
            return;
        }
        let this = self.clone();
        let state = state.clone();
        self.running.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            this.drive(&state, partition, outputs).await;
            if this.running.fetch_sub(1, Ordering::AcqRel) == 1 {
                this.idle.notify_waiters();
            }
        });
    }

    /// Carries out outputs and everything they lead to.
    async fn drive(self: &Arc<Self>, state: &State, partition: i32, outputs: Vec<Output>) {
        let mut queue = VecDeque::from(outputs);
        while let Some(output) = queue.pop_front() {
            if self.is_closed() {
                return;
            }
            match output {
                Output::Persist {
                    token,
                    transactional_id,
                    value,
                } => match self
                    .persist(state, partition, token, &transactional_id, value)
                    .await
                {
                    Ok(next) => queue.extend(next),
                    Err(code) => {
                        tracing::warn!(transactional_id, ?code, "{TRANSACTION_STATE_TOPIC} write failed; retried by the coordinator's timers");
                    }
                },
                Output::WriteMarkers {
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    result,
                    partitions,
                    coordinator_epoch,
                    transaction_version: _,
                } => {
                    let request = MarkerRequest {
                        producer_id,
                        producer_epoch,
                        result,
                        coordinator_epoch,
                        partitions,
                    };
                    if !self
                        .write_markers_until_done(state, partition, &request)
                        .await
                    {
                        continue;
                    }
                    let now = now_ms();
                    let step = self.with_shard(state, partition, |c| {
                        c.markers_written(
                            &transactional_id,
                            ProducerIdAndEpoch::new(producer_id, producer_epoch),
                            result,
                            now,
                        )
                    });
                    match step {
                        Ok(step) => {
                            if let Err(code) = step.reply {
                                tracing::warn!(
                                    transactional_id,
                                    ?code,
                                    "markers written for a transaction that moved on"
                                );
                            }
                            queue.extend(step.outputs);
                        }
                        Err(code) => {
                            tracing::warn!(
                                transactional_id,
                                ?code,
                                "coordinator gone after markers"
                            )
                        }
                    }
                }
                Output::TransactionCompleted {
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    result,
                } => {
                    tracing::debug!(
                        transactional_id,
                        producer_id,
                        producer_epoch,
                        ?result,
                        "transaction completed"
                    );
                }
            }
        }
    }

    /// Writes the markers, retrying failed partitions, until all are written
    /// or the coordinator that asked is gone. Returns whether all were written.
    async fn write_markers_until_done(
        &self,
        state: &State,
        partition: i32,
        request: &MarkerRequest,
    ) -> bool {
        let mut request = request.clone();
        loop {
            let results = write_markers(state, &request).await;
            request.partitions.retain(|tp| {
                results
                    .get(tp)
                    .is_some_and(|c| is_retriable_marker_error(*c))
            });
            if request.partitions.is_empty() {
                return true;
            }
            if self.is_closed() {
                return false;
            }
            let current_epoch = self
                .shards
                .lock()
                .expect("txn shards lock")
                .get(&partition)
                .map(|c| c.coordinator_epoch());
            if current_epoch != Some(request.coordinator_epoch) {
                return false;
            }
            tracing::warn!(
                producer_id = request.producer_id,
                remaining = request.partitions.len(),
                "transaction markers not written yet; retrying"
            );
            tokio::time::sleep(MARKER_RETRY_BACKOFF).await;
        }
    }

    /// Loads every hosted `__transaction_state` partition (start-up) and
    /// resumes the transactions that were decided but not completed. Returns
    /// the number of transactional ids loaded.
    pub fn load(self: &Arc<Self>, state: &State) -> Result<usize, String> {
        let Some(topic) = state
            .controller
            .image()
            .topic(TRANSACTION_STATE_TOPIC)
            .cloned()
        else {
            return Ok(0);
        };
        let now = now_ms();
        let mut loaded = 0;
        for p in 0..topic.partitions.len() as i32 {
            let Some(partition) = state.replicas.get(TRANSACTION_STATE_TOPIC, p) else {
                continue;
            };
            let mut coordinator =
                TransactionCoordinator::new(self.config.clone(), partition.leader_epoch());
            partition.replay(LOAD_BATCH_CAP_BYTES, |header, records| {
                if header.is_control() {
                    return;
                }
                for record in records {
                    load_record(&mut coordinator, record);
                }
            })?;
            loaded += coordinator.len();
            let outputs = coordinator.recover(now);
            self.shards
                .lock()
                .expect("txn shards lock")
                .insert(p, coordinator);
            self.spawn_outputs(state, p, outputs);
        }
        Ok(loaded)
    }

    /// Aborts timed-out transactions, retries failed completions and expires
    /// idle transactional ids on their intervals, until shutdown.
    pub async fn run_timers(self: Arc<Self>, state: State, mut shutdown: watch::Receiver<bool>) {
        let abort_every = Duration::from_millis(
            self.config.abort_timed_out_transaction_cleanup_interval_ms as u64,
        );
        let expire_every = Duration::from_millis(
            self.config.remove_expired_transaction_cleanup_interval_ms as u64,
        );
        let mut abort_tick = tokio::time::interval(abort_every);
        let mut expire_tick = tokio::time::interval(expire_every);
        abort_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        expire_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let expire_ids = tokio::select! {
                _ = abort_tick.tick() => false,
                _ = expire_tick.tick() => true,
                _ = shutdown.changed() => return,
            };
            let now = now_ms();
            let work: Vec<(i32, Vec<Output>)> = {
                let mut shards = self.shards.lock().expect("txn shards lock");
                shards
                    .iter_mut()
                    .map(|(p, c)| {
                        let outputs = if expire_ids {
                            c.expire_transactional_ids(now)
                        } else {
                            let mut o = c.expire_timed_out(now);
                            o.extend(c.retry_completions(now));
                            o
                        };
                        (*p, outputs)
                    })
                    .collect()
            };
            for (p, outputs) in work {
                self.spawn_outputs(&state, p, outputs);
            }
        }
    }
}

/// Applies one `__transaction_state` record while loading.
fn load_record(coordinator: &mut TransactionCoordinator, record: Record) {
    let Some(key) = record.key.as_deref() else {
        return;
    };
    let id = match decode_key(key) {
        Ok(Some(id)) => id,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "skipping unreadable {TRANSACTION_STATE_TOPIC} key");
            return;
        }
    };
    match record.value.as_deref().map(TxnLogValue::decode) {
        None => coordinator.load(&id, None),
        Some(Ok(v)) => coordinator.load(&id, Some(v)),
        Some(Err(e)) => {
            tracing::warn!(transactional_id = %id, error = %e, "skipping unreadable {TRANSACTION_STATE_TOPIC} value")
        }
    }
}

/// A producer id from the controller's blocks.
fn allocate(state: &State) -> Result<i64, ErrorCode> {
    state.controller.allocate_producer_id().map_err(|e| {
        tracing::error!(error = %e, "producer id allocation failed");
        ErrorCode::CoordinatorNotAvailable
    })
}

/// Appends one record (a tombstone for `None`) to `__transaction_state`
/// partition `partition` and waits until it is committed.
async fn append_txn_record(
    state: &State,
    partition: i32,
    transactional_id: &str,
    value: Option<TxnLogValue>,
) -> Result<(), ErrorCode> {
    let log = state
        .replicas
        .get(TRANSACTION_STATE_TOPIC, partition)
        .ok_or(ErrorCode::NotCoordinator)?;
    let key = encode_key(transactional_id).map_err(|_| ErrorCode::InvalidRequest)?;
    let now = now_ms();
    let mut builder = RecordBatchBuilder::new(Compression::None);
    builder.push(now, Some(key), value.map(|v| v.encode()), Vec::new());
    let batch = builder
        .build()
        .map_err(|_| ErrorCode::UnknownServerError)?
        .freeze();
    match log.append_from_coordinator(&batch, now).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(transactional_id, code = ?e.code, message = %e.message, "write to {TRANSACTION_STATE_TOPIC} failed");
            // Kafka's mapping of a failed append for the client.
            Err(match e.code {
                ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => {
                    ErrorCode::UnknownServerError
                }
                ErrorCode::KafkaStorageError | ErrorCode::NotLeaderOrFollower => {
                    ErrorCode::NotCoordinator
                }
                _ => ErrorCode::CoordinatorNotAvailable,
            })
        }
    }
}

/// Whether a marker that failed with `code` should be written again.
/// Partitions that no longer exist are done (Kafka drops them); a producer
/// epoch or coordinator epoch the partition already moved past means a newer
/// decision is being written there, so this one is done too.
fn is_retriable_marker_error(code: ErrorCode) -> bool {
    !matches!(
        code,
        ErrorCode::None
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::InvalidProducerEpoch
            | ErrorCode::TransactionCoordinatorFenced
    )
}

/// Writes the COMMIT or ABORT marker of one transaction to each of its
/// partitions hosted here (Kafka's WriteTxnMarkers for one entry) and lets the
/// group coordinator apply or drop the transaction's offsets once the marker
/// is in `__consumer_offsets`. Answers a code per partition.
pub async fn write_markers(state: &State, request: &MarkerRequest) -> MarkerResults {
    let kind = match request.result {
        TxnResult::Commit => ControlRecordType::Commit,
        TxnResult::Abort => ControlRecordType::Abort,
    };
    let mut results = MarkerResults::new();
    let mut wrote_any = false;
    for tp in &request.partitions {
        let Some(partition) = state.replicas.get(&tp.topic, tp.partition) else {
            let code = if state.controller.image().topic(&tp.topic).is_some() {
                ErrorCode::NotLeaderOrFollower
            } else {
                ErrorCode::UnknownTopicOrPartition
            };
            results.insert(tp.clone(), code);
            continue;
        };
        let now = now_ms();
        let batch: Bytes = control_batch(
            kind,
            request.producer_id,
            request.producer_epoch,
            request.coordinator_epoch,
            0,
            partition.leader_epoch(),
            now,
        )
        .freeze();
        let code = match partition.append_from_coordinator(&batch, now).await {
            Ok(_) => {
                wrote_any = true;
                if tp.topic == OFFSETS_TOPIC {
                    state
                        .groups
                        .complete_transaction(
                            tp.partition,
                            request.producer_id,
                            request.result == TxnResult::Commit,
                        )
                        .await;
                }
                ErrorCode::None
            }
            Err(e) => {
                tracing::warn!(partition = %tp, code = ?e.code, message = %e.message, "transaction marker not written");
                e.code
            }
        };
        results.insert(tp.clone(), code);
    }
    if wrote_any {
        // The markers moved last stable offsets: wake read_committed fetches.
        state.notify_data();
    }
    results
}
