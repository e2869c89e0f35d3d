//! SyncGroup, Heartbeat, LeaveGroup, the offset-API checks, deletion and
//! unloading.

use std::collections::BTreeMap;

use bytes::Bytes;
use strom_protocol::ErrorCode;

use super::{ClassicGroup, GroupState, JoinResponse, Output, SyncRequest, SyncResponse};

impl ClassicGroup {
    /// Handles a SyncGroup request. Followers are parked until the leader's
    /// assignment arrives; the leader's sync stores the assignment, emits
    /// [`Output::PersistGroup`], makes the group Stable and answers everyone.
    pub fn sync(&mut self, req: SyncRequest, now_ms: i64) -> Vec<Output> {
        let mut out = Vec::new();
        let request_id = req.request_id;
        let error = match self.state {
            GroupState::Empty => Err(ErrorCode::UnknownMemberId),
            _ => self.validate_sync(&req),
        };
        if let Err(error) = error {
            out.push(Output::Sync(request_id, SyncResponse::error(error)));
            return out;
        }
        match self.state {
            GroupState::PreparingRebalance => {
                let response = SyncResponse::error(ErrorCode::RebalanceInProgress);
                out.push(Output::Sync(request_id, response));
            }
            GroupState::CompletingRebalance => {
                if let Some(member) = self.members.get_mut(&req.member_id) {
                    // Deviation: Kafka drops an earlier parked sync of the same
                    // member; we answer it so no request goes unanswered.
                    if let Some(previous) = member.awaiting_sync.replace(request_id) {
                        let response = SyncResponse::error(ErrorCode::RebalanceInProgress);
                        out.push(Output::Sync(previous, response));
                    }
                }
                self.remove_pending_sync_member(&req.member_id);
                if self.is_leader(&req.member_id) {
                    self.apply_leader_assignment(req.assignments, now_ms, &mut out);
                }
            }
            GroupState::Stable => {
                self.remove_pending_sync_member(&req.member_id);
                let response = SyncResponse {
                    error: ErrorCode::None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: self.members[&req.member_id].assignment.clone(),
                };
                out.push(Output::Sync(request_id, response));
            }
            GroupState::Empty | GroupState::Dead => {
                unreachable!("validate_sync refuses Empty and Dead groups")
            }
        }
        out
    }

