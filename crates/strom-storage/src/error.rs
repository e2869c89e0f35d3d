//! Errors at the crate boundary. The broker maps them to Kafka error codes:
//! [`StorageError`] → `KAFKA_STORAGE_ERROR`, [`ReadError::OffsetOutOfRange`] →
//! `OFFSET_OUT_OF_RANGE`, and each [`AppendError`] variant to the code named on it.

use std::io;
use std::path::PathBuf;

use strom_protocol::records::RecordError;
use thiserror::Error;

/// A failure of the storage layer itself (I/O, bad configuration, a log that
/// stopped accepting writes after an unrecoverable I/O error).
#[derive(Debug, Error)]
pub enum StorageError {
    /// An operating-system I/O error on `path` while doing `op`.
    #[error("I/O error during {op} on {}: {source}", path.display())]
    Io {
        /// What was being done ("append", "fsync", "rename", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An earlier I/O error left the log in a state only a reopen (with
    /// recovery) can repair, e.g. a failed fsync or a torn write that could not be
    /// cut off. Kafka takes the log directory offline in this situation.
    #[error("log {} is offline after an earlier failure: {reason}", dir.display())]
    LogOffline {
        /// The partition directory.
        dir: PathBuf,
        /// The error that took it offline.
        reason: String,
    },
    /// A [`crate::LogConfig`] field outside its valid range.
    #[error("invalid config {name}={value}: {reason}")]
    InvalidConfig {
        /// Kafka's property name.
        name: &'static str,
        /// The rejected value.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// An offset argument outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} outside [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// The current log start offset.
        log_start_offset: i64,
        /// The current log end offset.
        log_end_offset: i64,
    },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Why [`crate::PartitionLog::append`] rejected a produce. Nothing was written
/// and the log end offset is unchanged whenever this is returned.
#[derive(Debug, Error)]
pub enum AppendError {
    /// A batch failed header or CRC32C validation, or the buffer ends in a
    /// partial batch (`CORRUPT_MESSAGE`).
    #[error("corrupt record batch: {0}")]
    Corrupt(#[from] RecordError),
    /// A structurally valid batch that breaks a rule (`INVALID_RECORD`).
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// The request is larger than a whole segment (`RECORD_BATCH_TOO_LARGE`).
    #[error("{batch_bytes} bytes of records exceed segment.bytes={segment_bytes}")]
    RecordBatchTooLarge {
        /// Bytes in the request's records.
        batch_bytes: u64,
        /// The configured `segment.bytes`.
        segment_bytes: u64,
    },
    /// The sequence is not the next one expected (`OUT_OF_ORDER_SEQUENCE_NUMBER`).
    #[error("out of order sequence for producer {producer_id} epoch {producer_epoch}: got {first_sequence}, last appended {last_sequence}")]
    OutOfOrderSequence {
        /// Producer id of the batch.
        producer_id: i64,
        /// Producer epoch of the batch.
        producer_epoch: i16,
        /// First sequence of the batch.
        first_sequence: i32,
        /// Last sequence appended for this producer and epoch (-1 if none).
        last_sequence: i32,
    },
    /// The batch's producer epoch is older than the one seen last
    /// (`INVALID_PRODUCER_EPOCH`, or `PRODUCER_FENCED` for transactional producers).
    #[error(
        "producer {producer_id} epoch {producer_epoch} is older than current epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        /// Producer id of the batch.
        producer_id: i64,
        /// Producer epoch of the batch.
        producer_epoch: i16,
        /// Epoch the log has already seen.
        current_epoch: i16,
    },
    /// The batch's sequences were already appended, but the batch is older than
    /// the five whose offsets are cached, so the original offsets are unknown
    /// (`DUPLICATE_SEQUENCE_NUMBER`; the Java producer treats it as success).
    #[error("duplicate sequence {first_sequence}..{last_sequence} for producer {producer_id} (older than the cached batches)")]
    DuplicateSequence {
        /// Producer id of the batch.
        producer_id: i64,
        /// First sequence of the batch.
        first_sequence: i32,
        /// Last sequence of the batch.
        last_sequence: i32,
    },
    /// A transaction marker from a coordinator epoch older than the last
    /// marker's for this producer: a zombie coordinator
    /// (`TRANSACTION_COORDINATOR_FENCED`).
    #[error("transaction marker for producer {producer_id} from coordinator epoch {coordinator_epoch}, older than {current_coordinator_epoch}")]
    TransactionCoordinatorFenced {
        /// Producer id of the marker.
        producer_id: i64,
        /// Coordinator epoch of the marker.
        coordinator_epoch: i32,
        /// Coordinator epoch of the last marker the log accepted.
        current_coordinator_epoch: i32,
    },
    /// A batch that does not fit the producer's transaction state, such as a
    /// non-transactional batch while its transaction is open
    /// (`INVALID_TXN_STATE`).
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// Writing failed (`KAFKA_STORAGE_ERROR`).
    #[error(transparent)]
    Io(#[from] StorageError),
}

/// Why [`crate::PartitionLog::read`] could not serve a fetch.
#[derive(Debug, Error)]
pub enum ReadError {
    /// `fetch_offset` is below the log start offset or above the log end offset
    /// (`OFFSET_OUT_OF_RANGE`).
    #[error("fetch offset {offset} outside [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// The current log start offset.
        log_start_offset: i64,
        /// The current log end offset.
        log_end_offset: i64,
    },
    /// Reading failed (`KAFKA_STORAGE_ERROR`).
    #[error(transparent)]
    Io(#[from] StorageError),
}
