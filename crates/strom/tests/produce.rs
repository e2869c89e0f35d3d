//! End-to-end tests of `strom produce` against a spawned `strom server`; what
//! reached the log is read back with raw ListOffsets and Fetch requests.

mod common;

use bytes::Bytes;
use common::{
    free_port, log_end_offsets, ok, start_server, stderr, stdout, strom, strom_with_stdin,
};
use strom_client::producer::partition_for_key;
use strom_client::{Connection, ConnectionConfig};
use strom_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_protocol::messages::FetchRequest;
use strom_protocol::records::{decode_batch, BatchIter, Compression};

/// One record as stored, read back by [`fetch_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    offset: i64,
    codec: Compression,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
}

/// Every record of `topic`/`partition` from offset 0, by one raw Fetch.
fn fetch_all(addr: &str, topic: &str, partition: i32) -> Vec<Stored> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let conn = Connection::connect(addr, ConnectionConfig::default())
            .await
            .unwrap();
        let mut p = FetchPartition::default();
        p.partition = partition;
        p.fetch_offset = 0;
        p.partition_max_bytes = 10 << 20;
        let mut t = FetchTopic::default();
        t.topic = topic.to_owned().into();
        t.partitions.push(p);
        let mut req = FetchRequest::default();
        req.max_bytes = 10 << 20;
        req.topics.push(t);
        let resp = tokio::time::timeout(common::TIMEOUT, conn.send(&req))
            .await
            .unwrap()
            .unwrap();
        let data = &resp.responses[0].partitions[0];
        assert_eq!(data.error_code, 0, "fetch {topic}-{partition}");
        let records = data.records.clone().unwrap_or_default();
        let mut out = Vec::new();
        for batch in BatchIter::new(&records) {
            let (_, range) = batch.unwrap();
            let (header, recs) = decode_batch(&records.slice(range), 64 << 20).unwrap();
            let codec = header.compression().unwrap();
            for r in recs {
                out.push(Stored {
                    offset: r.offset(&header),
                    codec,
                    headers: r
                        .headers
                        .iter()
                        .map(|h| (h.key.clone(), h.value.clone()))
                        .collect(),
                    key: r.key,
                    value: r.value,
                });
            }
        }
        out
    })
}