    /// Kafka's `validateSyncGroup`: Dead, member, generation, then (v5+)
    /// protocol type and name when the request carries them.
    fn validate_sync(&self, req: &SyncRequest) -> Result<(), ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        self.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
        let inconsistent = |requested: &Option<String>, current: &Option<String>| {
            requested.is_some() && requested != current
        };
        if req.generation_id != self.generation_id {
            Err(ErrorCode::IllegalGeneration)
        } else if inconsistent(&req.protocol_type, &self.protocol_type)
            || inconsistent(&req.protocol_name, &self.protocol_name)
        {
            Err(ErrorCode::InconsistentGroupProtocol)
        } else {
            Ok(())
        }
    }

    /// Sets every member's assignment from the leader's (members it left out
    /// get an empty one; unknown ids are ignored), persists, answers, Stable.
    /// Deviation: Kafka applies this once the record is written; we apply it
    /// now and rely on the caller to send the responses after the write.
    fn apply_leader_assignment(
        &mut self,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) {
        let mut assignments: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        for (member_id, member) in self.members.iter_mut() {
            member.assignment = assignments.remove(member_id).unwrap_or_default();
        }
        out.push(Output::PersistGroup);
        self.propagate_assignment(ErrorCode::None, now_ms, out);
        self.transition_to(GroupState::Stable, now_ms);
    }

    /// Marks `member_id` as synced; the sync timer stops once all have.
    fn remove_pending_sync_member(&mut self, member_id: &str) {
        self.pending_sync_members.remove(member_id);
        let all_synced = self.pending_sync_members.is_empty();
        let cancel = match self.state {
            GroupState::CompletingRebalance | GroupState::Stable => all_synced,
            _ => true,
        };
        if cancel {
            self.sync_timer = None;
        }
    }

    /// Handles a Heartbeat: checks the group, member and generation, restarts
    /// the member's session timer, and tells it whether to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> ErrorCode {
        if self.state == GroupState::Dead {
            return ErrorCode::CoordinatorNotAvailable;
        }
        if let Err(error) = self.validate_member(member_id, group_instance_id) {
            return error;
        }
        if generation_id != self.generation_id {
            return ErrorCode::IllegalGeneration;
        }
        let error = match self.state {
            GroupState::Empty => return ErrorCode::UnknownMemberId,
            GroupState::Dead => return ErrorCode::CoordinatorNotAvailable,
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
            // Consumers heartbeat right after the join response, before syncing.
            GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
        };
        if let Some(member) = self.members.get_mut(member_id) {
            member.heartbeat_deadline_ms = Some(now_ms + i64::from(member.session_timeout_ms));
        }
        error
    }

    /// Handles a (batched, v3+) LeaveGroup: one error per `(member id,
    /// instance id)` in order. An empty member id with an instance id removes
    /// that static member (the admin path). Members that left trigger a
    /// rebalance. For a Dead group Kafka answers COORDINATOR_NOT_AVAILABLE at
    /// the top level; here every member gets it (the handler may lift it).
    pub fn leave(
        &mut self,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> (Vec<ErrorCode>, Vec<Output>) {
        if self.state == GroupState::Dead {
            return (
                vec![ErrorCode::CoordinatorNotAvailable; members.len()],
                Vec::new(),
            );
        }
        let mut out = Vec::new();
        let mut errors = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            let error = if member_id.is_empty() {
                let existing = instance_id
                    .as_ref()
                    .and_then(|i| self.static_members.get(i));
                match existing.cloned() {
                    Some(existing) => {
                        self.remove_member_answering(&existing, &mut out);
                        ErrorCode::None
                    }
                    None => ErrorCode::UnknownMemberId,
                }
            } else if self.pending_join_members.contains_key(member_id) {
                self.remove_member(member_id);
                ErrorCode::None
            } else {
                match self.validate_member(member_id, instance_id.as_deref()) {
                    Ok(()) => {
                        self.remove_member_answering(member_id, &mut out);
                        ErrorCode::None
                    }
                    Err(error) => error,
                }
            };
            errors.push(error);
        }
        if errors.contains(&ErrorCode::None) {
            match self.state {
                // Not Empty, so no initial delay applies.
                GroupState::Stable | GroupState::CompletingRebalance => {
                    self.prepare_rebalance(0, now_ms, &mut out);
                }
                GroupState::PreparingRebalance => self.maybe_complete_join_phase(now_ms, &mut out),
                GroupState::Empty | GroupState::Dead => {}
            }
        }
        (errors, out)
    }

    /// Kafka's `validateOffsetCommit` for OffsetCommit: generation -1 with no
    /// member is a simple-consumer or admin commit, accepted only while the
    /// group is Empty; a member that has not synced gets REBALANCE_IN_PROGRESS.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), ErrorCode> {
        self.validate_commit(member_id, group_instance_id, generation_id, false)
    }

    /// Kafka's `validateOffsetCommit` for TxnOffsetCommit: as OffsetCommit,
    /// but without member/generation (old versions) and in any state.
    pub fn validate_txn_offset_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), ErrorCode> {
        self.validate_commit(member_id, group_instance_id, generation_id, true)
    }

    fn validate_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        transactional: bool,
    ) -> Result<(), ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_member(member_id, group_instance_id)?;
            if generation_id != self.generation_id {
                return Err(ErrorCode::IllegalGeneration);
            }
        } else if !transactional && self.state != GroupState::Empty {
            return Err(ErrorCode::UnknownMemberId);
        }
        // A member with a valid generation that commits before syncing has its
        // join response; tell it to finish the rebalance first.
        if !transactional && self.state == GroupState::CompletingRebalance {
            return Err(ErrorCode::RebalanceInProgress);
        }
        Ok(())
    }

    /// Kafka's `validateOffsetFetch` for classic groups: only Dead is refused.
    pub fn validate_offset_fetch(&self) -> Result<(), ErrorCode> {
        match self.state {
            GroupState::Dead => Err(ErrorCode::GroupIdNotFound),
            _ => Ok(()),
        }
    }

    /// Kafka's `validateOffsetDelete`: a non-empty group may delete offsets
    /// only if it uses the `consumer` protocol (then the handler must still
    /// refuse topics it is subscribed to: GROUP_SUBSCRIBED_TO_TOPIC).
    pub fn validate_offset_delete(&self) -> Result<(), ErrorCode> {
        match self.state {
            GroupState::Dead => Err(ErrorCode::GroupIdNotFound),
            GroupState::Empty => Ok(()),
            _ if self.uses_consumer_protocol() => Ok(()),
            _ => Err(ErrorCode::NonEmptyGroup),
        }
    }

    /// DeleteGroups: only an Empty group may be deleted (NON_EMPTY_GROUP
    /// otherwise, GROUP_ID_NOT_FOUND if already Dead, as Kafka). On success the
    /// group is Dead; the caller writes the tombstone and forgets it.
    pub fn remove_all_members_for_deletion(&mut self) -> Result<(), ErrorCode> {
        match self.state {
            GroupState::Dead => return Err(ErrorCode::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return Err(ErrorCode::NonEmptyGroup),
        }
        self.pending_join_members.clear();
        self.join_timer = None;
        self.sync_timer = None;
        // The state timestamp stays: nothing reads it once the group is gone.
        self.previous_state = self.state;
        self.state = GroupState::Dead;
        Ok(())
    }

    /// The coordinator lost the `__consumer_offsets` partition (Kafka's
    /// `onUnloaded`): the group becomes Dead and parked requests get
    /// NOT_COORDINATOR so clients find the new coordinator.
    pub fn unload(&mut self, now_ms: i64) -> Vec<Output> {
        let mut out = Vec::new();
        let previous = self.state;
        self.transition_to(GroupState::Dead, now_ms);
        self.join_timer = None;
        self.sync_timer = None;
        self.pending_join_members.clear();
        for member_id in self.ordered_member_ids() {
            let Some(member) = self.members.get_mut(&member_id) else {
                continue;
            };
            member.heartbeat_deadline_ms = None;
            match previous {
                GroupState::PreparingRebalance => {
                    if let Some(request_id) = member.awaiting_join.take() {
                        let response = JoinResponse::error(ErrorCode::NotCoordinator, member_id);
                        out.push(Output::Join(request_id, response));
                    }
                }
                GroupState::CompletingRebalance | GroupState::Stable => {
                    if let Some(request_id) = member.awaiting_sync.take() {
                        let response = SyncResponse::error(ErrorCode::NotCoordinator);
                        out.push(Output::Sync(request_id, response));
                    }
                }
                GroupState::Empty | GroupState::Dead => {}
            }
        }
        out
    }
}
