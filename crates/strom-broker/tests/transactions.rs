//! Transactions over the wire (KIP-98, KIP-890): the coordinator's requests,
//! markers, the last stable offset, read_committed fetches, fencing, timeouts,
//! recovery after a restart, and the late-request hazard under transaction
//! version 2.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::requests::*;
use common::*;
use strom_protocol::messages::*;
use strom_protocol::records::{BatchIter, Compression, RecordBatchBuilder};
use strom_protocol::ErrorCode;

const TOPIC: &str = "txn-topic";
const READ_COMMITTED: i8 = 1;

async fn add_partitions(
    client: &mut Client,
    id: &str,
    (pid, epoch): (i64, i16),
    partitions: &[i32],
) -> ErrorCode {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
        t.name = StrBytes::from(TOPIC);
        t.partitions = partitions.to_vec();
        let mut req = AddPartitionsToTxnRequest::default();
        req.v3_and_below_transactional_id = StrBytes::from(id.to_owned());
        req.v3_and_below_producer_id = pid;
        req.v3_and_below_producer_epoch = epoch;
        req.v3_and_below_topics = vec![t];
        let resp: AddPartitionsToTxnResponse = client.call(&req, 3).await;
        let c = code(
            resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        );
        if c == ErrorCode::ConcurrentTransactions && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        return c;
    }
}

/// EndTxn at `version` (5 = transaction version 2); returns the code and the
/// producer the answer carries.
async fn end_txn(
    client: &mut Client,
    id: &str,
    (pid, epoch): (i64, i16),
    commit: bool,
    version: i16,
) -> (ErrorCode, (i64, i16)) {
    let mut req = EndTxnRequest::default();
    req.transactional_id = StrBytes::from(id.to_owned());
    req.producer_id = pid;
    req.producer_epoch = epoch;
    req.committed = commit;
    let resp: EndTxnResponse = client.call(&req, version).await;
    (
        code(resp.error_code),
        (resp.producer_id, resp.producer_epoch),
    )
}

fn txn_batch((pid, epoch): (i64, i16), seq: i32, values: &[&str]) -> Bytes {
    let mut b = RecordBatchBuilder::new(Compression::None)
        .producer(pid, epoch, seq)
        .transactional(true);
    let now = now_ms();
    for v in values {
        b.push(now, None, Some(Bytes::from(v.to_string())), Vec::new());
    }
    b.build().unwrap().freeze()
}

async fn produce_txn(
    client: &mut Client,
    id: &str,
    producer: (i64, i16),
    partition: i32,
    seq: i32,
    values: &[&str],
) -> (ErrorCode, i64) {
    produce_txn_v(client, id, producer, partition, seq, values, 9).await
}

async fn produce_txn_v(
    client: &mut Client,
    id: &str,
    producer: (i64, i16),
    partition: i32,
    seq: i32,
    values: &[&str],
    version: i16,
) -> (ErrorCode, i64) {
    let mut req = produce_request(TOPIC, partition, txn_batch(producer, seq, values), -1);
    req.transactional_id = Some(StrBytes::from(id.to_owned()));
    let resp: ProduceResponse = client.call(&req, version).await;
    let p = &resp.responses[0].partition_responses[0];
    (code(p.error_code), p.base_offset)
}

async fn fetch_isolated(
    client: &mut Client,
    partition: i32,
    offset: i64,
    isolation: i8,
) -> fetch_response::PartitionData {
    let mut req = fetch_request(TOPIC, partition, offset, 0);
    req.isolation_level = isolation;
    let resp: FetchResponse = client.call(&req, 12).await;
    resp.responses[0].partitions[0].clone()
}

