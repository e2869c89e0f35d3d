//! `strom-client`: a Rust Kafka client for Strom (and any Kafka broker), built on
//! `strom-protocol`.
//!
//! What it is for: talking to brokers the way Kafka's Java client does —
//! [`Connection`] (one pipelined, version-negotiated TCP connection),
//! [`Cluster`] (bootstrap and metadata), [`Admin`] (topics, partitions,
//! configs, cluster, DeleteRecords, consumer groups and their offsets),
//! [`Producer`] (batching, compression, idempotence, retries, Java's default
//! partitioner) and [`Consumer`] (group subscription with the classic or
//! KIP-848 protocol and a rebalance listener, or manual assignment; poll,
//! seek, offsets by time, pause/resume, auto/sync/async commits), with
//! [`serde`] serializers for bytes, strings and JSON. What it is not
//! (yet): transactions, TLS/SASL. It never depends on the broker crate.
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
mod admin_groups;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod producer;
mod props;
pub mod serde;
mod versions;

pub use admin::{Admin, AlterConfigOp, ClusterDescription, ConfigEntry, ConfigResource, NewTopic};
pub use admin_groups::{
    GroupDescription, GroupListing, ListOffsetsResultInfo, MemberDescription, OffsetSpec,
    DEFAULT_API_TIMEOUT,
};
pub use cluster::{Cluster, Node, PartitionMetadata, TopicMetadata};
pub use connection::{Connection, ConnectionConfig, PendingResponse};
pub use consumer::{
    Assignor, AutoOffsetReset, CommitCallback, Consumer, ConsumerConfig, ConsumerError,
    ConsumerRebalanceListener, ConsumerRecord, GroupProtocol, IsolationLevel, OffsetAndMetadata,
    OffsetAndTimestamp, TopicPartition,
};
pub use error::ClientError;
pub use producer::{
    murmur2, Acks, CallbackDone, DefaultPartitioner, Partitioner, Producer, ProducerConfig,
    ProducerError, ProducerRecord, RecordMetadata,
};
