//! Append and read: offsets, stamping, read limits, round trips.
mod common;

use common::batch::{self, Spec};
use common::*;
use proptest::prelude::*;
use strom_protocol::records::{validate_batch, BatchHeader, TimestampType};
use strom_storage::{AppendError, LogConfig, ReadError};

#[test]
fn offsets_are_dense_across_appends_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let a = append_plain(&mut log, 3, 10, 5);
    assert_eq!((a.first_offset, a.last_offset, a.records), (0, 2, 3));
    let mut two = batch::plain(2, 10, 6);
    two.extend(batch::plain(4, 10, 7));
    let b = log.append(&mut two, 0, None, NOW).unwrap();
    assert_eq!((b.first_offset, b.last_offset, b.records), (3, 8, 6));
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(
        batch_ranges(&read_all(&log, 0)),
        vec![(0, 2), (3, 4), (5, 8)]
    );
}

#[test]
fn stored_batch_is_byte_identical_except_broker_owned_fields() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append_plain(&mut log, 1, 1, 1);
    let original = batch::plain(5, 33, 1234);
    let mut sent = original.clone();
    log.append(&mut sent, 7, None, NOW).unwrap();
    let stored = log.read(1, 1 << 20, i64::MAX, true).unwrap().records;
    assert_eq!(&stored[..], &sent[..]);
    let h = validate_batch(&stored).unwrap();
    assert_eq!((h.base_offset, h.partition_leader_epoch), (1, 7));
    assert_eq!(
        &stored[16..],
        &original[16..],
        "only base offset and epoch change"
    );
}

#[test]
fn log_append_time_is_stamped_with_valid_crc() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let mut b = batch::plain(3, 5, 10);
    let info = log.append(&mut b, 0, Some(99_999), NOW).unwrap();
    assert_eq!(
        (info.log_append_time_ms, info.max_timestamp),
        (99_999, 99_999)
    );
    let stored = log.read(0, 1 << 20, i64::MAX, true).unwrap().records;
    let h = validate_batch(&stored).unwrap();
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(h.max_timestamp, 99_999);
}

#[test]
fn corrupt_crc_is_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let mut b = batch::plain(3, 5, 10);
    let last = b.len() - 1;
    b[last] ^= 1;
    assert!(matches!(
        log.append(&mut b, 0, None, NOW),
        Err(AppendError::Corrupt(_))
    ));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn trailing_partial_batch_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let mut b = batch::plain(3, 5, 10);
    b.extend_from_slice(&batch::plain(1, 5, 10)[..30]);
    assert!(matches!(
        log.append(&mut b, 0, None, NOW),
        Err(AppendError::Corrupt(_))
    ));
    assert!(matches!(
        log.append(&mut [], 0, None, NOW),
        Err(AppendError::InvalidRecord(_))
    ));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn request_larger_than_a_segment_is_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let mut b = batch::plain(1, 5000, 10);
    assert!(matches!(
        log.append(&mut b, 0, None, NOW),
        Err(AppendError::RecordBatchTooLarge { .. })
    ));
}

#[test]
fn read_at_log_end_is_empty_and_beyond_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append_plain(&mut log, 2, 5, 1);
    let r = log.read(2, 1000, i64::MAX, true).unwrap();
    assert!(r.records.is_empty());
    assert_eq!(r.next_offset, 2);
    assert!(matches!(
        log.read(3, 1000, i64::MAX, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read(-1, 1000, i64::MAX, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn read_stops_before_batches_reaching_the_upper_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append_plain(&mut log, 2, 5, 1); // 0..=1
    append_plain(&mut log, 2, 5, 1); // 2..=3
    append_plain(&mut log, 2, 5, 1); // 4..=5
    let r = log.read(0, 1 << 20, 3, true).unwrap();
    assert_eq!(batch_ranges(&r.records), vec![(0, 1)]);
    assert_eq!(r.next_offset, 2);
    let r = log.read(0, 1 << 20, 4, true).unwrap();
    assert_eq!(batch_ranges(&r.records), vec![(0, 1), (2, 3)]);
    assert!(log.read(2, 1 << 20, 2, true).unwrap().records.is_empty());
}

#[test]
fn max_bytes_limits_whole_batches_but_min_one_batch_returns_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let first = append_plain(&mut log, 1, 500, 1);
    append_plain(&mut log, 1, 500, 1);
    let one_len = log.read(0, 1 << 20, i64::MAX, true).unwrap().records.len() / 2;
    let r = log
        .read(first.first_offset, one_len + 10, i64::MAX, false)
        .unwrap();
    assert_eq!(batch_ranges(&r.records), vec![(0, 0)]);
    let r = log.read(0, 10, i64::MAX, false).unwrap();
    assert!(r.records.is_empty());
    let r = log.read(0, 10, i64::MAX, true).unwrap();
    assert_eq!(
        batch_ranges(&r.records),
        vec![(0, 0)],
        "KIP-74: first batch even if larger"
    );
}

#[test]
fn fetch_from_the_middle_of_a_batch_returns_that_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append_plain(&mut log, 10, 5, 1);
    append_plain(&mut log, 10, 5, 1);
    let r = log.read(14, 1 << 20, i64::MAX, true).unwrap();
    assert_eq!(batch_ranges(&r.records), vec![(10, 19)]);
}

#[test]
fn reads_work_from_inside_older_segments_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for _ in 0..60 {
        append_plain(&mut log, 3, 100, 1);
    }
    assert!(log.segment_count() > 3);
    let before = read_all(&log, 0);
    log.close().unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(read_all(&log, 0), before);
    for offset in [0, 1, 50, 99, 100, 177, 179] {
        let r = log.read(offset, 1 << 20, i64::MAX, true).unwrap();
        let ranges = batch_ranges(&r.records);
        assert!(
            ranges[0].0 <= offset && offset <= ranges[0].1,
            "offset {offset}: {ranges:?}"
        );
    }
}

