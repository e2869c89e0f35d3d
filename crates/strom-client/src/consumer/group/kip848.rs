//! The KIP-848 consumer protocol: ConsumerGroupHeartbeat, the coordinator
//! assigning, revoke-then-assign reconciliation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use strom_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use strom_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, Uuid,
};
use strom_protocol::ErrorCode;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::super::offsets::MemberIdentity;
use super::super::TopicPartition;
use super::{random_member_id, GroupEvent, Member};
use crate::error::ClientError;

impl Member {
    pub(super) async fn run_consumer(mut self) {
        let mut epoch = 0;
        let mut interval = self.config.heartbeat_interval;
        // An assignment received but not yet reconciled (partitions by topic id).
        let mut target: Option<BTreeMap<Uuid, Vec<i32>>> = None;
        let mut sent_version = 0;
        let mut next_heartbeat = Instant::now();
        let mut next_topic_check = Instant::now();
        let mut joined = false;
        loop {
            if self.closing() {
                break;
            }
            // The coordinator assigns only existing topics; asking for a missing
            // subscribed topic's metadata lets the broker create it (as Java's
            // consumer does with allow.auto.create.topics).
            if Instant::now() >= next_topic_check {
                next_topic_check = Instant::now() + Duration::from_secs(1);
                let (topics, _) = self.subscription();
                let missing: Vec<String> = topics
                    .into_iter()
                    .filter(|t| self.cluster.topic(t).is_none())
                    .collect();
                if !missing.is_empty() {
                    if let Err(e) = self.cluster.refresh(&missing).await {
                        debug!(error = %e, "metadata refresh failed");
                    }
                }
            }
            if joined && self.poll_expired() {
                warn!(
                    group = %self.group_id,
                    "poll() was not called within max.poll.interval.ms; leaving the group"
                );
                self.give_up_owned(true, || true).await;
                self.leave_consumer(epoch).await;
                self.set_identity(None);
                joined = false;
                epoch = 0;
                target = None;
                continue;
            }
            if !joined && (self.poll_expired() || self.subscription().0.is_empty()) {
                self.wait(Duration::from_secs(1)).await;
                continue;
            }
            // Reconcile a pending assignment: revoke first, then assign.
            let mut changed = false;
            if let Some(t) = &target {
                match self.resolve(t).await {
                    Some(wanted) => {
                        let revoked: Vec<TopicPartition> =
                            self.owned.difference(&wanted).cloned().collect();
                        if !revoked.is_empty() {
                            let shared = self.shared.clone();
                            let mut alive = || !shared.state.lock().unwrap().closing;
                            for tp in &revoked {
                                self.owned.remove(tp);
                            }
                            self.revoke(revoked, &mut alive).await;
                            changed = true;
                        }
                        let added: Vec<TopicPartition> =
                            wanted.difference(&self.owned).cloned().collect();
                        if !added.is_empty() {
                            self.owned.extend(added.iter().cloned());
                            self.push(GroupEvent::Assign { partitions: added });
                            changed = true;
                        }
                        target = None;
                    }
                    None => {
                        // A topic id not in metadata yet: look again at the next heartbeat.
                        debug!(group = %self.group_id, "assignment names unknown topic ids");
                    }
                }
            }
            let version = self.subscription_version();
            if !changed && version == sent_version && Instant::now() < next_heartbeat {
                let wait = next_heartbeat.saturating_duration_since(Instant::now());
                self.wait(wait).await;
                continue;
            }
            match self.heartbeat_consumer(epoch).await {
                Ok(resp) => {
                    sent_version = version;
                    joined = true;
                    if let Some(id) = resp.member_id.as_ref() {
                        self.member_id = id.to_string();
                    }
                    epoch = resp.member_epoch;
                    if resp.heartbeat_interval_ms > 0 {
                        interval = Duration::from_millis(resp.heartbeat_interval_ms as u64);
                    }
                    self.set_identity(Some(MemberIdentity {
                        member_id: self.member_id.clone(),
                        generation: epoch,
                        group_instance_id: self.config.group_instance_id.clone(),
                    }));
                    if let Some(a) = resp.assignment {
                        let mut t: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
                        for tp in a.topic_partitions {
                            t.entry(tp.topic_id).or_default().extend(tp.partitions);
                        }
                        target = Some(t);
                    }
                    next_heartbeat = Instant::now() + interval;
                }
                Err(e) => {
                    let code = e.code().and_then(ErrorCode::from_code);
                    match code {
                        Some(ErrorCode::FencedMemberEpoch | ErrorCode::UnknownMemberId) => {
                            info!(group = %self.group_id, error = %e, "member fenced; rejoining");
                            self.give_up_owned(true, || true).await;
                            self.set_identity(None);
                            epoch = 0;
                            target = None;
                            next_heartbeat = Instant::now();
                        }
                        Some(
                            ErrorCode::UnreleasedInstanceId
                            | ErrorCode::GroupMaxSizeReached
                            | ErrorCode::UnsupportedAssignor
                            | ErrorCode::InvalidRequest
                            | ErrorCode::GroupIdNotFound
                            | ErrorCode::UnsupportedVersion
                            | ErrorCode::InvalidRegularExpression
                            | ErrorCode::GroupAuthorizationFailed,
                        ) => {
                            self.raise(e.into());
                            self.wait(self.config.max_poll_interval).await;
                            next_heartbeat = Instant::now();
                        }
                        _ => {
                            self.on_error(&e);
                            debug!(group = %self.group_id, error = %e, "heartbeat failed");
                            if let ClientError::UnsupportedVersion { .. } = e {
                                self.raise(e.into());
                                self.wait(self.config.max_poll_interval).await;
                            }
                            next_heartbeat = Instant::now() + self.config.retry_backoff;
                        }
                    }
                }
            }
        }
        self.owned.clear();
        if joined {
            self.leave_consumer(epoch).await;
        }
        self.set_identity(None);
    }

