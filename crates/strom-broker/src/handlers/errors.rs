//! Mapping of internal errors to Kafka error codes, in one place.

use strom_controller::ControllerError;
use strom_protocol::ErrorCode;

/// The Kafka error code and message for a controller error.
pub fn controller_error_code(e: &ControllerError) -> ErrorCode {
    match e {
        ControllerError::TopicAlreadyExists(_) => ErrorCode::TopicAlreadyExists,
        ControllerError::UnknownTopic(_) => ErrorCode::UnknownTopicOrPartition,
        ControllerError::UnknownTopicId(_) => ErrorCode::UnknownTopicId,
        ControllerError::InvalidTopic(_) => ErrorCode::InvalidTopicException,
        ControllerError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
        ControllerError::InvalidReplicationFactor(_) => ErrorCode::InvalidReplicationFactor,
        ControllerError::InvalidRequest(_) => ErrorCode::InvalidRequest,
        ControllerError::Io(_) | ControllerError::Corrupt { .. } => ErrorCode::KafkaStorageError,
    }
}

/// KIP-588: requests older than `fenced_since` predate PRODUCER_FENCED, so
/// those clients are told INVALID_PRODUCER_EPOCH instead (Kafka's mapping).
pub fn fenced_for_version(code: ErrorCode, version: i16, fenced_since: i16) -> ErrorCode {
    if code == ErrorCode::ProducerFenced && version < fenced_since {
        ErrorCode::InvalidProducerEpoch
    } else {
        code
    }
}
