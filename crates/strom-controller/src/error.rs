//! Controller errors, each mapping to one Kafka error code in the broker.

use thiserror::Error;

/// Why a metadata change was refused or failed.
#[derive(Debug, Error)]
pub enum ControllerError {
    /// TOPIC_ALREADY_EXISTS.
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    /// UNKNOWN_TOPIC_ID.
    #[error("topic id {0} does not exist")]
    UnknownTopicId(String),
    /// INVALID_TOPIC_EXCEPTION.
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    /// INVALID_PARTITIONS.
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    /// INVALID_REPLICATION_FACTOR.
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    /// INVALID_REQUEST (a malformed change, e.g. manual assignment with bad shape).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The metadata log could not be written or read: KAFKA_STORAGE_ERROR / UNKNOWN_SERVER_ERROR.
    #[error("metadata log I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The metadata log holds something that is not a record we wrote.
    #[error("metadata log corrupt at byte {position}: {reason}")]
    Corrupt { position: u64, reason: String },
}
