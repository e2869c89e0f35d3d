//! Log compaction: what the cleaner keeps, removes and rewrites.
mod common;

use bytes::Bytes;
use common::compact::*;
use common::*;
use strom_protocol::records::{BatchIter, Compression, RecordBatchBuilder};
use strom_storage::{AppendError, CleanerConfig, LogConfig, PartitionLog, ENTRY_OVERHEAD_BYTES};

fn triple(offset: i64, key: &str, value: Option<&str>) -> (i64, String, Option<String>) {
    (offset, key.to_string(), value.map(str::to_string))
}

/// Offsets 0..=5 over two sealed segments, then an active segment at 6.
fn three_segment_log(dir: &std::path::Path) -> PartitionLog {
    let mut log = open(dir, compact_config());
    append_kv(&mut log, &[("a", Some("a1")), ("b", Some("b1"))]); // 0, 1
    append_kv(&mut log, &[("c", Some("c1"))]); // 2
    log.roll().unwrap();
    append_kv(&mut log, &[("a", Some("a2")), ("c", Some("c2"))]); // 3, 4
    append_kv(&mut log, &[("d", Some("d1"))]); // 5
    log.roll().unwrap();
    append_kv(&mut log, &[("a", Some("a3")), ("a", Some("a4"))]); // 6, 7 (active)
    log
}

#[test]
fn latest_value_per_key_is_kept_and_readable_from_the_start_with_unchanged_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = three_segment_log(dir.path());
    let before = read_records(&log);
    let outcome = log.clean(NOW).unwrap();
    assert_eq!(outcome.records_removed, 2, "a1 and c1 are superseded");
    assert_eq!(outcome.segments_cleaned, 2);
    assert!(outcome.bytes_after < outcome.bytes_before);
    assert_eq!(outcome.cleaned_up_to, 6);
    assert_eq!(
        kvs(&read_records(&log)),
        vec![
            triple(1, "b", Some("b1")),
            triple(3, "a", Some("a2")),
            triple(4, "c", Some("c2")),
            triple(5, "d", Some("d1")),
            triple(6, "a", Some("a3")),
            triple(7, "a", Some("a4")),
        ]
    );
    // Timestamps survive the rewrite.
    for seen in read_records(&log) {
        let original = before.iter().find(|b| b.offset == seen.offset).unwrap();
        assert_eq!(seen.timestamp, original.timestamp);
    }
    assert_eq!(log.log_end_offset(), 8);
    let info = append_kv(&mut log, &[("e", Some("e1"))]);
    assert_eq!(info.first_offset, 8);

    // The cleaned log reads the same after a clean and an unclean reopen.
    let expected = read_records(&log);
    log.close().unwrap();
    assert_eq!(read_records(&open(dir.path(), compact_config())), expected);
    assert_eq!(
        read_records(&reopen_unclean(dir.path(), compact_config())),
        expected
    );
}

#[test]
fn the_active_segment_is_never_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    append_kv(&mut log, &[("a", Some("1")), ("a", Some("2"))]);
    append_kv(&mut log, &[("a", Some("3"))]);
    let before = read_batches(&log);
    let outcome = log.clean(NOW).unwrap();
    assert_eq!(outcome.segments_cleaned, 0);
    assert_eq!(outcome.records_removed, 0);
    assert_eq!(read_batches(&log), before, "active segment bytes unchanged");

    // Once rolled, the same records are cleanable, but the new active one is not.
    log.roll().unwrap();
    append_kv(&mut log, &[("a", Some("4")), ("a", Some("5"))]);
    let outcome = log.clean(NOW).unwrap();
    assert_eq!(outcome.records_removed, 2);
    assert_eq!(
        kvs(&read_records(&log)),
        vec![
            triple(2, "a", Some("3")),
            triple(3, "a", Some("4")),
            triple(4, "a", Some("5")),
        ]
    );
}

