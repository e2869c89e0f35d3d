//! `strom perf e2e`: produce-to-consume latency at a target rate, after Kafka's
//! `EndToEndLatency` (which sends one record at a time; this tool paces
//! records at `--throughput`, so latency under load can be measured too).
//!
//! One consumer is assigned every partition of the topic and positioned at the
//! log end before anything is sent. One producer sends `--num-records` records;
//! each value starts with a stamp: this run's id, the record's sequence number,
//! and its send time as nanoseconds since the run began on this process's
//! monotonic clock. Latency is the time from that stamp to the return of the
//! poll that delivered the record, so clocks never need to agree.
//!
//! Every sequence number must arrive exactly once: a bitmap (one bit per
//! record) finds duplicates, and after the last record the consumer reads on to
//! the log end offsets to catch late duplicates. Records without this run's
//! stamp (another producer on the topic) are ignored.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use strom_client::{
    Consumer, ConsumerConfig, ConsumerRecord, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use tokio::sync::Semaphore;

use super::perf_stats::{Stats, Summary};
use super::{output, parse_key_value, topic_partitions, ConnectArgs};

/// Bytes of the stamp at the start of every value: run id, sequence number,
/// send time (three big-endian u64).
const STAMP_BYTES: usize = 24;

/// Most records one run may send. The exactly-once check keeps one bit per
/// record, so this caps that bitmap at 12.5 MB.
const MAX_RECORDS: u64 = 100_000_000;

/// Largest `--record-size`; larger values would not fit Kafka's default
/// `max.request.size` anyway, and every in-flight value is held in memory.
const MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// How often a progress line is printed.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Longest single poll: the loop looks at the sender between polls, so this
/// bounds how late it notices the last acknowledgement.
const MAX_POLL_WAIT: Duration = Duration::from_millis(500);

/// Bytes of record values sent but not yet acknowledged, unless `buffer.memory`
/// is given in `--producer-props` (Java's default); bounds the tool's memory
/// when the broker is slower than the target rate.
const DEFAULT_BUFFER_MEMORY: u32 = 32 * 1024 * 1024;

/// `client.id`s unless the props set them.
const PRODUCER_CLIENT_ID: &str = "strom-e2e-producer";
const CONSUMER_CLIENT_ID: &str = "strom-e2e-consumer";

/// Shown after `strom perf e2e --help`.
const AFTER_HELP: &str = "\
Example:
  strom perf e2e --topic events --num-records 10000 --record-size 100 --throughput 1000

Latency is from each send to the return of the poll that delivered the record; records/sec
is the rate achieved from the first send to the last arrival. Prints a progress line on
stderr every 5 s. Exits 1 if a record is not delivered, never arrives within --timeout, or
arrives twice.";

/// Flags of `strom perf e2e`.
#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct PerfE2eArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to produce to and consume from (it must exist).
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Number of records to send (at most 100000000).
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..=MAX_RECORDS)
    )]
    num_records: u64,
    /// Size of each record's value in bytes; the first 24 carry the run id,
    /// sequence number and send time.
    #[arg(
        long,
        value_name = "BYTES",
        value_parser = clap::value_parser!(u64).range(STAMP_BYTES as u64..=MAX_RECORD_BYTES)
    )]
    record_size: u64,
    /// Target records per second; -1 sends as fast as possible.
    #[arg(long, value_name = "RECORDS_PER_SEC", allow_negative_numbers = true, value_parser = parse_throughput)]
    throughput: f64,
    /// Producer properties by their Kafka names, e.g. --producer-props acks=1.
    ///
    /// linger.ms defaults to 0 here (as in Kafka's EndToEndLatency) so batching
    /// does not add to the latency; buffer.memory caps unacknowledged value bytes.
    #[arg(long, value_name = "KEY=VALUE", num_args = 1.., value_parser = parse_key_value)]
    producer_props: Vec<(String, String)>,
    /// Consumer properties by their Kafka names, e.g. --consumer-props fetch.max.wait.ms=100.
    ///
    /// group.id is refused: the consumer reads by assignment and commits nothing.
    #[arg(long, value_name = "KEY=VALUE", num_args = 1.., value_parser = parse_key_value)]
    consumer_props: Vec<(String, String)>,
    /// Fail when records are still missing this long after the last one was
    /// acknowledged and the last one arrived.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    timeout: u64,
    /// Print one final JSON object on stdout (perf produce's keys) instead of the summary line.
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

/// What a value starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    run_id: u64,
    seq: u64,
    /// Send time, nanoseconds after the run's base instant.
    sent_ns: u64,
}

