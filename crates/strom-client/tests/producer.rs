mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use strom_client::producer::partition_for_key;
use strom_client::{
    murmur2, Admin, Cluster, ConnectionConfig, DefaultPartitioner, NewTopic, Partitioner, Producer,
    ProducerConfig, ProducerRecord,
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

/// `tests/data/java_partitions.txt`: keys with the murmur2 hash and partitions
/// Java kafka-clients 3.9.1 computed for them (see the file's header for how it
/// is generated; `tests/compat/test_partitioner.py` keeps it equal to Java's).
struct JavaPartitions {
    /// The partition counts of the partition columns, in column order.
    counts: Vec<i32>,
    /// (key, Java's `Utils.murmur2(key)`, Java's partition for each count).
    rows: Vec<(Vec<u8>, i32, Vec<i32>)>,
}

impl JavaPartitions {
    fn load() -> JavaPartitions {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/java_partitions.txt"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let mut counts = None;
        let mut rows = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let at = || format!("{path}:{}: {line:?}", n + 1);
            if let Some(cols) = line.strip_prefix("# columns: key_hex murmur2 ") {
                let parsed: Vec<i32> = cols
                    .split(' ')
                    .map(|c| c.strip_prefix("p/").and_then(|n| n.parse().ok()))
                    .collect::<Option<_>>()
                    .unwrap_or_else(|| panic!("bad columns line {}", at()));
                counts = Some(parsed);
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let counts = counts
                .as_ref()
                .unwrap_or_else(|| panic!("data before the columns line at {}", at()));
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 2 + counts.len(), "{}", at());
            let key = if fields[0] == "-" {
                Vec::new()
            } else {
                assert!(fields[0].len().is_multiple_of(2), "odd hex at {}", at());
                (0..fields[0].len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&fields[0][i..i + 2], 16))
                    .collect::<Result<_, _>>()
                    .unwrap_or_else(|e| panic!("bad hex ({e}) at {}", at()))
            };
            let hash = fields[1]
                .parse()
                .unwrap_or_else(|e| panic!("{e} at {}", at()));
            let partitions = fields[2..]
                .iter()
                .map(|p| p.parse().unwrap_or_else(|e| panic!("{e} at {}", at())))
                .collect();
            rows.push((key, hash, partitions));
        }
        JavaPartitions {
            counts: counts.expect("a columns line"),
            rows,
        }
    }

    /// Java's partition by (key, partition count).
    fn lookup(&self) -> HashMap<(&[u8], i32), i32> {
        let mut map = HashMap::new();
        for (key, _, partitions) in &self.rows {
            for (&count, &p) in self.counts.iter().zip(partitions) {
                map.insert((key.as_slice(), count), p);
            }
        }
        map
    }
}

#[test]
fn default_partitioner_matches_java_for_10000_keys() {
    let java = JavaPartitions::load();
    assert_eq!(java.counts, vec![1, 3, 7, 12, 100]);
    assert_eq!(java.rows.len(), 10_000);
    // The file covers what it claims: the empty key, every length 0..=64, and
    // UTF-8 of 2-, 3- and 4-byte characters.
    let lengths: BTreeSet<usize> = java.rows.iter().map(|(k, _, _)| k.len()).collect();
    assert!((0..=64).all(|n| lengths.contains(&n)), "{lengths:?}");
    let widths: BTreeSet<usize> = java
        .rows
        .iter()
        .filter_map(|(k, _, _)| std::str::from_utf8(k).ok())
        .flat_map(|s| s.chars().map(char::len_utf8))
        .collect();
    assert_eq!(widths, BTreeSet::from([1, 2, 3, 4]));

    let mut mismatches = Vec::new();
    let mut checked = 0;
    for (key, hash, partitions) in &java.rows {
        if murmur2(key) != *hash {
            mismatches.push(format!(
                "murmur2({key:02x?}) = {}, Java {hash}",
                murmur2(key)
            ));
        }
        for (&count, &want) in java.counts.iter().zip(partitions) {
            let got = DefaultPartitioner.partition("t", Some(key), Some(b"v"), count);
            let direct = partition_for_key(key, count);
            if got != Some(want) || direct != want {
                mismatches.push(format!(
                    "key {key:02x?} of {count}: DefaultPartitioner {got:?}, \
                     partition_for_key {direct}, Java {want}"
                ));
            }
            checked += 1;
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} differences from Java ({} hashes and {checked} partitions checked), e.g.:\n{}",
        mismatches.len(),
        java.rows.len(),
        mismatches[..mismatches.len().min(10)].join("\n")
    );
    assert_eq!(checked, 50_000);
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
    // Java's partition of key-0..key-999 among 3, from the committed data file.
    let table = JavaPartitions::load();
    let lookup = table.lookup();
    let java: Vec<i32> = (0..1000)
        .map(|i| lookup[&(format!("key-{i}").as_bytes(), 3)])
        .collect();

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

/// A batch the broker rejects for good (here MESSAGE_TOO_LARGE) must not break
/// the partition for later sends: its sequence numbers never reach the broker,
/// so the producer continues under a new producer id (sequences from 0), and
/// batches queued behind the rejected one keep their order.
#[tokio::test]
async fn idempotent_sends_after_a_rejected_batch_still_succeed() {
    let b = common::start_with(&[]).await;
    let admin = Admin::connect(&b.bootstrap).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("small", 1, 1).config("max.message.bytes", "1000")])
        .await
        .unwrap()["small"]
        .clone()
        .unwrap();
    let producer = Producer::new(config(
        &b.bootstrap,
        &[("enable.idempotence", "true"), ("linger.ms", "0")],
    ))
    .await
    .unwrap();
    let send = |value: Vec<u8>| producer.send(ProducerRecord::new("small").value(value));
    let first = tokio::time::timeout(common::TIMEOUT, send(b"before".to_vec()))
        .await
        .unwrap();
    assert_eq!(first.unwrap().offset, 0);
    let too_large = tokio::time::timeout(common::TIMEOUT, send(vec![b'x'; 2000]))
        .await
        .unwrap();
    assert!(too_large.is_err(), "{too_large:?}");
    let after = tokio::time::timeout(common::TIMEOUT, send(b"after".to_vec()))
        .await
        .unwrap();
    assert_eq!(after.unwrap().offset, 1);
    // With batches queued behind the rejected one: they are sent (in order)
    // under the new producer id once the rejection is in.
    let pending: Vec<_> = (0..20)
        .map(|i| {
            let value = if i == 5 {
                vec![b'x'; 2000]
            } else {
                format!("r{i}").into_bytes()
            };
            send(value)
        })
        .collect();
    let mut offsets = Vec::new();
    for (i, p) in pending.into_iter().enumerate() {
        let r = tokio::time::timeout(common::TIMEOUT, p).await.unwrap();
        if i == 5 {
            assert!(r.is_err(), "{r:?}");
        } else {
            offsets.push(r.unwrap().offset);
        }
    }
    assert_eq!(offsets, (2..21).collect::<Vec<i64>>());
    producer.close().await;
}

