//! Group subscription against an in-process broker: partitions split between
//! members and move when one leaves, every record reaches exactly one member,
//! offsets are committed automatically and a new member resumes from them —
//! with the classic protocol and with KIP-848's consumer protocol.

mod common;

use common::create_topic;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_client::{
    Admin, Consumer, ConsumerConfig, ConsumerRebalanceListener, ConsumerRecord, OffsetAndMetadata,
    Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const TOPIC: &str = "orders";

async fn broker() -> common::TestBroker {
    common::start_with(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.consumer.heartbeat.interval.ms", "500"),
        ("num.partitions", "4"),
    ])
    .await
}

async fn produce(bootstrap: &str, range: std::ops::Range<usize>) {
    let p = Producer::new(
        ProducerConfig::from_properties([("bootstrap.servers", bootstrap), ("linger.ms", "2")])
            .unwrap(),
    )
    .await
    .unwrap();
    let futs: Vec<_> = range
        .map(|i| {
            p.send(
                ProducerRecord::new(TOPIC)
                    .key(format!("key-{i}"))
                    .value(format!("value-{i}")),
            )
        })
        .collect();
    for f in futs {
        f.await.unwrap();
    }
    p.close().await;
}

fn config(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> ConsumerConfig {
    let mut props = vec![
        ("bootstrap.servers", bootstrap),
        ("group.id", group),
        ("auto.offset.reset", "earliest"),
        ("heartbeat.interval.ms", "300"),
        ("session.timeout.ms", "6000"),
        ("auto.commit.interval.ms", "500"),
    ];
    props.extend_from_slice(extra);
    ConsumerConfig::from_properties(props).unwrap()
}

/// Records what the listener is told, as "assigned:[..]" / "revoked:[..]" lines.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl ConsumerRebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("revoked:{}", names(partitions)));
    }
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("assigned:{}", names(partitions)));
    }
}

fn names(partitions: &[TopicPartition]) -> String {
    let set: BTreeSet<i32> = partitions.iter().map(|tp| tp.partition).collect();
    format!("{set:?}")
}

/// A subscribed consumer polling in its own task.
struct Member {
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<ConsumerRecord>>>,
    assignment: Arc<Mutex<BTreeSet<i32>>>,
    events: Recorder,
    task: JoinHandle<Consumer>,
}

async fn join(config: ConsumerConfig) -> Member {
    let mut consumer = Consumer::new(config).await.unwrap();
    let events = Recorder::default();
    consumer
        .subscribe_with_listener([TOPIC], events.clone())
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let records = Arc::new(Mutex::new(Vec::new()));
    let assignment = Arc::new(Mutex::new(BTreeSet::new()));
    let task = {
        let (stop, records, assignment) = (stop.clone(), records.clone(), assignment.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let batch = consumer.poll(Duration::from_millis(100)).await.unwrap();
                records.lock().unwrap().extend(batch);
                *assignment.lock().unwrap() = consumer
                    .assignment()
                    .iter()
                    .map(|tp| tp.partition)
                    .collect();
            }
            consumer
        })
    };
    Member {
        stop,
        records,
        assignment,
        events,
        task,
    }
}

impl Member {
    fn assignment(&self) -> BTreeSet<i32> {
        self.assignment.lock().unwrap().clone()
    }
    fn count(&self) -> usize {
        self.records.lock().unwrap().len()
    }
    async fn stop(self) -> (Consumer, Vec<ConsumerRecord>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let consumer = self.task.await.unwrap();
        let records = std::mem::take(&mut *self.records.lock().unwrap());
        let events = self.events.0.lock().unwrap().clone();
        (consumer, records, events)
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + common::TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn set(parts: &[i32]) -> BTreeSet<i32> {
    parts.iter().copied().collect()
}

/// Every index in `range` exactly once, in offset order per partition.
fn assert_exactly_once(records: &[ConsumerRecord], range: std::ops::Range<usize>) {
    let mut seen = BTreeMap::new();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for r in records {
        let v = std::str::from_utf8(r.value.as_deref().unwrap()).unwrap();
        let i: usize = v.strip_prefix("value-").unwrap().parse().unwrap();
        assert!(seen.insert(i, r.offset).is_none(), "record {i} twice");
        let prev = last.insert(r.partition, r.offset);
        assert!(
            prev.is_none_or(|p| p < r.offset),
            "partition {} out of order",
            r.partition
        );
    }
    let expected: Vec<usize> = range.collect();
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), expected);
}

