//! The producer's background task (Java's `Sender`): it owns the accumulator,
//! assigns partitions, drains ready batches into Produce requests per leader,
//! and completes, retries or fails batches from the responses.
//!
//! For a transactional producer it also follows the transaction's state
//! (`txn_state.rs`): under the classic protocol a partition's batches wait
//! until AddPartitionsToTxn added it; a failed batch makes the transaction
//! abortable (or the producer fenced); once the transaction cannot commit,
//! batches not yet sent fail instead of being sent.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use strom_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use strom_protocol::messages::{ProduceRequest, ProduceResponse};
use strom_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::accumulator::{record_size, Accumulator, Batch, ProducerIdentity};
use super::txn_requests::{TransactionManager, PRODUCE_MAX_V1};
use super::txn_state::{TransactionVersion, TxnFailure};
use super::{ProducerConfig, ProducerError, ProducerRecord, Responder};
use crate::cluster::Cluster;
use crate::error::ClientError;
use crate::producer::config::Acks;

/// Commands taken from the queue between two steps of the background task.
/// Bounds the time records already batched wait for the step that sends
/// them, while a busy producer still steps once per many records.
const COMMANDS_PER_STEP: usize = 1024;

pub(crate) enum Command {
    Send(ProducerRecord, Responder),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
    /// Continue under this producer id and epoch, every partition's sequence
    /// from 0 (a transactional producer after InitProducerId or a bumping
    /// EndTxn). Sent only with nothing in flight; answered once applied.
    SetIdentity(ProducerIdentity, oneshot::Sender<()>),
}

enum Event {
    Produced {
        node: i32,
        batches: Vec<Batch>,
        result: Result<ProduceResponse, ClientError>,
    },
    Metadata,
    /// The AddPartitionsToTxn for the transaction's pending partitions answered.
    PartitionsAdded(Result<(), TxnFailure>),
}

/// A record waiting for its topic's metadata.
struct Waiting {
    record: ProducerRecord,
    responder: Responder,
    deadline: Instant,
}

pub(crate) struct Sender {
    config: ProducerConfig,
    cluster: Arc<Cluster>,
    identity: Option<ProducerIdentity>,
    acc: Accumulator,
    waiting: Vec<Waiting>,
    /// Records accepted and not yet completed.
    outstanding: usize,
    metadata_in_flight: bool,
    metadata_retry_at: Option<Instant>,
    flushers: Vec<oneshot::Sender<()>>,
    closers: Vec<oneshot::Sender<()>>,
    closing: bool,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    /// The transaction's state, for a transactional producer.
    txn: Option<Arc<TransactionManager>>,
    /// An AddPartitionsToTxn is in flight (classic protocol; one at a time).
    add_in_flight: bool,
    /// Produce requests sent to each broker and not yet answered. A broker
    /// at `max.in.flight.requests.per.connection` is not drained for: its
    /// batches wait in the accumulator and leave together, one per partition
    /// in one request, when an answer frees a slot (as in Kafka's sender).
    requests: HashMap<i32, usize>,
}