fn arb_batches() -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((1usize..8, 0usize..700), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn reading_from_any_offset_returns_its_batch_and_everything_after(
        batches in arb_batches(),
        interval in 0u64..2048,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 8192, index_interval_bytes: interval, ..LogConfig::default() };
        let mut log = open(dir.path(), config.clone());
        let mut expected: Vec<(i64, i64, Vec<u8>)> = Vec::new();
        for (i, (n, len)) in batches.iter().enumerate() {
            let mut b = Spec::plain(*n, *len, i as i64).build();
            let info = log.append(&mut b, 1, None, NOW).unwrap();
            expected.push((info.first_offset, info.last_offset, b));
        }
        for reopen in [false, true] {
            if reopen {
                log.close().unwrap();
                log = open(dir.path(), config.clone());
            }
            for offset in 0..log.log_end_offset() {
                let got = read_all(&log, offset);
                let start = expected.iter().position(|(f, l, _)| *f <= offset && offset <= *l).unwrap();
                let want: Vec<u8> = expected[start..].iter().flat_map(|(_, _, b)| b.clone()).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}

#[test]
fn headers_of_stored_batches_parse() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append_plain(&mut log, 2, 5, 1);
    let r = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    assert_eq!(BatchHeader::parse(&r.records).unwrap().records_count, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// The fetch extent (computed from the end of the segment, the offset index
    /// and a few headers, never the batch bytes) matches a scan of every batch.
    #[test]
    fn fetch_extent_matches_a_scan_of_every_batch(
        batches in arb_batches(),
        interval in 0u64..2048,
        reads in proptest::collection::vec((0.0f64..1.0, 0usize..6000, 0.0f64..1.2, any::<bool>()), 1..20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { index_interval_bytes: interval, ..LogConfig::default() };
        let mut log = open(dir.path(), config);
        let mut stored: Vec<(i64, i64, usize)> = Vec::new();
        for (i, (n, len)) in batches.iter().enumerate() {
            let mut b = Spec::plain(*n, *len, i as i64).build();
            let info = log.append(&mut b, 1, None, NOW).unwrap();
            stored.push((info.first_offset, info.last_offset, b.len()));
        }
        let end = log.log_end_offset();
        for (at, max_bytes, bound, min_one) in reads {
            let offset = ((end as f64) * at) as i64;
            let upper_bound = ((end as f64) * bound) as i64;
            let first = stored.iter().position(|(f, l, _)| *f <= offset && offset <= *l).unwrap();
            let limit = if min_one { max_bytes.max(stored[first].2) } else { max_bytes };
            let (mut want_len, mut want_next, mut taken) = (0usize, offset, 0usize);
            for (_, last, len) in &stored[first..] {
                if *last >= upper_bound || want_len + len > limit {
                    break;
                }
                want_len += len;
                want_next = last + 1;
                taken += 1;
            }
            let slice = log.read_slice(offset, max_bytes, upper_bound, min_one).unwrap();
            prop_assert!(matches!(slice.records, strom_storage::LogSlice::File(_)) || slice.records.is_empty());
            prop_assert_eq!(slice.records.len(), want_len);
            prop_assert_eq!(slice.next_offset, want_next);
            let read = log.read(offset, max_bytes, upper_bound, min_one).unwrap();
            prop_assert_eq!(batch_ranges(&read.records).len(), taken);
        }
    }
}
