//! Transactions in the partition log: markers, the first unstable offset, the
//! aborted-transaction index through rolls, recovery, restarts, retention,
//! truncation and replication.
mod common;

use std::path::Path;

use common::batch::Spec;
use common::txn::*;
use common::*;
use strom_protocol::records::{
    decode_batch, parse_control_record, Compression, ControlRecordType, RecordBatchBuilder,
};
use strom_storage::{AbortedTxn, AppendError, AppendOrigin, LogConfig, PartitionLog};

use ControlRecordType::{Abort, Commit};

fn open_txn(log: &PartitionLog, pid: i64) -> Option<i64> {
    log.producer_state(pid)
        .and_then(|e| e.current_txn_first_offset)
}

#[test]
fn first_unstable_offset_follows_two_interleaved_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let (mut p1, mut p2) = (TxnProducer::new(1), TxnProducer::new(2));
    assert_eq!(log.first_unstable_offset(), None);
    append_plain(&mut log, 1, 10, NOW); // 0
    assert_eq!(log.first_unstable_offset(), None);

    p1.send(&mut log, 2); // 1..=2 opens p1's transaction
    assert_eq!(log.first_unstable_offset(), Some(1));
    p2.send(&mut log, 1); // 3
    p1.send(&mut log, 1); // 4, same transaction
    assert_eq!(log.first_unstable_offset(), Some(1));
    assert_eq!(p1.commit(&mut log).first_offset, 5);
    assert_eq!(log.first_unstable_offset(), Some(3), "p2 is still open");
    assert_eq!(open_txn(&log, 1), None);

    p1.send(&mut log, 1); // 6, p1's next transaction
    assert_eq!(log.first_unstable_offset(), Some(3));
    assert_eq!(p2.abort(&mut log).first_offset, 7);
    assert_eq!(log.first_unstable_offset(), Some(6));
    // The entry's last stable offset is p1's open transaction.
    assert_eq!(all_aborted(&log), vec![aborted(2, 3, 7, 6)]);

    p1.abort(&mut log); // 8
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(
        all_aborted(&log),
        vec![aborted(2, 3, 7, 6), aborted(1, 6, 8, 9)]
    );
    // A commit never enters the index.
    p2.send(&mut log, 1); // 9
    p2.commit(&mut log); // 10
    assert_eq!(all_aborted(&log).len(), 2);
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.producer_state(2).unwrap().coordinator_epoch, 0);
}

/// A deterministic walk of three producers over small segments; returns the
/// aborted transactions in marker order as computed independently here.
/// `also_open` is the first offset of a transaction open throughout.
fn random_walk(log: &mut PartitionLog, also_open: i64) -> Vec<AbortedTxn> {
    let mut producers: Vec<TxnProducer> = (1..=3).map(TxnProducer::new).collect();
    let mut open: Vec<Option<i64>> = vec![None; 3];
    let mut expected = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % 3) as usize;
        let action = (x >> 8) % 10;
        if open[i].is_some() && action < 3 {
            let kind = if action == 0 { Commit } else { Abort };
            let info = write_marker(log, producers[i].marker(kind)).unwrap();
            let first = open[i].take().unwrap();
            if kind == Abort {
                let lso = open
                    .iter()
                    .flatten()
                    .copied()
                    .chain([also_open])
                    .min()
                    .unwrap_or(info.first_offset + 1);
                expected.push(aborted(producers[i].pid, first, info.first_offset, lso));
            }
        } else if action < 8 {
            let info = producers[i].send(log, 1 + (x >> 20) as usize % 3);
            open[i].get_or_insert(info.first_offset);
        } else {
            append_plain(log, 1, 30, NOW);
        }
    }
    expected
}

