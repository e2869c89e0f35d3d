//! One member of a consumer group and its reconciliation state.

use std::collections::BTreeSet;

use strom_controller::TopicId;

use super::assignor::ServerAssignor;
use super::Assignment;

/// Where a member is in moving its current assignment to its target
/// (Kafka's `MemberState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// The member owns its target assignment at its epoch (or is moving to a
    /// new target without having anything to wait for).
    Stable,
    /// The member must revoke partitions before it can move to the next epoch.
    UnrevokedPartitions,
    /// The member reached the target epoch but some of its target partitions
    /// are still owned by other members.
    UnreleasedPartitions,
}

impl MemberState {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

/// One member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) subscribed_topic_names: BTreeSet<String>,
    /// None or a non-empty regex.
    pub(crate) subscribed_topic_regex: Option<String>,
    /// The assignor the member asked for, if any.
    pub(crate) server_assignor: Option<ServerAssignor>,
    /// How long the member may take to revoke partitions.
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) state: MemberState,
    pub(crate) member_epoch: i32,
    /// The epoch before the last epoch change: a heartbeat with it is still
    /// accepted if the owned partitions fit (the response may have been lost).
    pub(crate) previous_member_epoch: i32,
    /// Partitions the member may own now.
    pub(crate) assigned: Assignment,
    /// Partitions the member must give up before it moves on.
    pub(crate) pending_revocation: Assignment,
    /// When the member is removed unless it heartbeats (not persisted).
    pub(crate) session_deadline_ms: Option<i64>,
    /// (deadline, member epoch): fence the member if it is still at that
    /// epoch then (it did not revoke in time). Not persisted.
    pub(crate) rebalance_deadline: Option<(i64, i32)>,
}

impl Member {
    /// A member that has just joined: epoch 0, nothing assigned.
    pub(crate) fn new(member_id: String) -> Self {
        Self {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: BTreeSet::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            rebalance_timeout_ms: 0,
            state: MemberState::Stable,
            member_epoch: 0,
            previous_member_epoch: 0,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline_ms: None,
            rebalance_deadline: None,
        }
    }

    /// Kafka's `isReconciledTo`.
    pub(crate) fn is_reconciled_to(&self, assignment_epoch: i32) -> bool {
        self.state == MemberState::Stable && self.member_epoch == assignment_epoch
    }

    /// Every partition the member may still hold: assigned and pending revocation.
    pub(crate) fn owned_partitions(&self) -> impl Iterator<Item = (TopicId, i32)> + '_ {
        self.assigned
            .iter()
            .chain(self.pending_revocation.iter())
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
    }

    /// Whether what decides the target assignment differs (Kafka's
    /// `hasMemberSubscriptionChanged`: names, regex, assignor).
    pub(crate) fn subscription_differs(&self, other: &Member) -> bool {
        self.subscribed_topic_names != other.subscribed_topic_names
            || self.subscribed_topic_regex != other.subscribed_topic_regex
            || self.server_assignor != other.server_assignor
    }
}

/// Whether every partition of `owned` is in `assigned` (Kafka's `isSubset`;
/// `None` is not a subset).
pub(crate) fn is_subset(owned: Option<&Assignment>, assigned: &Assignment) -> bool {
    let Some(owned) = owned else { return false };
    owned.iter().all(|(t, ps)| {
        ps.is_empty()
            || assigned
                .get(t)
                .is_some_and(|a| ps.iter().all(|p| a.contains(p)))
    })
}
