//! Group membership for a subscribing consumer: a background task that joins
//! the group, keeps the member alive with heartbeats, follows rebalances, and
//! leaves on close — with the classic protocol (JoinGroup / SyncGroup /
//! Heartbeat / LeaveGroup, the leader assigning with an [`Assignor`]) or the
//! KIP-848 consumer protocol (ConsumerGroupHeartbeat, the coordinator
//! assigning).
//!
//! The task never touches the consumer's partitions itself. It queues
//! [`GroupEvent`]s that the consumer applies inside `poll` (where the
//! rebalance listener runs, as in Java), and waits for the consumer to
//! acknowledge a revocation before the partitions are given up: with the
//! classic protocol before JoinGroup (eager rebalancing), with the consumer
//! protocol before the next heartbeat reports them gone. Like Java, the member
//! joins only while the application polls, and leaves when `poll` has not been
//! called for `max.poll.interval.ms`.
//!
//! The coordinator gets a dedicated connection: a JoinGroup may be held for a
//! whole rebalance, and the broker answers one connection's requests in order,
//! so sharing a connection with fetches would stall them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use strom_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use strom_protocol::messages::leave_group_request::MemberIdentity as LeaveMember;
use strom_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use strom_protocol::messages::{
    ConsumerGroupHeartbeatRequest, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, StrBytes, SyncGroupRequest, Uuid,
};
use strom_protocol::ErrorCode;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::assignor::{self, MemberSubscription};
use super::config::GroupProtocol;
use super::offsets::{coordinator_moved, Coordinator, MemberIdentity};
use super::{ConsumerConfig, ConsumerError, TopicPartition};
use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::error::ClientError;

/// What the consumer must do with its partitions, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// Commit (with auto-commit), tell the listener, drop these partitions and
    /// acknowledge with [`GroupHandle::ack_revocation`].
    Revoke {
        id: u64,
        partitions: Vec<TopicPartition>,
    },
    /// Start consuming these partitions (added to the current ones).
    Assign { partitions: Vec<TopicPartition> },
    /// These partitions already belong to someone else: drop them without committing.
    Lost { partitions: Vec<TopicPartition> },
}

/// State shared by the consumer and its membership task.
struct GroupState {
    subscription: BTreeSet<String>,
    /// Bumped on every `subscribe`, so the task notices a change.
    subscription_version: u64,
    last_poll: Instant,
    events: VecDeque<GroupEvent>,
    /// The identity to commit with, while the member is in a generation.
    identity: Option<MemberIdentity>,
    revocation_acked: u64,
    closing: bool,
    /// Set by the task when it has left the group and stopped.
    stopped: bool,
    /// An error `poll` should raise (once).
    error: Option<ConsumerError>,
}

struct Shared {
    state: Mutex<GroupState>,
    /// Wakes the task: subscription change, revocation acknowledged, a poll after a pause, close.
    task_wake: Notify,
    /// Wakes a consumer blocked in `poll` when an event is queued.
    consumer_wake: Notify,
}

/// The consumer's side of the membership.
pub struct GroupHandle {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for GroupHandle {
    fn drop(&mut self) {
        // Dropped without close: stop at once; the coordinator notices by session timeout.
        self.task.abort();
    }
}

impl GroupHandle {
    /// Starts the membership task for `topics`.
    pub fn start(
        cluster: Arc<Cluster>,
        config: ConsumerConfig,
        group_id: String,
        topics: BTreeSet<String>,
    ) -> GroupHandle {
        let shared = Arc::new(Shared {
            state: Mutex::new(GroupState {
                subscription: topics,
                subscription_version: 1,
                last_poll: Instant::now(),
                events: VecDeque::new(),
                identity: None,
                revocation_acked: 0,
                closing: false,
                stopped: false,
                error: None,
            }),
            task_wake: Notify::new(),
            consumer_wake: Notify::new(),
        });
        let member = Member {
            shared: shared.clone(),
            cluster,
            coordinator: Coordinator::new(group_id.clone()),
            group_id,
            config,
            conn: None,
            owned: BTreeSet::new(),
            next_revocation: 0,
            member_id: String::new(),
        };
        let task = tokio::spawn(async move {
            let protocol = member.config.group_protocol;
            let shared = member.shared.clone();
            match protocol {
                GroupProtocol::Classic => member.run_classic().await,
                GroupProtocol::Consumer => member.run_consumer().await,
            }
            let mut state = shared.state.lock().unwrap();
            state.stopped = true;
            state.identity = None;
            drop(state);
            shared.consumer_wake.notify_one();
        });
        GroupHandle { shared, task }
    }

