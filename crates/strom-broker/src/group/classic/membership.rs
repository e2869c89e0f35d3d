//! Membership bookkeeping shared by the join, sync and timer paths: adding,
//! removing and replacing members, protocol selection, member validation.

use std::collections::BTreeSet;

use bytes::Bytes;
use strom_protocol::messages::{
    ApiVersion, ConsumerProtocolSubscription, DecodeLimits, Decoder, KafkaDecode,
};
use strom_protocol::ErrorCode;

use super::{
    ClassicGroup, GroupState, JoinMember, JoinResponse, Member, Output, SyncResponse,
    CONSUMER_PROTOCOL_TYPE,
};

impl ClassicGroup {
    /// Moves to `to`, remembering the previous state and the time.
    pub(super) fn transition_to(&mut self, to: GroupState, now_ms: i64) {
        debug_assert!(
            to.valid_from(self.state),
            "invalid transition {:?} -> {to:?}",
            self.state
        );
        self.previous_state = self.state;
        self.state = to;
        self.current_state_timestamp_ms = Some(now_ms);
    }

    /// Members in join order.
    pub(super) fn ordered_members(&self) -> Vec<&Member> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.join_seq);
        members
    }

    /// Member ids in join order.
    pub(super) fn ordered_member_ids(&self) -> Vec<String> {
        self.ordered_members()
            .into_iter()
            .map(|m| m.member_id.clone())
            .collect()
    }

    pub(super) fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// Adds a member (Kafka's `ClassicGroup.add`); the first member fixes the
    /// protocol type and the first member without a leader becomes leader.
    pub(super) fn add_member(&mut self, mut member: Member) {
        if let Some(instance_id) = &member.group_instance_id {
            let previous = self
                .static_members
                .insert(instance_id.clone(), member.member_id.clone());
            debug_assert!(
                previous.is_none(),
                "static member {instance_id} added twice"
            );
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        member.join_seq = self.next_join_seq;
        self.next_join_seq += 1;
        self.pending_join_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member or a pending member (Kafka's `ClassicGroup.remove`):
    /// the earliest remaining member succeeds a removed leader. Parked requests
    /// of the removed member are returned to the caller to answer.
    pub(super) fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let removed = self.members.remove(member_id);
        if let Some(instance_id) = removed.as_ref().and_then(|m| m.group_instance_id.as_ref()) {
            self.static_members.remove(instance_id);
        }
        if self.is_leader(member_id) {
            self.leader_id = self.ordered_members().first().map(|m| m.member_id.clone());
        }
        self.pending_join_members.remove(member_id);
        self.pending_sync_members.remove(member_id);
        removed
    }

    /// Removes a member and answers its parked requests with UNKNOWN_MEMBER_ID
    /// (Kafka answers the join so the client retries; it leaves a parked sync
    /// unanswered, which would stall the connection's in-order responses here).
    pub(super) fn remove_member_answering(&mut self, member_id: &str, out: &mut Vec<Output>) {
        if let Some(member) = self.remove_member(member_id) {
            if let Some(request_id) = member.awaiting_join {
                let response = JoinResponse::error(ErrorCode::UnknownMemberId, String::new());
                out.push(Output::Join(request_id, response));
            }
            if let Some(request_id) = member.awaiting_sync {
                out.push(Output::Sync(
                    request_id,
                    SyncResponse::error(ErrorCode::UnknownMemberId),
                ));
            }
        }
    }

    /// KIP-345: gives a static member a new member id, fencing parked requests
    /// of the old id with FENCED_INSTANCE_ID. Assignment and protocols are kept.
    pub(super) fn replace_static_member(
        &mut self,
        instance_id: &str,
        old_member_id: &str,
        new_member_id: String,
        out: &mut Vec<Output>,
    ) {
        let Some(mut member) = self.members.remove(old_member_id) else {
            debug_assert!(false, "replacing unknown static member {old_member_id}");
            return;
        };
        if let Some(request_id) = member.awaiting_join.take() {
            let response =
                JoinResponse::error(ErrorCode::FencedInstanceId, old_member_id.to_owned());
            out.push(Output::Join(request_id, response));
        }
        if let Some(request_id) = member.awaiting_sync.take() {
            out.push(Output::Sync(
                request_id,
                SyncResponse::error(ErrorCode::FencedInstanceId),
            ));
        }
        // Deviation: Kafka leaves the old id in the pending-sync set, so a
        // replacement in a Stable group before every member synced ends in a
        // needless rebalance at the sync timeout; the new id inherits the slot.
        if self.pending_sync_members.remove(old_member_id) {
            self.pending_sync_members.insert(new_member_id.clone());
        }
        member.member_id = new_member_id.clone();
        member.is_new = false;
        if self.is_leader(old_member_id) {
            self.leader_id = Some(new_member_id.clone());
        }
        self.static_members
            .insert(instance_id.to_owned(), new_member_id.clone());
        self.members.insert(new_member_id, member);
    }

    /// Kafka's `validateMember`: the instance id (if given) must map to the
    /// member id, and the member must exist.
    pub(super) fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ErrorCode> {
        if let Some(instance_id) = group_instance_id {
            match self.static_members.get(instance_id) {
                None => return Err(ErrorCode::UnknownMemberId),
                Some(existing) if existing != member_id => return Err(ErrorCode::FencedInstanceId),
                Some(_) => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(ErrorCode::UnknownMemberId)
        }
    }

    pub(super) fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    /// Every member is awaiting a join response and no KIP-394 member is pending.
    pub(super) fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_join_members.is_empty()
    }

    /// The group's rebalance timeout: the largest of its members'.
    pub(super) fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Whether a member joining with these protocols can be accepted: in an
    /// Empty group any non-empty type and list; otherwise the same type and at
    /// least one protocol every current member supports.
    pub(super) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.supported_by_all(name))
    }

    fn supported_by_all(&self, protocol: &str) -> bool {
        self.members
            .values()
            .all(|m| m.metadata(protocol).is_some())
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports,
    /// each member votes for its most preferred one; most votes wins.
    /// Deviation: Kafka breaks ties by hash-map order (arbitrary); we pick the
    /// tied protocol voted first in join order, so the earliest member's
    /// (usually the leader's) preference wins. None for an empty group.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let members = self.ordered_members();
        let first = members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.supported_by_all(name))
            .collect();
        // (protocol, votes) in order of first vote.
        let mut votes: Vec<(&str, usize)> = Vec::new();
        for member in &members {
            let Some((vote, _)) = member
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            else {
                continue;
            };
            match votes.iter_mut().find(|(name, _)| name == vote) {
                Some((_, count)) => *count += 1,
                None => votes.push((vote, 1)),
            }
        }
        let best = votes.iter().map(|&(_, count)| count).max()?;
        votes
            .into_iter()
            .find(|&(_, count)| count == best)
            .map(|(name, _)| name.to_owned())
    }

    /// The member list the leader receives: metadata for the selected protocol.
    pub(super) fn current_join_members(&self) -> Vec<JoinMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.ordered_members()
            .into_iter()
            .map(|m| JoinMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// A successful JoinGroup response for the current generation.
    pub(super) fn join_success(&self, member_id: &str, with_members: bool) -> JoinResponse {
        JoinResponse {
            error: ErrorCode::None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            skip_assignment: false,
            members: if with_members {
                self.current_join_members()
            } else {
                Vec::new()
            },
        }
    }

    /// Kafka's `computeSubscribedTopics`. Like Kafka, each subscription is read
    /// as its version-0 prefix (the topic list) whatever its version, so
    /// future consumer-protocol versions still decode; trailing fields are
    /// ignored. (`decode_consumer_protocol_subscription` would reject unknown
    /// versions, hence the direct decoder.)
    pub(super) fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            let metadata = member.metadata(protocol)?;
            topics.extend(subscription_topics(metadata.clone())?);
        }
        Some(topics)
    }
}

/// The topics of a version-prefixed `ConsumerProtocolSubscription`, read as v0.
fn subscription_topics(metadata: Bytes) -> Option<Vec<String>> {
    let mut decoder = Decoder::new(metadata, DecodeLimits::default()).ok()?;
    decoder.read_i16().ok()?;
    let subscription =
        ConsumerProtocolSubscription::decode(&mut decoder, ApiVersion::new(0)).ok()?;
    Some(
        subscription
            .topics
            .into_iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
    )
}
