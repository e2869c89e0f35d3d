//! The producer, shaped like Java's `KafkaProducer`: `send` returns a future that
//! resolves when the record is acknowledged (Java's `Future.get()`), `flush`
//! waits for everything sent so far, `close` flushes and stops.
//!
//! Records go through a channel to one background task (`sender.rs`) that owns
//! all batching and retry state, so `send` never takes a lock and records sent
//! from one task keep their order.

mod accumulator;
mod config;
mod partitioner;
mod sender;

use std::future::Future;

use bytes::Bytes;
use strom_protocol::messages::InitProducerIdRequest;
use strom_protocol::records::Header;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

pub use config::{Acks, ProducerConfig, MAX_IN_FLIGHT_IDEMPOTENT};
pub use partitioner::{murmur2, partition_for_key, to_positive, DefaultPartitioner, Partitioner};

use crate::cluster::Cluster;
use crate::connection::ConnectionConfig;
use crate::error::ClientError;
use accumulator::{record_size, ProducerIdentity};
use sender::{Command, Sender};

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

/// Where a record's outcome is delivered.
pub(crate) type Responder = oneshot::Sender<Result<RecordMetadata, ProducerError>>;

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
}

impl Producer {
    /// Validates `config`, bootstraps metadata, obtains a producer id when
    /// idempotent, and starts the background sender.
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
        let identity = if config.enable_idempotence {
            Some(init_producer_id(&cluster, &config).await?)
        } else {
            None
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let max_request_size = config.max_request_size;
        tokio::spawn(Sender::new(config, cluster, identity).run(rx));
        Ok(Producer {
            commands: tx,
            max_request_size,
        })
    }

    /// Queues `record` and returns a future of its acknowledgement. The record is
    /// queued before this returns, so records sent in sequence keep their order
    /// whether or not the futures are awaited.
    pub fn send(
        &self,
        record: ProducerRecord,
    ) -> impl Future<Output = Result<RecordMetadata, ProducerError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let size = record_size(&record);
        let queued = if size > self.max_request_size {
            Err(ProducerError::RecordTooLarge {
                bytes: size,
                limit: self.max_request_size,
            })
        } else {
            self.commands
                .send(Command::Send(record, tx))
                .map_err(|_| ProducerError::Closed)
        };
        async move {
            queued?;
            rx.await.unwrap_or(Err(ProducerError::Closed))
        }
    }

    /// Like [`send`](Self::send), calling `callback` with the outcome (Java's
    /// `send(record, callback)`). The callback runs whether or not the returned
    /// future is awaited; the future resolves after the callback has run, as
    /// Java's `Future.get()` returns after the callback.
    pub fn send_with_callback<F>(&self, record: ProducerRecord, callback: F) -> CallbackDone
    where
        F: FnOnce(Result<RecordMetadata, ProducerError>) + Send + 'static,
    {
        let fut = self.send(record);
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let result = fut.await;
            callback(result.clone());
            let _ = tx.send(result);
        });
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

    /// Flushes, then stops the sender; later sends fail with [`ProducerError::Closed`].
    pub async fn close(&self) {
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