async fn split_consume_leave_and_resume(protocol: &str) {
    let b = broker().await;
    let bs = b.bootstrap.as_str();
    create_topic(bs, TOPIC, 4).await;
    let group = format!("group-{protocol}");
    let extra = [("group.protocol", protocol)];

    let a = join(config(bs, &group, &extra)).await;
    wait_for("the first member to own all 4 partitions", || {
        a.assignment() == set(&[0, 1, 2, 3])
    })
    .await;
    let second = join(config(bs, &group, &extra)).await;
    wait_for("a 2 + 2 split", || {
        let (x, y) = (a.assignment(), second.assignment());
        x.len() == 2 && y.len() == 2 && x.is_disjoint(&y)
    })
    .await;

    produce(bs, 0..1000).await;
    wait_for("all records consumed", || {
        a.count() + second.count() == 1000
    })
    .await;
    // Give auto-commit a chance to run with everything consumed, then leave:
    // close commits the positions in any case.
    let second_parts = second.assignment();
    let (c2, r2, events2) = second.stop().await;
    c2.close().await;
    assert!(
        events2.iter().any(|e| e.starts_with("assigned:")),
        "{events2:?}"
    );
    wait_for("the survivor to own all 4 partitions again", || {
        a.assignment() == set(&[0, 1, 2, 3])
    })
    .await;
    // Nothing is read twice: the leaver committed what it consumed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (c1, r1, events1) = a.stop().await;
    let mut all = r1.clone();
    all.extend(r2.iter().cloned());
    assert_exactly_once(&all, 0..1000);
    assert!(r2.iter().all(|r| second_parts.contains(&r.partition)));
    assert_eq!(
        events1.first().map(String::as_str),
        Some("assigned:{0, 1, 2, 3}"),
        "{events1:?}"
    );
    assert!(
        events1.iter().any(|e| e.starts_with("revoked:")),
        "{events1:?}"
    );
    c1.close().await;

    // Offsets were committed (auto-commit and close): a new member reads only new records.
    let admin = Admin::connect(bs).await.unwrap();
    let committed = admin.list_group_offsets(&group, None).await.unwrap();
    let total: i64 = committed
        .values()
        .map(|o: &OffsetAndMetadata| o.offset)
        .sum();
    assert_eq!(total, 1000, "{committed:?}");
    produce(bs, 1000..1100).await;
    let c = join(config(bs, &group, &extra)).await;
    wait_for("the new records", || c.count() >= 100).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (c3, r3, _) = c.stop().await;
    assert_exactly_once(&r3, 1000..1100);
    c3.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_members_split_partitions_and_the_survivor_takes_over() {
    split_consume_leave_and_resume("classic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_protocol_members_split_partitions_and_the_survivor_takes_over() {
    split_consume_leave_and_resume("consumer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_heartbeating_loses_its_partitions_to_the_others() {
    let b = broker().await;
    let bs = b.bootstrap.as_str();
    create_topic(bs, TOPIC, 4).await;
    let a = join(config(bs, "g", &[])).await;
    wait_for("the first member", || a.assignment().len() == 4).await;
    let second = join(config(bs, "g", &[])).await;
    wait_for("a 2 + 2 split", || {
        a.assignment().len() == 2 && second.assignment().len() == 2
    })
    .await;
    // Dropping the consumer stops its heartbeats without LeaveGroup, as a crash would.
    let (c2, _, _) = second.stop().await;
    let dropped_at = Instant::now();
    drop(c2);
    wait_for("the survivor to take over", || a.assignment().len() == 4).await;
    let took = dropped_at.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "took over after {took:?}, before the session timeout"
    );
    let (c1, _, _) = a.stop().await;
    c1.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_and_commit_async_callbacks_in_order() {
    let b = broker().await;
    let bs = b.bootstrap.as_str();
    create_topic(bs, TOPIC, 3).await;
    produce(bs, 0..30).await;
    let mut c = Consumer::new(config(
        bs,
        "rr",
        &[
            ("partition.assignment.strategy", "roundrobin"),
            ("enable.auto.commit", "false"),
        ],
    ))
    .await
    .unwrap();
    c.subscribe([TOPIC]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + common::TIMEOUT;
    while got.len() < 30 {
        assert!(Instant::now() < deadline);
        got.extend(c.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(c.assignment().len(), 3);
    let order = Arc::new(Mutex::new(Vec::new()));
    for i in 0..5 {
        let order = order.clone();
        let offsets = [(TopicPartition::new(TOPIC, 0), OffsetAndMetadata::new(i))]
            .into_iter()
            .collect();
        c.commit_async(
            &offsets,
            Some(Box::new(move |r| {
                r.unwrap();
                order.lock().unwrap().push(i);
            })),
        );
    }
    c.commit_sync_positions().await.unwrap();
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    let committed = c.committed(&[TopicPartition::new(TOPIC, 0)]).await.unwrap();
    let p0 = got.iter().filter(|r| r.partition == 0).count() as i64;
    assert_eq!(committed[&TopicPartition::new(TOPIC, 0)].offset, p0);
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_to_a_missing_topic_creates_it_and_consumes_what_arrives() {
    for protocol in ["classic", "consumer"] {
        let b = broker().await;
        let bs = b.bootstrap.as_str();
        // No topic yet: the member's metadata request creates it (num.partitions=4).
        let m = join(config(bs, "late", &[("group.protocol", protocol)])).await;
        wait_for("the auto-created topic's partitions", || {
            m.assignment().len() == 4
        })
        .await;
        produce(bs, 0..50).await;
        wait_for("the records", || m.count() >= 50).await;
        let (c, records, _) = m.stop().await;
        assert_exactly_once(&records, 0..50);
        c.close().await;
    }
}
