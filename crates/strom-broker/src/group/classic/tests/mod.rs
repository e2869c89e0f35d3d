//! Event-script tests: each test feeds timed events to one group and compares
//! the outputs, rendered one line each, with the expected lines:
//!
//! - `J<rid> m=<member> g=<gen> l=<leader> p=<protocol> [members=a,b] [skip]` —
//!   a successful JoinGroup response; `J<rid> <Error> m=<member>` on error;
//! - `S<rid> a=<assignment> p=<protocol>` — SyncGroup; `S<rid> <Error>`;
//! - `PERSIST` — the group's metadata record must be written.
//!
//! New member ids are `<client id or instance id>-<n>` with n counting from 1.

mod join_tests;
mod persist_tests;
mod static_tests;
mod sync_tests;

use bytes::Bytes;
use strom_protocol::ErrorCode;

use super::{ClassicGroup, GroupConfig, GroupState, JoinRequest, Output, SyncRequest};

/// Session timeout used unless a test sets another.
const SESSION_MS: i32 = 10_000;
/// Rebalance timeout used unless a test sets another.
const REBALANCE_MS: i32 = 20_000;
/// `group.initial.rebalance.delay.ms` in the test config.
const DELAY_MS: i64 = 3_000;
/// When [`Script::stable`] groups become Stable: a second member joining
/// during the initial delay extends it once, so a multi-member first
/// generation completes at 2 × DELAY_MS; everyone syncs then, so every
/// session deadline is `STABLE_MS + SESSION_MS` = 16000.
const STABLE_MS: i64 = 2 * DELAY_MS;

fn test_config() -> GroupConfig {
    GroupConfig {
        min_session_timeout_ms: 6_000,
        max_session_timeout_ms: 1_800_000,
        initial_rebalance_delay_ms: DELAY_MS,
        max_size: 100,
    }
}

/// A JoinGroup request builder.
struct J(JoinRequest);

/// A join from `member` ("" for a new member) with client id `c`, protocol
/// type `consumer` and the single protocol `range` with metadata `r`.
fn j(request_id: u64, member: &str) -> J {
    J(JoinRequest {
        request_id,
        member_id: member.to_owned(),
        group_instance_id: None,
        protocol_type: "consumer".to_owned(),
        protocols: vec![("range".to_owned(), Bytes::from_static(b"r"))],
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        client_id: "c".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        require_known_member_id: false,
        supports_skip_assignment: false,
        reason: None,
    })
}

impl J {
    fn client(mut self, client_id: &str) -> Self {
        self.0.client_id = client_id.to_owned();
        self
    }
    fn instance(mut self, instance_id: &str) -> Self {
        self.0.group_instance_id = Some(instance_id.to_owned());
        self
    }
    /// Protocols as (name, metadata) pairs, most preferred first.
    fn protocols(mut self, protocols: &[(&str, &str)]) -> Self {
        self.0.protocols = protocols
            .iter()
            .map(|(n, m)| (n.to_string(), Bytes::copy_from_slice(m.as_bytes())))
            .collect();
        self
    }
    fn protocol_type(mut self, protocol_type: &str) -> Self {
        self.0.protocol_type = protocol_type.to_owned();
        self
    }
    fn session(mut self, ms: i32) -> Self {
        self.0.session_timeout_ms = ms;
        self
    }
    fn rebalance(mut self, ms: i32) -> Self {
        self.0.rebalance_timeout_ms = ms;
        self
    }
    /// JoinGroup v4+: unknown dynamic members get MEMBER_ID_REQUIRED.
    fn v4(mut self) -> Self {
        self.0.require_known_member_id = true;
        self
    }
    /// JoinGroup v9+: supports skip_assignment.
    fn v9(mut self) -> Self {
        self.0.require_known_member_id = true;
        self.0.supports_skip_assignment = true;
        self
    }
}

/// A SyncGroup request builder.
struct S(SyncRequest);

fn sy(request_id: u64, member: &str, generation_id: i32) -> S {
    S(SyncRequest {
        request_id,
        member_id: member.to_owned(),
        group_instance_id: None,
        generation_id,
        protocol_type: None,
        protocol_name: None,
        assignments: Vec::new(),
    })
}

impl S {
    fn instance(mut self, instance_id: &str) -> Self {
        self.0.group_instance_id = Some(instance_id.to_owned());
        self
    }
    fn assign(mut self, assignments: &[(&str, &str)]) -> Self {
        self.0.assignments = assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a.as_bytes())))
            .collect();
        self
    }
    /// SyncGroup v5+ protocol type and name.
    fn protocol(mut self, protocol_type: &str, protocol_name: &str) -> Self {
        self.0.protocol_type = Some(protocol_type.to_owned());
        self.0.protocol_name = Some(protocol_name.to_owned());
        self
    }
}

/// One group driven by a script of timed events.
struct Script {
    group: ClassicGroup,
    cfg: GroupConfig,
    next_member_suffix: u32,
}

