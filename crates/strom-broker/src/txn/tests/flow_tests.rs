//! Whole transactions, the persist-then-answer contract, partition
//! verification, the admin views, expiration and configuration.

use std::collections::BTreeSet;

use strom_protocol::ErrorCode;

use super::{expect, parts, pe, test_config, Script, ABORT, COMMIT, EXPIRATION_MS, TV1, TV2};
use crate::txn::{ListFilter, TopicPartition, TxnConfig, TxnConfigError, TxnState};

#[test]
fn tv1_commit_flow_persists_every_step_then_writes_markers_then_completes() {
    let mut s = Script::new();
    expect(s.init("t"), &["OK 1000/0", "PERSIST t Empty 1000/0"]);
    expect(s.persisted(), &[]);
    let p = pe(1000, 0);
    s.at(10);
    expect(
        s.add("t", p, &[("a", 0), ("a", 1)]),
        &["OK", "PERSIST t Ongoing 1000/0 a-0,a-1"],
    );
    expect(s.persisted(), &[]);
    // Already in the transaction: answered without a write.
    expect(s.add("t", p, &[("a", 1)]), &["OK"]);
    // AddOffsetsToTxn adds the group's __consumer_offsets partition (the
    // test's partitioner maps "grp" to 3).
    expect(
        s.offsets("t", p, "grp"),
        &[
            "OK",
            "PERSIST t Ongoing 1000/0 __consumer_offsets-3,a-0,a-1",
        ],
    );
    expect(s.persisted(), &[]);
    s.at(20);
    expect(
        s.end("t", p, COMMIT, TV1),
        &[
            "OK",
            "PERSIST t PrepareCommit 1000/0 __consumer_offsets-3,a-0,a-1",
        ],
    );
    expect(
        s.persisted(),
        &["MARKERS t Commit 1000/0 __consumer_offsets-3,a-0,a-1"],
    );
    s.at(30);
    expect(s.markers_done(), &["PERSIST t CompleteCommit 1000/0"]);
    expect(s.persisted(), &["DONE t Commit 1000/0"]);
    let meta = s.c.get("t").unwrap();
    assert_eq!(meta.state, TxnState::CompleteCommit);
    assert!(meta.partitions.is_empty());
    assert_eq!(meta.txn_start_timestamp_ms, 10);
    assert_eq!(meta.txn_last_update_timestamp_ms, 30);
    // TV1: the next transaction uses the same epoch and starts afresh.
    s.at(40);
    expect(
        s.add("t", p, &[("b", 0)]),
        &["OK", "PERSIST t Ongoing 1000/0 b-0"],
    );
    s.settle();
    assert_eq!(s.c.get("t").unwrap().txn_start_timestamp_ms, 40);
}

#[test]
fn tv1_abort_flow_writes_abort_markers() {
    let mut s = Script::new();
    let p = s.begin("t");
    s.add("t", p, &[("a", 0)]);
    s.settle();
    expect(
        s.end("t", p, ABORT, TV1),
        &["OK", "PERSIST t PrepareAbort 1000/0 a-0"],
    );
    expect(s.persisted(), &["MARKERS t Abort 1000/0 a-0"]);
    expect(s.markers_done(), &["PERSIST t CompleteAbort 1000/0"]);
    expect(s.persisted(), &["DONE t Abort 1000/0"]);
}

#[test]
fn tv2_end_txn_bumps_the_epoch_returns_it_and_markers_carry_it() {
    let mut s = Script::new();
    let p = s.begin("t");
    s.add("t", p, &[("a", 0)]);
    s.settle();
    expect(
        s.end("t", p, COMMIT, TV2),
        &["OK 1000/1", "PERSIST t PrepareCommit 1000/1 a-0 tv2"],
    );
    expect(s.persisted(), &["MARKERS t Commit 1000/1 a-0 tv2"]);
    expect(s.markers_done(), &["PERSIST t CompleteCommit 1000/1 tv2"]);
    expect(s.persisted(), &["DONE t Commit 1000/1"]);
    // The next transaction runs at the new epoch; the old one is fenced.
    let p1 = pe(1000, 1);
    expect(s.add("t", p, &[("b", 0)]), &["ERR PRODUCER_FENCED"]);
    expect(
        s.add("t", p1, &[("b", 0)]),
        &["OK", "PERSIST t Ongoing 1000/1 b-0 tv2"],
    );
    s.settle();
    expect(
        s.end("t", p1, ABORT, TV2),
        &["OK 1000/2", "PERSIST t PrepareAbort 1000/2 b-0 tv2"],
    );
    expect(
        s.settle(),
        &[
            "MARKERS t Abort 1000/2 b-0 tv2",
            "PERSIST t CompleteAbort 1000/2 tv2",
            "DONE t Abort 1000/2",
        ],
    );
}

