//! End-to-end tests of the `strom` tools against a spawned `strom server`.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use strom_client::{Connection, ConnectionConfig};
use strom_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use strom_protocol::messages::{ListOffsetsRequest, StrBytes};

/// Every wait in these tests is bounded by this.
const TIMEOUT: Duration = Duration::from_secs(60);

const STROM: &str = env!("CARGO_BIN_EXE_strom");

/// A `strom server` child process, killed when dropped.
struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a server on a free port and waits for its "listening" line.
fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(STROM)
        .args([
            "server",
            "--listen",
            &addr,
            "--advertise",
            &addr,
            "--data-dir",
        ])
        .arg(dir.path())
        .env("STROM_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server {
        child,
        addr,
        _dir: dir,
    };
    let (tx, rx) = mpsc::channel();
    // Keeps draining stdout after the line so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("strom server listening on") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(TIMEOUT)
        .expect("the server did not report listening in time");
    server
}

/// Runs `strom ARGS` with a bounded wait; kills it on timeout.
fn strom(args: &[&str]) -> Output {
    let mut child = Command::new(STROM)
        .args(args)
        .env_remove("STROM_BOOTSTRAP")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        out.read_to_end(&mut buf).unwrap();
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        err.read_to_end(&mut buf).unwrap();
        buf
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strom {args:?} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a tool that must succeed and returns its stdout.
fn ok(args: &[&str]) -> String {
    let o = strom(args);
    assert!(
        o.status.success(),
        "strom {args:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn json(args: &[&str]) -> Value {
    let out = ok(args);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

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

/// The log end offset of each partition, by ListOffsets with timestamp -1 (latest).
fn log_end_offsets(addr: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let conn = Connection::connect(addr, ConnectionConfig::default())
            .await
            .unwrap();
        let mut t = ListOffsetsTopic::default();
        t.name = StrBytes::from(topic.to_owned());
        for partition in 0..partitions {
            let mut p = ListOffsetsPartition::default();
            p.partition_index = partition;
            p.timestamp = -1;
            p.current_leader_epoch = -1;
            t.partitions.push(p);
        }
        let mut req = ListOffsetsRequest::default();
        req.replica_id = -1;
        req.topics.push(t);
        let resp = tokio::time::timeout(TIMEOUT, conn.send(&req))
            .await
            .unwrap()
            .unwrap();
        let mut parts = resp.topics.into_iter().next().unwrap().partitions;
        parts.sort_by_key(|p| p.partition_index);
        parts
            .iter()
            .map(|p| {
                assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
                p.offset
            })
            .collect()
    })
}