impl Stamp {
    /// A value of `size` bytes (at least [`STAMP_BYTES`]) starting with the stamp.
    fn encode(self, size: usize) -> Bytes {
        debug_assert!(size >= STAMP_BYTES);
        let mut v = Vec::with_capacity(size);
        v.extend_from_slice(&self.run_id.to_be_bytes());
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.sent_ns.to_be_bytes());
        v.resize(size, b'x');
        Bytes::from(v)
    }

    fn decode(value: &[u8]) -> Option<Stamp> {
        let field = |i: usize| -> Option<u64> {
            let bytes = value.get(i * 8..i * 8 + 8)?;
            Some(u64::from_be_bytes(bytes.try_into().ok()?))
        };
        Some(Stamp {
            run_id: field(0)?,
            seq: field(1)?,
            sent_ns: field(2)?,
        })
    }
}

/// Which sequence numbers arrived, one bit each.
struct Seen {
    bits: Vec<u64>,
    received: u64,
    duplicates: u64,
    first_duplicate: Option<u64>,
}

impl Seen {
    fn new(records: u64) -> Seen {
        Seen {
            bits: vec![0; records.div_ceil(64) as usize],
            received: 0,
            duplicates: 0,
            first_duplicate: None,
        }
    }

    /// Marks `seq` (below the record count); `false` when it had arrived before.
    fn mark(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.bits[word] & bit != 0 {
            self.duplicates += 1;
            self.first_duplicate.get_or_insert(seq);
            return false;
        }
        self.bits[word] |= bit;
        self.received += 1;
        true
    }

    /// The lowest sequence number below `records` that has not arrived.
    fn first_missing(&self, records: u64) -> Option<u64> {
        let (i, word) = self
            .bits
            .iter()
            .enumerate()
            .find(|(_, w)| **w != u64::MAX)?;
        let seq = i as u64 * 64 + u64::from(word.trailing_ones());
        (seq < records).then_some(seq)
    }
}

/// Delivery failures the producer reported.
#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

/// What the send task needs.
struct Sender {
    producer: Producer,
    topic: String,
    run_id: u64,
    records: u64,
    record_size: usize,
    /// Records per second; `None` is unlimited.
    rate: Option<f64>,
    /// The instant send times are measured from.
    base: Instant,
    /// Permits are value bytes in flight; a send waits when they run out.
    buffer: Arc<Semaphore>,
    buffer_bytes: u32,
    failures: Arc<Mutex<Failures>>,
}

impl Sender {
    /// Sends every record at the target rate (sleeping until each one's due
    /// time, as perf produce does), then closes the producer, which waits for
    /// every acknowledgement. Returns when that happened.
    async fn run(self) -> Instant {
        let start = tokio::time::Instant::from_std(self.base);
        let weight = u32::try_from(self.record_size)
            .unwrap_or(u32::MAX)
            .clamp(1, self.buffer_bytes);
        for seq in 0..self.records {
            if let Some(rate) = self.rate {
                let due = start + Duration::from_secs_f64(seq as f64 / rate);
                if due > tokio::time::Instant::now() {
                    tokio::time::sleep_until(due).await;
                }
            }
            let Ok(permit) = self.buffer.clone().acquire_many_owned(weight).await else {
                break;
            };
            let stamp = Stamp {
                run_id: self.run_id,
                seq,
                sent_ns: nanos_since(self.base, Instant::now()),
            };
            let record =
                ProducerRecord::new(self.topic.as_str()).value(stamp.encode(self.record_size));
            let failures = self.failures.clone();
            self.producer.send_with_callback(record, move |result| {
                if let Err(e) = result {
                    let mut f = failures.lock().unwrap_or_else(|p| p.into_inner());
                    f.count += 1;
                    f.first.get_or_insert_with(|| e.to_string());
                }
                drop(permit);
            });
        }
        self.producer.close().await;
        Instant::now()
    }
}

fn nanos_since(base: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX)
}

/// A run id unlikely to collide with another run's on the same topic.
fn run_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // splitmix64 of the clock and pid, so runs started together still differ.
    let mut z = nanos ^ (u64::from(std::process::id()) << 32);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs `strom perf e2e`.