#[test]
fn aborted_transactions_are_found_across_segment_rolls_for_every_range() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1024,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone());
    // One transaction spans several segments before it is aborted.
    let mut long = TxnProducer::new(9);
    let first = long.send(&mut log, 1).first_offset;
    let mut expected = random_walk(&mut log, first);
    assert_eq!(log.first_unstable_offset(), Some(first));
    let marker = long.abort(&mut log).first_offset;
    // Its last stable offset: the earliest transaction the walk left open.
    let lso = log.first_unstable_offset().unwrap_or(marker + 1);
    expected.push(aborted(9, first, marker, lso));
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    assert!(expected.len() > 10, "{} aborted", expected.len());
    assert_eq!(all_aborted(&log), expected);

    let end = log.log_end_offset();
    for start in (0..=end).step_by(3) {
        for upper in (start..=end + 1).step_by(5) {
            let want: Vec<AbortedTxn> = expected
                .iter()
                .filter(|t| t.last_offset >= start && t.first_offset < upper)
                .copied()
                .collect();
            assert_eq!(
                log.aborted_transactions(start, upper),
                want,
                "range [{start}, {upper})"
            );
        }
    }
    // The same after a clean restart, and after recovery rebuilt every index.
    log.close().unwrap();
    let log = open(dir.path(), config.clone());
    assert_eq!(all_aborted(&log), expected);
    drop(log);
    for (base, _) in txnindex_sizes(dir.path()) {
        std::fs::remove_file(dir.path().join(format!("{base:020}.txnindex"))).unwrap();
    }
    std::fs::remove_file(dir.path().join("recovery-point")).unwrap();
    let log = reopen_unclean(dir.path(), config);
    assert_eq!(all_aborted(&log), expected);
}

#[test]
fn markers_from_an_old_producer_or_coordinator_epoch_are_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let mut p = TxnProducer::new(7);
    p.epoch = 3;
    p.coordinator_epoch = 5;
    p.send(&mut log, 1); // 0
    let err = write_marker(&mut log, marker(Commit, 7, 2, 5)).unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::InvalidProducerEpoch {
                producer_id: 7,
                producer_epoch: 2,
                current_epoch: 3
            }
        ),
        "{err:?}"
    );
    p.commit(&mut log); // 1
    assert_eq!(log.producer_state(7).unwrap().coordinator_epoch, 5);

    p.send(&mut log, 1); // 2
    let err = write_marker(&mut log, marker(Abort, 7, 3, 4)).unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::TransactionCoordinatorFenced {
                producer_id: 7,
                coordinator_epoch: 4,
                current_coordinator_epoch: 5
            }
        ),
        "{err:?}"
    );
    assert_eq!(log.log_end_offset(), 3, "refused markers are not written");
    assert_eq!(log.first_unstable_offset(), Some(2));

    // A transactions-V2 marker carries a bumped epoch: the producer takes it
    // and its next epoch starts at sequence 0.
    write_marker(&mut log, marker(Abort, 7, 4, 6)).unwrap(); // 3
    let state = log.producer_state(7).unwrap();
    assert_eq!((state.producer_epoch, state.coordinator_epoch), (4, 6));
    assert!(state.batches.is_empty());
    assert_eq!(all_aborted(&log), vec![aborted(7, 2, 3, 4)]);
    p.epoch = 4;
    let mut wrong_seq = p.batch(&[("k", Some("v"))]);
    assert!(matches!(
        log.append(&mut wrong_seq, 0, None, NOW),
        Err(AppendError::OutOfOrderSequence { .. })
    ));
    p.seq = 0;
    p.send(&mut log, 1); // 4
    let mut old_epoch = Spec::idempotent(7, 3, 0, 1, NOW).build();
    assert!(matches!(
        log.append(&mut old_epoch, 0, None, NOW),
        Err(AppendError::InvalidProducerEpoch { .. })
    ));

    // A retried marker of an already completed transaction is accepted and
    // changes nothing.
    p.coordinator_epoch = 6;
    p.commit(&mut log); // 5
    p.commit(&mut log); // 6
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(all_aborted(&log).len(), 1);
}