#[test]
fn a_change_takes_effect_only_once_its_record_is_durable() {
    let mut s = Script::new();
    let p = s.begin("t");
    expect(
        s.add("t", p, &[("a", 0)]),
        &["OK", "PERSIST t Ongoing 1000/0 a-0"],
    );
    // Not durable yet: the state is unchanged and everything else waits.
    assert_eq!(s.c.get("t").unwrap().state, TxnState::Empty);
    assert!(s.c.has_pending("t"));
    expect(s.add("t", p, &[("b", 0)]), &["ERR CONCURRENT_TRANSACTIONS"]);
    expect(s.end("t", p, COMMIT, TV1), &["ERR CONCURRENT_TRANSACTIONS"]);
    expect(s.init("t"), &["ERR CONCURRENT_TRANSACTIONS"]);
    expect(
        s.verify("t", p, &[("a", 0)]),
        &["OK a-0:TRANSACTION_ABORTABLE"],
    );
    expect(s.persisted(), &[]);
    assert_eq!(s.c.get("t").unwrap().state, TxnState::Ongoing);
    expect(s.verify("t", p, &[("a", 0)]), &["OK a-0:NONE"]);

    // A failed write drops the change (no markers for an undurable
    // decision); the client's retry starts over.
    expect(
        s.end("t", p, COMMIT, TV1),
        &["OK", "PERSIST t PrepareCommit 1000/0 a-0"],
    );
    expect(s.persist_failed(), &[]);
    assert_eq!(s.c.get("t").unwrap().state, TxnState::Ongoing);
    assert!(!s.c.has_pending("t"));
    expect(
        s.end("t", p, COMMIT, TV1),
        &["OK", "PERSIST t PrepareCommit 1000/0 a-0"],
    );
    // A completion with another token (stale or duplicate) is ignored.
    let (id, token, _) = s.persists.front().cloned().unwrap();
    let stale = crate::txn::PersistToken {
        seq: token.seq + 100,
        ..token
    };
    assert!(s.c.persist_completed(&id, stale, Ok(()), 0).is_empty());
    assert!(s.c.has_pending("t"));
    expect(s.persisted(), &["MARKERS t Commit 1000/0 a-0"]);
    assert!(s.c.persist_completed(&id, token, Ok(()), 0).is_empty());
    assert_eq!(s.c.get("t").unwrap().state, TxnState::PrepareCommit);
}

#[test]
fn markers_written_is_checked_against_the_transaction() {
    let mut s = Script::new();
    let p = s.begin("t");
    s.add("t", p, &[("a", 0)]);
    s.settle();
    s.end("t", p, COMMIT, TV1);
    s.persisted();
    let now = 0;
    let wrong_result = s.c.markers_written("t", p, ABORT, now);
    assert_eq!(wrong_result.reply, Err(ErrorCode::InvalidTxnState));
    let wrong_epoch = s.c.markers_written("t", pe(1000, 3), COMMIT, now);
    assert_eq!(wrong_epoch.reply, Err(ErrorCode::InvalidProducerIdMapping));
    let unknown = s.c.markers_written("u", p, COMMIT, now);
    assert_eq!(unknown.reply, Err(ErrorCode::InvalidProducerIdMapping));
    assert!(wrong_result.outputs.is_empty() && wrong_epoch.outputs.is_empty());
    expect(
        s.settle(),
        &["PERSIST t CompleteCommit 1000/0", "DONE t Commit 1000/0"],
    );
    // A duplicate report after completion changes nothing.
    let again = s.c.markers_written("t", p, COMMIT, now);
    assert_eq!(again.reply, Err(ErrorCode::InvalidTxnState));
}

