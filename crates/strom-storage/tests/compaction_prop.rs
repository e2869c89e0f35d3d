//! Property: after cleaning, the log reads exactly the last record per key of
//! the non-active segments plus everything in the active segment, in offset
//! order — whatever the key/value/tombstone stream, segment layout, codecs and
//! dedupe-buffer size.
mod common;

use std::collections::HashMap;

use common::compact::*;
use common::*;
use proptest::prelude::*;
use strom_protocol::records::Compression;
use strom_storage::{CleanerConfig, ENTRY_OVERHEAD_BYTES};

#[derive(Clone, Debug)]
enum Op {
    /// One batch: `(key index, value)`, `None` = tombstone.
    Append(Vec<(u8, Option<u16>)>, Compression),
    Roll,
}

fn op() -> impl Strategy<Value = Op> {
    let record = (0u8..6, prop::option::weighted(0.8, any::<u16>()));
    let codec = prop::sample::select(Compression::ALL.to_vec());
    prop_oneof![
        4 => (prop::collection::vec(record, 1..5), codec).prop_map(|(r, c)| Op::Append(r, c)),
        1 => Just(Op::Roll),
    ]
}

type Triple = (i64, String, Option<String>);

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn cleaning_keeps_the_last_record_per_key_below_the_active_segment_and_all_of_it(
        ops in prop::collection::vec(op(), 1..30),
        map_keys in prop::option::of(1usize..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compact_config());
        let mut appended: Vec<Triple> = Vec::new();
        for op in &ops {
            match op {
                Op::Roll => log.roll().unwrap(),
                Op::Append(records, codec) => {
                    let owned: Vec<(String, Option<String>)> = records
                        .iter()
                        .map(|(k, v)| (format!("key{k}"), v.map(|v| v.to_string())))
                        .collect();
                    let kv: Vec<Kv> = owned.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
                    let mut b = kv_batch(&kv, NOW, *codec);
                    let info = log.append(&mut b, 0, None, NOW).unwrap();
                    for (i, (k, v)) in owned.into_iter().enumerate() {
                        appended.push((info.first_offset + i as i64, k, v));
                    }
                }
            }
        }
        let active_base = *log.segment_base_offsets().last().unwrap();
        let mut last: HashMap<&str, i64> = HashMap::new();
        for (offset, key, _) in appended.iter().filter(|t| t.0 < active_base) {
            last.insert(key, *offset);
        }
        let expected: Vec<Triple> = appended
            .iter()
            .filter(|(o, k, _)| *o >= active_base || last[k.as_str()] == *o)
            .cloned()
            .collect();

        // A small dedupe buffer needs several passes; the result is the same.
        let config = CleanerConfig {
            dedupe_buffer_bytes: map_keys.map_or(1 << 20, |n| n * (4 + ENTRY_OVERHEAD_BYTES)),
            ..CleanerConfig::default()
        };
        let mut passes = 0;
        loop {
            let outcome = log.clean_with(NOW, &config).unwrap();
            passes += 1;
            prop_assert!(passes <= appended.len() + 1, "cleaning does not converge");
            if !outcome.map_full {
                break;
            }
        }
        prop_assert_eq!(kvs(&read_records(&log)), expected.clone());
        prop_assert_eq!(log.log_end_offset(), appended.len() as i64);

        // After delete.retention.ms the tombstones below the active segment go too.
        log.clean(NOW + 2 * DAY).unwrap();
        let without_tombstones: Vec<Triple> = expected
            .iter()
            .filter(|(o, _, v)| *o >= active_base || v.is_some())
            .cloned()
            .collect();
        prop_assert_eq!(kvs(&read_records(&log)), without_tombstones.clone());

        // And the cleaned log survives an unclean reopen unchanged.
        drop(log);
        let log = reopen_unclean(dir.path(), compact_config());
        prop_assert_eq!(kvs(&read_records(&log)), without_tombstones);
    }
}
