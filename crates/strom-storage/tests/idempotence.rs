//! Idempotent producer state through the log: duplicates, sequence and epoch
//! checks, and state surviving restarts.
mod common;

use common::batch::Spec;
use common::*;
use strom_storage::{AppendError, AppendInfo, LogConfig, PartitionLog};

fn send(
    log: &mut PartitionLog,
    pid: i64,
    epoch: i16,
    seq: i32,
    n: usize,
) -> Result<AppendInfo, AppendError> {
    let mut b = Spec::idempotent(pid, epoch, seq, n, NOW).build();
    log.append(&mut b, 0, None, NOW)
}

#[test]
fn retried_batch_returns_original_offsets_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let first = send(&mut log, 1, 0, 0, 3).unwrap();
    send(&mut log, 1, 0, 3, 2).unwrap();
    let size = log.size_bytes();
    let retry = send(&mut log, 1, 0, 0, 3).unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.first_offset, retry.last_offset),
        (first.first_offset, first.last_offset)
    );
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.log_end_offset(), 5);
}

#[test]
fn sequence_gap_is_out_of_order_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    send(&mut log, 1, 0, 0, 3).unwrap();
    assert!(matches!(
        send(&mut log, 1, 0, 4, 1),
        Err(AppendError::OutOfOrderSequence { .. })
    ));
    assert_eq!(log.log_end_offset(), 3);
    send(&mut log, 1, 0, 3, 1).unwrap();
}

#[test]
fn older_epoch_is_rejected_and_new_epoch_must_start_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    send(&mut log, 1, 5, 0, 1).unwrap();
    assert!(matches!(
        send(&mut log, 1, 4, 1, 1),
        Err(AppendError::InvalidProducerEpoch { .. })
    ));
    assert!(matches!(
        send(&mut log, 1, 6, 1, 1),
        Err(AppendError::OutOfOrderSequence { .. })
    ));
    send(&mut log, 1, 6, 0, 1).unwrap();
    assert_eq!(log.producer_state(1).unwrap().producer_epoch, 6);
}

#[test]
fn unknown_producer_is_accepted_at_any_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    send(&mut log, 9, 0, 1000, 1).unwrap();
    assert_eq!(log.producer_state(9).unwrap().last_seq(), 1000);
}

#[test]
fn out_of_order_second_batch_rejects_the_whole_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let mut b = Spec::idempotent(1, 0, 0, 2, NOW).build();
    b.extend(Spec::idempotent(1, 0, 5, 2, NOW).build());
    assert!(log.append(&mut b, 0, None, NOW).is_err());
    assert_eq!(log.log_end_offset(), 0);
    assert!(log.producer_state(1).is_none(), "no partial state");
    let mut b = Spec::idempotent(1, 0, 0, 2, NOW).build();
    b.extend(Spec::idempotent(1, 0, 2, 2, NOW).build());
    assert_eq!(log.append(&mut b, 0, None, NOW).unwrap().last_offset, 3);
}

fn state_survives(clean: bool) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1000,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg.clone());
    let mut originals = Vec::new();
    for i in 0..20 {
        originals.push(send(&mut log, 1, 2, i * 2, 2).unwrap());
        append_plain(&mut log, 1, 100, NOW); // non-idempotent traffic in between
    }
    assert!(log.segment_count() > 2);
    if clean {
        log.close().unwrap();
    } else {
        drop(log);
    }
    let mut log = PartitionLog::open(dir.path(), cfg, clean, NOW).unwrap();
    // The five most recent batches are still recognised as duplicates...
    for i in 15..20 {
        let retry = send(&mut log, 1, 2, i * 2, 2).unwrap();
        assert!(retry.duplicate, "batch {i}");
        assert_eq!(retry.first_offset, originals[i as usize].first_offset);
    }
    // ...older ones are known to be duplicates without their offsets...
    assert!(matches!(
        send(&mut log, 1, 2, 0, 2),
        Err(AppendError::DuplicateSequence { .. })
    ));
    // ...the epoch is still enforced and the sequence continues.
    assert!(matches!(
        send(&mut log, 1, 1, 40, 1),
        Err(AppendError::InvalidProducerEpoch { .. })
    ));
    send(&mut log, 1, 2, 40, 1).unwrap();
}

#[test]
fn producer_state_survives_clean_restart() {
    state_survives(true);
}

#[test]
fn producer_state_is_rebuilt_after_unclean_restart() {
    state_survives(false);
}

#[test]
fn producer_state_is_rebuilt_without_any_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    send(&mut log, 1, 0, 0, 2).unwrap();
    drop(log);
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let mut log = reopen_unclean(dir.path(), LogConfig::default());
    assert!(send(&mut log, 1, 0, 0, 2).unwrap().duplicate);
}

#[test]
fn truncation_rolls_producer_state_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    send(&mut log, 1, 0, 0, 2).unwrap();
    send(&mut log, 1, 0, 2, 2).unwrap();
    log.truncate_to(2).unwrap();
    assert_eq!(log.producer_state(1).unwrap().last_seq(), 1);
    let again = send(&mut log, 1, 0, 2, 2).unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.first_offset, 2);
}

#[test]
fn idle_producers_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    send(&mut log, 1, 0, 0, 1).unwrap();
    assert_eq!(log.expire_producers(NOW + 1000, 86_400_000), 0);
    assert_eq!(log.expire_producers(NOW + 86_400_000, 86_400_000), 1);
    assert_eq!(log.producer_count(), 0);
    // After expiry the producer may continue at any sequence (KIP-360).
    send(&mut log, 1, 0, 77, 1).unwrap();
}
