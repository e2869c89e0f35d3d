//! The producer's background task (Java's `Sender`): it owns the accumulator,
//! assigns partitions, drains ready batches into Produce requests per leader,
//! and completes, retries or fails batches from the responses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use strom_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use strom_protocol::messages::{ProduceRequest, ProduceResponse};
use strom_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::accumulator::{record_size, Accumulator, Batch, ProducerIdentity};
use super::{ProducerConfig, ProducerError, ProducerRecord, Responder};
use crate::cluster::Cluster;
use crate::error::ClientError;
use crate::producer::config::Acks;

pub(crate) enum Command {
    Send(ProducerRecord, Responder),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

enum Event {
    Produced {
        batches: Vec<Batch>,
        result: Result<ProduceResponse, ClientError>,
    },
    Metadata,
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
}

impl Sender {
    pub fn new(
        config: ProducerConfig,
        cluster: Arc<Cluster>,
        identity: Option<ProducerIdentity>,
    ) -> Sender {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Sender {
            acc: Accumulator::new(
                config.batch_size,
                config.linger,
                config.compression,
                config.delivery_timeout,
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
        }
    }

    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            self.step().await;
            if self.outstanding == 0 {
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
                cmd = commands.recv(), if !self.closing => match cmd {
                    Some(Command::Send(record, responder)) => self.accept(record, responder),
                    Some(Command::Flush(tx)) => self.flushers.push(tx),
                    Some(Command::Close(tx)) => { self.closers.push(tx); self.closing = true; }
                    None => self.closing = true,
                },
                Some(ev) = self.events_rx.recv() => self.on_event(ev),
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
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
        self.outstanding -= self.acc.expire(now, timeout_ms);
        let (expired, kept): (Vec<_>, Vec<_>) =
            self.waiting.drain(..).partition(|w| now >= w.deadline);
        self.waiting = kept;
        for w in expired {
            self.outstanding -= 1;
            let _ = w.responder.send(Err(ProducerError::DeliveryTimeout {
                delivery_timeout_ms: timeout_ms,
            }));
        }
        if self.metadata_retry_at.is_some_and(|t| now >= t) {
            self.metadata_retry_at = None;
            self.refresh_metadata();
        }
        let flushing = !self.flushers.is_empty() || self.closing;
        self.acc.seal_ready(now, flushing);
        if self.acc.sequence_gap && self.identity.is_some() && !self.replace_identity().await {
            return;
        }
        loop {
            let cluster = self.cluster.clone();
            let batches = self
                .acc
                .drain(now, self.config.max_in_flight, self.identity, |t, p| {
                    cluster.leader(t, p)
                });
            if batches.is_empty() {
                break;
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
                let _ = w.responder.send(Err(err));
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
                None => {
                    let available: Vec<i32> = meta
                        .partitions
                        .iter()
                        .filter(|p| p.leader >= 0)
                        .map(|p| p.partition)
                        .collect();
                    let all: Vec<i32> = (0..n).collect();
                    let choices = if available.is_empty() {
                        &all
                    } else {
                        &available
                    };
                    self.acc.sticky_partition(&r.topic, choices, record_size(r))
                }
            },
        };
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
        let mut req = ProduceRequest::default();
        req.acks = self.config.acks.wire();
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
                    batches,
                    result: Err(e),
                });
                return;
            }
        };
        if self.config.acks == Acks::None {
            let result = conn.send_oneway(&req).await;
            let result = result.map(|()| ProduceResponse::default());
            self.on_event(Event::Produced { batches, result });
            return;
        }
        match conn.dispatch(&req).await {
            Ok(pending) => {
                tokio::spawn(async move {
                    let result = pending.wait().await;
                    let _ = tx.send(Event::Produced { batches, result });
                });
            }
            Err(e) => self.on_event(Event::Produced {
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
            Event::Produced { batches, result } => {
                for b in batches {
                    let outcome = match &result {
                        Err(e) => Err(e.clone()),
                        Ok(resp) => partition_outcome(resp, &b, self.config.acks),
                    };
                    self.finish(b, outcome);
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
                    self.outstanding -= batch.record_count();
                    self.acc.sequence_gap |= batch.base_sequence.is_some();
                    batch.fail(ProducerError::Client(e));
                }
            }
        }
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
