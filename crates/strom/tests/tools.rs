//! End-to-end tests of the `strom` tools against a spawned `strom server`.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, json, log_end_offsets, ok, start_server, stderr, strom};

#[test]
fn topic_create_list_describe_delete_round_trip_with_exit_codes() {
    let server = start_server();
    let b = server.addr.as_str();

    let out = ok(&[
        "topic",
        "create",
        "orders",
        "-b",
        b,
        "--partitions",
        "3",
        "--replication-factor",
        "1",
        "--config",
        "retention.ms=60000",
    ]);
    assert_eq!(out.trim(), "Created topic orders.");

    let again = strom(&["topic", "create", "orders", "-b", b]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert_eq!(
        stderr(&again).trim(),
        "strom: topic 'orders' already exists"
    );

    let list = json(&["topic", "list", "-b", b, "--json"]);
    assert_eq!(
        list,
        serde_json::json!([{"name": "orders", "partitions": 3, "replication_factor": 1}])
    );
    let table = ok(&["topic", "list", "-b", b]);
    assert_eq!(
        table.lines().collect::<Vec<_>>(),
        ["TOPIC   PARTITIONS  REPLICATION", "orders  3           1"]
    );

    let d = json(&["topic", "describe", "orders", "-b", b, "--json"]);
    assert_eq!(d["name"], "orders");
    let parts = d["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["partition"], i as i64);
        let leader = p["leader"].as_i64().unwrap();
        assert!(leader >= 0, "{p}");
        assert_eq!(p["replicas"], serde_json::json!([leader]));
        assert_eq!(p["isr"], serde_json::json!([leader]));
    }
    assert_eq!(d["configs"], serde_json::json!({"retention.ms": "60000"}));
    let human = ok(&["topic", "describe", "orders", "-b", b]);
    assert!(
        human.contains("PARTITION  LEADER  REPLICAS  ISR"),
        "{human}"
    );
    assert!(human.contains("retention.ms  60000"), "{human}");

    let out = ok(&["topic", "delete", "orders", "-b", b]);
    assert_eq!(out.trim(), "Deleted topic orders.");
    let gone = strom(&["topic", "describe", "orders", "-b", b]);
    assert_eq!(gone.status.code(), Some(1));
    assert_eq!(stderr(&gone).trim(), "strom: topic 'orders' does not exist");
    let gone = strom(&["topic", "delete", "orders", "-b", b]);
    assert_eq!(gone.status.code(), Some(1));
    assert_eq!(stderr(&gone).trim(), "strom: topic 'orders' does not exist");
    assert_eq!(
        json(&["topic", "list", "-b", b, "--json"]),
        serde_json::json!([])
    );
}

#[test]
fn unreachable_broker_exits_3_and_bad_flags_exit_2() {
    let closed = format!("127.0.0.1:{}", free_port());
    for args in [
        vec!["topic", "list"],
        vec!["cluster", "info", "--json"],
        vec![
            "perf",
            "produce",
            "--topic",
            "t",
            "--num-records",
            "1",
            "--record-size",
            "1",
            "--throughput",
            "-1",
        ],
    ] {
        let mut args = args;
        args.extend(["-b", closed.as_str()]);
        let o = strom(&args);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).trim(),
            format!("strom: cannot reach broker at {closed}: connection refused")
        );
        assert!(o.stdout.is_empty());
    }
    for args in [
        vec!["topic", "list", "--no-such-flag"],
        vec!["topic", "create", "t", "--partitions", "zero"],
        vec!["topic", "create", "t", "--config", "novalue"],
        vec![
            "perf",
            "produce",
            "--topic",
            "t",
            "--num-records",
            "1",
            "--throughput",
            "-1",
        ],
    ] {
        let o = strom(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn cluster_info_reports_the_single_broker_as_controller() {
    let server = start_server();
    let info = json(&["cluster", "info", "-b", &server.addr, "--json"]);
    assert!(!info["cluster_id"].as_str().unwrap().is_empty(), "{info}");
    let brokers = info["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "{info}");
    let port: u16 = server.addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(brokers[0]["host"], "127.0.0.1");
    assert_eq!(brokers[0]["port"], port);
    assert_eq!(info["controller_id"], brokers[0]["id"]);
    let human = ok(&["cluster", "info", "-b", &server.addr]);
    assert!(human.contains("Cluster ID: "), "{human}");
    assert!(human.contains("BROKER  HOST"), "{human}");
}

#[test]
fn perf_produce_reports_ordered_percentiles_and_the_topic_holds_every_record() {
    let server = start_server();
    let b = server.addr.as_str();
    ok(&["topic", "create", "perf", "-b", b, "--partitions", "3"]);
    let r = json(&[
        "perf",
        "produce",
        "-b",
        b,
        "--topic",
        "perf",
        "--num-records",
        "2000",
        "--record-size",
        "100",
        "--throughput",
        "-1",
        "--producers",
        "2",
        "--json",
    ]);
    assert_eq!(r["records"], 2000, "{r}");
    assert_eq!(r["bytes"], 200_000, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {r}"));
    assert!(f("records_per_sec") > 0.0 && f("mb_per_sec") > 0.0, "{r}");
    assert!(
        f("avg_latency_ms") > 0.0 && f("avg_latency_ms") <= f("max_latency_ms"),
        "{r}"
    );
    assert!(f("p50_ms") <= f("p95_ms"), "{r}");
    assert!(f("p95_ms") <= f("p99_ms"), "{r}");
    assert!(f("p99_ms") <= f("p999_ms"), "{r}");
    assert!(f("p999_ms") <= f("max_latency_ms"), "{r}");
    assert!(f("elapsed_ms") > 0.0, "{r}");

    assert_eq!(log_end_offsets(b, "perf", 3).iter().sum::<i64>(), 2000);

    // A throttled run takes at least as long as its rate implies, and the text
    // summary has Kafka's shape.
    let started = Instant::now();
    let text = ok(&[
        "perf",
        "produce",
        "-b",
        b,
        "--topic",
        "perf",
        "--num-records",
        "200",
        "--record-size",
        "10",
        "--throughput",
        "400",
        "--producer-props",
        "acks=1",
        "linger.ms=0",
    ]);
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    let line = text.trim();
    assert!(line.starts_with("200 records sent, "), "{line}");
    for part in [
        "records/sec (",
        "MB/sec), ",
        "ms avg latency, ",
        "ms max latency, ",
        "ms 50th, ",
        "ms 95th, ",
        "ms 99th, ",
        "ms 99.9th.",
    ] {
        assert!(line.contains(part), "{part:?} missing in {line}");
    }
    assert_eq!(log_end_offsets(b, "perf", 3).iter().sum::<i64>(), 2200);

    let missing = strom(&[
        "perf",
        "produce",
        "-b",
        b,
        "--topic",
        "nope",
        "--num-records",
        "1",
        "--record-size",
        "1",
        "--throughput",
        "-1",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing).trim(),
        "strom: topic 'nope' does not exist"
    );
}
