//! `strom perf produce`: Kafka's `kafka-producer-perf-test` with its flag names.
//!
//! Latency per record is the time from `send` (including any wait for buffer
//! space, as Java's `send` blocks on `buffer.memory`) to its acknowledgement,
//! measured in the send callback as Kafka's tool does. See [`super::perf_stats`]
//! for how latencies are kept.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{ArgGroup, Args};
use strom_client::{Admin, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::Semaphore;

use super::perf_stats::Stats;
use super::{output, parse_key_value, topic_error, ConnectArgs};

/// How often a progress line is printed (Kafka's reporting interval).
const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Bytes of record values sent but not yet acknowledged, unless `buffer.memory` is
/// given in `--producer-props`. Java's default; it bounds the tool's memory when
/// the broker is slower than the sender.
const DEFAULT_BUFFER_MEMORY: u32 = 32 * 1024 * 1024;

/// Flags of `strom perf produce`, named as in `kafka-producer-perf-test`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("payload").required(true).args(["record_size", "payload_file"])))]
pub struct PerfProduceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to produce to (it must exist).
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Number of records to send.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    num_records: u64,
    /// Size of each record's value in bytes (random uppercase letters, as Kafka's tool).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    record_size: Option<u64>,
    /// File whose payloads, split by --payload-delimiter, are sent in random order.
    #[arg(long, value_name = "FILE")]
    payload_file: Option<PathBuf>,
    /// Separator of payloads in --payload-file.
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "\\n",
        requires = "payload_file"
    )]
    payload_delimiter: String,
    /// Target records per second over all producers; -1 sends as fast as possible.
    #[arg(long, value_name = "RECORDS_PER_SEC", allow_negative_numbers = true, value_parser = parse_throughput)]
    throughput: f64,
    /// Producer properties by their Kafka names, e.g. --producer-props acks=1 linger.ms=10.
    #[arg(long, value_name = "KEY=VALUE", num_args = 1.., value_parser = parse_key_value)]
    producer_props: Vec<(String, String)>,
    /// Number of producer instances sending in parallel; records and throughput are split among them.
    #[arg(long, value_name = "P", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    producers: u64,
    /// Print one final JSON object on stdout instead of the summary line.
    #[arg(long)]
    json: bool,
}

/// Positive records per second, or any negative number for "unlimited".
fn parse_throughput(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v != 0.0 => Ok(v),
        _ => Err(format!(
            "expected a positive rate or -1 (unlimited), got '{s}'"
        )),
    }
}

/// The values to send.
struct Payloads {
    values: Vec<Bytes>,
}

impl Payloads {
    fn load(a: &PerfProduceArgs) -> anyhow::Result<Payloads> {
        if let Some(size) = a.record_size {
            let mut rng = XorShift::seeded();
            let value: Vec<u8> = (0..size).map(|_| b'A' + (rng.next() % 26) as u8).collect();
            return Ok(Payloads {
                values: vec![Bytes::from(value)],
            });
        }
        let path = a.payload_file.as_ref().context("no payload given")?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading payload file {}", path.display()))?;
        let delimiter = a
            .payload_delimiter
            .replace("\\n", "\n")
            .replace("\\t", "\t");
        let values: Vec<Bytes> = text
            .split(delimiter.as_str())
            .filter(|p| !p.is_empty())
            .map(|p| Bytes::copy_from_slice(p.as_bytes()))
            .collect();
        if values.is_empty() {
            bail!("payload file {} holds no payloads", path.display());
        }
        Ok(Payloads { values })
    }

    fn pick(&self, rng: &mut XorShift) -> Bytes {
        let i = (rng.next() % self.values.len() as u64) as usize;
        self.values[i].clone()
    }
}

/// A small PRNG for payload bytes and payload choice; nothing here needs more.
struct XorShift(u64);

