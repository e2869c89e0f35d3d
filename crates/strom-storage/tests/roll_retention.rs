//! Segment rolling, retention, DeleteRecords and truncation.
mod common;

use common::*;
use strom_storage::{LogConfig, ReadError, StorageError};

const HOUR: i64 = 3_600_000;

#[test]
fn segment_rolls_when_an_append_would_exceed_segment_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1000,
            ..LogConfig::default()
        },
    );
    let one = append_plain(&mut log, 1, 300, 1);
    let batch_len = log.size_bytes();
    assert_eq!(one.first_offset, 0);
    let per_segment = 1000 / batch_len;
    for _ in 1..per_segment {
        append_plain(&mut log, 1, 300, 1);
    }
    assert_eq!(log.segment_count(), 1);
    append_plain(&mut log, 1, 300, 1);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.segment_base_offsets(), vec![0, per_segment as i64]);
    assert!(dir.path().join(format!("{:020}.log", per_segment)).exists());
    assert!(dir
        .path()
        .join(format!("{:020}.snapshot", per_segment))
        .exists());
}

#[test]
fn segment_rolls_after_segment_ms_since_its_first_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_ms: HOUR,
            ..LogConfig::default()
        },
    );
    let mut b = common::batch::plain(1, 10, 1);
    log.append(&mut b, 0, None, NOW).unwrap();
    let mut b = common::batch::plain(1, 10, 1);
    log.append(&mut b, 0, None, NOW + HOUR).unwrap();
    assert_eq!(
        log.segment_count(),
        1,
        "exactly segment.ms is not yet past it"
    );
    let mut b = common::batch::plain(1, 10, 1);
    log.append(&mut b, 0, None, NOW + HOUR + 1).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn segment_rolls_when_its_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_index_bytes: 24,
        index_interval_bytes: 0,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg);
    for _ in 0..10 {
        append_plain(&mut log, 1, 10, 1);
    }
    // The offset index holds 3 entries of 8 bytes and a segment's first batch
    // is never indexed, so each segment holds four batches.
    assert_eq!(log.segment_base_offsets(), vec![0, 4, 8]);
}

#[test]
fn time_retention_deletes_old_segments_and_advances_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1000,
        retention_ms: 10 * HOUR,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg);
    for i in 0..12 {
        append_plain(&mut log, 1, 300, NOW + i * HOUR);
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4);
    // At NOW + 14h, records older than NOW + 4h are expired.
    let outcome = log
        .apply_retention(NOW + 14 * HOUR, log.log_end_offset())
        .unwrap();
    assert!(outcome.deleted_segments >= 1);
    assert_eq!(outcome.log_start_offset, log.log_start_offset());
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    // Every remaining segment but the first may hold nothing expired; the first
    // kept segment has a record newer than the cut-off.
    assert!(log.log_start_offset() <= 4);
    assert!(matches!(
        log.read(0, 100, i64::MAX, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    assert!(!log
        .read(log.log_start_offset(), 100, i64::MAX, true)
        .unwrap()
        .records
        .is_empty());
    assert!(!dir.path().join(format!("{:020}.log", 0)).exists());
    // The log start offset survives a restart.
    let start = log.log_start_offset();
    log.close().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1000,
            retention_ms: 10 * HOUR,
            ..LogConfig::default()
        },
    );
    assert_eq!(log.log_start_offset(), start);
}

#[test]
fn time_retention_rolls_and_deletes_an_expired_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: HOUR,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg);
    append_plain(&mut log, 3, 10, NOW);
    let outcome = log.apply_retention(NOW + 2 * HOUR, 3).unwrap();
    assert_eq!(outcome.deleted_segments, 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 3));
    assert_eq!(log.segment_base_offsets(), vec![3]);
    assert_eq!(append_plain(&mut log, 1, 1, NOW).first_offset, 3);
}

#[test]
fn retention_never_deletes_data_at_or_above_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1000,
        retention_ms: HOUR,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg);
    for _ in 0..10 {
        append_plain(&mut log, 1, 300, NOW);
    }
    let second_base = log.segment_base_offsets()[1];
    let outcome = log.apply_retention(NOW + 2 * HOUR, second_base).unwrap();
    assert_eq!(outcome.deleted_segments, 1);
    assert_eq!(log.log_start_offset(), second_base);
}

#[test]
fn size_retention_keeps_the_log_under_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1000,
            ..LogConfig::default()
        },
    );
    for _ in 0..20 {
        append_plain(&mut log, 1, 300, NOW);
    }
    let total = log.size_bytes();
    log.close().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1000,
        retention_bytes: 2500,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg);
    let before = log.segment_count();
    let outcome = log.apply_retention(NOW, log.log_end_offset()).unwrap();
    assert!(outcome.deleted_segments > 0);
    assert_eq!(log.segment_count(), before - outcome.deleted_segments);
    assert_eq!(log.size_bytes(), total - outcome.deleted_bytes);
    assert!(log.size_bytes() <= 2500 + 1000, "at most one segment over");
    // Deleting one more segment would go below retention.bytes (Kafka's rule).
    let oldest = log
        .read(log.log_start_offset(), 1 << 20, i64::MAX, true)
        .unwrap();
    assert!(log.size_bytes() - (oldest.records.len() as u64) < 2500);
}

#[test]
fn delete_records_raises_log_start_and_deletes_segments_wholly_below() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1000,
            ..LogConfig::default()
        },
    );
    for _ in 0..10 {
        append_plain(&mut log, 2, 150, NOW);
    }
    let bases = log.segment_base_offsets();
    let target = bases[2] + 1;
    assert_eq!(log.delete_records_before(target).unwrap(), target);
    assert_eq!(log.segment_base_offsets()[0], bases[2]);
    assert!(matches!(
        log.read(target - 1, 100, i64::MAX, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    // A fetch at the new start gets the batch containing it.
    assert!(!log
        .read(target, 100, i64::MAX, true)
        .unwrap()
        .records
        .is_empty());
    // Never backwards.
    assert_eq!(log.delete_records_before(1).unwrap(), target);
    assert!(matches!(
        log.delete_records_before(log.log_end_offset() + 1),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    drop(log);
    let log = reopen_unclean(
        dir.path(),
        LogConfig {
            segment_bytes: 1000,
            ..LogConfig::default()
        },
    );
    assert_eq!(log.log_start_offset(), target);
}

#[test]
fn truncate_to_removes_the_tail_and_appends_continue_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1000,
            ..LogConfig::default()
        },
    );
    for _ in 0..10 {
        append_plain(&mut log, 2, 150, NOW);
    }
    log.truncate_to(7).unwrap();
    // 7 is inside batch 6..=7, so that whole batch goes.
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(batch_ranges(&read_all(&log, 0)).last(), Some(&(4, 5)));
    assert_eq!(append_plain(&mut log, 1, 1, NOW).first_offset, 6);
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    drop(log);
    let log = reopen_unclean(
        dir.path(),
        LogConfig {
            segment_bytes: 1000,
            ..LogConfig::default()
        },
    );
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn truncate_below_the_first_segment_restarts_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1000,
            ..LogConfig::default()
        },
    );
    for _ in 0..10 {
        append_plain(&mut log, 2, 150, NOW);
    }
    let second = log.segment_base_offsets()[1];
    log.delete_records_before(second).unwrap();
    log.truncate_to(second - 2).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![second - 2]);
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (second - 2, second - 2)
    );
}