#[test]
fn a_failed_completion_write_is_retried_by_the_timer() {
    let mut s = Script::new();
    let p = s.begin("t");
    s.add("t", p, &[("a", 0)]);
    s.settle();
    s.end("t", p, COMMIT, TV1);
    expect(s.persisted(), &["MARKERS t Commit 1000/0 a-0"]);
    // Markers still being written: nothing to retry.
    expect(s.retry_completions(), &[]);
    expect(s.markers_done(), &["PERSIST t CompleteCommit 1000/0"]);
    expect(s.persist_failed(), &[]);
    assert_eq!(s.c.get("t").unwrap().state, TxnState::PrepareCommit);
    expect(s.init("t"), &["ERR CONCURRENT_TRANSACTIONS"]);
    expect(s.retry_completions(), &["PERSIST t CompleteCommit 1000/0"]);
    expect(s.retry_completions(), &[]);
    expect(s.persisted(), &["DONE t Commit 1000/0"]);
    expect(s.retry_completions(), &[]);
}

#[test]
fn verify_only_add_partitions_reports_membership_without_changing_anything() {
    let mut s = Script::new();
    let p = s.begin("t");
    expect(
        s.verify("t", p, &[("a", 0)]),
        &["OK a-0:TRANSACTION_ABORTABLE"],
    );
    s.add("t", p, &[("a", 0)]);
    s.settle();
    expect(
        s.verify("t", p, &[("a", 0), ("b", 0)]),
        &["OK a-0:NONE,b-0:TRANSACTION_ABORTABLE"],
    );
    assert_eq!(s.c.get("t").unwrap().partitions, parts(&[("a", 0)]));
    expect(
        s.verify("t", pe(1000, 1), &[("a", 0)]),
        &["ERR PRODUCER_FENCED"],
    );
    expect(
        s.verify("t", pe(7, 0), &[("a", 0)]),
        &["ERR INVALID_PRODUCER_ID_MAPPING"],
    );
    expect(
        s.verify("u", p, &[("a", 0)]),
        &["ERR INVALID_PRODUCER_ID_MAPPING"],
    );
    s.end("t", p, COMMIT, TV1);
    s.persisted();
    expect(
        s.verify("t", p, &[("a", 0)]),
        &["ERR CONCURRENT_TRANSACTIONS"],
    );
    s.settle();
    // Completed: the partition no longer belongs to an ongoing transaction.
    expect(
        s.verify("t", p, &[("a", 0)]),
        &["OK a-0:TRANSACTION_ABORTABLE"],
    );
}

#[test]
fn add_partitions_is_refused_as_kafka_refuses_it() {
    let mut s = Script::new();
    expect(s.add("", pe(1, 0), &[("a", 0)]), &["ERR INVALID_REQUEST"]);
    expect(
        s.add("t", pe(1, 0), &[("a", 0)]),
        &["ERR INVALID_PRODUCER_ID_MAPPING"],
    );
    let p = s.begin("t");
    expect(
        s.add("t", pe(999, 0), &[("a", 0)]),
        &["ERR INVALID_PRODUCER_ID_MAPPING"],
    );
    expect(
        s.add("t", pe(1000, 5), &[("a", 0)]),
        &["ERR PRODUCER_FENCED"],
    );
    s.add("t", p, &[("a", 0)]);
    s.settle();
    s.end("t", p, ABORT, TV1);
    // PrepareAbort pending, then durable: both CONCURRENT_TRANSACTIONS.
    expect(s.add("t", p, &[("a", 0)]), &["ERR CONCURRENT_TRANSACTIONS"]);
    s.persisted();
    expect(s.add("t", p, &[("a", 0)]), &["ERR CONCURRENT_TRANSACTIONS"]);
    s.settle();
    // CompleteAbort: a new transaction starts.
    expect(
        s.add("t", p, &[("a", 1)]),
        &["OK", "PERSIST t Ongoing 1000/0 a-1"],
    );
}