    /// Topic ids of an assignment turned into partitions, refreshing metadata
    /// once when an id is unknown; `None` while some id stays unknown.
    async fn resolve(&self, target: &BTreeMap<Uuid, Vec<i32>>) -> Option<BTreeSet<TopicPartition>> {
        if target
            .keys()
            .any(|id| self.cluster.topic_by_id(id).is_none())
        {
            let (topics, _) = self.subscription();
            let names: Vec<String> = topics.into_iter().collect();
            if let Err(e) = self.cluster.refresh(&names).await {
                debug!(error = %e, "metadata refresh failed");
            }
        }
        let mut out = BTreeSet::new();
        for (id, partitions) in target {
            let topic = self.cluster.topic_by_id(id)?;
            out.extend(
                partitions
                    .iter()
                    .map(|p| TopicPartition::new(topic.name.as_str(), *p)),
            );
        }
        Some(out)
    }

    async fn heartbeat_consumer(
        &mut self,
        epoch: i32,
    ) -> Result<ConsumerGroupHeartbeatResponse, ClientError> {
        let conn = self.connection().await?;
        let version = conn.version_for::<ConsumerGroupHeartbeatRequest>()?;
        if version >= 1 && self.member_id.is_empty() {
            // KIP-1082: the member picks its own id.
            self.member_id = random_member_id();
        }
        let (topics, _) = self.subscription();
        let mut req = ConsumerGroupHeartbeatRequest::default();
        req.group_id = self.group_id.as_str().into();
        req.member_id = self.member_id.as_str().into();
        req.member_epoch = epoch;
        req.instance_id = self.instance_id();
        req.rebalance_timeout_ms = Self::millis(self.config.max_poll_interval);
        req.subscribed_topic_names = Some(topics.iter().map(|t| t.as_str().into()).collect());
        req.server_assignor = self.config.group_remote_assignor.as_deref().map(Into::into);
        let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for tp in &self.owned {
            if let Some(meta) = self.cluster.topic(&tp.topic) {
                by_topic
                    .entry(meta.topic_id)
                    .or_default()
                    .push(tp.partition);
            }
        }
        req.topic_partitions = Some(
            by_topic
                .into_iter()
                .map(|(id, partitions)| {
                    let mut t = TopicPartitions::default();
                    t.topic_id = id;
                    t.partitions = partitions;
                    t
                })
                .collect(),
        );
        let resp = conn.send(&req).await?;
        ClientError::check(
            resp.error_code,
            resp.error_message.as_ref().map(|m| m.to_string()),
        )?;
        Ok(resp)
    }

    /// Leaves with epoch -1 (dynamic) or -2 (static: the coordinator keeps the
    /// member's partitions for its return).
    async fn leave_consumer(&mut self, epoch: i32) {
        if self.member_id.is_empty() || epoch <= 0 {
            return;
        }
        let leave_epoch = if self.config.group_instance_id.is_some() {
            -2
        } else {
            -1
        };
        let result = async {
            let conn = self.connection().await?;
            let mut req = ConsumerGroupHeartbeatRequest::default();
            req.group_id = self.group_id.as_str().into();
            req.member_id = self.member_id.as_str().into();
            req.member_epoch = leave_epoch;
            req.instance_id = self.instance_id();
            let resp = conn.send(&req).await?;
            ClientError::check(resp.error_code, None)
        }
        .await;
        if let Err(e) = result {
            debug!(group = %self.group_id, error = %e, "leaving the group failed");
        }
    }
}
