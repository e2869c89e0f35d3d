//! Zombie fencing: a new incarnation, an abandoned transaction's timeout,
//! KIP-360 recovery, and running out of epochs.

use super::{expect, log_value, pe, Script, ABORT, COMMIT, LAST_EPOCH, TIMEOUT_MS, TV1, TV2};
use crate::txn::TxnState;

#[test]
fn a_second_init_fences_the_first_producer() {
    let mut s = Script::new();
    let a = s.begin("t");
    expect(s.init("t"), &["OK 1000/1", "PERSIST t Empty 1000/1"]);
    expect(s.persisted(), &[]);
    expect(s.add("t", a, &[("x", 0)]), &["ERR PRODUCER_FENCED"]);
    expect(s.offsets("t", a, "g"), &["ERR PRODUCER_FENCED"]);
    expect(s.verify("t", a, &[("x", 0)]), &["ERR PRODUCER_FENCED"]);
    expect(s.end("t", a, COMMIT, TV1), &["ERR PRODUCER_FENCED"]);
    expect(s.end("t", a, ABORT, TV2), &["ERR PRODUCER_FENCED"]);
    // Nor can it take the id back through KIP-360.
    expect(
        s.init_with("t", TIMEOUT_MS, Some(a)),
        &["ERR PRODUCER_FENCED"],
    );
    // The new incarnation works.
    expect(
        s.add("t", pe(1000, 1), &[("x", 0)]),
        &["OK", "PERSIST t Ongoing 1000/1 x-0"],
    );
}

#[test]
fn init_while_ongoing_aborts_the_old_transaction_before_answering() {
    let mut s = Script::new();
    let a = s.begin("t");
    s.add("t", a, &[("x", 0), ("y", 1)]);
    s.settle();
    // The abort is decided with an epoch that fences the old producer; the
    // new one is told to retry.
    expect(
        s.init("t"),
        &[
            "ERR CONCURRENT_TRANSACTIONS",
            "PERSIST t PrepareAbort 1000/2 x-0,y-1",
        ],
    );
    expect(s.persisted(), &["MARKERS t Abort 1000/2 x-0,y-1"]);
    expect(s.init("t"), &["ERR CONCURRENT_TRANSACTIONS"]);
    // The old producer can no longer commit what it started.
    expect(s.end("t", a, COMMIT, TV1), &["ERR PRODUCER_FENCED"]);
    expect(s.end("t", a, COMMIT, TV2), &["ERR PRODUCER_FENCED"]);
    expect(s.add("t", a, &[("z", 0)]), &["ERR PRODUCER_FENCED"]);
    expect(s.markers_done(), &["PERSIST t CompleteAbort 1000/2"]);
    expect(s.persisted(), &["DONE t Abort 1000/2"]);
    expect(s.init("t"), &["OK 1000/3", "PERSIST t Empty 1000/3"]);
}

#[test]
fn a_failed_fence_write_changes_nothing_and_the_retry_fences_again() {
    let mut s = Script::new();
    let a = s.begin("t");
    s.add("t", a, &[("x", 0)]);
    s.settle();
    s.init("t");
    expect(s.persist_failed(), &[]);
    assert_eq!(s.c.get("t").unwrap().state, TxnState::Ongoing);
    assert_eq!(s.c.get("t").unwrap().producer_epoch, 0);
    expect(
        s.init("t"),
        &[
            "ERR CONCURRENT_TRANSACTIONS",
            "PERSIST t PrepareAbort 1000/2 x-0",
        ],
    );
}

#[test]
fn a_stale_kip360_init_cannot_abort_the_current_producers_transaction() {
    let mut s = Script::new();
    let a = s.begin("t");
    let b = pe(1000, 1);
    s.init("t");
    s.settle();
    s.add("t", b, &[("x", 0)]);
    s.settle();
    // Kafka would abort b's transaction here; Strom fences the zombie.
    expect(
        s.init_with("t", TIMEOUT_MS, Some(a)),
        &["ERR PRODUCER_FENCED"],
    );
    assert_eq!(s.c.get("t").unwrap().state, TxnState::Ongoing);
    // The current holder recovering with KIP-360 aborts its own transaction.
    expect(
        s.init_with("t", TIMEOUT_MS, Some(b)),
        &[
            "ERR CONCURRENT_TRANSACTIONS",
            "PERSIST t PrepareAbort 1000/3 x-0",
        ],
    );
}

