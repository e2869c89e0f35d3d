mod common;

use common::create_topic;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use strom_client::{
    Consumer, ConsumerConfig, ConsumerError, ConsumerRecord, OffsetAndMetadata, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};

fn consumer_config(bootstrap: &str, extra: &[(&str, &str)]) -> ConsumerConfig {
    let mut props = vec![("bootstrap.servers", bootstrap)];
    props.extend_from_slice(extra);
    ConsumerConfig::from_properties(props).unwrap()
}

async fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> Producer {
    let mut props = vec![("bootstrap.servers", bootstrap)];
    props.extend_from_slice(extra);
    Producer::new(ProducerConfig::from_properties(props).unwrap())
        .await
        .unwrap()
}

/// Sends `key-{i}` / `value-{i}` with header `i` for i in `range`, keyed so
/// records spread over the partitions.
async fn produce(p: &Producer, topic: &str, range: std::ops::Range<usize>) {
    let futs: Vec<_> = range
        .map(|i| {
            p.send(
                ProducerRecord::new(topic)
                    .key(format!("key-{i}"))
                    .value(format!("value-{i}"))
                    .header("i", i.to_string()),
            )
        })
        .collect();
    for f in futs {
        f.await.unwrap();
    }
}

fn all_partitions(topic: &str, n: i32) -> Vec<TopicPartition> {
    (0..n).map(|p| TopicPartition::new(topic, p)).collect()
}

/// Polls until `n` records arrived; fails if more arrive or time runs out.
async fn poll_n(c: &mut Consumer, n: usize, max_poll: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    while out.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} records",
            out.len()
        );
        let batch = c.poll(Duration::from_millis(200)).await.unwrap();
        assert!(
            batch.len() <= max_poll,
            "poll returned {} records",
            batch.len()
        );
        out.extend(batch);
    }
    // Nothing beyond what was produced.
    let extra = c.poll(Duration::from_millis(300)).await.unwrap();
    assert!(extra.is_empty(), "unexpected records: {extra:?}");
    out
}

fn index_of(r: &ConsumerRecord) -> usize {
    let v = std::str::from_utf8(r.value.as_deref().unwrap()).unwrap();
    v.strip_prefix("value-").unwrap().parse().unwrap()
}

/// Checks every record 0..n arrived once, intact, with dense in-order offsets per partition.
fn assert_exactly_once(records: &[ConsumerRecord], n: usize) {
    let mut seen = vec![false; n];
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for r in records {
        let i = index_of(r);
        assert!(!seen[i], "record {i} twice");
        seen[i] = true;
        assert_eq!(r.key.as_deref(), Some(format!("key-{i}").as_bytes()));
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.headers[0].key, "i");
        assert_eq!(
            r.headers[0].value.as_deref(),
            Some(i.to_string().as_bytes())
        );
        let expected = next.entry(r.partition).or_insert(0);
        assert_eq!(
            r.offset, *expected,
            "partition {} offsets not dense",
            r.partition
        );
        *expected += 1;
    }
    assert!(seen.iter().all(|s| *s));
}

#[tokio::test]
async fn consumer_reads_every_record_exactly_once_in_offset_order() {
    let b = common::start_with(&[]).await;
    create_topic(&b.bootstrap, "events", 3).await;
    let p = producer(&b.bootstrap, &[]).await;
    produce(&p, "events", 0..600).await;

    let mut c = Consumer::new(consumer_config(
        &b.bootstrap,
        &[
            ("auto.offset.reset", "earliest"),
            ("max.poll.records", "50"),
        ],
    ))
    .await
    .unwrap();
    c.assign(all_partitions("events", 3));
    let records = poll_n(&mut c, 600, 50).await;
    assert_exactly_once(&records, 600);
    let per_partition: BTreeMap<i32, usize> = records.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.partition).or_default() += 1;
        m
    });
    assert_eq!(
        per_partition.len(),
        3,
        "keys should spread over all partitions"
    );
    for (partition, count) in per_partition {
        let tp = TopicPartition::new("events", partition);
        assert_eq!(c.position(&tp).await.unwrap(), count as i64);
    }
}

