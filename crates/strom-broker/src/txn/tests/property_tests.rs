//! A property-style check (a deterministic loop driven by a small LCG): two
//! producer incarnations share one transactional id and interleave every
//! request at random with write completions and failures, marker
//! completions, timeouts, expirations, restarts, lost responses and
//! requests delivered again late. After every event:
//!
//! - **one owner** — only the incarnation that last initialised the id (and
//!   was not fenced since by a timeout, a newer incarnation or expiry) gets
//!   anything but an error, and only it changes the coordinator's state;
//! - **no time travel (TV2)** — a request from an earlier transaction of the
//!   owner, delivered late, never changes the state;
//! - **one live epoch** — of the producer ids and epochs the clients hold, at
//!   most one could start and commit a transaction, and it is the owner's.
//!
//! At the end, after every write and marker completes, a new incarnation can
//! still commit (nothing is stuck).

use std::collections::{BTreeSet, VecDeque};

use strom_protocol::ErrorCode;

use crate::txn::{
    Output, PersistToken, ProducerIdAndEpoch, TopicPartition, TransactionCoordinator,
    TransactionVersion, TxnConfig, TxnLogValue, TxnResult, TxnState,
};

const ID: &str = "t";
const TIMEOUT_MS: i32 = 2_000;

/// Knuth's MMIX LCG; the high bits are the random ones.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// InitProducerId without an expected producer: a new incarnation.
    FreshInit,
    /// InitProducerId with the producer the client holds (KIP-360).
    RecoverInit,
    Add(i32),
    Verify(i32),
    Offsets,
    End(TxnResult),
}

/// A request as sent, kept for late redelivery.
#[derive(Clone, Debug)]
struct Request {
    client: usize,
    /// The incarnation it comes from (for a FreshInit: the one it creates).
    incarnation: u64,
    /// The client's transaction count when it was sent.
    txn_seq: u64,
    kind: Kind,
    producer: Option<ProducerIdAndEpoch>,
}

/// What a durable write means for ownership.
#[derive(Clone, Copy, Debug)]
enum Effect {
    OwnerBecomes(u64),
    OwnerFenced,
    Nothing,
}

struct Inflight {
    token: PersistToken,
    value: Option<TxnLogValue>,
    /// The request waiting for this write, if its client is listening.
    waiting: Option<(Request, Result<ProducerIdAndEpoch, ErrorCode>)>,
    effect: Effect,
}

struct Client {
    incarnation: u64,
    held: Option<ProducerIdAndEpoch>,
    txn_seq: u64,
    version: TransactionVersion,
}

/// What a run exercised, so a degenerate random walk fails the test.
#[derive(Debug, Default)]
struct Coverage {
    commits: u32,
    aborts: u32,
    /// Writes that fenced the owner (timeouts, fencing InitProducerIds, expiry).
    fences: u32,
    /// Producer id changes (epoch exhaustion or expiry).
    new_producer_ids: u32,
    late_requests: u32,
    restarts: u32,
}

struct World {
    c: TransactionCoordinator,
    coverage: Coverage,
    /// The producer id last seen durable, to count changes.
    last_producer_id: Option<i64>,
    rng: Lcg,
    now: i64,
    next_pid: i64,
    owner: Option<u64>,
    next_incarnation: u64,
    clients: [Client; 2],
    sent: Vec<Request>,
    inflight: Option<Inflight>,
    markers: Option<(ProducerIdAndEpoch, TxnResult)>,
    /// The last durable record of the id (encoded), for restarts.
    durable: Option<bytes::Bytes>,
    trace: VecDeque<String>,
}

fn config() -> TxnConfig {
    TxnConfig {
        transactional_id_expiration_ms: 30_000,
        ..TxnConfig::default()
    }
}

