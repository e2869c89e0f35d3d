mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use strom_client::producer::partition_for_key;
use strom_client::{
    Admin, Cluster, ConnectionConfig, NewTopic, Producer, ProducerConfig, ProducerRecord,
};
use strom_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_protocol::messages::FetchRequest;
use strom_protocol::records::{decode_batch, BatchIter, Compression};

fn config(bootstrap: &str, extra: &[(&str, &str)]) -> ProducerConfig {
    let mut props = vec![("bootstrap.servers", bootstrap)];
    props.extend_from_slice(extra);
    ProducerConfig::from_properties(props).unwrap()
}

/// Every record of `topic`/`partition` from offset 0, read with a raw Fetch.
async fn fetch_all(
    bootstrap: &str,
    topic: &str,
    partition: i32,
) -> Vec<(i64, Compression, Option<Bytes>, Option<Bytes>)> {
    let cluster = Cluster::connect(&[bootstrap.to_string()], ConnectionConfig::default())
        .await
        .unwrap();
    let conn = cluster.any_connection().await.unwrap();
    let mut p = FetchPartition::default();
    p.partition = partition;
    p.fetch_offset = 0;
    p.partition_max_bytes = 10 << 20;
    let mut t = FetchTopic::default();
    t.topic = topic.into();
    t.partitions.push(p);
    let mut req = FetchRequest::default();
    req.max_bytes = 10 << 20;
    req.topics.push(t);
    let resp = conn.send(&req).await.unwrap();
    let data = &resp.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    let records = data.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    for batch in BatchIter::new(&records) {
        let (_, range) = batch.unwrap();
        let bytes = records.slice(range);
        let (header, recs) = decode_batch(&bytes, 64 << 20).unwrap();
        let codec = header.compression().unwrap();
        for r in recs {
            out.push((r.offset(&header), codec, r.key, r.value));
        }
    }
    out
}

#[tokio::test]
async fn keyed_idempotent_sends_get_dense_offsets_on_the_java_partition() {
    let b = common::start_with(&[]).await;
    let admin = Admin::connect(&b.bootstrap).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("keyed", 3, 1)])
        .await
        .unwrap()["keyed"]
        .clone()
        .unwrap();
    let java: Vec<i32> = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/java_partition_key_i_mod3.txt"
    ))
    .unwrap()
    .trim()
    .bytes()
    .map(|c| i32::from(c - b'0'))
    .collect();
    assert_eq!(java.len(), 1000);

    let producer = Producer::new(config(
        &b.bootstrap,
        &[("acks", "all"), ("enable.idempotence", "true")],
    ))
    .await
    .unwrap();
    let futures: Vec<_> = (0..1000)
        .map(|i| {
            producer.send(
                ProducerRecord::new("keyed")
                    .key(format!("key-{i}"))
                    .value(format!("v{i}")),
            )
        })
        .collect();
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (i, f) in futures.into_iter().enumerate() {
        let meta = tokio::time::timeout(common::TIMEOUT, f)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(meta.partition, java[i], "key-{i}");
        assert_eq!(
            meta.partition,
            partition_for_key(format!("key-{i}").as_bytes(), 3)
        );
        per_partition
            .entry(meta.partition)
            .or_default()
            .push(meta.offset);
    }
    for (p, offsets) in &per_partition {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, &expected,
            "partition {p} offsets dense and in send order"
        );
        // The log holds the same records in the same order.
        let logged = fetch_all(&b.bootstrap, "keyed", *p).await;
        assert_eq!(logged.len(), offsets.len());
    }
    producer.close().await;
    assert!(producer
        .send(ProducerRecord::new("keyed").value("late"))
        .await
        .is_err());

    let low = admin.delete_records("keyed", &[(0, 2)]).await.unwrap();
    assert_eq!(low[&0], 2);
}

