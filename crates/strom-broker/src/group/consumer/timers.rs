//! Session and rebalance (revocation) timeouts.

use super::{ConsumerGroup, MemberState, Output, RemovalReason};

impl ConsumerGroup {
    /// The earliest time at which [`ConsumerGroup::tick`] has something to do.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.members
            .values()
            .flat_map(|m| {
                m.session_deadline_ms
                    .into_iter()
                    .chain(m.rebalance_deadline.map(|(d, _)| d))
            })
            .min()
    }

    /// Removes members whose session expired (no heartbeat within
    /// `group.consumer.session.timeout.ms`) and members that did not revoke
    /// partitions within their rebalance timeout (Kafka fences them; they
    /// must rejoin with epoch 0). Each removal bumps the group epoch.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Output> {
        let expired: Vec<(String, RemovalReason)> = self
            .members
            .values()
            .filter_map(|m| {
                if m.session_deadline_ms.is_some_and(|d| d <= now_ms) {
                    Some((m.member_id.clone(), RemovalReason::SessionTimeout))
                } else if m.rebalance_deadline.is_some_and(|(d, epoch)| {
                    d <= now_ms
                        && epoch == m.member_epoch
                        && m.state == MemberState::UnrevokedPartitions
                }) {
                    Some((m.member_id.clone(), RemovalReason::RebalanceTimeout))
                } else {
                    None
                }
            })
            .collect();
        let mut out = Vec::new();
        for (member_id, reason) in expired {
            self.remove_member(&member_id, reason, &mut out);
        }
        // Stale rebalance timers (the member moved on) are disarmed.
        for m in self.members.values_mut() {
            if m.rebalance_deadline.is_some_and(|(d, _)| d <= now_ms) {
                m.rebalance_deadline = None;
            }
        }
        out
    }
}
