//! Event-script tests: each test feeds timed heartbeats, ticks and topic
//! changes to one group and compares what comes back, rendered one line each:
//!
//! - `m=<member> e=<epoch> a=<assignment>` — a heartbeat response, where the
//!   assignment is `foo:0,1 bar:2`, `{}` for an empty one, `-` when absent;
//! - `<ErrorCode>` — a refused heartbeat;
//! - `PERSIST` — the group's state must be written;
//! - `REMOVED <member> <reason>` — a member left the group.
//!
//! Topics have ids derived from their names (see [`topic_id`]).

mod heartbeat_tests;
mod property_tests;
mod static_tests;
mod timer_tests;

use std::collections::BTreeSet;

use strom_controller::TopicId;

use super::{Assignment, ConsumerGroup, ConsumerGroupConfig, HeartbeatRequest, Output, TopicsView};

/// Rebalance timeout used by [`hb`] joins.
const REBALANCE_MS: i32 = 30_000;
/// Session timeout of the test config.
const SESSION_MS: i32 = 45_000;

/// A topic's id: its name's bytes, zero-padded (names ≤ 16 bytes in tests).
fn topic_id(name: &str) -> TopicId {
    let mut b = [0u8; 16];
    b[..name.len()].copy_from_slice(name.as_bytes());
    TopicId(b)
}

fn view(topics: &[(&str, i32)]) -> TopicsView {
    topics
        .iter()
        .map(|(n, c)| (n.to_string(), (topic_id(n), *c)))
        .collect()
}

/// An assignment from `(topic, partitions)` pairs.
fn parts(a: &[(&str, &[i32])]) -> Assignment {
    a.iter()
        .map(|(t, ps)| (topic_id(t), ps.iter().copied().collect::<BTreeSet<i32>>()))
        .collect()
}

/// A heartbeat request builder.
#[derive(Clone)]
struct Hb(HeartbeatRequest);

/// A plain heartbeat of `member` at `epoch` (nothing else set).
fn hb(member: &str, epoch: i32) -> Hb {
    Hb(HeartbeatRequest {
        member_id: member.to_owned(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        client_id: "client".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        ..HeartbeatRequest::default()
    })
}

/// A join of `member` subscribing to `topics` (a full request, as clients send).
fn join(member: &str, topics: &[&str]) -> Hb {
    let mut h = hb(member, 0);
    h.0.rebalance_timeout_ms = REBALANCE_MS;
    h.0.subscribed_topic_names = Some(topics.iter().map(|t| t.to_string()).collect());
    h.0.owned_partitions = Some(Assignment::new());
    h
}

impl Hb {
    fn owned(mut self, a: &[(&str, &[i32])]) -> Self {
        self.0.owned_partitions = Some(parts(a));
        self
    }
    fn instance(mut self, instance: &str) -> Self {
        self.0.instance_id = Some(instance.to_owned());
        self
    }
    fn assignor(mut self, name: &str) -> Self {
        self.0.server_assignor = Some(name.to_owned());
        self
    }
    fn regex(mut self, regex: &str) -> Self {
        self.0.subscribed_topic_regex = Some(regex.to_owned());
        self
    }
    fn topics(mut self, topics: &[&str]) -> Self {
        self.0.subscribed_topic_names = Some(topics.iter().map(|t| t.to_string()).collect());
        self
    }
    fn rebalance(mut self, ms: i32) -> Self {
        self.0.rebalance_timeout_ms = ms;
        self
    }
}

/// One group driven by a script.
struct Script {
    group: ConsumerGroup,
    cfg: ConsumerGroupConfig,
    topics: TopicsView,
    next_member: u32,
}

impl Script {
    fn new(topics: &[(&str, i32)]) -> Self {
        Self {
            group: ConsumerGroup::new("g".to_owned()),
            cfg: ConsumerGroupConfig {
                session_timeout_ms: SESSION_MS,
                ..ConsumerGroupConfig::default()
            },
            topics: view(topics),
            next_member: 1,
        }
    }

    /// Sends a heartbeat at `now_ms`; the response first, then the outputs.
    fn send(&mut self, now_ms: i64, req: Hb) -> Vec<String> {
        let n = self.next_member;
        let mut generated = false;
        let result = self
            .group
            .heartbeat(req.0, &self.topics, &self.cfg, now_ms, || {
                generated = true;
                format!("gen-{n}")
            });
        if generated {
            self.next_member += 1;
        }
        self.check_invariants();
        match result {
            Ok((resp, out)) => {
                let mut lines = vec![format!(
                    "m={} e={} a={}",
                    resp.member_id,
                    resp.member_epoch,
                    resp.assignment
                        .as_ref()
                        .map_or("-".to_owned(), |a| self.render(a))
                )];
                lines.extend(render_outputs(&out));
                lines
            }
            Err(code) => vec![format!("{code:?}")],
        }
    }

    /// Sends a heartbeat and returns only the response line.
    fn resp(&mut self, now_ms: i64, req: Hb) -> String {
        self.send(now_ms, req).remove(0)
    }

    fn tick(&mut self, now_ms: i64) -> Vec<String> {
        let out = self.group.tick(now_ms);
        self.check_invariants();
        render_outputs(&out)
    }

    fn set_topics(&mut self, topics: &[(&str, i32)]) -> Vec<String> {
        self.topics = view(topics);
        render_outputs(&self.group.on_topics_changed(&self.topics))
    }

    fn render(&self, a: &Assignment) -> String {
        if a.values().all(BTreeSet::is_empty) {
            return "{}".to_owned();
        }
        let mut topics: Vec<(String, &BTreeSet<i32>)> = a
            .iter()
            .filter(|(_, ps)| !ps.is_empty())
            .map(|(id, ps)| {
                let name = self
                    .topics
                    .iter()
                    .find(|(_, (tid, _))| tid == id)
                    .map_or_else(|| format!("{id}"), |(n, _)| n.clone());
                (name, ps)
            })
            .collect();
        topics.sort();
        topics
            .iter()
            .map(|(n, ps)| {
                let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
                format!("{n}:{}", ps.join(","))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn assigned(&self, member: &str) -> String {
        self.render(self.group.member_assignment(member).expect("member"))
    }

    /// No partition is owned (assigned or pending revocation) by two members.
    fn check_invariants(&self) {
        let mut seen = BTreeSet::new();
        for m in self.group.members.values() {
            for tp in m.owned_partitions() {
                assert!(seen.insert(tp), "{tp:?} owned twice");
            }
        }
        assert_eq!(
            seen.len(),
            self.group.owners.len(),
            "ownership index out of date"
        );
    }
}

fn render_outputs(out: &[Output]) -> Vec<String> {
    out.iter()
        .map(|o| match o {
            Output::PersistGroup => "PERSIST".to_owned(),
            Output::MemberRemoved { member_id, reason } => {
                format!("REMOVED {member_id} {reason:?}")
            }
        })
        .collect()
}
