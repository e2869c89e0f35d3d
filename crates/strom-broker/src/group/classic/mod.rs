//! The classic consumer-group protocol (JoinGroup / SyncGroup / Heartbeat /
//! LeaveGroup) as a state machine: one [`ClassicGroup`] per group id.
//!
//! The state machine does no I/O and reads no clock. Every entry point takes
//! the current time and returns what to do as [`Output`]s: responses to parked
//! requests (identified by the caller's [`RequestId`]) and [`Output::PersistGroup`]
//! when the group's metadata must be written to `__consumer_offsets`. The
//! caller arms one timer at [`ClassicGroup::next_deadline_ms`] and calls
//! [`ClassicGroup::tick`] when it fires.
//!
//! Outputs come in order: a `PersistGroup` precedes the responses that depend
//! on it, and the caller should send those responses only once the record is
//! written (Kafka completes them from the append callback).
//!
//! Behaviour follows Kafka's `GroupMetadataManager` / `ClassicGroup` (Kafka 4.x):
//! KIP-394 (member id required on JoinGroup v4+), KIP-345 (static membership),
//! delayed initial rebalance (`group.initial.rebalance.delay.ms`), rebalance and
//! session timeouts. Where we deviate, the item says so and why.

mod join;
mod membership;
mod sync;
#[cfg(test)]
mod tests;
mod timers;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use strom_protocol::ErrorCode;

/// Chosen by the caller for every JoinGroup / SyncGroup request; a response
/// that is delivered later (the request was parked) carries it back so the
/// caller can route it to its connection.
pub type RequestId = u64;

/// Kafka's `consumer` protocol type: groups of this type carry
/// `ConsumerProtocolSubscription` metadata that we decode for OffsetDelete.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Configuration of classic groups (Kafka's broker properties in the docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms` (default 6000): smaller session timeouts
    /// are refused with INVALID_SESSION_TIMEOUT. Protects the coordinator from
    /// clients that would make it expire members constantly.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (default 1800000): larger session timeouts
    /// are refused with INVALID_SESSION_TIMEOUT; bounds how long a dead member
    /// can hold partitions.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms` (default 3000): how long the first
    /// rebalance of an Empty group waits for more members, extended by this much
    /// (up to the rebalance timeout) whenever another member joins meanwhile.
    pub initial_rebalance_delay_ms: i64,
    /// `group.max.size` (default `i32::MAX`, as Kafka): joins beyond this many
    /// members get GROUP_MAX_SIZE_REACHED. Bounds per-group memory.
    pub max_size: usize,
}

/// How long a new member's JoinGroup may stay parked before the member is
/// dropped (Kafka's internal constant `CLASSIC_GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS`).
/// New members cannot heartbeat and a disconnect of a parked request is not
/// seen, so without this a retrying client would leave defunct members behind.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
        }
    }
}

/// The state of a classic group, with Kafka's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members (offsets may still be committed by simple consumers / admin).
    Empty,
    /// A rebalance started: waiting for members to (re)join.
    PreparingRebalance,
    /// Join phase done: waiting for the leader's assignment in SyncGroup.
    CompletingRebalance,
    /// Assignment distributed; members heartbeat.
    Stable,
    /// Deleted or unloaded (coordinator moved); every request is refused.
    Dead,
}

impl GroupState {
    /// Kafka's name, as reported by DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Whether Kafka allows a transition from `from` to `self`.
    fn valid_from(self, from: GroupState) -> bool {
        use GroupState::*;
        match self {
            Empty => from == PreparingRebalance,
            PreparingRebalance => matches!(from, Stable | CompletingRebalance | Empty),
            CompletingRebalance => from == PreparingRebalance,
            Stable => from == CompletingRebalance,
            Dead => true,
        }
    }
}

