//! The classic protocol: JoinGroup / SyncGroup / Heartbeat / LeaveGroup, the
//! leader assigning with an [`Assignor`](super::super::assignor::Assignor), eager revocation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use strom_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use strom_protocol::messages::leave_group_request::MemberIdentity as LeaveMember;
use strom_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use strom_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, SyncGroupRequest,
};
use strom_protocol::ErrorCode;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::super::assignor::{self, MemberSubscription};
use super::super::offsets::MemberIdentity;
use super::{GroupEvent, Member};
use crate::error::ClientError;

/// How a join attempt ended.
enum JoinOutcome {
    Joined,
    /// Retry at once (MEMBER_ID_REQUIRED, REBALANCE_IN_PROGRESS ...).
    Again,
    /// Retry after `retry.backoff.ms`.
    Backoff,
}

impl Member {
    pub(super) async fn run_classic(mut self) {
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
}