#[test]
fn tombstones_are_kept_until_delete_retention_ms_after_the_first_clean_then_removed() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: DAY,
        ..compact_config()
    };
    let mut log = open(dir.path(), config);
    append_kv(&mut log, &[("a", Some("a1")), ("b", Some("b1"))]); // 0, 1
    append_kv(&mut log, &[("a", None)]); // 2: delete a
    log.roll().unwrap();
    append_kv(&mut log, &[("z", Some("z1"))]); // 3 (active)

    let first = log.clean(NOW).unwrap();
    assert_eq!(
        first.records_removed, 1,
        "a1 is superseded by the tombstone"
    );
    assert_eq!(first.tombstones_removed, 0);
    assert_eq!(
        kvs(&read_records(&log)),
        vec![
            triple(1, "b", Some("b1")),
            triple(2, "a", None),
            triple(3, "z", Some("z1"))
        ]
    );
    // The tombstone's batch now carries the delete horizon (KIP-534).
    let bytes = read_batches(&log);
    let tomb = BatchIter::new(&bytes)
        .map(|b| b.unwrap().0)
        .find(|h| h.base_offset == 2)
        .unwrap();
    assert!(tomb.has_delete_horizon());
    assert_eq!(tomb.base_timestamp, NOW + DAY);
    let info = log.cleanable(NOW).unwrap().unwrap();
    assert!(!info.delete_horizon_passed);
    assert!(
        log.cleanable(NOW + DAY)
            .unwrap()
            .unwrap()
            .delete_horizon_passed
    );

    // Just before the horizon the tombstone stays; at the horizon it goes.
    let early = log.clean(NOW + DAY - 1).unwrap();
    assert_eq!(early.tombstones_removed, 0);
    assert!(read_records(&log).iter().any(|r| r.offset == 2));
    let late = log.clean(NOW + DAY).unwrap();
    assert_eq!(late.tombstones_removed, 1);
    assert_eq!(late.records_removed, 1);
    assert_eq!(
        kvs(&read_records(&log)),
        vec![triple(1, "b", Some("b1")), triple(3, "z", Some("z1"))]
    );
    assert!(
        !log.cleanable(NOW + DAY)
            .unwrap()
            .unwrap()
            .delete_horizon_passed
    );
}

#[test]
fn a_tombstone_keeps_its_record_timestamp_after_the_horizon_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    let mut b = kv_batch(&[("a", Some("1")), ("a", None)], 5_000, Compression::None);
    log.append(&mut b, 0, None, NOW).unwrap();
    log.roll().unwrap();
    append_kv(&mut log, &[("x", Some("1"))]);
    log.clean(NOW).unwrap();
    let seen = read_records(&log);
    assert_eq!(seen[0].offset, 1);
    assert_eq!(seen[0].value, None);
    assert_eq!(seen[0].timestamp, 5_001);
}

#[test]
fn a_keyless_record_on_a_compacted_topic_is_rejected_as_invalid_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    let mut builder = RecordBatchBuilder::new(Compression::Lz4);
    builder.push(
        NOW,
        Some(Bytes::from_static(b"k")),
        Some(Bytes::from_static(b"v")),
        vec![],
    );
    builder.push(NOW, None, Some(Bytes::from_static(b"no key")), vec![]);
    let mut keyless = builder.build().unwrap().to_vec();
    let err = log.append(&mut keyless, 0, None, NOW).unwrap_err();
    assert!(matches!(err, AppendError::InvalidRecord(_)), "{err:?}");
    assert_eq!(log.log_end_offset(), 0);
    append_kv(&mut log, &[("k", Some("v"))]);
    assert_eq!(log.log_end_offset(), 1);

    // A delete-only topic takes keyless records.
    let other = tempfile::tempdir().unwrap();
    let mut plain_log = open(other.path(), LogConfig::default());
    let mut keyless = common::batch::plain(2, 10, NOW);
    plain_log.append(&mut keyless, 0, None, NOW).unwrap();
}