#[test]
fn kip360_lets_the_holder_bump_its_epoch_and_answers_a_retry_without_a_second_bump() {
    let mut s = Script::new();
    let p = s.begin("t");
    expect(
        s.init_with("t", TIMEOUT_MS, Some(p)),
        &["OK 1000/1", "PERSIST t Empty 1000/1"],
    );
    s.persisted();
    // The response was lost; the retry carries the old epoch.
    expect(
        s.init_with("t", TIMEOUT_MS, Some(p)),
        &["OK 1000/1", "PERSIST t Empty 1000/1"],
    );
    s.persisted();
    expect(
        s.init_with("t", TIMEOUT_MS, Some(pe(1000, 1))),
        &["OK 1000/2", "PERSIST t Empty 1000/2"],
    );
    s.persisted();
    // A new incarnation forgets the last epoch: the old holder's retries fail.
    expect(s.init("t"), &["OK 1000/3", "PERSIST t Empty 1000/3"]);
    s.persisted();
    for stale in [pe(1000, 1), pe(1000, 2)] {
        expect(
            s.init_with("t", TIMEOUT_MS, Some(stale)),
            &["ERR PRODUCER_FENCED"],
        );
    }
    expect(
        s.init_with("t", TIMEOUT_MS, Some(pe(42, 0))),
        &["ERR PRODUCER_FENCED"],
    );
    // A producer recovering from UNKNOWN_PRODUCER_ID on an id the coordinator
    // does not know gets a fresh producer id.
    expect(
        s.init_with("n", TIMEOUT_MS, Some(pe(42, 7))),
        &["OK 1001/0", "PERSIST n Empty 1001/0"],
    );
}

#[test]
fn a_timed_out_transaction_is_aborted_and_its_producer_fenced() {
    let mut s = Script::new();
    let p = s.begin("t");
    s.at(1_000);
    s.add("t", p, &[("x", 0)]);
    s.settle();
    s.at(1_000 + i64::from(TIMEOUT_MS));
    expect(s.expire_timed_out(), &[]);
    s.at(1_001 + i64::from(TIMEOUT_MS));
    expect(s.expire_timed_out(), &["PERSIST t PrepareAbort 1000/2 x-0"]);
    // The timer firing again while the abort is written does nothing.
    expect(s.expire_timed_out(), &[]);
    expect(s.persisted(), &["MARKERS t Abort 1000/2 x-0"]);
    expect(s.add("t", p, &[("y", 0)]), &["ERR PRODUCER_FENCED"]);
    expect(s.end("t", p, COMMIT, TV1), &["ERR PRODUCER_FENCED"]);
    expect(s.end("t", p, ABORT, TV2), &["ERR PRODUCER_FENCED"]);
    expect(
        s.init_with("t", TIMEOUT_MS, Some(p)),
        &["ERR CONCURRENT_TRANSACTIONS"],
    );
    expect(
        s.settle(),
        &["PERSIST t CompleteAbort 1000/2", "DONE t Abort 1000/2"],
    );
    // Fenced for good: neither EndTxn (as a TV2 "retry") nor KIP-360 revives it.
    expect(s.end("t", p, ABORT, TV2), &["ERR PRODUCER_FENCED"]);
    expect(s.end("t", p, ABORT, TV1), &["ERR PRODUCER_FENCED"]);
    expect(
        s.init_with("t", TIMEOUT_MS, Some(p)),
        &["ERR PRODUCER_FENCED"],
    );
    expect(s.init("t"), &["OK 1000/3", "PERSIST t Empty 1000/3"]);
}

