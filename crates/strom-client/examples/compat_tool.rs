//! The Rust (`strom-client`) side of the compatibility suite in `tests/compat/`: the twin of
//! `tests/compat/java/Tool.java`, with the same modes, arguments and JSON lines on stdout, so
//! the suite can drive it exactly as it drives the Java kafka-clients tool.
//!
//! ```text
//! produce <bootstrap> <topic> <count> <compression>
//!     Sends records 0..count-1 (idempotent, acks=all, linger.ms=5) built by the rule of
//!     compatlib.expected_record with producer name "rust": key, value, headers and
//!     timestamp = base_ts + i. Prints one JSON line per acknowledgement {"i","p","o"} (or
//!     {"i","error"}) and a final {"summary":{"acked","errors","base_ts"}}. Exit 1 if any
//!     send failed.
//!
//! consume <bootstrap> <topic> <partitions> <expected-count> [timeout-s]
//!     Assigns partitions 0..partitions-1 from the beginning (no group), prints each record
//!     as a JSON line {"p","o","k","v","h","ts","tt"} (bytes base64, null as null) until
//!     expected-count records arrived, then polls one more second to expose duplicates.
//!     Exit 2 if the count was not reached before the timeout (default 120 s).
//!
//! group-consume <bootstrap> <topic> <group> <auto|sync|none> [session-timeout-ms|-] [client-id] [max-runtime-s] [property=value ...]
//!     A member of a consumer group (classic unless a property says group.protocol=consumer):
//!     subscribe(topic) with group.id=group, auto.offset.reset=earliest, keys and values read
//!     as UTF-8. Commit mode: auto = enable.auto.commit=true (5 s interval); sync =
//!     enable.auto.commit=false and commit_sync after every non-empty poll; none = never
//!     commits. "-" keeps the client's default session.timeout.ms (45000). Each trailing
//!     property=value is set on the consumer last. Prints, one JSON line each, flushed as
//!     they happen:
//!       {"partition","offset","key","value"}                          per record
//!       {"event":"assigned"|"revoked"|"lost","partitions":[...]}        per rebalance callback
//!       {"event":"committed","offsets":{"partition":next-offset,...}}   after each commit_sync
//!       {"event":"error","error":"..."}                                 the poll loop failed (exit 1)
//!       {"event":"closed"}                                              after close()
//!     Runs until SIGTERM or SIGINT (then closes cleanly: LeaveGroup, exit 0), SIGKILL, or
//!     max-runtime-s (default 600, so an orphan cannot outlive a crashed test run by long).
//!
//! txn-produce <bootstrap> <topic> <transactional-id> <commit|abort> <count> <prefix>
//!     The twin of `java/Txn.java produce`: init_transactions, begin_transaction, records
//!     i = 0..count-1 with key "i" and value "prefix-i" (Java's partitioner by key), then
//!     commit_transaction or abort_transaction (after a flush). Prints {"i","p","o"} per
//!     acknowledged record, then {"done":{"outcome","count","acked"}}. Uses
//!     transaction version 2 when the broker finalizes it, as strom-client does by default.
//! ```
//!
//! Built by `cargo build --release -p strom -p strom-client --bins --examples`; the suite
//! runs `target/release/examples/compat_tool` (or the debug one).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Stdout, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strom_client::{
    Consumer, ConsumerConfig, ConsumerRebalanceListener, ConsumerRecord, OffsetAndMetadata,
    Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use strom_protocol::records::TimestampType;

/// Filler for record values; must equal PAD in tests/compat/compatlib.py and Tool.PAD.
static PAD: LazyLock<String> = LazyLock::new(|| "0123456789abcdefghijklmnopqrstuvwxyz".repeat(10));

/// The name this producer writes into values and the `producer` header.
const PRODUCER_NAME: &str = "rust";

const USAGE: &str = "usage: compat_tool produce <bootstrap> <topic> <count> <compression>
       compat_tool consume <bootstrap> <topic> <partitions> <expected-count> [timeout-s]
       compat_tool group-consume <bootstrap> <topic> <group> <auto|sync|none> [session-timeout-ms|-] [client-id] [max-runtime-s] [property=value ...]
       compat_tool txn-produce <bootstrap> <topic> <transactional-id> <commit|abort> <count> <prefix>";

static OUT: LazyLock<Mutex<BufWriter<Stdout>>> =
    LazyLock::new(|| Mutex::new(BufWriter::with_capacity(1 << 16, std::io::stdout())));

