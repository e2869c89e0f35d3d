//! Moves one member's current assignment towards its target, one step per
//! heartbeat (Kafka's `CurrentAssignmentBuilder`). Pure: the caller supplies
//! who else owns what.

use std::collections::BTreeSet;

use strom_controller::TopicId;

use super::{Assignment, MemberState};

/// A member's reconciliation state: what the step reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciliation {
    /// The member's state.
    pub state: MemberState,
    /// The member's epoch.
    pub member_epoch: i32,
    /// The epoch before the last epoch update.
    pub previous_member_epoch: i32,
    /// Partitions the member may own.
    pub assigned: Assignment,
    /// Partitions the member must give up before it moves on.
    pub pending_revocation: Assignment,
}

impl Reconciliation {
    /// Kafka's `updateMemberEpoch`: the previous epoch becomes the current one
    /// even when the epoch does not change.
    fn with_epoch(mut self, epoch: i32) -> Self {
        self.previous_member_epoch = self.member_epoch;
        self.member_epoch = epoch;
        self
    }
}

/// One reconciliation step.
///
/// - `target_epoch` / `target`: the member's target assignment and its epoch;
/// - `owned`: the partitions the member reported in this heartbeat (`None`:
///   not reported, so it is assumed to still own everything it was given);
/// - `owned_by_other(topic, partition)`: whether another member still owns
///   the partition (assigned or pending revocation).
pub fn reconcile(
    current: &Reconciliation,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    owned_by_other: impl Fn(TopicId, i32) -> bool,
) -> Reconciliation {
    match current.state {
        MemberState::Stable => {
            if current.member_epoch == target_epoch {
                current.clone()
            } else {
                next_assignment(
                    current,
                    current.member_epoch,
                    target_epoch,
                    target,
                    owned,
                    owned_by_other,
                )
            }
        }
        MemberState::UnrevokedPartitions => {
            // Wait until the member stops reporting the revoked partitions;
            // then it moves one epoch on (at most to the target's).
            if owns_any(owned, &current.pending_revocation) {
                current.clone()
            } else {
                let epoch = (current.member_epoch + 1).min(target_epoch);
                next_assignment(current, epoch, target_epoch, target, owned, owned_by_other)
            }
        }
        MemberState::UnreleasedPartitions => next_assignment(
            current,
            current.member_epoch,
            target_epoch,
            target,
            owned,
            owned_by_other,
        ),
    }
}

/// Kafka's `ownsRevokedPartitions`: `None` means "owns all".
fn owns_any(owned: Option<&Assignment>, partitions: &Assignment) -> bool {
    let Some(owned) = owned else { return true };
    owned.iter().any(|(t, ps)| {
        partitions
            .get(t)
            .is_some_and(|pending| ps.iter().any(|p| pending.contains(p)))
    })
}

/// Kafka's `computeNextAssignment`.
fn next_assignment(
    current: &Reconciliation,
    member_epoch: i32,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    owned_by_other: impl Fn(TopicId, i32) -> bool,
) -> Reconciliation {
    let empty = BTreeSet::new();
    let topics: BTreeSet<TopicId> = target
        .keys()
        .chain(current.assigned.keys())
        .copied()
        .collect();
    let mut assigned = Assignment::new();
    let mut to_revoke = Assignment::new();
    let mut to_assign = Assignment::new();
    let mut has_unreleased = false;
    for topic in topics {
        let want = target.get(&topic).unwrap_or(&empty);
        let have = current.assigned.get(&topic).unwrap_or(&empty);
        let keep: BTreeSet<i32> = have.intersection(want).copied().collect();
        let revoke: BTreeSet<i32> = have.difference(&keep).copied().collect();
        let mut add = BTreeSet::new();
        for &p in want.difference(&keep) {
            // A partition this member still has to revoke itself is not
            // "unreleased": only one member can own a partition at a time.
            let own_pending = current
                .pending_revocation
                .get(&topic)
                .is_some_and(|s| s.contains(&p));
            if owned_by_other(topic, p) && !own_pending {
                has_unreleased = true;
            } else {
                add.insert(p);
            }
        }
        if !keep.is_empty() {
            assigned.insert(topic, keep);
        }
        if !revoke.is_empty() {
            to_revoke.insert(topic, revoke);
        }
        if !add.is_empty() {
            to_assign.insert(topic, add);
        }
    }

    if !to_revoke.is_empty() && owns_any(owned, &to_revoke) {
        // Revoke first: the member stays at its epoch and is told to keep
        // only `assigned`.
        return Reconciliation {
            state: MemberState::UnrevokedPartitions,
            assigned,
            pending_revocation: to_revoke,
            ..current.clone()
        }
        .with_epoch(member_epoch);
    }
    for (topic, parts) in to_assign {
        assigned.entry(topic).or_default().extend(parts);
    }
    let state = if has_unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
    Reconciliation {
        state,
        assigned,
        pending_revocation: Assignment::new(),
        ..current.clone()
    }
    .with_epoch(target_epoch)
}
