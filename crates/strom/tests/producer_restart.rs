//! The Rust `Producer` (idempotent, acks=all, max.in.flight 5) across broker
//! crashes: a spawned `strom server` is SIGKILLed (two to five times) while
//! keyed records are in flight and restarted on the same port and data
//! directory, and the producer keeps going. Each restart must still hold every
//! acknowledged record, and at least one kill must have left records written
//! but unacknowledged (so retries hit the broker's duplicate detection).
//! Afterwards every record must have been acknowledged, be stored exactly once
//! at its acknowledged partition and offset, in send order within its
//! partition, with dense offsets from 0.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::RestartableServer;
use strom_client::producer::partition_for_key;
use strom_client::{
    Admin, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig, ProducerError,
    ProducerRecord, RecordMetadata, TopicPartition,
};
use tokio::sync::Semaphore;

const TOPIC: &str = "restart";
const PARTITIONS: i32 = 3;
const RECORDS: usize = 20_000;
/// The broker is SIGKILLed each time this many more records are acknowledged,
/// and restarted after `DOWN_FOR`: at least `MIN_KILLS` times, and more (up to
/// `MAX_KILLS`) until a kill left records in the log unacknowledged.
const KILL_EVERY_ACKS: usize = 3_000;
const MIN_KILLS: usize = 2;
const MAX_KILLS: usize = 5;
const DOWN_FOR: Duration = Duration::from_millis(1_000);
/// Records sent and not yet completed, at most: sending goes on through the
/// outage, and keeps going after it, instead of queueing everything up front.
const MAX_OUTSTANDING: usize = 3_000;
/// Bound on waiting for the acknowledgements before a kill.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the producer finishing: beyond its delivery.timeout.ms of 120 s.
const FINISH_TIMEOUT: Duration = Duration::from_secs(180);

fn key(i: usize) -> String {
    format!("key-{i}")
}

/// The record's sequence number (its send order), then padding of varied length.
fn value(i: usize) -> String {
    format!("seq-{i:05}-{}", "x".repeat(20 + i % 80))
}

fn seq_of(value: &[u8]) -> usize {
    let s = std::str::from_utf8(value).unwrap();
    s.strip_prefix("seq-")
        .and_then(|s| s.get(..5))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a value of this test: {s:?}"))
}

