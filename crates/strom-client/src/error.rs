//! The client's error type: one enum for connection, protocol and Kafka errors.

use std::io;

use strom_protocol::ErrorCode;
use thiserror::Error;

/// Everything a client call can fail with.
#[derive(Debug, Error, Clone)]
pub enum ClientError {
    /// No bootstrap server or broker address accepted a TCP connection.
    #[error("broker {addr} is unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The connection closed (by the broker or after an I/O error) before a response arrived.
    #[error("connection to {addr} closed")]
    ConnectionClosed { addr: String },
    /// A response frame was larger than the configured limit; the connection is closed.
    #[error("response frame of {bytes} bytes from {addr} exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        addr: String,
        bytes: usize,
        limit: usize,
    },
    /// The broker does not support any version of an API that this client can speak.
    #[error("broker does not support api key {api_key} in a version this client speaks")]
    UnsupportedVersion { api_key: i16 },
    /// A request could not be encoded (a field set that the negotiated version lacks).
    #[error("cannot encode request: {0}")]
    Encode(String),
    /// A response (or its header) could not be decoded.
    #[error("cannot decode response: {0}")]
    Decode(String),
    /// No response arrived within `request.timeout.ms`.
    #[error("request timed out after {timeout_ms} ms")]
    RequestTimeout { timeout_ms: u64 },
    /// The broker answered with a Kafka error code.
    #[error("kafka error {code} ({name}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        /// The wire error code (see Kafka's protocol guide, "Error Codes").
        code: i16,
        /// Kafka's name for the code, or "UNKNOWN" for a code Kafka has not defined.
        name: &'static str,
        /// The broker's error message, when it sent one.
        message: Option<String>,
    },
    /// Metadata has no usable leader or topic after refreshing.
    #[error("no metadata for {what}")]
    NoMetadata { what: String },
    /// A configuration property is missing or invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Retriable Kafka errors (Java's `RetriableException` subclasses) this client reacts to.
const RETRIABLE: &[ErrorCode] = &[
    ErrorCode::CorruptMessage,
    ErrorCode::UnknownTopicOrPartition,
    ErrorCode::LeaderNotAvailable,
    ErrorCode::NotLeaderOrFollower,
    ErrorCode::RequestTimedOut,
    ErrorCode::NetworkException,
    ErrorCode::NotEnoughReplicas,
    ErrorCode::NotEnoughReplicasAfterAppend,
    ErrorCode::KafkaStorageError,
    ErrorCode::FencedLeaderEpoch,
    ErrorCode::UnknownLeaderEpoch,
    ErrorCode::CoordinatorLoadInProgress,
    ErrorCode::CoordinatorNotAvailable,
    ErrorCode::NotCoordinator,
    ErrorCode::ConcurrentTransactions,
    ErrorCode::ThrottlingQuotaExceeded,
];

/// Errors after which the cached metadata is stale and must be refreshed.
const STALE_METADATA: &[ErrorCode] = &[
    ErrorCode::UnknownTopicOrPartition,
    ErrorCode::LeaderNotAvailable,
    ErrorCode::NotLeaderOrFollower,
    ErrorCode::FencedLeaderEpoch,
    ErrorCode::UnknownLeaderEpoch,
    ErrorCode::KafkaStorageError,
];

impl ClientError {
    /// A Kafka error from a wire code and optional broker message.
    pub fn kafka(code: i16, message: Option<String>) -> ClientError {
        let name = ErrorCode::from_code(code).map_or("UNKNOWN", ErrorCode::name);
        ClientError::Kafka {
            code,
            name,
            message,
        }
    }

    /// Turns a non-zero error code into an error.
    pub fn check(code: i16, message: Option<String>) -> Result<(), ClientError> {
        if code == ErrorCode::None.code() {
            Ok(())
        } else {
            Err(ClientError::kafka(code, message))
        }
    }

    /// The Kafka error code, when this is a Kafka error.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether retrying the same request may succeed (Java's `RetriableException`);
    /// connection-level failures and timeouts are retriable too.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => is_retriable_code(*code),
            ClientError::ConnectionClosed { .. }
            | ClientError::Unreachable { .. }
            | ClientError::RequestTimeout { .. }
            | ClientError::NoMetadata { .. } => true,
            _ => false,
        }
    }

    /// Whether the cached metadata should be refreshed after this error.
    pub fn invalidates_metadata(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => is_stale_metadata_code(*code),
            ClientError::ConnectionClosed { .. }
            | ClientError::Unreachable { .. }
            | ClientError::NoMetadata { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn unreachable(addr: &str, err: &io::Error) -> ClientError {
        ClientError::Unreachable {
            addr: addr.to_string(),
            reason: err.to_string(),
        }
    }
}

/// Whether `code` is a retriable Kafka error.
pub fn is_retriable_code(code: i16) -> bool {
    RETRIABLE.iter().any(|c| c.code() == code)
}

/// Whether `code` means the client's metadata is stale.
pub fn is_stale_metadata_code(code: i16) -> bool {
    STALE_METADATA.iter().any(|c| c.code() == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_are_named_and_classified() {
        let e = ClientError::kafka(6, None);
        assert!(e.to_string().contains("NOT_LEADER_OR_FOLLOWER"));
        assert!(e.is_retriable() && e.invalidates_metadata());
        let e = ClientError::kafka(36, Some("exists".into()));
        assert!(!e.is_retriable());
        assert!(e.to_string().ends_with(": exists"));
        assert!(ClientError::check(0, None).is_ok());
    }
}