impl XorShift {
    fn seeded() -> XorShift {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        XorShift(nanos | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What one producer instance sends: iterations `first, first + step, ...` below `total`.
struct Share {
    producer: Producer,
    first: u64,
    step: u64,
    total: u64,
    /// Records per second for this producer; `None` is unlimited.
    rate: Option<f64>,
}

/// Shared by every send loop.
struct Run {
    topic: String,
    payloads: Payloads,
    stats: Mutex<Stats>,
    /// Permits are value bytes in flight; a send waits when they run out.
    buffer: Arc<Semaphore>,
    buffer_bytes: u32,
}

/// Runs `strom perf produce`.
pub async fn run(a: PerfProduceArgs) -> anyhow::Result<()> {
    let payloads = Payloads::load(&a)?;
    let mut buffer_bytes = DEFAULT_BUFFER_MEMORY;
    let mut config = ProducerConfig::default();
    config.set("bootstrap.servers", &a.connect.bootstrap_server)?;
    for (k, v) in &a.producer_props {
        if k == "buffer.memory" {
            buffer_bytes = v
                .parse::<u32>()
                .ok()
                .filter(|b| *b > 0)
                .with_context(|| format!("invalid value '{v}' for buffer.memory"))?;
        } else {
            config.set(k, v).context("invalid --producer-props")?;
        }
    }
    config.validate().context("invalid --producer-props")?;

    // Fail fast on a missing topic: the producer would otherwise retry until
    // delivery.timeout.ms.
    let admin = Admin::connect(&a.connect.bootstrap_server).await?;
    admin
        .describe_topics(&[a.topic.as_str()])
        .await
        .map_err(|e| topic_error(&a.topic, e))?;

    let producers = a.producers.min(a.num_records);
    let mut shares = Vec::new();
    for i in 0..producers {
        shares.push(Share {
            producer: Producer::new(config.clone()).await?,
            first: i,
            step: producers,
            total: a.num_records,
            rate: (a.throughput > 0.0).then(|| a.throughput / producers as f64),
        });
    }
    let run = Arc::new(Run {
        topic: a.topic.clone(),
        payloads,
        stats: Mutex::new(Stats::new(a.num_records)),
        buffer: Arc::new(Semaphore::new(buffer_bytes as usize)),
        buffer_bytes,
    });

    let start = Instant::now();
    let reporter = tokio::spawn(report_progress(run.clone()));
    let loops: Vec<_> = shares
        .into_iter()
        .map(|share| tokio::spawn(send_loop(run.clone(), share)))
        .collect();
    for l in loops {
        l.await.context("a send loop panicked")?;
    }
    // Every callback returns its permits; holding all of them means every record is accounted for.
    let _all = run
        .buffer
        .acquire_many(buffer_bytes)
        .await
        .context("buffer closed")?;
    let elapsed = start.elapsed();
    reporter.abort();

    let stats = run.stats.lock().unwrap();
    let summary = stats.summary(elapsed);
    if a.json {
        output::print_json(&summary)?;
    } else {
        println!("{}", summary.line());
    }
    match stats.failures() {
        (0, _) => Ok(()),
        (n, first) => bail!(
            "{n} of {} records were not delivered; first error: {}",
            a.num_records,
            first.unwrap_or("unknown")
        ),
    }
}

/// Sends this producer's share, throttled to its rate by sleeping until each
/// record's due time (Kafka's ThroughputThrottler, without busy-waiting), then closes it.
async fn send_loop(run: Arc<Run>, share: Share) {
    let mut rng = XorShift::seeded();
    let start = tokio::time::Instant::now();
    let mut sent: u64 = 0;
    let mut iteration = share.first;
    while iteration < share.total {
        if let Some(rate) = share.rate {
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            if due > tokio::time::Instant::now() {
                tokio::time::sleep_until(due).await;
            }
        }
        let value = run.payloads.pick(&mut rng);
        let bytes = value.len();
        let sent_at = Instant::now();
        let weight = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, run.buffer_bytes);
        let permit = run
            .buffer
            .clone()
            .acquire_many_owned(weight)
            .await
            .expect("the buffer semaphore is never closed");
        let record = ProducerRecord::new(run.topic.as_str()).value(value);
        let callback_run = run.clone();
        share.producer.send_with_callback(record, move |result| {
            let latency = sent_at.elapsed();
            let mut stats = callback_run.stats.lock().unwrap();
            match result {
                Ok(_) => stats.record(iteration, latency, bytes),
                Err(e) => stats.fail(e.to_string()),
            }
            drop(stats);
            drop(permit);
        });
        sent += 1;
        iteration += share.step;
    }
    share.producer.close().await;
}

/// Prints a progress line on stderr every [`REPORT_INTERVAL`] until aborted.
async fn report_progress(run: Arc<Run>) {
    let mut ticks = tokio::time::interval(REPORT_INTERVAL);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let line = run.stats.lock().unwrap().take_window(Instant::now());
        eprintln!("{line}");
    }
}
