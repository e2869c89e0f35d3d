//! EndTxn under TV1 and TV2: retries, refusals, the Jepsen hazard, and epoch
//! exhaustion.

use super::{expect, log_value, pe, Script, ABORT, COMMIT, LAST_EPOCH, TV1, TV2};
use crate::txn::{ProducerIdAndEpoch, TxnResult, TxnState};

/// A script whose transaction "t" went through `results` (TV2 EndTxns, each
/// after adding partition x-0) and is settled; returns it with the producer
/// the client holds.
fn tv2_after(results: &[TxnResult]) -> (Script, ProducerIdAndEpoch) {
    let mut s = Script::new();
    let mut p = s.begin("t");
    for result in results {
        s.add("t", p, &[("x", 0)]);
        s.settle();
        s.end("t", p, *result, TV2);
        s.settle();
        p = s.c.get("t").unwrap().producer();
    }
    (s, p)
}

#[test]
fn tv2_answers_each_end_txn_after_a_completed_transaction_as_kafka_does() {
    // (state before, request, expected) with retry = the epoch before the
    // last bump, current = the epoch the client holds now.
    type Case = (
        &'static [TxnResult],
        TxnResult,
        bool,
        &'static [&'static str],
    );
    let cases: [Case; 12] = [
        (&[], ABORT, true, &["ERR PRODUCER_FENCED"]),
        (&[], COMMIT, true, &["ERR PRODUCER_FENCED"]),
        (&[], COMMIT, false, &["ERR INVALID_TXN_STATE"]),
        (
            &[],
            ABORT,
            false,
            &["OK 1000/2", "PERSIST t PrepareAbort 1000/2 tv2"],
        ),
        (&[ABORT], ABORT, true, &["OK 1000/1"]),
        (
            &[ABORT],
            ABORT,
            false,
            &["OK 1000/2", "PERSIST t PrepareAbort 1000/2 tv2"],
        ),
        (&[ABORT], COMMIT, true, &["ERR INVALID_TXN_STATE"]),
        (&[ABORT], COMMIT, false, &["ERR INVALID_TXN_STATE"]),
        (&[COMMIT], ABORT, true, &["ERR INVALID_TXN_STATE"]),
        (
            &[COMMIT],
            ABORT,
            false,
            &["OK 1000/2", "PERSIST t PrepareAbort 1000/2 tv2"],
        ),
        (&[COMMIT], COMMIT, true, &["OK 1000/1"]),
        (&[COMMIT], COMMIT, false, &["ERR INVALID_TXN_STATE"]),
    ];
    for (history, result, retry, expected) in cases {
        let (mut s, current) = if history.is_empty() {
            // Empty at epoch 1, so that epoch 0 looks like a retry.
            let mut s = Script::new();
            s.begin("t");
            s.init("t");
            s.settle();
            (s, pe(1000, 1))
        } else {
            tv2_after(history)
        };
        let p = if retry {
            pe(current.producer_id, current.producer_epoch - 1)
        } else {
            current
        };
        let lines = s.end("t", p, result, TV2);
        assert_eq!(
            lines, expected,
            "after {history:?}: {result:?} retry={retry}"
        );
    }
}

#[test]
fn tv2_aborting_with_no_transaction_open_completes_without_markers() {
    let mut s = Script::new();
    let p = s.begin("t");
    s.at(7);
    expect(
        s.end("t", p, ABORT, TV2),
        &["OK 1000/1", "PERSIST t PrepareAbort 1000/1 tv2"],
    );
    expect(s.persisted(), &["PERSIST t CompleteAbort 1000/1 tv2"]);
    expect(s.persisted(), &["DONE t Abort 1000/1"]);
    assert_eq!(s.c.get("t").unwrap().txn_start_timestamp_ms, 7);
}

#[test]
fn tv2_end_txn_while_completing_is_retried_or_refused() {
    let mut s = Script::new();
    let p = s.begin("t");
    s.add("t", p, &[("x", 0)]);
    s.settle();
    s.end("t", p, COMMIT, TV2);
    // Pending: the retry (current durable epoch) waits.
    expect(s.end("t", p, COMMIT, TV2), &["ERR CONCURRENT_TRANSACTIONS"]);
    s.persisted();
    // PrepareCommit at epoch 1: the retry (epoch 0) waits, the other outcome
    // is refused, and the new epoch is no request for this transaction.
    expect(s.end("t", p, COMMIT, TV2), &["ERR CONCURRENT_TRANSACTIONS"]);
    expect(s.end("t", p, ABORT, TV2), &["ERR INVALID_TXN_STATE"]);
    expect(
        s.end("t", pe(1000, 1), COMMIT, TV2),
        &["ERR PRODUCER_FENCED"],
    );
    s.settle();
    expect(s.end("t", p, COMMIT, TV2), &["OK 1000/1"]);
}

