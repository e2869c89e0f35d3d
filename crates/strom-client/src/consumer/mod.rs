//! The consumer, shaped like Java's `KafkaConsumer`: `subscribe` to topics as
//! a member of `group.id` (classic or KIP-848 protocol, with a
//! [`ConsumerRebalanceListener`]) or `assign` partitions by hand; `poll` for
//! records; `seek` / `seek_to_beginning` / `seek_to_end` / `offsets_for_times`;
//! `pause` / `resume`; offsets committed automatically
//! (`enable.auto.commit`), with `commit_sync` or with `commit_async`, and read
//! back with `committed`.
//!
//! Like Java's, the consumer is used from one task (`&mut self`). Fetch
//! answers arrive through a channel from spawned waiters, so a fetch keeps
//! running between polls (see `fetcher.rs`); group membership and heartbeats
//! run in their own task (see `group/`); commits are queued to a committer
//! task (see `committer.rs`).
//!
//! Not yet here: fetch sessions (KIP-227), cooperative rebalancing in the
//! classic protocol (the consumer protocol revokes incrementally).

mod assignor;
mod committer;
mod config;
mod fetcher;
mod group;
mod group_metadata;
pub(crate) mod offsets;
mod records;
mod subscription;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strom_protocol::records::{Header, TimestampType};
use thiserror::Error;
use tokio::time::Instant;
use tracing::debug;

pub use assignor::Assignor;
pub use committer::CommitCallback;
pub use config::{AutoOffsetReset, ConsumerConfig, GroupProtocol, IsolationLevel};
pub use group_metadata::ConsumerGroupMetadata;
pub use records::MAX_DECOMPRESSED_BATCH_BYTES;

use crate::cluster::Cluster;
use crate::connection::{ConnectionConfig, DEFAULT_MAX_RESPONSE_BYTES};
use crate::error::ClientError;
use committer::Committer;
use fetcher::Fetcher;
use group::{GroupEvent, GroupHandle};
use subscription::{FetchState, ResetTo, SubscriptionState};

/// Told when the group moves partitions to or from this consumer (Java's
/// `ConsumerRebalanceListener`). The calls happen inside [`Consumer::poll`]
/// (and [`Consumer::close`]), on the consumer's task.
pub trait ConsumerRebalanceListener: Send {
    /// Before partitions are taken away, after their positions were committed
    /// when `enable.auto.commit` is on. A listener that commits offsets itself
    /// should record them here and commit after `poll` returns.
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }
    /// After partitions were given to this consumer (possibly none).
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }
    /// When partitions were lost without a chance to commit (the member was
    /// fenced or timed out): they may already belong to another member.
    /// Defaults to [`on_partitions_revoked`](Self::on_partitions_revoked), as in Java.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions);
    }
}

/// Why a consumer call failed.
#[derive(Debug, Error, Clone)]
pub enum ConsumerError {
    /// A connection, protocol or Kafka error (after retries, when retriable).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The call names a partition that is not assigned to this consumer.
    #[error("partition {topic}-{partition} is not assigned to this consumer")]
    NotAssigned { topic: String, partition: i32 },
    /// Committing or reading committed offsets needs `group.id`.
    #[error("group.id is required to commit or read committed offsets")]
    NoGroupId,
    /// No committed offset and `auto.offset.reset=none` (Java's `NoOffsetForPartitionException`).
    #[error("no committed offset for {topic}-{partition} and auto.offset.reset is none")]
    NoOffsetForPartition { topic: String, partition: i32 },
    /// The position is outside the log and `auto.offset.reset=none`.
    #[error(
        "offset {offset} is out of range for {topic}-{partition} and auto.offset.reset is none"
    )]
    OffsetOutOfRange {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// A fetched batch failed its CRC or could not be decoded.
    #[error("corrupt record batch at {topic}-{partition}@{offset}: {reason}")]
    CorruptRecord {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    /// A blocking call did not finish within `default.api.timeout.ms`.
    #[error("{operation} did not complete within the timeout")]
    Timeout { operation: &'static str },
    /// The consumer was closed while the call waited.
    #[error("the consumer is closed")]
    Closed,
}

/// A topic and partition index (Java's `TopicPartition`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A record as `poll` returns it (Java's `ConsumerRecord`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Create time, or the broker's append time under LogAppendTime.
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// The leader epoch of the batch's leader, when the broker recorded one.
    pub leader_epoch: Option<i32>,
}

/// An offset to commit, or a committed one (Java's `OffsetAndMetadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The offset of the next record to consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record, when known (KIP-320).
    pub leader_epoch: Option<i32>,
    /// Free-form metadata stored with the offset.
    pub metadata: String,
}

