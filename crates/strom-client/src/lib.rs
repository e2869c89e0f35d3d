//! `strom-client`: a Rust Kafka client for Strom (and any Kafka broker), built on
//! `strom-protocol`.
//!
//! What it is for: talking to brokers the way Kafka's Java client does —
//! [`Connection`] (one pipelined, version-negotiated TCP connection),
//! [`Cluster`] (bootstrap and metadata), [`Admin`] (topics, configs, cluster,
//! DeleteRecords), [`Producer`] (batching, compression, idempotence, retries,
//! Java's default partitioner) and [`Consumer`] (manual assignment, poll,
//! seek, offsets by time, pause/resume, committed offsets). What it is not
//! (yet): a group-subscribing consumer, transactions, TLS/SASL. It never
//! depends on the broker crate.
//!
//! ```no_run
//! use bytes::Bytes;
//! use strom_client::{Admin, NewTopic, Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let admin = Admin::connect("localhost:9092").await?;
//! admin.create_topics(&[NewTopic::new("events", 3, 1)]).await?;
//!
//! let config = ProducerConfig::from_properties([
//!     ("bootstrap.servers", "localhost:9092"),
//!     ("acks", "all"),
//!     ("linger.ms", "5"),
//! ])?;
//! let producer = Producer::new(config).await?;
//! let meta = producer
//!     .send(ProducerRecord::new("events").key("user-1").value("clicked"))
//!     .await?;
//! println!("{}-{}@{}", meta.topic, meta.partition, meta.offset);
//! producer.close().await;
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod producer;
mod props;
mod versions;

pub use admin::{Admin, AlterConfigOp, ClusterDescription, ConfigEntry, ConfigResource, NewTopic};
pub use cluster::{Cluster, Node, PartitionMetadata, TopicMetadata};
pub use connection::{Connection, ConnectionConfig, PendingResponse};
pub use consumer::{
    AutoOffsetReset, Consumer, ConsumerConfig, ConsumerError, ConsumerRecord, IsolationLevel,
    OffsetAndMetadata, OffsetAndTimestamp, TopicPartition,
};
pub use error::ClientError;
pub use producer::{
    murmur2, Acks, DefaultPartitioner, Partitioner, Producer, ProducerConfig, ProducerError,
    ProducerRecord, RecordMetadata,
};
