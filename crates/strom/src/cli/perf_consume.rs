//! `strom perf consume`: Kafka's `kafka-consumer-perf-test` with its flag names.
//!
//! The tool assigns itself every partition of the topic and reads from the log
//! start, so no group is joined and `rebalance.time.ms` is always 0 (Kafka's
//! tool subscribes and counts its join time there). It stops once `--messages`
//! records are read, or when none arrives for `--timeout` ms.
//!
//! Timing: the run starts just before the first poll and ends when the last
//! counted record was returned, so a run that ends by `--timeout` does not
//! count the idle wait (Kafka's does). Fetch latency is the time each poll that
//! returned records waited; a poll served from records already buffered by an
//! earlier fetch waits almost nothing, which is the point of prefetching.
//! Data counts key plus value bytes, in MB of 1024 * 1024 bytes, as Kafka does.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use strom_client::{Consumer, ConsumerConfig};
use tokio::time::Instant;

use super::perf_stats::{Latencies, MB};
use super::time::{format_perf_time, now_ms};
use super::{output, parse_key_value, topic_partitions, ConnectArgs};

/// `client.id` unless `--consumer-props` sets one (Kafka's tool says `perf-consumer-client`).
const CLIENT_ID: &str = "strom-perf-consumer";

/// Column titles of the final summary line (Kafka's, verbatim).
const SUMMARY_HEADER: &str = "start.time, end.time, data.consumed.in.MB, MB.sec, \
     data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

/// Column titles of `--show-detailed-stats` rows (Kafka's, verbatim).
const DETAILED_HEADER: &str = "time, threadId, data.consumed.in.MB, MB.sec, \
     data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

/// Shown after `strom perf consume --help`.
const AFTER_HELP: &str = "\
Example:
  strom perf consume --topic events --messages 1000000 --json

Prints Kafka's summary: a header line, the figures (times in UTC; rebalance.time.ms is
always 0 as no group is joined), then fetch latency: how long each poll that returned
records waited. MB are key plus value bytes / 1048576. The run ends at the last record
read; fewer records than --messages after --timeout prints a warning and still exits 0.";

/// Flags of `strom perf consume`, named as in `kafka-consumer-perf-test`.
#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct PerfConsumeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to read, every partition from the log start (it must exist).
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Number of records to read.
    #[arg(
        long,
        visible_alias = "num-records",
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    messages: u64,
    /// Give up when no record arrives for this long; the summary covers what was read.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    timeout: u64,
    /// Consumer properties by their Kafka names, e.g. --consumer-props fetch.max.bytes=1048576.
    ///
    /// group.id is refused: the tool reads by assignment and commits nothing.
    #[arg(long, value_name = "KEY=VALUE", num_args = 1.., value_parser = parse_key_value)]
    consumer_props: Vec<(String, String)>,
    /// Milliseconds between progress lines.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    reporting_interval: u64,
    /// Print Kafka's per-interval stats rows (on stdout; on stderr with --json)
    /// instead of the progress lines on stderr.
    #[arg(long)]
    show_detailed_stats: bool,
    /// Print one final JSON object on stdout instead of the summary lines.
    #[arg(long)]
    json: bool,
}

/// The final figures (`--json` prints this object).
#[derive(Debug, Serialize)]
struct Summary {
    records: u64,
    /// Key plus value bytes.
    bytes: u64,
    elapsed_ms: f64,
    records_per_sec: f64,
    mb_per_sec: f64,
    /// Polls that returned records: the fetch latency samples.
    polls: u64,
    avg_latency_ms: f64,
    max_latency_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

/// Records and bytes read, over the run or one reporting interval.
#[derive(Clone, Copy, Default)]
struct Counts {
    records: u64,
    bytes: u64,
}

/// Runs `strom perf consume`.
pub async fn run(a: PerfConsumeArgs) -> anyhow::Result<()> {
    let config = consumer_config(&a)?;
    let partitions = topic_partitions(&a.connect.bootstrap_server, &a.topic).await?;

    let mut consumer = Consumer::new(config).await?;
    consumer.assign(partitions);
    consumer.seek_to_beginning(&[])?;

    let timeout = Duration::from_millis(a.timeout);
    let interval = Duration::from_millis(a.reporting_interval);
    let mut reporter = Reporter::new(&a);
    let mut latencies = Latencies::new(a.messages);
    let mut total = Counts::default();
    let start_ms = now_ms();
    let start = Instant::now();
    let mut last_record_at = start;
    let mut next_report = start + interval;
    while total.records < a.messages {
        let give_up = last_record_at + timeout;
        let polled_at = Instant::now();
        if polled_at >= give_up {
            eprintln!(
                "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) \
                 exceeded. You can use the --timeout option to increase the timeout.",
                a.timeout
            );
            break;
        }
        let wait = give_up
            .min(next_report)
            .saturating_duration_since(polled_at);
        let records = consumer.poll(wait).await?;
        let now = Instant::now();
        if !records.is_empty() {
            latencies.record(latencies.count(), now.saturating_duration_since(polled_at));
            last_record_at = now;
            let wanted = usize::try_from(a.messages - total.records).unwrap_or(usize::MAX);
            for r in records.iter().take(wanted) {
                let bytes =
                    r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len());
                total.records += 1;
                total.bytes += bytes as u64;
            }
        }
        if now >= next_report {
            reporter.report(total, now);
            // Skip intervals a long poll overran instead of printing them all at once.
            while next_report <= now {
                next_report += interval;
            }
        }
    }
    let elapsed = last_record_at.saturating_duration_since(start);
    let end_ms = start_ms + i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX);
    let summary = summarize(total, elapsed, &latencies);
    if a.json {
        output::print_json(&summary)?;
    } else {
        println!("{SUMMARY_HEADER}");
        println!(
            "{}",
            kafka_row(
                &format_perf_time(start_ms),
                &format_perf_time(end_ms),
                total,
                total,
                elapsed,
                elapsed
            )
        );
        println!(
            "fetch latency: {} polls with records, {:.2} ms avg, {:.2} ms max, {:.2} ms 50th, \
             {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
            summary.polls,
            summary.avg_latency_ms,
            summary.max_latency_ms,
            summary.p50_ms,
            summary.p95_ms,
            summary.p99_ms,
            summary.p999_ms
        );
    }
    Ok(())
}

