//! Random join / leave / heartbeat / topic-change sequences with clients
//! that process assignments late: no partition is ever owned by two clients,
//! a client owns only what the group thinks it may, and the group converges.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::super::ServerAssignor;
use super::*;

/// A well-behaved client (as the Java consumer): reports its owned
/// partitions only after it applied an assignment, and
/// applies a received assignment either at once or on a later `process`.
#[derive(Default)]
struct Client {
    epoch: i32,
    owned: Assignment,
    /// What it last reported; `None` forces a report.
    reported: Option<Assignment>,
    /// The latest assignment received but not applied yet.
    pending: Option<Assignment>,
}

fn subscription(kind: usize) -> Vec<&'static str> {
    match kind % 3 {
        0 => vec!["foo"],
        1 => vec!["bar"],
        _ => vec!["foo", "bar"],
    }
}

struct Sim {
    s: Script,
    clients: BTreeMap<String, Client>,
}

impl Sim {
    fn heartbeat(&mut self, now: i64, id: &str, process_at_once: bool) {
        let c = self.clients.get_mut(id).expect("client");
        let mut req = hb(id, c.epoch);
        if c.reported.as_ref() != Some(&c.owned) {
            req.0.owned_partitions = Some(c.owned.clone());
            c.reported = Some(c.owned.clone());
        }
        let (resp, _) = self
            .s
            .group
            .heartbeat(req.0, &self.s.topics, &self.s.cfg, now, || unreachable!())
            .unwrap_or_else(|e| panic!("well-behaved client {id} refused: {e:?}"));
        let c = self.clients.get_mut(id).expect("client");
        c.epoch = resp.member_epoch;
        if let Some(a) = resp.assignment {
            c.pending = Some(a);
        }
        if process_at_once {
            process(c);
        }
    }

    fn check(&self) {
        self.s.check_invariants();
        let mut seen = BTreeMap::new();
        for (id, c) in &self.clients {
            let m = &self.s.group.members[id];
            for (t, ps) in &c.owned {
                for p in ps {
                    if let Some(other) = seen.insert((*t, *p), id) {
                        panic!("{t}-{p} owned by clients {other} and {id}");
                    }
                    let allowed = m.assigned.get(t).is_some_and(|s| s.contains(p))
                        || m.pending_revocation.get(t).is_some_and(|s| s.contains(p));
                    assert!(
                        allowed,
                        "client {id} owns {t}-{p} the group did not leave it"
                    );
                }
            }
        }
    }
}

/// Applies the latest received assignment. Like the Java consumer (whose
/// "local assignment" carries a local epoch), the client then reports its
/// owned partitions even if the set did not change: the group waits for that
/// acknowledgement before it moves the member on.
fn process(c: &mut Client) {
    if let Some(a) = c.pending.take() {
        c.owned = a;
        c.reported = None;
    }
}

#[derive(Clone, Debug)]
enum Op {
    Join {
        client: usize,
        kind: usize,
        range: bool,
    },
    Leave {
        client: usize,
    },
    Heartbeat {
        client: usize,
        process_at_once: bool,
    },
    Process {
        client: usize,
    },
    AddPartitions,
    DeleteBar,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..5usize, 0..3usize, any::<bool>()).prop_map(|(client, kind, range)| Op::Join { client, kind, range }),
        1 => (0..5usize).prop_map(|client| Op::Leave { client }),
        6 => (0..5usize, any::<bool>()).prop_map(|(client, process_at_once)| Op::Heartbeat { client, process_at_once }),
        2 => (0..5usize).prop_map(|client| Op::Process { client }),
        1 => Just(Op::AddPartitions),
        1 => Just(Op::DeleteBar),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn no_partition_is_ever_owned_twice_and_the_group_converges(ops in prop::collection::vec(op(), 1..120)) {
        let mut sim = Sim { s: Script::new(&[("foo", 7), ("bar", 3)]), clients: BTreeMap::new() };
        let mut now = 0;
        for op in ops {
            now += 1;
            match op {
                Op::Join { client, kind, range } => {
                    let id = format!("c{client}");
                    if sim.clients.contains_key(&id) { continue; }
                    let req = join(&id, &subscription(kind)).assignor(if range { "range" } else { "uniform" });
                    let (resp, _) = sim.s.group.heartbeat(req.0, &sim.s.topics, &sim.s.cfg, now, || unreachable!()).expect("join");
                    let mut c = Client { epoch: resp.member_epoch, reported: Some(Assignment::new()), ..Client::default() };
                    c.pending = resp.assignment;
                    sim.clients.insert(id, c);
                }
                Op::Leave { client } => {
                    let id = format!("c{client}");
                    if sim.clients.remove(&id).is_some() {
                        sim.s.group.heartbeat(hb(&id, -1).0, &sim.s.topics, &sim.s.cfg, now, || unreachable!()).expect("leave");
                    }
                }
                Op::Heartbeat { client, process_at_once } => {
                    let id = format!("c{client}");
                    if sim.clients.contains_key(&id) { sim.heartbeat(now, &id, process_at_once); }
                }
                Op::Process { client } => {
                    if let Some(c) = sim.clients.get_mut(&format!("c{client}")) { process(c); }
                }
                Op::AddPartitions => {
                    let bar = sim.s.topics.get("bar").map(|t| t.1);
                    let mut topics = vec![("foo", 9)];
                    if let Some(n) = bar { topics.push(("bar", n)); }
                    sim.s.set_topics(&topics);
                }
                Op::DeleteBar => {
                    let foo = sim.s.topics["foo"].1;
                    sim.s.set_topics(&[("foo", foo)]);
                }
            }
            sim.check();
        }

        // Everyone heartbeats and processes promptly: the group must settle.
        let ids: Vec<String> = sim.clients.keys().cloned().collect();
        for _ in 0..6 {
            for id in &ids {
                now += 1;
                process(sim.clients.get_mut(id).expect("client"));
                sim.heartbeat(now, id, true);
                sim.check();
            }
        }
        if ids.is_empty() { return Ok(()); }
        prop_assert_eq!(sim.s.group.state(), super::super::GroupState::Stable, "{:#?}", sim.s.group);
        let g = &sim.s.group;
        let mut assigned = 0usize;
        for id in &ids {
            let target = g.target.get(id).cloned().unwrap_or_default();
            prop_assert_eq!(&g.members[id].assigned, &target);
            prop_assert_eq!(&sim.clients[id].owned, &target);
            assigned += target.values().map(|s| s.len()).sum::<usize>();
        }
        // Every partition of a subscribed topic is assigned.
        let subscribed: usize = g.subscription_metadata.values().map(|(_, n)| *n as usize).sum();
        prop_assert_eq!(assigned, subscribed);
        // Uniform with identical subscriptions: counts differ by at most one.
        let homogeneous = ids.windows(2).all(|w| g.members[&w[0]].subscribed_topic_names == g.members[&w[1]].subscribed_topic_names);
        if homogeneous && g.preferred_assignor(&sim.s.cfg) == ServerAssignor::Uniform {
            let counts: Vec<usize> = ids.iter().map(|id| g.members[id].assigned.values().map(|s| s.len()).sum()).collect();
            prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{:?}", counts);
        }
    }
}
