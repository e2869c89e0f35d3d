//! Loading `__transaction_state` and resuming decided transactions, including
//! a restart after every step of a transaction.

use super::{expect, log_value, pe, test_config, Script, ABORT, COMMIT, TV1, TV2};
use crate::txn::{TransactionCoordinator, TxnState, NO_PRODUCER_EPOCH};

#[test]
fn load_and_recover_in_every_state() {
    let cases: [(TxnState, Option<TxnState>, &[&str]); 8] = [
        (TxnState::Empty, Some(TxnState::Empty), &[]),
        // An open transaction waits for its client or its timeout.
        (TxnState::Ongoing, Some(TxnState::Ongoing), &[]),
        (
            TxnState::PrepareCommit,
            Some(TxnState::PrepareCommit),
            &["MARKERS t Commit 500/3 x-0,y-2"],
        ),
        (
            TxnState::PrepareAbort,
            Some(TxnState::PrepareAbort),
            &["MARKERS t Abort 500/3 x-0,y-2"],
        ),
        (
            TxnState::CompleteCommit,
            Some(TxnState::CompleteCommit),
            &[],
        ),
        (TxnState::CompleteAbort, Some(TxnState::CompleteAbort), &[]),
        // Never written by Kafka or Strom; read as what it stands for.
        (TxnState::Dead, None, &[]),
        (
            TxnState::PrepareEpochFence,
            Some(TxnState::PrepareAbort),
            &["MARKERS t Abort 500/3 x-0,y-2"],
        ),
    ];
    for (stored, loaded, recovered) in cases {
        let mut s = Script::new();
        s.c = TransactionCoordinator::new(test_config(), 7);
        let partitions: &[(&str, i32)] = &[("x", 0), ("y", 2)];
        s.c.load("t", Some(log_value(stored, pe(500, 3), partitions, TV1)));
        assert_eq!(s.c.get("t").map(|m| m.state), loaded, "{stored}");
        // Markers carry the new coordinator epoch (checked by the renderer).
        assert_eq!(s.restart_in_place(), recovered, "{stored}");
        if let Some(meta) = s.c.get("t") {
            assert_eq!(meta.last_producer_epoch, NO_PRODUCER_EPOCH);
            let expected_partitions = if stored == TxnState::Empty { 0 } else { 2 };
            assert_eq!(meta.partitions.len(), expected_partitions, "{stored}");
        }
        if loaded.is_some_and(TxnState::is_prepare) {
            let done = s.settle();
            assert_eq!(done.len(), 2, "{done:?}");
            assert!(done[1].starts_with("DONE t"), "{done:?}");
            assert!(s.c.get("t").unwrap().state.is_complete());
        }
    }
}

#[test]
fn a_decided_transaction_without_partitions_completes_on_recovery() {
    let mut s = Script::new();
    s.c.load(
        "t",
        Some(log_value(TxnState::PrepareAbort, pe(500, 3), &[], TV2)),
    );
    expect(s.restart_in_place(), &["PERSIST t CompleteAbort 500/3 tv2"]);
    expect(s.persisted(), &["DONE t Abort 500/3"]);
}

#[test]
fn later_records_and_tombstones_replace_earlier_ones() {
    let mut s = Script::new();
    s.c.load(
        "t",
        Some(log_value(TxnState::Ongoing, pe(500, 3), &[("x", 0)], TV1)),
    );
    s.c.load(
        "t",
        Some(log_value(TxnState::CompleteCommit, pe(500, 3), &[], TV1)),
    );
    assert_eq!(s.c.get("t").unwrap().state, TxnState::CompleteCommit);
    s.c.load("t", None);
    assert!(s.c.get("t").is_none());
    s.c.load("t", None);
    assert!(s.c.is_empty());
}