#[test]
fn a_timed_out_tv2_transaction_fences_its_producer_too() {
    let mut s = Script::new();
    let p = s.begin("t");
    s.add("t", p, &[("x", 0)]);
    s.settle();
    s.end("t", p, COMMIT, TV2);
    s.settle();
    let p1 = pe(1000, 1);
    s.at(5);
    s.add("t", p1, &[("x", 0)]);
    s.settle();
    s.at(6 + i64::from(TIMEOUT_MS));
    expect(
        s.expire_timed_out(),
        &["PERSIST t PrepareAbort 1000/3 x-0 tv2"],
    );
    expect(
        s.settle(),
        &[
            "MARKERS t Abort 1000/3 x-0 tv2",
            "PERSIST t CompleteAbort 1000/3 tv2",
            "DONE t Abort 1000/3",
        ],
    );
    // Epoch 1 is two below the current: not a retry of a bump, fenced.
    expect(s.end("t", p1, ABORT, TV2), &["ERR PRODUCER_FENCED"]);
}

#[test]
fn exhausted_epochs_move_init_to_a_new_producer_id() {
    let mut s = Script::new();
    s.c.load(
        "t",
        Some(log_value(
            TxnState::CompleteCommit,
            pe(500, LAST_EPOCH - 1),
            &[],
            TV1,
        )),
    );
    // One more bump is allowed, up to the last epoch a client may hold.
    expect(s.init("t"), &["OK 500/32766", "PERSIST t Empty 500/32766"]);
    s.persisted();
    expect(s.init("t"), &["OK 1000/0", "PERSIST t Empty 1000/0"]);
    s.persisted();
    let meta = s.c.get("t").unwrap();
    assert_eq!(meta.last_producer_id, 500);
    // The exhausted producer's KIP-360 init is fenced: the rotation was a
    // new incarnation's.
    expect(
        s.init_with("t", TIMEOUT_MS, Some(pe(500, LAST_EPOCH))),
        &["ERR PRODUCER_FENCED"],
    );
}

#[test]
fn a_kip360_rotation_is_retried_with_the_old_producer_id() {
    let mut s = Script::new();
    s.c.load(
        "t",
        Some(log_value(
            TxnState::CompleteAbort,
            pe(500, LAST_EPOCH),
            &[],
            TV1,
        )),
    );
    let old = pe(500, LAST_EPOCH);
    expect(
        s.init_with("t", TIMEOUT_MS, Some(old)),
        &["OK 1000/0", "PERSIST t Empty 1000/0"],
    );
    s.persisted();
    // The answer was lost: the retry gets the same producer, no new id.
    expect(
        s.init_with("t", TIMEOUT_MS, Some(old)),
        &["OK 1000/0", "PERSIST t Empty 1000/0"],
    );
    assert_eq!(s.allocated, 1);
}

#[test]
fn fencing_at_the_last_epoch_keeps_the_producer_fenced_and_init_rotates() {
    for timeout in [true, false] {
        let mut s = Script::new();
        s.c.load(
            "t",
            Some(log_value(
                TxnState::Ongoing,
                pe(500, LAST_EPOCH),
                &[("x", 0)],
                TV2,
            )),
        );
        let lines = if timeout {
            s.at(i64::from(TIMEOUT_MS) + 1);
            s.expire_timed_out()
        } else {
            s.init("t")[1..].to_vec()
        };
        // Capped at i16::MAX: one bump, no next producer id.
        expect(lines, &["PERSIST t PrepareAbort 500/32767 x-0 tv2"]);
        s.settle();
        // One below the current, yet no retry: only a coordinator fence
        // reaches i16::MAX without a next producer id.
        let zombie = pe(500, LAST_EPOCH);
        expect(s.end("t", zombie, ABORT, TV2), &["ERR PRODUCER_FENCED"]);
        expect(s.add("t", zombie, &[("x", 0)]), &["ERR PRODUCER_FENCED"]);
        // (InitProducerId keeps the version of the client's last EndTxn.)
        expect(s.init("t"), &["OK 1000/0", "PERSIST t Empty 1000/0 tv2"]);
        s.settle();
        expect(
            s.end("t", zombie, ABORT, TV2),
            &["ERR INVALID_PRODUCER_ID_MAPPING"],
        );
    }
}