/// A caught-up partition must not hold back one with data: fetches keep
/// naming the busy partition (ahead of what is buffered for it), so the broker
/// answers at once instead of long-polling for the idle one.
#[tokio::test]
async fn an_idle_partition_does_not_make_a_busy_one_wait_for_fetch_max_wait() {
    let b = common::start_with(&[]).await;
    create_topic(&b.bootstrap, "ahead", 2).await;
    let p = producer(&b.bootstrap, &[("linger.ms", "0"), ("batch.size", "4096")]).await;
    let value = "v".repeat(1000);
    let sends: Vec<_> = (0..400)
        .map(|_| {
            p.send(
                ProducerRecord::new("ahead")
                    .partition(0)
                    .value(value.clone()),
            )
        })
        .collect();
    for s in sends {
        s.await.unwrap();
    }

    // Small fetches: reading partition 0 takes about 25 of them.
    let mut c = Consumer::new(consumer_config(
        &b.bootstrap,
        &[
            ("max.partition.fetch.bytes", "16384"),
            ("fetch.max.wait.ms", "10000"),
            ("max.poll.records", "10"),
        ],
    ))
    .await
    .unwrap();
    c.assign(all_partitions("ahead", 2));
    c.seek_to_beginning(&[]).unwrap();
    let started = tokio::time::Instant::now();
    let mut read = 0;
    while read < 400 {
        assert!(
            started.elapsed() < common::TIMEOUT,
            "only {read} of 400 records"
        );
        read += c.poll(Duration::from_millis(200)).await.unwrap().len();
    }
    // One long poll of the idle partition would take 10 s.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "reading took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn seek_returns_from_the_offset_and_seek_to_end_returns_only_new_records() {
    let b = common::start_with(&[]).await;
    create_topic(&b.bootstrap, "s", 1).await;
    let p = producer(&b.bootstrap, &[]).await;
    produce(&p, "s", 0..20).await;
    let tp = TopicPartition::new("s", 0);

    let mut c = Consumer::new(consumer_config(
        &b.bootstrap,
        &[("auto.offset.reset", "earliest")],
    ))
    .await
    .unwrap();
    c.assign(vec![tp.clone()]);
    assert_eq!(poll_n(&mut c, 20, 500).await.len(), 20);

    c.seek(&tp, 13).unwrap();
    let again = poll_n(&mut c, 7, 500).await;
    let offsets: Vec<i64> = again.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (13..20).collect::<Vec<_>>());

    c.seek_to_beginning(&[]).unwrap();
    assert_eq!(c.position(&tp).await.unwrap(), 0);
    c.seek_to_end(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(c.position(&tp).await.unwrap(), 20);
    produce(&p, "s", 20..25).await;
    let new = poll_n(&mut c, 5, 500).await;
    assert_eq!(
        new.iter().map(index_of).collect::<Vec<_>>(),
        vec![20, 21, 22, 23, 24]
    );
    assert!(c.seek(&TopicPartition::new("s", 1), 0).is_err());
}

