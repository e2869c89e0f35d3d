//! The transactional producer against an in-process broker: commit and abort
//! as read_committed and read_uncommitted consumers see them, offsets
//! committed through a transaction, fencing by a newer producer with the same
//! `transactional.id`, and exactly-once consume-transform-produce across an
//! application crash — under transaction version 2 (the default against
//! Strom) and the classic protocol (forced).

mod common;

use common::create_topic;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use strom_client::{
    Admin, Cluster, ConnectionConfig, Consumer, ConsumerConfig, ConsumerGroupMetadata,
    ConsumerRecord, OffsetAndMetadata, Producer, ProducerConfig, ProducerError, ProducerRecord,
    TopicPartition,
};
use strom_protocol::messages::{DescribeTransactionsRequest, StrBytes};
use tokio::time::Instant;

use common::TIMEOUT;

/// The transaction protocol a test runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tv {
    /// Transaction version 2, which Strom finalizes: the client's default.
    Two,
    /// The classic protocol, forced with `max_transaction_version = 1`.
    Classic,
}

async fn broker() -> common::TestBroker {
    common::start_with(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("transaction.state.log.num.partitions", "4"),
        ("offsets.topic.num.partitions", "4"),
    ])
    .await
}

fn producer_config(bootstrap: &str, id: &str, tv: Tv) -> ProducerConfig {
    let mut c = ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("transactional.id", id),
        // A batch is ready as soon as its first record is placed: under the
        // classic protocol it must still wait for AddPartitionsToTxn.
        ("linger.ms", "0"),
        ("max.block.ms", "20000"),
    ])
    .unwrap();
    if tv == Tv::Classic {
        c.max_transaction_version = 1;
    }
    c
}

async fn txn_producer(bootstrap: &str, id: &str, tv: Tv) -> Producer {
    let p = Producer::new(producer_config(bootstrap, id, tv))
        .await
        .unwrap();
    p.init_transactions().await.unwrap();
    p
}

fn record(topic: &str, value: String) -> ProducerRecord {
    // Keyed by the value, so the records of a transaction spread over partitions.
    ProducerRecord::new(topic).key(value.clone()).value(value)
}

