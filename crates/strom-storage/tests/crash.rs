//! Crash recovery: torn tails, corrupt bytes, lost or corrupt indexes.
mod common;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use common::*;
use strom_storage::LogConfig;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

fn segment_logs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Builds a log of several segments; returns `(position in last segment, last offset)`
/// of each batch in the last segment.
fn build_log(dir: &Path) -> Vec<(u64, i64, u64)> {
    let mut log = open(dir, config());
    for i in 0..40 {
        append_plain(&mut log, 1 + i % 4, 40 + i * 3, i as i64);
    }
    // The recovery point stays at 0 (never flushed), so every segment is recovered.
    let last_base = *log.segment_base_offsets().last().unwrap();
    let bytes = read_all(&log, last_base);
    drop(log); // no close(): an unclean stop
    let mut pos = 0u64;
    let mut out = Vec::new();
    for b in strom_protocol::records::BatchIter::new(&bytes) {
        let (h, r) = b.unwrap();
        out.push((pos, h.last_offset(), r.len() as u64));
        pos += r.len() as u64;
    }
    assert!(
        out.len() >= 3,
        "need at least three batches in the last segment"
    );
    out
}

#[test]
fn truncating_the_last_segment_at_every_byte_keeps_exactly_the_valid_prefix() {
    let template = tempfile::tempdir().unwrap();
    let batches = build_log(template.path());
    let n = batches.len();
    let (start, _, _) = batches[n - 2];
    let end = batches[n - 1].0 + batches[n - 1].2;
    let full = read_all(&open(template.path(), config()), 0);
    for cut in start..end {
        let dir = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(template.path()).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
        let last = segment_logs(dir.path()).pop().unwrap();
        OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .set_len(cut)
            .unwrap();

        let mut log = reopen_unclean(dir.path(), config());
        // The last whole batch before the cut decides the log end offset.
        let whole = batches
            .iter()
            .rev()
            .find(|(p, _, len)| p + len <= cut)
            .unwrap();
        assert_eq!(log.log_end_offset(), whole.1 + 1, "cut at {cut}");
        let kept = read_all(&log, 0);
        assert_eq!(
            &kept[..],
            &full[..kept.len()],
            "cut at {cut}: prefix differs"
        );
        assert_eq!(std::fs::metadata(&last).unwrap().len(), whole.0 + whole.2);

        let info = append_plain(&mut log, 2, 7, 1);
        assert_eq!(info.first_offset, whole.1 + 1, "appends continue densely");
        drop(log);
        let log = reopen_unclean(dir.path(), config());
        assert_eq!(log.log_end_offset(), whole.1 + 3);
    }
}

#[test]
fn corrupt_byte_in_a_middle_batch_truncates_from_that_batch_and_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    for i in 0..40 {
        append_plain(&mut log, 2, 60, i);
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4);
    drop(log);
    // Flip a byte in the value of the third batch of the second segment.
    let second = &segment_logs(dir.path())[1];
    let bytes = std::fs::read(second).unwrap();
    let ranges: Vec<_> = strom_protocol::records::BatchIter::new(&bytes)
        .map(|b| b.unwrap())
        .collect();
    let (victim, range) = &ranges[2];
    let mut corrupted = bytes.clone();
    corrupted[range.end - 3] ^= 0xff;
    std::fs::write(second, &corrupted).unwrap();

    let mut log = reopen_unclean(dir.path(), config());
    assert_eq!(log.log_end_offset(), victim.base_offset);
    assert_eq!(
        log.segment_count(),
        2,
        "segments after the corrupt one are deleted"
    );
    assert_eq!(segment_logs(dir.path()).len(), 2);
    assert_eq!(std::fs::metadata(second).unwrap().len(), range.start as u64);
    let info = append_plain(&mut log, 1, 1, 1);
    assert_eq!(info.first_offset, victim.base_offset);
}

#[test]
fn segments_below_the_recovery_point_are_not_rescanned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    for i in 0..30 {
        append_plain(&mut log, 2, 60, i);
    }
    log.flush(NOW).unwrap();
    let leo = log.log_end_offset();
    drop(log);
    // Corrupt a byte in the first segment's data: below the recovery point the
    // CRC is not checked on open (Kafka's rule), so nothing is truncated.
    let first = &segment_logs(dir.path())[0];
    let mut bytes = std::fs::read(first).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0xff;
    std::fs::write(first, &bytes).unwrap();
    let log = reopen_unclean(dir.path(), config());
    assert_eq!(log.log_end_offset(), leo);
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt_on_clean_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    for i in 0..30 {
        append_plain(&mut log, 2, 60, i);
    }
    let all = read_all(&log, 0);
    log.close().unwrap();
    let logs = segment_logs(dir.path());
    std::fs::remove_file(logs[0].with_extension("index")).unwrap();
    std::fs::write(logs[1].with_extension("index"), [0xffu8; 13]).unwrap();
    std::fs::write(logs[2].with_extension("timeindex"), [0x01u8; 24]).unwrap();
    let log = open(dir.path(), config());
    assert_eq!(read_all(&log, 0), all);
    for offset in 0..log.log_end_offset() {
        let r = log.read(offset, 100, i64::MAX, true).unwrap();
        let (b, l) = batch_ranges(&r.records)[0];
        assert!(b <= offset && offset <= l);
    }
    assert!(
        std::fs::metadata(logs[0].with_extension("index"))
            .unwrap()
            .len()
            > 0,
        "rebuilt on disk"
    );
}

#[test]
fn index_entries_beyond_a_truncated_log_trigger_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 64,
            ..LogConfig::default()
        },
    );
    for i in 0..20 {
        append_plain(&mut log, 1, 100, i);
    }
    log.close().unwrap();
    let seg = &segment_logs(dir.path())[0];
    let len = std::fs::metadata(seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(seg)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    // Even a "clean" open notices the index points past the file and recovers.
    let log = open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 64,
            ..LogConfig::default()
        },
    );
    assert!(log.log_end_offset() < 20);
    assert!(!read_all(&log, 0).is_empty());
}

#[test]
fn garbage_checkpoint_files_do_not_prevent_opening() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    for i in 0..10 {
        append_plain(&mut log, 2, 60, i);
    }
    log.close().unwrap();
    for f in [
        "recovery-point",
        "log-start-offset",
        "leader-epoch-checkpoint",
    ] {
        std::fs::write(dir.path().join(f), b"\xff\xfe garbage").unwrap();
    }
    std::fs::write(dir.path().join("00000000000000000020.snapshot"), b"junk").unwrap();
    let log = reopen_unclean(dir.path(), config());
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(log.latest_epoch(), Some(0));
}

#[test]
fn garbage_segment_file_is_truncated_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("00000000000000000000.log"),
        vec![0xabu8; 5000],
    )
    .unwrap();
    std::fs::write(
        dir.path().join("00000000000000000000.index"),
        vec![0xabu8; 80],
    )
    .unwrap();
    let log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 0);
    drop(log);
    let mut log = reopen_unclean(dir.path(), config());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(append_plain(&mut log, 1, 1, 1).first_offset, 0);
}
