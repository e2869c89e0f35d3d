//! Kafka APIs against a real broker over TCP: the paths clients take.

mod common;

use bytes::Bytes;
use common::requests::*;
use common::*;
use strom_protocol::messages::*;
use strom_protocol::records::{decode_records, BatchIter, Compression, RecordBatchBuilder};
use strom_protocol::ErrorCode;

fn values(records: &Bytes) -> Vec<String> {
    BatchIter::new(records)
        .flat_map(|b| {
            let (_, range) = b.unwrap();
            decode_records(&records[range], 1 << 20).unwrap()
        })
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_lists_what_is_served_and_answers_too_new_versions_with_v0() {
    let broker = start().await;
    let mut client = broker.client().await;
    let resp: ApiVersionsResponse = client.call(&ApiVersionsRequest::default(), 0).await;
    assert_eq!(resp.error_code, 0);
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == 0 && k.min_version == 3));
    assert!(resp.api_keys.iter().any(|k| k.api_key == 1));

    // A version from the future: Kafka answers v0 with UNSUPPORTED_VERSION and its table.
    let mut raw = bytes::BytesMut::new();
    let header = strom_protocol::header::RequestHeader {
        api_key: 18,
        api_version: 99,
        correlation_id: 7,
        client_id: Some("x".into()),
        header_version: 2,
    };
    header.encode(&mut raw);
    raw.extend_from_slice(&[0, 0, 0]); // empty compact strings + tags
    let mut frame = (raw.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&raw);
    client.send_raw(&frame).await;
    let frame = client.read_frame().await.unwrap();
    assert_eq!(&frame[..4], &7i32.to_be_bytes());
    let resp = ApiVersionsResponse::decode_from_bytes(
        frame.slice(4..),
        ApiVersion::new(0),
        DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(resp.error_code, ErrorCode::UnsupportedVersion.code());
    assert!(!resp.api_keys.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_auto_creates_topics_with_ids_and_the_broker_list() {
    let broker = start_with(&[("num.partitions", "3")]).await;
    let mut client = broker.client().await;
    let resp = metadata(&mut client, Some(&["auto-a"]), true).await;
    let t = &resp.topics[0];
    assert_eq!(t.error_code, 0);
    assert_eq!(t.partitions.len(), 3);
    assert!(!t.topic_id.is_zero());
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!(resp.brokers[0].port, broker.addr.port() as i32);
    assert!(resp.cluster_id.is_some());

    // The client may refuse auto-creation.
    let resp = metadata(&mut client, Some(&["auto-b"]), false).await;
    assert_eq!(
        resp.topics[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    // Null topic list means all topics.
    let resp = metadata(&mut client, None, false).await;
    assert_eq!(resp.topics.len(), 1);
    // An invalid name is refused, not created.
    let resp = metadata(&mut client, Some(&["bad name!"]), true).await;
    assert_eq!(
        resp.topics[0].error_code,
        ErrorCode::InvalidTopicException.code()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_batches_are_fetched_back_in_order_with_dense_offsets() {
    let broker = start().await;
    let mut client = broker.client().await;
    assert_eq!(
        create_topic(&mut client, "t", 2, &[]).await.topics[0].error_code,
        0
    );
    assert_eq!(produce(&mut client, "t", 0, batch(3, "a")).await, (0, 0));
    assert_eq!(produce(&mut client, "t", 0, batch(2, "b")).await, (0, 3));
    assert_eq!(produce(&mut client, "t", 1, batch(1, "c")).await, (0, 0));
    let p = fetch(&mut client, "t", 0, 0, 0).await;
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 5);
    assert_eq!(
        values(p.records.as_ref().unwrap()),
        ["a-0", "a-1", "a-2", "b-0", "b-1"]
    );
    // From the middle of a batch: the whole batch comes back (clients skip the prefix).
    let p = fetch(&mut client, "t", 0, 4, 0).await;
    assert_eq!(values(p.records.as_ref().unwrap()), ["b-0", "b-1"]);
    // Past the end: OFFSET_OUT_OF_RANGE.
    let p = fetch(&mut client, "t", 0, 6, 0).await;
    assert_eq!(p.error_code, ErrorCode::OffsetOutOfRange.code());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_fetch_is_woken_by_a_produce() {
    let broker = start().await;
    let mut setup = broker.client().await;
    create_topic(&mut setup, "wake", 1, &[]).await;
    let mut consumer = broker.client().await;
    let started = std::time::Instant::now();
    let waiter = tokio::spawn(async move { fetch(&mut consumer, "wake", 0, 0, 10_000).await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    produce(&mut setup, "wake", 0, batch(1, "x")).await;
    let p = tokio::time::timeout(TIMEOUT, waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(values(p.records.as_ref().unwrap()), ["x-0"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "woken by the append, not by max_wait_ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_gets_no_response_but_is_appended() {
    let broker = start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "fire", 1, &[]).await;
    client
        .send(&produce_request("fire", 0, batch(1, "z"), 0), 9)
        .await;
    // The next response on the connection belongs to the next request.
    let p = fetch(&mut client, "fire", 0, 0, 1000).await;
    assert_eq!(values(p.records.as_ref().unwrap()), ["z-0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_get_the_original_offset_and_gaps_are_refused() {
    let broker = start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "idem", 1, &[]).await;
    let init: InitProducerIdResponse = client
        .call(
            &InitProducerIdRequest::default().tap(|r| r.transactional_id = None),
            4,
        )
        .await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id;
    let batch_with_seq = |seq: i32, n: usize| {
        let mut b = RecordBatchBuilder::new(Compression::None).producer(pid, 0, seq);
        for i in 0..n {
            b.push(
                now_ms(),
                None,
                Some(Bytes::from(format!("v{}", seq as usize + i))),
                Vec::new(),
            );
        }
        b.build().unwrap().freeze()
    };
    assert_eq!(
        produce(&mut client, "idem", 0, batch_with_seq(0, 2)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut client, "idem", 0, batch_with_seq(2, 2)).await,
        (0, 2)
    );
    // A retry of the first batch: same offsets, nothing written twice.
    assert_eq!(
        produce(&mut client, "idem", 0, batch_with_seq(0, 2)).await,
        (0, 0)
    );
    // A gap in sequence numbers.
    let (code, _) = produce(&mut client, "idem", 0, batch_with_seq(9, 1)).await;
    assert_eq!(code, ErrorCode::OutOfOrderSequenceNumber.code());
    let p = fetch(&mut client, "idem", 0, 0, 0).await;
    assert_eq!(p.high_watermark, 4);
    // Producer ids are never reused, even across restarts.
    let broker = broker.restart(&[]).await;
    let mut client = broker.client().await;
    let init2: InitProducerIdResponse = client
        .call(
            &InitProducerIdRequest::default().tap(|r| r.transactional_id = None),
            4,
        )
        .await;
    assert!(init2.producer_id > pid);
    // Producer state survives the restart: the duplicate is still recognised.
    assert_eq!(
        produce(&mut client, "idem", 0, batch_with_seq(2, 2)).await,
        (0, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_topics_and_configs_survive_a_clean_restart() {
    let broker = start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "keep", 1, &[("retention.ms", "123456")]).await;
    produce(&mut client, "keep", 0, batch(5, "k")).await;
    drop(client);
    let broker = broker.restart(&[]).await;
    let mut client = broker.client().await;
    let p = fetch(&mut client, "keep", 0, 0, 0).await;
    assert_eq!(values(p.records.as_ref().unwrap()).len(), 5);
    assert_eq!(produce(&mut client, "keep", 0, batch(1, "n")).await, (0, 5));
    let mut resource = describe_configs_request::DescribeConfigsResource::default();
    resource.resource_type = 2;
    resource.resource_name = StrBytes::from("keep");
    resource.configuration_keys = Some(vec![StrBytes::from("retention.ms")]);
    let mut req = DescribeConfigsRequest::default();
    req.resources = vec![resource];
    let resp: DescribeConfigsResponse = client.call(&req, 4).await;
    let c = &resp.results[0].configs[0];
    assert_eq!(c.value.as_ref().unwrap().as_str(), "123456");
    assert_eq!(c.config_source, 1, "DYNAMIC_TOPIC_CONFIG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_finds_earliest_latest_and_by_timestamp() {
    let broker = start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "lo", 1, &[]).await;
    let t0 = now_ms() - 10_000;
    for i in 0..3 {
        let mut b = RecordBatchBuilder::new(Compression::None);
        b.push(t0 + i * 1000, None, Some(Bytes::from("v")), Vec::new());
        produce(&mut client, "lo", 0, b.build().unwrap().freeze()).await;
    }
    let query = |ts: i64| {
        let mut p = list_offsets_request::ListOffsetsPartition::default();
        p.partition_index = 0;
        p.timestamp = ts;
        p.current_leader_epoch = -1;
        let mut t = list_offsets_request::ListOffsetsTopic::default();
        t.name = StrBytes::from("lo");
        t.partitions = vec![p];
        let mut req = ListOffsetsRequest::default();
        req.replica_id = -1;
        req.topics = vec![t];
        req
    };
    for (ts, expected) in [
        (-2, 0),
        (-1, 3),
        (t0 + 500, 1),
        (t0 + 1000, 1),
        (t0 + 5000, -1),
        (-3, 2),
    ] {
        let resp: ListOffsetsResponse = client.call(&query(ts), 8).await;
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(p.offset, expected, "timestamp {ts}");
    }
}

trait Tap: Sized {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
impl<T> Tap for T {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_compression_type_recompresses_what_producers_send() {
    let broker = start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "gz", 1, &[("compression.type", "gzip")]).await;
    create_topic(
        &mut client,
        "plain",
        1,
        &[("compression.type", "uncompressed")],
    )
    .await;
    let mut zstd = RecordBatchBuilder::new(Compression::Zstd);
    zstd.push(
        now_ms(),
        Some(Bytes::from("k")),
        Some(Bytes::from("z-0")),
        Vec::new(),
    );
    let zstd = zstd.build().unwrap().freeze();
    for (topic, records, expected) in [
        ("gz", batch(3, "g"), Compression::Gzip),
        ("plain", zstd, Compression::None),
    ] {
        assert_eq!(produce(&mut client, topic, 0, records).await.0, 0);
        let p = fetch(&mut client, topic, 0, 0, 0).await;
        let records = p.records.unwrap();
        let (header, _) = BatchIter::new(&records).next().unwrap().unwrap();
        assert_eq!(header.compression().unwrap(), expected, "{topic}");
        assert!(!values(&records).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_the_latest_value_per_key_and_drops_expired_tombstones() {
    let broker = start_with(&[("log.cleaner.backoff.ms", "100")]).await;
    let mut client = broker.client().await;
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "400"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", "0"),
    ];
    assert_eq!(
        create_topic(&mut client, "compact", 1, &configs)
            .await
            .topics[0]
            .error_code,
        0
    );
    let keyed = |key: &str, value: Option<&str>| {
        let mut b = RecordBatchBuilder::new(Compression::None);
        b.push(
            now_ms(),
            Some(Bytes::from(key.to_owned())),
            value.map(|v| Bytes::from(v.to_owned())),
            Vec::new(),
        );
        b.build().unwrap().freeze()
    };
    for round in 0..10 {
        for key in ["a", "b", "c"] {
            produce(
                &mut client,
                "compact",
                0,
                keyed(key, Some(&format!("{key}{round}"))),
            )
            .await;
        }
    }
    produce(&mut client, "compact", 0, keyed("c", None)).await;
    // Enough later writes that the records above are out of the active segment.
    for i in 0..10 {
        produce(
            &mut client,
            "compact",
            0,
            keyed("z", Some(&format!("z{i}"))),
        )
        .await;
    }
    let read_all = |records: Vec<Bytes>| {
        let mut out = Vec::new();
        for chunk in records {
            for b in BatchIter::new(&chunk) {
                let (_, range) = b.unwrap();
                for r in decode_records(&chunk[range], 1 << 20).unwrap() {
                    let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                    out.push((key, r.value.map(|v| String::from_utf8(v.to_vec()).unwrap())));
                }
            }
        }
        out
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut offset = 0;
        let mut chunks = Vec::new();
        loop {
            let p = fetch(&mut client, "compact", 0, offset, 0).await;
            let records = p.records.unwrap_or_default();
            if records.is_empty() {
                break;
            }
            let last = BatchIter::new(&records)
                .map(|b| b.unwrap().0.last_offset())
                .last()
                .unwrap();
            offset = last + 1;
            chunks.push(records);
            if offset >= p.high_watermark {
                break;
            }
        }
        let records = read_all(chunks);
        let a: Vec<_> = records.iter().filter(|(k, _)| k == "a").collect();
        let c: Vec<_> = records.iter().filter(|(k, _)| k == "c").collect();
        if a.len() == 1 && c.is_empty() {
            assert_eq!(a[0].1.as_deref(), Some("a9"));
            assert_eq!(records.iter().filter(|(k, _)| k == "b").count(), 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not compacted in time: {records:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The partitions of a fetch answer that carry an entry, as (partition, record values).
fn answered(resp: &FetchResponse) -> Vec<(i32, Vec<String>)> {
    resp.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            let values = p.records.as_ref().map(values).unwrap_or_default();
            (p.partition_index, values)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_session_answers_only_partitions_with_news() {
    let broker = start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "sess", 3, &[]).await;
    produce(&mut client, "sess", 0, batch(2, "a")).await;

    // A full fetch with epoch 0 opens a session over the partitions it names.
    let mut full = fetch_request("sess", 0, 0, 0);
    full.min_bytes = 0;
    for p in 1..3 {
        let mut more = full.topics[0].partitions[0].clone();
        more.partition = p;
        full.topics[0].partitions.push(more);
    }
    full.session_id = 0;
    full.session_epoch = 0;
    let resp: FetchResponse = client.call(&full, 12).await;
    assert_eq!(resp.error_code, 0);
    let session = resp.session_id;
    assert_ne!(session, 0, "a session was opened");
    assert_eq!(
        answered(&resp),
        vec![
            (0, vec!["a-0".to_string(), "a-1".to_string()]),
            (1, vec![]),
            (2, vec![])
        ]
    );

    // Incremental: partition 0 moves past its records; nothing is new.
    let mut incremental = fetch_request("sess", 0, 2, 0);
    incremental.min_bytes = 0;
    incremental.session_id = session;
    incremental.session_epoch = 1;
    let resp: FetchResponse = client.call(&incremental, 12).await;
    assert_eq!((resp.error_code, resp.session_id), (0, session));
    assert_eq!(answered(&resp), vec![]);

    // A produce to partition 2 wakes a waiting incremental fetch that names no partition.
    let mut waiting = incremental.clone();
    waiting.topics.clear();
    waiting.session_epoch = 2;
    waiting.min_bytes = 1;
    waiting.max_wait_ms = 10_000;
    let mut producer = broker.client().await;
    let started = std::time::Instant::now();
    let fetch = tokio::spawn(async move {
        let resp: FetchResponse = client.call(&waiting, 12).await;
        (resp, client)
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    produce(&mut producer, "sess", 2, batch(1, "c")).await;
    let (resp, mut client) = tokio::time::timeout(TIMEOUT, fetch).await.unwrap().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(answered(&resp), vec![(2, vec!["c-0".to_string()])]);

    // Forgetting partition 2: later appends to it are not fetched.
    let mut forget = incremental.clone();
    forget.topics.clear();
    forget.session_epoch = 3;
    let mut gone = fetch_request::ForgottenTopic::default();
    gone.topic = StrBytes::from("sess");
    gone.partitions = vec![2];
    forget.forgotten_topics_data = vec![gone];
    let resp: FetchResponse = client.call(&forget, 12).await;
    // Partition 2's fetch position was never moved past c-0, so it would be news.
    assert_eq!(answered(&resp), vec![]);
    produce(&mut producer, "sess", 1, batch(1, "b")).await;
    let mut next = incremental.clone();
    next.topics.clear();
    next.session_epoch = 4;
    let resp: FetchResponse = client.call(&next, 12).await;
    assert_eq!(answered(&resp), vec![(1, vec!["b-0".to_string()])]);

    // A stale epoch, an unknown session, and naming the session's topics by id instead.
    next.session_epoch = 4;
    let resp: FetchResponse = client.call(&next, 12).await;
    assert_eq!(code(resp.error_code), ErrorCode::InvalidFetchSessionEpoch);
    assert!(resp.responses.is_empty());
    let mut unknown = next.clone();
    unknown.session_id = session.wrapping_add(1);
    let resp: FetchResponse = client.call(&unknown, 12).await;
    assert_eq!(code(resp.error_code), ErrorCode::FetchSessionIdNotFound);
    next.session_epoch = 5;
    let resp: FetchResponse = client.call(&next, 13).await;
    assert_eq!(code(resp.error_code), ErrorCode::FetchSessionTopicIdError);

    // Epoch -1 closes the session; it cannot be used again.
    let mut close = fetch_request("sess", 0, 0, 0);
    close.min_bytes = 0;
    close.session_id = session;
    close.session_epoch = -1;
    let resp: FetchResponse = client.call(&close, 12).await;
    assert_eq!((resp.error_code, resp.session_id), (0, 0));
    let resp: FetchResponse = client.call(&next, 12).await;
    assert_eq!(code(resp.error_code), ErrorCode::FetchSessionIdNotFound);
}