impl World {
    fn new(seed: u64, versions: [TransactionVersion; 2]) -> Self {
        let client = |version| Client {
            incarnation: u64::MAX,
            held: None,
            txn_seq: 0,
            version,
        };
        let mut w = World {
            c: TransactionCoordinator::new(config(), 0),
            coverage: Coverage::default(),
            last_producer_id: None,
            rng: Lcg(seed),
            now: 0,
            next_pid: 1000,
            owner: None,
            next_incarnation: 0,
            clients: [client(versions[0]), client(versions[1])],
            sent: Vec::new(),
            inflight: None,
            markers: None,
            durable: None,
            trace: VecDeque::new(),
        };
        if seed.is_multiple_of(3) {
            // Start near the end of the epochs so runs cross exhaustion.
            let p = ProducerIdAndEpoch::new(500, i16::MAX - 6);
            let value = TxnLogValue {
                producer_id: p.producer_id,
                previous_producer_id: -1,
                next_producer_id: -1,
                producer_epoch: p.producer_epoch,
                transaction_timeout_ms: TIMEOUT_MS,
                transaction_status: TxnState::CompleteCommit,
                transaction_partitions: BTreeSet::new(),
                transaction_last_update_timestamp_ms: 0,
                transaction_start_timestamp_ms: 0,
                client_transaction_version: versions[0].feature_level(),
            };
            w.durable = Some(value.encode());
            w.c.load(ID, Some(value));
            w.owner = Some(0);
            w.next_incarnation = 1;
            w.clients[0].incarnation = 0;
            w.clients[0].held = Some(p);
        }
        w
    }