impl Script {
    fn new() -> Self {
        Self::with_config(test_config())
    }

    fn with_config(cfg: GroupConfig) -> Self {
        Self {
            group: ClassicGroup::new("g".to_owned(), 0),
            cfg,
            next_member_suffix: 1,
        }
    }

    fn join(&mut self, now_ms: i64, join: J) -> Vec<String> {
        let req = join.0;
        let prefix = req
            .group_instance_id
            .clone()
            .unwrap_or_else(|| req.client_id.clone());
        let suffix = self.next_member_suffix;
        let mut generated = false;
        let out = self.group.join(req, &self.cfg, now_ms, || {
            generated = true;
            format!("{prefix}-{suffix}")
        });
        if generated {
            self.next_member_suffix += 1;
        }
        render(&out)
    }

    fn sync(&mut self, now_ms: i64, sync: S) -> Vec<String> {
        render(&self.group.sync(sync.0, now_ms))
    }

    fn heartbeat(&mut self, now_ms: i64, member: &str, generation_id: i32) -> ErrorCode {
        self.group.heartbeat(member, None, generation_id, now_ms)
    }

    fn leave(
        &mut self,
        now_ms: i64,
        members: &[(&str, Option<&str>)],
    ) -> (Vec<ErrorCode>, Vec<String>) {
        let members: Vec<(String, Option<String>)> = members
            .iter()
            .map(|(m, i)| (m.to_string(), i.map(str::to_owned)))
            .collect();
        let (errors, out) = self.group.leave(&members, now_ms);
        (errors, render(&out))
    }

    fn tick(&mut self, now_ms: i64) -> Vec<String> {
        render(&self.group.tick(&self.cfg, now_ms))
    }

    fn state(&self) -> GroupState {
        self.group.state()
    }

    /// Builds a Stable generation-1 group from `joins` (all at t=0, request ids
    /// as given); the leader assigns `x-<member id>` to every member. Returns
    /// the member ids in join order; the group is Stable at t=STABLE_MS.
    fn stable(&mut self, joins: Vec<J>) -> Vec<String> {
        let rids: Vec<u64> = joins.iter().map(|j| j.0.request_id).collect();
        for join in joins {
            assert_eq!(self.join(0, join), Vec::<String>::new());
        }
        let mut joined = self.tick(DELAY_MS);
        joined.extend(self.tick(STABLE_MS));
        assert_eq!(joined.len(), rids.len(), "{joined:?}");
        let ids: Vec<String> = self
            .group
            .members()
            .map(|m| m.member_id.to_owned())
            .collect();
        let leader = self.group.leader().expect("leader").to_owned();
        let assignments: Vec<(String, String)> =
            ids.iter().map(|m| (m.clone(), format!("x-{m}"))).collect();
        let refs: Vec<(&str, &str)> = assignments
            .iter()
            .map(|(m, a)| (m.as_str(), a.as_str()))
            .collect();
        for id in ids.iter().filter(|id| **id != leader) {
            assert_eq!(self.sync(STABLE_MS, sy(900, id, 1)), Vec::<String>::new());
        }
        let synced = self.sync(STABLE_MS, sy(901, &leader, 1).assign(&refs));
        assert_eq!(synced.len(), ids.len() + 1, "{synced:?}");
        assert_eq!(self.state(), GroupState::Stable);
        ids
    }
}

/// Renders outputs one line each (see the module docs).
fn render(out: &[Output]) -> Vec<String> {
    out.iter().map(render_one).collect()
}

fn render_one(output: &Output) -> String {
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    match output {
        Output::PersistGroup => "PERSIST".to_owned(),
        Output::Join(rid, r) if r.error != ErrorCode::None => {
            format!("J{rid} {:?} m={}", r.error, r.member_id)
        }
        Output::Join(rid, r) => {
            let mut line = format!(
                "J{rid} m={} g={} l={} p={}",
                r.member_id,
                r.generation_id,
                r.leader,
                r.protocol_name.as_deref().unwrap_or("-")
            );
            if !r.members.is_empty() {
                let members: Vec<String> = r
                    .members
                    .iter()
                    .map(|m| format!("{}:{}", m.member_id, text(&m.metadata)))
                    .collect();
                line.push_str(&format!(" members={}", members.join(",")));
            }
            if r.skip_assignment {
                line.push_str(" skip");
            }
            line
        }
        Output::Sync(rid, r) if r.error != ErrorCode::None => format!("S{rid} {:?}", r.error),
        Output::Sync(rid, r) => format!(
            "S{rid} a={} p={}",
            text(&r.assignment),
            r.protocol_name.as_deref().unwrap_or("-")
        ),
    }
}

/// `assert_eq!` for rendered outputs against string literals.
#[track_caller]
fn expect(actual: Vec<String>, expected: &[&str]) {
    assert_eq!(actual, expected);
}
