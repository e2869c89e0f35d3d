//! Fault injection: failed fsync, full disk, torn writes. A failed append
//! leaves the log end offset unchanged and the next open is consistent.
mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use strom_storage::{AppendError, FaultyFileSystem, LogConfig, PartitionLog, StorageError};

fn open_faulty(dir: &Path, clean: bool) -> (PartitionLog, FaultyFileSystem) {
    let fs = FaultyFileSystem::new();
    let log =
        PartitionLog::open_with_fs(dir, small_config(), clean, NOW, Arc::new(fs.clone())).unwrap();
    (log, fs)
}

fn append(log: &mut PartitionLog) -> Result<strom_storage::AppendInfo, AppendError> {
    let mut b = common::batch::plain(3, 50, NOW);
    log.append(&mut b, 0, None, NOW)
}

#[test]
fn torn_write_is_cut_off_and_the_log_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, fs) = open_faulty(dir.path(), true);
    append(&mut log).unwrap();
    let size = log.size_bytes();
    fs.tear_next_write(40);
    assert!(matches!(
        append(&mut log),
        Err(AppendError::Io(StorageError::Io { .. }))
    ));
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.size_bytes(), size);
    assert!(!log.is_offline());
    assert_eq!(append(&mut log).unwrap().first_offset, 3);
    drop(log);
    let log = reopen_unclean(dir.path(), small_config());
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(batch_ranges(&read_all(&log, 0)), vec![(0, 2), (3, 5)]);
}

#[test]
fn disk_full_fails_the_append_without_changing_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, fs) = open_faulty(dir.path(), true);
    append(&mut log).unwrap();
    fs.set_free_bytes(Some(10));
    let err = append(&mut log).unwrap_err();
    assert!(
        matches!(&err, AppendError::Io(StorageError::Io { source, .. }) if source.kind() == std::io::ErrorKind::StorageFull),
        "{err:?}"
    );
    assert_eq!(log.log_end_offset(), 3);
    fs.set_free_bytes(None);
    assert_eq!(append(&mut log).unwrap().first_offset, 3);
}

#[test]
fn torn_write_that_cannot_be_cut_off_takes_the_log_offline_and_reopen_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, fs) = open_faulty(dir.path(), true);
    append(&mut log).unwrap();
    fs.fail_set_len(true);
    fs.tear_next_write(70);
    assert!(append(&mut log).is_err());
    assert!(log.is_offline());
    assert_eq!(log.log_end_offset(), 3);
    assert!(matches!(
        append(&mut log),
        Err(AppendError::Io(StorageError::LogOffline { .. }))
    ));
    // Reads of committed data still work while offline.
    assert_eq!(batch_ranges(&read_all(&log, 0)), vec![(0, 2)]);
    drop(log);
    let mut log = reopen_unclean(dir.path(), small_config());
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(append_plain(&mut log, 1, 1, NOW).first_offset, 3);
}

#[test]
fn fsync_failure_fails_flush_keeps_recovery_point_and_takes_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, fs) = open_faulty(dir.path(), true);
    append(&mut log).unwrap();
    log.flush(NOW).unwrap();
    assert_eq!(log.recovery_point(), 3);
    append(&mut log).unwrap();
    fs.fail_syncs(true);
    assert!(log.flush(NOW + 1).is_err());
    assert_eq!(log.recovery_point(), 3);
    assert_eq!(log.unflushed_messages(), 3);
    assert_eq!(log.log_end_offset(), 6);
    assert!(log.is_offline());
    assert!(append(&mut log).is_err());
    drop(log);
    let rp = std::fs::read_to_string(dir.path().join("recovery-point")).unwrap();
    assert_eq!(rp, "0\n3\n");
    let log = reopen_unclean(dir.path(), small_config());
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn flush_resets_counters_and_advances_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _fs) = open_faulty(dir.path(), true);
    append(&mut log).unwrap();
    append(&mut log).unwrap();
    assert_eq!(log.unflushed_messages(), 6);
    log.flush(NOW + 5).unwrap();
    assert_eq!(
        (
            log.unflushed_messages(),
            log.last_flush_ms(),
            log.recovery_point()
        ),
        (0, NOW + 5, 6)
    );
}

#[test]
fn failing_index_write_rolls_back_the_data_write() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let cfg = LogConfig {
        index_interval_bytes: 0,
        ..small_config()
    };
    let mut log =
        PartitionLog::open_with_fs(dir.path(), cfg.clone(), true, NOW, Arc::new(fs.clone()))
            .unwrap();
    append(&mut log).unwrap();
    fs.target_suffix(".index");
    fs.tear_next_write(3);
    assert!(append(&mut log).is_err());
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(append(&mut log).unwrap().first_offset, 3);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), cfg, true, NOW).unwrap();
    assert_eq!(batch_ranges(&read_all(&log, 0)), vec![(0, 2), (3, 5)]);
}
