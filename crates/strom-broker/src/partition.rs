//! A partition hosted by this broker: its log plus the state the broker owns
//! (leader epoch, high watermark) and the produce and fetch paths over it.
//!
//! Invariants: `log_start_offset <= high_watermark <= log_end_offset`; with a
//! single replica the high watermark reaches the log end offset once an append
//! is durable by the topic's flush policy, and only then is `acks=all` answered.

use std::future::Future;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::{Bytes, BytesMut};
use strom_controller::TopicId;
use strom_protocol::records::{
    decode_batch, validate_for_append, BatchHeader, BatchIter, Compression, Record,
    RecordBatchBuilder, RecordError, TimestampType,
};
use strom_protocol::ErrorCode;
use strom_storage::{AppendError, AppendOrigin, LogSlice, PartitionLog, ReadError};

use crate::config::TopicConfig;

/// A produce or fetch failure with its Kafka error code.
#[derive(Debug, Clone)]
pub struct PartitionError {
    pub code: ErrorCode,
    pub message: String,
}

impl PartitionError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        PartitionError {
            code,
            message: message.into(),
        }
    }
}

/// What a produce request learns from a successful append.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// Records written to the log by [`Partition::append_unacknowledged`],
/// waiting for [`Partition::acknowledge`].
#[derive(Debug)]
#[must_use = "an append is answered only once acknowledged"]
pub struct PendingAppend {
    appended: Appended,
    /// Fsync through this offset first (`flush.messages` reached).
    flush_to: Option<i64>,
    /// The log end offset after the append: the high watermark moves here.
    log_end_offset: i64,
}

impl PendingAppend {
    /// Whether [`Partition::acknowledge`] will fsync first (`flush.messages` reached).
    pub fn needs_flush(&self) -> bool {
        self.flush_to.is_some()
    }
}

/// What a fetch reads from one partition.
#[derive(Debug, Clone)]
pub struct FetchRead {
    /// Whole batches, usually a range of a segment file sent with `sendfile`.
    pub records: LogSlice,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// read_committed only: `(producer_id, first_offset)` of every aborted
    /// transaction overlapping the records returned.
    pub aborted_transactions: Vec<(i64, i64)>,
}

/// One hosted partition.
pub struct Partition {
    pub topic: String,
    pub topic_id: TopicId,
    pub index: i32,
    /// The log; one writer at a time (appends take the write lock).
    log: RwLock<PartitionLog>,
    /// Epoch of the current leadership, stamped on every appended batch.
    leader_epoch: AtomicI32,
    /// Offsets below this are visible to consumers.
    high_watermark: AtomicI64,
    /// Effective topic configs; replaced when configs change.
    config: RwLock<Arc<TopicConfig>>,
    /// Serializes full flushes; callers that queue behind a running one
    /// usually find their offset covered by it.
    flush_lock: tokio::sync::Mutex<()>,
    /// The broker's records-sync rounds (`flush.messages`), shared by every
    /// partition it hosts.
    rounds: Arc<SyncRounds>,
    /// Log end offset covered by the last completed fsync.
    flushed_offset: AtomicI64,
    /// The last records sync that failed: its round and error.
    sync_failure: std::sync::Mutex<Option<(u64, PartitionError)>>,
}

/// Group commit for `flush.messages`, across the partitions of one broker.
///
/// Records syncs run in rounds, one round at a time: a round fdatasyncs, in
/// parallel, every partition that asked for a sync before it began, and
/// partitions that ask while it runs wait for the next one, which starts as
/// soon as it ends. A round lasts about as long as its slowest sync, so each
/// partition's sync covers a round's worth of appends (fewer, larger syncs
/// than one per partition as soon as its previous sync returns), and the
/// partitions of one produce request become durable in the same round instead
/// of one after another. Rounds run as tasks of their own: a waiter that goes
/// away cannot leave files taken for syncing but unsynced.
pub struct SyncRounds {
    state: std::sync::Mutex<RoundState>,
    /// Number of the last finished round (rounds are numbered from 1).
    finished: tokio::sync::watch::Sender<u64>,
}