pub async fn run(a: PerfE2eArgs) -> anyhow::Result<()> {
    let (producer_config, buffer_bytes) = producer_config(&a)?;
    let consumer_config = consumer_config(&a)?;
    let partitions = topic_partitions(&a.connect.bootstrap_server, &a.topic).await?;

    // Positions are fixed at the log end before the first send, so no record of
    // this run can be skipped by a late offset lookup.
    let mut consumer = Consumer::new(consumer_config).await?;
    consumer.assign(partitions.clone());
    consumer.seek_to_end(&[])?;
    for tp in &partitions {
        consumer.position(tp).await?;
    }
    let producer = Producer::new(producer_config).await?;

    let failures = Arc::new(Mutex::new(Failures::default()));
    let run_id = run_id();
    let base = Instant::now();
    let sender = tokio::spawn(
        Sender {
            producer,
            topic: a.topic.clone(),
            run_id,
            records: a.num_records,
            record_size: a.record_size as usize,
            rate: (a.throughput > 0.0).then_some(a.throughput),
            base,
            buffer: Arc::new(Semaphore::new(buffer_bytes as usize)),
            buffer_bytes,
            failures: failures.clone(),
        }
        .run(),
    );
    let mut receiver = Receiver {
        run_id,
        records: a.num_records,
        base,
        seen: Seen::new(a.num_records),
        stats: Stats::new(a.num_records),
        foreign: 0,
        last_new_at: base,
    };
    let outcome = receiver
        .receive_all(
            &mut consumer,
            sender,
            &failures,
            Duration::from_millis(a.timeout),
        )
        .await?;
    let drained = match outcome {
        Outcome::Complete => {
            receiver
                .read_to_log_end(&mut consumer, &partitions, Duration::from_millis(a.timeout))
                .await
        }
        _ => Ok(()),
    };

    let mut summary: Summary = receiver
        .stats
        .summary(receiver.last_new_at.saturating_duration_since(base));
    summary.failed = a.num_records - receiver.seen.received;
    if a.json {
        output::print_json(&summary)?;
    } else {
        println!("{}", summary.line_as("received"));
    }
    if receiver.foreign > 0 {
        eprintln!("ignored {} records not sent by this run", receiver.foreign);
    }
    drained?;
    match outcome {
        Outcome::NotDelivered { count, first } => bail!(
            "{count} of {} records were not delivered by the producer; first error: {first}",
            a.num_records
        ),
        Outcome::Missing => bail!(
            "{} of {} records never arrived within {} ms (first missing: record {})",
            a.num_records - receiver.seen.received,
            a.num_records,
            a.timeout,
            receiver
                .seen
                .first_missing(a.num_records)
                .map_or("?".to_owned(), |s| s.to_string())
        ),
        Outcome::Complete if receiver.seen.duplicates > 0 => bail!(
            "{} records arrived more than once (first: record {})",
            receiver.seen.duplicates,
            receiver.seen.first_duplicate.unwrap_or(0)
        ),
        Outcome::Complete => Ok(()),
    }
}

/// The producer config from the flags (linger.ms 0 unless given), and
/// `buffer.memory` in bytes.
fn producer_config(a: &PerfE2eArgs) -> anyhow::Result<(ProducerConfig, u32)> {
    let mut buffer_bytes = DEFAULT_BUFFER_MEMORY;
    let mut config = ProducerConfig::default();
    config.set("bootstrap.servers", &a.connect.bootstrap_server)?;
    config.set("client.id", PRODUCER_CLIENT_ID)?;
    config.set("linger.ms", "0")?;
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
    Ok((config, buffer_bytes))
}

fn consumer_config(a: &PerfE2eArgs) -> anyhow::Result<ConsumerConfig> {
    let mut config = ConsumerConfig::default();
    config.set("bootstrap.servers", &a.connect.bootstrap_server)?;
    config.set("client.id", CONSUMER_CLIENT_ID)?;
    for (k, v) in &a.consumer_props {
        if k == "group.id" {
            bail!(
                "group.id in --consumer-props is not supported: strom perf e2e reads every \
                 partition by assignment and commits no offsets"
            );
        }
        config.set(k, v).context("invalid --consumer-props")?;
    }
    config.validate().context("invalid --consumer-props")?;
    Ok(config)
}

/// How receiving ended.
enum Outcome {
    /// Every record arrived.
    Complete,
    /// The producer gave up on some records, so they can never arrive.
    NotDelivered { count: u64, first: String },
    /// Some records did not arrive within the timeout.
    Missing,
}

/// The consuming side: what arrived and how late.
struct Receiver {
    run_id: u64,
    records: u64,
    base: Instant,
    seen: Seen,
    /// Latency and bytes of each record's first arrival.
    stats: Stats,
    /// Records without this run's stamp.
    foreign: u64,
    /// When a record arrived for the first time, last.
    last_new_at: Instant,
}

