//! `strom-client`: a Rust Kafka client for Strom (and any Kafka broker), built on
//! `strom-protocol`.
//!
//! What it is for: talking to brokers the way Kafka's Java client does —
//! [`Connection`] (one pipelined, version-negotiated TCP connection),
//! [`Cluster`] (bootstrap and metadata), [`Admin`] (topics, partitions,
//! configs, cluster, DeleteRecords, consumer groups and their offsets),
//! [`Producer`] (batching, compression, idempotence, retries, Java's default
//! partitioner, and transactions: `transactional.id`, `init_transactions`,
//! `begin_transaction`, `send_offsets_to_transaction`, `commit_transaction`,
//! `abort_transaction`, with transaction version 2 (KIP-890) where the broker
//! finalizes it and the classic protocol otherwise) and [`Consumer`] (group
//! subscription with the classic or KIP-848 protocol and a rebalance
//! listener, or manual assignment; poll, seek, offsets by time, pause/resume,
//! auto/sync/async commits, `read_committed`, and the
//! [`ConsumerGroupMetadata`] a transaction commits offsets with), with
//! [`serde`] serializers for bytes, strings and JSON. What it is not (yet):
//! TLS/SASL. It never depends on the broker crate.
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
//!
//! Exactly-once consume-transform-produce (KIP-98, KIP-447): the output
//! records and the input offsets commit together, or not at all.
//!
//! ```no_run
//! use std::collections::HashMap;
//! use std::time::Duration;
//! use strom_client::{
//!     Consumer, ConsumerConfig, OffsetAndMetadata, Producer, ProducerConfig, ProducerRecord,
//!     TopicPartition,
//! };
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut consumer = Consumer::new(ConsumerConfig::from_properties([
//!     ("bootstrap.servers", "localhost:9092"),
//!     ("group.id", "copier"),
//!     ("enable.auto.commit", "false"),
//!     ("isolation.level", "read_committed"),
//! ])?)
//! .await?;
//! consumer.subscribe(["input"])?;
//! let producer = Producer::new(ProducerConfig::from_properties([
//!     ("bootstrap.servers", "localhost:9092"),
//!     ("transactional.id", "copier-1"),
//! ])?)
//! .await?;
//! producer.init_transactions().await?;
//! loop {
//!     let records = consumer.poll(Duration::from_millis(500)).await?;
//!     if records.is_empty() {
//!         continue;
//!     }
//!     producer.begin_transaction()?;
//!     let mut offsets = HashMap::new();
//!     for r in &records {
//!         let mut out = ProducerRecord::new("output");
//!         out.key = r.key.clone();
//!         out.value = r.value.clone();
//!         let _ = producer.send(out); // awaited by the commit's flush
//!         offsets.insert(
//!             TopicPartition::new(&r.topic, r.partition),
//!             OffsetAndMetadata::new(r.offset + 1),
//!         );
//!     }
//!     producer
//!         .send_offsets_to_transaction(&offsets, &consumer.group_metadata())
//!         .await?;
//!     if let Err(e) = producer.commit_transaction().await {
//!         if e.is_fatal() {
//!             return Err(e.into()); // fenced: another instance took over
//!         }
//!         producer.abort_transaction().await?;
//!         // Rewind to the last committed offsets and process again.
//!     }
//! }
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
    ConsumerGroupMetadata, ConsumerRebalanceListener, ConsumerRecord, GroupProtocol,
    IsolationLevel, OffsetAndMetadata, OffsetAndTimestamp, TopicPartition,
};
pub use error::ClientError;
pub use producer::{
    murmur2, Acks, CallbackDone, DefaultPartitioner, Partitioner, Producer, ProducerConfig,
    ProducerError, ProducerRecord, RecordMetadata,
};