struct RoundState {
    /// Partitions that asked for a sync no round has taken yet.
    waiting: Vec<Arc<Partition>>,
    /// Number of the next round to start.
    next: u64,
    /// Whether a round is running.
    running: bool,
}

impl Default for SyncRounds {
    fn default() -> Self {
        SyncRounds {
            state: std::sync::Mutex::new(RoundState {
                waiting: Vec::new(),
                next: 1,
                running: false,
            }),
            finished: tokio::sync::watch::channel(0).0,
        }
    }
}

impl SyncRounds {
    /// Asks for `partition`'s appends so far to be synced; returns the
    /// number of the round that syncs them. Nothing starts before
    /// [`SyncRounds::finished`] is awaited, so that the partitions of one
    /// request, which all ask before any waits, join the same round.
    fn ask(&self, partition: &Arc<Partition>) -> u64 {
        let mut state = self.state.lock().expect("sync rounds lock");
        if !state.waiting.iter().any(|p| Arc::ptr_eq(p, partition)) {
            state.waiting.push(partition.clone());
        }
        state.next
    }

    /// Runs rounds while partitions are waiting.
    async fn run(self: Arc<Self>) {
        loop {
            let (round, members) = {
                let mut state = self.state.lock().expect("sync rounds lock");
                if state.waiting.is_empty() {
                    state.running = false;
                    return;
                }
                let round = state.next;
                state.next += 1;
                (round, std::mem::take(&mut state.waiting))
            };
            let started: Vec<RoundSync> = members.iter().map(|p| p.start_records_sync()).collect();
            for (partition, sync) in members.iter().zip(started) {
                if let Err(e) = partition.finish_records_sync(sync).await {
                    *partition.sync_failure.lock().expect("sync failure lock") = Some((round, e));
                }
            }
            self.finished.send_replace(round);
        }
    }

    /// Waits until round `round` has finished, starting rounds if none is
    /// running.
    async fn finished(self: &Arc<Self>, round: u64) {
        {
            let mut state = self.state.lock().expect("sync rounds lock");
            if !state.running && !state.waiting.is_empty() {
                state.running = true;
                tokio::spawn(self.clone().run());
            }
        }
        let mut finished = self.finished.subscribe();
        // The sender lives as long as `self`.
        let _ = finished.wait_for(|done| *done >= round).await;
    }

    /// Rounds run so far.
    pub fn count(&self) -> u64 {
        *self.finished.borrow()
    }
}

/// One partition's part of a sync round.
enum RoundSync {
    /// The fdatasync running on the blocking pool, and the log end offset it covers.
    Running(
        tokio::task::JoinHandle<Result<(), strom_storage::StorageError>>,
        i64,
    ),
    /// Already over (the log could not hand out its files, or failed).
    Done(Result<(), PartitionError>),
}

fn append_error(e: AppendError) -> PartitionError {
    match e {
        AppendError::Corrupt(r) => record_error(r),
        e @ AppendError::RecordBatchTooLarge { .. } => {
            PartitionError::new(ErrorCode::RecordListTooLarge, e.to_string())
        }
        AppendError::InvalidRecord(m) => PartitionError::new(ErrorCode::InvalidRecord, m),
        e @ AppendError::OutOfOrderSequence { .. } => {
            PartitionError::new(ErrorCode::OutOfOrderSequenceNumber, e.to_string())
        }
        e @ AppendError::InvalidProducerEpoch { .. } => {
            PartitionError::new(ErrorCode::InvalidProducerEpoch, e.to_string())
        }
        e @ AppendError::DuplicateSequence { .. } => {
            PartitionError::new(ErrorCode::DuplicateSequenceNumber, e.to_string())
        }
        e @ AppendError::TransactionCoordinatorFenced { .. } => {
            PartitionError::new(ErrorCode::TransactionCoordinatorFenced, e.to_string())
        }
        AppendError::InvalidTxnState(m) => PartitionError::new(ErrorCode::InvalidTxnState, m),
        AppendError::Io(e) => PartitionError::new(ErrorCode::KafkaStorageError, e.to_string()),
        #[allow(unreachable_patterns)]
        other => PartitionError::new(ErrorCode::UnknownServerError, other.to_string()),
    }
}

