//! ConsumerGroupHeartbeat: join, heartbeat, leave (Kafka's
//! `GroupMetadataManager.consumerGroupHeartbeat` and `consumerGroupLeave`).

use strom_protocol::ErrorCode;

use super::member::{is_subset, Member};
use super::reconcile::{reconcile, Reconciliation};
use super::regex::TopicRegex;
use super::{
    Assignment, ConsumerGroup, ConsumerGroupConfig, HeartbeatRequest, HeartbeatResponse,
    MemberState, Output, RemovalReason, ServerAssignor, TopicsView, JOIN_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};

/// The member a heartbeat applies to, before the request's changes.
struct Resolved {
    /// The member as it is (or a fresh one for a join).
    member: Member,
    /// Whether the member is not in the group yet.
    is_new: bool,
    /// A released static member this one replaces.
    replaces: Option<String>,
}

impl ConsumerGroup {
    /// Handles a ConsumerGroupHeartbeat (join with epoch 0, leave with -1 / -2,
    /// otherwise a heartbeat), answering at once. `topics` is the current view
    /// of the cluster's topics; `new_member_id` makes an id for a request that
    /// has none (ConsumerGroupHeartbeat v0; v1+ clients generate their own).
    ///
    /// Errors are Kafka's: INVALID_REQUEST, UNSUPPORTED_ASSIGNOR,
    /// INVALID_REGULAR_EXPRESSION, UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH,
    /// UNRELEASED_INSTANCE_ID, FENCED_INSTANCE_ID, GROUP_MAX_SIZE_REACHED. A
    /// failed heartbeat changes nothing.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        topics: &TopicsView,
        cfg: &ConsumerGroupConfig,
        now_ms: i64,
        new_member_id: impl FnOnce() -> String,
    ) -> Result<(HeartbeatResponse, Vec<Output>), ErrorCode> {
        let assignor = validate(&req, cfg)?;
        if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH
            || req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
        {
            return self.leave(&req.member_id, req.instance_id.as_deref(), req.member_epoch);
        }
        let member_id = if req.member_id.is_empty() {
            new_member_id()
        } else {
            req.member_id.clone()
        };
        let resolved = self.resolve_member(&req, &member_id, cfg)?;
        let mut out = Vec::new();

        // 1. Apply the request's changes; a new subscription bumps the epoch.
        let before = resolved.member;
        let mut member = before.clone();
        apply_request(&mut member, &req, assignor);
        let mut persist = resolved.is_new || resolved.replaces.is_some() || member != before;
        let mut bump = self.group_epoch == 0 || member.subscription_differs(&before);
        if let Some(old_id) = &resolved.replaces {
            self.replace_static_member(old_id, &member_id, &mut out);
        }
        self.put_member(member);

        // 2. Subscribed topics' metadata (new, deleted or grown topics).
        let metadata = self.compute_subscription_metadata(topics);
        if metadata != self.subscription_metadata {
            self.subscription_metadata = metadata;
            bump = true;
        }
        if bump {
            self.group_epoch += 1;
            persist = true;
        }

        // 3. A new target assignment when the group epoch moved on.
        if self.group_epoch > self.assignment_epoch {
            self.compute_target_assignment(cfg);
            persist = true;
        }

        // 4. Move the member one step towards its target.
        persist |= self.reconcile_member(&member_id, req.owned_partitions.as_ref(), now_ms);
        let member = self
            .members
            .get_mut(&member_id)
            .expect("member just stored");
        member.session_deadline_ms = Some(now_ms + i64::from(cfg.session_timeout_ms));

        // Kafka sends the assignment on a join, on a full request (the client
        // resent everything, e.g. after an error) and when it changed.
        let full_request = req.rebalance_timeout_ms != -1
            && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
            && req.owned_partitions.is_some();
        // We also resend it when the reported owned partitions are not what
        // the member may own: a client that missed a response learns its
        // assignment without a full request (harmless for clients that have
        // it: they compare it with their current target).
        let owned_differs = req
            .owned_partitions
            .as_ref()
            .is_some_and(|o| !same_partitions(o, &member.assigned));
        let send_assignment = req.member_epoch == JOIN_GROUP_MEMBER_EPOCH
            || full_request
            || owned_differs
            || member.assigned != before.assigned;
        let response = HeartbeatResponse {
            member_id,
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: cfg.heartbeat_interval_ms,
            assignment: send_assignment.then(|| member.assigned.clone()),
        };
        if persist {
            out.insert(0, Output::PersistGroup);
        }
        Ok((response, out))
    }

    /// A leave (member epoch -1, or -2 for a static member that comes back).
    /// -1 removes the member and bumps the group epoch; -2 keeps a static
    /// member and its partitions until its session times out or a new
    /// instance with the same instance id replaces it.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(HeartbeatResponse, Vec<Output>), ErrorCode> {
        let mut out = Vec::new();
        let member_id = match instance_id {
            None => {
                if !self.members.contains_key(member_id) {
                    return Err(ErrorCode::UnknownMemberId);
                }
                member_id.to_owned()
            }
            Some(instance) => {
                let current = self
                    .static_members
                    .get(instance)
                    .ok_or(ErrorCode::UnknownMemberId)?;
                if current != member_id {
                    return Err(ErrorCode::FencedInstanceId);
                }
                current.clone()
            }
        };
        if member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH && instance_id.is_some() {
            let before = self
                .members
                .get(&member_id)
                .cloned()
                .expect("member exists");
            let mut after = before.clone();
            after.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
            after.pending_revocation = Assignment::new();
            after.rebalance_deadline = None;
            self.set_ownership(&member_id, Some(&before), Some(&after));
            self.members.insert(member_id.clone(), after);
            out.push(Output::PersistGroup);
        } else {
            self.remove_member(&member_id, RemovalReason::Left, &mut out);
        }
        let response = HeartbeatResponse {
            member_id,
            member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        };
        Ok((response, out))
    }

    /// Finds the member a (non-leave) heartbeat is for, with Kafka's checks.
    fn resolve_member(
        &self,
        req: &HeartbeatRequest,
        member_id: &str,
        cfg: &ConsumerGroupConfig,
    ) -> Result<Resolved, ErrorCode> {
        let epoch = req.member_epoch;
        let owned = req.owned_partitions.as_ref();
        let existing = |m: &Member| Resolved {
            member: m.clone(),
            is_new: false,
            replaces: None,
        };
        let Some(instance) = &req.instance_id else {
            if let Some(m) = self.members.get(member_id) {
                if epoch != JOIN_GROUP_MEMBER_EPOCH {
                    check_member_epoch(m, epoch, owned)?;
                }
                return Ok(existing(m));
            }
            if epoch != JOIN_GROUP_MEMBER_EPOCH {
                return Err(ErrorCode::UnknownMemberId);
            }
            return self.new_member(member_id, cfg);
        };
        let current = self
            .static_members
            .get(instance)
            .and_then(|id| self.members.get(id));
        if epoch != JOIN_GROUP_MEMBER_EPOCH {
            let m = current.ok_or(ErrorCode::UnknownMemberId)?;
            if m.member_id != member_id {
                return Err(ErrorCode::FencedInstanceId);
            }
            check_member_epoch(m, epoch, owned)?;
            return Ok(existing(m));
        }
        match current {
            None => match self.members.get(member_id) {
                Some(m) => Ok(existing(m)),
                None => self.new_member(member_id, cfg),
            },
            // The instance came back (after a temporary leave): it starts
            // afresh at epoch 0 but keeps the partitions it owned.
            Some(m) if m.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
                let mut member = Member::new(member_id.to_owned());
                member.assigned = m.assigned.clone();
                Ok(Resolved {
                    member,
                    is_new: m.member_id != member_id,
                    replaces: (m.member_id != member_id).then(|| m.member_id.clone()),
                })
            }
            // The same process rejoining (e.g. after FENCED_MEMBER_EPOCH).
            Some(m) if m.member_id == member_id => Ok(existing(m)),
            Some(_) => Err(ErrorCode::UnreleasedInstanceId),
        }
    }

    fn new_member(
        &self,
        member_id: &str,
        cfg: &ConsumerGroupConfig,
    ) -> Result<Resolved, ErrorCode> {
        if self.members.len() >= cfg.max_size {
            return Err(ErrorCode::GroupMaxSizeReached);
        }
        Ok(Resolved {
            member: Member::new(member_id.to_owned()),
            is_new: true,
            replaces: None,
        })
    }

    /// Removes the released static member `old_id` in favour of `new_id`,
    /// which inherits its target assignment (Kafka's static-member
    /// replacement; no epoch bump for the removal itself).
    fn replace_static_member(&mut self, old_id: &str, new_id: &str, out: &mut Vec<Output>) {
        let old = self.members.remove(old_id).expect("replaced member exists");
        self.set_ownership(old_id, Some(&old), None);
        if let Some(target) = self.target.remove(old_id) {
            self.target.insert(new_id.to_owned(), target);
        }
        if let Some(instance) = &old.instance_id {
            self.static_members.remove(instance);
        }
        out.push(Output::MemberRemoved {
            member_id: old_id.to_owned(),
            reason: RemovalReason::Replaced,
        });
    }

    /// Stores `member` (new or updated) and its ownership and instance id.
    pub(crate) fn put_member(&mut self, member: Member) {
        let id = member.member_id.clone();
        let before = self.members.get(&id).cloned();
        if let Some(old_instance) = before.as_ref().and_then(|b| b.instance_id.as_ref()) {
            if member.instance_id.as_ref() != Some(old_instance)
                && self.static_members.get(old_instance) == Some(&id)
            {
                self.static_members.remove(old_instance);
            }
        }
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        self.set_ownership(&id, before.as_ref(), Some(&member));
        self.members.insert(id, member);
    }

    /// Kafka's `maybeReconcile`: one step towards the target; (re)arms the
    /// rebalance timeout when the member must revoke. Returns whether the
    /// member changed.
    fn reconcile_member(
        &mut self,
        member_id: &str,
        owned: Option<&Assignment>,
        now_ms: i64,
    ) -> bool {
        let member = self.members.get(member_id).expect("member exists");
        if member.is_reconciled_to(self.assignment_epoch) {
            return false;
        }
        let current = Reconciliation {
            state: member.state,
            member_epoch: member.member_epoch,
            previous_member_epoch: member.previous_member_epoch,
            assigned: member.assigned.clone(),
            pending_revocation: member.pending_revocation.clone(),
        };
        let empty = Assignment::new();
        let target = self.target.get(member_id).unwrap_or(&empty);
        let next = reconcile(&current, self.assignment_epoch, target, owned, |t, p| {
            self.owned_by_other(member_id, t, p)
        });
        if next == current {
            return false;
        }
        let before = member.clone();
        let mut after = before.clone();
        after.state = next.state;
        after.member_epoch = next.member_epoch;
        after.previous_member_epoch = next.previous_member_epoch;
        after.assigned = next.assigned;
        after.pending_revocation = next.pending_revocation;
        after.rebalance_deadline = (after.state == MemberState::UnrevokedPartitions).then(|| {
            (
                now_ms + i64::from(after.rebalance_timeout_ms),
                after.member_epoch,
            )
        });
        self.set_ownership(member_id, Some(&before), Some(&after));
        self.members.insert(member_id.to_owned(), after);
        true
    }

    /// Removes a member (Kafka's `consumerGroupFenceMember`): its partitions
    /// become free, the subscription metadata drops topics nobody subscribes
    /// to any more, and the group epoch bumps so the others get them.
    pub(crate) fn remove_member(
        &mut self,
        member_id: &str,
        reason: RemovalReason,
        out: &mut Vec<Output>,
    ) {
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        self.set_ownership(member_id, Some(&member), None);
        self.target.remove(member_id);
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        let regexes = self.compiled_regexes();
        let members = &self.members;
        self.subscription_metadata.retain(|name, _| {
            members
                .values()
                .any(|m| m.subscribed_topic_names.contains(name))
                || regexes.iter().any(|r| r.is_match(name))
        });
        self.group_epoch += 1;
        out.push(Output::PersistGroup);
        out.push(Output::MemberRemoved {
            member_id: member_id.to_owned(),
            reason,
        });
    }
}

/// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`, plus the regex
/// check; returns the requested assignor.
fn validate(
    req: &HeartbeatRequest,
    cfg: &ConsumerGroupConfig,
) -> Result<Option<ServerAssignor>, ErrorCode> {
    let invalid = Err(ErrorCode::InvalidRequest);
    if req.member_id.is_empty()
        && (req.member_epoch > 0 || req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH)
    {
        return invalid;
    }
    if req.instance_id.as_deref() == Some("") || req.rack_id.as_deref() == Some("") {
        return invalid;
    }
    let join_incomplete = req.rebalance_timeout_ms == -1
        || req
            .owned_partitions
            .as_ref()
            .is_none_or(|o| o.values().any(|p| !p.is_empty()))
        || (req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none());
    match req.member_epoch {
        // A join must be a full request with no owned partitions.
        JOIN_GROUP_MEMBER_EPOCH if join_incomplete => return invalid,
        LEAVE_GROUP_STATIC_MEMBER_EPOCH if req.instance_id.is_none() => return invalid,
        e if e < LEAVE_GROUP_STATIC_MEMBER_EPOCH => return invalid,
        _ => {}
    }
    if req.rebalance_timeout_ms < -1 {
        return invalid;
    }
    let assignor = match &req.server_assignor {
        None => None,
        Some(name) => Some(
            ServerAssignor::from_name(name)
                .filter(|a| cfg.assignors.contains(a))
                .ok_or(ErrorCode::UnsupportedAssignor)?,
        ),
    };
    if let Some(regex) = req
        .subscribed_topic_regex
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        TopicRegex::parse(regex)?;
    }
    Ok(assignor)
}