#[test]
fn compressed_batches_are_compacted_with_their_codec_kept() {
    for codec in Compression::ALL {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compact_config());
        let mut b = kv_batch(
            &[
                ("a", Some("1")),
                ("b", Some("1")),
                ("a", Some("2")),
                ("c", Some("1")),
            ],
            NOW,
            codec,
        );
        log.append(&mut b, 0, None, NOW).unwrap();
        let mut b = kv_batch(&[("c", Some("2"))], NOW, codec);
        log.append(&mut b, 0, None, NOW).unwrap();
        log.roll().unwrap();
        append_kv(&mut log, &[("x", Some("1"))]);
        let outcome = log.clean(NOW).unwrap();
        assert_eq!(outcome.records_removed, 2, "{codec:?}");
        let bytes = read_batches(&log);
        let first = BatchIter::new(&bytes).next().unwrap().unwrap().0;
        assert_eq!(first.compression().unwrap(), codec);
        assert_eq!(first.base_offset, 0);
        assert_eq!(
            first.last_offset_delta, 3,
            "the batch keeps its offset range"
        );
        assert_eq!(first.records_count, 2);
        assert_eq!(
            kvs(&read_records(&log)),
            vec![
                triple(1, "b", Some("1")),
                triple(2, "a", Some("2")),
                triple(4, "c", Some("2")),
                triple(5, "x", Some("1")),
            ],
            "{codec:?}"
        );
    }
}

fn producer_batch(pid: i64, seq: i32, records: &[Kv]) -> Vec<u8> {
    kv_batch_with(
        RecordBatchBuilder::new(Compression::None).producer(pid, 0, seq),
        records,
        NOW,
    )
}

#[test]
fn the_last_batch_of_a_producer_is_retained_empty_and_earlier_ones_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    let mut b = producer_batch(7, 0, &[("a", Some("1"))]); // 0
    log.append(&mut b, 0, None, NOW).unwrap();
    let mut b = producer_batch(7, 1, &[("b", Some("1")), ("a", Some("2"))]); // 1, 2
    log.append(&mut b, 0, None, NOW).unwrap();
    append_kv(&mut log, &[("a", Some("3")), ("b", Some("2"))]); // 3, 4 (no producer)
    log.roll().unwrap();
    append_kv(&mut log, &[("x", Some("1"))]); // 5

    let outcome = log.clean(NOW).unwrap();
    assert_eq!(outcome.records_removed, 3);
    let bytes = read_batches(&log);
    let headers: Vec<_> = BatchIter::new(&bytes).map(|b| b.unwrap().0).collect();
    assert_eq!(
        headers.len(),
        3,
        "first producer batch dropped: {headers:?}"
    );
    let empty = headers[0];
    assert_eq!((empty.base_offset, empty.last_offset()), (1, 2));
    assert_eq!(empty.records_count, 0);
    assert_eq!((empty.producer_id, empty.base_sequence), (7, 1));
    assert_eq!(
        kvs(&read_records(&log)),
        vec![
            triple(3, "a", Some("3")),
            triple(4, "b", Some("2")),
            triple(5, "x", Some("1"))
        ]
    );

    // Producer state rebuilt from the log alone still knows sequence 2 was last.
    drop(log);
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let mut log = reopen_unclean(dir.path(), compact_config());
    assert_eq!(log.producer_state(7).unwrap().last_seq(), 2);
    let mut gap = producer_batch(7, 4, &[("a", Some("4"))]);
    assert!(matches!(
        log.append(&mut gap, 0, None, NOW),
        Err(AppendError::OutOfOrderSequence { .. })
    ));
    let mut next = producer_batch(7, 3, &[("a", Some("4"))]);
    log.append(&mut next, 0, None, NOW).unwrap();
}

#[test]
fn a_follower_accepts_batches_the_leader_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = three_segment_log(dir.path());
    let mut b = producer_batch(9, 0, &[("a", Some("x")), ("q", Some("1"))]);
    leader.append(&mut b, 0, None, NOW).unwrap();
    let mut b = producer_batch(9, 2, &[("q", Some("2"))]);
    leader.append(&mut b, 0, None, NOW).unwrap();
    leader.roll().unwrap();
    append_kv(&mut leader, &[("q", Some("3"))]);
    leader.clean(NOW).unwrap();
    let bytes = read_batches(&leader);
    assert!(BatchIter::new(&bytes).any(|b| {
        let h = b.unwrap().0;
        i64::from(h.records_count) < i64::from(h.last_offset_delta) + 1
    }));

    let fdir = tempfile::tempdir().unwrap();
    let mut follower = open(fdir.path(), compact_config());
    follower.append_as_follower(&bytes, NOW).unwrap();
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(read_records(&follower), read_records(&leader));
}