fn storage_error(e: strom_storage::StorageError) -> PartitionError {
    PartitionError::new(ErrorCode::KafkaStorageError, e.to_string())
}

/// Kafka's code for a rejected batch is decided by the protocol crate, once.
fn record_error(e: RecordError) -> PartitionError {
    PartitionError::new(e.error_code(), e.to_string())
}

impl Partition {
    /// Wraps an opened log.
    pub fn new(
        topic: String,
        topic_id: TopicId,
        index: i32,
        log: PartitionLog,
        leader_epoch: i32,
        config: Arc<TopicConfig>,
        rounds: Arc<SyncRounds>,
    ) -> Self {
        let leo = log.log_end_offset();
        Partition {
            topic,
            topic_id,
            index,
            log: RwLock::new(log),
            leader_epoch: AtomicI32::new(leader_epoch),
            // Everything recovered from disk is committed: one replica, and
            // recovery kept only whole, CRC-valid batches.
            high_watermark: AtomicI64::new(leo),
            config: RwLock::new(config),
            flush_lock: tokio::sync::Mutex::new(()),
            rounds,
            flushed_offset: AtomicI64::new(leo),
            sync_failure: std::sync::Mutex::new(None),
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }
    pub fn set_leader_epoch(&self, epoch: i32) {
        self.leader_epoch.store(epoch, Ordering::Release);
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }
    /// Last stable offset: below it every transaction is decided, so
    /// read_committed consumers read up to here. The smaller of the high
    /// watermark and the first offset of the oldest open transaction.
    pub fn last_stable_offset(&self) -> i64 {
        let high_watermark = self.high_watermark();
        let log = self.log.read().expect("log lock");
        stable_bound(high_watermark, &log)
    }
    pub fn config(&self) -> Arc<TopicConfig> {
        self.config.read().expect("config lock").clone()
    }
    pub fn set_config(&self, config: Arc<TopicConfig>, log_config: strom_storage::LogConfig) {
        *self.config.write().expect("config lock") = config;
        if let Err(e) = self.log.write().expect("log lock").set_config(log_config) {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "invalid log config ignored");
        }
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log.read().expect("log lock").log_start_offset()
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log.read().expect("log lock").log_end_offset()
    }
    /// Runs `f` with shared access to the log (ListOffsets, OffsetForLeaderEpoch).
    pub fn with_log<T>(&self, f: impl FnOnce(&PartitionLog) -> T) -> T {
        f(&self.log.read().expect("log lock"))
    }
    /// Runs `f` with exclusive access to the log (retention, DeleteRecords, close).
    pub fn with_log_mut<T>(&self, f: impl FnOnce(&mut PartitionLog) -> T) -> T {
        f(&mut self.log.write().expect("log lock"))
    }