#[test]
fn a_non_transactional_batch_during_an_open_transaction_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let mut p = TxnProducer::new(7);
    p.send(&mut log, 1); // 0, sequence 0
    let mut plain = Spec::idempotent(7, 0, 1, 1, NOW).build();
    let err = log.append(&mut plain, 0, None, NOW).unwrap_err();
    assert!(matches!(err, AppendError::InvalidTxnState(_)), "{err:?}");
    // Coordinators (offset commits) obey the same rule.
    let err = log
        .append_with_origin(&mut plain, 0, None, NOW, AppendOrigin::Coordinator)
        .unwrap_err();
    assert!(matches!(err, AppendError::InvalidTxnState(_)), "{err:?}");
    assert_eq!(log.log_end_offset(), 1);
    p.commit(&mut log); // 1
    let mut plain = Spec::idempotent(7, 0, 1, 1, NOW).build();
    assert_eq!(
        log.append(&mut plain, 0, None, NOW).unwrap().first_offset,
        2
    );
}

#[test]
fn control_batches_are_refused_from_clients_and_must_be_markers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let mut p = TxnProducer::new(7);
    p.send(&mut log, 1);
    let mut from_client = p.marker(Abort);
    let err = log.append(&mut from_client, 0, None, NOW).unwrap_err();
    assert!(matches!(err, AppendError::InvalidRecord(_)), "{err:?}");

    let mut builder = RecordBatchBuilder::new(Compression::None)
        .producer(7, 0, -1)
        .transactional(true)
        .control(true);
    builder.push(NOW, Some(bytes::Bytes::from_static(b"xx")), None, vec![]);
    let not_a_marker = builder.build().unwrap().to_vec();
    let err = write_marker(&mut log, not_a_marker).unwrap_err();
    assert!(matches!(err, AppendError::InvalidRecord(_)), "{err:?}");
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.first_unstable_offset(), Some(0));
}

/// Three segments: aborts in the first two, two transactions still open.
///
/// ```text
/// seg 0: p1 0 (open) · p2 1 · ABORT p2 2
/// seg 3: p3 3 · ABORT p3 4 · p1 5
/// seg 6: p4 6 · ABORT p4 7 · p5 8 (open) · plain 9
/// ```
fn build_txn_log(dir: &Path) -> PartitionLog {
    let mut log = open(dir, LogConfig::default());
    let mut p: Vec<TxnProducer> = (0..=5).map(TxnProducer::new).collect();
    p[1].send(&mut log, 1);
    p[2].send(&mut log, 1);
    p[2].abort(&mut log);
    log.roll().unwrap();
    p[3].send(&mut log, 1);
    p[3].abort(&mut log);
    p[1].send(&mut log, 1);
    log.roll().unwrap();
    p[4].send(&mut log, 1);
    p[4].abort(&mut log);
    p[5].send(&mut log, 1);
    append_plain(&mut log, 1, 10, NOW);
    assert_eq!(log.segment_base_offsets(), vec![0, 3, 6]);
    log
}

fn build_txn_expected() -> Vec<AbortedTxn> {
    vec![
        aborted(2, 1, 2, 0),
        aborted(3, 3, 4, 0),
        aborted(4, 6, 7, 0),
    ]
}

#[test]
fn unclean_restart_rebuilds_the_index_and_open_transactions_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = build_txn_log(dir.path());
    drop(log); // never flushed: every segment is recovered
    let log = reopen_unclean(dir.path(), LogConfig::default());
    assert_eq!(all_aborted(&log), build_txn_expected());
    assert_eq!(log.first_unstable_offset(), Some(0));
    assert_eq!((open_txn(&log, 1), open_txn(&log, 5)), (Some(0), Some(8)));
    assert_eq!(txnindex_sizes(dir.path()), vec![(0, 34), (3, 34), (6, 34)]);
}

