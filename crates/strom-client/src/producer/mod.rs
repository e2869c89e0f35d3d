//! The producer, shaped like Java's `KafkaProducer`: `send` returns a future that
//! resolves when the record is acknowledged (Java's `Future.get()`), `flush`
//! waits for everything sent so far, `close` flushes and stops.
//!
//! Records go through a channel to one background task (`sender.rs`) that owns
//! all batching and retry state, so `send` never takes a lock and records sent
//! from one task keep their order.
//!
//! With `transactional.id` the producer is transactional (KIP-98), as Java's:
//! [`Producer::init_transactions`] once, then [`Producer::begin_transaction`],
//! sends, [`Producer::send_offsets_to_transaction`] for a consumer group's
//! offsets, and [`Producer::commit_transaction`] (which flushes first) or
//! [`Producer::abort_transaction`]. Records of a committed transaction become
//! visible to `read_committed` consumers together with its offsets; an aborted
//! transaction's never do. Errors are abortable
//! ([`ProducerError::TransactionAbortable`]: abort, then go on) or fatal
//! ([`ProducerError::TransactionFatal`], e.g. fenced by a newer producer with
//! the same id: close the producer); a call in the wrong state gets
//! [`ProducerError::IllegalState`]. `transactions.rs` has the calls,
//! `txn_state.rs` the state, `txn_requests.rs` the coordinator requests.
//!
//! The protocol is chosen at `init_transactions`, as Java 4.x does:
//! transaction version 2 (KIP-890 part 2) when the broker finalizes the
//! `transaction.version` feature at 2 or more and speaks EndTxn v5 and
//! Produce v12 — Produce and TxnOffsetCommit v5 add their partitions to the
//! transaction, and every EndTxn returns a new epoch (sequences restart at 0);
//! otherwise the classic protocol — AddPartitionsToTxn before a partition's
//! first batch of the transaction is sent, AddOffsetsToTxn before
//! TxnOffsetCommit, EndTxn v4 at most. [`ProducerConfig::max_transaction_version`]
//! can force the classic protocol.

mod accumulator;
mod config;
mod partitioner;
mod sender;
mod transactions;
mod txn_requests;
mod txn_state;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strom_protocol::messages::InitProducerIdRequest;
use strom_protocol::records::Header;
use strom_protocol::ErrorCode;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

pub use config::{Acks, ProducerConfig, MAX_IN_FLIGHT_IDEMPOTENT, TRANSACTION_VERSION_LATEST};
pub use partitioner::{murmur2, partition_for_key, to_positive, DefaultPartitioner, Partitioner};

use crate::cluster::Cluster;
use crate::connection::ConnectionConfig;
use crate::error::ClientError;
use accumulator::{record_size, ProducerIdentity};
use sender::{Command, Sender};
use txn_requests::TransactionManager;

/// The outcome of [`Producer::send_with_callback`], available after the
/// callback ran. Dropping it does not cancel anything.
pub struct CallbackDone {
    rx: oneshot::Receiver<Result<RecordMetadata, ProducerError>>,
}

impl Future for CallbackDone {
    type Output = Result<RecordMetadata, ProducerError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ProducerError::Closed)))
    }
}

/// Where a record's outcome is delivered: the channel behind the future that
/// `send` returned and, for `send_with_callback`, a callback run first.
///
/// Callbacks run on the producer's background task, as Java runs them on its
/// I/O thread: no task per record, and callbacks of one partition run in
/// offset order. A callback that blocks holds up the producer (Java documents
/// the same); one that panics is logged and the producer goes on.
pub(crate) struct Responder {
    tx: oneshot::Sender<Result<RecordMetadata, ProducerError>>,
    callback: Option<Callback>,
}

type Callback = Box<dyn FnOnce(Result<RecordMetadata, ProducerError>) + Send>;

impl Responder {
    pub(crate) fn new(tx: oneshot::Sender<Result<RecordMetadata, ProducerError>>) -> Self {
        Responder { tx, callback: None }
    }

    /// Delivers the outcome: the callback (if any), then the future.
    pub(crate) fn send(self, result: Result<RecordMetadata, ProducerError>) {
        if let Some(callback) = self.callback {
            let copy = result.clone();
            let run = std::panic::AssertUnwindSafe(move || callback(copy));
            if std::panic::catch_unwind(run).is_err() {
                tracing::warn!("a send callback panicked; the producer goes on");
            }
        }
        // Nobody waiting on the future is fine.
        let _ = self.tx.send(result);
    }
}