/// The consumer config from the flags: read from the log start.
fn consumer_config(a: &PerfConsumeArgs) -> anyhow::Result<ConsumerConfig> {
    let mut config = ConsumerConfig::default();
    config.set("bootstrap.servers", &a.connect.bootstrap_server)?;
    config.set("client.id", CLIENT_ID)?;
    config.set("auto.offset.reset", "earliest")?;
    for (k, v) in &a.consumer_props {
        if k == "group.id" {
            bail!(
                "group.id in --consumer-props is not supported: strom perf consume reads every \
                 partition by assignment and commits no offsets"
            );
        }
        config.set(k, v).context("invalid --consumer-props")?;
    }
    config.validate().context("invalid --consumer-props")?;
    Ok(config)
}

fn summarize(total: Counts, elapsed: Duration, latencies: &Latencies) -> Summary {
    let secs = elapsed.as_secs_f64();
    let p = latencies.percentiles();
    Summary {
        records: total.records,
        bytes: total.bytes,
        elapsed_ms: secs * 1000.0,
        records_per_sec: rate(total.records as f64, secs),
        mb_per_sec: rate(total.bytes as f64 / MB, secs),
        polls: latencies.count(),
        avg_latency_ms: p.avg_ms,
        max_latency_ms: p.max_ms,
        p50_ms: p.p50_ms,
        p95_ms: p.p95_ms,
        p99_ms: p.p99_ms,
        p999_ms: p.p999_ms,
    }
}

/// `amount / secs`, 0 for an empty run rather than infinity.
fn rate(amount: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

/// One line in Kafka's column layout: the first two columns, the totals so
/// far, and the rates of `window` records over `window_time` (which is also
/// the fetch time: there is no rebalance time to subtract).
fn kafka_row(
    first: &str,
    second: &str,
    total: Counts,
    window: Counts,
    window_time: Duration,
    fetch_time: Duration,
) -> String {
    let secs = window_time.as_secs_f64();
    let mb_per_sec = rate(window.bytes as f64 / MB, secs);
    let records_per_sec = rate(window.records as f64, secs);
    format!(
        "{first}, {second}, {:.4}, {mb_per_sec:.4}, {}, {records_per_sec:.4}, 0, {}, {mb_per_sec:.4}, {records_per_sec:.4}",
        total.bytes as f64 / MB,
        total.records,
        fetch_time.as_millis(),
    )
}

/// Prints a line per reporting interval: Kafka's detailed rows, or a
/// progress line on stderr.
struct Reporter {
    detailed: bool,
    /// Detailed rows go to stdout unless stdout is reserved for `--json`.
    to_stdout: bool,
    last: Counts,
    last_at: Instant,
}

impl Reporter {
    fn new(a: &PerfConsumeArgs) -> Reporter {
        let r = Reporter {
            detailed: a.show_detailed_stats,
            to_stdout: !a.json,
            last: Counts::default(),
            last_at: Instant::now(),
        };
        if r.detailed {
            r.print(DETAILED_HEADER);
        }
        r
    }

    fn report(&mut self, total: Counts, now: Instant) {
        let window = Counts {
            records: total.records - self.last.records,
            bytes: total.bytes - self.last.bytes,
        };
        let window_time = now.saturating_duration_since(self.last_at);
        let secs = window_time.as_secs_f64();
        if self.detailed {
            let row = kafka_row(
                &format_perf_time(now_ms()),
                "0",
                total,
                window,
                window_time,
                window_time,
            );
            self.print(&row);
        } else {
            eprintln!(
                "{} records consumed, {:.1} records/sec ({:.2} MB/sec).",
                window.records,
                rate(window.records as f64, secs),
                rate(window.bytes as f64 / MB, secs),
            );
        }
        self.last = total;
        self.last_at = now;
    }

    fn print(&self, line: &str) {
        if self.to_stdout {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_kafkas_columns_and_precision() {
        let total = Counts {
            records: 4000,
            bytes: 2 * 1024 * 1024,
        };
        let window = Counts {
            records: 1000,
            bytes: 1024 * 1024,
        };
        let row = kafka_row(
            "a",
            "b",
            total,
            window,
            Duration::from_secs(2),
            Duration::from_secs(2),
        );
        assert_eq!(
            row,
            "a, b, 2.0000, 0.5000, 4000, 500.0000, 0, 2000, 0.5000, 500.0000"
        );
        assert_eq!(row.split(", ").count(), SUMMARY_HEADER.split(", ").count());
        assert_eq!(
            DETAILED_HEADER.split(", ").count(),
            SUMMARY_HEADER.split(", ").count()
        );
        let empty = kafka_row(
            "a",
            "b",
            Counts::default(),
            Counts::default(),
            Duration::ZERO,
            Duration::ZERO,
        );
        assert_eq!(
            empty,
            "a, b, 0.0000, 0.0000, 0, 0.0000, 0, 0, 0.0000, 0.0000"
        );
    }
}