#[test]
fn small_segments_are_merged_into_the_first_ones_base_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    for i in 0..6 {
        append_kv(&mut log, &[("k", Some(&i.to_string())), ("j", Some("x"))]);
        log.roll().unwrap();
    }
    append_kv(&mut log, &[("z", Some("1"))]);
    assert_eq!(log.segment_count(), 7);
    let outcome = log.clean(NOW).unwrap();
    assert_eq!(outcome.segments_cleaned, 6);
    assert_eq!(log.segment_base_offsets(), vec![0, 12]);
    assert_eq!(
        kvs(&read_records(&log)),
        vec![
            triple(10, "k", Some("5")),
            triple(11, "j", Some("x")),
            triple(12, "z", Some("1"))
        ]
    );
    drop(log);
    let log = reopen_unclean(dir.path(), compact_config());
    assert_eq!(log.segment_base_offsets(), vec![0, 12]);
    assert_eq!(read_records(&log).len(), 3);
}

#[test]
fn a_dedupe_buffer_too_small_for_the_dirty_keys_cleans_only_the_prefix_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    for round in 0..2 {
        for k in ["a", "b", "c", "d"] {
            let v = format!("{k}{round}");
            append_kv(&mut log, &[(k, Some(&v))]);
        }
        log.roll().unwrap();
    }
    append_kv(&mut log, &[("z", Some("1"))]); // 8, active
                                              // Room for two keys of one byte.
    let small = CleanerConfig {
        dedupe_buffer_bytes: 2 * (1 + ENTRY_OVERHEAD_BYTES),
        ..CleanerConfig::default()
    };
    let first = log.clean_with(NOW, &small).unwrap();
    assert!(first.map_full);
    assert_eq!(first.keys_mapped, 2);
    assert_eq!(
        first.cleaned_up_to, 2,
        "offset of the first key that did not fit"
    );
    assert_eq!(
        first.records_removed, 0,
        "a and b have no newer record below 2"
    );
    let second = log.clean_with(NOW, &small).unwrap();
    assert_eq!(second.cleaned_up_to, 4);
    assert_eq!(second.records_removed, 0);
    // The next passes map a and b again (offsets 4, 5) and then c and d.
    let mut total = 0;
    for _ in 0..4 {
        total += log.clean_with(NOW, &small).unwrap().records_removed;
    }
    assert_eq!(total, 4);
    assert_eq!(
        kvs(&read_records(&log)),
        vec![
            triple(4, "a", Some("a1")),
            triple(5, "b", Some("b1")),
            triple(6, "c", Some("c1")),
            triple(7, "d", Some("d1")),
            triple(8, "z", Some("1")),
        ]
    );
    let info = log.cleanable(NOW).unwrap().unwrap();
    assert_eq!(info.first_dirty_offset, 8);
    assert_eq!(info.dirty_bytes, 0);
}