    fn log(&mut self, line: String) {
        if self.trace.len() == 400 {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    fn context(&self) -> String {
        let lines: Vec<&str> = self.trace.iter().map(String::as_str).collect();
        format!(
            "owner={:?} meta={:?}\n{}",
            self.owner,
            self.c.get(ID),
            lines.join("\n")
        )
    }

    /// Notes what the coordinator asked for.
    fn take_outputs(
        &mut self,
        outputs: Vec<Output>,
        effect: Effect,
        waiting: Option<(Request, Result<ProducerIdAndEpoch, ErrorCode>)>,
    ) {
        for output in outputs {
            match output {
                Output::Persist { token, value, .. } => {
                    assert!(
                        self.inflight.is_none(),
                        "two writes in flight\n{}",
                        self.context()
                    );
                    self.inflight = Some(Inflight {
                        token,
                        value,
                        waiting: waiting.clone(),
                        effect,
                    });
                }
                Output::WriteMarkers {
                    producer_id,
                    producer_epoch,
                    result,
                    ..
                } => {
                    assert!(
                        self.markers.is_none(),
                        "two marker writes\n{}",
                        self.context()
                    );
                    self.markers =
                        Some((ProducerIdAndEpoch::new(producer_id, producer_epoch), result));
                }
                Output::TransactionCompleted { result, .. } => match result {
                    TxnResult::Commit => self.coverage.commits += 1,
                    TxnResult::Abort => self.coverage.aborts += 1,
                },
            }
        }
    }

    fn send(&mut self, req: Request, late: bool) {
        if late {
            self.coverage.late_requests += 1;
        }
        let mut next_pid = self.next_pid;
        let mut ids = || {
            next_pid += 1;
            Ok(next_pid - 1)
        };
        let now = self.now;
        let version = self.clients[req.client].version;
        // KIP-360 on an id the coordinator does not know (expired) or never
        // initialised starts afresh, like a new incarnation (Kafka's "epoch
        // -1: just created" rule).
        let unknown_id = self.c.get(ID).is_none_or(|m| m.is_uninitialized());
        let (reply, outputs): (Result<ProducerIdAndEpoch, ErrorCode>, Vec<Output>) = match req.kind
        {
            Kind::FreshInit => {
                let s = self.c.init_producer_id(ID, TIMEOUT_MS, None, &mut ids, now);
                (s.reply, s.outputs)
            }
            Kind::RecoverInit => {
                let s = self
                    .c
                    .init_producer_id(ID, TIMEOUT_MS, req.producer, &mut ids, now);
                (s.reply, s.outputs)
            }
            Kind::Add(partition) | Kind::Verify(partition) => {
                let partitions = BTreeSet::from([TopicPartition::new("x", partition)]);
                let verify = matches!(req.kind, Kind::Verify(_));
                let p = req.producer.unwrap_or(ProducerIdAndEpoch::NONE);
                let s = self.c.add_partitions(ID, p, &partitions, verify, now);
                (s.reply.map(|_| p), s.outputs)
            }
            Kind::Offsets => {
                let p = req.producer.unwrap_or(ProducerIdAndEpoch::NONE);
                let s = self.c.add_offsets(ID, p, "group", |_| 7, now);
                (s.reply.map(|()| p), s.outputs)
            }
            Kind::End(result) => {
                let p = req.producer.unwrap_or(ProducerIdAndEpoch::NONE);
                let s = self.c.end_txn(ID, p, result, version, &mut ids, now);
                (s.reply, s.outputs)
            }
        };
        self.next_pid = next_pid;
        let persists = outputs.iter().any(|o| matches!(o, Output::Persist { .. }));
        // Whether a write would change a transaction: its producer or
        // partitions, or start or decide one. A KIP-360 retry rewrites the
        // same producer (and may move a completed id to Empty, which starts
        // nothing).
        let idle = |s: TxnState| matches!(s, TxnState::Empty) || s.is_complete();
        let changes = outputs.iter().any(|o| match o {
            Output::Persist { value, .. } => {
                let meta = self.c.get(ID);
                let same = |v: &TxnLogValue| {
                    meta.is_some_and(|m| {
                        m.producer() == ProducerIdAndEpoch::new(v.producer_id, v.producer_epoch)
                            && m.partitions == v.transaction_partitions
                            && (m.state == v.transaction_status
                                || (idle(m.state) && idle(v.transaction_status)))
                    })
                };
                !value.as_ref().is_some_and(same)
            }
            _ => false,
        });
        self.log(format!(
            "{}send c{} inc{} seq{} {:?} {:?} -> {:?}{}",
            if late { "LATE " } else { "" },
            req.client,
            req.incarnation,
            req.txn_seq,
            req.kind,
            req.producer,
            reply,
            if persists { " +persist" } else { "" }
        ));

        // One owner: everyone else is refused and changes nothing.
        let from_owner = self.owner == Some(req.incarnation);
        let starts_afresh =
            req.kind == Kind::FreshInit || (req.kind == Kind::RecoverInit && unknown_id);
        if !starts_afresh && !from_owner {
            assert!(
                reply.is_err() && !persists,
                "a non-owner's request was accepted\n{}",
                self.context()
            );
        }
        // No time travel: a late request from an earlier transaction of the
        // owner (TV2) changes nothing.
        let client = &self.clients[req.client];
        if late
            && from_owner
            && client.version == TransactionVersion::Tv2
            && client.incarnation == req.incarnation
            && req.txn_seq < client.txn_seq
        {
            assert!(
                !changes,
                "a late request from an earlier transaction changed the state\n{}",
                self.context()
            );
        }

        let effect = match (req.kind, &reply) {
            (Kind::FreshInit | Kind::RecoverInit, Ok(_)) => Effect::OwnerBecomes(req.incarnation),
            // InitProducerId aborting an ongoing transaction fences its owner.
            (Kind::FreshInit | Kind::RecoverInit, Err(_)) => Effect::OwnerFenced,
            _ => Effect::Nothing,
        };
        let waiting = (!late).then(|| (req.clone(), reply));
        if persists {
            self.take_outputs(outputs, effect, waiting);
        } else {
            self.take_outputs(outputs, Effect::Nothing, None);
            if let Some((req, reply)) = waiting {
                self.deliver(&req, reply);
            }
        }
        if !late {
            if self.sent.len() == 64 {
                self.sent.remove(0);
            }
            self.sent.push(req);
        }
    }

    /// The response reaches the client, unless the network loses it.
    fn deliver(&mut self, req: &Request, reply: Result<ProducerIdAndEpoch, ErrorCode>) {
        if self.rng.chance(10) {
            self.log(format!("lost response to c{}", req.client));
            return;
        }
        let Ok(p) = reply else {
            return;
        };
        let client = &mut self.clients[req.client];
        if req.kind == Kind::FreshInit {
            client.incarnation = req.incarnation;
        } else if client.incarnation != req.incarnation {
            return;
        }
        match req.kind {
            Kind::FreshInit | Kind::RecoverInit => {
                client.held = Some(p);
                client.txn_seq += 1;
            }
            Kind::End(_) => {
                client.txn_seq += 1;
                if client.version == TransactionVersion::Tv2 {
                    client.held = Some(p);
                }
            }
            _ => {}
        }
    }

    fn complete_persist(&mut self, ok: bool) {
        let Some(inflight) = self.inflight.take() else {
            return;
        };
        let result = if ok {
            Ok(())
        } else {
            Err(ErrorCode::NotCoordinator)
        };
        let now = self.now;
        let outputs = self.c.persist_completed(ID, inflight.token, result, now);
        self.log(format!(
            "persist {} -> {} outputs",
            if ok { "ok" } else { "FAILED" },
            outputs.len()
        ));
        if ok {
            self.durable = inflight.value.as_ref().map(TxnLogValue::encode);
            match inflight.effect {
                Effect::OwnerBecomes(i) => self.owner = Some(i),
                Effect::OwnerFenced => {
                    self.owner = None;
                    self.coverage.fences += 1;
                }
                Effect::Nothing => {}
            }
            let pid = self.c.get(ID).map(|m| m.producer_id);
            if pid.is_some() && self.last_producer_id.is_some() && pid != self.last_producer_id {
                self.coverage.new_producer_ids += 1;
            }
            self.last_producer_id = pid.or(self.last_producer_id);
        }
        self.take_outputs(outputs, Effect::Nothing, None);
        if let Some((req, reply)) = inflight.waiting {
            let reply = if ok {
                reply
            } else {
                Err(ErrorCode::NotCoordinator)
            };
            self.deliver(&req, reply);
        }
    }

    fn complete_markers(&mut self) {
        let Some((p, result)) = self.markers.take() else {
            return;
        };
        let now = self.now;
        let step = self.c.markers_written(ID, p, result, now);
        self.log(format!(
            "markers {result:?} {p:?} written -> {:?}",
            step.reply
        ));
        assert!(step.reply.is_ok(), "markers refused\n{}", self.context());
        self.take_outputs(step.outputs, Effect::Nothing, None);
    }

    fn restart(&mut self) {
        self.coverage.restarts += 1;
        let epoch = self.c.coordinator_epoch() + 1;
        self.c = TransactionCoordinator::new(config(), epoch);
        if let Some(bytes) = &self.durable {
            let value = TxnLogValue::decode(bytes).expect("durable record decodes");
            self.c.load(ID, Some(value));
        }
        self.markers = None;
        if let Some(inflight) = self.inflight.take() {
            if let Some((req, _)) = inflight.waiting {
                self.deliver(&req, Err(ErrorCode::NotCoordinator));
            }
        }
        let now = self.now;
        let outputs = self.c.recover(now);
        self.log(format!("RESTART -> {} outputs", outputs.len()));
        self.take_outputs(outputs, Effect::Nothing, None);
    }

    /// The request a client would send now.
    fn request(&mut self, client: usize, kind: Kind) -> Request {
        let incarnation = if kind == Kind::FreshInit {
            self.next_incarnation += 1;
            self.next_incarnation - 1
        } else {
            self.clients[client].incarnation
        };
        Request {
            client,
            incarnation,
            txn_seq: self.clients[client].txn_seq,
            kind,
            producer: self.clients[client].held,
        }
    }

    fn step(&mut self) {
        self.now += self.rng.below(60) as i64;
        let client = self.rng.below(2) as usize;
        let partition = self.rng.below(3) as i32;
        let held = self.clients[client].held.is_some();
        match self.rng.below(100) {
            0..=4 => {
                let req = self.request(client, Kind::FreshInit);
                self.send(req, false);
            }
            5..=8 if held => {
                let req = self.request(client, Kind::RecoverInit);
                self.send(req, false);
            }
            9..=28 if held => {
                let req = self.request(client, Kind::Add(partition));
                self.send(req, false);
            }
            29..=32 if held => {
                let req = self.request(client, Kind::Verify(partition));
                self.send(req, false);
            }
            33..=35 if held => {
                let req = self.request(client, Kind::Offsets);
                self.send(req, false);
            }
            36..=47 if held => {
                let req = self.request(client, Kind::End(TxnResult::Commit));
                self.send(req, false);
            }
            48..=54 if held => {
                let req = self.request(client, Kind::End(TxnResult::Abort));
                self.send(req, false);
            }
            55..=72 => self.complete_persist(true),
            73..=75 => self.complete_persist(false),
            76..=85 => self.complete_markers(),
            86..=89 => {
                self.now += self.rng.below(2 * TIMEOUT_MS as u64) as i64;
                let now = self.now;
                let outputs = self.c.expire_timed_out(now);
                self.log(format!("timeouts at {now} -> {} outputs", outputs.len()));
                self.take_outputs(outputs, Effect::OwnerFenced, None);
                self.retry_completions();
            }
            90..=97 if !self.sent.is_empty() => {
                let i = self.rng.below(self.sent.len() as u64) as usize;
                let mut req = self.sent[i].clone();
                if req.kind == Kind::FreshInit {
                    // Its response goes nowhere: a ghost incarnation.
                    req.incarnation = self.next_incarnation;
                    self.next_incarnation += 1;
                }
                self.send(req, true);
            }
            98 => self.restart(),
            99 => {
                self.now += 31_000;
                let now = self.now;
                let outputs = self.c.expire_transactional_ids(now);
                self.log(format!("expire ids at {now} -> {} outputs", outputs.len()));
                self.take_outputs(outputs, Effect::OwnerFenced, None);
            }
            _ => {}
        }
        self.check_one_live_epoch();
    }

    /// Of the producers the clients hold, at most one could start and commit
    /// a transaction now, and only the owner's (tried on a copy).
    fn check_one_live_epoch(&self) {
        if self.c.has_pending(ID) {
            return;
        }
        let mut able = Vec::new();
        for (i, client) in self.clients.iter().enumerate() {
            let Some(p) = client.held else {
                continue;
            };
            let mut c = self.c.clone();
            let now = self.now;
            let partitions = BTreeSet::from([TopicPartition::new("probe", 0)]);
            let add = c.add_partitions(ID, p, &partitions, false, now);
            if add.reply.is_err() {
                continue;
            }
            for output in add.outputs {
                if let Output::Persist { token, .. } = output {
                    let _ = c.persist_completed(ID, token, Ok(()), now);
                }
            }
            let mut ids = || Ok(9_999_999);
            let end = c.end_txn(ID, p, TxnResult::Commit, client.version, &mut ids, now);
            let commits = end.reply.is_ok()
                && end
                    .outputs
                    .iter()
                    .any(|o| matches!(o, Output::Persist { .. }));
            if commits {
                able.push((i, client.incarnation));
            }
        }
        assert!(
            able.len() <= 1,
            "two live epochs: {able:?}\n{}",
            self.context()
        );
        if let Some((_, incarnation)) = able.first() {
            assert_eq!(
                self.owner,
                Some(*incarnation),
                "a non-owner can commit\n{}",
                self.context()
            );
        }
    }

    /// The coordinator's periodic retry of failed Complete* writes.
    fn retry_completions(&mut self) {
        if self.inflight.is_some() {
            return;
        }
        let now = self.now;
        let outputs = self.c.retry_completions(now);
        self.log(format!("retry completions -> {} outputs", outputs.len()));
        self.take_outputs(outputs, Effect::Nothing, None);
    }

    /// Completes every write and marker in flight.
    fn settle(&mut self) {
        for _ in 0..10 {
            self.retry_completions();
            self.complete_persist(true);
            self.complete_markers();
        }
        assert!(self.inflight.is_none() && self.markers.is_none());
    }

    /// After the chaos, a new incarnation initialises and commits.
    fn check_not_stuck(&mut self) {
        self.settle();
        let mut initialised = false;
        for _ in 0..5 {
            let mut next_pid = self.next_pid;
            let mut ids = || {
                next_pid += 1;
                Ok(next_pid - 1)
            };
            let now = self.now;
            let step = self.c.init_producer_id(ID, TIMEOUT_MS, None, &mut ids, now);
            self.next_pid = next_pid;
            let reply = step.reply;
            self.take_outputs(step.outputs, Effect::Nothing, None);
            self.settle();
            if let Ok(p) = reply {
                self.clients[0].held = Some(p);
                initialised = true;
                break;
            }
        }
        assert!(
            initialised,
            "InitProducerId never succeeded\n{}",
            self.context()
        );
        let p = self.clients[0].held.expect("held");
        let now = self.now;
        let partitions = BTreeSet::from([TopicPartition::new("x", 0)]);
        let add = self.c.add_partitions(ID, p, &partitions, false, now);
        assert!(add.reply.is_ok(), "{:?}\n{}", add.reply, self.context());
        self.take_outputs(add.outputs, Effect::Nothing, None);
        self.settle();
        let mut ids = || Ok(8_888_888);
        let version = self.clients[0].version;
        let end = self
            .c
            .end_txn(ID, p, TxnResult::Commit, version, &mut ids, now);
        assert!(end.reply.is_ok(), "{:?}\n{}", end.reply, self.context());
        self.take_outputs(end.outputs, Effect::Nothing, None);
        self.settle();
        assert_eq!(
            self.c.get(ID).map(|m| m.state),
            Some(TxnState::CompleteCommit)
        );
    }
}

fn run(versions: [TransactionVersion; 2], seeds: std::ops::Range<u64>, steps: usize) {
    let mut total = Coverage::default();
    for seed in seeds {
        let mut world = World::new(seed, versions);
        for _ in 0..steps {
            world.step();
        }
        let c = &world.coverage;
        total.commits += c.commits;
        total.aborts += c.aborts;
        total.fences += c.fences;
        total.new_producer_ids += c.new_producer_ids;
        total.late_requests += c.late_requests;
        total.restarts += c.restarts;
        world.check_not_stuck();
    }
    // The walk must reach the interesting places, or the checks prove nothing.
    let Coverage {
        commits,
        aborts,
        fences,
        new_producer_ids,
        late_requests,
        restarts,
    } = total;
    let reached = [
        commits >= 100,
        aborts >= 300,
        fences >= 300,
        new_producer_ids >= 50,
        late_requests >= 1_000,
        restarts >= 100,
    ];
    assert!(reached.iter().all(|r| *r), "{total:?}");
}

#[test]
fn two_tv2_incarnations_never_share_a_live_epoch_nor_travel_in_time() {
    run([TransactionVersion::Tv2; 2], 0..150, 400);
}

#[test]
fn two_tv1_incarnations_never_share_a_live_epoch() {
    run([TransactionVersion::Tv1; 2], 1_000..1_150, 400);
}

#[test]
fn a_tv1_and_a_tv2_incarnation_never_share_a_live_epoch() {
    run(
        [TransactionVersion::Tv1, TransactionVersion::Tv2],
        2_000..2_150,
        400,
    );
}