    /// Checks a produce request's records for this partition without
    /// decompressing: exactly one v2 batch (Kafka's rule since Produce v3),
    /// valid CRC, within `max.message.bytes`, timestamps within bounds.
    fn validate(
        &self,
        records: &[u8],
        config: &TopicConfig,
        now_ms: i64,
    ) -> Result<(), PartitionError> {
        let mut batches = BatchIter::new(records);
        let (header, range) = match batches.next() {
            Some(Ok(b)) => b,
            Some(Err(e)) => return Err(record_error(e)),
            None => {
                return Err(PartitionError::new(
                    ErrorCode::InvalidRecord,
                    "produce request has no record batch",
                ))
            }
        };
        if batches.next().is_some() {
            return Err(PartitionError::new(
                ErrorCode::InvalidRecord,
                "produce requests carry exactly one record batch per partition",
            ));
        }
        if range.len() > config.max_message_bytes() {
            return Err(PartitionError::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "record batch of {} bytes exceeds max.message.bytes {}",
                    range.len(),
                    config.max_message_bytes()
                ),
            ));
        }
        validate_for_append(&records[range]).map_err(record_error)?;
        if header.timestamp_type() == TimestampType::CreateTime && !config.log_append_time() {
            let before = config.timestamp_before_max_ms();
            let after = config.timestamp_after_max_ms();
            for ts in [header.base_timestamp, header.max_timestamp] {
                if ts >= 0
                    && (now_ms.saturating_sub(ts) > before || ts.saturating_sub(now_ms) > after)
                {
                    return Err(PartitionError::new(
                        ErrorCode::InvalidTimestamp,
                        format!("timestamp {ts} is out of range of the broker's time {now_ms}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Appends one produce request's records. Returns once the append is
    /// durable by the topic's flush policy and the high watermark covers it.
    pub async fn append(
        self: &Arc<Self>,
        records: &Bytes,
        now_ms: i64,
    ) -> Result<Appended, PartitionError> {
        let pending = self.append_unacknowledged(records, now_ms)?;
        self.acknowledge(pending).await
    }

    /// The first half of [`Partition::append`]: validates and writes the
    /// records to the log. They are not visible to consumers, nor answered,
    /// before [`Partition::acknowledge`]; a produce request writes all its
    /// partitions first and then acknowledges them together, so their fsyncs
    /// (`flush.messages`) run in parallel.
    pub fn append_unacknowledged(
        &self,
        records: &Bytes,
        now_ms: i64,
    ) -> Result<PendingAppend, PartitionError> {
        let config = self.config();
        self.validate(records, &config, now_ms)?;
        self.write(records, &config, now_ms, AppendOrigin::Client)
    }

    /// Appends a batch a coordinator of this broker built (transactional
    /// offset commits, transaction markers): control batches are allowed and
    /// producer sequences are not checked, the producer epoch is. Returns
    /// like [`Partition::append`].
    pub async fn append_from_coordinator(
        self: &Arc<Self>,
        records: &Bytes,
        now_ms: i64,
    ) -> Result<Appended, PartitionError> {
        let config = self.config();
        let pending = self.write(records, &config, now_ms, AppendOrigin::Coordinator)?;
        self.acknowledge(pending).await
    }

    fn write(
        &self,
        records: &Bytes,
        config: &TopicConfig,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<PendingAppend, PartitionError> {
        // Coordinator batches (markers, offset commits) keep their encoding:
        // re-encoding would drop the control flag.
        let codec = match origin {
            AppendOrigin::Client => target_compression(config),
            AppendOrigin::Coordinator => None,
        };
        let mut batch = match codec {
            Some(codec)
                if BatchHeader::parse(records)
                    .map_err(record_error)?
                    .compression()
                    .map_err(record_error)?
                    != codec =>
            {
                recompress(records, codec, config.max_message_bytes())?
            }
            _ => BytesMut::from(&records[..]),
        };
        let append_time = config.log_append_time().then_some(now_ms);
        let mut log = self.log.write().expect("log lock");
        let info = log
            .append_with_origin(&mut batch, self.leader_epoch(), append_time, now_ms, origin)
            .map_err(append_error)?;
        let flush_to = (!info.duplicate && log.unflushed_messages() >= config.flush_messages())
            .then_some(info.last_offset);
        Ok(PendingAppend {
            appended: Appended {
                base_offset: info.first_offset,
                log_append_time_ms: info.log_append_time_ms,
                log_start_offset: log.log_start_offset(),
            },
            flush_to,
            log_end_offset: log.log_end_offset(),
        })
    }

    /// The second half of [`Partition::append`]: makes the append durable if
    /// the topic's flush policy asks for it, then moves the high watermark
    /// over it (with one replica, that is when `acks=all` is satisfied).
    ///
    /// The sync is asked for when this is called, not when the future is
    /// first polled, so that a request's partitions, acknowledged together,
    /// join the same sync round.
    pub fn acknowledge(
        self: &Arc<Self>,
        pending: PendingAppend,
    ) -> impl Future<Output = Result<Appended, PartitionError>> + Send + 'static {
        let sync = pending
            .flush_to
            .and_then(|offset| Some((offset, self.ask_for_sync(offset)?)));
        let partition = self.clone();
        async move {
            if let Some((offset, round)) = sync {
                partition.records_synced(offset, round).await?;
            }
            partition.advance_high_watermark(pending.log_end_offset);
            Ok(pending.appended)
        }
    }

    fn advance_high_watermark(&self, to: i64) {
        self.high_watermark.fetch_max(to, Ordering::AcqRel);
    }

    /// Asks the broker's next sync round ([`SyncRounds`]) to make every
    /// record up to `offset` durable for `flush.messages`, unless a finished
    /// one did; returns the round. The files are synced without the log's
    /// lock, so producers keep appending meanwhile. Indexes and the recovery
    /// point wait for the next full flush ([`Partition::flush_through`]).
    fn ask_for_sync(self: &Arc<Self>, offset: i64) -> Option<u64> {
        (self.flushed_offset.load(Ordering::Acquire) <= offset).then(|| self.rounds.ask(self))
    }

    /// Waits for round `round`, asked for when the records up to `offset`
    /// were already appended, and says whether it made them durable.
    async fn records_synced(
        self: &Arc<Self>,
        offset: i64,
        mut round: u64,
    ) -> Result<(), PartitionError> {
        loop {
            self.rounds.finished(round).await;
            if self.flushed_offset.load(Ordering::Acquire) > offset {
                return Ok(());
            }
            if let Some((failed, e)) = &*self.sync_failure.lock().expect("sync failure lock") {
                if *failed >= round {
                    return Err(e.clone());
                }
            }
            // Not reached: the round took this partition after the append.
            round = self.rounds.ask(self);
        }
    }

    /// Takes what a records sync must fdatasync and starts it on the
    /// blocking pool.
    fn start_records_sync(&self) -> RoundSync {
        let taken = self
            .log
            .write()
            .expect("log lock")
            .take_records_sync(crate::state::now_ms());
        match taken {
            Err(e) => RoundSync::Done(Err(storage_error(e))),
            // The files cannot be shared (fault injection): a full flush.
            Ok(None) => RoundSync::Done(self.flush_locked()),
            Ok(Some(sync)) => {
                let covered = sync.log_end_offset;
                RoundSync::Running(tokio::task::spawn_blocking(move || sync.run()), covered)
            }
        }
    }

    async fn finish_records_sync(&self, sync: RoundSync) -> Result<(), PartitionError> {
        let (running, covered) = match sync {
            RoundSync::Done(result) => return result,
            RoundSync::Running(running, covered) => (running, covered),
        };
        let synced = running
            .await
            .map_err(|e| PartitionError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        if let Err(e) = synced {
            let e = self.log.write().expect("log lock").records_sync_failed(e);
            return Err(storage_error(e));
        }
        self.flushed_offset.fetch_max(covered, Ordering::AcqRel);
        Ok(())
    }

    /// Makes everything up to `offset` durable with a full flush (records,
    /// indexes, recovery point), sharing it among concurrent callers.
    pub async fn flush_through(&self, offset: i64) -> Result<(), PartitionError> {
        if self.flushed_offset.load(Ordering::Acquire) > offset {
            return Ok(());
        }
        let _turn = self.flush_lock.lock().await;
        if self.flushed_offset.load(Ordering::Acquire) > offset {
            return Ok(());
        }
        self.flush_locked()
    }

    /// A full flush; callers that share it among themselves hold `flush_lock`.
    fn flush_locked(&self) -> Result<(), PartitionError> {
        let covered = tokio::task::block_in_place(|| {
            let mut log = self.log.write().expect("log lock");
            let leo = log.log_end_offset();
            log.flush(crate::state::now_ms()).map(|_| leo)
        })
        .map_err(storage_error)?;
        self.flushed_offset.fetch_max(covered, Ordering::AcqRel);
        Ok(())
    }

    /// Reads committed data from `fetch_offset`. `upper_bound` is the high
    /// watermark (read_uncommitted) or the last stable offset (read_committed).
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        read_committed: bool,
        min_one_batch: bool,
    ) -> Result<FetchRead, PartitionError> {
        let high_watermark = self.high_watermark();
        let log = self.log.read().expect("log lock");
        let last_stable_offset = stable_bound(high_watermark, &log);
        let upper_bound = if read_committed {
            last_stable_offset
        } else {
            high_watermark
        };
        let log_start_offset = log.log_start_offset();
        let (records, aborted_transactions) =
            match log.read_slice(fetch_offset, max_bytes, upper_bound, min_one_batch) {
                Ok(r) => {
                    // The aborted transactions a read_committed consumer needs to
                    // filter what it was given (Kafka bounds them by the offset
                    // after the last batch returned).
                    let aborted = if read_committed && r.next_offset > fetch_offset {
                        log.aborted_transactions(fetch_offset, r.next_offset)
                            .into_iter()
                            .map(|a| (a.producer_id, a.first_offset))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    (r.records, aborted)
                }
                Err(ReadError::OffsetOutOfRange { .. }) => {
                    return Err(PartitionError::new(
                        ErrorCode::OffsetOutOfRange,
                        format!(
                            "fetch offset {fetch_offset} is outside [{log_start_offset}, {}]",
                            log.log_end_offset()
                        ),
                    ))
                }
                Err(e) => {
                    return Err(PartitionError::new(
                        ErrorCode::KafkaStorageError,
                        e.to_string(),
                    ))
                }
            };
        Ok(FetchRead {
            records,
            high_watermark,
            last_stable_offset,
            log_start_offset,
            aborted_transactions,
        })
    }

    /// Reads every committed batch from the log start, decoded, in log order
    /// (a coordinator loading its state at start-up). A batch whose records
    /// decode to more than `max_batch_bytes` fails the replay.
    pub fn replay(
        &self,
        max_batch_bytes: usize,
        mut f: impl FnMut(BatchHeader, Vec<Record>),
    ) -> Result<(), String> {
        let mut next = self.log_start_offset();
        let high_watermark = self.high_watermark();
        while next < high_watermark {
            let read = self
                .read(next, 16 << 20, false, true)
                .map_err(|e| e.message)?;
            if read.records.is_empty() {
                break;
            }
            let records = read.records.into_bytes().map_err(|e| e.to_string())?;
            for item in BatchIter::new(&records) {
                let (header, range) = item.map_err(|e| e.to_string())?;
                next = header.last_offset() + 1;
                let batch = records.slice(range);
                let (header, records) =
                    decode_batch(&batch, max_batch_bytes).map_err(|e| e.to_string())?;
                f(header, records);
            }
        }
        Ok(())
    }

    /// Checks a client's `current_leader_epoch` (KIP-320): -1 means "don't check".
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), ErrorCode> {
        let epoch = self.leader_epoch();
        if current_leader_epoch < 0 || current_leader_epoch == epoch {
            Ok(())
        } else if current_leader_epoch < epoch {
            Err(ErrorCode::FencedLeaderEpoch)
        } else {
            Err(ErrorCode::UnknownLeaderEpoch)
        }
    }
}

/// The last stable offset given the high watermark: no further than the
/// first offset of the oldest open transaction.
fn stable_bound(high_watermark: i64, log: &PartitionLog) -> i64 {
    log.first_unstable_offset()
        .map_or(high_watermark, |first| first.min(high_watermark))
}

/// The codec a topic's `compression.type` demands, or `None` for `producer`
/// (keep the producer's bytes as they are).
fn target_compression(config: &TopicConfig) -> Option<Compression> {
    match config.compression_type() {
        "uncompressed" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// Re-encodes a producer's batch with the topic's codec: the one case where
/// the broker decompresses on the produce path, because the topic config asks
/// for it. Producer id, epoch, sequence, transactional flag and every record's
/// timestamp, key, value and headers are kept.
fn recompress(
    records: &Bytes,
    codec: Compression,
    max_bytes: usize,
) -> Result<BytesMut, PartitionError> {
    // The decompressed size is bounded like everything else a client sends.
    let cap = max_bytes.saturating_mul(64).max(1 << 20);
    let (header, decoded) = decode_batch(records, cap).map_err(record_error)?;
    let mut builder = RecordBatchBuilder::new(codec)
        .producer(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
        )
        .transactional(header.is_transactional());
    for record in decoded {
        let timestamp = record.timestamp(&header);
        builder.push(timestamp, record.key, record.value, record.headers);
    }
    let batch = builder.build().map_err(record_error)?;
    if batch.len() > max_bytes {
        return Err(PartitionError::new(
            ErrorCode::MessageTooLarge,
            format!("record batch of {} bytes after recompression exceeds max.message.bytes {max_bytes}", batch.len()),
        ));
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use strom_protocol::records::{Compression, RecordBatchBuilder};

    use super::*;
    use crate::group::tests::Node;

    fn batch(value: &str) -> Bytes {
        let mut builder = RecordBatchBuilder::new(Compression::None);
        builder.push(
            crate::state::now_ms(),
            None,
            Some(Bytes::copy_from_slice(value.as_bytes())),
            Vec::new(),
        );
        builder.build().expect("batch").freeze()
    }

    fn fsync_topic(node: &Node, name: &str, partitions: i32) -> Vec<Arc<Partition>> {
        let configs = BTreeMap::from([("flush.messages".to_owned(), "1".to_owned())]);
        crate::admin::create_topic(&node.state, name, partitions, 1, configs, false)
            .expect("create topic");
        (0..partitions)
            .map(|i| node.state.replicas.get(name, i).expect("partition"))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn partitions_acknowledged_together_are_synced_in_one_round() {
        let node = Node::start(1);
        let partitions = fsync_topic(&node, "durable", 3);
        let rounds = &node.state.replicas.sync_rounds();
        let before = rounds.count();
        let now = crate::state::now_ms();
        let pending: Vec<_> = partitions
            .iter()
            .map(|p| {
                let pending = p.append_unacknowledged(&batch("v"), now).expect("append");
                assert!(pending.needs_flush(), "flush.messages=1 syncs every append");
                p.acknowledge(pending)
            })
            .collect();
        for (p, acknowledged) in partitions.iter().zip(pending) {
            let appended = acknowledged.await.expect("acknowledged");
            assert_eq!(appended.base_offset, 0);
            assert_eq!(p.high_watermark(), 1);
            assert_eq!(p.flushed_offset.load(Ordering::Acquire), 1);
        }
        assert_eq!(
            rounds.count() - before,
            1,
            "one round for the three partitions"
        );

        // Appends already covered by a finished round ask for none.
        assert_eq!(partitions[0].ask_for_sync(0), None);
        assert_eq!(rounds.count() - before, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_rounds_and_every_one_becomes_durable() {
        let node = Node::start(1);
        let partitions = fsync_topic(&node, "busy", 4);
        let rounds = node.state.replicas.sync_rounds();
        let before = rounds.count();
        let mut tasks = Vec::new();
        for producer in 0..8 {
            let partitions = partitions.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    let p = &partitions[(producer + i) % partitions.len()];
                    let value = format!("{producer}-{i}");
                    p.append(&batch(&value), crate::state::now_ms())
                        .await
                        .expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("producer");
        }
        let total: i64 = partitions.iter().map(|p| p.high_watermark()).sum();
        assert_eq!(total, 200);
        for p in &partitions {
            assert_eq!(p.flushed_offset.load(Ordering::Acquire), p.log_end_offset());
        }
        let run = rounds.count() - before;
        // Eight producers waiting at once share rounds.
        assert!((1..200).contains(&run), "{run} rounds for 200 appends");
    }
}