#[test]
fn tv2_a_late_end_txn_or_add_partitions_from_the_previous_transaction_is_fenced() {
    // The Jepsen hazard: the client commits transaction 1, its EndTxn is
    // also delivered late (held by the network) while transaction 2 runs.
    let mut s = Script::new();
    let p0 = s.begin("t");
    s.add("t", p0, &[("a", 0)]);
    s.settle();
    expect(
        s.end("t", p0, COMMIT, TV2),
        &["OK 1000/1", "PERSIST t PrepareCommit 1000/1 a-0 tv2"],
    );
    s.settle();
    let p1 = pe(1000, 1);
    s.add("t", p1, &[("b", 0)]);
    s.settle();
    for late in [COMMIT, ABORT] {
        expect(s.end("t", p0, late, TV2), &["ERR PRODUCER_FENCED"]);
    }
    expect(s.add("t", p0, &[("c", 0)]), &["ERR PRODUCER_FENCED"]);
    // A late produce of transaction 1 fails its partition verification.
    expect(s.verify("t", p0, &[("b", 0)]), &["ERR PRODUCER_FENCED"]);
    let meta = s.c.get("t").unwrap();
    assert_eq!(meta.state, TxnState::Ongoing);
    assert_eq!(meta.partitions, super::parts(&[("b", 0)]));
    // Transaction 2 is the client's to end.
    expect(
        s.end("t", p1, ABORT, TV2),
        &["OK 1000/2", "PERSIST t PrepareAbort 1000/2 b-0 tv2"],
    );
}

#[test]
fn tv1_cannot_tell_a_late_end_txn_from_one_for_the_current_transaction() {
    // The hazard TV2 removes: under TV1 the epoch does not move, so a late
    // EndTxn(commit) of transaction 1 commits transaction 2 early.
    let mut s = Script::new();
    let p = s.begin("t");
    s.add("t", p, &[("a", 0)]);
    s.settle();
    s.end("t", p, COMMIT, TV1);
    s.settle();
    s.add("t", p, &[("b", 0)]);
    s.settle();
    expect(
        s.end("t", p, COMMIT, TV1),
        &["OK", "PERSIST t PrepareCommit 1000/0 b-0"],
    );
}

#[test]
fn tv1_retries_of_a_decided_transaction_get_kafkas_answers() {
    let mut s = Script::new();
    expect(s.end("", pe(1, 0), COMMIT, TV1), &["ERR INVALID_REQUEST"]);
    expect(
        s.end("t", pe(1, 0), COMMIT, TV1),
        &["ERR INVALID_PRODUCER_ID_MAPPING"],
    );
    let p = s.begin("t");
    expect(s.end("t", p, COMMIT, TV1), &["ERR INVALID_TXN_STATE"]);
    expect(s.end("t", p, ABORT, TV1), &["ERR INVALID_TXN_STATE"]);
    expect(
        s.end("t", pe(7, 0), COMMIT, TV1),
        &["ERR INVALID_PRODUCER_ID_MAPPING"],
    );
    expect(
        s.end("t", pe(1000, 1), COMMIT, TV1),
        &["ERR PRODUCER_FENCED"],
    );
    s.add("t", p, &[("a", 0)]);
    s.settle();
    s.end("t", p, COMMIT, TV1);
    s.persisted();
    expect(s.end("t", p, COMMIT, TV1), &["ERR CONCURRENT_TRANSACTIONS"]);
    expect(s.end("t", p, ABORT, TV1), &["ERR INVALID_TXN_STATE"]);
    s.settle();
    expect(s.end("t", p, COMMIT, TV1), &["OK"]);
    expect(s.end("t", p, ABORT, TV1), &["ERR INVALID_TXN_STATE"]);
    s.add("t", p, &[("a", 0)]);
    s.settle();
    s.end("t", p, ABORT, TV1);
    s.settle();
    expect(s.end("t", p, ABORT, TV1), &["OK"]);
    expect(s.end("t", p, COMMIT, TV1), &["ERR INVALID_TXN_STATE"]);
}