/// A JoinGroup request, decoded by the handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    /// Routes a parked response back to its connection.
    pub request_id: RequestId,
    /// Empty for a member that has no id yet.
    pub member_id: String,
    /// KIP-345 static membership (JoinGroup v5+).
    pub group_instance_id: Option<String>,
    /// E.g. `consumer`; all members must agree.
    pub protocol_type: String,
    /// Supported protocols (assignors) with their metadata, most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// Session timeout; must lie within the configured bounds.
    pub session_timeout_ms: i32,
    /// Rebalance timeout (JoinGroup v1+; the handler uses the session timeout for v0).
    pub rebalance_timeout_ms: i32,
    /// The request header's client id (kept for DescribeGroups).
    pub client_id: String,
    /// The client's address as shown by DescribeGroups (Kafka: `/host`).
    pub client_host: String,
    /// JoinGroup v4+ (KIP-394): an unknown dynamic member first gets
    /// MEMBER_ID_REQUIRED with a fresh id and must rejoin with it.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: the leader of a Stable group that rejoins as a static
    /// member gets `skip_assignment` instead of having to compute an assignment.
    pub supports_skip_assignment: bool,
    /// JoinGroup v8+ client reason (only for logs; not used by the state machine).
    pub reason: Option<String>,
}

/// A JoinGroup response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResponse {
    /// NONE or the failure.
    pub error: ErrorCode,
    /// The new generation, or -1 on error.
    pub generation_id: i32,
    /// The group's protocol type (None on error).
    pub protocol_type: Option<String>,
    /// The selected protocol (None on error).
    pub protocol_name: Option<String>,
    /// The leader's member id ("" on error).
    pub leader: String,
    /// The member's id (the fresh id with MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// KIP-814: the leader must not recompute the assignment.
    pub skip_assignment: bool,
    /// Every member with its metadata for the selected protocol; only for the leader.
    pub members: Vec<JoinMember>,
}

impl JoinResponse {
    /// An error response (Kafka's defaults for the other fields).
    pub fn error(error: ErrorCode, member_id: String) -> Self {
        Self {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id,
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// One member as listed to the leader in a JoinGroup response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinMember {
    /// The member id.
    pub member_id: String,
    /// The static instance id, if any.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the selected protocol.
    pub metadata: Bytes,
}

/// A SyncGroup request, decoded by the handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    /// Routes a parked response back to its connection.
    pub request_id: RequestId,
    /// The member id.
    pub member_id: String,
    /// The static instance id, if any.
    pub group_instance_id: Option<String>,
    /// The generation the member joined.
    pub generation_id: i32,
    /// SyncGroup v5+: must match the group's, if given.
    pub protocol_type: Option<String>,
    /// SyncGroup v5+: must match the group's, if given.
    pub protocol_name: Option<String>,
    /// The leader's assignment per member id (empty for followers).
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncResponse {
    /// NONE or the failure.
    pub error: ErrorCode,
    /// The group's protocol type on success.
    pub protocol_type: Option<String>,
    /// The group's protocol on success.
    pub protocol_name: Option<String>,
    /// The member's assignment (empty on error).
    pub assignment: Bytes,
}

impl SyncResponse {
    /// An error response.
    pub fn error(error: ErrorCode) -> Self {
        Self {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// What the caller must do after an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this JoinGroup response to the request with this id.
    Join(RequestId, JoinResponse),
    /// Send this SyncGroup response to the request with this id.
    Sync(RequestId, SyncResponse),
    /// The group's metadata changed in a way Kafka persists (a generation's
    /// assignment was set, the group became Empty, a static member was replaced
    /// in a Stable group): write [`ClassicGroup::snapshot`] as the group's
    /// metadata record before sending the responses that follow in the list.
    PersistGroup,
}

/// A member as shown by DescribeGroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberView<'a> {
    /// The member id.
    pub member_id: &'a str,
    /// The static instance id, if any.
    pub group_instance_id: Option<&'a str>,
    /// The client id of the member's JoinGroup.
    pub client_id: &'a str,
    /// The client host of the member's JoinGroup.
    pub client_host: &'a str,
    /// Metadata for the selected protocol; empty unless the group is Stable
    /// (Kafka's DescribeGroups shows metadata only then).
    pub metadata: &'a Bytes,
    /// The member's current assignment (empty until a SyncGroup set it).
    pub assignment: &'a Bytes,
}

/// The state Kafka writes as `GroupMetadataValue` and restores on load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSnapshot {
    /// The group id (the record's key).
    pub group_id: String,
    /// The protocol type, "" if none.
    pub protocol_type: String,
    /// The generation.
    pub generation_id: i32,
    /// The selected protocol, if any.
    pub protocol_name: Option<String>,
    /// The leader's member id, if any.
    pub leader: Option<String>,
    /// When the group entered its current state; -1 if unknown.
    pub current_state_timestamp_ms: i64,
    /// The members, in join order.
    pub members: Vec<MemberSnapshot>,
}

/// One member of a [`GroupSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSnapshot {
    /// The member id.
    pub member_id: String,
    /// The static instance id, if any.
    pub group_instance_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// The rebalance timeout; -1 in old records means "use the session timeout".
    pub rebalance_timeout_ms: i32,
    /// The session timeout.
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// One member of a classic group.
#[derive(Clone, Debug)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    /// The protocol type the member joined with (equals the group's).
    protocol_type: String,
    /// Supported protocols with metadata, most preferred first.
    protocols: Vec<(String, Bytes)>,
    /// The assignment from the last completed SyncGroup.
    assignment: Bytes,
    /// The parked JoinGroup request, if any.
    awaiting_join: Option<RequestId>,
    /// The parked SyncGroup request, if any.
    awaiting_sync: Option<RequestId>,
    /// Joined during the current rebalance: may expire while awaiting join
    /// (Kafka's `isNew`).
    is_new: bool,
    /// When the member expires unless it heartbeats (None: not armed).
    heartbeat_deadline_ms: Option<i64>,
    /// Order of joining: decides leader succession and listing order
    /// (Kafka uses hash-map order; we want determinism).
    join_seq: u64,
}

impl Member {
    /// Metadata for `protocol`, if the member supports it.
    fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m)
    }

    /// Members awaiting a rebalance need not heartbeat (Kafka's
    /// `hasSatisfiedHeartbeat`); new members may still expire.
    fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }
}