/// Sends `values` in one transaction, waiting for every acknowledgement.
async fn send_all(p: &Producer, topic: &str, values: &[String]) {
    let futures: Vec<_> = values
        .iter()
        .map(|v| p.send(record(topic, v.clone())))
        .collect();
    for f in futures {
        f.await.unwrap();
    }
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn value_of(r: &ConsumerRecord) -> String {
    String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()
}

/// Reads every partition of `topic` from the beginning until `done` holds
/// for what was read (panics after [`TIMEOUT`]).
async fn read_until(
    bootstrap: &str,
    topic: &str,
    isolation: &str,
    done: impl Fn(&[ConsumerRecord]) -> bool,
) -> Vec<ConsumerRecord> {
    let mut consumer = Consumer::new(
        ConsumerConfig::from_properties([
            ("bootstrap.servers", bootstrap),
            ("isolation.level", isolation),
            ("auto.offset.reset", "earliest"),
            ("fetch.max.wait.ms", "100"),
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    let admin = Admin::connect(bootstrap).await.unwrap();
    let partitions = admin.describe_topics(&[topic]).await.unwrap()[0]
        .partitions
        .len() as i32;
    consumer.assign(
        (0..partitions)
            .map(|p| TopicPartition::new(topic, p))
            .collect(),
    );
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    while !done(&out) {
        assert!(
            Instant::now() < deadline,
            "{isolation} read of {topic} timed out with {:?}",
            out.iter().map(value_of).collect::<Vec<_>>()
        );
        out.extend(consumer.poll(Duration::from_millis(100)).await.unwrap());
    }
    consumer.close().await;
    out
}

fn sorted_values(records: &[ConsumerRecord]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(value_of).collect();
    v.sort();
    v
}

/// The transaction coordinator's producer epoch for `id` (DescribeTransactions).
async fn coordinator_epoch(bootstrap: &str, id: &str) -> i16 {
    let cluster = Cluster::connect(&[bootstrap.to_string()], ConnectionConfig::default())
        .await
        .unwrap();
    let mut req = DescribeTransactionsRequest::default();
    req.transactional_ids = vec![StrBytes::from(id.to_string())];
    let resp = cluster
        .any_connection()
        .await
        .unwrap()
        .send(&req)
        .await
        .unwrap();
    let state = &resp.transaction_states[0];
    assert_eq!(state.error_code, 0);
    state.producer_epoch
}

/// Commit, abort, commit: read_committed sees exactly the committed records,
/// read_uncommitted sees all of them; the epoch shows which protocol ran.
async fn commit_and_abort(tv: Tv) {
    let b = broker().await;
    let bootstrap = b.bootstrap.as_str();
    create_topic(bootstrap, "events", 3).await;
    let id = format!("commit-abort-{tv:?}");
    let p = txn_producer(bootstrap, &id, tv).await;
    let first_epoch = coordinator_epoch(bootstrap, &id).await;

    p.begin_transaction().unwrap();
    send_all(&p, "events", &values("a", 30)).await;
    p.commit_transaction().await.unwrap();

    p.begin_transaction().unwrap();
    send_all(&p, "events", &values("b", 30)).await;
    p.abort_transaction().await.unwrap();

    p.begin_transaction().unwrap();
    send_all(&p, "events", &values("c", 30)).await;
    p.commit_transaction().await.unwrap();

    // The last committed transaction marks the end: everything before it is decided.
    let committed = read_until(bootstrap, "events", "read_committed", |rs| {
        rs.iter().filter(|r| value_of(r).starts_with("c-")).count() == 30
    })
    .await;
    let mut expected: Vec<String> = values("a", 30).into_iter().chain(values("c", 30)).collect();
    expected.sort();
    assert_eq!(sorted_values(&committed), expected);

    let all = read_until(bootstrap, "events", "read_uncommitted", |rs| rs.len() >= 90).await;
    let mut expected: Vec<String> = ["a", "b", "c"]
        .into_iter()
        .flat_map(|prefix| values(prefix, 30))
        .collect();
    expected.sort();
    assert_eq!(sorted_values(&all), expected);

    // Transaction version 2 bumps the epoch at every EndTxn; the classic
    // protocol keeps it.
    let epoch = coordinator_epoch(bootstrap, &id).await;
    match tv {
        Tv::Two => assert_eq!(epoch, first_epoch + 3),
        Tv::Classic => assert_eq!(epoch, first_epoch),
    }
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_is_visible_to_read_committed_and_abort_only_to_read_uncommitted() {
    commit_and_abort(Tv::Two).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_abort_work_under_the_classic_protocol() {
    commit_and_abort(Tv::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_the_wrong_state_fail_with_illegal_state() {
    let b = broker().await;
    let bootstrap = b.bootstrap.as_str();
    create_topic(bootstrap, "events", 1).await;

    let plain =
        Producer::new(ProducerConfig::from_properties([("bootstrap.servers", bootstrap)]).unwrap())
            .await
            .unwrap();
    let err = plain.init_transactions().await.unwrap_err();
    assert!(matches!(err, ProducerError::IllegalState(_)), "{err}");
    assert!(plain.begin_transaction().is_err());

    let p = Producer::new(producer_config(bootstrap, "states", Tv::Two))
        .await
        .unwrap();
    let err = p.send(record("events", "x".into())).await.unwrap_err();
    assert!(matches!(err, ProducerError::IllegalState(_)), "{err}");
    assert!(matches!(
        p.begin_transaction(),
        Err(ProducerError::IllegalState(_))
    ));
    p.init_transactions().await.unwrap();
    assert!(matches!(
        p.init_transactions().await,
        Err(ProducerError::IllegalState(_))
    ));
    let err = p.send(record("events", "x".into())).await.unwrap_err();
    assert!(matches!(err, ProducerError::IllegalState(_)), "{err}");
    assert!(matches!(
        p.commit_transaction().await,
        Err(ProducerError::IllegalState(_))
    ));
    p.begin_transaction().unwrap();
    assert!(matches!(
        p.begin_transaction(),
        Err(ProducerError::IllegalState(_))
    ));
    // An empty transaction commits without troubling the coordinator.
    p.commit_transaction().await.unwrap();
    p.begin_transaction().unwrap();
    p.abort_transaction().await.unwrap();
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_fails_records_not_yet_sent() {
    let b = broker().await;
    let bootstrap = b.bootstrap.as_str();
    create_topic(bootstrap, "events", 1).await;
    let mut config = producer_config(bootstrap, "unsent", Tv::Two);
    // Records wait in their batch for a minute: the abort finds them unsent.
    config.linger = Duration::from_secs(60);
    config.delivery_timeout = Duration::from_secs(120);
    let p = Producer::new(config).await.unwrap();
    p.init_transactions().await.unwrap();
    p.begin_transaction().unwrap();
    let pending = p.send(record("events", "never".into()));
    p.abort_transaction().await.unwrap();
    let err = pending.await.unwrap_err();
    assert!(matches!(err, ProducerError::TransactionAborted), "{err}");
    // The producer goes on with the next transaction.
    p.begin_transaction().unwrap();
    let sent = p.send(record("events", "kept".into()));
    p.commit_transaction().await.unwrap();
    sent.await.unwrap();
    let read = read_until(bootstrap, "events", "read_committed", |rs| !rs.is_empty()).await;
    assert_eq!(sorted_values(&read), vec!["kept".to_string()]);
}

async fn fencing(tv: Tv) {
    let b = broker().await;
    let bootstrap = b.bootstrap.as_str();
    create_topic(bootstrap, "events", 2).await;
    let id = format!("fenced-{tv:?}");
    let first = txn_producer(bootstrap, &id, tv).await;
    first.begin_transaction().unwrap();
    send_all(&first, "events", &values("zombie", 5)).await;

    // The same transactional id again: its InitProducerId aborts the first
    // producer's transaction and fences it.
    let second = txn_producer(bootstrap, &id, tv).await;
    let err = first.commit_transaction().await.unwrap_err();
    assert!(err.is_fatal() && err.is_fenced(), "{err}");
    // Fatal stays fatal: every later call fails the same way.
    let err = first.begin_transaction().unwrap_err();
    assert!(err.is_fatal() && err.is_fenced(), "{err}");
    let err = first.abort_transaction().await.unwrap_err();
    assert!(err.is_fatal() && err.is_fenced(), "{err}");
    let err = first
        .send(record("events", "late".into()))
        .await
        .unwrap_err();
    assert!(err.is_fenced(), "{err}");

    second.begin_transaction().unwrap();
    send_all(&second, "events", &values("live", 5)).await;
    second.commit_transaction().await.unwrap();
    let read = read_until(bootstrap, "events", "read_committed", |rs| rs.len() >= 5).await;
    assert_eq!(sorted_values(&read), values("live", 5));
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_with_the_same_id_fences_the_first() {
    fencing(Tv::Two).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_works_under_the_classic_protocol() {
    fencing(Tv::Classic).await;
}

fn group_consumer_config(bootstrap: &str, group: &str) -> ConsumerConfig {
    ConsumerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("group.id", group),
        ("enable.auto.commit", "false"),
        ("auto.offset.reset", "earliest"),
        ("isolation.level", "read_committed"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
        ("fetch.max.wait.ms", "100"),
    ])
    .unwrap()
}

/// Polls until `n` records arrived; returns them.
async fn poll_n(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records",
            out.len()
        );
        out.extend(consumer.poll(Duration::from_millis(100)).await.unwrap());
    }
    out
}

/// The offsets after `records`: each partition's last offset + 1.
fn next_offsets(records: &[ConsumerRecord]) -> HashMap<TopicPartition, OffsetAndMetadata> {
    let mut out = HashMap::new();
    for r in records {
        out.insert(
            TopicPartition::new(&r.topic, r.partition),
            OffsetAndMetadata::new(r.offset + 1),
        );
    }
    out
}

async fn group_offsets(admin: &Admin, group: &str) -> BTreeMap<TopicPartition, i64> {
    admin
        .list_group_offsets(group, None)
        .await
        .unwrap()
        .into_iter()
        .map(|(tp, om)| (tp, om.offset))
        .collect()
}

async fn offsets_through_transactions(tv: Tv) {
    let b = broker().await;
    let bootstrap = b.bootstrap.as_str();
    create_topic(bootstrap, "in", 2).await;
    create_topic(bootstrap, "out", 2).await;
    let plain =
        Producer::new(ProducerConfig::from_properties([("bootstrap.servers", bootstrap)]).unwrap())
            .await
            .unwrap();
    for v in values("in", 20) {
        plain.send(record("in", v)).await.unwrap();
    }
    plain.close().await;

    let group = format!("offsets-{tv:?}");
    let mut consumer = Consumer::new(group_consumer_config(bootstrap, &group))
        .await
        .unwrap();
    consumer.subscribe(["in"]).unwrap();
    let records = poll_n(&mut consumer, 20).await;
    let meta = consumer.group_metadata();
    assert_eq!(meta.group_id, group);
    assert!(
        meta.generation_id >= 1 && !meta.member_id.is_empty(),
        "{meta:?}"
    );
    let offsets = next_offsets(&records);
    let admin = Admin::connect(bootstrap).await.unwrap();

    let p = txn_producer(bootstrap, &format!("offsets-{tv:?}"), tv).await;
    // A generation the coordinator does not know cannot commit (KIP-447).
    p.begin_transaction().unwrap();
    let stale = ConsumerGroupMetadata {
        generation_id: meta.generation_id + 10,
        ..meta.clone()
    };
    let err = p
        .send_offsets_to_transaction(&offsets, &stale)
        .await
        .unwrap_err();
    assert!(err.is_abortable(), "{err}");
    p.abort_transaction().await.unwrap();

    // Offsets sent in a transaction that aborts never become committed.
    p.begin_transaction().unwrap();
    send_all(&p, "out", &values("aborted", 3)).await;
    p.send_offsets_to_transaction(&offsets, &meta)
        .await
        .unwrap();
    assert!(group_offsets(&admin, &group).await.is_empty());
    p.abort_transaction().await.unwrap();

    // The next transaction's first write waits for the abort to complete
    // (its markers written), so the aborted offsets are settled by now.
    p.begin_transaction().unwrap();
    send_all(&p, "out", &values("committed", 3)).await;
    assert!(group_offsets(&admin, &group).await.is_empty());
    p.send_offsets_to_transaction(&offsets, &meta)
        .await
        .unwrap();
    assert!(group_offsets(&admin, &group).await.is_empty());
    p.commit_transaction().await.unwrap();

    let expected: BTreeMap<TopicPartition, i64> = offsets
        .iter()
        .map(|(tp, om)| (tp.clone(), om.offset))
        .collect();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let found = group_offsets(&admin, &group).await;
        if found == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "offsets {found:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = read_until(bootstrap, "out", "read_committed", |rs| rs.len() >= 3).await;
    assert_eq!(sorted_values(&out), values("committed", 3));
    p.close().await;
    consumer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_to_a_transaction_are_committed_only_with_it() {
    offsets_through_transactions(Tv::Two).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_through_the_classic_protocol_use_add_offsets_to_txn() {
    offsets_through_transactions(Tv::Classic).await;
}

const INPUT_RECORDS: usize = 3000;

/// One instance of the copy application: a group consumer of `input` and a
/// transactional producer writing `output`, one transaction per poll.
struct Copier {
    consumer: Consumer,
    producer: Producer,
}

impl Copier {
    async fn start(bootstrap: &str, tv: Tv) -> Copier {
        let mut config = group_consumer_config(bootstrap, "copier");
        config.max_poll_records = 250;
        let mut consumer = Consumer::new(config).await.unwrap();
        consumer.subscribe(["input"]).unwrap();
        let producer = txn_producer(bootstrap, "copier-0", tv).await;
        Copier { consumer, producer }
    }

    /// Polls once and copies what it got in one transaction; `commit` false
    /// leaves the transaction open (its records written). Returns the number
    /// of records copied.
    async fn copy_once(&mut self, commit: bool) -> usize {
        let records = self
            .consumer
            .poll(Duration::from_millis(200))
            .await
            .unwrap();
        if records.is_empty() {
            return 0;
        }
        self.producer.begin_transaction().unwrap();
        let copies: Vec<String> = records
            .iter()
            .map(|r| value_of(r).replace("in-", "out-"))
            .collect();
        send_all(&self.producer, "output", &copies).await;
        if !commit {
            return records.len();
        }
        let meta = self.consumer.group_metadata();
        self.producer
            .send_offsets_to_transaction(&next_offsets(&records), &meta)
            .await
            .unwrap();
        self.producer.commit_transaction().await.unwrap();
        records.len()
    }

    /// Whether the committed positions reached the end of the input.
    async fn at_end(&mut self) -> bool {
        let partitions = self.consumer.assignment();
        if partitions.is_empty() {
            return false;
        }
        let ends = self.consumer.end_offsets(&partitions).await.unwrap();
        let mut total = 0;
        for tp in &partitions {
            let position = self.consumer.position(tp).await.unwrap();
            if position < ends[tp] {
                return false;
            }
            total += ends[tp];
        }
        total as usize == INPUT_RECORDS
    }
}

async fn exactly_once_across_a_crash(tv: Tv) {
    let b = broker().await;
    let bootstrap = b.bootstrap.as_str();
    create_topic(bootstrap, "input", 3).await;
    create_topic(bootstrap, "output", 3).await;
    let plain = Producer::new(
        ProducerConfig::from_properties([("bootstrap.servers", bootstrap), ("linger.ms", "5")])
            .unwrap(),
    )
    .await
    .unwrap();
    let sends: Vec<_> = values("in", INPUT_RECORDS)
        .into_iter()
        .map(|v| plain.send(record("input", v)))
        .collect();
    for s in sends {
        s.await.unwrap();
    }
    plain.close().await;

    // First instance: copy about a third, then crash in the middle of a
    // transaction whose records are already in the output log.
    let mut first = Copier::start(bootstrap, tv).await;
    let deadline = Instant::now() + TIMEOUT;
    let mut copied = 0;
    while copied < INPUT_RECORDS / 3 {
        assert!(
            Instant::now() < deadline,
            "first instance stalled at {copied}"
        );
        copied += first.copy_once(true).await;
    }
    let mut uncommitted = 0;
    while uncommitted == 0 {
        assert!(Instant::now() < deadline, "no input left for the crash");
        uncommitted = first.copy_once(false).await;
    }
    // The crash: the producer vanishes without ending its transaction; the
    // consumer leaves without committing (auto-commit is off).
    drop(first.producer);
    first.consumer.close().await;

    // Second instance: init_transactions fences the dead one and aborts its
    // transaction; the consumer resumes from the committed offsets.
    let mut second = Copier::start(bootstrap, tv).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        second.copy_once(true).await;
        if second.at_end().await {
            break;
        }
        assert!(Instant::now() < deadline, "second instance did not finish");
    }
    second.producer.close().await;
    second.consumer.close().await;

    let out = read_until(bootstrap, "output", "read_committed", |rs| {
        rs.len() >= INPUT_RECORDS
    })
    .await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in &out {
        *seen.entry(value_of(r)).or_default() += 1;
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "duplicates: {duplicates:?}");
    let expected: BTreeSet<String> = values("out", INPUT_RECORDS).into_iter().collect();
    let got: BTreeSet<String> = seen.keys().cloned().collect();
    assert_eq!(got, expected);
    assert_eq!(out.len(), INPUT_RECORDS);

    // The crashed transaction's copies are in the log, only aborted: a
    // read_uncommitted reader sees them again.
    let all = read_until(bootstrap, "output", "read_uncommitted", |rs| {
        rs.len() >= INPUT_RECORDS + uncommitted
    })
    .await;
    assert_eq!(all.len(), INPUT_RECORDS + uncommitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consume_transform_produce_is_exactly_once_across_a_crash() {
    exactly_once_across_a_crash(Tv::Two).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consume_transform_produce_is_exactly_once_under_the_classic_protocol() {
    exactly_once_across_a_crash(Tv::Classic).await;
}
