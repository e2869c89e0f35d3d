//! Timers: the join-phase timer (initial delay, rebalance timeout), the
//! pending-sync timer, member session timeouts and KIP-394 pending-member
//! expiry. The caller arms one timer at `next_deadline_ms` and calls `tick`.

use super::{ClassicGroup, GroupConfig, GroupState, JoinTimer, Output};

/// One due timer, collected before any fires.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Join,
    Sync,
    Heartbeat(String),
    Pending(String),
}

impl ClassicGroup {
    /// Fires every timer due at `now_ms`, earliest first (ties: join, sync,
    /// then members). A timer re-armed for `<= now_ms` while firing waits for
    /// the next tick, so one tick does bounded work even with zero timeouts.
    pub fn tick(&mut self, cfg: &GroupConfig, now_ms: i64) -> Vec<Output> {
        let mut due: Vec<(i64, u8, u64, Due)> = Vec::new();
        if let Some(timer) = self.join_timer.filter(|t| t.deadline_ms() <= now_ms) {
            due.push((timer.deadline_ms(), 0, 0, Due::Join));
        }
        if let Some(timer) = self.sync_timer.filter(|t| t.deadline_ms <= now_ms) {
            due.push((timer.deadline_ms, 1, 0, Due::Sync));
        }
        for member in self.members.values() {
            if let Some(deadline) = member.heartbeat_deadline_ms.filter(|&d| d <= now_ms) {
                due.push((
                    deadline,
                    2,
                    member.join_seq,
                    Due::Heartbeat(member.member_id.clone()),
                ));
            }
        }
        for (member_id, &deadline) in &self.pending_join_members {
            if deadline <= now_ms {
                due.push((deadline, 3, 0, Due::Pending(member_id.clone())));
            }
        }
        due.sort();
        let mut out = Vec::new();
        for (deadline, _, _, timer) in due {
            match timer {
                Due::Join if self.join_timer.map(JoinTimer::deadline_ms) == Some(deadline) => {
                    self.fire_join_timer(cfg, now_ms, &mut out);
                }
                Due::Sync if self.sync_timer.map(|t| t.deadline_ms) == Some(deadline) => {
                    self.fire_sync_timer(cfg, now_ms, &mut out);
                }
                Due::Heartbeat(member_id) => {
                    let armed = self
                        .members
                        .get(&member_id)
                        .and_then(|m| m.heartbeat_deadline_ms);
                    if armed == Some(deadline) {
                        self.expire_member(&member_id, cfg, now_ms, &mut out);
                    }
                }
                Due::Pending(member_id) => {
                    if self.pending_join_members.get(&member_id) == Some(&deadline) {
                        self.expire_pending_member(&member_id, now_ms, &mut out);
                    }
                }
                Due::Join | Due::Sync => {}
            }
        }
        out
    }

    fn fire_join_timer(&mut self, cfg: &GroupConfig, now_ms: i64, out: &mut Vec<Output>) {
        match self.join_timer.take() {
            Some(JoinTimer::Initial {
                delay_ms,
                remaining_ms,
                ..
            }) if self.new_member_added && remaining_ms != 0 => {
                // Somebody joined during the delay: wait once more, within
                // the rebalance timeout.
                self.new_member_added = false;
                let next_delay_ms = cfg.initial_rebalance_delay_ms.min(remaining_ms);
                self.join_timer = Some(JoinTimer::Initial {
                    deadline_ms: now_ms + next_delay_ms,
                    delay_ms: next_delay_ms,
                    remaining_ms: (remaining_ms - delay_ms).max(0),
                });
            }
            Some(_) => self.complete_join(now_ms, out),
            None => {}
        }
    }

    /// Members that did not sync within the rebalance timeout are removed and
    /// the group rebalances.
    fn fire_sync_timer(&mut self, cfg: &GroupConfig, now_ms: i64, out: &mut Vec<Output>) {
        let Some(timer) = self.sync_timer.take() else {
            return;
        };
        if timer.generation_id != self.generation_id
            || !matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            )
            || self.pending_sync_members.is_empty()
        {
            return;
        }
        let laggards: Vec<String> = self.pending_sync_members.iter().cloned().collect();
        for member_id in laggards {
            self.remove_member_answering(&member_id, out);
        }
        self.prepare_rebalance(cfg.initial_rebalance_delay_ms, now_ms, out);
    }

    /// Session timeout: a member that is not satisfied by a parked request
    /// (or is new) is removed and the group rebalances or finishes its join.
    fn expire_member(
        &mut self,
        member_id: &str,
        cfg: &GroupConfig,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) {
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        member.heartbeat_deadline_ms = None;
        if self.state == GroupState::Dead || member.has_satisfied_heartbeat() {
            return;
        }
        self.remove_member_answering(member_id, out);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(
                    cfg.initial_rebalance_delay_ms,
                    now_ms,
                    out,
                );
            }
            GroupState::PreparingRebalance if self.has_all_members_joined() => {
                self.complete_join(now_ms, out);
            }
            _ => {}
        }
    }

    /// KIP-394: a member that got MEMBER_ID_REQUIRED never came back.
    fn expire_pending_member(&mut self, member_id: &str, now_ms: i64, out: &mut Vec<Output>) {
        self.remove_member(member_id);
        if self.state == GroupState::PreparingRebalance && self.has_all_members_joined() {
            self.complete_join(now_ms, out);
        }
    }
}
