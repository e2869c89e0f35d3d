//! The KIP-848 consumer-group protocol (`group.protocol=consumer`,
//! ConsumerGroupHeartbeat / ConsumerGroupDescribe) as a state machine: one
//! [`ConsumerGroup`] per group id.
//!
//! The broker computes the assignment (server-side assignors, see
//! [`assignor`]) and moves every member towards it one heartbeat at a time:
//!
//! - the **group epoch** bumps whenever a member joins, leaves or changes its
//!   subscription, or the metadata of a subscribed topic changes;
//! - when the group epoch is ahead of the **assignment epoch**, the next
//!   heartbeat recomputes the **target assignment** with the group's assignor;
//! - each member's **current assignment** then converges to its target
//!   ([`reconcile`]): partitions to revoke first (the member keeps its epoch
//!   and is told what it may keep), partitions still owned by another member
//!   are only handed out once released, and the member reaches the target epoch
//!   once it owns nothing it should not. No partition is ever owned by two
//!   members (asserted in [`ConsumerGroup`]'s ownership index).
//!
//! The state machine does no I/O and reads no clock: every entry point takes
//! the current time, and the caller arms one timer at
//! [`ConsumerGroup::next_deadline_ms`] and calls [`ConsumerGroup::tick`] then.
//! ConsumerGroupHeartbeat is answered at once; [`Output::PersistGroup`] tells
//! the caller to write [`ConsumerGroup::snapshot`] before sending the answer.
//!
//! Behaviour follows Kafka 4.x's `GroupMetadataManager.consumerGroupHeartbeat`,
//! `ConsumerGroup`, `CurrentAssignmentBuilder` and `TargetAssignmentBuilder`.
//! Deviations are listed where they happen; the main ones:
//! - subscribed-topic metadata is compared with the caller's [`TopicsView`] on
//!   every heartbeat (Kafka refreshes it on a timer / metadata-image change);
//! - regular expressions are resolved synchronously with a small matcher
//!   ([`regex`]) that supports a documented subset of RE2; anything else is
//!   refused with INVALID_REGULAR_EXPRESSION;
//! - a static member may replace its released predecessor even when the group
//!   is at `group.consumer.max.size` (Kafka refuses that rejoin).

pub mod assignor;
mod heartbeat;
mod member;
pub mod reconcile;
pub mod regex;
mod snapshot;
mod target;
#[cfg(test)]
mod tests;
mod timers;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use strom_controller::TopicId;
use strom_protocol::ErrorCode;

pub use assignor::ServerAssignor;
pub use member::MemberState;
pub use snapshot::{ConsumerGroupSnapshot, MemberSnapshot};

use member::Member;

/// Member epoch sent to join (or rejoin) the group.
pub const JOIN_GROUP_MEMBER_EPOCH: i32 = 0;
/// Member epoch sent to leave the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch sent by a static member that leaves but will come back: it
/// keeps its partitions until its session times out (KIP-848 static membership).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// Longest accepted `subscribed_topic_regex`, in bytes. The matcher's cost is
/// linear in this times the topic-name length, once per topic per heartbeat.
pub const MAX_REGEX_BYTES: usize = 1024;

/// The caller's snapshot of the cluster's topics: name → (topic id, partition
/// count). Build it from the metadata image; leave out topics the group must
/// not see (e.g. internal topics if regexes should not match them).
pub type TopicsView = BTreeMap<String, (TopicId, i32)>;

