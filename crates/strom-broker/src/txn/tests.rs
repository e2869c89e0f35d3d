//! Event-script tests: each test drives one coordinator with timed requests
//! and completions, and compares what comes out, rendered one line each:
//!
//! - the reply first: `OK 1000/0` (producer id / epoch), `OK` (no payload),
//!   `OK t-0:NONE,t-1:TRANSACTION_ABORTABLE` (per partition), or
//!   `ERR PRODUCER_FENCED`;
//! - `PERSIST <id> <state> <pid>/<epoch> [next=<pid>] [<partitions>] [tv2]`, or
//!   `PERSIST <id> tombstone` — a `__transaction_state` record to write;
//! - `MARKERS <id> <Commit|Abort> <pid>/<epoch> <partitions> [tv2]`;
//! - `DONE <id> <Commit|Abort> <pid>/<epoch>` — the transaction completed.
//!
//! Completions (`persisted`, `markers_done`, `settle`) render only the
//! outputs they cause. Producer ids are allocated from 1000 upwards.

mod end_txn_tests;
mod fencing_tests;
mod flow_tests;
mod property_tests;
mod recovery_tests;

use std::collections::{BTreeSet, VecDeque};

use strom_protocol::ErrorCode;

use super::records::{decode_key, encode_key};
use super::{
    Output, PersistToken, ProducerIdAndEpoch, Step, TopicPartition, TransactionCoordinator,
    TransactionVersion, TxnConfig, TxnLogValue, TxnResult,
};

/// `transaction.timeout.ms` unless a test says otherwise.
const TIMEOUT_MS: i32 = 60_000;

/// `transactional.id.expiration.ms` in the test config.
const EXPIRATION_MS: i64 = 1_000_000;

fn test_config() -> TxnConfig {
    TxnConfig {
        transactional_id_expiration_ms: EXPIRATION_MS,
        ..TxnConfig::default()
    }
}

/// A producer id and epoch.
fn pe(producer_id: i64, producer_epoch: i16) -> ProducerIdAndEpoch {
    ProducerIdAndEpoch::new(producer_id, producer_epoch)
}

/// Partitions from `topic-partition` pairs.
fn parts(list: &[(&str, i32)]) -> BTreeSet<TopicPartition> {
    list.iter()
        .map(|(t, p)| TopicPartition::new(*t, *p))
        .collect()
}

const TV1: TransactionVersion = TransactionVersion::Tv1;
const TV2: TransactionVersion = TransactionVersion::Tv2;
const COMMIT: TxnResult = TxnResult::Commit;
const ABORT: TxnResult = TxnResult::Abort;

/// One coordinator driven by a script, with a model of `__transaction_state`
/// (every record whose write was reported durable) for restarts.
struct Script {
    c: TransactionCoordinator,
    now: i64,
    next_pid: i64,
    /// Producer ids handed out so far.
    allocated: u32,
    /// When set, the allocator fails with this code.
    allocator_error: Option<ErrorCode>,
    /// Persists asked for and not yet completed, oldest first.
    persists: VecDeque<(String, PersistToken, Option<TxnLogValue>)>,
    /// Markers asked for and not yet reported written, oldest first.
    markers: VecDeque<(String, ProducerIdAndEpoch, TxnResult)>,
    /// The encoded records written, in order.
    log: Vec<(bytes::Bytes, Option<bytes::Bytes>)>,
}

impl Script {
    fn new() -> Self {
        Self::with_config(test_config())
    }

    fn with_config(config: TxnConfig) -> Self {
        Self {
            c: TransactionCoordinator::new(config, 0),
            now: 0,
            next_pid: 1000,
            allocated: 0,
            allocator_error: None,
            persists: VecDeque::new(),
            markers: VecDeque::new(),
            log: Vec::new(),
        }
    }

    /// Sets the clock.
    fn at(&mut self, now_ms: i64) -> &mut Self {
        self.now = now_ms;
        self
    }

    /// Runs `f` with an allocator over this script's counter.
    fn with_ids<T>(
        &mut self,
        f: impl FnOnce(&mut TransactionCoordinator, &mut dyn super::ProducerIdAllocator, i64) -> T,
    ) -> T {
        let (mut next, mut allocated, error) =
            (self.next_pid, self.allocated, self.allocator_error);
        let mut ids = || match error {
            Some(code) => Err(code),
            None => {
                next += 1;
                allocated += 1;
                Ok(next - 1)
            }
        };
        let out = f(&mut self.c, &mut ids, self.now);
        self.next_pid = next;
        self.allocated = allocated;
        out
    }

