//! Crash safety of the cleaner's segment swap: a crash after any step leaves a
//! log that, reopened, reads exactly as before or exactly as after the clean.
mod common;

use std::path::Path;

use common::compact::*;
use common::*;
use strom_storage::{CleanerConfig, LogConfig, PartitionLog, SwapStep};

const ALL_STEPS: [SwapStep; 6] = [
    SwapStep::CleanedWritten,
    SwapStep::ManifestWritten,
    SwapStep::RenamedToSwap,
    SwapStep::FirstOriginalDeleted,
    SwapStep::OriginalsDeleted,
    SwapStep::SwapRenamed,
];

/// Whether the clean is committed once the step is done.
fn committed(step: SwapStep) -> bool {
    !matches!(step, SwapStep::CleanedWritten | SwapStep::ManifestWritten)
}

/// S0 [a1] S1 [b1] S2 [b2 a2] S3 [c1] active [z1], with `segment.bytes` set
/// so that the first cleaning group is S0+S1 and S1 — the group's last member —
/// loses all its records (the case Kafka's offset-range rule misses).
fn build(dir: &Path) -> (PartitionLog, LogConfig) {
    let mut log = open(dir, compact_config());
    let mut sizes = Vec::new();
    for records in [
        &[("a", Some("a1"))][..],
        &[("b", Some("b1"))],
        &[("b", Some("b2")), ("a", Some("a2"))],
        &[("c", Some("c1"))],
    ] {
        let before = log.size_bytes();
        append_kv(&mut log, records);
        sizes.push(log.size_bytes() - before);
        log.roll().unwrap();
    }
    append_kv(&mut log, &[("z", Some("z1"))]);
    assert!(sizes[1] + sizes[2] > sizes[0] + sizes[1]);
    let config = LogConfig {
        segment_bytes: sizes[0] + sizes[1],
        ..compact_config()
    };
    log.set_config(config.clone()).unwrap();
    (log, config)
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap") || n == "cleaner-swap")
        .collect()
}

/// `(records before, records after)` of a full clean of the test log.
fn reference() -> (Vec<Seen>, Vec<Seen>) {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = build(dir.path());
    let before = read_records(&log);
    let outcome = log.clean(NOW).unwrap();
    assert_eq!(outcome.records_removed, 2);
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 4, 5]);
    (before, read_records(&log))
}

/// Crashes the first group's swap after `step`; returns the directory.
fn crash_after(step: SwapStep) -> (tempfile::TempDir, LogConfig) {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, config) = build(dir.path());
    let hook = CleanerConfig {
        crash_after: Some(step),
        ..CleanerConfig::default()
    };
    assert!(log.clean_with(NOW, &hook).is_err());
    assert!(log.is_offline());
    drop(log);
    (dir, config)
}

#[test]
fn a_crash_after_each_swap_step_reopens_to_the_log_before_or_after_the_clean() {
    let (before, after) = reference();
    assert_ne!(before, after);
    for step in ALL_STEPS {
        for clean_shutdown in [false, true] {
            let (dir, config) = crash_after(step);
            let mut log =
                PartitionLog::open(dir.path(), config.clone(), clean_shutdown, NOW).unwrap();
            let expected = if committed(step) { &after } else { &before };
            assert_eq!(
                &read_records(&log),
                expected,
                "{step:?} clean_shutdown={clean_shutdown}"
            );
            assert!(
                leftovers(dir.path()).is_empty(),
                "{step:?}: {:?}",
                leftovers(dir.path())
            );
            assert_eq!(log.log_end_offset(), 6);

            // The log works normally afterwards: a new clean converges.
            log.clean(NOW).unwrap();
            assert_eq!(read_records(&log), after, "{step:?} after a second clean");
            let info = append_kv(&mut log, &[("d", Some("d1"))]);
            assert_eq!(info.first_offset, 6);
            drop(log);
            assert_eq!(
                read_records(&reopen_unclean(dir.path(), config)).len(),
                after.len() + 1
            );
        }
    }
}

#[test]
fn an_index_renamed_to_swap_before_its_log_is_rolled_back() {
    let (before, _) = reference();
    let (dir, config) = crash_after(SwapStep::ManifestWritten);
    // Mid step 3: the offset index reached `.swap`, the log did not.
    let base = dir.path().join("00000000000000000000.index");
    let mut cleaned = base.clone().into_os_string();
    cleaned.push(".cleaned");
    let mut swap = base.into_os_string();
    swap.push(".swap");
    std::fs::rename(&cleaned, &swap).unwrap();
    let log = reopen_unclean(dir.path(), config);
    assert_eq!(read_records(&log), before);
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_swap_half_renamed_into_place_is_completed() {
    let (_, after) = reference();
    let (dir, config) = crash_after(SwapStep::OriginalsDeleted);
    // Mid step 5: the indexes are in place, the log is still `.swap`.
    for ext in ["index", "timeindex"] {
        let target = dir.path().join(format!("00000000000000000000.{ext}"));
        let mut swap = target.clone().into_os_string();
        swap.push(".swap");
        std::fs::rename(&swap, &target).unwrap();
    }
    let log = reopen_unclean(dir.path(), config);
    assert_eq!(read_records(&log), after);
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_stale_manifest_without_swap_files_is_ignored() {
    let (before, _) = reference();
    let dir = tempfile::tempdir().unwrap();
    let (log, config) = build(dir.path());
    drop(log);
    // A manifest naming a range that no swap file backs must not delete anything.
    std::fs::write(dir.path().join("cleaner-swap"), "0\n0\n5\n").unwrap();
    let log = reopen_unclean(dir.path(), config);
    assert_eq!(read_records(&log), before);
    assert!(leftovers(dir.path()).is_empty());
}