/// The join-phase timer (Kafka's `classicGroupJoinKey`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JoinTimer {
    /// Initial rebalance of an Empty group: at `deadline_ms`, extend by up to
    /// another delay if a member joined meanwhile and time remains, else complete.
    Initial {
        deadline_ms: i64,
        delay_ms: i64,
        remaining_ms: i64,
    },
    /// Rebalance timeout: complete the join phase with whoever rejoined.
    Complete { deadline_ms: i64 },
}

impl JoinTimer {
    fn deadline_ms(self) -> i64 {
        match self {
            JoinTimer::Initial { deadline_ms, .. } | JoinTimer::Complete { deadline_ms } => {
                deadline_ms
            }
        }
    }
}

/// The pending-sync timer (Kafka's `classicGroupSyncKey`): members that have
/// not sent SyncGroup for `generation_id` by `deadline_ms` are removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SyncTimer {
    deadline_ms: i64,
    generation_id: i32,
}

/// A classic group: membership, generation, selected protocol, assignments,
/// parked requests and timers. See the module docs.
#[derive(Clone, Debug)]
pub struct ClassicGroup {
    group_id: String,
    state: GroupState,
    previous_state: GroupState,
    /// When the group entered `state` (None only for restored old records).
    current_state_timestamp_ms: Option<i64>,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    generation_id: i32,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// Static members: instance id → member id.
    static_members: BTreeMap<String, String>,
    /// KIP-394 members that got MEMBER_ID_REQUIRED and have not rejoined yet:
    /// member id → deadline (now + their session timeout).
    pending_join_members: BTreeMap<String, i64>,
    /// Members that have not sent SyncGroup for the current generation.
    pending_sync_members: BTreeSet<String>,
    /// Topics of the `consumer` subscriptions, computed at each generation.
    subscribed_topics: Option<BTreeSet<String>>,
    /// A member joined during the initial rebalance: extend its delay.
    new_member_added: bool,
    join_timer: Option<JoinTimer>,
    sync_timer: Option<SyncTimer>,
    next_join_seq: u64,
}

impl ClassicGroup {
    /// A new Empty group at generation 0.
    pub fn new(group_id: String, now_ms: i64) -> Self {
        Self {
            group_id,
            state: GroupState::Empty,
            previous_state: GroupState::Dead,
            current_state_timestamp_ms: Some(now_ms),
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_join_members: BTreeMap::new(),
            pending_sync_members: BTreeSet::new(),
            subscribed_topics: None,
            new_member_added: false,
            join_timer: None,
            sync_timer: None,
            next_join_seq: 0,
        }
    }