/// Writes one JSON line (buffered).
fn emit(line: &str) {
    let mut out = OUT.lock().unwrap_or_else(|e| e.into_inner());
    // A closed stdout (the reader went away) is not worth a panic in a callback.
    let _ = out.write_all(line.as_bytes());
    let _ = out.write_all(b"\n");
}

fn flush_out() {
    let _ = OUT.lock().unwrap_or_else(|e| e.into_inner()).flush();
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("produce") if args.len() >= 5 => match args[3].parse() {
            Ok(count) => produce(&args[1], &args[2], count, &args[4]).await,
            Err(_) => usage_error(&format!("count must be a number, not {}", args[3])),
        },
        Some("consume") if args.len() >= 5 => {
            let partitions = args[3].parse();
            let expected = args[4].parse();
            let timeout_s = args.get(5).map_or(Ok(120), |s| s.parse());
            match (partitions, expected, timeout_s) {
                (Ok(p), Ok(e), Ok(t)) => consume(&args[1], &args[2], p, e, t).await,
                _ => usage_error("partitions, expected-count and timeout-s must be numbers"),
            }
        }
        Some("group-consume") if args.len() >= 5 => group_consume_args(&args).await,
        Some("txn-produce")
            if args.len() == 7 && matches!(args[4].as_str(), "commit" | "abort") =>
        {
            match args[5].parse() {
                Ok(count) => {
                    txn_produce(
                        &args[1],
                        &args[2],
                        &args[3],
                        args[4] == "commit",
                        count,
                        &args[6],
                    )
                    .await
                }
                Err(_) => usage_error(&format!("count must be a number, not {}", args[5])),
            }
        }
        _ => usage_error(""),
    };
    flush_out();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("compat_tool: {e}");
            ExitCode::from(1)
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn usage_error(why: &str) -> Result<u8> {
    if !why.is_empty() {
        eprintln!("{why}");
    }
    eprintln!("{USAGE}");
    Ok(64)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// ------------------------------------------------------------------ produce

/// Record `i` as every producer of the suite builds it (compatlib.expected_record).
fn compat_record(topic: &str, i: u64, base_ts: i64) -> ProducerRecord {
    let pad = &PAD[..20 + (i % 200) as usize];
    ProducerRecord::new(topic)
        .key(format!("k-{i}"))
        .value(format!("v-{i}-{PRODUCER_NAME}-{pad}"))
        .header("i", i.to_string())
        .header("producer", PRODUCER_NAME)
        .header("bin", vec![(i % 256) as u8, 0, 255])
        .header("dup", "a")
        .header("dup", "b")
        .timestamp(base_ts + i as i64)
}

async fn txn_produce(
    bootstrap: &str,
    topic: &str,
    transactional_id: &str,
    commit: bool,
    count: u64,
    prefix: &str,
) -> Result<u8> {
    let config = ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("transactional.id", transactional_id),
        ("client.id", "strom-compat-rust-txn-producer"),
    ])?;
    let producer = Producer::new(config).await?;
    producer.init_transactions().await?;
    producer.begin_transaction()?;
    let mut sends = Vec::with_capacity(count as usize);
    for i in 0..count {
        let record = ProducerRecord::new(topic)
            .key(i.to_string())
            .value(format!("{prefix}-{i}"));
        sends.push((i, producer.send(record)));
    }
    producer.flush().await;
    let mut acked = 0u64;
    for (i, send) in sends {
        match send.await {
            Ok(md) => {
                acked += 1;
                emit(&format!(
                    "{{\"i\":{i},\"p\":{},\"o\":{}}}",
                    md.partition, md.offset
                ));
            }
            Err(e) => emit(&format!(
                "{{\"i\":{i},\"error\":{}}}",
                json_string(&e.to_string())
            )),
        }
    }
    let outcome = if commit {
        producer.commit_transaction().await
    } else {
        producer.abort_transaction().await
    };
    if let Err(e) = outcome {
        emit(&format!("{{\"error\":{}}}", json_string(&e.to_string())));
        producer.close().await;
        return Ok(1);
    }
    emit(&format!(
        "{{\"done\":{{\"outcome\":\"{}\",\"count\":{count},\"acked\":{acked}}}}}",
        if commit { "commit" } else { "abort" }
    ));
    producer.close().await;
    Ok(if acked == count { 0 } else { 1 })
}