#[tokio::test]
async fn auto_offset_reset_earliest_reads_history_and_latest_only_new_records() {
    let b = common::start_with(&[]).await;
    create_topic(&b.bootstrap, "r", 2).await;
    let p = producer(&b.bootstrap, &[]).await;
    produce(&p, "r", 0..40).await;

    let mut earliest = Consumer::new(consumer_config(
        &b.bootstrap,
        &[("auto.offset.reset", "earliest")],
    ))
    .await
    .unwrap();
    earliest.assign(all_partitions("r", 2));
    let mut latest = Consumer::new(consumer_config(&b.bootstrap, &[]))
        .await
        .unwrap();
    latest.assign(all_partitions("r", 2));
    // Resolve latest's position before producing more.
    let ends = latest.end_offsets(&all_partitions("r", 2)).await.unwrap();
    for tp in all_partitions("r", 2) {
        assert_eq!(latest.position(&tp).await.unwrap(), ends[&tp]);
    }
    produce(&p, "r", 40..50).await;

    assert_exactly_once(&poll_n(&mut earliest, 50, 500).await, 50);
    let new = poll_n(&mut latest, 10, 500).await;
    let mut idx: Vec<usize> = new.iter().map(index_of).collect();
    idx.sort_unstable();
    assert_eq!(idx, (40..50).collect::<Vec<_>>());

    let mut none = Consumer::new(consumer_config(
        &b.bootstrap,
        &[("auto.offset.reset", "none")],
    ))
    .await
    .unwrap();
    none.assign(all_partitions("r", 1));
    let err = none.poll(Duration::from_millis(100)).await.unwrap_err();
    assert!(
        matches!(err, ConsumerError::NoOffsetForPartition { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn offsets_for_times_finds_the_first_record_at_or_after_a_timestamp() {
    let b = common::start_with(&[]).await;
    create_topic(&b.bootstrap, "t", 1).await;
    let p = producer(&b.bootstrap, &[]).await;
    for (i, ts) in [1_000_i64, 2_000, 3_000, 4_000].iter().enumerate() {
        p.send(
            ProducerRecord::new("t")
                .partition(0)
                .value(format!("value-{i}"))
                .timestamp(*ts),
        )
        .await
        .unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    let mut c = Consumer::new(consumer_config(&b.bootstrap, &[]))
        .await
        .unwrap();
    let found = c
        .offsets_for_times(&HashMap::from([(tp.clone(), 2_500)]))
        .await
        .unwrap();
    let hit = found[&tp].unwrap();
    assert_eq!((hit.offset, hit.timestamp), (2, 3_000));
    let found = c
        .offsets_for_times(&HashMap::from([(tp.clone(), 9_000)]))
        .await
        .unwrap();
    assert_eq!(found[&tp], None);

    c.assign(vec![tp.clone()]);
    c.seek(&tp, hit.offset).unwrap();
    let rest = poll_n(&mut c, 2, 500).await;
    assert_eq!(
        rest.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
        vec![3_000, 4_000]
    );
}

#[tokio::test]
async fn consumer_resumes_from_committed_offset_after_restart() {
    let b = common::start_with(&[]).await;
    create_topic(&b.bootstrap, "c", 3).await;
    let p = producer(&b.bootstrap, &[]).await;
    produce(&p, "c", 0..90).await;
    let props = [
        ("group.id", "g1"),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
    ];

    let mut first = Consumer::new(consumer_config(&b.bootstrap, &props))
        .await
        .unwrap();
    first.assign(all_partitions("c", 3));
    let seen = poll_n(&mut first, 90, 500).await;
    first.commit_sync_positions().await.unwrap();
    let committed = first.committed(&all_partitions("c", 3)).await.unwrap();
    let total: i64 = committed.values().map(|o| o.offset).sum();
    assert_eq!(total, 90);
    // Rewind partition 0 to 1 explicitly: the restarted consumer must start there.
    let tp0 = TopicPartition::new("c", 0);
    first
        .commit_sync(&HashMap::from([(tp0.clone(), OffsetAndMetadata::new(1))]))
        .await
        .unwrap();
    drop(first);
    produce(&p, "c", 90..120).await;

    let mut second = Consumer::new(consumer_config(&b.bootstrap, &props))
        .await
        .unwrap();
    second.assign(all_partitions("c", 3));
    let p0_count = seen.iter().filter(|r| r.partition == 0).count();
    let again = poll_n(&mut second, 30 + p0_count - 1, 500).await;
    let mut idx: Vec<usize> = again
        .iter()
        .filter(|r| r.partition != 0 || r.offset >= p0_count as i64)
        .map(index_of)
        .collect();
    idx.sort_unstable();
    assert_eq!(idx, (90..120).collect::<Vec<_>>());
    assert!(again
        .iter()
        .filter(|r| r.partition == 0)
        .all(|r| r.offset >= 1));

    let no_group = Consumer::new(consumer_config(&b.bootstrap, &[]))
        .await
        .unwrap()
        .committed(&[tp0])
        .await;
    assert!(matches!(no_group, Err(ConsumerError::NoGroupId)));
}

#[tokio::test]
async fn paused_partition_returns_nothing_until_resumed() {
    let b = common::start_with(&[]).await;
    create_topic(&b.bootstrap, "p", 2).await;
    let p = producer(&b.bootstrap, &[]).await;
    for i in 0..10 {
        let part = i % 2;
        p.send(
            ProducerRecord::new("p")
                .partition(part)
                .key(format!("key-{i}"))
                .value(format!("value-{i}"))
                .header("i", i.to_string()),
        )
        .await
        .unwrap();
    }
    let (tp0, tp1) = (TopicPartition::new("p", 0), TopicPartition::new("p", 1));
    let mut c = Consumer::new(consumer_config(
        &b.bootstrap,
        &[("auto.offset.reset", "earliest")],
    ))
    .await
    .unwrap();
    c.assign(vec![tp0.clone(), tp1.clone()]);
    c.pause(std::slice::from_ref(&tp1)).unwrap();
    assert_eq!(c.paused(), vec![tp1.clone()]);
    let got = poll_n(&mut c, 5, 500).await;
    assert!(got.iter().all(|r| r.partition == 0));
    c.resume(std::slice::from_ref(&tp1)).unwrap();
    let got = poll_n(&mut c, 5, 500).await;
    assert!(got.iter().all(|r| r.partition == 1));
}

#[tokio::test]
async fn compressed_batches_of_every_codec_are_decoded() {
    let b = common::start_with(&[]).await;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("z-{codec}");
        create_topic(&b.bootstrap, &topic, 3).await;
        let p = producer(
            &b.bootstrap,
            &[("compression.type", codec), ("linger.ms", "20")],
        )
        .await;
        produce(&p, &topic, 0..200).await;
        let mut c = Consumer::new(consumer_config(
            &b.bootstrap,
            &[("auto.offset.reset", "earliest")],
        ))
        .await
        .unwrap();
        c.assign(all_partitions(&topic, 3));
        assert_exactly_once(&poll_n(&mut c, 200, 500).await, 200);
        // Offset 1 lies inside a compressed batch starting at 0: the fetch
        // answers with the whole batch and offset 0 must be dropped.
        c.seek(&TopicPartition::new(&topic, 0), 1).unwrap();
        c.pause(&all_partitions(&topic, 3)[1..]).unwrap();
        let rest = c.poll(Duration::from_secs(5)).await.unwrap();
        assert_eq!(rest.first().map(|r| r.offset), Some(1), "{codec}");
    }
}