impl OffsetAndMetadata {
    pub fn new(offset: i64) -> OffsetAndMetadata {
        OffsetAndMetadata {
            offset,
            leader_epoch: None,
            metadata: String::new(),
        }
    }
}

/// The answer of [`Consumer::offsets_for_times`] for one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// The earliest offset whose timestamp is at least the one asked for.
    pub offset: i64,
    /// That record's timestamp.
    pub timestamp: i64,
    pub leader_epoch: Option<i32>,
}

/// The consumer. Methods take `&mut self`: one task drives it, as in Java.
pub struct Consumer {
    config: ConsumerConfig,
    cluster: Arc<Cluster>,
    subs: SubscriptionState,
    fetcher: Fetcher,
    /// Present when `group.id` is set.
    committer: Option<Committer>,
    /// Present while subscribed to topics as a group member.
    group: Option<GroupHandle>,
    /// In a mutex only so the consumer is `Sync` (its futures `Send`); never locked.
    listener: Option<std::sync::Mutex<Box<dyn ConsumerRebalanceListener>>>,
    /// When `poll` next commits positions (auto-commit).
    next_auto_commit: Instant,
    /// When metadata was last refreshed, to space refreshes by `retry.backoff.ms`.
    last_refresh: Option<Instant>,
}

impl Consumer {
    /// Validates `config` and bootstraps metadata.
    pub async fn new(config: ConsumerConfig) -> Result<Consumer, ClientError> {
        config.validate()?;
        let conn_config = ConnectionConfig {
            client_id: config.client_id.clone(),
            request_timeout: config.request_timeout + config.fetch_max_wait,
            // A fetch answer may carry fetch.max.bytes plus framing.
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES
                .max(config.fetch_max_bytes as usize + (1 << 20)),
            ..ConnectionConfig::default()
        };
        let cluster = Cluster::connect(&config.bootstrap_servers, conn_config).await?;
        cluster.set_allow_auto_topic_creation(config.allow_auto_create_topics);
        let committer = config
            .group_id
            .clone()
            .map(|g| Committer::start(cluster.clone(), config.clone(), g));
        Ok(Consumer {
            committer,
            group: None,
            listener: None,
            next_auto_commit: Instant::now() + config.auto_commit_interval,
            config,
            cluster,
            subs: SubscriptionState::default(),
            fetcher: Fetcher::new(),
            last_refresh: None,
        })
    }

    /// Assigns exactly `partitions` (replacing the previous assignment).
    /// Partitions kept keep their positions; new ones start from the committed
    /// offset, or `auto.offset.reset` without one.
    ///
    /// # Panics
    /// When the consumer is subscribed to topics (Java throws
    /// `IllegalStateException`): call [`unsubscribe`](Self::unsubscribe) first.
    pub fn assign(&mut self, partitions: Vec<TopicPartition>) {
        assert!(
            self.group.is_none(),
            "assign() on a consumer subscribed to topics; unsubscribe() first"
        );
        self.subs.assign(partitions);
        self.fetcher.retain_assigned(&self.subs);
    }