async fn produce(bootstrap: &str, topic: &str, count: u64, compression: &str) -> Result<u8> {
    let config = ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("compression.type", compression),
        ("linger.ms", "5"),
        ("client.id", "strom-compat-rust-producer"),
    ])?;
    let base_ts = now_ms();
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let producer = Producer::new(config).await?;
    let mut outcomes = Vec::with_capacity(count as usize);
    for i in 0..count {
        let (acked, errors) = (acked.clone(), errors.clone());
        let done =
            producer.send_with_callback(
                compat_record(topic, i, base_ts),
                move |result| match result {
                    Ok(md) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                        emit(&format!(
                            "{{\"i\":{i},\"p\":{},\"o\":{}}}",
                            md.partition, md.offset
                        ));
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        emit(&format!(
                            "{{\"i\":{i},\"error\":{}}}",
                            json_string(&e.to_string())
                        ));
                    }
                },
            );
        outcomes.push(done);
    }
    producer.flush().await;
    // Every callback has run once its future resolved (the outcome is counted there).
    for done in outcomes {
        let _ = done.await;
    }
    producer.close().await;
    let (acked, errors) = (
        acked.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
    );
    emit(&format!(
        "{{\"summary\":{{\"acked\":{acked},\"errors\":{errors},\"base_ts\":{base_ts}}}}}"
    ));
    flush_out();
    Ok(if errors == 0 && acked == count { 0 } else { 1 })
}

// ------------------------------------------------------------------ consume

async fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: u64,
    timeout_s: u64,
) -> Result<u8> {
    let config = ConsumerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("enable.auto.commit", "false"),
        ("auto.offset.reset", "earliest"),
        ("client.id", "strom-compat-rust-consumer"),
    ])?;
    let mut consumer = Consumer::new(config).await?;
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    consumer.assign(tps.clone());
    consumer.seek_to_beginning(&tps)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_s);
    let mut drain_until: Option<tokio::time::Instant> = None;
    let mut seen = 0u64;
    while tokio::time::Instant::now() < drain_until.unwrap_or(deadline).min(deadline) {
        for r in consumer.poll(Duration::from_millis(200)).await? {
            emit(&record_json(&r));
            seen += 1;
        }
        if seen >= expected && drain_until.is_none() {
            drain_until = Some(tokio::time::Instant::now() + Duration::from_secs(1));
        }
    }
    if seen < expected {
        // Say where each partition stands, so a short read can be diagnosed.
        let ends = consumer.end_offsets(&tps).await;
        for tp in &tps {
            let end = match &ends {
                Ok(ends) => format!("{:?}", ends.get(tp)),
                Err(e) => e.to_string(),
            };
            let pos =
                match tokio::time::timeout(Duration::from_secs(5), consumer.position(tp)).await {
                    Ok(Ok(p)) => p.to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "timed out".into(),
                };
            eprintln!("consume timed out: {tp} position={pos} end={end}");
        }
    }
    consumer.close().await;
    flush_out();
    Ok(if seen >= expected { 0 } else { 2 })
}

fn record_json(r: &ConsumerRecord) -> String {
    let mut s = String::with_capacity(256);
    s.push_str(&format!("{{\"p\":{},\"o\":{}", r.partition, r.offset));
    s.push_str(&format!(",\"k\":{}", b64_or_null(r.key.as_deref())));
    s.push_str(&format!(",\"v\":{}", b64_or_null(r.value.as_deref())));
    s.push_str(",\"h\":[");
    for (n, h) in r.headers.iter().enumerate() {
        if n > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "[{},{}]",
            json_string(&h.key),
            b64_or_null(h.value.as_deref())
        ));
    }
    let tt = match r.timestamp_type {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    };
    s.push_str(&format!("],\"ts\":{},\"tt\":\"{tt}\"}}", r.timestamp));
    s
}

// ------------------------------------------------------------------ group-consume

async fn group_consume_args(args: &[String]) -> Result<u8> {
    let session_timeout_ms = args.get(5).filter(|s| s.as_str() != "-").cloned();
    let client_id = args
        .get(6)
        .cloned()
        .unwrap_or_else(|| "strom-compat-rust-group-member".into());
    let max_runtime_s: u64 = match args.get(7).map_or(Ok(600), |s| s.parse()) {
        Ok(s) => s,
        Err(_) => return usage_error("max-runtime-s must be a number"),
    };
    let mut extra = Vec::new();
    for arg in args.iter().skip(8) {
        match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() => extra.push((k.to_string(), v.to_string())),
            _ => {
                eprintln!("consumer property must be name=value, not {arg}");
                return Ok(64);
            }
        }
    }
    group_consume(
        &args[1],
        &args[2],
        &args[3],
        &args[4],
        session_timeout_ms,
        &client_id,
        max_runtime_s,
        extra,
    )
    .await
}

/// Emits the rebalance callbacks as JSON lines, flushed at once.
struct EventListener;