#[test]
fn a_torn_tail_takes_its_abort_entry_with_it_and_reopens_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = build_txn_log(dir.path());
    log.flush(NOW).unwrap();
    let bytes = read_all(&log, 6);
    drop(log);
    // Cut into the ABORT marker at offset 7 (the second batch of segment 6).
    let ranges = batch_ranges(&bytes);
    assert_eq!(ranges[1], (7, 7));
    let first_len = strom_protocol::records::BatchIter::new(&bytes)
        .next()
        .unwrap()
        .unwrap()
        .1
        .len() as u64;
    let last = dir.path().join(format!("{:020}.log", 6));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(first_len + 20)
        .unwrap();
    let mut log = reopen_unclean(dir.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(all_aborted(&log), build_txn_expected()[..2].to_vec());
    assert_eq!(open_txn(&log, 4), Some(6), "p4's abort was lost");
    assert_eq!(open_txn(&log, 5), None, "p5's batch was lost");
    assert_eq!(log.first_unstable_offset(), Some(0));
    // The coordinator retries the marker.
    let mut p4 = TxnProducer::new(4);
    p4.seq = 1;
    p4.abort(&mut log);
    assert_eq!(all_aborted(&log), build_txn_expected());
}

#[test]
fn a_missing_or_damaged_txnindex_is_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = build_txn_log(dir.path());
    log.close().unwrap();
    let index = |base: i64| dir.path().join(format!("{base:020}.txnindex"));
    std::fs::remove_file(index(3)).unwrap();
    std::fs::write(index(0), [7u8; 40]).unwrap();
    // A clean open: only the two bad indexes are rebuilt (from the snapshot
    // at or before them), the rest is loaded.
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(all_aborted(&log), build_txn_expected());
    assert_eq!(txnindex_sizes(dir.path()), vec![(0, 34), (3, 34), (6, 34)]);
    assert_eq!(log.first_unstable_offset(), Some(0));
    drop(log);
    // Unclean with a flushed log: segment 3 is below the recovery point and
    // still rebuilt, by replaying from the log start (the snapshots kept are
    // newer than the segment), which finds p1 open since offset 0.
    let mut log = reopen_unclean(dir.path(), LogConfig::default());
    log.flush(NOW).unwrap();
    drop(log);
    std::fs::remove_file(index(3)).unwrap();
    let log = reopen_unclean(dir.path(), LogConfig::default());
    assert_eq!(all_aborted(&log), build_txn_expected());
}

#[test]
fn clean_restart_keeps_open_transactions_coordinator_epochs_and_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let mut p = TxnProducer::new(1);
    p.coordinator_epoch = 3;
    p.send(&mut log, 1); // 0
    p.abort(&mut log); // 1
    p.send(&mut log, 2); // 2..=3, open
    log.close().unwrap();

    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!(log.first_unstable_offset(), Some(2));
    assert_eq!(all_aborted(&log), vec![aborted(1, 0, 1, 2)]);
    let state = log.producer_state(1).unwrap();
    assert_eq!(
        (state.coordinator_epoch, state.current_txn_first_offset),
        (3, Some(2))
    );
    // The restored coordinator epoch still fences a zombie coordinator.
    let err = write_marker(&mut log, marker(Commit, 1, 0, 2)).unwrap_err();
    assert!(matches!(
        err,
        AppendError::TransactionCoordinatorFenced { .. }
    ));
    // The restored open transaction still refuses non-transactional data.
    let mut plain = Spec::idempotent(1, 0, p.seq, 1, NOW).build();
    assert!(matches!(
        log.append(&mut plain, 0, None, NOW),
        Err(AppendError::InvalidTxnState(_))
    ));
    p.commit(&mut log);
    assert_eq!(log.first_unstable_offset(), None);
}