/// Kafka's `throwIfMemberEpochIsInvalid`: an epoch ahead is fenced; an epoch
/// behind is fenced unless it is the previous epoch and the member owns only
/// partitions it still has (the response that bumped it may have been lost).
fn check_member_epoch(
    member: &Member,
    epoch: i32,
    owned: Option<&Assignment>,
) -> Result<(), ErrorCode> {
    if epoch > member.member_epoch
        || (epoch < member.member_epoch
            && (epoch != member.previous_member_epoch || !is_subset(owned, &member.assigned)))
    {
        return Err(ErrorCode::FencedMemberEpoch);
    }
    Ok(())
}

/// Whether two assignments hold the same partitions (ignoring empty topics).
fn same_partitions(a: &Assignment, b: &Assignment) -> bool {
    let a = a.iter().filter(|(_, ps)| !ps.is_empty());
    a.eq(b.iter().filter(|(_, ps)| !ps.is_empty()))
}

/// Copies what the request changed into the member.
fn apply_request(member: &mut Member, req: &HeartbeatRequest, assignor: Option<ServerAssignor>) {
    if let Some(instance) = &req.instance_id {
        member.instance_id = Some(instance.clone());
    }
    if let Some(rack) = &req.rack_id {
        member.rack_id = Some(rack.clone());
    }
    if req.rebalance_timeout_ms != -1 {
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    }
    if assignor.is_some() {
        member.server_assignor = assignor;
    }
    if let Some(names) = &req.subscribed_topic_names {
        member.subscribed_topic_names = names.iter().cloned().collect();
    }
    if let Some(regex) = &req.subscribed_topic_regex {
        member.subscribed_topic_regex = Some(regex.clone()).filter(|r| !r.is_empty());
    }
    member.client_id.clone_from(&req.client_id);
    member.client_host.clone_from(&req.client_host);
}