/// Forwards connections from `listener` to `upstream`, writes down how many
/// partitions each Produce request carries, and holds each Produce answer
/// back for `delay` (a broker slow to acknowledge).
async fn produce_recording_proxy(
    listener: tokio::net::TcpListener,
    upstream: std::net::SocketAddr,
    delay: Duration,
    sizes: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
) {
    use strom_protocol::header::RequestHeader;
    use strom_protocol::messages::{ApiVersion, DecodeLimits, KafkaDecode, ProduceRequest};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn frame(r: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        r.read_exact(&mut len).await.ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        r.read_exact(&mut body).await.ok()?;
        Some(body)
    }
    async fn send(w: &mut (impl AsyncWriteExt + Unpin), body: &[u8]) -> Option<()> {
        w.write_all(&(body.len() as u32).to_be_bytes()).await.ok()?;
        w.write_all(body).await.ok()
    }

    while let Ok((client, _)) = listener.accept().await {
        let Ok(broker) = tokio::net::TcpStream::connect(upstream).await else {
            return;
        };
        let (mut client_r, mut client_w) = client.into_split();
        let (mut broker_r, mut broker_w) = broker.into_split();
        let produce_ids = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
        let (ids, sizes) = (produce_ids.clone(), sizes.clone());
        tokio::spawn(async move {
            while let Some(body) = frame(&mut client_r).await {
                let (header, at) = RequestHeader::parse(&body).expect("request header");
                if header.api_key == 0 {
                    let request = ProduceRequest::decode_from_bytes(
                        Bytes::copy_from_slice(&body[at..]),
                        ApiVersion::new(header.api_version),
                        DecodeLimits::default(),
                    )
                    .expect("produce request");
                    let partitions = request
                        .topic_data
                        .iter()
                        .map(|t| t.partition_data.len())
                        .sum();
                    sizes.lock().unwrap().push(partitions);
                    ids.lock().unwrap().insert(header.correlation_id);
                }
                if send(&mut broker_w, &body).await.is_none() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(body) = frame(&mut broker_r).await {
                let id = i32::from_be_bytes(body[..4].try_into().expect("correlation id"));
                if produce_ids.lock().unwrap().remove(&id) {
                    tokio::time::sleep(delay).await;
                }
                if send(&mut client_w, &body).await.is_none() {
                    return;
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_wait_for_a_free_request_slot_and_leave_together() {
    // The broker advertises a proxy that answers Produce requests slowly.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let advertised = format!("PLAINTEXT://{}", listener.local_addr().unwrap());
    let b = common::start_with(&[("advertised.listeners", advertised.as_str())]).await;
    let sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    tokio::spawn(produce_recording_proxy(
        listener,
        b.broker.local_addr(),
        Duration::from_millis(30),
        sizes.clone(),
    ));
    common::create_topic(&b.bootstrap, "grouped", 4).await;
    let producer = Producer::new(config(
        &b.bootstrap,
        &[
            ("linger.ms", "0"),
            ("max.in.flight.requests.per.connection", "2"),
        ],
    ))
    .await
    .unwrap();
    // One record per millisecond, partitions in turn: each is a ready batch
    // of its own the moment it is sent.
    let mut futures = Vec::new();
    for i in 0..200 {
        let record = ProducerRecord::new("grouped")
            .partition(i % 4)
            .value(format!("value-{i}"));
        futures.push(producer.send(record));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for f in futures {
        tokio::time::timeout(common::TIMEOUT, f)
            .await
            .expect("acknowledged in time")
            .expect("acknowledged");
    }
    producer.close().await;
    let sizes = sizes.lock().unwrap().clone();
    let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
    // A request per batch as it became ready would carry one partition each.
    assert!(
        mean >= 2.5,
        "{} requests carrying {mean:.2} partitions on average: {sizes:?}",
        sizes.len()
    );
}