#[test]
fn retention_and_delete_records_delete_txnindex_files_with_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = build_txn_log(dir.path());
    log.delete_records_before(3).unwrap();
    assert_eq!(txnindex_sizes(dir.path()), vec![(3, 34), (6, 34)]);
    assert_eq!(all_aborted(&log), build_txn_expected()[1..].to_vec());
    // p1's transaction started below the new log start.
    assert_eq!(log.first_unstable_offset(), Some(3));

    let hw = log.log_end_offset();
    let outcome = log.apply_retention(NOW + 8 * 24 * 3_600_000, hw).unwrap();
    assert_eq!(outcome.deleted_segments, 2);
    assert_eq!(txnindex_sizes(dir.path()), vec![(10, 0)]);
    assert!(all_aborted(&log).is_empty());
}

#[test]
fn truncation_cuts_index_entries_and_reopens_their_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let (mut p1, mut p2) = (TxnProducer::new(1), TxnProducer::new(2));
    p1.send(&mut log, 1); // 0
    p2.send(&mut log, 1); // 1
    p2.abort(&mut log); // 2
    log.roll().unwrap();
    p1.send(&mut log, 1); // 3
    p1.abort(&mut log); // 4
    assert_eq!(
        all_aborted(&log),
        vec![aborted(2, 1, 2, 0), aborted(1, 0, 4, 5)]
    );
    assert_eq!(log.first_unstable_offset(), None);

    log.truncate_to(4).unwrap();
    assert_eq!(all_aborted(&log), vec![aborted(2, 1, 2, 0)]);
    assert_eq!(txnindex_sizes(dir.path()), vec![(0, 34), (3, 0)]);
    assert_eq!(log.first_unstable_offset(), Some(0));

    log.truncate_to(2).unwrap();
    assert!(all_aborted(&log).is_empty());
    assert_eq!(txnindex_sizes(dir.path()), vec![(0, 0)]);
    assert_eq!((open_txn(&log, 1), open_txn(&log, 2)), (Some(0), Some(1)));
    p2.commit(&mut log); // 2
    assert_eq!(log.first_unstable_offset(), Some(0));
    // What truncation left survives a restart.
    log.close().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    assert!(all_aborted(&log).is_empty());
    assert_eq!(log.first_unstable_offset(), Some(0));

    // A follower emptied to restart at the leader's log start forgets the
    // transactions of the log it dropped.
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(txnindex_sizes(dir.path()), vec![(100, 0)]);
    log.close().unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.producer_count(), 0);
}

#[test]
fn followers_track_transactions_and_aborts_like_the_leader() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = build_txn_log(leader_dir.path());
    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = open(follower_dir.path(), LogConfig::default());
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        // One batch per fetch, so each marker is its own append.
        let r = leader.read(offset, 1, i64::MAX, true).unwrap();
        follower.append_as_follower(&r.records, NOW).unwrap();
        offset = r.next_offset;
    }
    assert_eq!(all_aborted(&follower), all_aborted(&leader));
    assert_eq!(
        follower.first_unstable_offset(),
        leader.first_unstable_offset()
    );
    assert_eq!(follower.producer_states(), leader.producer_states());

    // A follower copying the whole log in one append gets the same entries.
    let dir = tempfile::tempdir().unwrap();
    let mut bulk = open(dir.path(), LogConfig::default());
    bulk.append_as_follower(&read_all(&leader, 0), NOW).unwrap();
    assert_eq!(
        all_aborted(&bulk)
            .iter()
            .map(|t| (t.producer_id, t.first_offset, t.last_offset))
            .collect::<Vec<_>>(),
        vec![(2, 1, 2), (3, 3, 4), (4, 6, 7)]
    );
}

/// What a read_uncommitted consumer reading from the log start sees:
/// markers as `(offset, kind)` and data records as `(offset, key, value)`.
type Contents = (Vec<(i64, ControlRecordType)>, Vec<(i64, String, String)>);