/// Partitions per topic: a member's assignment, target or owned partitions.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// Configuration of consumer groups (Kafka's broker properties in the docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms` (default 45000): a member that does
    /// not heartbeat for this long is removed and its partitions reassigned.
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (default 5000): returned in every
    /// response; how often members heartbeat (and so how fast they converge).
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size` (default `i32::MAX`, as Kafka): new members
    /// beyond this get GROUP_MAX_SIZE_REACHED. Bounds per-group memory and the
    /// assignors' work.
    pub max_size: usize,
    /// `group.consumer.assignors` (default `uniform,range`): the server
    /// assignors members may choose; the first is the group's default.
    pub assignors: Vec<ServerAssignor>,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: i32::MAX as usize,
            assignors: vec![ServerAssignor::Uniform, ServerAssignor::Range],
        }
    }
}

impl ConsumerGroupConfig {
    /// Checks the settings once at startup.
    pub fn validate(&self) -> Result<(), String> {
        if self.assignors.is_empty() {
            return Err("group.consumer.assignors must name at least one assignor".into());
        }
        if self.heartbeat_interval_ms <= 0 || self.session_timeout_ms <= 0 {
            return Err(
                "group.consumer.{session.timeout,heartbeat.interval}.ms must be > 0".into(),
            );
        }
        if self.heartbeat_interval_ms >= self.session_timeout_ms {
            return Err(
                "group.consumer.heartbeat.interval.ms must be below group.consumer.session.timeout.ms"
                    .into(),
            );
        }
        Ok(())
    }

    /// The assignor used when no member asks for one.
    pub fn default_assignor(&self) -> ServerAssignor {
        self.assignors
            .first()
            .copied()
            .unwrap_or(ServerAssignor::Uniform)
    }
}

/// The state of a consumer group, with Kafka's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members.
    Empty,
    /// The group epoch is ahead of the target assignment's.
    Assigning,
    /// The target is computed; some member has not reached it yet.
    Reconciling,
    /// Every member owns exactly its target at the assignment epoch.
    Stable,
}

impl GroupState {
    /// Kafka's name, as reported by ConsumerGroupDescribe and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
            GroupState::Stable => "Stable",
        }
    }
}

/// A ConsumerGroupHeartbeat request, decoded by the handler. Optional fields
/// are `None` when the client did not change them since its last heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// The client-generated member id ("" lets the caller generate one, as v0).
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member's temporary leave, else
    /// the member's current epoch.
    pub member_epoch: i32,
    /// KIP-345-style static membership.
    pub instance_id: Option<String>,
    /// The client's rack.
    pub rack_id: Option<String>,
    /// How long the member may take to revoke partitions; -1 if unchanged.
    pub rebalance_timeout_ms: i32,
    /// Subscribed topic names.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Subscribed topic regex (RE2 syntax, full match); "" for none.
    pub subscribed_topic_regex: Option<String>,
    /// The server assignor the member asks for.
    pub server_assignor: Option<String>,
    /// The partitions the member owns now (after its last reconciliation).
    pub owned_partitions: Option<Assignment>,
    /// The request header's client id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
}

/// A successful ConsumerGroupHeartbeat response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// The member id (generated if the request had none).
    pub member_id: String,
    /// The member's epoch after this heartbeat (-1 / -2 after a leave).
    pub member_epoch: i32,
    /// `group.consumer.heartbeat.interval.ms` (0 after a leave, as Kafka).
    pub heartbeat_interval_ms: i32,
    /// The partitions the member may own now; `None` when unchanged.
    pub assignment: Option<Assignment>,
}

/// Why a member left the group (for the runtime's logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovalReason {
    /// It sent member epoch -1.
    Left,
    /// No heartbeat within the session timeout.
    SessionTimeout,
    /// It did not revoke partitions within its rebalance timeout.
    RebalanceTimeout,
    /// A static member with the same instance id replaced it.
    Replaced,
}

/// What the caller must do after an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The group's persistent state changed (Kafka writes consumer-group
    /// records): write [`ConsumerGroup::snapshot`] before answering.
    PersistGroup,
    /// A member was removed; for logging.
    MemberRemoved {
        /// The removed member.
        member_id: String,
        /// Why.
        reason: RemovalReason,
    },
}

/// Partitions of one topic, with its name, for ConsumerGroupDescribe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedTopicPartitions {
    /// The topic id.
    pub topic_id: TopicId,
    /// The topic name.
    pub topic_name: String,
    /// The partitions, ascending.
    pub partitions: Vec<i32>,
}

/// One member, for ConsumerGroupDescribe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedMember {
    /// The member id.
    pub member_id: String,
    /// The static instance id, if any.
    pub instance_id: Option<String>,
    /// The rack, if any.
    pub rack_id: Option<String>,
    /// The current member epoch.
    pub member_epoch: i32,
    /// The reconciliation state (not on the wire; for tools and logs).
    pub state: MemberState,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// Subscribed topic names, sorted.
    pub subscribed_topic_names: Vec<String>,
    /// The subscribed regex, if any.
    pub subscribed_topic_regex: Option<String>,
    /// The partitions the member owns (topics unknown to the view are left out, as Kafka).
    pub assignment: Vec<DescribedTopicPartitions>,
    /// The member's target assignment.
    pub target_assignment: Vec<DescribedTopicPartitions>,
}

/// A group, for ConsumerGroupDescribe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    /// Kafka's state name.
    pub state: GroupState,
    /// The group epoch.
    pub group_epoch: i32,
    /// The target assignment's epoch.
    pub assignment_epoch: i32,
    /// The assignor the next target assignment will use.
    pub assignor_name: &'static str,
    /// The members, by member id.
    pub members: Vec<DescribedMember>,
}

/// A consumer group: membership, epochs, target and current assignments,
/// timers. See the module docs.
#[derive(Clone, Debug)]
pub struct ConsumerGroup {
    group_id: String,
    /// Bumped by every change of membership, subscriptions or subscribed
    /// topics' metadata.
    group_epoch: i32,
    /// The group epoch the target assignment was computed at.
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    /// Static members: instance id → member id.
    static_members: BTreeMap<String, String>,
    /// Target assignment per member id (every member has an entry once the
    /// target was computed with it; absent means empty).
    target: BTreeMap<String, Assignment>,
    /// Who owns each partition (assigned or pending revocation): Kafka's
    /// `currentPartitionEpoch`, keyed to the member instead of its epoch.
    owners: HashMap<(TopicId, i32), String>,
    /// Metadata of the subscribed topics that exist: name → (id, partitions).
    /// A change bumps the group epoch.
    subscription_metadata: BTreeMap<String, (TopicId, i32)>,
}

impl ConsumerGroup {
    /// A new, empty group at epoch 0.
    pub fn new(group_id: String) -> Self {
        Self {
            group_id,
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            target: BTreeMap::new(),
            owners: HashMap::new(),
            subscription_metadata: BTreeMap::new(),
        }
    }

    /// The group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The group epoch.
    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    /// The target assignment's epoch.
    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Number of members.
    pub fn num_members(&self) -> usize {
        self.members.len()
    }

    /// Whether `member_id` is a member.
    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// A member's epoch, if it is a member.
    pub fn member_epoch(&self, member_id: &str) -> Option<i32> {
        self.members.get(member_id).map(|m| m.member_epoch)
    }

    /// A member's current assignment (what it may own now).
    pub fn member_assignment(&self, member_id: &str) -> Option<&Assignment> {
        self.members.get(member_id).map(|m| &m.assigned)
    }

    /// The state, computed as Kafka's `ConsumerGroup.maybeUpdateGroupState`.
    pub fn state(&self) -> GroupState {
        if self.members.is_empty() {
            GroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            GroupState::Assigning
        } else if self
            .members
            .values()
            .all(|m| m.is_reconciled_to(self.assignment_epoch))
        {
            GroupState::Stable
        } else {
            GroupState::Reconciling
        }
    }

    /// Names of the topics the group subscribes to (names and resolved
    /// regexes) that exist, for OffsetDelete and offset expiry.
    pub fn subscribed_topic_names(&self) -> BTreeSet<String> {
        self.subscription_metadata.keys().cloned().collect()
    }

    /// Kafka's `isSubscribedToTopic`.
    pub fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        self.subscription_metadata.contains_key(topic)
    }

    /// The assignor the next target assignment uses: the one most members
    /// ask for (ties: the first in `cfg.assignors`), else the default.
    /// Kafka's `computePreferredServerAssignor`.
    pub fn preferred_assignor(&self, cfg: &ConsumerGroupConfig) -> ServerAssignor {
        let mut counts: BTreeMap<ServerAssignor, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor {
                *counts.entry(a).or_default() += 1;
            }
        }
        let best = counts.values().copied().max().unwrap_or(0);
        if best == 0 {
            return cfg.default_assignor();
        }
        cfg.assignors
            .iter()
            .copied()
            .chain(counts.keys().copied())
            .find(|a| counts.get(a) == Some(&best))
            .unwrap_or_else(|| cfg.default_assignor())
    }

    /// KIP-848 OffsetCommit validation (Kafka's `validateOffsetCommit`): a
    /// negative epoch (admin client, manual assignment) may commit only while
    /// the group is empty; otherwise the member must exist (UNKNOWN_MEMBER_ID)
    /// and send its current epoch (STALE_MEMBER_EPOCH). The caller checks that
    /// non-transactional commits from consumer-protocol members use
    /// OffsetCommit v9+ (UNSUPPORTED_VERSION).
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), ErrorCode> {
        self.check_commit_member(member_id, member_epoch, ErrorCode::StaleMemberEpoch)
    }

    /// An offset commit's member check: none for an empty group and no
    /// epoch, else the member must exist and send its current epoch
    /// (`stale` otherwise).
    fn check_commit_member(
        &self,
        member_id: &str,
        member_epoch: i32,
        stale: ErrorCode,
    ) -> Result<(), ErrorCode> {
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let member = self
            .members
            .get(member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        if member.member_epoch != member_epoch {
            return Err(stale);
        }
        Ok(())
    }

    /// TxnOffsetCommit validation (Kafka's `validateOffsetCommit` with
    /// `isTransactional`): as OffsetCommit, but a request without member id,
    /// epoch and instance id (TxnOffsetCommit before v3) is not checked, and
    /// a member epoch that does not match is ILLEGAL_GENERATION, the error
    /// transactional producers understand.
    pub fn validate_txn_offset_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), ErrorCode> {
        if member_epoch == -1 && member_id.is_empty() && group_instance_id.is_none() {
            return Ok(());
        }
        self.check_commit_member(member_id, member_epoch, ErrorCode::IllegalGeneration)
    }

    /// KIP-848 OffsetFetch validation (Kafka's `validateOffsetFetch`): without
    /// a member id and with a negative epoch (admin client, older versions) it
    /// is always allowed; otherwise as [`Self::validate_offset_commit`].
    pub fn validate_offset_fetch(
        &self,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), ErrorCode> {
        let Some(member_id) = member_id else {
            return if member_epoch < 0 {
                Ok(())
            } else {
                Err(ErrorCode::UnknownMemberId)
            };
        };
        let member = self
            .members
            .get(member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        if member.member_epoch != member_epoch {
            return Err(ErrorCode::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Data for ConsumerGroupDescribe; topic names come from `topics`.
    pub fn describe(&self, topics: &TopicsView, cfg: &ConsumerGroupConfig) -> GroupDescription {
        let names: HashMap<TopicId, &str> = topics
            .iter()
            .map(|(name, (id, _))| (*id, name.as_str()))
            .collect();
        let describe_assignment = |a: &Assignment| -> Vec<DescribedTopicPartitions> {
            a.iter()
                .filter_map(|(id, parts)| {
                    names.get(id).map(|name| DescribedTopicPartitions {
                        topic_id: *id,
                        topic_name: (*name).to_owned(),
                        partitions: parts.iter().copied().collect(),
                    })
                })
                .collect()
        };
        let empty = Assignment::new();
        GroupDescription {
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor_name: self.preferred_assignor(cfg).name(),
            members: self
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    state: m.state,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    assignment: describe_assignment(&m.assigned),
                    target_assignment: describe_assignment(
                        self.target.get(&m.member_id).unwrap_or(&empty),
                    ),
                })
                .collect(),
        }
    }

    /// Records `member` as the owner of its assigned and pending partitions,
    /// replacing whatever `member_id` owned before. Panics if a partition is
    /// owned by another member: the protocol's core invariant.
    fn set_ownership(&mut self, member_id: &str, before: Option<&Member>, after: Option<&Member>) {
        if let Some(b) = before {
            for tp in b.owned_partitions() {
                if self.owners.get(&tp).map(String::as_str) == Some(member_id) {
                    self.owners.remove(&tp);
                }
            }
        }
        if let Some(a) = after {
            for tp in a.owned_partitions() {
                if let Some(prev) = self.owners.insert(tp, member_id.to_owned()) {
                    assert_eq!(
                        prev, member_id,
                        "partition {tp:?} given to {member_id} while {prev} owns it"
                    );
                }
            }
        }
    }

    /// Whether a member other than `member_id` owns the partition.
    fn owned_by_other(&self, member_id: &str, topic_id: TopicId, partition: i32) -> bool {
        self.owners
            .get(&(topic_id, partition))
            .is_some_and(|owner| owner != member_id)
    }
}
