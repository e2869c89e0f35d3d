//! Unit tests of a single segment.

use super::*;
use crate::io::StdFileSystem;
use crate::test_batch::plain;
use strom_protocol::records::{set_base_offset, validate_batch};

fn fs() -> Arc<dyn FileSystem> {
    Arc::new(StdFileSystem)
}

fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

/// Appends `count` batches of two records each to a new segment at `base`.
fn segment_with(dir: &Path, base: i64, count: usize) -> Segment {
    let mut s = Segment::create(&fs(), dir, base, &config()).unwrap();
    for i in 0..count {
        let mut b = plain(2, 40, i as i64);
        set_base_offset(&mut b, base + 2 * i as i64);
        let h = validate_batch(&b).unwrap();
        s.append(&b, &[h], 0).unwrap();
    }
    s
}

#[test]
fn find_batch_returns_the_batch_containing_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let s = segment_with(dir.path(), 100, 10);
    for offset in 100..120 {
        let (_, h) = s.find_batch(offset).unwrap().unwrap();
        assert!(h.base_offset <= offset && offset <= h.last_offset());
    }
    assert!(s.find_batch(120).unwrap().is_none());
    assert_eq!(s.next_offset(), 120);
}

#[test]
fn recovery_cuts_a_partial_batch_and_rebuilds_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let s = segment_with(dir.path(), 0, 10);
    let size = s.size();
    drop(s);
    let path = offset_file(dir.path(), 0, LOG_EXT);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(size - 5)
        .unwrap();
    let (s, t) = Segment::open(&fs(), dir.path(), 0, &config(), true, 0).unwrap();
    let t = t.unwrap();
    assert_eq!(t.next_offset, 18);
    assert_eq!(s.next_offset(), 18);
    assert_eq!(s.size(), t.position);
    assert!(s.find_batch(17).unwrap().is_some());
}

#[test]
fn truncate_to_removes_the_containing_batch_and_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = segment_with(dir.path(), 0, 10);
    s.truncate_to(9).unwrap();
    assert_eq!(s.next_offset(), 8);
    assert_eq!(s.max_timestamp(), Some((3, 6)));
    drop(s);
    let (s, _) = Segment::open(&fs(), dir.path(), 0, &config(), false, 0).unwrap();
    assert_eq!(s.next_offset(), 8);
}

#[test]
fn should_roll_on_bytes_time_and_offset_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let s = segment_with(dir.path(), 0, 1);
    let cfg = LogConfig {
        segment_bytes: s.size() + 10,
        segment_ms: 100,
        ..config()
    };
    assert!(!s.should_roll(&cfg, 10, 5, 50));
    assert!(s.should_roll(&cfg, 11, 5, 50));
    assert!(s.should_roll(&cfg, 1, 5, 101));
    assert!(s.should_roll(&cfg, 1, i64::from(i32::MAX) + 1, 50));
}
