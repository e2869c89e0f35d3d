//! The partition log of Strom: segments, offset and time indexes, the
//! leader-epoch cache, idempotent and transactional producer state with
//! snapshots, the aborted-transaction index, crash recovery, retention,
//! DeleteRecords and truncation — laid out on disk as Kafka lays out a
//! partition directory:
//!
//! ```text
//! <data>/<topic>-<partition>/
//!   00000000000000000000.log        record batches, byte-for-byte as produced
//!   00000000000000000000.index      sparse offset → position
//!   00000000000000000000.timeindex  sparse timestamp → offset
//!   00000000000000000000.txnindex   aborted transactions whose ABORT marker is in the segment
//!   00000000000000004242.snapshot   producer state as of offset 4242
//!   leader-epoch-checkpoint         epoch → start offset (Kafka's text format)
//!   recovery-point, log-start-offset
//! ```
//!
//! It is synchronous and has one writer per partition ([`PartitionLog`] takes
//! `&mut self` to change anything). The broker decides when to fsync
//! (`flush.messages`, `flush.ms`, group commit) and calls [`PartitionLog::flush`].
//! Segment and index file I/O goes through [`FileSystem`] so tests can inject
//! torn writes, fsync failures and a full disk ([`FaultyFileSystem`]).
//!
//! Leaders append producer batches with [`PartitionLog::append`] (validation,
//! offsets, epochs, idempotence); followers copy the leader's batches with
//! [`PartitionLog::append_as_follower`] and cut divergent tails with
//! [`PartitionLog::truncate_to`] after OffsetForLeaderEpoch
//! ([`PartitionLog::epoch_end_offset`]).
//!
//! Transactions (KIP-98): the transaction coordinator writes COMMIT/ABORT
//! markers through [`PartitionLog::append_with_origin`] with
//! [`AppendOrigin::Coordinator`]. The log tracks open transactions, whose
//! earliest first offset is [`PartitionLog::first_unstable_offset`] (the
//! broker's last stable offset is the smaller of it and the high watermark),
//! and indexes aborted ones for read_committed fetches
//! ([`PartitionLog::aborted_transactions`]).
//!
//! Compacted logs (`cleanup.policy=compact`) are cleaned by
//! [`PartitionLog::clean`]: the latest record per key survives, tombstones
//! until their delete horizon (KIP-534), offsets never change, and segments
//! are swapped in crash-safely. [`PartitionLog::cleanable`] tells a broker
//! cleaner thread which log is dirtiest.
//!
//! Not here: networking, groups, the transaction coordinator, high watermark,
//! last stable offset and ISR bookkeeping (the broker's), record
//! decoding/compression (`strom-protocol`).
//!
//! ```no_run
//! use strom_storage::{LogConfig, PartitionLog};
//! # fn produce_request_records() -> Vec<u8> { Vec::new() }
//! let dir = std::path::Path::new("/var/lib/strom/orders-0");
//! let mut log = PartitionLog::open(dir, LogConfig::default(), true, 1_700_000_000_000)?;
//! let mut records = produce_request_records(); // one or more v2 batches
//! let info = log.append(&mut records, 0, None, 1_700_000_000_000)?;
//! log.flush(1_700_000_000_000)?;
//! let fetched = log.read(info.first_offset, 1 << 20, log.log_end_offset(), true)?;
//! assert!(!fetched.records.is_empty());
//! log.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod append;
mod checkpoint;
mod cleaner;
mod config;
mod epoch_cache;
mod error;
mod fault;
mod index;
mod io;
mod log;
mod lookup;
mod producer_state;
mod recovery;
mod retention;
mod segment;
mod slice;
mod snapshot;
mod time_index;
mod txn;
mod txn_index;

pub use append::{AppendOrigin, COMPACTED_APPEND_MAX_UNCOMPRESSED_BYTES};
#[doc(hidden)]
pub use cleaner::SwapStep;
pub use cleaner::{
    CleanOutcome, CleanableInfo, CleanerConfig, DEFAULT_DEDUPE_BUFFER_BYTES,
    DEFAULT_MAX_BATCH_UNCOMPRESSED_BYTES, ENTRY_OVERHEAD_BYTES,
};
pub use config::LogConfig;
pub use error::{AppendError, ReadError, StorageError};
pub use fault::FaultyFileSystem;
pub use io::{FileSystem, IndexFile, SegmentFile, StdFile, StdFileSystem};
pub use log::{AppendInfo, PartitionLog, ReadResult, RecordsSync};
pub use producer_state::{BatchMetadata, ProducerStateEntry, MAX_CACHED_BATCHES};
pub use retention::RetentionOutcome;
pub use slice::{FileRange, LogSlice};
pub use txn_index::{AbortedTxn, ABORTED_TXN_ENTRY_BYTES};

#[cfg(test)]
#[path = "../tests/common/batch.rs"]
pub(crate) mod test_batch;