/// Polls `cond` every 10 ms until it holds; panics with `what()` after `timeout`.
async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {}", what());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_survives_broker_kill9_without_loss_duplicates_or_reordering() {
    let started = Instant::now();
    // An fsync per append before the answer (Kafka's log.flush.interval.messages=1)
    // widens the window in which a batch is in the log but not yet acknowledged,
    // so kills leave such batches, whose retries the broker must deduplicate.
    let mut server = tokio::task::block_in_place(|| {
        RestartableServer::start_with(&[("log.flush.interval.messages", "1")])
    });
    let addr = server.addr.clone();
    let created = tokio::time::timeout(common::TIMEOUT, async {
        let admin = Admin::connect(&addr).await.unwrap();
        admin
            .create_topics(&[NewTopic::new(TOPIC, PARTITIONS, 1)])
            .await
    })
    .await
    .expect("create the topic in time");
    created.unwrap()[TOPIC].clone().unwrap();

    let config = ProducerConfig::from_properties([
        ("bootstrap.servers", addr.as_str()),
        ("client.id", "producer-restart-test"),
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("retries", "2147483647"),
        ("delivery.timeout.ms", "120000"),
        ("request.timeout.ms", "30000"),
        ("max.in.flight.requests.per.connection", "5"),
        ("retry.backoff.ms", "100"),
        ("linger.ms", "5"),
        // Small batches: several batches per partition in flight at a kill.
        ("batch.size", "4096"),
    ])
    .unwrap();
    let producer = tokio::time::timeout(common::TIMEOUT, Producer::new(config))
        .await
        .expect("producer started in time")
        .unwrap();
    let producer = Arc::new(producer);

    // Send 0..RECORDS in order from one task, at most MAX_OUTSTANDING unfinished.
    let sent = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    // Per partition: one past the highest acknowledged offset.
    let acked_end: Arc<Vec<AtomicI64>> =
        Arc::new((0..PARTITIONS).map(|_| AtomicI64::new(0)).collect());
    let sender = {
        let (producer, sent, acked, failed, acked_end) = (
            producer.clone(),
            sent.clone(),
            acked.clone(),
            failed.clone(),
            acked_end.clone(),
        );
        let window = Arc::new(Semaphore::new(MAX_OUTSTANDING));
        tokio::spawn(async move {
            let mut outcomes = Vec::with_capacity(RECORDS);
            for i in 0..RECORDS {
                let permit = window.clone().acquire_owned().await.unwrap();
                let fut = producer.send(ProducerRecord::new(TOPIC).key(key(i)).value(value(i)));
                sent.fetch_add(1, Ordering::SeqCst);
                let (acked, failed, acked_end) = (acked.clone(), failed.clone(), acked_end.clone());
                outcomes.push(tokio::spawn(async move {
                    let outcome = fut.await;
                    match &outcome {
                        Ok(meta) => {
                            acked_end[meta.partition as usize]
                                .fetch_max(meta.offset + 1, Ordering::SeqCst);
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    drop(permit);
                    outcome
                }));
            }
            outcomes
        })
    };

    let status = |server: &RestartableServer| {
        format!(
            "sent {}, acked {}, failed {}, {:?} into the test\n{}",
            sent.load(Ordering::SeqCst),
            acked.load(Ordering::SeqCst),
            failed.load(Ordering::SeqCst),
            started.elapsed(),
            server.log_tail(30)
        )
    };
    // (sent, acked, per partition: records in the log at the restart that were
    // not acknowledged when the broker died) for each kill.
    let mut kills: Vec<(usize, usize, Vec<i64>)> = Vec::new();
    let in_doubt =
        |kills: &[(usize, usize, Vec<i64>)]| -> i64 { kills.iter().flat_map(|(_, _, d)| d).sum() };
    while kills.len() < MIN_KILLS || (kills.len() < MAX_KILLS && in_doubt(&kills) == 0) {
        let target = (kills.len() + 1) * KILL_EVERY_ACKS;
        wait_until(
            PHASE_TIMEOUT,
            || acked.load(Ordering::SeqCst) >= target,
            || format!("waiting for {target} acks: {}", status(&server)),
        )
        .await;
        assert_eq!(failed.load(Ordering::SeqCst), 0, "{}", status(&server));
        let (s, a) = (sent.load(Ordering::SeqCst), acked.load(Ordering::SeqCst));
        assert!(
            s > a,
            "no record outstanding at the kill: {}",
            status(&server)
        );
        tokio::task::block_in_place(|| server.kill9());
        tokio::time::sleep(DOWN_FOR).await;
        // No acknowledgement can arrive while the broker is down, and those it
        // sent before dying have been handled by now.
        let acked_before: Vec<i64> = acked_end.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        tokio::task::block_in_place(|| server.restart());
        // Read at once, before the producer's retries (100 ms backoff) land; a
        // retry that wins this race is counted as in doubt too.
        let leo = {
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || common::log_end_offsets(&addr, TOPIC, PARTITIONS))
                .await
                .unwrap()
        };
        for p in 0..PARTITIONS as usize {
            assert!(
                leo[p] >= acked_before[p],
                "partition {p}: acknowledged up to offset {} but the log ends at {} after the restart",
                acked_before[p] - 1,
                leo[p]
            );
        }
        let doubt = leo.iter().zip(&acked_before).map(|(l, a)| l - a).collect();
        kills.push((s, a, doubt));
    }

    // The producer finishes: every record acknowledged or failed.
    let outcomes: Vec<Result<RecordMetadata, ProducerError>> =
        tokio::time::timeout(FINISH_TIMEOUT, async {
            let mut out = Vec::with_capacity(RECORDS);
            for h in sender.await.unwrap() {
                out.push(h.await.unwrap());
            }
            out
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "producer not done within {FINISH_TIMEOUT:?}: {}",
                status(&server)
            )
        });
    let produce_time = started.elapsed();
    tokio::time::timeout(common::TIMEOUT, producer.close())
        .await
        .expect("producer close");

    let errors: Vec<(usize, String)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e.to_string())))
        .collect();
    assert!(
        errors.is_empty(),
        "{} of {RECORDS} sends failed, e.g. {:?}\n{}",
        errors.len(),
        &errors[..errors.len().min(5)],
        status(&server)
    );
    let acks: Vec<RecordMetadata> = outcomes.into_iter().map(Result::unwrap).collect();

    // Read every partition from the beginning to its end offset.
    let config = ConsumerConfig::from_properties([
        ("bootstrap.servers", addr.as_str()),
        ("client.id", "producer-restart-check"),
    ])
    .unwrap();
    let mut consumer = tokio::time::timeout(common::TIMEOUT, Consumer::new(config))
        .await
        .expect("consumer started in time")
        .unwrap();
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(TOPIC, p))
        .collect();
    consumer.assign(tps.clone());
    consumer.seek_to_beginning(&tps).unwrap();
    let begins = tokio::time::timeout(common::TIMEOUT, consumer.beginning_offsets(&tps))
        .await
        .unwrap()
        .unwrap();
    let ends = tokio::time::timeout(common::TIMEOUT, consumer.end_offsets(&tps))
        .await
        .unwrap()
        .unwrap();
    let total: i64 = ends.values().sum();
    // partition -> [(offset, key, seq)] in the order polled.
    let mut log: BTreeMap<i32, Vec<(i64, String, usize)>> = BTreeMap::new();
    let mut polled = 0i64;
    let deadline = Instant::now() + common::TIMEOUT;
    let mut drain_until = None;
    while Instant::now() < drain_until.unwrap_or(deadline) {
        let records =
            tokio::time::timeout(common::TIMEOUT, consumer.poll(Duration::from_millis(200)))
                .await
                .expect("poll returns in time")
                .unwrap();
        for r in records {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let seq = seq_of(&r.value.unwrap());
            log.entry(r.partition)
                .or_default()
                .push((r.offset, key, seq));
            polled += 1;
        }
        if polled >= total && drain_until.is_none() {
            // Poll a little longer: anything beyond the end offsets is a bug.
            drain_until = Some(Instant::now() + Duration::from_millis(500));
        }
    }
    assert_eq!(polled, total, "records read vs sum of end offsets {ends:?}");

    // Offsets dense from 0 in every partition, each position read once.
    for tp in &tps {
        assert_eq!(begins[tp], 0, "{tp} log start offset");
        let offsets: Vec<i64> = log
            .get(&tp.partition)
            .map(|l| l.iter().map(|(o, _, _)| *o).collect())
            .unwrap_or_default();
        let want: Vec<i64> = (0..ends[tp]).collect();
        assert_eq!(offsets, want, "{tp}: offsets not dense 0..{}", ends[tp]);
    }
    // Nothing stored twice, nothing missing.
    let mut copies: HashMap<usize, usize> = HashMap::new();
    for (_, key, seq) in log.values().flatten() {
        assert_eq!(
            *key,
            self::key(*seq),
            "key and value of one record disagree"
        );
        *copies.entry(*seq).or_default() += 1;
    }
    let duplicated: Vec<(usize, usize)> = copies
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, n)| (*s, *n))
        .collect();
    assert!(
        duplicated.is_empty(),
        "{} records stored more than once, e.g. (seq, copies) {:?}",
        duplicated.len(),
        &duplicated[..duplicated.len().min(10)]
    );
    assert_eq!(total, RECORDS as i64, "records stored vs sent");
    // Every record at its acknowledged position, on Java's partition for its key.
    let by_position: HashMap<(i32, i64), usize> = log
        .iter()
        .flat_map(|(p, l)| l.iter().map(move |(o, _, seq)| ((*p, *o), *seq)))
        .collect();
    for (i, meta) in acks.iter().enumerate() {
        assert_eq!(
            meta.partition,
            partition_for_key(key(i).as_bytes(), PARTITIONS),
            "seq {i}"
        );
        assert_eq!(
            by_position.get(&(meta.partition, meta.offset)),
            Some(&i),
            "seq {i} acknowledged at {}-{}",
            meta.partition,
            meta.offset
        );
    }
    // Per partition, the log holds the records in send order.
    for (p, l) in &log {
        let seqs: Vec<usize> = l.iter().map(|(_, _, s)| *s).collect();
        let want: Vec<usize> = (0..RECORDS)
            .filter(|&i| partition_for_key(key(i).as_bytes(), PARTITIONS) == *p)
            .collect();
        if seqs != want {
            let at = seqs.iter().zip(&want).position(|(a, b)| a != b);
            panic!(
                "partition {p}: order differs from send order at index {at:?}: \
                 log {:?}, sent {:?}",
                at.map(|a| &seqs[a.saturating_sub(2)..(a + 3).min(seqs.len())]),
                at.map(|a| &want[a.saturating_sub(2)..(a + 3).min(want.len())]),
            );
        }
    }
    assert!(server.exited().is_none(), "the broker exited by itself");
    // Else the test did not check what it is for: retries of batches the broker
    // had written before dying must come back deduplicated at their first offsets.
    assert!(
        in_doubt(&kills) > 0,
        "no kill left written but unacknowledged records: {kills:?}"
    );
    eprintln!(
        "producer_restart: {RECORDS} records; at each kill (sent, acked, per partition \
         records written but unacknowledged) {kills:?}; \
         produced in {produce_time:?}, checked in {:?}",
        started.elapsed()
    );
}