    /// The group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The current state.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// The current generation.
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// The protocol type, once a member joined.
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The protocol selected for the current generation.
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    /// The leader's member id.
    pub fn leader(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    /// When the group entered its current state (None for old restored records).
    pub fn current_state_timestamp_ms(&self) -> Option<i64> {
        self.current_state_timestamp_ms
    }

    /// Number of members (excluding KIP-394 pending members).
    pub fn num_members(&self) -> usize {
        self.members.len()
    }

    /// Whether `member_id` is a member.
    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// The members in join order, for DescribeGroups.
    pub fn members(&self) -> impl Iterator<Item = MemberView<'_>> {
        static NO_METADATA: Bytes = Bytes::new();
        let protocol = self
            .protocol_name
            .as_deref()
            .filter(|_| self.state == GroupState::Stable);
        self.ordered_members().into_iter().map(move |m| MemberView {
            member_id: &m.member_id,
            group_instance_id: m.group_instance_id.as_deref(),
            client_id: &m.client_id,
            client_host: &m.client_host,
            metadata: protocol.and_then(|p| m.metadata(p)).unwrap_or(&NO_METADATA),
            assignment: &m.assignment,
        })
    }

    /// The topics the members subscribe to, for a `consumer` group, as computed
    /// when the current generation started (Kafka's `subscribedTopics`). None if
    /// the protocol type is not `consumer`, no protocol is selected, or a
    /// subscription could not be decoded.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        self.subscribed_topics.clone()
    }

    /// Kafka's `isSubscribedToTopic`: when the topics are unknown, a `consumer`
    /// group counts as subscribed (so its offsets are not deleted by mistake).
    pub fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => self.uses_consumer_protocol(),
        }
    }

    fn uses_consumer_protocol(&self) -> bool {
        self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
    }

    /// The earliest time at which [`ClassicGroup::tick`] has something to do.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let members = self
            .members
            .values()
            .filter_map(|m| m.heartbeat_deadline_ms);
        let pending = self.pending_join_members.values().copied();
        let join = self.join_timer.map(JoinTimer::deadline_ms);
        let sync = self.sync_timer.map(|t| t.deadline_ms);
        members.chain(pending).chain(join).chain(sync).min()
    }

    /// The metadata Kafka writes as `GroupMetadataValue`.
    pub fn snapshot(&self) -> GroupSnapshot {
        let protocol = self.protocol_name.as_deref();
        GroupSnapshot {
            group_id: self.group_id.clone(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.current_state_timestamp_ms.unwrap_or(-1),
            members: self
                .ordered_members()
                .into_iter()
                .map(|m| MemberSnapshot {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .and_then(|p| m.metadata(p))
                        .cloned()
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its last metadata record, as Kafka does on load:
    /// Stable if it has members (each supporting only the selected protocol,
    /// with a fresh heartbeat deadline of now + session timeout), else Empty.
    /// A group over `cfg.max_size` (the limit was lowered) starts a rebalance
    /// so its members can commit and the last rejoiners are refused (Kafka's
    /// `onLoaded`).
    pub fn restore(snapshot: GroupSnapshot, cfg: &GroupConfig, now_ms: i64) -> Self {
        let mut group = ClassicGroup::new(snapshot.group_id, now_ms);
        group.state = if snapshot.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group.generation_id = snapshot.generation_id;
        group.protocol_type = Some(snapshot.protocol_type).filter(|t| !t.is_empty());
        group.protocol_name = snapshot.protocol_name;
        group.leader_id = snapshot.leader;
        group.current_state_timestamp_ms =
            Some(snapshot.current_state_timestamp_ms).filter(|&t| t != -1);
        let protocol = group.protocol_name.clone().unwrap_or_default();
        for m in snapshot.members {
            let rebalance_timeout_ms = if m.rebalance_timeout_ms == -1 {
                m.session_timeout_ms
            } else {
                m.rebalance_timeout_ms
            };
            let member = Member {
                heartbeat_deadline_ms: Some(now_ms + i64::from(m.session_timeout_ms)),
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                join_seq: 0,
            };
            group.add_member(member);
        }
        group.subscribed_topics = group.compute_subscribed_topics();
        if group.members.len() > cfg.max_size {
            let mut out = Vec::new();
            group.prepare_rebalance(cfg.initial_rebalance_delay_ms, now_ms, &mut out);
            debug_assert!(out.is_empty(), "a restored group has no parked requests");
        }
        group
    }
}