    /// Subscribes to `topics` as a member of `group.id`; partitions arrive
    /// through the group's assignment during `poll`. Calling it again replaces
    /// the subscription (a rebalance follows).
    ///
    /// # Panics
    /// When partitions were assigned with [`assign`](Self::assign) (Java throws
    /// `IllegalStateException`): assign an empty list first.
    pub fn subscribe<I, T>(&mut self, topics: I) -> Result<(), ConsumerError>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let topics: BTreeSet<String> = topics.into_iter().map(Into::into).collect();
        assert!(
            self.group.is_some() || self.subs.assigned().is_empty(),
            "subscribe() on a consumer with manually assigned partitions"
        );
        let group_id = self
            .config
            .group_id
            .clone()
            .ok_or(ConsumerError::NoGroupId)?;
        match &self.group {
            Some(g) => g.set_subscription(topics),
            None => {
                self.group = Some(GroupHandle::start(
                    self.cluster.clone(),
                    self.config.clone(),
                    group_id,
                    topics,
                ));
                self.next_auto_commit = Instant::now() + self.config.auto_commit_interval;
            }
        }
        Ok(())
    }

    /// [`subscribe`](Self::subscribe) with a listener told of every assignment change.
    pub fn subscribe_with_listener<I, T>(
        &mut self,
        topics: I,
        listener: impl ConsumerRebalanceListener + 'static,
    ) -> Result<(), ConsumerError>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.listener = Some(std::sync::Mutex::new(Box::new(listener)));
        self.subscribe(topics)
    }

    /// The subscribed topics (empty when not subscribed).
    pub fn subscription(&self) -> Vec<String> {
        self.group
            .as_ref()
            .map(|g| g.subscription().into_iter().collect())
            .unwrap_or_default()
    }

    /// Leaves the group: commits positions (with auto-commit), tells the
    /// listener the partitions are revoked, and sends LeaveGroup.
    pub async fn unsubscribe(&mut self) {
        self.leave_group().await;
    }

    /// Commits (with auto-commit), revokes every partition and stops the membership.
    async fn leave_group(&mut self) {
        let Some(group) = self.group.take() else {
            return;
        };
        // Events not applied yet: assignments to take back, revocations to acknowledge.
        while let Some(event) = group.next_event() {
            match event {
                GroupEvent::Assign { partitions } => {
                    let mut all = self.subs.assigned();
                    all.extend(partitions);
                    self.subs.assign(all);
                }
                GroupEvent::Revoke { id, partitions } => {
                    self.revoke(&partitions, false, group.identity()).await;
                    group.ack_revocation(id);
                }
                GroupEvent::Lost { partitions } => self.revoke(&partitions, true, None).await,
            }
        }
        let all = self.subs.assigned();
        self.revoke(&all, false, group.identity()).await;
        group
            .close(self.config.default_api_timeout.min(Duration::from_secs(30)))
            .await;
        self.next_auto_commit = Instant::now() + self.config.auto_commit_interval;
    }

    /// Closes the consumer: leaves the group as [`unsubscribe`](Self::unsubscribe)
    /// does and waits for queued commits.
    pub async fn close(mut self) {
        self.leave_group().await;
        if let Some(c) = self.committer.take() {
            // Every commit queued before this read has been answered when it returns.
            let deadline = Instant::now() + self.config.default_api_timeout;
            let _ = c.committed(Vec::new(), deadline).await;
        }
    }

    /// Applies the group's queued events: revocations (commit, listener,
    /// acknowledgement), assignments and lost partitions.
    async fn apply_group_events(&mut self) -> Result<(), ConsumerError> {
        loop {
            let Some(group) = self.group.as_ref() else {
                return Ok(());
            };
            if let Some(e) = group.take_error() {
                return Err(e);
            }
            let identity = group.identity();
            let Some(event) = group.next_event() else {
                return Ok(());
            };
            match event {
                GroupEvent::Revoke { id, partitions } => {
                    self.revoke(&partitions, false, identity).await;
                    if let Some(g) = &self.group {
                        g.ack_revocation(id);
                    }
                }
                GroupEvent::Lost { partitions } => self.revoke(&partitions, true, None).await,
                GroupEvent::Assign { partitions } => {
                    let mut all = self.subs.assigned();
                    all.extend(partitions.iter().cloned());
                    self.subs.assign(all);
                    debug!(?partitions, "partitions assigned");
                    if let Some(l) = self.listener() {
                        l.on_partitions_assigned(&partitions);
                    }
                }
            }
        }
    }

    /// Drops `partitions` from the assignment: commits their positions first
    /// (auto-commit, unless `lost`) and tells the listener.
    async fn revoke(
        &mut self,
        partitions: &[TopicPartition],
        lost: bool,
        identity: Option<offsets::MemberIdentity>,
    ) {
        if !lost && self.config.enable_auto_commit && identity.is_some() {
            let offsets = self.positions_of(partitions);
            if let (false, Some(c)) = (offsets.is_empty(), self.committer.as_ref()) {
                let deadline = Instant::now() + self.config.default_api_timeout;
                if let Err(e) = c.commit(offsets, identity, deadline).await {
                    tracing::warn!(error = %e, "committing offsets before revocation failed");
                }
            }
        }
        debug!(?partitions, lost, "partitions revoked");
        if let Some(l) = self.listener() {
            if lost {
                l.on_partitions_lost(partitions);
            } else {
                l.on_partitions_revoked(partitions);
            }
        }
        let gone: BTreeSet<&TopicPartition> = partitions.iter().collect();
        let kept: Vec<TopicPartition> = self
            .subs
            .assigned()
            .into_iter()
            .filter(|tp| !gone.contains(tp))
            .collect();
        self.subs.assign(kept);
        self.fetcher.retain_assigned(&self.subs);
    }

    fn listener(&mut self) -> Option<&mut Box<dyn ConsumerRebalanceListener>> {
        self.listener
            .as_mut()
            .map(|l| l.get_mut().unwrap_or_else(|e| e.into_inner()))
    }

    /// The consumed positions of `partitions` that have one, as offsets to commit.
    fn positions_of(
        &self,
        partitions: &[TopicPartition],
    ) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        partitions
            .iter()
            .filter_map(|tp| match self.subs.get(tp)?.fetch {
                FetchState::Valid {
                    offset,
                    leader_epoch,
                } => Some((
                    tp.clone(),
                    OffsetAndMetadata {
                        offset,
                        leader_epoch,
                        metadata: String::new(),
                    },
                )),
                _ => None,
            })
            .collect()
    }

    /// Auto-commit from `poll`: every `auto.commit.interval.ms`, the positions
    /// of all assigned partitions, asynchronously.
    fn maybe_auto_commit(&mut self) {
        if !self.config.enable_auto_commit || Instant::now() < self.next_auto_commit {
            return;
        }
        let (Some(group), Some(committer)) = (self.group.as_ref(), self.committer.as_ref()) else {
            return;
        };
        let Some(identity) = group.identity() else {
            return;
        };
        self.next_auto_commit = Instant::now() + self.config.auto_commit_interval;
        let offsets = self.positions_of(&self.subs.assigned());
        if offsets.is_empty() {
            return;
        }
        let deadline = Instant::now()
            + self
                .config
                .auto_commit_interval
                .max(self.config.request_timeout);
        committer.commit_async(
            offsets,
            Some(identity),
            deadline,
            Some(Box::new(|result| {
                if let Err(e) = result {
                    debug!(error = %e, "auto-commit failed");
                }
            })),
        );
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.subs.assigned()
    }

    /// Waits up to `timeout` for records and returns at most `max.poll.records`
    /// of them; records beyond that stay buffered for the next poll.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ConsumerError> {
        let deadline = Instant::now() + timeout;
        if let Some(g) = &self.group {
            g.polled();
        }
        loop {
            self.apply_group_events().await?;
            self.maybe_auto_commit();
            self.update_positions(deadline).await?;
            // Take in answers that arrived while the application worked, so
            // the next fetches go out before the buffers run dry.
            while let Some(done) = self.fetcher.try_next() {
                self.fetcher.handle(done, &mut self.subs, &self.config)?;
            }
            self.refresh_metadata_if_stale().await;
            self.fetcher
                .send_fetches(&self.cluster, &self.subs, &self.config)
                .await;
            let records = self
                .fetcher
                .drain(&mut self.subs, self.config.max_poll_records)?;
            if !records.is_empty() {
                return Ok(records);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let group = self.group.as_ref();
            let group_event = async {
                match group {
                    Some(g) => g.event_queued().await,
                    None => std::future::pending().await,
                }
            };
            if !self.fetcher.has_in_flight() {
                // Nothing fetchable yet (no assignment, no leader, no position,
                // all paused): look again soon, or when the group assigns.
                let wait = deadline.min(now + self.config.retry_backoff);
                let wait = if group.is_some() && self.subs.assigned().is_empty() {
                    deadline
                } else {
                    wait
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(wait) => {}
                    _ = group_event => {}
                }
                continue;
            }
            let done = tokio::select! {
                done = self.fetcher.wait(deadline) => done,
                _ = group_event => None,
            };
            if let Some(done) = done {
                self.fetcher.handle(done, &mut self.subs, &self.config)?;
            }
        }
    }

    /// Sets the next offset `poll` returns for `tp`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), ConsumerError> {
        self.check_assigned(tp)?;
        self.subs.set_position(tp, offset, None);
        self.fetcher.clear(tp);
        Ok(())
    }

    /// Moves `partitions` (all assigned ones when empty) to the log start,
    /// evaluated lazily at the next `poll` or `position`.
    pub fn seek_to_beginning(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<(), ConsumerError> {
        self.reset(partitions, ResetTo::Earliest)
    }

    /// Moves `partitions` (all assigned ones when empty) to the log end
    /// (last stable offset under read_committed), evaluated lazily.
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<(), ConsumerError> {
        self.reset(partitions, ResetTo::Latest)
    }

    fn reset(&mut self, partitions: &[TopicPartition], to: ResetTo) -> Result<(), ConsumerError> {
        let targets = if partitions.is_empty() {
            self.subs.assigned()
        } else {
            partitions.to_vec()
        };
        for tp in &targets {
            self.check_assigned(tp)?;
        }
        for tp in &targets {
            if let Some(s) = self.subs.get_mut(tp) {
                s.fetch = FetchState::AwaitingReset(to);
            }
            self.fetcher.clear(tp);
        }
        Ok(())
    }

    /// The offset of the next record `poll` returns for `tp`, resolving a
    /// pending committed-offset lookup or reset first.
    pub async fn position(&mut self, tp: &TopicPartition) -> Result<i64, ConsumerError> {
        self.check_assigned(tp)?;
        let deadline = Instant::now() + self.config.default_api_timeout;
        loop {
            if let Some(offset) = self.subs.position(tp) {
                return Ok(offset);
            }
            if Instant::now() >= deadline {
                return Err(ConsumerError::Timeout {
                    operation: "position",
                });
            }
            self.update_positions(deadline).await?;
            if self.subs.position(tp).is_none() {
                tokio::time::sleep(self.config.retry_backoff).await;
            }
        }
    }

    /// Stops fetching and returning records of `partitions` until [`resume`](Self::resume).
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<(), ConsumerError> {
        self.set_paused(partitions, true)
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<(), ConsumerError> {
        self.set_paused(partitions, false)
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.subs
            .assigned()
            .into_iter()
            .filter(|tp| self.subs.get(tp).is_some_and(|s| s.paused))
            .collect()
    }

    fn set_paused(
        &mut self,
        partitions: &[TopicPartition],
        paused: bool,
    ) -> Result<(), ConsumerError> {
        for tp in partitions {
            self.check_assigned(tp)?;
        }
        for tp in partitions {
            if let Some(s) = self.subs.get_mut(tp) {
                s.paused = paused;
            }
        }
        Ok(())
    }

    /// For each partition, the earliest offset whose timestamp is at least the
    /// given one (ms since the epoch); `None` when no record is that recent.
    pub async fn offsets_for_times(
        &mut self,
        timestamps: &HashMap<TopicPartition, i64>,
    ) -> Result<HashMap<TopicPartition, Option<OffsetAndTimestamp>>, ConsumerError> {
        let targets: BTreeMap<TopicPartition, i64> = timestamps
            .iter()
            .map(|(tp, ts)| (tp.clone(), *ts))
            .collect();
        let found = self.list_offsets(&targets).await?;
        Ok(targets
            .into_keys()
            .map(|tp| {
                let answer = found.get(&tp).map(|l| OffsetAndTimestamp {
                    offset: l.offset,
                    timestamp: l.timestamp,
                    leader_epoch: l.leader_epoch,
                });
                (tp, answer)
            })
            .collect())
    }

    /// The log start offset of each partition.
    pub async fn beginning_offsets(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>, ConsumerError> {
        self.end_offsets_of(partitions, ResetTo::Earliest).await
    }

    /// The log end offset (last stable offset under read_committed) of each partition.
    pub async fn end_offsets(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>, ConsumerError> {
        self.end_offsets_of(partitions, ResetTo::Latest).await
    }

    async fn end_offsets_of(
        &mut self,
        partitions: &[TopicPartition],
        to: ResetTo,
    ) -> Result<HashMap<TopicPartition, i64>, ConsumerError> {
        let targets = partitions
            .iter()
            .map(|tp| (tp.clone(), to.list_offsets_timestamp()))
            .collect();
        let found = self.list_offsets(&targets).await?;
        Ok(found.into_iter().map(|(tp, l)| (tp, l.offset)).collect())
    }

    async fn list_offsets(
        &mut self,
        targets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, offsets::ListedOffset>, ConsumerError> {
        self.ensure_metadata(targets.keys()).await;
        let deadline = Instant::now() + self.config.default_api_timeout;
        offsets::list_offsets(&self.cluster, &self.config, targets, deadline).await
    }

    /// Commits `offsets` for `group.id` and waits for the coordinator's answer.
    /// The offset is the next record to read (the last processed offset + 1).
    pub async fn commit_sync(
        &mut self,
        offsets: &HashMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<(), ConsumerError> {
        let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = offsets
            .iter()
            .map(|(tp, o)| (tp.clone(), o.clone()))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.config.default_api_timeout;
        let member = self.member_identity()?;
        let committer = self.committer.as_ref().ok_or(ConsumerError::NoGroupId)?;
        committer.commit(offsets, member, deadline).await
    }

    /// The identity commits carry: the group generation while subscribed
    /// (REBALANCE_IN_PROGRESS between generations), none for manual assignment.
    fn member_identity(&self) -> Result<Option<offsets::MemberIdentity>, ConsumerError> {
        match &self.group {
            None => Ok(None),
            Some(g) => match g.identity() {
                Some(id) => Ok(Some(id)),
                None => Err(ClientError::kafka(
                    strom_protocol::ErrorCode::RebalanceInProgress.code(),
                    Some("the consumer is not in a group generation".into()),
                )
                .into()),
            },
        }
    }

    /// Queues a commit of `offsets` and returns at once; `callback` gets the
    /// outcome (on the committer task). Commits are sent and answered in call order.
    pub fn commit_async(
        &mut self,
        offsets: &HashMap<TopicPartition, OffsetAndMetadata>,
        callback: Option<CommitCallback>,
    ) {
        let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = offsets
            .iter()
            .map(|(tp, o)| (tp.clone(), o.clone()))
            .collect();
        let member = match self.member_identity() {
            Ok(m) => m,
            Err(e) => {
                if let Some(cb) = callback {
                    cb(Err(e));
                }
                return;
            }
        };
        match self.committer.as_ref() {
            Some(c) => {
                let deadline = Instant::now() + self.config.default_api_timeout;
                c.commit_async(offsets, member, deadline, callback);
            }
            None => {
                if let Some(cb) = callback {
                    cb(Err(ConsumerError::NoGroupId));
                }
            }
        }
    }

    /// [`commit_async`](Self::commit_async) of the current positions (Java's `commitAsync()`).
    pub fn commit_async_positions(&mut self, callback: Option<CommitCallback>) {
        let offsets: HashMap<TopicPartition, OffsetAndMetadata> = self
            .positions_of(&self.subs.assigned())
            .into_iter()
            .collect();
        self.commit_async(&offsets, callback);
    }

    /// Commits the current position of every assigned partition that has one
    /// (Java's no-argument `commitSync()`).
    pub async fn commit_sync_positions(&mut self) -> Result<(), ConsumerError> {
        let offsets: HashMap<TopicPartition, OffsetAndMetadata> = self
            .positions_of(&self.subs.assigned())
            .into_iter()
            .collect();
        self.commit_sync(&offsets).await
    }

    /// The committed offsets of `partitions` for `group.id`; partitions
    /// without one are absent.
    pub async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, OffsetAndMetadata>, ConsumerError> {
        let deadline = Instant::now() + self.config.default_api_timeout;
        let committer = self.committer.as_ref().ok_or(ConsumerError::NoGroupId)?;
        committer.committed(partitions.to_vec(), deadline).await
    }

    fn check_assigned(&self, tp: &TopicPartition) -> Result<(), ConsumerError> {
        if self.subs.is_assigned(tp) {
            Ok(())
        } else {
            Err(ConsumerError::NotAssigned {
                topic: tp.topic.clone(),
                partition: tp.partition,
            })
        }
    }

    /// Gives every assigned partition a position: the committed offset where
    /// there is one, else `auto.offset.reset`; then answers pending resets.
    /// Retriable failures leave positions unset for the next try.
    async fn update_positions(&mut self, deadline: Instant) -> Result<(), ConsumerError> {
        let initializing = self.subs.initializing();
        if !initializing.is_empty() {
            let committed = match self.committer.as_ref() {
                Some(c) => match c.committed(initializing.clone(), deadline).await {
                    Ok(found) => found,
                    Err(ConsumerError::Client(e)) if e.is_retriable() => {
                        debug!(error = %e, "committed offsets not fetched");
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                },
                None => HashMap::new(),
            };
            for tp in initializing {
                match committed.get(&tp) {
                    Some(om) => self.subs.set_position(&tp, om.offset, om.leader_epoch),
                    None => {
                        let to = self.default_reset(&tp)?;
                        if let Some(s) = self.subs.get_mut(&tp) {
                            s.fetch = FetchState::AwaitingReset(to);
                        }
                    }
                }
            }
        }
        let resets = self.subs.awaiting_reset();
        if resets.is_empty() {
            return Ok(());
        }
        let targets: BTreeMap<TopicPartition, i64> = resets
            .iter()
            .map(|(tp, to)| (tp.clone(), to.list_offsets_timestamp()))
            .collect();
        self.ensure_metadata(targets.keys()).await;
        match offsets::list_offsets(&self.cluster, &self.config, &targets, deadline).await {
            Ok(found) => {
                for (tp, to) in resets {
                    // A seek made meanwhile wins over the reset.
                    let still =
                        self.subs.get(&tp).map(|s| s.fetch) == Some(FetchState::AwaitingReset(to));
                    if let (true, Some(l)) = (still, found.get(&tp)) {
                        self.subs.set_position(&tp, l.offset, l.leader_epoch);
                    }
                }
                Ok(())
            }
            Err(ConsumerError::Client(e)) if e.is_retriable() => {
                debug!(error = %e, "offset reset not resolved yet");
                Ok(())
            }
            Err(ConsumerError::Timeout { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn default_reset(&self, tp: &TopicPartition) -> Result<ResetTo, ConsumerError> {
        match self.config.auto_offset_reset {
            AutoOffsetReset::Earliest => Ok(ResetTo::Earliest),
            AutoOffsetReset::Latest => Ok(ResetTo::Latest),
            AutoOffsetReset::None => Err(ConsumerError::NoOffsetForPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
            }),
        }
    }

    /// Loads metadata for topics the cache does not know yet.
    async fn ensure_metadata<'a>(&self, tps: impl Iterator<Item = &'a TopicPartition>) {
        let mut missing: Vec<String> = tps
            .filter(|tp| self.cluster.topic(&tp.topic).is_none())
            .map(|tp| tp.topic.clone())
            .collect();
        missing.dedup();
        if !missing.is_empty() {
            if let Err(e) = self.cluster.refresh(&missing).await {
                debug!(error = %e, "metadata refresh failed");
            }
        }
    }

    /// Refreshes the assigned topics' metadata after a stale-leader answer, at
    /// most once per `retry.backoff.ms`.
    async fn refresh_metadata_if_stale(&mut self) {
        let topics = self.subs.topics();
        let unknown = topics.iter().any(|t| self.cluster.topic(t).is_none());
        if !(self.fetcher.metadata_stale || unknown) {
            return;
        }
        let now = Instant::now();
        if self
            .last_refresh
            .is_some_and(|t| now < t + self.config.retry_backoff)
        {
            return;
        }
        self.last_refresh = Some(now);
        self.fetcher.metadata_stale = false;
        if let Err(e) = self.cluster.refresh(&topics).await {
            debug!(error = %e, "metadata refresh failed");
            self.fetcher.metadata_stale = true;
        }
    }
}