impl EventListener {
    fn event(kind: &str, partitions: &[TopicPartition]) {
        let list: Vec<String> = partitions
            .iter()
            .map(|tp| tp.partition.to_string())
            .collect();
        emit(&format!(
            "{{\"event\":\"{kind}\",\"partitions\":[{}]}}",
            list.join(",")
        ));
        flush_out();
    }
}

impl ConsumerRebalanceListener for EventListener {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        EventListener::event("revoked", partitions);
    }
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        EventListener::event("assigned", partitions);
    }
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        EventListener::event("lost", partitions);
    }
}

#[allow(clippy::too_many_arguments)]
async fn group_consume(
    bootstrap: &str,
    topic: &str,
    group: &str,
    commit_mode: &str,
    session_timeout_ms: Option<String>,
    client_id: &str,
    max_runtime_s: u64,
    extra: Vec<(String, String)>,
) -> Result<u8> {
    if !matches!(commit_mode, "auto" | "sync" | "none") {
        eprintln!("commit mode must be auto, sync or none, not {commit_mode}");
        return Ok(64);
    }
    let mut props: Vec<(String, String)> = vec![
        ("bootstrap.servers".into(), bootstrap.into()),
        ("group.id".into(), group.into()),
        ("client.id".into(), client_id.into()),
        (
            "enable.auto.commit".into(),
            (commit_mode == "auto").to_string(),
        ),
        ("auto.offset.reset".into(), "earliest".into()),
    ];
    if let Some(ms) = session_timeout_ms {
        props.push(("session.timeout.ms".into(), ms));
    }
    props.extend(extra);
    let config = ConsumerConfig::from_properties(props)?;
    let mut consumer = Consumer::new(config).await?;

    // SIGTERM / SIGINT: finish the current poll, then close cleanly (LeaveGroup). The poll is
    // not cancelled mid-way, so a rebalance being applied completes first.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            stop.store(true, Ordering::SeqCst);
        });
    }

    let mut rc = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(max_runtime_s);
    let outcome: std::result::Result<(), String> = async {
        consumer
            .subscribe_with_listener([topic], EventListener)
            .map_err(|e| e.to_string())?;
        while tokio::time::Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
            let records = consumer
                .poll(Duration::from_millis(200))
                .await
                .map_err(|e| e.to_string())?;
            if records.is_empty() {
                continue;
            }
            let mut next: BTreeMap<i32, i64> = BTreeMap::new();
            for r in &records {
                emit(&format!(
                    "{{\"partition\":{},\"offset\":{},\"key\":{},\"value\":{}}}",
                    r.partition,
                    r.offset,
                    utf8_or_null(r.key.as_deref()),
                    utf8_or_null(r.value.as_deref())
                ));
                next.insert(r.partition, r.offset + 1);
            }
            flush_out();
            if commit_mode == "sync" {
                let offsets: HashMap<TopicPartition, OffsetAndMetadata> = next
                    .iter()
                    .map(|(p, o)| (TopicPartition::new(topic, *p), OffsetAndMetadata::new(*o)))
                    .collect();
                consumer
                    .commit_sync(&offsets)
                    .await
                    .map_err(|e| e.to_string())?;
                let list: Vec<String> = next.iter().map(|(p, o)| format!("\"{p}\":{o}")).collect();
                emit(&format!(
                    "{{\"event\":\"committed\",\"offsets\":{{{}}}}}",
                    list.join(",")
                ));
                flush_out();
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        emit(&format!(
            "{{\"event\":\"error\",\"error\":{}}}",
            json_string(&e)
        ));
        rc = 1;
    }
    // As Tool.java's consumer.close(Duration.ofSeconds(20)).
    if tokio::time::timeout(Duration::from_secs(20), consumer.close())
        .await
        .is_err()
    {
        emit("{\"event\":\"error\",\"error\":\"close() did not finish within 20 s\"}");
        rc = 1;
    }
    emit("{\"event\":\"closed\"}");
    flush_out();
    Ok(rc)
}

// ------------------------------------------------------------------ JSON and base64

fn utf8_or_null(b: Option<&[u8]>) -> String {
    b.map_or_else(
        || "null".into(),
        |b| json_string(&String::from_utf8_lossy(b)),
    )
}

fn b64_or_null(b: Option<&[u8]>) -> String {
    b.map_or_else(|| "null".into(), |b| format!("\"{}\"", base64(b)))
}

/// A JSON string literal (serde_json's escaping).
fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

/// Standard base64 (RFC 4648 alphabet, `=` padding), as Java's `Base64.getEncoder()`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