#[test]
fn a_transaction_is_limited_in_partitions() {
    let mut s = Script::with_config(TxnConfig {
        max_partitions_per_transaction: 2,
        ..test_config()
    });
    let p = s.begin("t");
    s.add("t", p, &[("a", 0), ("a", 1)]);
    s.settle();
    expect(s.add("t", p, &[("a", 2)]), &["ERR UNKNOWN_SERVER_ERROR"]);
    assert_eq!(s.c.get("t").unwrap().partitions.len(), 2);
}

#[test]
fn init_producer_id_validates_its_arguments() {
    let mut s = Script::new();
    expect(s.init(""), &["ERR INVALID_REQUEST"]);
    let long = "x".repeat(crate::txn::MAX_TRANSACTIONAL_ID_BYTES + 1);
    expect(s.init(&long), &["ERR INVALID_REQUEST"]);
    expect(
        s.init_with("t", 900_001, None),
        &["ERR INVALID_TRANSACTION_TIMEOUT"],
    );
    expect(
        s.init_with("t", 0, None),
        &["ERR INVALID_TRANSACTION_TIMEOUT"],
    );
    expect(
        s.init_with("t", 900_000, None),
        &["OK 1000/0", "PERSIST t Empty 1000/0"],
    );
    assert_eq!(s.allocated, 1);
}

#[test]
fn an_allocator_failure_is_answered_and_changes_nothing() {
    let mut s = Script::new();
    s.allocator_error = Some(ErrorCode::CoordinatorLoadInProgress);
    expect(s.init("t"), &["ERR COORDINATOR_LOAD_IN_PROGRESS"]);
    assert!(s.c.get("t").is_none());
    s.allocator_error = None;
    expect(s.init("t"), &["OK 1000/0", "PERSIST t Empty 1000/0"]);
}

#[test]
fn a_failed_first_write_leaves_an_uninitialised_id_that_the_retry_reuses() {
    let mut s = Script::new();
    s.init("t");
    s.persist_failed();
    // The producer id was never handed out: nothing can use it.
    expect(
        s.add("t", pe(1000, -1), &[("a", 0)]),
        &["ERR INVALID_PRODUCER_ID_MAPPING"],
    );
    expect(s.init("t"), &["OK 1000/0", "PERSIST t Empty 1000/0"]);
    assert_eq!(s.allocated, 1);
}

#[test]
fn describe_and_list_show_durable_state_with_kafkas_filters() {
    let mut s = Script::new();
    let a = s.begin("a");
    s.at(100);
    s.add("a", a, &[("x", 0), ("x", 1), ("y", 0)]);
    s.settle();
    s.begin("b");
    let c = s.begin("c");
    s.at(5_000);
    s.add("c", c, &[("x", 2)]);
    s.settle();
    s.end("c", c, COMMIT, TV1);
    s.settle();

    let meta = s.c.describe("a").unwrap();
    assert_eq!(meta.state.name(), "Ongoing");
    assert_eq!((meta.producer_id, meta.producer_epoch), (1000, 0));
    assert_eq!(meta.txn_timeout_ms, super::TIMEOUT_MS);
    assert_eq!(meta.txn_start_timestamp_ms, 100);
    assert_eq!(meta.partitions, parts(&[("x", 0), ("x", 1), ("y", 0)]));
    assert_eq!(s.c.describe("z"), Err(ErrorCode::TransactionalIdNotFound));
    assert_eq!(s.c.describe(""), Err(ErrorCode::InvalidRequest));

    let list = |s: &Script, states: &[TxnState], pids: &[i64], d: Option<i64>| {
        let filter = ListFilter {
            states: states.iter().copied().collect(),
            producer_ids: pids.iter().copied().collect(),
            min_duration_ms: d,
        };
        s.c.list(&filter, 10_000)
            .into_iter()
            .map(|t| format!("{}:{}:{}", t.transactional_id, t.producer_id, t.state))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(&s, &[], &[], None),
        ["a:1000:Ongoing", "b:1001:Empty", "c:1002:CompleteCommit"]
    );
    assert_eq!(
        list(&s, &[TxnState::Ongoing], &[], None),
        ["a:1000:Ongoing"]
    );
    assert_eq!(
        list(
            &s,
            &[TxnState::Ongoing, TxnState::CompleteCommit],
            &[],
            None
        ),
        ["a:1000:Ongoing", "c:1002:CompleteCommit"]
    );
    assert_eq!(list(&s, &[], &[1001], None), ["b:1001:Empty"]);
    assert!(list(&s, &[TxnState::Empty], &[1000], None).is_empty());
    // Started more than 6 s before t=10000: only a (t=100), not c (t=5000)
    // and not b, which never started one.
    assert_eq!(list(&s, &[], &[], Some(6_000)), ["a:1000:Ongoing"]);
    assert_eq!(list(&s, &[], &[], Some(-1)).len(), 3);
    assert_eq!(
        TxnState::from_name("PrepareCommit"),
        Some(TxnState::PrepareCommit)
    );
    assert_eq!(TxnState::from_name("Bogus"), None);
}

