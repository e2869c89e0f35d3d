//! End-to-end tests of `strom consume`, `strom perf consume` and `strom perf
//! e2e` against a spawned `strom server`; records are written with `strom
//! produce` and `strom perf produce`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    free_port, json, log_end_offsets, ok, start_server, stderr, stdout, strom, strom_with_stdin,
    STROM, TIMEOUT,
};
use serde_json::Value;

/// Produces one record per line of `input` with `strom produce` and extra flags.
fn produce(addr: &str, topic: &str, extra: &[&str], input: &[u8]) {
    let mut args = vec!["produce", "-b", addr, "-t", topic];
    args.extend_from_slice(extra);
    let o = strom_with_stdin(&args, input);
    assert!(o.status.success(), "produce {extra:?}: {}", stderr(&o));
}

/// Runs `strom consume TOPIC -b ADDR ARGS` and returns its stdout; it must exit 0.
fn consume(addr: &str, topic: &str, args: &[&str]) -> String {
    let mut all = vec!["consume", topic, "-b", addr];
    all.extend_from_slice(args);
    let o = strom(&all);
    assert!(
        o.status.success(),
        "consume {args:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Waits for a child with a bounded wait; kills it and panics on timeout.
fn wait_bounded(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child did not exit within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn produced_records_print_as_text_json_and_template_with_keys_and_headers() {
    let server = start_server();
    let addr = server.addr.as_str();
    ok(&["topic", "create", "fmt", "-b", addr, "--partitions", "1"]);
    // The last value is not UTF-8, so JSON must carry it as base64.
    let mut input = b"k0:v0\nk1:v1\nk2:hello world\n:empty-key\n".to_vec();
    input.extend_from_slice(b"k4:\xff\xfe\n");
    produce(addr, "fmt", &["-K", ":", "-H", "src=cli"], &input);

    let o = strom(&["consume", "fmt", "-b", addr, "--from-beginning", "-n", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut expected = b"v0\nv1\nhello world\nempty-key\n".to_vec();
    expected.extend_from_slice(b"\xff\xfe\n");
    assert_eq!(o.stdout, expected, "text output is the values verbatim");
    assert_eq!(stderr(&o), "Processed a total of 5 messages\n");

    let keyed = consume(addr, "fmt", &["--from-beginning", "-n", "3", "--print-key"]);
    assert_eq!(keyed, "k0\tv0\nk1\tv1\nk2\thello world\n");
    let keyed = consume(
        addr,
        "fmt",
        &[
            "--from-beginning",
            "--max-messages",
            "2",
            "--print-key",
            "--key-separator",
            " => ",
        ],
    );
    assert_eq!(keyed, "k0 => v0\nk1 => v1\n");

    let out = consume(
        addr,
        "fmt",
        &["--from-beginning", "-n", "5", "--format", "json"],
    );
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(records.len(), 5, "{out}");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["topic"], "fmt", "{r}");
        assert_eq!(r["partition"], 0, "{r}");
        assert_eq!(r["offset"], i, "{r}");
        assert_eq!(r["timestamp_type"], "CreateTime", "{r}");
        let ts = r["timestamp"].as_i64().unwrap();
        assert!((now_ms() - ts).abs() < 600_000, "{r}");
        assert_eq!(
            r["headers"],
            serde_json::json!([{"key": "src", "value": "cli"}]),
            "{r}"
        );
    }
    assert_eq!(
        (&records[2]["key"], &records[2]["value"]),
        (&"k2".into(), &"hello world".into())
    );
    assert!(records[2].get("value_base64").is_none(), "{}", records[2]);
    assert_eq!(records[3]["key"], "", "{}", records[3]);
    assert_eq!(records[4]["value"], "//4=", "{}", records[4]);
    assert_eq!(records[4]["value_base64"], true, "{}", records[4]);

    let out = consume(
        addr,
        "fmt",
        &[
            "--from-beginning",
            "-n",
            "2",
            "--template",
            "{topic}-{partition}@{offset} {key}={value} [{headers}] {{{timestamp_type}}}",
        ],
    );
    assert_eq!(
        out,
        "fmt-0@0 k0=v0 [src=cli] {CreateTime}\nfmt-0@1 k1=v1 [src=cli] {CreateTime}\n"
    );
    // --format template with an explicit template, and escapes.
    let out = consume(
        addr,
        "fmt",
        &[
            "--from-beginning",
            "-n",
            "1",
            "--format",
            "template",
            "--template",
            "{offset}\\t{timestamp}",
        ],
    );
    let (offset, ts) = out.trim_end().split_once('\t').expect(&out);
    assert_eq!(offset, "0");
    assert!(ts.parse::<i64>().is_ok(), "{out}");
}

#[test]
fn partition_offset_and_timestamp_choose_where_reading_starts() {
    let server = start_server();
    let addr = server.addr.as_str();
    ok(&["topic", "create", "pos", "-b", addr, "--partitions", "3"]);
    produce(addr, "pos", &["-p", "0"], b"a0\na1\na2\n");
    produce(addr, "pos", &["-p", "1"], b"b0\nb1\nb2\nb3\n");
    std::thread::sleep(Duration::from_millis(50));
    let split = now_ms();
    std::thread::sleep(Duration::from_millis(50));
    produce(addr, "pos", &["-p", "1"], b"b4\nb5\n");
    produce(addr, "pos", &["-p", "2"], b"c0\n");
    assert_eq!(log_end_offsets(addr, "pos", 3), [3, 6, 1]);

    let t = |args: &[&str]| -> Vec<String> {
        let mut args = args.to_vec();
        args.extend(["--timeout-ms", "1500"]);
        let mut out: Vec<String> = lines(&consume(addr, "pos", &args))
            .into_iter()
            .map(str::to_owned)
            .collect();
        out.sort();
        out
    };
    // Every partition by default; only the chosen ones with -p.
    assert_eq!(
        t(&["--from-beginning"]),
        ["a0", "a1", "a2", "b0", "b1", "b2", "b3", "b4", "b5", "c0"]
    );
    assert_eq!(
        t(&["--from-beginning", "-p", "0", "-p", "2"]),
        ["a0", "a1", "a2", "c0"]
    );
    assert_eq!(t(&["-p", "1", "--offset", "4"]), ["b4", "b5"]);
    assert_eq!(
        t(&["-p", "1", "-p", "0", "--offset", "2"]),
        ["a2", "b2", "b3", "b4", "b5"]
    );
    assert_eq!(t(&["-p", "2", "--offset", "earliest"]), ["c0"]);
    assert!(t(&["-p", "2", "--offset", "latest"]).is_empty());
    // The default start is the log end: nothing old is printed.
    assert!(t(&[]).is_empty());

    // Records at or after the timestamp; partitions with none that recent print nothing.
    let split = split.to_string();
    assert_eq!(t(&["--from-timestamp", &split]), ["b4", "b5", "c0"]);
    assert_eq!(t(&["--from-timestamp", "2000-01-01T00:00:00Z"]).len(), 10);
    assert!(t(&["--from-timestamp", "2999-01-01T00:00:00+02:00"]).is_empty());

    // --max-messages stops early; --timeout-ms ends an idle tool with exit 0.
    let out = consume(addr, "pos", &["--from-beginning", "-p", "1", "-n", "2"]);
    assert_eq!(out, "b0\nb1\n");
    let started = Instant::now();
    let o = strom(&["consume", "pos", "-b", addr, "--timeout-ms", "300"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert_eq!(stderr(&o), "Processed a total of 0 messages\n");
    assert!(started.elapsed() < Duration::from_secs(20));

    let o = strom(&["consume", "pos", "-b", addr, "-p", "3"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        "strom: partition 3 does not exist (topic 'pos' has 3 partitions)"
    );
}

#[test]
fn a_running_consumer_streams_new_records_and_exits_0_on_sigterm() {
    let server = start_server();
    let addr = server.addr.as_str();
    ok(&["topic", "create", "live", "-b", addr, "--partitions", "2"]);
    produce(addr, "live", &[], b"old\n");

    let mut child = Command::new(STROM)
        .args(["consume", "live", "-b", addr])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The consumer reports nothing when it is positioned, so keep producing
    // until records show up; each must be printed as soon as it is polled.
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    let mut sent = 0;
    while seen.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no records printed; saw {seen:?}"
        );
        produce(addr, "live", &[], format!("live-{sent}\n").as_bytes());
        sent += 1;
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            seen.push(line);
        }
    }
    assert!(!seen.contains(&"old".to_owned()), "{seen:?}");
    assert!(seen.iter().all(|l| l.starts_with("live-")), "{seen:?}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = wait_bounded(&mut child);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
        seen.push(line);
    }
    assert_eq!(
        err,
        format!("Processed a total of {} messages\n", seen.len())
    );
}

#[test]
fn a_closed_stdout_ends_the_tool_with_exit_0_and_no_error() {
    let server = start_server();
    let addr = server.addr.as_str();
    ok(&["topic", "create", "many", "-b", addr, "--partitions", "1"]);
    // Far more output than a pipe buffers, so the tool is still writing when
    // the reader goes away.
    let input: String = (0..20_000)
        .map(|i| format!("record number {i:>8}\n"))
        .collect();
    produce(addr, "many", &[], input.as_bytes());

    let mut child = Command::new(STROM)
        .args(["consume", "many", "-b", addr, "--from-beginning"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert_eq!(first, "record number        0\n");
    drop(reader);
    let status = wait_bounded(&mut child);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.starts_with("Processed a total of "), "{err}");
    assert!(!err.contains("strom:"), "{err}");
}

#[test]
fn unknown_topic_exits_1_unreachable_broker_exits_3_and_bad_flags_exit_2() {
    let server = start_server();
    let addr = server.addr.as_str();
    for args in [
        vec!["consume", "nope"],
        vec!["perf", "consume", "--topic", "nope", "--messages", "1"],
        vec![
            "perf",
            "e2e",
            "--topic",
            "nope",
            "--num-records",
            "1",
            "--record-size",
            "32",
            "--throughput",
            "-1",
        ],
    ] {
        let mut args = args;
        args.extend(["-b", addr]);
        let o = strom(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).trim(), "strom: topic 'nope' does not exist");
        assert!(o.stdout.is_empty());
    }

    let closed = format!("127.0.0.1:{}", free_port());
    for args in [
        vec!["consume", "t"],
        vec!["perf", "consume", "--topic", "t", "--messages", "1"],
    ] {
        let mut args = args;
        args.extend(["-b", closed.as_str()]);
        let o = strom(&args);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).trim(),
            format!("strom: cannot reach broker at {closed}: connection refused")
        );
    }

    ok(&["topic", "create", "t", "-b", addr]);
    let o = strom(&[
        "consume",
        "t",
        "-b",
        addr,
        "--consumer-props",
        "group.id=g",
        "-p",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        "strom: a group.id cannot be combined with --partition, --offset or --from-timestamp"
    );

    for args in [
        vec!["consume"],
        vec!["consume", "t", "--offset", "5"],
        vec!["consume", "t", "--group", "g", "-p", "0"],
        vec!["consume", "t", "-p", "0", "--offset", "-1"],
        vec![
            "consume",
            "t",
            "-p",
            "0",
            "--offset",
            "1",
            "--from-beginning",
        ],
        vec!["consume", "t", "--from-beginning", "--from-timestamp", "0"],
        vec!["consume", "t", "--from-timestamp", "yesterday"],
        vec!["consume", "t", "--format", "template"],
        vec!["consume", "t", "--format", "json", "--template", "{value}"],
        vec!["consume", "t", "--template", "{nope}"],
        vec!["consume", "t", "--key-separator", ":"],
        vec!["consume", "t", "-n", "0"],
        vec!["consume", "t", "--consumer-props", "novalue"],
        vec!["perf", "consume", "--topic", "t"],
        vec![
            "perf",
            "e2e",
            "--topic",
            "t",
            "--num-records",
            "1",
            "--throughput",
            "1",
        ],
        vec![
            "perf",
            "e2e",
            "--topic",
            "t",
            "--num-records",
            "1",
            "--record-size",
            "8",
            "--throughput",
            "1",
        ],
    ] {
        let mut args = args;
        args.extend(["-b", addr]);
        let o = strom(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn perf_consume_reads_exactly_the_requested_records_and_reports_kafkas_columns() {
    let server = start_server();
    let b = server.addr.as_str();
    ok(&["topic", "create", "pc", "-b", b, "--partitions", "3"]);
    ok(&[
        "perf",
        "produce",
        "-b",
        b,
        "--topic",
        "pc",
        "--num-records",
        "3000",
        "--record-size",
        "100",
        "--throughput",
        "-1",
    ]);

    let r = json(&[
        "perf",
        "consume",
        "-b",
        b,
        "--topic",
        "pc",
        "--messages",
        "2500",
        "--json",
    ]);
    assert_eq!(r["records"], 2500, "{r}");
    assert_eq!(r["bytes"], 250_000, "{r}");
    let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {r}"));
    assert!(f("records_per_sec") > 0.0 && f("mb_per_sec") > 0.0, "{r}");
    assert!(f("elapsed_ms") > 0.0 && f("polls") >= 1.0, "{r}");
    assert!(f("avg_latency_ms") <= f("max_latency_ms"), "{r}");
    assert!(
        f("p50_ms") <= f("p95_ms") && f("p95_ms") <= f("p99_ms"),
        "{r}"
    );
    assert!(
        f("p99_ms") <= f("p999_ms") && f("p999_ms") <= f("max_latency_ms"),
        "{r}"
    );

    // Asking for more than the topic holds: a warning after --timeout, and the
    // summary covers what was read. --num-records is an alias of --messages.
    let o = strom(&[
        "perf",
        "consume",
        "-b",
        b,
        "--topic",
        "pc",
        "--num-records",
        "5000",
        "--timeout",
        "1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("WARNING: Exiting before consuming"),
        "{}",
        stderr(&o)
    );
    let out = stdout(&o);
    let text = lines(&out);
    assert_eq!(text.len(), 3, "{out}");
    assert_eq!(
        text[0],
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
         rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
    );
    let cols: Vec<&str> = text[1].split(", ").collect();
    assert_eq!(cols.len(), 10, "{out}");
    assert_eq!(cols[2], format!("{:.4}", 300_000.0 / 1024.0 / 1024.0));
    assert_eq!(cols[4], "3000");
    assert_eq!(cols[6], "0");
    assert!(text[2].starts_with("fetch latency: "), "{out}");

    // Detailed stats print Kafka's per-interval rows.
    let out = ok(&[
        "perf",
        "consume",
        "-b",
        b,
        "--topic",
        "pc",
        "--messages",
        "3000",
        "--show-detailed-stats",
        "--reporting-interval",
        "1",
    ]);
    assert!(
        out.starts_with("time, threadId, data.consumed.in.MB"),
        "{out}"
    );
}

#[test]
fn perf_e2e_receives_every_record_once_at_the_target_rate() {
    let server = start_server();
    let b = server.addr.as_str();
    ok(&["topic", "create", "e2e", "-b", b, "--partitions", "2"]);
    // An old record must not be counted.
    produce(b, "e2e", &[], b"before the run\n");
    let started = Instant::now();
    let r = json(&[
        "perf",
        "e2e",
        "-b",
        b,
        "--topic",
        "e2e",
        "--num-records",
        "300",
        "--record-size",
        "64",
        "--throughput",
        "300",
        "--producer-props",
        "acks=1",
        "--json",
    ]);
    assert!(
        started.elapsed() >= Duration::from_millis(990),
        "rate not kept"
    );
    assert_eq!(r["records"], 300, "{r}");
    assert_eq!(r["bytes"], 300 * 64, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {r}"));
    // The achieved rate cannot beat the target by much.
    assert!(
        f("records_per_sec") > 0.0 && f("records_per_sec") < 330.0,
        "{r}"
    );
    assert!(f("mb_per_sec") > 0.0 && f("elapsed_ms") >= 990.0, "{r}");
    assert!(
        f("avg_latency_ms") > 0.0 && f("avg_latency_ms") <= f("max_latency_ms"),
        "{r}"
    );
    assert!(
        f("p50_ms") <= f("p95_ms") && f("p95_ms") <= f("p99_ms"),
        "{r}"
    );
    assert!(
        f("p99_ms") <= f("p999_ms") && f("p999_ms") <= f("max_latency_ms"),
        "{r}"
    );
    assert_eq!(log_end_offsets(b, "e2e", 2).iter().sum::<i64>(), 301);

    let out = ok(&[
        "perf",
        "e2e",
        "-b",
        b,
        "--topic",
        "e2e",
        "--num-records",
        "50",
        "--record-size",
        "24",
        "--throughput",
        "-1",
    ]);
    assert!(out.starts_with("50 records received, "), "{out}");
    assert!(out.contains("ms 99.9th."), "{out}");
}

#[test]
fn consume_and_perf_help_read_well() {
    let help = ok(&["consume", "-h"]);
    for flag in [
        "-b, --bootstrap-server <HOST:PORT>",
        "-p, --partition <N>",
        "--from-beginning",
        "--offset <OFFSET>",
        "--from-timestamp <MS|RFC3339>",
        "-n, --max-messages <N>",
        "--timeout-ms <MS>",
        "--format <FORMAT>",
        "--template <TEXT>",
        "--print-key",
        "--key-separator <SEP>",
        "--consumer-props <KEY=VALUE>...",
    ] {
        let line = help
            .lines()
            .find(|l| l.contains(flag))
            .unwrap_or_else(|| panic!("{flag} missing in:\n{help}"));
        let described = line.split(flag).nth(1).unwrap_or("").trim();
        assert!(!described.is_empty(), "{flag} has no description:\n{help}");
    }
    assert!(help.contains("<TOPIC>"), "{help}");
    let long = ok(&["consume", "--help"]);
    for text in ["Examples:", "Output formats", "{headers}", "base64"] {
        assert!(long.contains(text), "{text} missing in:\n{long}");
    }
    let top = ok(&["--help"]);
    assert!(
        top.contains("Print records of a topic (kafka-console-consumer)"),
        "{top}"
    );

    let perf = ok(&["perf", "--help"]);
    for text in [
        "kafka-producer-perf-test",
        "kafka-consumer-perf-test",
        "EndToEndLatency",
    ] {
        assert!(perf.contains(text), "{text} missing in:\n{perf}");
    }
    let pc = ok(&["perf", "consume", "-h"]);
    for flag in [
        "--topic <TOPIC>",
        "--messages <N>",
        "--timeout <MS>",
        "--consumer-props <KEY=VALUE>...",
        "--reporting-interval <MS>",
        "--show-detailed-stats",
        "--json",
    ] {
        assert!(pc.contains(flag), "{flag} missing in:\n{pc}");
    }
    assert!(pc.contains("num-records"), "{pc}");
    let e2e = ok(&["perf", "e2e", "-h"]);
    for flag in [
        "--topic <TOPIC>",
        "--num-records <N>",
        "--record-size <BYTES>",
        "--throughput <RECORDS_PER_SEC>",
        "--producer-props <KEY=VALUE>...",
        "--consumer-props <KEY=VALUE>...",
        "--json",
    ] {
        assert!(e2e.contains(flag), "{flag} missing in:\n{e2e}");
    }
}

#[test]
fn a_group_member_commits_on_exit_and_the_next_run_continues_after_it() {
    let server = start_server();
    let addr = server.addr.as_str();
    ok(&["topic", "create", "g1", "-b", addr, "--partitions", "2"]);
    let input: String = (0..20).map(|i| format!("k{i}:v{i}\n")).collect();
    produce(addr, "g1", &["--key-separator", ":"], input.as_bytes());

    // First run: the group has no offsets, --from-beginning reads from the start.
    let first = consume(
        addr,
        "g1",
        &["--group", "readers", "--from-beginning", "-n", "20"],
    );
    let mut got: Vec<&str> = lines(&first);
    got.sort_by_key(|v| v[1..].parse::<u32>().unwrap());
    let want: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    assert_eq!(got, want);

    // The exit committed every position: the group has no lag.
    let d = json(&["group", "describe", "readers", "-b", addr, "--json"]);
    let text = d.to_string();
    assert!(text.contains("\"lag\":0"), "{text}");
    assert!(!text.contains("\"lag\":1"), "{text}");

    // Second run: only what was produced since, though --from-beginning is given
    // (it only applies to partitions without a committed offset).
    produce(addr, "g1", &["--key-separator", ":"], b"k20:v20\nk21:v21\n");
    let second = consume(
        addr,
        "g1",
        // The group's first rebalance waits group.initial.rebalance.delay.ms (3 s).
        &[
            "--group",
            "readers",
            "--from-beginning",
            "-n",
            "2",
            "--timeout-ms",
            "20000",
        ],
    );
    let mut got = lines(&second);
    got.sort();
    assert_eq!(got, ["v20", "v21"]);
}
