//! Leader-epoch cache through the log, and lookups by timestamp.
mod common;

use common::batch::{self, Spec};
use common::*;
use strom_storage::LogConfig;

fn append_epoch(log: &mut strom_storage::PartitionLog, epoch: i32, n: usize) {
    let mut b = batch::plain(n, 10, NOW);
    log.append(&mut b, epoch, None, NOW).unwrap();
}

#[test]
fn epoch_cache_records_where_each_epoch_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!(log.latest_epoch(), None);
    append_epoch(&mut log, 1, 2); // 0..=1
    append_epoch(&mut log, 1, 2); // 2..=3
    append_epoch(&mut log, 3, 2); // 4..=5
    append_epoch(&mut log, 5, 2); // 6..=7
    assert_eq!(log.epoch_entries(), vec![(1, 0), (3, 4), (5, 6)]);
    assert_eq!(log.latest_epoch(), Some(5));
    assert_eq!(log.epoch_end_offset(5), Some((5, 8)));
    assert_eq!(log.epoch_end_offset(3), Some((3, 6)));
    assert_eq!(log.epoch_end_offset(2), Some((1, 4)));
    assert_eq!(log.epoch_end_offset(0), Some((0, 0)));
    assert_eq!(log.epoch_end_offset(6), None);
    let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n3\n1 0\n3 4\n5 6\n");
}

#[test]
fn epoch_cache_follows_truncation_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append_epoch(&mut log, 1, 2);
    append_epoch(&mut log, 3, 2);
    append_epoch(&mut log, 5, 2);
    log.truncate_to(4).unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 0), (3, 2)]);
    assert_eq!(log.epoch_end_offset(3), Some((3, 4)));
    drop(log);
    let mut log = reopen_unclean(dir.path(), LogConfig::default());
    assert_eq!(log.epoch_entries(), vec![(1, 0), (3, 2)]);
    append_epoch(&mut log, 4, 1);
    assert_eq!(log.epoch_end_offset(3), Some((3, 4)));
}

#[test]
fn epoch_cache_is_rebuilt_from_batches_when_checkpoint_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 500,
            ..LogConfig::default()
        },
    );
    for epoch in [1, 1, 2, 2, 4, 4, 4] {
        append_epoch(&mut log, epoch, 3);
    }
    let entries = log.epoch_entries();
    log.close().unwrap();
    std::fs::remove_file(dir.path().join("leader-epoch-checkpoint")).unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 500,
            ..LogConfig::default()
        },
    );
    assert_eq!(log.epoch_entries(), entries);
}

#[test]
fn epoch_cache_start_moves_with_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append_epoch(&mut log, 1, 2);
    append_epoch(&mut log, 2, 2);
    log.delete_records_before(3).unwrap();
    assert_eq!(log.epoch_entries(), vec![(2, 3)]);
}

#[test]
fn offset_for_timestamp_finds_the_first_record_reaching_the_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 600,
            index_interval_bytes: 100,
            ..LogConfig::default()
        },
    );
    // Batch i holds two records at timestamps 1000*i and 1000*i + 500.
    for i in 0..30i64 {
        let spec = Spec {
            records: vec![(1000 * i, vec![0; 50]), (1000 * i + 500, vec![0; 50])],
            ..Spec::plain(1, 1, 0)
        };
        let mut b = spec.build();
        log.append(&mut b, 0, None, NOW).unwrap();
    }
    assert!(log.segment_count() > 3);
    assert_eq!(log.offset_for_timestamp(7000).unwrap(), Some((14, 7000)));
    assert_eq!(log.offset_for_timestamp(6999).unwrap(), Some((14, 7000)));
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 0)));
    // Inside a batch: the record, not the batch.
    assert_eq!(log.offset_for_timestamp(7200).unwrap(), Some((15, 7500)));
    assert_eq!(log.offset_for_timestamp(7500).unwrap(), Some((15, 7500)));
    assert_eq!(log.offset_for_timestamp(7501).unwrap(), Some((16, 8000)));
    // The record with the largest timestamp.
    assert_eq!(log.max_timestamp(), Some((59, 29_500)));
    assert_eq!(log.offset_for_timestamp(29_501).unwrap(), None);
    log.close().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 600,
            index_interval_bytes: 100,
            ..LogConfig::default()
        },
    );
    assert_eq!(
        log.offset_for_timestamp(13_000).unwrap(),
        Some((26, 13_000))
    );
}

#[test]
fn offset_for_timestamp_never_returns_below_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append_plain(&mut log, 4, 10, 100);
    append_plain(&mut log, 4, 10, 200);
    log.delete_records_before(2).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((2, 100)));
}

#[test]
fn max_timestamp_is_the_first_batch_with_the_largest_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 400,
            ..LogConfig::default()
        },
    );
    assert_eq!(log.max_timestamp(), None);
    for ts in [5, 50, 20, 90, 90, 10, 30] {
        append_plain(&mut log, 2, 60, ts);
    }
    assert!(log.segment_count() > 2);
    assert_eq!(log.max_timestamp(), Some((6, 90)));
    log.close().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 400,
            ..LogConfig::default()
        },
    );
    assert_eq!(log.max_timestamp(), Some((6, 90)));
}