/// Why a record was not delivered.
#[derive(Debug, Error, Clone)]
pub enum ProducerError {
    /// A connection, protocol or Kafka error (after retries, when retriable).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// `delivery.timeout.ms` passed before the record was acknowledged.
    #[error("record not delivered within delivery.timeout.ms = {delivery_timeout_ms}")]
    DeliveryTimeout { delivery_timeout_ms: u64 },
    /// The record is larger than `max.request.size`.
    #[error("record of {bytes} bytes exceeds max.request.size = {limit}")]
    RecordTooLarge { bytes: usize, limit: usize },
    /// The explicit partition does not exist.
    #[error("partition {partition} does not exist (topic has {partitions})")]
    InvalidPartition { partition: i32, partitions: i32 },
    /// A batch could not be encoded.
    #[error("cannot encode batch: {0}")]
    Encode(String),
    /// The producer was closed.
    #[error("producer is closed")]
    Closed,
    /// The call is not allowed in the producer's current transaction state, or
    /// on a producer without `transactional.id` (Java's `IllegalStateException`).
    #[error("illegal state: {0}")]
    IllegalState(String),
    /// The transactional producer hit an error it cannot recover from (fenced
    /// by a newer producer with the same `transactional.id`, not authorized,
    /// ...): this and every later call fails with it; close the producer.
    #[error("fatal transactional error: {0}")]
    TransactionFatal(Box<ProducerError>),
    /// The current transaction cannot commit (a batch failed, the coordinator
    /// answered TRANSACTION_ABORTABLE, ...): call
    /// [`Producer::abort_transaction`], then begin a new transaction.
    #[error("the transaction must be aborted: {0}")]
    TransactionAbortable(Box<ProducerError>),
    /// The record was not sent because its transaction was aborted (Java's
    /// `TransactionAbortedException`).
    #[error("the record's transaction was aborted")]
    TransactionAborted,
    /// A transactional call did not complete within `max.block.ms`; calling it
    /// again resumes it (Java's `TimeoutException`).
    #[error("{operation} did not complete within max.block.ms = {max_block_ms}")]
    Timeout {
        operation: &'static str,
        max_block_ms: u64,
    },
}

impl ProducerError {
    /// The Kafka error code at the root of this error, if there is one.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            ProducerError::Client(e) => e.code(),
            ProducerError::TransactionFatal(cause) | ProducerError::TransactionAbortable(cause) => {
                cause.kafka_code()
            }
            _ => None,
        }
    }

    /// Whether a newer producer with the same `transactional.id` fenced this
    /// one (PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH from older coordinators).
    pub fn is_fenced(&self) -> bool {
        let fenced = [
            ErrorCode::ProducerFenced.code(),
            ErrorCode::InvalidProducerEpoch.code(),
        ];
        self.kafka_code().is_some_and(|c| fenced.contains(&c))
    }

    /// Whether the transactional producer can no longer be used.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ProducerError::TransactionFatal(_))
    }

    /// Whether the transaction must be aborted before the producer goes on.
    pub fn is_abortable(&self) -> bool {
        matches!(self, ProducerError::TransactionAbortable(_))
    }
}

/// A record to send (Java's `ProducerRecord`).
#[derive(Clone, Debug, Default)]
pub struct ProducerRecord {
    pub topic: String,
    /// Explicit partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// Create time in ms since the epoch; `None` is "now".
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with no key, value or headers.
    pub fn new(topic: impl Into<String>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            ..Default::default()
        }
    }
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }
    pub fn header(mut self, key: &str, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }
}

/// Where an acknowledged record landed (Java's `RecordMetadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    /// The record's offset; -1 with `acks=0`.
    pub offset: i64,
    /// Create time, or the broker's append time under LogAppendTime.
    pub timestamp: i64,
}

/// The producer. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Producer {
    commands: mpsc::UnboundedSender<Command>,
    max_request_size: usize,
    /// The transaction state, with `transactional.id`.
    txn: Option<Arc<TransactionManager>>,
    /// `max.block.ms`, the bound on each transactional call.
    max_block: Duration,
}