#[tokio::test]
async fn keyless_records_stick_to_one_partition_per_batch() {
    let b = common::start_with(&[]).await;
    let admin = Admin::connect(&b.bootstrap).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("sticky", 4, 1)])
        .await
        .unwrap();
    // A long linger and a batch of ~10 records: each batch fills by size.
    let producer = Producer::new(config(
        &b.bootstrap,
        &[("linger.ms", "2000"), ("batch.size", "400")],
    ))
    .await
    .unwrap();
    let futures: Vec<_> = (0..40)
        .map(|i| producer.send(ProducerRecord::new("sticky").value(format!("value-{i:04}"))))
        .collect();
    producer.flush().await;
    let mut partitions = Vec::new();
    for f in futures {
        partitions.push(f.await.unwrap().partition);
    }
    // Runs of one partition, each as long as a batch, and a switch after each batch.
    let mut runs: Vec<(i32, usize)> = Vec::new();
    for p in partitions {
        match runs.last_mut() {
            Some((q, n)) if *q == p => *n += 1,
            _ => runs.push((p, 1)),
        }
    }
    assert!(
        runs.len() >= 3,
        "switched partitions after full batches: {runs:?}"
    );
    assert!(
        runs.iter().take(runs.len() - 1).all(|(_, n)| *n >= 5),
        "{runs:?}"
    );
    producer.close().await;
}

#[tokio::test]
async fn every_compression_codec_round_trips() {
    let b = common::start_with(&[]).await;
    let admin = Admin::connect(&b.bootstrap).await.unwrap();
    for (name, codec) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let topic = format!("codec-{name}");
        admin
            .create_topics(&[NewTopic::new(&topic, 1, 1)])
            .await
            .unwrap();
        let producer = Producer::new(config(&b.bootstrap, &[("compression.type", name)]))
            .await
            .unwrap();
        let futures: Vec<_> = (0..50)
            .map(|i| {
                producer.send(
                    ProducerRecord::new(topic.clone())
                        .key(format!("k{i}"))
                        .value(format!("{name}-value-{i}").repeat(5)),
                )
            })
            .collect();
        for f in futures {
            f.await.unwrap();
        }
        producer.close().await;
        let logged = fetch_all(&b.bootstrap, &topic, 0).await;
        assert_eq!(logged.len(), 50, "{name}");
        for (i, (offset, got_codec, key, value)) in logged.into_iter().enumerate() {
            assert_eq!(offset, i as i64);
            assert_eq!(got_codec, codec);
            assert_eq!(key.unwrap(), Bytes::from(format!("k{i}")));
            assert_eq!(
                value.unwrap(),
                Bytes::from(format!("{name}-value-{i}").repeat(5))
            );
        }
    }
}

#[tokio::test]
async fn send_to_a_topic_created_later_succeeds_within_delivery_timeout() {
    let b = common::start_with(&[("auto.create.topics.enable", "false")]).await;
    let producer = Producer::new(config(&b.bootstrap, &[("retry.backoff.ms", "50")]))
        .await
        .unwrap();
    let pending = producer.send(ProducerRecord::new("late").key("k").value("v"));
    let waiter = tokio::spawn(pending);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished());
    let admin = Admin::connect(&b.bootstrap).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("late", 2, 1)])
        .await
        .unwrap()["late"]
        .clone()
        .unwrap();
    let meta = tokio::time::timeout(common::TIMEOUT, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (meta.partition, meta.offset),
        (partition_for_key(b"k", 2), 0)
    );
    producer.close().await;
}

#[tokio::test]
async fn undeliverable_records_fail_at_the_delivery_timeout() {
    let b = common::start_with(&[("auto.create.topics.enable", "false")]).await;
    let producer = Producer::new(config(
        &b.bootstrap,
        &[
            ("delivery.timeout.ms", "1500"),
            ("request.timeout.ms", "1000"),
            ("linger.ms", "0"),
        ],
    ))
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let err = producer
        .send(ProducerRecord::new("never").value("v"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, strom_client::ProducerError::DeliveryTimeout { .. }),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_millis(1400));
}