    /// Replaces the subscribed topics; a change triggers a rebalance.
    pub fn set_subscription(&self, topics: BTreeSet<String>) {
        let mut state = self.shared.state.lock().unwrap();
        if state.subscription != topics {
            state.subscription = topics;
            state.subscription_version += 1;
            drop(state);
            self.shared.task_wake.notify_one();
        }
    }

    /// The subscribed topics.
    pub fn subscription(&self) -> BTreeSet<String> {
        self.shared.state.lock().unwrap().subscription.clone()
    }

    /// Records that the application polled (the liveness `max.poll.interval.ms` checks).
    pub fn polled(&self) {
        let mut state = self.shared.state.lock().unwrap();
        let was_idle = state.last_poll.elapsed() > Duration::from_millis(500);
        state.last_poll = Instant::now();
        drop(state);
        if was_idle {
            self.shared.task_wake.notify_one();
        }
    }

    /// The next event to apply, if any.
    pub fn next_event(&self) -> Option<GroupEvent> {
        self.shared.state.lock().unwrap().events.pop_front()
    }

    /// Tells the task revocation `id` is done (offsets committed, listener called).
    pub fn ack_revocation(&self, id: u64) {
        self.shared.state.lock().unwrap().revocation_acked = id;
        self.shared.task_wake.notify_one();
    }

    /// The identity commits use, while the member is in a generation.
    pub fn identity(&self) -> Option<MemberIdentity> {
        self.shared.state.lock().unwrap().identity.clone()
    }

    /// An error raised by the membership (fenced static member, inconsistent
    /// protocol, ...), returned once.
    pub fn take_error(&self) -> Option<ConsumerError> {
        self.shared.state.lock().unwrap().error.take()
    }

    /// Resolves when an event is queued (or the task stops).
    pub async fn event_queued(&self) {
        self.shared.consumer_wake.notified().await
    }

    /// Leaves the group and waits (at most `timeout`) for the task to stop.
    pub async fn close(mut self, timeout: Duration) {
        self.shared.state.lock().unwrap().closing = true;
        self.shared.task_wake.notify_one();
        if tokio::time::timeout(timeout, &mut self.task).await.is_err() {
            debug!("group membership did not stop in time");
        }
    }
}

/// How a join attempt ended.
enum JoinOutcome {
    Joined,
    /// Retry at once (MEMBER_ID_REQUIRED, REBALANCE_IN_PROGRESS ...).
    Again,
    /// Retry after `retry.backoff.ms`.
    Backoff,
}

/// The task's state.
struct Member {
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    coordinator: Coordinator,
    group_id: String,
    config: ConsumerConfig,
    /// Dedicated connection to the coordinator, with its node id.
    conn: Option<(i32, Arc<Connection>)>,
    /// Partitions the member owns (handed to the consumer, not yet revoked).
    owned: BTreeSet<TopicPartition>,
    next_revocation: u64,
    member_id: String,
}

impl Member {
    fn closing(&self) -> bool {
        self.shared.state.lock().unwrap().closing
    }

    fn subscription(&self) -> (BTreeSet<String>, u64) {
        let state = self.shared.state.lock().unwrap();
        (state.subscription.clone(), state.subscription_version)
    }

    fn subscription_version(&self) -> u64 {
        self.shared.state.lock().unwrap().subscription_version
    }

    /// Whether the application stopped polling for longer than `max.poll.interval.ms`.
    fn poll_expired(&self) -> bool {
        self.shared.state.lock().unwrap().last_poll.elapsed() > self.config.max_poll_interval
    }

    fn push(&self, event: GroupEvent) {
        self.shared.state.lock().unwrap().events.push_back(event);
        self.shared.consumer_wake.notify_one();
    }