#[test]
fn a_restart_after_any_step_recovers_a_consistent_outcome() {
    // A TV2 commit, one step at a time; after `k` steps the broker dies.
    let steps: Vec<fn(&mut Script)> = vec![
        |s| drop(s.init("t")),
        |s| drop(s.persisted()),
        |s| drop(s.add("t", pe(1000, 0), &[("x", 0)])),
        |s| drop(s.persisted()),
        |s| drop(s.end("t", pe(1000, 0), COMMIT, TV2)),
        |s| drop(s.persisted()),
        |s| drop(s.markers_done()),
        |s| drop(s.persisted()),
    ];
    for k in 0..=steps.len() {
        let mut s = Script::new();
        for step in &steps[..k] {
            step(&mut s);
        }
        let recovered = s.restart();
        // Markers are resumed exactly when the commit decision was durable
        // and its completion was not.
        let decided_not_done = k == 6 || k == 7;
        assert_eq!(
            !recovered.is_empty(),
            decided_not_done,
            "k={k}: {recovered:?}"
        );
        s.settle();
        let state = s.c.get("t").map(|m| m.state);
        let expected = match k {
            0 | 1 => None,
            2 | 3 => Some(TxnState::Empty),
            4 | 5 => Some(TxnState::Ongoing),
            _ => Some(TxnState::CompleteCommit),
        };
        assert_eq!(state, expected, "k={k}");
        // The client's retry of its EndTxn gets a consistent answer: if the
        // commit was decided it is committed (idempotently), else it commits now.
        if k >= 4 {
            let lines = s.end("t", pe(1000, 0), COMMIT, TV2);
            assert_eq!(lines[0], "OK 1000/1", "k={k}: {lines:?}");
            s.settle();
            assert_eq!(s.c.get("t").unwrap().state, TxnState::CompleteCommit);
        }
    }
}

#[test]
fn completions_from_before_a_restart_are_ignored() {
    let mut s = Script::new();
    let p = s.begin("t");
    s.add("t", p, &[("x", 0)]);
    let (id, old_token, _) = s.persists.front().cloned().unwrap();
    s.restart();
    assert_eq!(s.c.get("t").unwrap().state, TxnState::Empty);
    s.add("t", p, &[("x", 0)]);
    assert!(s.c.persist_completed(&id, old_token, Ok(()), 0).is_empty());
    assert!(s.c.has_pending("t"));
    expect(s.persisted(), &[]);
    assert_eq!(s.c.get("t").unwrap().state, TxnState::Ongoing);
}

#[test]
fn a_tv2_rotation_survives_a_restart() {
    // The v1 record keeps the next and previous producer ids, so the
    // rotation completes and the old producer's retry is recognised.
    let mut s = Script::new();
    let old = pe(500, super::LAST_EPOCH);
    s.c.load(
        "t",
        Some(log_value(TxnState::Ongoing, old, &[("x", 0)], TV2)),
    );
    s.end("t", old, ABORT, TV2);
    s.persisted();
    expect(s.restart(), &["MARKERS t Abort 500/32767 x-0 tv2"]);
    expect(
        s.end("t", old, ABORT, TV2),
        &["ERR CONCURRENT_TRANSACTIONS"],
    );
    s.settle();
    expect(s.restart(), &[]);
    expect(s.end("t", old, ABORT, TV2), &["OK 1000/0"]);
}

#[test]
fn a_kip360_retry_across_a_restart_is_fenced_as_in_kafka() {
    // The last epoch is not part of Kafka's record, so after a failover the
    // retry of a KIP-360 bump cannot be told from a zombie.
    let mut s = Script::new();
    let p = s.begin("t");
    s.init_with("t", super::TIMEOUT_MS, Some(p));
    s.persisted();
    s.restart();
    expect(
        s.init_with("t", super::TIMEOUT_MS, Some(p)),
        &["ERR PRODUCER_FENCED"],
    );
}

impl Script {
    /// Recovers the coordinator as loaded (no reload through the log).
    fn restart_in_place(&mut self) -> Vec<String> {
        let now = self.now;
        let out = self.c.recover(now);
        self.render_outputs(&out)
    }
}