#[test]
fn idle_ids_expire_with_a_tombstone_and_open_transactions_never_do() {
    let mut s = Script::new();
    let a = s.begin("a");
    s.add("a", a, &[("x", 0)]);
    s.settle();
    s.begin("b");
    s.at(EXPIRATION_MS - 1);
    expect(s.expire_ids(), &[]);
    s.at(EXPIRATION_MS);
    // "a" is Ongoing (its timeout is the other timer's business).
    expect(s.expire_ids(), &["PERSIST b tombstone"]);
    // While the tombstone is written the id is hidden and busy.
    assert_eq!(s.c.describe("b"), Err(ErrorCode::TransactionalIdNotFound));
    assert_eq!(s.c.list(&ListFilter::default(), 0).len(), 1);
    expect(s.init("b"), &["ERR CONCURRENT_TRANSACTIONS"]);
    expect(s.persisted(), &[]);
    assert!(s.c.get("b").is_none());
    // A new InitProducerId starts over with a new producer id.
    expect(s.init("b"), &["OK 1002/0", "PERSIST b Empty 1002/0"]);
    // A failed tombstone keeps the id.
    s.settle();
    s.at(3 * EXPIRATION_MS);
    expect(s.expire_ids(), &["PERSIST b tombstone"]);
    expect(s.persist_failed(), &[]);
    assert!(s.c.get("b").is_some());
}

#[test]
fn config_defaults_are_kafkas_and_validation_refuses_nonsense() {
    let c = TxnConfig::default();
    assert_eq!(c.max_timeout_ms, 900_000);
    assert_eq!(c.transactional_id_expiration_ms, 604_800_000);
    assert_eq!(c.abort_timed_out_transaction_cleanup_interval_ms, 10_000);
    assert_eq!(c.remove_expired_transaction_cleanup_interval_ms, 3_600_000);
    assert_eq!(c.validate(), Ok(()));
    let bad = TxnConfig {
        max_timeout_ms: 0,
        ..TxnConfig::default()
    };
    assert_eq!(
        bad.validate(),
        Err(TxnConfigError {
            property: "transaction.max.timeout.ms",
            value: 0,
            min: 1
        })
    );
    let bad = TxnConfig {
        transactional_id_expiration_ms: -5,
        ..TxnConfig::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("transactional.id.expiration.ms"));
}

#[test]
fn state_codes_and_names_are_kafkas() {
    let names: Vec<(i8, &str)> = TxnState::ALL.iter().map(|s| (s.id(), s.name())).collect();
    assert_eq!(
        names,
        [
            (0, "Empty"),
            (1, "Ongoing"),
            (2, "PrepareCommit"),
            (3, "PrepareAbort"),
            (4, "CompleteCommit"),
            (5, "CompleteAbort"),
            (6, "Dead"),
            (7, "PrepareEpochFence"),
        ]
    );
    for s in TxnState::ALL {
        assert_eq!(TxnState::from_id(s.id()), Some(s));
    }
    assert_eq!(TxnState::from_id(8), None);
    let groups: BTreeSet<TopicPartition> = parts(&[("b", 1), ("a", 2), ("a", 1)]);
    let order: Vec<String> = groups.iter().map(ToString::to_string).collect();
    assert_eq!(order, ["a-1", "a-2", "b-1"]);
}