    fn raise(&self, error: ConsumerError) {
        self.shared.state.lock().unwrap().error = Some(error);
        self.shared.consumer_wake.notify_one();
    }

    fn set_identity(&self, identity: Option<MemberIdentity>) {
        self.shared.state.lock().unwrap().identity = identity;
    }

    /// Sleeps until woken or `timeout` passes.
    async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.shared.task_wake.notified()).await;
    }

    /// Gives up every owned partition: as a revocation the consumer
    /// acknowledges (offsets still committable), or as lost.
    async fn give_up_owned(&mut self, lost: bool, mut keep_alive: impl FnMut() -> bool) {
        if self.owned.is_empty() {
            return;
        }
        let partitions: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
        if lost {
            self.push(GroupEvent::Lost { partitions });
            return;
        }
        self.revoke(partitions, &mut keep_alive).await;
    }

    /// Queues a revocation and waits for the consumer's acknowledgement (while
    /// `keep_alive` says so: the wait ends early on close).
    async fn revoke(
        &mut self,
        partitions: Vec<TopicPartition>,
        keep_alive: &mut impl FnMut() -> bool,
    ) {
        self.next_revocation += 1;
        let id = self.next_revocation;
        self.push(GroupEvent::Revoke { id, partitions });
        loop {
            if self.shared.state.lock().unwrap().revocation_acked >= id {
                return;
            }
            if self.closing() || !keep_alive() {
                return;
            }
            self.wait(Duration::from_millis(200)).await;
        }
    }

    /// The dedicated coordinator connection, looked up and opened when needed.
    async fn connection(&mut self) -> Result<Arc<Connection>, ClientError> {
        if let Some((_, conn)) = &self.conn {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
        }
        self.conn = None;
        let node = self.coordinator.lookup(&self.cluster).await?;
        let broker = match self.cluster.broker(node) {
            Some(b) => b,
            None => {
                self.coordinator.forget();
                return Err(ClientError::NoMetadata {
                    what: format!("coordinator {node} of group {}", self.group_id),
                });
            }
        };
        let conn =
            match Connection::connect(&broker.addr(), self.cluster.connection_config().clone())
                .await
            {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    self.coordinator.forget();
                    return Err(e);
                }
            };
        self.conn = Some((node, conn.clone()));
        Ok(conn)
    }

    /// After an error: forget the coordinator when it moved or the connection broke.
    fn on_error(&mut self, e: &ClientError) {
        let moved = e.code().is_some_and(coordinator_moved);
        let broken = matches!(
            e,
            ClientError::ConnectionClosed { .. }
                | ClientError::Unreachable { .. }
                | ClientError::RequestTimeout { .. }
        );
        if moved || broken {
            self.conn = None;
            self.coordinator.forget();
        }
    }

    fn instance_id(&self) -> Option<StrBytes> {
        self.config.group_instance_id.as_deref().map(Into::into)
    }

    fn millis(d: Duration) -> i32 {
        d.as_millis().min(i32::MAX as u128) as i32
    }

    // ---------------------------------------------------------------- classic

    async fn run_classic(mut self) {
        let mut generation = -1;
        let mut joined_version = 0;
        // As leader: the topics assigned from and their partition counts.
        let mut leader_snapshot: Option<(BTreeSet<String>, BTreeMap<String, i32>)> = None;
        let mut next_metadata_check = Instant::now() + self.config.metadata_max_age;
        let mut in_generation = false;
        loop {
            if self.closing() {
                break;
            }
            if in_generation && self.poll_expired() {
                warn!(
                    group = %self.group_id,
                    "poll() was not called within max.poll.interval.ms; leaving the group"
                );
                self.give_up_owned(true, || true).await;
                self.leave_classic().await;
                self.set_identity(None);
                in_generation = false;
                if self.config.group_instance_id.is_none() {
                    self.member_id.clear();
                }
                continue;
            }
            if !in_generation {
                if self.poll_expired() {
                    self.wait(Duration::from_secs(1)).await;
                    continue;
                }
                let (topics, version) = self.subscription();
                if topics.is_empty() {
                    self.wait(Duration::from_secs(1)).await;
                    continue;
                }
                // Eager rebalancing: give everything back before joining.
                self.give_up_owned(false, || true).await;
                if self.closing() {
                    break;
                }
                match self.join_classic(&topics, &mut generation).await {
                    Ok((JoinOutcome::Joined, snapshot)) => {
                        in_generation = true;
                        joined_version = version;
                        leader_snapshot = snapshot;
                        next_metadata_check = Instant::now() + Duration::from_secs(1);
                    }
                    Ok((JoinOutcome::Again, _)) => {}
                    Ok((JoinOutcome::Backoff, _)) => self.wait(self.config.retry_backoff).await,
                    Err(e) => {
                        self.on_error(&e);
                        debug!(group = %self.group_id, error = %e, "join failed");
                        if e.is_retriable() {
                            tokio::time::sleep(self.config.retry_backoff).await;
                        } else {
                            self.raise(e.into());
                            // Try again only after the application polls again.
                            self.wait(self.config.max_poll_interval).await;
                        }
                    }
                }
                continue;
            }
            // In a generation: heartbeat, and watch for a changed subscription
            // or (as leader) changed partition counts.
            self.wait(self.config.heartbeat_interval).await;
            if self.closing() {
                break;
            }
            if self.subscription_version() != joined_version {
                debug!(group = %self.group_id, "subscription changed; rejoining");
                in_generation = false;
                continue;
            }
            if let Some((topics, snapshot)) = &leader_snapshot {
                if Instant::now() >= next_metadata_check {
                    // A subscribed topic that does not exist yet is looked for every second.
                    let missing = topics.len() != snapshot.len();
                    next_metadata_check = Instant::now()
                        + if missing {
                            Duration::from_secs(1)
                        } else {
                            self.config.metadata_max_age
                        };
                    if self.partition_counts(topics).await.as_ref() != Some(snapshot) {
                        info!(group = %self.group_id, "subscribed topics changed; rebalancing");
                        in_generation = false;
                        continue;
                    }
                }
            }
            match self.heartbeat_classic(generation).await {
                Ok(()) => {}
                Err(e) => {
                    let code = e.code().and_then(ErrorCode::from_code);
                    match code {
                        Some(ErrorCode::RebalanceInProgress) => {
                            debug!(group = %self.group_id, "rebalance in progress; rejoining");
                            in_generation = false;
                        }
                        Some(
                            ErrorCode::UnknownMemberId
                            | ErrorCode::IllegalGeneration
                            | ErrorCode::FencedInstanceId,
                        ) => {
                            info!(group = %self.group_id, error = %e, "member fenced; rejoining");
                            self.give_up_owned(true, || true).await;
                            self.set_identity(None);
                            in_generation = false;
                            if code == Some(ErrorCode::FencedInstanceId) {
                                self.raise(e.into());
                                self.wait(self.config.max_poll_interval).await;
                            } else if code == Some(ErrorCode::UnknownMemberId) {
                                self.member_id.clear();
                            }
                        }
                        _ => {
                            self.on_error(&e);
                            debug!(group = %self.group_id, error = %e, "heartbeat failed");
                            if !e.is_retriable() {
                                self.raise(e.into());
                            }
                        }
                    }
                }
            }
        }
        // Closing: the consumer revoked (and committed) before asking to close.
        self.owned.clear();
        self.leave_classic().await;
        self.set_identity(None);
    }

    /// Partition counts of the subscribed topics that exist.
    async fn partition_counts(&self, topics: &BTreeSet<String>) -> Option<BTreeMap<String, i32>> {
        let names: Vec<String> = topics.iter().cloned().collect();
        if let Err(e) = self.cluster.refresh(&names).await {
            debug!(error = %e, "metadata refresh failed");
            return None;
        }
        Some(
            names
                .into_iter()
                .filter_map(|t| {
                    let meta = self.cluster.topic(&t)?;
                    Some((t, meta.partitions.len() as i32))
                })
                .collect(),
        )
    }

    /// One JoinGroup + SyncGroup round. On success the assignment is queued
    /// for the consumer; a leader also returns the partition counts it assigned from.
    async fn join_classic(
        &mut self,
        topics: &BTreeSet<String>,
        generation: &mut i32,
    ) -> Result<
        (
            JoinOutcome,
            Option<(BTreeSet<String>, BTreeMap<String, i32>)>,
        ),
        ClientError,
    > {
        let conn = self.connection().await?;
        let version = conn.version_for::<JoinGroupRequest>()?;
        let mut req = JoinGroupRequest::default();
        req.group_id = self.group_id.as_str().into();
        req.session_timeout_ms = Self::millis(self.config.session_timeout);
        if version >= 1 {
            req.rebalance_timeout_ms = Self::millis(self.config.max_poll_interval);
        }
        req.member_id = self.member_id.as_str().into();
        if version >= 5 {
            req.group_instance_id = self.instance_id();
        }
        req.protocol_type = "consumer".into();
        let metadata = assignor::encode_subscription(topics, &self.owned);
        req.protocols = self
            .config
            .assignment_strategies
            .iter()
            .map(|a| {
                let mut p = JoinGroupRequestProtocol::default();
                p.name = a.name().into();
                p.metadata = metadata.clone();
                p
            })
            .collect();
        // The coordinator may hold the answer for the whole rebalance timeout.
        let timeout = self.config.max_poll_interval + Duration::from_secs(5);
        let resp: JoinGroupResponse = conn
            .dispatch(&req)
            .await?
            .with_timeout(timeout)
            .wait()
            .await?;
        match ErrorCode::from_code(resp.error_code) {
            Some(ErrorCode::None) => {}
            Some(ErrorCode::MemberIdRequired) => {
                // KIP-394: join again with the id the coordinator picked.
                self.member_id = resp.member_id.to_string();
                return Ok((JoinOutcome::Again, None));
            }
            Some(ErrorCode::UnknownMemberId) => {
                self.member_id.clear();
                return Ok((JoinOutcome::Again, None));
            }
            Some(ErrorCode::RebalanceInProgress) => return Ok((JoinOutcome::Backoff, None)),
            _ => return Err(ClientError::check(resp.error_code, None).unwrap_err()),
        }
        self.member_id = resp.member_id.to_string();
        *generation = resp.generation_id;
        let protocol = resp.protocol_name.as_ref().map(|p| p.to_string());
        let is_leader = resp.leader.as_str() == resp.member_id.as_str() && !resp.skip_assignment;
        let mut snapshot = None;
        let mut assignments = Vec::new();
        if is_leader {
            let chosen = protocol
                .as_deref()
                .and_then(assignor::Assignor::parse)
                .or_else(|| self.config.assignment_strategies.first().copied())
                .unwrap_or(assignor::Assignor::Range);
            let mut members = Vec::new();
            for m in &resp.members {
                let topics = match assignor::decode_subscription(m.metadata.clone()) {
                    Ok(t) => t,
                    Err(e) => {
                        warn!(member = %m.member_id.as_str(), error = %e, "undecodable subscription");
                        BTreeSet::new()
                    }
                };
                members.push(MemberSubscription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                    topics,
                });
            }
            let all_topics: BTreeSet<String> = members
                .iter()
                .flat_map(|m| m.topics.iter().cloned())
                .collect();
            let counts = self.partition_counts(&all_topics).await.unwrap_or_default();
            let plan = chosen.assign(&counts, &members);
            debug!(group = %self.group_id, generation = *generation, ?plan, "assigned as leader");
            for (member_id, partitions) in plan {
                let mut a = SyncGroupRequestAssignment::default();
                a.member_id = member_id.into();
                a.assignment = assignor::encode_assignment(&partitions);
                assignments.push(a);
            }
            snapshot = Some((all_topics, counts));
        }
        let sync_version = conn.version_for::<SyncGroupRequest>()?;
        let mut sync = SyncGroupRequest::default();
        sync.group_id = self.group_id.as_str().into();
        sync.generation_id = *generation;
        sync.member_id = self.member_id.as_str().into();
        if sync_version >= 3 {
            sync.group_instance_id = self.instance_id();
        }
        if sync_version >= 5 {
            sync.protocol_type = Some("consumer".into());
            sync.protocol_name = protocol.as_deref().map(Into::into);
        }
        sync.assignments = assignments;
        let resp = conn
            .dispatch(&sync)
            .await?
            .with_timeout(timeout)
            .wait()
            .await?;
        match ErrorCode::from_code(resp.error_code) {
            Some(ErrorCode::None) => {}
            Some(ErrorCode::RebalanceInProgress | ErrorCode::IllegalGeneration) => {
                return Ok((JoinOutcome::Again, None))
            }
            Some(ErrorCode::UnknownMemberId) => {
                self.member_id.clear();
                return Ok((JoinOutcome::Again, None));
            }
            _ => return Err(ClientError::check(resp.error_code, None).unwrap_err()),
        }
        let assigned = assignor::decode_assignment(resp.assignment)?;
        info!(
            group = %self.group_id,
            generation = *generation,
            member = %self.member_id,
            partitions = assigned.len(),
            "joined group"
        );
        self.set_identity(Some(MemberIdentity {
            member_id: self.member_id.clone(),
            generation: *generation,
            group_instance_id: self.config.group_instance_id.clone(),
        }));
        self.owned = assigned.clone();
        self.push(GroupEvent::Assign {
            partitions: assigned.into_iter().collect(),
        });
        Ok((JoinOutcome::Joined, snapshot))
    }

    async fn heartbeat_classic(&mut self, generation: i32) -> Result<(), ClientError> {
        let conn = self.connection().await?;
        let version = conn.version_for::<HeartbeatRequest>()?;
        let mut req = HeartbeatRequest::default();
        req.group_id = self.group_id.as_str().into();
        req.generation_id = generation;
        req.member_id = self.member_id.as_str().into();
        if version >= 3 {
            req.group_instance_id = self.instance_id();
        }
        let resp = conn.send(&req).await?;
        ClientError::check(resp.error_code, None)
    }

    /// LeaveGroup for a dynamic member; a static member stays (KIP-345) so a
    /// restart within the session timeout keeps its partitions.
    async fn leave_classic(&mut self) {
        if self.member_id.is_empty() || self.config.group_instance_id.is_some() {
            return;
        }
        let result = async {
            let conn = self.connection().await?;
            let version = conn.version_for::<LeaveGroupRequest>()?;
            let mut req = LeaveGroupRequest::default();
            req.group_id = self.group_id.as_str().into();
            if version >= 3 {
                let mut m = LeaveMember::default();
                m.member_id = self.member_id.as_str().into();
                if version >= 5 {
                    m.reason = Some("the consumer is closing".into());
                }
                req.members = vec![m];
            } else {
                req.member_id = self.member_id.as_str().into();
            }
            let resp = conn.send(&req).await?;
            ClientError::check(resp.error_code, None)
        }
        .await;
        if let Err(e) = result {
            debug!(group = %self.group_id, error = %e, "LeaveGroup failed");
        }
        self.member_id.clear();
    }

    // ------------------------------------------------------- consumer (KIP-848)

    async fn run_consumer(mut self) {
        let mut epoch = 0;
        let mut interval = self.config.heartbeat_interval;
        // An assignment received but not yet reconciled (partitions by topic id).
        let mut target: Option<BTreeMap<Uuid, Vec<i32>>> = None;
        let mut sent_version = 0;
        let mut next_heartbeat = Instant::now();
        let mut next_topic_check = Instant::now();
        let mut joined = false;
        loop {
            if self.closing() {
                break;
            }
            // The coordinator assigns only existing topics; asking for a missing
            // subscribed topic's metadata lets the broker create it (as Java's
            // consumer does with allow.auto.create.topics).
            if Instant::now() >= next_topic_check {
                next_topic_check = Instant::now() + Duration::from_secs(1);
                let (topics, _) = self.subscription();
                let missing: Vec<String> = topics
                    .into_iter()
                    .filter(|t| self.cluster.topic(t).is_none())
                    .collect();
                if !missing.is_empty() {
                    if let Err(e) = self.cluster.refresh(&missing).await {
                        debug!(error = %e, "metadata refresh failed");
                    }
                }
            }
            if joined && self.poll_expired() {
                warn!(
                    group = %self.group_id,
                    "poll() was not called within max.poll.interval.ms; leaving the group"
                );
                self.give_up_owned(true, || true).await;
                self.leave_consumer(epoch).await;
                self.set_identity(None);
                joined = false;
                epoch = 0;
                target = None;
                continue;
            }
            if !joined && (self.poll_expired() || self.subscription().0.is_empty()) {
                self.wait(Duration::from_secs(1)).await;
                continue;
            }
            // Reconcile a pending assignment: revoke first, then assign.
            let mut changed = false;
            if let Some(t) = &target {
                match self.resolve(t).await {
                    Some(wanted) => {
                        let revoked: Vec<TopicPartition> =
                            self.owned.difference(&wanted).cloned().collect();
                        if !revoked.is_empty() {
                            let shared = self.shared.clone();
                            let mut alive = || !shared.state.lock().unwrap().closing;
                            for tp in &revoked {
                                self.owned.remove(tp);
                            }
                            self.revoke(revoked, &mut alive).await;
                            changed = true;
                        }
                        let added: Vec<TopicPartition> =
                            wanted.difference(&self.owned).cloned().collect();
                        if !added.is_empty() {
                            self.owned.extend(added.iter().cloned());
                            self.push(GroupEvent::Assign { partitions: added });
                            changed = true;
                        }
                        target = None;
                    }
                    None => {
                        // A topic id not in metadata yet: look again at the next heartbeat.
                        debug!(group = %self.group_id, "assignment names unknown topic ids");
                    }
                }
            }
            let version = self.subscription_version();
            if !changed && version == sent_version && Instant::now() < next_heartbeat {
                let wait = next_heartbeat.saturating_duration_since(Instant::now());
                self.wait(wait).await;
                continue;
            }
            match self.heartbeat_consumer(epoch).await {
                Ok(resp) => {
                    sent_version = version;
                    joined = true;
                    if let Some(id) = resp.member_id.as_ref() {
                        self.member_id = id.to_string();
                    }
                    epoch = resp.member_epoch;
                    if resp.heartbeat_interval_ms > 0 {
                        interval = Duration::from_millis(resp.heartbeat_interval_ms as u64);
                    }
                    self.set_identity(Some(MemberIdentity {
                        member_id: self.member_id.clone(),
                        generation: epoch,
                        group_instance_id: self.config.group_instance_id.clone(),
                    }));
                    if let Some(a) = resp.assignment {
                        let mut t: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
                        for tp in a.topic_partitions {
                            t.entry(tp.topic_id).or_default().extend(tp.partitions);
                        }
                        target = Some(t);
                    }
                    next_heartbeat = Instant::now() + interval;
                }
                Err(e) => {
                    let code = e.code().and_then(ErrorCode::from_code);
                    match code {
                        Some(ErrorCode::FencedMemberEpoch | ErrorCode::UnknownMemberId) => {
                            info!(group = %self.group_id, error = %e, "member fenced; rejoining");
                            self.give_up_owned(true, || true).await;
                            self.set_identity(None);
                            epoch = 0;
                            target = None;
                            next_heartbeat = Instant::now();
                        }
                        Some(
                            ErrorCode::UnreleasedInstanceId
                            | ErrorCode::GroupMaxSizeReached
                            | ErrorCode::UnsupportedAssignor
                            | ErrorCode::InvalidRequest
                            | ErrorCode::GroupIdNotFound
                            | ErrorCode::UnsupportedVersion
                            | ErrorCode::InvalidRegularExpression
                            | ErrorCode::GroupAuthorizationFailed,
                        ) => {
                            self.raise(e.into());
                            self.wait(self.config.max_poll_interval).await;
                            next_heartbeat = Instant::now();
                        }
                        _ => {
                            self.on_error(&e);
                            debug!(group = %self.group_id, error = %e, "heartbeat failed");
                            if let ClientError::UnsupportedVersion { .. } = e {
                                self.raise(e.into());
                                self.wait(self.config.max_poll_interval).await;
                            }
                            next_heartbeat = Instant::now() + self.config.retry_backoff;
                        }
                    }
                }
            }
        }
        self.owned.clear();
        if joined {
            self.leave_consumer(epoch).await;
        }
        self.set_identity(None);
    }

    /// Topic ids of an assignment turned into partitions, refreshing metadata
    /// once when an id is unknown; `None` while some id stays unknown.
    async fn resolve(&self, target: &BTreeMap<Uuid, Vec<i32>>) -> Option<BTreeSet<TopicPartition>> {
        if target
            .keys()
            .any(|id| self.cluster.topic_by_id(id).is_none())
        {
            let (topics, _) = self.subscription();
            let names: Vec<String> = topics.into_iter().collect();
            if let Err(e) = self.cluster.refresh(&names).await {
                debug!(error = %e, "metadata refresh failed");
            }
        }
        let mut out = BTreeSet::new();
        for (id, partitions) in target {
            let topic = self.cluster.topic_by_id(id)?;
            out.extend(
                partitions
                    .iter()
                    .map(|p| TopicPartition::new(topic.name.as_str(), *p)),
            );
        }
        Some(out)
    }

    async fn heartbeat_consumer(
        &mut self,
        epoch: i32,
    ) -> Result<strom_protocol::messages::ConsumerGroupHeartbeatResponse, ClientError> {
        let conn = self.connection().await?;
        let version = conn.version_for::<ConsumerGroupHeartbeatRequest>()?;
        if version >= 1 && self.member_id.is_empty() {
            // KIP-1082: the member picks its own id.
            self.member_id = random_member_id();
        }
        let (topics, _) = self.subscription();
        let mut req = ConsumerGroupHeartbeatRequest::default();
        req.group_id = self.group_id.as_str().into();
        req.member_id = self.member_id.as_str().into();
        req.member_epoch = epoch;
        req.instance_id = self.instance_id();
        req.rebalance_timeout_ms = Self::millis(self.config.max_poll_interval);
        req.subscribed_topic_names = Some(topics.iter().map(|t| t.as_str().into()).collect());
        req.server_assignor = self.config.group_remote_assignor.as_deref().map(Into::into);
        let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for tp in &self.owned {
            if let Some(meta) = self.cluster.topic(&tp.topic) {
                by_topic
                    .entry(meta.topic_id)
                    .or_default()
                    .push(tp.partition);
            }
        }
        req.topic_partitions = Some(
            by_topic
                .into_iter()
                .map(|(id, partitions)| {
                    let mut t = TopicPartitions::default();
                    t.topic_id = id;
                    t.partitions = partitions;
                    t
                })
                .collect(),
        );
        let resp = conn.send(&req).await?;
        ClientError::check(
            resp.error_code,
            resp.error_message.as_ref().map(|m| m.to_string()),
        )?;
        Ok(resp)
    }

    /// Leaves with epoch -1 (dynamic) or -2 (static: the coordinator keeps the
    /// member's partitions for its return).
    async fn leave_consumer(&mut self, epoch: i32) {
        if self.member_id.is_empty() || epoch <= 0 {
            return;
        }
        let leave_epoch = if self.config.group_instance_id.is_some() {
            -2
        } else {
            -1
        };
        let result = async {
            let conn = self.connection().await?;
            let mut req = ConsumerGroupHeartbeatRequest::default();
            req.group_id = self.group_id.as_str().into();
            req.member_id = self.member_id.as_str().into();
            req.member_epoch = leave_epoch;
            req.instance_id = self.instance_id();
            let resp = conn.send(&req).await?;
            ClientError::check(resp.error_code, None)
        }
        .await;
        if let Err(e) = result {
            debug!(group = %self.group_id, error = %e, "leaving the group failed");
        }
    }
}

/// A random member id in Kafka's Uuid text form (22 characters of URL-safe base64).
fn random_member_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes: [u8; 16] = rand::random();
    let mut out = String::with_capacity(22);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 0x3f) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    // The last 2 bits, padded with zeros as unpadded base64 does.
    out.push(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize] as char);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_22_url_safe_characters_and_differ() {
        let a = random_member_id();
        let b = random_member_id();
        assert_eq!(a.len(), 22);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, b);
    }
}