impl Receiver {
    /// Polls until every record arrived, the producer reports a failure, or
    /// records are missing `timeout` after the last acknowledgement and arrival.
    async fn receive_all(
        &mut self,
        consumer: &mut Consumer,
        sender: tokio::task::JoinHandle<Instant>,
        failures: &Mutex<Failures>,
        timeout: Duration,
    ) -> anyhow::Result<Outcome> {
        let mut sender = Some(sender);
        let mut all_acked_at: Option<Instant> = None;
        let mut next_report = self.base + REPORT_INTERVAL;
        while self.seen.received < self.records {
            if let Some(handle) = sender.take_if(|h| h.is_finished()) {
                all_acked_at = Some(handle.await.context("the send task panicked")?);
                let f = failures.lock().unwrap_or_else(|p| p.into_inner());
                if f.count > 0 {
                    return Ok(Outcome::NotDelivered {
                        count: f.count,
                        first: f.first.clone().unwrap_or_default(),
                    });
                }
            }
            let now = Instant::now();
            let give_up = all_acked_at.map(|t| t.max(self.last_new_at) + timeout);
            if give_up.is_some_and(|g| now >= g) {
                return Ok(Outcome::Missing);
            }
            let mut wait = next_report
                .saturating_duration_since(now)
                .min(MAX_POLL_WAIT);
            if let Some(g) = give_up {
                wait = wait.min(g.saturating_duration_since(now));
            }
            let records = consumer.poll(wait).await?;
            let returned = Instant::now();
            self.check(&records, returned);
            if returned >= next_report {
                eprintln!("{}", self.stats.take_window_as(returned, "received"));
                while next_report <= returned {
                    next_report += REPORT_INTERVAL;
                }
            }
        }
        if let Some(handle) = sender {
            handle.await.context("the send task panicked")?;
        }
        Ok(Outcome::Complete)
    }

    /// Reads on to the log end offsets (every record is acknowledged by now),
    /// so a duplicate written after the last new record is still seen.
    async fn read_to_log_end(
        &mut self,
        consumer: &mut Consumer,
        partitions: &[TopicPartition],
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let ends = consumer.end_offsets(partitions).await?;
        let deadline = Instant::now() + timeout;
        loop {
            let mut behind = false;
            for tp in partitions {
                let end = ends.get(tp).copied().unwrap_or(0);
                behind |= consumer.position(tp).await? < end;
            }
            if !behind {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "the consumer did not reach the log end within {} ms after the last record",
                    timeout.as_millis()
                );
            }
            let records = consumer
                .poll(deadline.saturating_duration_since(now).min(MAX_POLL_WAIT))
                .await?;
            self.check(&records, Instant::now());
        }
    }

    /// Counts each record of this run returned by the poll that ended at `returned`.
    fn check(&mut self, records: &[ConsumerRecord], returned: Instant) {
        let received_ns = nanos_since(self.base, returned);
        for r in records {
            let value = r.value.as_deref().unwrap_or_default();
            let stamp =
                Stamp::decode(value).filter(|s| s.run_id == self.run_id && s.seq < self.records);
            let Some(stamp) = stamp else {
                self.foreign += 1;
                continue;
            };
            if self.seen.mark(stamp.seq) {
                let latency = Duration::from_nanos(received_ns.saturating_sub(stamp.sent_ns));
                let bytes = value.len() + r.key.as_ref().map_or(0, |k| k.len());
                self.stats.record(stamp.seq, latency, bytes);
                self.last_new_at = returned;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_short_values_are_not_stamps() {
        let s = Stamp {
            run_id: 7,
            seq: 123_456,
            sent_ns: 99,
        };
        let v = s.encode(100);
        assert_eq!(v.len(), 100);
        assert_eq!(Stamp::decode(&v), Some(s));
        assert_eq!(Stamp::decode(&v[..STAMP_BYTES - 1]), None);
    }

    #[test]
    fn seen_finds_duplicates_and_the_first_missing_record() {
        let mut seen = Seen::new(130);
        for seq in (0..130).filter(|s| *s != 64 && *s != 129) {
            assert!(seen.mark(seq));
        }
        assert_eq!(seen.first_missing(130), Some(64));
        assert!(!seen.mark(3));
        assert_eq!((seen.duplicates, seen.first_duplicate), (1, Some(3)));
        assert!(seen.mark(64));
        assert_eq!(seen.first_missing(130), Some(129));
        assert!(seen.mark(129));
        assert_eq!(seen.first_missing(130), None);
        assert_eq!(seen.received, 130);
    }
}