fn b(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn keyed_lines_with_headers_reach_the_chosen_partition_in_order_intact() {
    let server = start_server();
    let addr = server.addr.as_str();
    ok(&["topic", "create", "lines", "-b", addr, "--partitions", "3"]);

    // Separators inside the value, an empty key, an empty value, a CRLF line,
    // and a last line without a newline.
    let input = b"k1:v1\nk2:v2:with:colons\n:no-key\nk4:\nk5:v5\r\nk6:last";
    let o = strom_with_stdin(
        &[
            "produce",
            "-b",
            addr,
            "--topic",
            "lines",
            "--key-separator",
            ":",
            "--header",
            "source=cli",
            "-H",
            "trace=a=b c",
            "--partition",
            "1",
            "--verbose",
        ],
        input,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1@0\n1@1\n1@2\n1@3\n1@4\n1@5\n");
    assert_eq!(stderr(&o), "6 records produced\n");

    let stored = fetch_all(addr, "lines", 1);
    let expected = [
        ("k1", "v1"),
        ("k2", "v2:with:colons"),
        ("", "no-key"),
        ("k4", ""),
        ("k5", "v5"),
        ("k6", "last"),
    ];
    assert_eq!(stored.len(), expected.len(), "{stored:?}");
    for (i, (r, (k, v))) in stored.iter().zip(expected).enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!((&r.key, &r.value), (&b(k), &b(v)), "offset {i}");
        assert_eq!(r.codec, Compression::None);
        assert_eq!(
            r.headers,
            [
                ("source".to_owned(), b("cli")),
                ("trace".to_owned(), b("a=b c"))
            ]
        );
    }
    assert_eq!(log_end_offsets(addr, "lines", 3), [0, 6, 0]);
}

#[test]
fn without_a_partition_keys_follow_the_java_partitioner_and_files_are_read() {
    let server = start_server();
    let addr = server.addr.as_str();
    ok(&["topic", "create", "keyed", "-b", addr, "--partitions", "3"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.txt");
    let keys: Vec<String> = (0..30).map(|i| format!("user-{i}")).collect();
    let text: String = keys
        .iter()
        .map(|k| format!("{k}=>event of {k}\n"))
        .collect();
    std::fs::write(&file, text).unwrap();

    let out = ok(&[
        "produce",
        "-b",
        addr,
        "-t",
        "keyed",
        "--file",
        file.to_str().unwrap(),
        "-K",
        "=>",
        "-v",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), keys.len(), "{out}");
    let mut per_partition = [0i64; 3];
    for (key, line) in keys.iter().zip(&lines) {
        let partition = partition_for_key(key.as_bytes(), 3);
        let offset = per_partition[partition as usize];
        assert_eq!(*line, format!("{partition}@{offset}"), "{key}");
        per_partition[partition as usize] += 1;
    }
    for partition in 0..3 {
        for r in fetch_all(addr, "keyed", partition) {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            assert_eq!(partition_for_key(key.as_bytes(), 3), partition);
            assert_eq!(r.value, b(&format!("event of {key}")));
            assert!(r.headers.is_empty());
        }
    }
    assert_eq!(log_end_offsets(addr, "keyed", 3).to_vec(), per_partition);

    // Without --key-separator the whole line is the value and there is no key.
    let o = strom_with_stdin(&["produce", "-b", addr, "-t", "keyed", "-p", "2"], b"a:b\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "1 record produced\n");
    assert!(o.stdout.is_empty());
    let last = fetch_all(addr, "keyed", 2).pop().unwrap();
    assert_eq!((last.key, last.value), (None, b("a:b")));
}

#[test]
fn compression_flag_stores_batches_with_that_codec() {
    let server = start_server();
    let addr = server.addr.as_str();
    let input: String = (0..200)
        .map(|i| format!("record {i} compresses well well well well\n"))
        .collect();
    for (name, codec) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let topic = format!("codec-{name}");
        ok(&["topic", "create", &topic, "-b", addr, "--partitions", "1"]);
        let o = strom_with_stdin(
            &[
                "produce",
                "-b",
                addr,
                "--topic",
                &topic,
                "--compression",
                name,
                // Many records per batch, so compression has something to do.
                "--producer-props",
                "linger.ms=50",
            ],
            input.as_bytes(),
        );
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let stored = fetch_all(addr, &topic, 0);
        assert_eq!(stored.len(), 200, "{name}");
        for (i, r) in stored.iter().enumerate() {
            assert_eq!(r.codec, codec, "{name} offset {i}");
            assert_eq!(r.offset, i as i64);
            assert_eq!(
                r.value,
                b(&format!("record {i} compresses well well well well"))
            );
        }
    }
}

#[test]
fn a_tiny_buffer_memory_still_delivers_everything_in_order_with_any_acks() {
    let server = start_server();
    let addr = server.addr.as_str();
    ok(&[
        "topic",
        "create",
        "bounded",
        "-b",
        addr,
        "--partitions",
        "1",
    ]);
    let input: String = (0..2000).map(|i| format!("{i:0>100}\n")).collect();
    // 1000 bytes holds about six records (line plus per-record overhead), so
    // the reader keeps waiting for acknowledgements; none may be lost or reordered.
    for acks in ["all", "1"] {
        let o = strom_with_stdin(
            &[
                "produce",
                "-b",
                addr,
                "--topic",
                "bounded",
                "--acks",
                acks,
                "--producer-props",
                "buffer.memory=1000",
                "linger.ms=0",
            ],
            input.as_bytes(),
        );
        assert!(o.status.success(), "acks={acks}: {}", stderr(&o));
        assert_eq!(stderr(&o), "2000 records produced\n");
    }
    let stored = fetch_all(addr, "bounded", 0);
    assert_eq!(stored.len(), 4000);
    for (i, r) in stored.iter().enumerate() {
        assert_eq!(r.value, b(&format!("{:0>100}", i % 2000)), "offset {i}");
    }

    // acks=0 gets no offsets back: Kafka's client reports -1.
    let o = strom_with_stdin(
        &[
            "produce", "-b", addr, "--topic", "bounded", "--acks", "0", "-v",
        ],
        b"x\ny\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "0@-1\n0@-1\n");
}

#[test]
fn missing_topic_bad_partition_and_bad_lines_exit_1() {
    let server = start_server();
    let addr = server.addr.as_str();
    ok(&["topic", "create", "t", "-b", addr, "--partitions", "2"]);

    let o = strom_with_stdin(&["produce", "-b", addr, "--topic", "nope"], b"x\n");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim(), "strom: topic 'nope' does not exist");

    let o = strom_with_stdin(&["produce", "-b", addr, "-t", "t", "-p", "2"], b"x\n");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        "strom: partition 2 does not exist (topic 't' has 2 partitions)"
    );

    // The lines before the bad one are produced; the bad one stops the tool.
    let o = strom_with_stdin(
        &["produce", "-b", addr, "-t", "t", "-p", "0", "-K", ":", "-v"],
        b"a:1\nb:2\nno separator\nc:3\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        "strom: line 3: no key separator ':' found"
    );
    assert_eq!(stdout(&o), "0@0\n0@1\n");
    assert_eq!(log_end_offsets(addr, "t", 2), [2, 0]);

    // A line longer than max.request.size is refused without buffering it all.
    let o = strom_with_stdin(
        &[
            "produce",
            "-b",
            addr,
            "-t",
            "t",
            "--producer-props",
            "max.request.size=10",
        ],
        b"this line is far longer than ten bytes\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("strom: line 1: longer than max.request.size (10 bytes)"),
        "{}",
        stderr(&o)
    );

    let missing = strom(&["produce", "-b", addr, "-t", "t", "--file", "/no/such/file"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).starts_with("strom: cannot open /no/such/file: "),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn closed_port_exits_3_and_bad_flags_exit_2() {
    let closed = format!("127.0.0.1:{}", free_port());
    let o = strom_with_stdin(&["produce", "-b", &closed, "--topic", "t"], b"x\n");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        format!("strom: cannot reach broker at {closed}: connection refused")
    );
    assert!(o.stdout.is_empty());

    for args in [
        vec!["produce"],
        vec!["produce", "-t", "t", "--acks", "2"],
        vec!["produce", "-t", "t", "--compression", "brotli"],
        vec!["produce", "-t", "t", "--header", "novalue"],
        vec!["produce", "-t", "t", "--partition", "-1"],
        vec!["produce", "-t", "t", "--key-separator", ""],
        vec!["produce", "-t", "t", "--producer-props", "acks"],
    ] {
        let o = strom(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    // Settings the producer refuses are reported before connecting.
    let o = strom(&[
        "produce",
        "-b",
        &closed,
        "-t",
        "t",
        "--acks",
        "1",
        "--producer-props",
        "enable.idempotence=true",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("acks must be all"), "{}", stderr(&o));
}

#[test]
fn produce_help_describes_every_flag() {
    // -h puts each flag's summary on the flag's own line.
    let help = ok(&["produce", "-h"]);
    for flag in [
        "-b, --bootstrap-server <HOST:PORT>",
        "-t, --topic <TOPIC>",
        "-f, --file <FILE>",
        "-K, --key-separator <SEP>",
        "-H, --header <KEY=VALUE>",
        "-p, --partition <N>",
        "--compression <CODEC>",
        "--acks <ACKS>",
        "--producer-props <KEY=VALUE>...",
        "-v, --verbose",
    ] {
        let line = help
            .lines()
            .find(|l| l.contains(flag))
            .unwrap_or_else(|| panic!("{flag} missing in:\n{help}"));
        // Each flag's description follows it on its line.
        let described = line.split(flag).nth(1).unwrap_or("").trim();
        assert!(!described.is_empty(), "{flag} has no description:\n{help}");
    }
    assert!(
        help.contains("[possible values: none, gzip, snappy, lz4, zstd]"),
        "{help}"
    );
    assert!(help.contains("[possible values: all, 1, 0]"), "{help}");
    let long = ok(&["produce", "--help"]);
    assert!(long.contains("Examples:"), "{long}");
    assert!(long.contains("KIP-480"), "{long}");
    let top = ok(&["--help"]);
    assert!(top.contains("produce"), "{top}");
}