fn contents(log: &PartitionLog) -> Contents {
    let bytes = common::compact::read_batches(log);
    let (mut markers, mut data) = (Vec::new(), Vec::new());
    for item in strom_protocol::records::BatchIter::new(&bytes) {
        let (_, range) = item.unwrap();
        let (h, records) =
            decode_batch(&bytes::Bytes::copy_from_slice(&bytes[range]), 1 << 20).unwrap();
        for r in records {
            if h.is_control() {
                markers.push((r.offset(&h), parse_control_record(&r).unwrap().0));
            } else {
                let text = |b: &Option<bytes::Bytes>| {
                    String::from_utf8(b.clone().unwrap().to_vec()).unwrap()
                };
                data.push((r.offset(&h), text(&r.key), text(&r.value)));
            }
        }
    }
    (markers, data)
}

fn kv(offset: i64, key: &str, value: &str) -> (i64, String, String) {
    (offset, key.to_string(), value.to_string())
}

/// A compacted log with committed and aborted transactions:
///
/// ```text
/// seg 0: a=plain 0 · p1 a=committed 1 · COMMIT p1 2 · p2 a=aborted,b=aborted 3,4
///        ABORT p2 5 · p2 c=committed 6 · COMMIT p2 7 · p3 d=aborted 8 · c=plain 9
/// seg 10: ABORT p3 10 · z=plain 11 (active)
/// ```
fn compacted_txn_log(dir: &Path) -> PartitionLog {
    use common::compact::{append_kv, compact_config};
    let mut log = open(dir, compact_config());
    let (mut p1, mut p2, mut p3) = (
        TxnProducer::new(1),
        TxnProducer::new(2),
        TxnProducer::new(3),
    );
    append_kv(&mut log, &[("a", Some("plain"))]);
    p1.send_kv(&mut log, &[("a", Some("committed"))]);
    p1.commit(&mut log);
    p2.send_kv(&mut log, &[("a", Some("aborted")), ("b", Some("aborted"))]);
    p2.abort(&mut log);
    p2.send_kv(&mut log, &[("c", Some("committed"))]);
    p2.commit(&mut log);
    p3.send_kv(&mut log, &[("d", Some("aborted"))]);
    append_kv(&mut log, &[("c", Some("plain"))]);
    log.roll().unwrap();
    // p3's marker lands in the active segment, past what the cleaner rewrites.
    p3.abort(&mut log);
    append_kv(&mut log, &[("z", Some("plain"))]);
    log
}

#[test]
fn compaction_drops_aborted_records_and_keeps_committed_ones_and_markers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = compacted_txn_log(dir.path());
    let index_before = all_aborted(&log);
    assert_eq!(
        index_before,
        vec![aborted(2, 3, 5, 6), aborted(3, 8, 10, 11)]
    );
    let outcome = log.clean(NOW).unwrap();
    assert_eq!(outcome.cleaned_up_to, 10);
    assert_eq!(outcome.aborted_records_removed, 3);
    // a=plain and c=committed are superseded; the aborted a and b never
    // entered the key map, so a=committed survives.
    assert_eq!(outcome.records_removed, 5);
    let expected: Contents = (
        vec![(2, Commit), (5, Abort), (7, Commit), (10, Abort)],
        vec![
            kv(1, "a", "committed"),
            kv(9, "c", "plain"),
            kv(11, "z", "plain"),
        ],
    );
    assert_eq!(contents(&log), expected);
    // p3's aborted batch was its last: kept empty, so its sequence survives.
    let batches = batch_ranges(&common::compact::read_batches(&log));
    assert!(batches.contains(&(8, 8)), "{batches:?}");
    assert!(!batches.contains(&(3, 4)), "{batches:?}");
    assert_eq!(all_aborted(&log), index_before);
    assert_eq!(txnindex_sizes(dir.path()), vec![(0, 34), (10, 34)]);

    // The cleaned log and its index read the same after a clean restart;
    // after an unclean one the index is rebuilt from what is left (p2's
    // aborted transaction has no records any more, so it needs no entry).
    log.close().unwrap();
    let log = open(dir.path(), common::compact::compact_config());
    assert_eq!(contents(&log), expected);
    assert_eq!(all_aborted(&log), index_before);
    drop(log);
    std::fs::remove_file(dir.path().join("recovery-point")).unwrap();
    let mut log = reopen_unclean(dir.path(), common::compact::compact_config());
    assert_eq!(contents(&log), expected);
    assert_eq!(all_aborted(&log), vec![aborted(3, 8, 10, 11)]);
    // A second pass changes nothing.
    log.roll().unwrap();
    let again = log.clean(NOW).unwrap();
    assert_eq!(again.records_removed, 0);
    assert_eq!(contents(&log), expected);
}