    fn init(&mut self, id: &str) -> Vec<String> {
        self.init_with(id, TIMEOUT_MS, None)
    }

    fn init_with(
        &mut self,
        id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
    ) -> Vec<String> {
        let step =
            self.with_ids(|c, ids, now| c.init_producer_id(id, timeout_ms, expected, ids, now));
        self.render_step(step, |p| render_pe(*p))
    }

    fn add(&mut self, id: &str, p: ProducerIdAndEpoch, list: &[(&str, i32)]) -> Vec<String> {
        let now = self.now;
        let step = self.c.add_partitions(id, p, &parts(list), false, now);
        self.render_step(step, |_| String::new())
    }

    fn verify(&mut self, id: &str, p: ProducerIdAndEpoch, list: &[(&str, i32)]) -> Vec<String> {
        let now = self.now;
        let step = self.c.add_partitions(id, p, &parts(list), true, now);
        self.render_step(step, |results| {
            let cells: Vec<String> = results
                .iter()
                .map(|(tp, code)| format!("{tp}:{}", code.name()))
                .collect();
            cells.join(",")
        })
    }

    fn offsets(&mut self, id: &str, p: ProducerIdAndEpoch, group: &str) -> Vec<String> {
        let now = self.now;
        let step = self.c.add_offsets(id, p, group, |g| g.len() as i32, now);
        self.render_step(step, |_| String::new())
    }

    fn end(
        &mut self,
        id: &str,
        p: ProducerIdAndEpoch,
        result: TxnResult,
        tv: TransactionVersion,
    ) -> Vec<String> {
        let step = self.with_ids(|c, ids, now| c.end_txn(id, p, result, tv, ids, now));
        self.render_step(step, |p| {
            if *p == ProducerIdAndEpoch::NONE {
                String::new()
            } else {
                render_pe(*p)
            }
        })
    }

    /// Reports the oldest outstanding Persist as durable.
    fn persisted(&mut self) -> Vec<String> {
        let (id, token, value) = self.persists.pop_front().expect("no outstanding persist");
        let key = encode_key(&id).expect("key");
        self.log.push((key, value.map(|v| v.encode())));
        let now = self.now;
        let out = self.c.persist_completed(&id, token, Ok(()), now);
        self.render_outputs(&out)
    }

    /// Reports the oldest outstanding Persist as failed.
    fn persist_failed(&mut self) -> Vec<String> {
        let (id, token, _) = self.persists.pop_front().expect("no outstanding persist");
        let now = self.now;
        let out = self
            .c
            .persist_completed(&id, token, Err(ErrorCode::NotCoordinator), now);
        self.render_outputs(&out)
    }

    /// Reports the oldest outstanding markers as written (an error reply is
    /// rendered first; a success only by its outputs).
    fn markers_done(&mut self) -> Vec<String> {
        let (id, p, result) = self.markers.pop_front().expect("no outstanding markers");
        let now = self.now;
        let step = self.c.markers_written(&id, p, result, now);
        let mut lines = self.render_step(step, |_| String::new());
        if lines[0] == "OK" {
            lines.remove(0);
        }
        lines
    }

