//! Follower appends (replication): batches are stored exactly as the leader
//! has them, and the epoch cache and producer state follow.
mod common;

use common::batch::Spec;
use common::*;
use strom_storage::{AppendError, LogConfig, PartitionLog};

#[test]
fn partition_log_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PartitionLog>();
}

#[test]
fn follower_copy_is_byte_identical_with_the_same_epochs_and_producer_state() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1500,
        ..LogConfig::default()
    };
    let mut leader = open(leader_dir.path(), cfg.clone());
    for (i, epoch) in [1, 1, 2, 2, 2, 5].into_iter().enumerate() {
        let mut b = Spec::idempotent(7, 0, 3 * i as i32, 3, NOW).build();
        leader.append(&mut b, epoch, None, NOW).unwrap();
        let mut b = common::batch::plain(2, 200, NOW);
        leader.append(&mut b, epoch, None, NOW).unwrap();
    }
    let mut follower = open(follower_dir.path(), cfg.clone());
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let r = leader.read(offset, 700, i64::MAX, true).unwrap();
        follower.append_as_follower(&r.records, NOW).unwrap();
        offset = r.next_offset;
    }
    assert_eq!(read_all(&follower, 0), read_all(&leader, 0));
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(follower.producer_state(7), leader.producer_state(7));
    // Already-present offsets are refused.
    let again = leader.read(0, 700, i64::MAX, true).unwrap();
    assert!(matches!(
        follower.append_as_follower(&again.records, NOW),
        Err(AppendError::InvalidRecord(_))
    ));
    drop(follower);
    let follower = reopen_unclean(follower_dir.path(), cfg);
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(follower.producer_state(7), leader.producer_state(7));
}

#[test]
fn follower_truncates_to_epoch_end_offset_then_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    for epoch in [1, 1, 2] {
        let mut b = common::batch::plain(2, 10, NOW);
        log.append(&mut b, epoch, None, NOW).unwrap();
    }
    // The new leader says epoch 1 ended at offset 4: everything after goes.
    let (epoch, end) = log.epoch_end_offset(1).unwrap();
    assert_eq!((epoch, end), (1, 4));
    log.truncate_to(end).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.latest_epoch(), Some(1));
}