#[test]
fn compaction_never_cleans_an_open_transaction() {
    use common::compact::{append_kv, compact_config};
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    let mut p = TxnProducer::new(1);
    append_kv(&mut log, &[("a", Some("1"))]); // 0
    p.send_kv(&mut log, &[("a", Some("txn"))]); // 1, open
    append_kv(&mut log, &[("a", Some("2"))]); // 2
    append_kv(&mut log, &[("b", Some("1"))]); // 3
    log.roll().unwrap();
    append_kv(&mut log, &[("b", Some("2"))]); // 4
    log.roll().unwrap();
    append_kv(&mut log, &[("z", Some("1"))]); // 5, active
    let info = log.cleanable(NOW).unwrap().unwrap();
    assert_eq!(info.first_uncleanable_offset, 1);
    let before = contents(&log);
    let outcome = log.clean(NOW).unwrap();
    assert_eq!(outcome.cleaned_up_to, 1);
    assert_eq!(outcome.records_removed, 0);
    assert_eq!(contents(&log), before);

    p.commit(&mut log); // 6
    log.roll().unwrap();
    append_kv(&mut log, &[("z", Some("2"))]); // 7
    let outcome = log.clean(NOW).unwrap();
    assert_eq!(outcome.cleaned_up_to, 7);
    assert_eq!(
        contents(&log).1,
        vec![
            kv(2, "a", "2"),
            kv(4, "b", "2"),
            kv(5, "z", "1"),
            kv(7, "z", "2"),
        ]
    );
    assert_eq!(contents(&log).0, vec![(6, Commit)]);
}

#[test]
fn a_crash_at_any_swap_step_keeps_the_aborted_transaction_index() {
    use strom_storage::{CleanerConfig, SwapStep};
    let reference = tempfile::tempdir().unwrap();
    let mut log = compacted_txn_log(reference.path());
    let (before, index) = (contents(&log), all_aborted(&log));
    log.clean(NOW).unwrap();
    let after = contents(&log);
    assert_ne!(before, after);
    for (step, committed) in [
        (SwapStep::CleanedWritten, false),
        (SwapStep::ManifestWritten, false),
        (SwapStep::RenamedToSwap, true),
        (SwapStep::FirstOriginalDeleted, true),
        (SwapStep::OriginalsDeleted, true),
        (SwapStep::SwapRenamed, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = compacted_txn_log(dir.path());
        let hook = CleanerConfig {
            crash_after: Some(step),
            ..CleanerConfig::default()
        };
        assert!(log.clean_with(NOW, &hook).is_err());
        drop(log);
        // Opened as after a clean stop, so the index files are loaded as
        // the swap left them, not rebuilt.
        let log = open(dir.path(), common::compact::compact_config());
        let expected = if committed { &after } else { &before };
        assert_eq!(&contents(&log), expected, "{step:?}");
        assert_eq!(all_aborted(&log), index, "{step:?}");
        assert_eq!(
            txnindex_sizes(dir.path()),
            vec![(0, 34), (10, 34)],
            "{step:?}"
        );
    }
}