#[test]
fn tv2_at_the_last_epoch_continues_with_a_new_producer_id() {
    let mut s = Script::new();
    let old = pe(500, LAST_EPOCH);
    s.c.load(
        "t",
        Some(log_value(TxnState::Ongoing, old, &[("x", 0)], TV2)),
    );
    expect(
        s.end("t", old, COMMIT, TV2),
        &[
            "OK 1000/0",
            "PERSIST t PrepareCommit 500/32767 next=1000 x-0 tv2",
        ],
    );
    // The markers still carry the transaction's producer id, at i16::MAX.
    expect(s.persisted(), &["MARKERS t Commit 500/32767 x-0 tv2"]);
    expect(
        s.end("t", old, COMMIT, TV2),
        &["ERR CONCURRENT_TRANSACTIONS"],
    );
    expect(s.markers_done(), &["PERSIST t CompleteCommit 1000/0 tv2"]);
    expect(s.persisted(), &["DONE t Commit 500/32767"]);
    let meta = s.c.get("t").unwrap();
    assert_eq!((meta.producer_id, meta.producer_epoch), (1000, 0));
    assert_eq!(meta.last_producer_id, 500);
    // A retry from the exhausted producer is recognised and told where to go.
    expect(s.end("t", old, COMMIT, TV2), &["OK 1000/0"]);
    expect(s.end("t", old, ABORT, TV2), &["ERR INVALID_TXN_STATE"]);
    // Once the new producer id is in use, the old one is no longer a retry.
    expect(
        s.add("t", pe(1000, 0), &[("y", 0)]),
        &["OK", "PERSIST t Ongoing 1000/0 y-0 tv2"],
    );
    s.settle();
    expect(
        s.end("t", old, COMMIT, TV2),
        &["ERR INVALID_PRODUCER_ID_MAPPING"],
    );
}

#[test]
fn a_tv1_producer_after_a_rotation_is_not_mistaken_for_the_old_ids_retry() {
    // The old producer rotated away at its last epoch; a new incarnation
    // speaking TV1 completes a transaction at epoch 0 of the new id, the
    // same shape a TV2 rotation leaves behind.
    let mut s = Script::new();
    let old = pe(500, LAST_EPOCH);
    s.c.load(
        "t",
        Some(log_value(
            TxnState::CompleteAbort,
            pe(500, i16::MAX),
            &[],
            TV2,
        )),
    );
    s.init("t");
    s.settle();
    let p = pe(1000, 0);
    s.add("t", p, &[("x", 0)]);
    s.settle();
    s.end("t", p, COMMIT, TV1);
    s.settle();
    assert_eq!(s.c.get("t").unwrap().state, TxnState::CompleteCommit);
    assert_eq!(s.c.get("t").unwrap().last_producer_id, 500);
    expect(
        s.end("t", old, COMMIT, TV2),
        &["ERR INVALID_PRODUCER_ID_MAPPING"],
    );
}

#[test]
fn a_tv2_zombie_is_not_taken_for_a_retry_after_a_tv1_producer_ends_its_transaction() {
    // The zombie holds epoch 0; the TV1 owner got epoch 1 from InitProducerId
    // and commits without a bump, leaving CompleteCommit at 1 — the shape a
    // TV2 EndTxn from epoch 0 leaves. Kafka would answer the zombie NONE
    // with epoch 1, the owner's live epoch.
    let mut s = Script::new();
    let zombie = s.begin("t");
    let owner = s.begin("t");
    assert_eq!(owner, pe(1000, 1));
    s.add("t", owner, &[("x", 0)]);
    s.settle();
    s.end("t", owner, COMMIT, TV1);
    expect(s.end("t", zombie, COMMIT, TV2), &["ERR PRODUCER_FENCED"]);
    s.settle();
    expect(s.end("t", zombie, COMMIT, TV2), &["ERR PRODUCER_FENCED"]);
    expect(s.end("t", zombie, ABORT, TV2), &["ERR PRODUCER_FENCED"]);
    // The owner itself is unaffected.
    expect(s.end("t", owner, COMMIT, TV1), &["OK"]);
}
