//! Metadata records: the only way the cluster image changes.

use serde::{Deserialize, Serialize};

use crate::image::TopicId;

/// What a dynamic config applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfigResource {
    /// A topic, by name.
    Topic(String),
    /// A broker, by id; the empty-name "default broker" resource is `Broker(None)`.
    Broker(Option<i32>),
}

/// One committed change to the cluster metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// The cluster's id, written once when the log is created.
    ClusterId { cluster_id: String },
    /// A topic came into being.
    Topic { name: String, topic_id: TopicId },
    /// A partition's assignment and leadership.
    Partition {
        topic_id: TopicId,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A dynamic config was set (`Some`) or removed (`None`).
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// A topic and its partitions were deleted.
    RemoveTopic { topic_id: TopicId },
    /// Producer ids below `next_producer_id` are handed out.
    ProducerIds {
        broker_id: i32,
        next_producer_id: i64,
    },
}