impl Sender {
    pub fn new(
        config: ProducerConfig,
        cluster: Arc<Cluster>,
        identity: Option<ProducerIdentity>,
        txn: Option<Arc<TransactionManager>>,
    ) -> Sender {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Sender {
            acc: Accumulator::new(
                config.batch_size,
                config.linger,
                config.compression,
                config.delivery_timeout,
                txn.is_some(),
            ),
            config,
            cluster,
            identity,
            waiting: Vec::new(),
            outstanding: 0,
            metadata_in_flight: false,
            metadata_retry_at: None,
            flushers: Vec::new(),
            closers: Vec::new(),
            closing: false,
            events_tx,
            events_rx,
            txn,
            add_in_flight: false,
            requests: HashMap::new(),
        }
    }

    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            self.step().await;
            // An AddPartitionsToTxn still in flight decides whether the
            // transaction started, which an abort waiting here needs to know.
            if self.outstanding == 0 && !self.add_in_flight {
                for f in self.flushers.drain(..) {
                    let _ = f.send(());
                }
                if self.closing {
                    for c in self.closers.drain(..) {
                        let _ = c.send(());
                    }
                    return;
                }
            }
            let wake = self.next_wakeup();
            tokio::select! {
                cmd = commands.recv(), if !self.closing => {
                    self.command(cmd);
                    // Take what else is queued before the next step, so that
                    // a busy producer steps once per many records, not per record.
                    for _ in 1..COMMANDS_PER_STEP {
                        if self.closing {
                            break;
                        }
                        match commands.try_recv() {
                            Ok(cmd) => self.command(Some(cmd)),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => self.command(None),
                        }
                    }
                }
                Some(ev) = self.events_rx.recv() => self.on_event(ev),
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    fn command(&mut self, cmd: Option<Command>) {
        match cmd {
            Some(Command::Send(record, responder)) => self.accept(record, responder),
            Some(Command::Flush(tx)) => self.flushers.push(tx),
            Some(Command::Close(tx)) => {
                self.closers.push(tx);
                self.closing = true;
            }
            Some(Command::SetIdentity(id, tx)) => self.set_identity(id, tx),
            None => self.closing = true,
        }
    }

    fn set_identity(&mut self, identity: ProducerIdentity, done: oneshot::Sender<()>) {
        debug_assert!(
            !self.acc.any_in_flight(),
            "identity changed with batches in flight"
        );
        debug!(
            producer_id = identity.producer_id,
            epoch = identity.producer_epoch,
            "continuing under a new producer epoch"
        );
        self.identity = Some(identity);
        self.acc.reset_sequences();
        let _ = done.send(());
    }

    fn next_wakeup(&self) -> Instant {
        let idle = Instant::now() + self.config.delivery_timeout;
        let mut t = self.acc.next_wakeup().unwrap_or(idle);
        if let Some(m) = self.metadata_retry_at {
            t = t.min(m);
        }
        for w in &self.waiting {
            t = t.min(w.deadline);
        }
        t
    }

    /// Expires, seals, refreshes metadata when due, and sends what is ready.
    async fn step(&mut self) {
        let now = Instant::now();
        let timeout_ms = self.config.delivery_timeout.as_millis() as u64;
        let expired_in_batches = self.acc.expire(now, timeout_ms);
        self.outstanding -= expired_in_batches;
        let (expired, kept): (Vec<_>, Vec<_>) =
            self.waiting.drain(..).partition(|w| now >= w.deadline);
        self.waiting = kept;
        if expired_in_batches > 0 || !expired.is_empty() {
            self.txn_batch_failed(&ProducerError::DeliveryTimeout {
                delivery_timeout_ms: timeout_ms,
            });
        }
        for w in expired {
            self.outstanding -= 1;
            w.responder.send(Err(ProducerError::DeliveryTimeout {
                delivery_timeout_ms: timeout_ms,
            }));
        }
        if self.metadata_retry_at.is_some_and(|t| now >= t) {
            self.metadata_retry_at = None;
            self.refresh_metadata();
        }
        let flushing = !self.flushers.is_empty() || self.closing;
        self.acc.seal_ready(now, flushing);
        if let Some(txn) = self.txn.clone() {
            self.follow_transaction(&txn);
        } else if self.acc.sequence_gap && self.identity.is_some() && !self.replace_identity().await
        {
            return;
        }
        loop {
            let cluster = self.cluster.clone();
            let txn = self.txn.clone();
            let requests = &self.requests;
            let max_in_flight = self.config.max_in_flight;
            let max_request_size = self.config.max_request_size;
            let batches = self.acc.drain(
                now,
                max_in_flight,
                max_request_size,
                self.identity,
                |t, p| {
                    let allowed = txn
                        .as_ref()
                        .is_none_or(|txn| txn.with(|s| s.send_allowed(&(t.to_string(), p))));
                    allowed
                        .then(|| cluster.leader(t, p))
                        .flatten()
                        .filter(|node| requests.get(node).copied().unwrap_or(0) < max_in_flight)
                },
            );
            if batches.is_empty() {
                break;
            }
            if let Some(txn) = &self.txn {
                txn.with(|s| {
                    for (_, b) in &batches {
                        s.drained(&(b.topic.clone(), b.partition));
                    }
                });
            }
            let mut by_node: BTreeMap<i32, Vec<Batch>> = BTreeMap::new();
            for (node, b) in batches {
                by_node.entry(node).or_default().push(b);
            }
            for (node, batches) in by_node {
                self.send_to(node, batches).await;
            }
        }
    }

    /// A transactional producer's step: fail what can no longer be sent when
    /// the transaction cannot commit, else ask the coordinator to add the
    /// partitions that have records waiting (classic protocol).
    fn follow_transaction(&mut self, txn: &Arc<TransactionManager>) {
        if let Some(err) = txn.with(|s| s.undrained_error()) {
            let failed = self.acc.fail_undrained(&err);
            self.outstanding -= failed;
            for w in self.waiting.drain(..) {
                self.outstanding -= 1;
                w.responder.send(Err(err.clone()));
            }
            if self.acc.sequence_gap {
                // A retried batch's sequence numbers were given up: the next
                // transaction needs a new epoch.
                txn.with(|s| s.epoch_bump_required = true);
            }
            return;
        }
        if self.add_in_flight {
            return;
        }
        let Some((identity, partitions)) = txn.with(|s| s.take_partitions_to_add()) else {
            return;
        };
        self.add_in_flight = true;
        let txn = txn.clone();
        let events = self.events_tx.clone();
        let bound = self.config.delivery_timeout;
        tokio::spawn(async move {
            let added = tokio::time::timeout(bound, txn.add_partitions(identity, &partitions));
            let result = added.await.unwrap_or(Err(TxnFailure::Abortable {
                cause: ProducerError::DeliveryTimeout {
                    delivery_timeout_ms: bound.as_millis() as u64,
                },
                bump: false,
            }));
            let _ = events.send(Event::PartitionsAdded(result));
        });
    }

    /// Tells the transaction (if any) that records failed with `err`.
    fn txn_batch_failed(&self, err: &ProducerError) {
        if let Some(txn) = &self.txn {
            txn.with(|s| s.batch_failed(err));
        }
    }

    /// After a sequenced batch failed for good, its partition's later sequences
    /// would be refused as out of order: once nothing is in flight, take a new
    /// producer id, whose sequences start at 0 on every partition (as Java's
    /// idempotent producer resets its id). Returns whether sending may go on.
    async fn replace_identity(&mut self) -> bool {
        if self.acc.any_in_flight() {
            // Their answers arrive as events and run this again.
            return false;
        }
        match super::init_producer_id(&self.cluster, &self.config).await {
            Ok(id) => {
                info!(
                    old = ?self.identity.map(|i| i.producer_id),
                    new = id.producer_id,
                    "a batch failed for good; continuing under a new producer id"
                );
                self.identity = Some(id);
                self.acc.reset_sequences();
                true
            }
            Err(e) => {
                warn!(error = %e, "cannot get a new producer id; retrying");
                tokio::time::sleep(self.config.retry_backoff).await;
                false
            }
        }
    }

    /// Places a new record in a partition, or parks it until its topic is known.
    fn accept(&mut self, record: ProducerRecord, responder: Responder) {
        self.outstanding += 1;
        let deadline = Instant::now() + self.config.delivery_timeout;
        let w = Waiting {
            record,
            responder,
            deadline,
        };
        // Records of a topic already waiting for metadata stay behind them, even
        // if the refreshed metadata is in the cache before its event is handled:
        // otherwise a later record could take an earlier offset.
        if self
            .waiting
            .iter()
            .any(|p| p.record.topic == w.record.topic)
        {
            self.waiting.push(w);
        } else {
            self.place(w);
        }
    }

    fn place(&mut self, w: Waiting) {
        let Some(meta) = self.cluster.topic(&w.record.topic) else {
            self.waiting.push(w);
            self.refresh_metadata();
            return;
        };
        let n = meta.partitions.len() as i32;
        let r = &w.record;
        let chosen = match r.partition {
            Some(p) if p < 0 || p >= n => {
                self.outstanding -= 1;
                let err = ProducerError::InvalidPartition {
                    partition: p,
                    partitions: n,
                };
                w.responder.send(Err(err));
                return;
            }
            Some(p) => p,
            None => match self.config.partitioner.partition(
                &r.topic,
                r.key.as_deref(),
                r.value.as_deref(),
                n,
            ) {
                Some(p) => p.rem_euclid(n.max(1)),
                None => self
                    .acc
                    .sticky_partition(&r.topic, &meta.partitions, record_size(r)),
            },
        };
        if let Some(txn) = &self.txn {
            txn.with(|s| s.add_partition(&(w.record.topic.clone(), chosen)));
        }
        let timestamp = w.record.timestamp.unwrap_or_else(now_ms);
        self.acc
            .append(chosen, w.record, timestamp, w.responder, Instant::now());
    }

    fn refresh_metadata(&mut self) {
        if self.metadata_in_flight {
            return;
        }
        self.metadata_in_flight = true;
        let mut topics: Vec<String> = self
            .waiting
            .iter()
            .map(|w| w.record.topic.clone())
            .collect();
        topics.extend(self.acc.partitions.keys().map(|(t, _)| t.clone()));
        topics.sort();
        topics.dedup();
        let cluster = self.cluster.clone();
        let tx = self.events_tx.clone();
        tokio::spawn(async move {
            if let Err(e) = cluster.refresh(&topics).await {
                debug!(error = %e, "metadata refresh failed");
            }
            let _ = tx.send(Event::Metadata);
        });
    }

    async fn send_to(&mut self, node: i32, batches: Vec<Batch>) {
        *self.requests.entry(node).or_default() += 1;
        let mut req = ProduceRequest::default();
        req.acks = self.config.acks.wire();
        req.transactional_id = self
            .txn
            .as_ref()
            .map(|t| t.transactional_id.as_str().into());
        // Produce v12 adds the partition to the transaction: only under
        // transaction version 2 (KIP-890).
        let classic = self
            .txn
            .as_ref()
            .is_some_and(|t| t.with(|s| s.version) == TransactionVersion::V1);
        let max_version = if classic { PRODUCE_MAX_V1 } else { i16::MAX };
        req.timeout_ms = self
            .config
            .request_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
        for b in &batches {
            let mut p = PartitionProduceData::default();
            p.index = b.partition;
            p.records = b.bytes.clone();
            topics.entry(b.topic.as_str()).or_default().push(p);
        }
        for (name, partitions) in topics {
            let mut t = TopicProduceData::default();
            t.name = name.into();
            t.partition_data = partitions;
            req.topic_data.push(t);
        }
        let tx = self.events_tx.clone();
        let conn = match self.cluster.connection(node).await {
            Ok(c) => c,
            Err(e) => {
                self.on_event(Event::Produced {
                    node,
                    batches,
                    result: Err(e),
                });
                return;
            }
        };
        if self.config.acks == Acks::None {
            let result = conn.send_oneway(&req).await;
            let result = result.map(|()| ProduceResponse::default());
            self.on_event(Event::Produced {
                node,
                batches,
                result,
            });
            return;
        }
        match conn.dispatch_at_most(&req, max_version).await {
            Ok(pending) => {
                tokio::spawn(async move {
                    let result = pending.wait().await;
                    let _ = tx.send(Event::Produced {
                        node,
                        batches,
                        result,
                    });
                });
            }
            Err(e) => self.on_event(Event::Produced {
                node,
                batches,
                result: Err(e),
            }),
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Metadata => {
                self.metadata_in_flight = false;
                let waiting = std::mem::take(&mut self.waiting);
                for w in waiting {
                    self.place(w);
                }
                if !self.waiting.is_empty() {
                    self.metadata_retry_at = Some(Instant::now() + self.config.retry_backoff);
                }
            }
            Event::Produced {
                node,
                batches,
                result,
            } => {
                if let Some(n) = self.requests.get_mut(&node) {
                    *n = n.saturating_sub(1);
                }
                for b in batches {
                    let outcome = match &result {
                        Err(e) => Err(e.clone()),
                        Ok(resp) => partition_outcome(resp, &b, self.config.acks),
                    };
                    self.finish(b, outcome);
                }
            }
            Event::PartitionsAdded(result) => {
                self.add_in_flight = false;
                if let Some(txn) = &self.txn {
                    txn.with(|s| s.partitions_added(result));
                }
            }
        }
    }

    /// Completes, requeues or fails one batch after its produce response.
    fn finish(&mut self, batch: Batch, outcome: Result<(i64, i64), ClientError>) {
        let key = (batch.topic.clone(), batch.partition);
        let q = self.acc.partitions.entry(key).or_default();
        q.in_flight = q.in_flight.saturating_sub(1);
        match outcome {
            Ok((base_offset, append_time)) => {
                if q.in_flight == 0 && q.queue.iter().all(|b| b.attempts == 0) {
                    q.retrying = false;
                }
                self.outstanding -= batch.record_count();
                batch.complete(base_offset, append_time);
            }
            Err(e) if e.code() == Some(ErrorCode::MessageTooLarge.code()) => {
                let mut batch = batch;
                match self.acc.split(&mut batch) {
                    Some(parts) => {
                        debug!(
                            records = parts.len(),
                            "batch too large for the broker; sending its records one by one"
                        );
                        // Reversed: each requeue goes ahead of the one before.
                        for part in parts.into_iter().rev() {
                            self.acc.requeue(part);
                        }
                    }
                    None => self.fail_batch(batch, e),
                }
            }
            Err(e) => {
                let retrying = q.retrying;
                let out_of_order = e.code() == Some(ErrorCode::OutOfOrderSequenceNumber.code());
                // Out of order while retrying, or behind a batch that failed for
                // good: resent in order (after a new producer id for the latter).
                let retriable =
                    e.is_retriable() || (out_of_order && (retrying || self.acc.sequence_gap));
                let now = Instant::now();
                if retriable && batch.attempts < self.config.retries && now < batch.deadline {
                    debug!(topic = %batch.topic, partition = batch.partition, error = %e, "retrying batch");
                    if e.invalidates_metadata() {
                        self.refresh_metadata();
                    }
                    let mut batch = batch;
                    batch.attempts += 1;
                    batch.retry_at = Some(now + self.config.retry_backoff);
                    self.acc.requeue(batch);
                } else {
                    self.fail_batch(batch, e);
                }
            }
        }
    }

    /// Fails every record of a batch for good.
    fn fail_batch(&mut self, batch: Batch, e: ClientError) {
        self.outstanding -= batch.record_count();
        self.acc.sequence_gap |= batch.base_sequence.is_some();
        let err = ProducerError::Client(e);
        self.txn_batch_failed(&err);
        batch.fail(err);
    }
}

/// This batch's (base offset, log append time) or error from a produce response.
fn partition_outcome(
    resp: &ProduceResponse,
    batch: &Batch,
    acks: Acks,
) -> Result<(i64, i64), ClientError> {
    if acks == Acks::None {
        return Ok((-1, -1));
    }
    let p = resp
        .responses
        .iter()
        .filter(|t| t.name.as_str() == batch.topic)
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == batch.partition)
        .ok_or_else(|| {
            ClientError::Decode(format!(
                "no response for {}-{}",
                batch.topic, batch.partition
            ))
        })?;
    // A duplicate means the broker already has this batch: success (KIP-98).
    if p.error_code == ErrorCode::DuplicateSequenceNumber.code() {
        return Ok((p.base_offset, p.log_append_time_ms));
    }
    ClientError::check(
        p.error_code,
        p.error_message.as_ref().map(|m| m.to_string()),
    )?;
    Ok((p.base_offset, p.log_append_time_ms))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
