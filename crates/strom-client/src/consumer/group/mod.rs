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

mod classic;
mod kip848;

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_protocol::messages::StrBytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::debug;

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