    /// Completes every outstanding persist and marker write until none is
    /// left; returns everything that came out.
    fn settle(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            if !self.persists.is_empty() {
                lines.extend(self.persisted());
            } else if !self.markers.is_empty() {
                lines.extend(self.markers_done());
            } else {
                return lines;
            }
        }
    }

    /// The timeout timer fires.
    fn expire_timed_out(&mut self) -> Vec<String> {
        let now = self.now;
        let out = self.c.expire_timed_out(now);
        self.render_outputs(&out)
    }

    /// The completion-retry timer fires.
    fn retry_completions(&mut self) -> Vec<String> {
        let now = self.now;
        let out = self.c.retry_completions(now);
        self.render_outputs(&out)
    }

    /// The id-expiration timer fires.
    fn expire_ids(&mut self) -> Vec<String> {
        let now = self.now;
        let out = self.c.expire_transactional_ids(now);
        self.render_outputs(&out)
    }

    /// The broker restarts: a new coordinator (one coordinator epoch later)
    /// loads every durable record through the codec and recovers. Writes in
    /// flight are lost with the old coordinator.
    fn restart(&mut self) -> Vec<String> {
        let epoch = self.c.coordinator_epoch() + 1;
        let mut c = TransactionCoordinator::new(self.c.config().clone(), epoch);
        for (key, value) in &self.log {
            let id = decode_key(key).expect("key").expect("v0 key");
            let value = value
                .as_ref()
                .map(|v| TxnLogValue::decode(v).expect("value"));
            c.load(&id, value);
        }
        self.c = c;
        self.persists.clear();
        self.markers.clear();
        let now = self.now;
        let out = self.c.recover(now);
        self.render_outputs(&out)
    }

    /// Initialises `id` and settles: its producer id and epoch.
    fn begin(&mut self, id: &str) -> ProducerIdAndEpoch {
        let lines = self.init(id);
        self.settle();
        let meta = self.c.get(id).expect("initialised");
        assert!(lines[0].starts_with("OK"), "{lines:?}");
        meta.producer()
    }

    /// Renders a step and remembers what it asks for.
    fn render_step<T>(&mut self, step: Step<T>, ok: impl Fn(&T) -> String) -> Vec<String> {
        let reply = match &step.reply {
            Ok(v) => {
                let text = ok(v);
                if text.is_empty() {
                    "OK".to_owned()
                } else {
                    format!("OK {text}")
                }
            }
            Err(code) => format!("ERR {}", code.name()),
        };
        let mut lines = vec![reply];
        lines.extend(self.render_outputs(&step.outputs));
        lines
    }

    fn render_outputs(&mut self, outputs: &[Output]) -> Vec<String> {
        outputs.iter().map(|o| self.render_output(o)).collect()
    }

    fn render_output(&mut self, output: &Output) -> String {
        match output {
            Output::Persist {
                token,
                transactional_id,
                value,
            } => {
                self.persists
                    .push_back((transactional_id.clone(), *token, value.clone()));
                match value {
                    None => format!("PERSIST {transactional_id} tombstone"),
                    Some(v) => {
                        let mut line = format!(
                            "PERSIST {transactional_id} {} {}/{}",
                            v.transaction_status, v.producer_id, v.producer_epoch
                        );
                        if v.next_producer_id != super::NO_PRODUCER_ID {
                            line.push_str(&format!(" next={}", v.next_producer_id));
                        }
                        if !v.transaction_partitions.is_empty() {
                            line.push(' ');
                            line.push_str(&render_parts(&v.transaction_partitions));
                        }
                        if v.client_transaction_version >= 2 {
                            line.push_str(" tv2");
                        }
                        line
                    }
                }
            }
            Output::WriteMarkers {
                transactional_id,
                producer_id,
                producer_epoch,
                result,
                partitions,
                coordinator_epoch,
                transaction_version,
            } => {
                assert_eq!(*coordinator_epoch, self.c.coordinator_epoch());
                let p = pe(*producer_id, *producer_epoch);
                self.markers
                    .push_back((transactional_id.clone(), p, *result));
                let tv = if *transaction_version == TV2 {
                    " tv2"
                } else {
                    ""
                };
                format!(
                    "MARKERS {transactional_id} {result:?} {} {}{tv}",
                    render_pe(p),
                    render_parts(partitions)
                )
            }
            Output::TransactionCompleted {
                transactional_id,
                producer_id,
                producer_epoch,
                result,
            } => format!(
                "DONE {transactional_id} {result:?} {}",
                render_pe(pe(*producer_id, *producer_epoch))
            ),
        }
    }
}

fn render_pe(p: ProducerIdAndEpoch) -> String {
    format!("{}/{}", p.producer_id, p.producer_epoch)
}

fn render_parts(partitions: &BTreeSet<TopicPartition>) -> String {
    let names: Vec<String> = partitions.iter().map(ToString::to_string).collect();
    names.join(",")
}

/// `assert_eq!` for rendered lines against string literals.
#[track_caller]
fn expect(actual: Vec<String>, expected: &[&str]) {
    assert_eq!(actual, expected);
}

/// A `__transaction_state` value for loading: `state`, producer
/// `pid`/`epoch`, `partitions`, the client at `tv`, started and updated at 0.
fn log_value(
    state: super::TxnState,
    p: ProducerIdAndEpoch,
    partitions: &[(&str, i32)],
    tv: TransactionVersion,
) -> TxnLogValue {
    TxnLogValue {
        producer_id: p.producer_id,
        previous_producer_id: super::NO_PRODUCER_ID,
        next_producer_id: super::NO_PRODUCER_ID,
        producer_epoch: p.producer_epoch,
        transaction_timeout_ms: TIMEOUT_MS,
        transaction_status: state,
        transaction_partitions: parts(partitions),
        transaction_last_update_timestamp_ms: 0,
        transaction_start_timestamp_ms: 0,
        client_transaction_version: tv.feature_level(),
    }
}

/// The largest epoch a client may hold.
const LAST_EPOCH: i16 = i16::MAX - 1;
