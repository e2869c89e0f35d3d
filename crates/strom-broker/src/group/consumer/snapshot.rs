//! The persistent state of a consumer group and its restoration on load.
//!
//! Kafka writes one record per aspect (group epoch, member subscription,
//! target assignment, current assignment, subscription metadata); the
//! coordinator can derive those records from [`ConsumerGroupSnapshot`] or
//! store it whole. Timers are not persistent: a restored group gives every
//! member a fresh session and re-arms the rebalance timeout of members that
//! still have partitions to revoke, as Kafka does on load.

use std::collections::BTreeMap;

use strom_controller::TopicId;

use super::member::Member;
use super::{Assignment, ConsumerGroup, ConsumerGroupConfig, MemberState, ServerAssignor};

/// Everything a consumer group persists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupSnapshot {
    /// The group id.
    pub group_id: String,
    /// The group epoch.
    pub group_epoch: i32,
    /// The target assignment's epoch.
    pub assignment_epoch: i32,
    /// Subscribed topics that exist: name → (id, partition count).
    pub subscription_metadata: BTreeMap<String, (TopicId, i32)>,
    /// The members, by member id.
    pub members: Vec<MemberSnapshot>,
}

/// One member of a [`ConsumerGroupSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSnapshot {
    /// The member id.
    pub member_id: String,
    /// The static instance id, if any.
    pub instance_id: Option<String>,
    /// The rack, if any.
    pub rack_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// Subscribed topic names, sorted.
    pub subscribed_topic_names: Vec<String>,
    /// Subscribed regex, if any.
    pub subscribed_topic_regex: Option<String>,
    /// The assignor the member asked for (Kafka's name), if any.
    pub server_assignor: Option<String>,
    /// The member's rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Reconciliation state.
    pub state: MemberState,
    /// Member epoch.
    pub member_epoch: i32,
    /// Previous member epoch.
    pub previous_member_epoch: i32,
    /// Partitions the member may own.
    pub assigned: Assignment,
    /// Partitions it must revoke.
    pub pending_revocation: Assignment,
    /// Its target assignment.
    pub target: Assignment,
}

impl ConsumerGroup {
    /// The group's persistent state.
    pub fn snapshot(&self) -> ConsumerGroupSnapshot {
        ConsumerGroupSnapshot {
            group_id: self.group_id.clone(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            subscription_metadata: self.subscription_metadata.clone(),
            members: self
                .members
                .values()
                .map(|m| MemberSnapshot {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    server_assignor: m.server_assignor.map(|a| a.name().to_owned()),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    state: m.state,
                    member_epoch: m.member_epoch,
                    previous_member_epoch: m.previous_member_epoch,
                    assigned: m.assigned.clone(),
                    pending_revocation: m.pending_revocation.clone(),
                    target: self.target.get(&m.member_id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its snapshot. Panics if two members own the
    /// same partition: such a snapshot was not written by this code.
    pub fn restore(
        snapshot: ConsumerGroupSnapshot,
        cfg: &ConsumerGroupConfig,
        now_ms: i64,
    ) -> Self {
        let mut group = ConsumerGroup::new(snapshot.group_id);
        group.group_epoch = snapshot.group_epoch;
        group.assignment_epoch = snapshot.assignment_epoch;
        group.subscription_metadata = snapshot.subscription_metadata;
        for s in snapshot.members {
            let rebalance_deadline = (s.state == MemberState::UnrevokedPartitions)
                .then(|| (now_ms + i64::from(s.rebalance_timeout_ms), s.member_epoch));
            let member = Member {
                member_id: s.member_id.clone(),
                instance_id: s.instance_id,
                rack_id: s.rack_id,
                client_id: s.client_id,
                client_host: s.client_host,
                subscribed_topic_names: s.subscribed_topic_names.into_iter().collect(),
                subscribed_topic_regex: s.subscribed_topic_regex,
                server_assignor: s
                    .server_assignor
                    .as_deref()
                    .and_then(ServerAssignor::from_name),
                rebalance_timeout_ms: s.rebalance_timeout_ms,
                state: s.state,
                member_epoch: s.member_epoch,
                previous_member_epoch: s.previous_member_epoch,
                assigned: s.assigned,
                pending_revocation: s.pending_revocation,
                session_deadline_ms: Some(now_ms + i64::from(cfg.session_timeout_ms)),
                rebalance_deadline,
            };
            group.target.insert(s.member_id, s.target);
            group.put_member(member);
        }
        group
    }
}