impl Producer {
    /// Validates `config`, bootstraps metadata, obtains a producer id when
    /// idempotent, and starts the background sender. A transactional producer
    /// (`transactional.id`) gets its producer id from
    /// [`init_transactions`](Self::init_transactions) instead, as in Java.
    pub async fn new(mut config: ProducerConfig) -> Result<Producer, ClientError> {
        config.validate()?;
        let conn_config = ConnectionConfig {
            client_id: config.client_id.clone(),
            max_in_flight: config.max_in_flight,
            request_timeout: config.request_timeout,
            ..ConnectionConfig::default()
        };
        let cluster = Cluster::connect(&config.bootstrap_servers, conn_config).await?;
        // As Java's producer: sending to a missing topic creates it where the broker allows.
        cluster.set_allow_auto_topic_creation(true);
        let txn = config
            .transactional_id
            .clone()
            .map(|id| Arc::new(TransactionManager::new(id, &config, cluster.clone())));
        let identity = if config.enable_idempotence && txn.is_none() {
            Some(init_producer_id(&cluster, &config).await?)
        } else {
            None
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let max_request_size = config.max_request_size;
        let max_block = config.max_block;
        tokio::spawn(Sender::new(config, cluster, identity, txn.clone()).run(rx));
        Ok(Producer {
            commands: tx,
            max_request_size,
            txn,
            max_block,
        })
    }

    /// Queues `record` and returns a future of its acknowledgement. The record is
    /// queued before this returns, so records sent in sequence keep their order
    /// whether or not the futures are awaited.
    ///
    /// A transactional producer accepts records only between
    /// [`begin_transaction`](Self::begin_transaction) and the end of the
    /// transaction; otherwise the future fails with
    /// [`ProducerError::IllegalState`] (or the transaction's error).
    pub fn send(
        &self,
        record: ProducerRecord,
    ) -> impl Future<Output = Result<RecordMetadata, ProducerError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.queue_record(record, Responder::new(tx));
        async move {
            queued?;
            rx.await.unwrap_or(Err(ProducerError::Closed))
        }
    }

    /// Checks a record's size and queues it for the background task. A record
    /// refused here has its outcome delivered at once through `responder`.
    fn queue_record(
        &self,
        record: ProducerRecord,
        responder: Responder,
    ) -> Result<(), ProducerError> {
        let size = record_size(&record);
        if size > self.max_request_size {
            let err = ProducerError::RecordTooLarge {
                bytes: size,
                limit: self.max_request_size,
            };
            responder.send(Err(err.clone()));
            return Err(err);
        }
        self.queue_send(record, responder)
    }

    /// Like [`send`](Self::send), calling `callback` with the outcome (Java's
    /// `send(record, callback)`). The callback runs whether or not the returned
    /// future is awaited; the future resolves after the callback has run, as
    /// Java's `Future.get()` returns after the callback.
    pub fn send_with_callback<F>(&self, record: ProducerRecord, callback: F) -> CallbackDone
    where
        F: FnOnce(Result<RecordMetadata, ProducerError>) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let responder = Responder {
            tx,
            callback: Some(Box::new(callback)),
        };
        // A refused record's callback has run already, and `rx` holds the error.
        let _ = self.queue_record(record, responder);
        CallbackDone { rx }
    }

    /// Sends every buffered record now (ignoring `linger.ms`) and waits until
    /// all records sent so far are acknowledged or failed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Queues a send. A transactional producer checks its state and queues
    /// under one lock, so a send either precedes a commit's or abort's flush
    /// or is refused.
    fn queue_send(
        &self,
        record: ProducerRecord,
        responder: Responder,
    ) -> Result<(), ProducerError> {
        let queue = |record, responder| {
            self.commands
                .send(Command::Send(record, responder))
                .map_err(|mpsc::error::SendError(command)| {
                    if let Command::Send(_, responder) = command {
                        responder.send(Err(ProducerError::Closed));
                    }
                    ProducerError::Closed
                })
        };
        match &self.txn {
            None => queue(record, responder),
            Some(txn) => txn.with(|s| match s.check_send() {
                Ok(()) => queue(record, responder),
                Err(e) => {
                    responder.send(Err(e.clone()));
                    Err(e)
                }
            }),
        }
    }

    /// Flushes, then stops the sender; later sends fail with [`ProducerError::Closed`].
    /// A transaction still open is aborted first (bounded by `max.block.ms`),
    /// as Java's producer does on close.
    pub async fn close(&self) {
        self.abort_open_transaction().await;
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// InitProducerId for a non-transactional idempotent producer, retried while
/// the broker answers with retriable errors and the delivery timeout allows.
async fn init_producer_id(
    cluster: &Cluster,
    config: &ProducerConfig,
) -> Result<ProducerIdentity, ClientError> {
    let deadline = tokio::time::Instant::now() + config.delivery_timeout;
    loop {
        let mut req = InitProducerIdRequest::default();
        req.transactional_id = None;
        req.transaction_timeout_ms = i32::MAX;
        let result: Result<ProducerIdentity, ClientError> = async {
            let resp = cluster.any_connection().await?.send(&req).await?;
            ClientError::check(resp.error_code, None)?;
            Ok(ProducerIdentity {
                producer_id: resp.producer_id,
                producer_epoch: resp.producer_epoch,
            })
        }
        .await;
        match result {
            Err(e) if e.is_retriable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(config.retry_backoff).await;
            }
            other => return other,
        }
    }
}