/// The values a read_committed consumer keeps from a fetched partition: data
/// records, minus the batches of aborted transactions (from each aborted
/// transaction's first offset until its producer's marker), as Kafka's
/// clients filter them.
fn values(data: &fetch_response::PartitionData) -> Vec<String> {
    let Some(records) = &data.records else {
        return Vec::new();
    };
    let aborted: Vec<(i64, i64)> = data
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id, a.first_offset))
        .collect();
    let mut skipping = std::collections::HashSet::new();
    let mut out = Vec::new();
    for item in BatchIter::new(records) {
        let (h, range) = item.unwrap();
        if aborted.contains(&(h.producer_id, h.base_offset)) {
            skipping.insert(h.producer_id);
        }
        if h.is_control() {
            skipping.remove(&h.producer_id);
            continue;
        }
        if h.is_transactional() && skipping.contains(&h.producer_id) {
            continue;
        }
        let (_, recs) =
            strom_protocol::records::decode_batch(&records.slice(range), 1 << 20).unwrap();
        for r in recs {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    out
}

/// Waits until the partition's last stable offset reaches `target`.
async fn wait_lso(
    client: &mut Client,
    partition: i32,
    target: i64,
) -> fetch_response::PartitionData {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let p = fetch_isolated(client, partition, 0, READ_COMMITTED).await;
        if p.last_stable_offset >= target {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "LSO stuck at {} (high watermark {})",
            p.last_stable_offset,
            p.high_watermark
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn describe(
    client: &mut Client,
    id: &str,
) -> describe_transactions_response::TransactionState {
    let mut req = DescribeTransactionsRequest::default();
    req.transactional_ids = vec![StrBytes::from(id.to_owned())];
    let resp: DescribeTransactionsResponse = client.call(&req, 0).await;
    resp.transaction_states[0].clone()
}

async fn setup(props: &[(&str, &str)]) -> (TestBroker, Client) {
    let broker = start_with(props).await;
    let mut client = broker.client().await;
    let resp = create_topic(&mut client, TOPIC, 2, &[]).await;
    assert_eq!(resp.topics[0].error_code, 0);
    (broker, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_makes_records_visible_to_read_committed_and_abort_never_does() {
    let (_broker, mut c) = setup(&[]).await;
    let p = init_transactional(&mut c, "tx-a", 60_000).await;
    assert_eq!(p.1, 0);

    // Transaction 1, committed.
    assert_eq!(
        add_partitions(&mut c, "tx-a", p, &[0]).await,
        ErrorCode::None
    );
    assert_eq!(
        produce_txn(&mut c, "tx-a", p, 0, 0, &["c1", "c2"]).await,
        (ErrorCode::None, 0)
    );
    let before = fetch_isolated(&mut c, 0, 0, READ_COMMITTED).await;
    assert_eq!(
        before.last_stable_offset, 0,
        "open transaction holds the LSO"
    );
    assert_eq!(before.high_watermark, 2);
    assert!(values(&before).is_empty());
    let tx = describe(&mut c, "tx-a").await;
    assert_eq!(tx.transaction_state.as_str(), "Ongoing");
    assert_eq!(tx.topics[0].partitions, vec![0]);
    assert_eq!(end_txn(&mut c, "tx-a", p, true, 4).await.0, ErrorCode::None);
    let after = wait_lso(&mut c, 0, 3).await;
    assert_eq!(values(&after), ["c1", "c2"]);
    assert_eq!(after.aborted_transactions.as_deref(), Some(&[][..]));

    // Transaction 2, aborted: read_committed skips it via aborted_transactions.
    assert_eq!(
        add_partitions(&mut c, "tx-a", p, &[0]).await,
        ErrorCode::None
    );
    assert_eq!(
        produce_txn(&mut c, "tx-a", p, 0, 2, &["a1", "a2"]).await,
        (ErrorCode::None, 3)
    );
    assert_eq!(
        end_txn(&mut c, "tx-a", p, false, 4).await.0,
        ErrorCode::None
    );
    let committed = wait_lso(&mut c, 0, 6).await;
    let aborted = committed.aborted_transactions.clone().unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!((aborted[0].producer_id, aborted[0].first_offset), (p.0, 3));
    // Uncommitted readers see the aborted records, followed by the marker.
    let uncommitted = fetch_isolated(&mut c, 0, 0, 0).await;
    assert_eq!(values(&uncommitted), ["c1", "c2", "a1", "a2"]);
    assert_eq!(uncommitted.high_watermark, 6);
    assert!(uncommitted.aborted_transactions.is_none());

    assert_eq!(
        describe(&mut c, "tx-a").await.transaction_state.as_str(),
        "CompleteAbort"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_with_the_same_id_fences_the_first_and_aborts_its_transaction() {
    let (_broker, mut c) = setup(&[]).await;
    let first = init_transactional(&mut c, "tx-f", 60_000).await;
    assert_eq!(
        add_partitions(&mut c, "tx-f", first, &[1]).await,
        ErrorCode::None
    );
    assert_eq!(
        produce_txn(&mut c, "tx-f", first, 1, 0, &["zombie"])
            .await
            .0,
        ErrorCode::None
    );

    let second = init_transactional(&mut c, "tx-f", 60_000).await;
    assert_eq!(second.0, first.0);
    assert!(second.1 > first.1, "{second:?} must fence {first:?}");
    // The zombie's open transaction was aborted; the LSO moves past it.
    let p = wait_lso(&mut c, 1, 2).await;
    assert!(values(&p).is_empty());
    assert_eq!(p.aborted_transactions.unwrap().len(), 1);

    // Every later call of the first producer is fenced.
    assert_eq!(
        add_partitions(&mut c, "tx-f", first, &[1]).await,
        ErrorCode::ProducerFenced
    );
    assert_eq!(
        end_txn(&mut c, "tx-f", first, true, 4).await.0,
        ErrorCode::ProducerFenced
    );
    assert_eq!(
        end_txn(&mut c, "tx-f", first, true, 1).await.0,
        ErrorCode::InvalidProducerEpoch
    );
    assert_eq!(
        produce_txn(&mut c, "tx-f", first, 1, 1, &["late"]).await.0,
        ErrorCode::InvalidProducerEpoch
    );
    // The new producer works.
    assert_eq!(
        add_partitions(&mut c, "tx-f", second, &[1]).await,
        ErrorCode::None
    );
    assert_eq!(
        produce_txn(&mut c, "tx-f", second, 1, 0, &["ok"]).await.0,
        ErrorCode::None
    );
    assert_eq!(
        end_txn(&mut c, "tx-f", second, true, 4).await.0,
        ErrorCode::None
    );
    let p = wait_lso(&mut c, 1, 4).await;
    assert_eq!(values(&p), ["ok"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_transaction_is_aborted_after_its_timeout() {
    let (_broker, mut c) = setup(&[(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "100",
    )])
    .await;
    let p = init_transactional(&mut c, "tx-t", 500).await;
    assert_eq!(
        add_partitions(&mut c, "tx-t", p, &[0]).await,
        ErrorCode::None
    );
    assert_eq!(
        produce_txn(&mut c, "tx-t", p, 0, 0, &["abandoned"]).await.0,
        ErrorCode::None
    );
    let started = Instant::now();
    let data = wait_lso(&mut c, 0, 2).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "aborted too early: {waited:?}"
    );
    assert!(values(&data).is_empty());
    assert_eq!(
        describe(&mut c, "tx-t").await.transaction_state.as_str(),
        "CompleteAbort"
    );
    // The abandoned producer is fenced.
    assert_eq!(
        end_txn(&mut c, "tx-t", p, true, 4).await.0,
        ErrorCode::ProducerFenced
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_survives_a_restart_and_completes() {
    let (broker, mut c) = setup(&[]).await;
    let p = init_transactional(&mut c, "tx-r", 60_000).await;
    assert_eq!(
        add_partitions(&mut c, "tx-r", p, &[0, 1]).await,
        ErrorCode::None
    );
    assert_eq!(
        produce_txn(&mut c, "tx-r", p, 0, 0, &["r0"]).await.0,
        ErrorCode::None
    );
    assert_eq!(
        produce_txn(&mut c, "tx-r", p, 1, 0, &["r1"]).await.0,
        ErrorCode::None
    );
    drop(c);
    let broker = broker.restart(&[]).await;
    let mut c = broker.client().await;
    // The open transaction still holds both LSOs after the restart.
    for partition in [0, 1] {
        let d = fetch_isolated(&mut c, partition, 0, READ_COMMITTED).await;
        assert_eq!((d.last_stable_offset, d.high_watermark), (0, 1));
    }
    assert_eq!(
        describe(&mut c, "tx-r").await.transaction_state.as_str(),
        "Ongoing"
    );
    assert_eq!(end_txn(&mut c, "tx-r", p, true, 4).await.0, ErrorCode::None);
    for (partition, value) in [(0, "r0"), (1, "r1")] {
        let d = wait_lso(&mut c, partition, 2).await;
        assert_eq!(values(&d), [value]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_requests_of_an_earlier_transaction_are_fenced_under_transaction_version_2() {
    let (_broker, mut c) = setup(&[]).await;
    let id = "tx-late";
    let p0 = init_transactional(&mut c, id, 60_000).await;

    // Transaction 1: commit with EndTxn v5, which bumps the epoch.
    assert_eq!(add_partitions(&mut c, id, p0, &[0]).await, ErrorCode::None);
    assert_eq!(
        produce_txn(&mut c, id, p0, 0, 0, &["t1"]).await.0,
        ErrorCode::None
    );
    let (ok, p1) = end_txn(&mut c, id, p0, true, 5).await;
    assert_eq!(ok, ErrorCode::None);
    assert_eq!(p1, (p0.0, p0.1 + 1), "TV2 EndTxn returns the bumped epoch");
    wait_lso(&mut c, 0, 2).await;

    // Transaction 2 starts on the same partition with the new epoch.
    assert_eq!(add_partitions(&mut c, id, p1, &[0]).await, ErrorCode::None);
    assert_eq!(
        produce_txn(&mut c, id, p1, 0, 0, &["t2"]).await.0,
        ErrorCode::None
    );

    // Requests of transaction 1, held back and sent late on another
    // connection: an EndTxn (abort or commit) and a produce. None of them may
    // touch transaction 2.
    let mut late = Client::connect(_broker.addr).await;
    assert_eq!(
        end_txn(&mut late, id, p0, false, 5).await.0,
        ErrorCode::ProducerFenced
    );
    assert_eq!(
        end_txn(&mut late, id, p0, true, 5).await.0,
        ErrorCode::ProducerFenced
    );
    assert_eq!(
        produce_txn(&mut late, id, p0, 0, 1, &["late"]).await.0,
        ErrorCode::InvalidProducerEpoch
    );
    let d = fetch_isolated(&mut c, 0, 0, READ_COMMITTED).await;
    assert_eq!(d.last_stable_offset, 2, "transaction 2 is still open");
    assert_eq!(
        describe(&mut c, id).await.transaction_state.as_str(),
        "Ongoing"
    );

    // Transaction 2 aborts as its producer decides; only t1 is ever visible.
    let (ok, p2) = end_txn(&mut c, id, p1, false, 5).await;
    assert_eq!((ok, p2), (ErrorCode::None, (p1.0, p1.1 + 1)));
    let d = wait_lso(&mut c, 0, 4).await;
    assert_eq!(values(&d), ["t1"]);
    // A retry of the EndTxn that ended transaction 2 is answered, not applied twice.
    assert_eq!(
        end_txn(&mut late, id, p1, false, 5).await,
        (ErrorCode::None, p2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_produce_outside_the_transaction_is_refused() {
    let (_broker, mut c) = setup(&[]).await;
    let p = init_transactional(&mut c, "tx-v", 60_000).await;
    // No AddPartitionsToTxn for partition 0: KIP-890 verification refuses it.
    let (err, _) = produce_txn(&mut c, "tx-v", p, 0, 0, &["stray"]).await;
    assert_eq!(err, ErrorCode::InvalidTxnState);
    let d = fetch_isolated(&mut c, 0, 0, 0).await;
    assert_eq!(d.high_watermark, 0, "nothing was written");

    // ListTransactions and DescribeProducers report an open transaction.
    assert_eq!(
        add_partitions(&mut c, "tx-v", p, &[0]).await,
        ErrorCode::None
    );
    assert_eq!(
        produce_txn(&mut c, "tx-v", p, 0, 0, &["in"]).await.0,
        ErrorCode::None
    );
    let mut list = ListTransactionsRequest::default();
    list.state_filters = vec![StrBytes::from("Ongoing"), StrBytes::from("Bogus")];
    list.duration_filter = -1;
    let listed: ListTransactionsResponse = c.call(&list, 1).await;
    assert_eq!(listed.unknown_state_filters, vec![StrBytes::from("Bogus")]);
    assert_eq!(listed.transaction_states.len(), 1);
    assert_eq!(listed.transaction_states[0].producer_id, p.0);
    let mut t = describe_producers_request::TopicRequest::default();
    t.name = StrBytes::from(TOPIC);
    t.partition_indexes = vec![0, 9];
    let mut req = DescribeProducersRequest::default();
    req.topics = vec![t];
    let resp: DescribeProducersResponse = c.call(&req, 0).await;
    let parts = &resp.topics[0].partitions;
    assert_eq!(parts[0].active_producers.len(), 1);
    assert_eq!(parts[0].active_producers[0].current_txn_start_offset, 0);
    assert_eq!(
        code(parts[1].error_code),
        ErrorCode::UnknownTopicOrPartition
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_version_2_is_advertised_and_produce_v12_adds_partitions_itself() {
    let (broker, mut c) = setup(&[]).await;
    let resp: ApiVersionsResponse = c.call(&ApiVersionsRequest::default(), 3).await;
    let finalized: Vec<(String, i16)> = resp
        .finalized_features
        .iter()
        .map(|f| (f.name.as_str().to_owned(), f.max_version_level))
        .collect();
    assert_eq!(finalized, [("transaction.version".to_owned(), 2)]);

    let id = "tx-v2";
    let p0 = init_transactional(&mut c, id, 60_000).await;
    // No AddPartitionsToTxn: Produce v12 joins partitions 0 and 1 itself.
    assert_eq!(
        produce_txn_v(&mut c, id, p0, 0, 0, &["x"], 12).await.0,
        ErrorCode::None
    );
    assert_eq!(
        produce_txn_v(&mut c, id, p0, 1, 0, &["y"], 12).await.0,
        ErrorCode::None
    );
    let tx = describe(&mut c, id).await;
    assert_eq!(tx.topics[0].partitions, vec![0, 1]);
    let (ok, p1) = end_txn(&mut c, id, p0, true, 5).await;
    assert_eq!((ok, p1), (ErrorCode::None, (p0.0, p0.1 + 1)));
    for (partition, value) in [(0, "x"), (1, "y")] {
        let d = wait_lso(&mut c, partition, 2).await;
        assert_eq!(values(&d), [value]);
    }
    // A produce v12 of the ended transaction (old epoch) cannot open a new one.
    let mut late = Client::connect(broker.addr).await;
    assert_eq!(
        produce_txn_v(&mut late, id, p0, 0, 1, &["late"], 12)
            .await
            .0,
        ErrorCode::InvalidProducerEpoch
    );
    // The next transaction continues with the bumped epoch from sequence 0.
    assert_eq!(
        produce_txn_v(&mut c, id, p1, 0, 0, &["z"], 12).await.0,
        ErrorCode::None
    );
    assert_eq!(end_txn(&mut c, id, p1, true, 5).await.0, ErrorCode::None);
    let d = wait_lso(&mut c, 0, 4).await;
    assert_eq!(values(&d), ["x", "z"]);
}