#[test]
fn segments_younger_than_min_compaction_lag_are_not_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_compaction_lag_ms: 60_000,
        ..compact_config()
    };
    let mut log = open(dir.path(), config);
    let mut b = kv_batch(
        &[("a", Some("1")), ("a", Some("2"))],
        NOW - 120_000,
        Compression::None,
    );
    log.append(&mut b, 0, None, NOW).unwrap();
    log.roll().unwrap();
    let mut b = kv_batch(
        &[("a", Some("3")), ("a", Some("4"))],
        NOW - 1_000,
        Compression::None,
    );
    log.append(&mut b, 0, None, NOW).unwrap();
    log.roll().unwrap();
    append_kv(&mut log, &[("z", Some("1"))]);

    let info = log.cleanable(NOW).unwrap().unwrap();
    assert_eq!(info.first_uncleanable_offset, 2);
    let outcome = log.clean(NOW).unwrap();
    assert_eq!(
        outcome.records_removed, 1,
        "only the old segment is cleaned"
    );
    assert_eq!(
        read_records(&log)
            .iter()
            .map(|r| r.offset)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    // A minute later the second segment is old enough.
    let outcome = log.clean(NOW + 60_000).unwrap();
    assert_eq!(outcome.records_removed, 2);
    assert_eq!(
        read_records(&log)
            .iter()
            .map(|r| r.offset)
            .collect::<Vec<_>>(),
        vec![3, 4]
    );
}

#[test]
fn dirty_ratio_and_max_compaction_lag_decide_whether_a_log_needs_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    assert!(!log.cleanable(NOW).unwrap().unwrap().needs_cleaning(0.5));
    append_kv(&mut log, &[("a", Some("1"))]);
    log.roll().unwrap();
    let info = log.cleanable(NOW).unwrap().unwrap();
    assert_eq!(info.dirty_ratio(), 1.0);
    assert!(info.needs_cleaning(0.5));
    log.clean(NOW).unwrap();
    let info = log.cleanable(NOW).unwrap().unwrap();
    assert_eq!(info.dirty_bytes, 0);
    assert!(info.clean_bytes > 0);
    assert!(!info.needs_cleaning(0.5));

    // A little dirty data: below the ratio until it is older than the max lag.
    let mut b = kv_batch(&[("b", Some("1"))], NOW, Compression::None);
    log.append(&mut b, 0, None, NOW).unwrap();
    for i in 0..5 {
        append_kv(&mut log, &[("c", Some(&i.to_string()))]);
    }
    log.roll().unwrap();
    log.set_config(LogConfig {
        max_compaction_lag_ms: 10_000,
        ..compact_config()
    })
    .unwrap();
    let info = log.cleanable(NOW).unwrap().unwrap();
    assert!(info.dirty_ratio() > 0.0 && !info.needs_cleaning(0.99));
    let info = log.cleanable(NOW + 10_001).unwrap().unwrap();
    assert!(info.max_compaction_lag_exceeded && info.needs_cleaning(0.99));

    // A delete-only log is never cleaned.
    let other = tempfile::tempdir().unwrap();
    let mut plain_log = open(other.path(), LogConfig::default());
    append_plain(&mut plain_log, 1, 1, NOW);
    assert!(plain_log.cleanable(NOW).unwrap().is_none());
    assert_eq!(plain_log.clean(NOW).unwrap().segments_cleaned, 0);
}

#[test]
fn compact_delete_honours_retention_and_compact_alone_does_not() {
    const HOUR: i64 = 3_600_000;
    for (delete, expect_deleted) in [(true, 1), (false, 0)] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_ms: HOUR,
            cleanup_policy_delete: delete,
            ..compact_config()
        };
        let mut log = open(dir.path(), config);
        let mut old = kv_batch(&[("a", Some("1"))], NOW - 2 * HOUR, Compression::None);
        log.append(&mut old, 0, None, NOW).unwrap();
        log.roll().unwrap();
        append_kv(&mut log, &[("b", Some("1"))]);
        let outcome = log.apply_retention(NOW, log.log_end_offset()).unwrap();
        assert_eq!(outcome.deleted_segments, expect_deleted, "delete={delete}");
        assert_eq!(log.log_start_offset(), expect_deleted as i64);
        // Compaction runs under both policies.
        log.clean(NOW).unwrap();
    }
}

#[test]
fn the_first_dirty_offset_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = three_segment_log(dir.path());
    log.clean(NOW).unwrap();
    log.close().unwrap();
    let log = open(dir.path(), compact_config());
    let info = log.cleanable(NOW).unwrap().unwrap();
    assert_eq!(info.first_dirty_offset, 6);
    assert_eq!(info.dirty_bytes, 0);
}
