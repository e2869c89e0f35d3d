//! Latency and throughput bookkeeping for the perf tools, after Kafka's
//! `ProducerPerformance.Stats`.
//!
//! Latencies are kept by sampling, as Kafka does: every `sampling`-th event
//! (by index) has its latency stored, with `sampling` chosen so that at most
//! [`MAX_LATENCY_SAMPLES`] are kept. Count, average and maximum cover every
//! event; percentiles come from the samples. Unlike Kafka (whole milliseconds),
//! samples are microseconds, so sub-millisecond latencies on a fast broker still
//! show up in the percentiles.
//!
//! [`Latencies`] is the sampler alone (`perf consume` times its polls with it);
//! [`Stats`] adds record and byte counts and progress windows (`perf produce`,
//! `perf e2e`).

use std::time::{Duration, Instant};

use serde::Serialize;

/// Most latency samples kept (Kafka's figure). At 4 bytes each this bounds the
/// memory to 2 MB however many records are sent.
pub const MAX_LATENCY_SAMPLES: u64 = 500_000;

/// Bytes in a megabyte, as Kafka's perf tools count them.
pub const MB: f64 = 1024.0 * 1024.0;

/// Sampled latencies, with exact count, total and maximum.
pub struct Latencies {
    /// Store the latency of events whose index is a multiple of this.
    sampling: u64,
    /// Sampled latencies in microseconds, at most `MAX_LATENCY_SAMPLES`.
    samples: Vec<u32>,
    count: u64,
    total_us: u64,
    max_us: u64,
}

/// Average, maximum and percentiles of a [`Latencies`], in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub avg_ms: f64,
    pub max_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

impl Latencies {
    /// A sampler for at most `expected` events (more are counted but not sampled
    /// once the samples are full).
    pub fn new(expected: u64) -> Latencies {
        let sampling = expected.div_ceil(MAX_LATENCY_SAMPLES).max(1);
        let capacity = expected.div_ceil(sampling).min(MAX_LATENCY_SAMPLES);
        Latencies {
            sampling,
            samples: Vec::with_capacity(capacity as usize),
            count: 0,
            total_us: 0,
            max_us: 0,
        }
    }

    /// Records the latency of event number `index` (0-based).
    pub fn record(&mut self, index: u64, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.count += 1;
        self.total_us = self.total_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
        if index.is_multiple_of(self.sampling) && (self.samples.len() as u64) < MAX_LATENCY_SAMPLES
        {
            self.samples.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
    }

    /// Events recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Average and maximum over every event, percentiles over the samples.
    pub fn percentiles(&self) -> Percentiles {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let percentile = |p: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let index = ((p * sorted.len() as f64) as usize).min(sorted.len() - 1);
            f64::from(sorted[index]) / 1000.0
        };
        Percentiles {
            avg_ms: if self.count == 0 {
                0.0
            } else {
                self.total_us as f64 / self.count as f64 / 1000.0
            },
            max_ms: self.max_us as f64 / 1000.0,
            p50_ms: percentile(0.5),
            p95_ms: percentile(0.95),
            p99_ms: percentile(0.99),
            p999_ms: percentile(0.999),
        }
    }
}

/// Totals of a whole run and of the current progress window.
pub struct Stats {
    /// Latency of every counted record; its count is the record count.
    latencies: Latencies,
    /// Bytes of the counted records (values, plus keys where the tool has them).
    bytes: u64,
    /// Records whose send failed, and the first failure's text.
    failed: u64,
    first_error: Option<String>,
    window: Window,
}

/// What happened since the last progress line.
struct Window {
    start: Instant,
    count: u64,
    bytes: u64,
    total_latency_us: u64,
    max_latency_us: u64,
}

impl Window {
    fn new(start: Instant) -> Window {
        Window {
            start,
            count: 0,
            bytes: 0,
            total_latency_us: 0,
            max_latency_us: 0,
        }
    }
}

/// The final figures (`--json` prints this object).
#[derive(Debug, Serialize)]
pub struct Summary {
    pub records: u64,
    pub bytes: u64,
    /// Records not delivered (perf produce) or never received (perf e2e).
    pub failed: u64,
    pub elapsed_ms: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub avg_latency_ms: f64,
    pub max_latency_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

impl Stats {
    /// Stats for a run of `num_records` records starting now.
    pub fn new(num_records: u64) -> Stats {
        Stats {
            latencies: Latencies::new(num_records),
            bytes: 0,
            failed: 0,
            first_error: None,
            window: Window::new(Instant::now()),
        }
    }

    /// Records the outcome of the record sent as number `iteration` (0-based).
    pub fn record(&mut self, iteration: u64, latency: Duration, bytes: usize) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latencies.record(iteration, latency);
        self.bytes += bytes as u64;
        self.window.count += 1;
        self.window.bytes += bytes as u64;
        self.window.total_latency_us = self.window.total_latency_us.saturating_add(us);
        self.window.max_latency_us = self.window.max_latency_us.max(us);
    }

    /// Notes a record that was not delivered.
    pub fn fail(&mut self, error: String) {
        self.failed += 1;
        self.first_error.get_or_insert(error);
    }

    /// Failed records and the first failure.
    pub fn failures(&self) -> (u64, Option<&str>) {
        (self.failed, self.first_error.as_deref())
    }

    /// The progress line for the window ending now (Kafka's shape), and starts a new window.
    pub fn take_window(&mut self, now: Instant) -> String {
        self.take_window_as(now, "sent")
    }

    /// [`take_window`](Self::take_window) saying what happened to the records
    /// ("sent", "received").
    pub fn take_window_as(&mut self, now: Instant, verb: &str) -> String {
        let w = std::mem::replace(&mut self.window, Window::new(now));
        let secs = now.duration_since(w.start).as_secs_f64().max(1e-9);
        let avg_ms = if w.count == 0 {
            0.0
        } else {
            w.total_latency_us as f64 / w.count as f64 / 1000.0
        };
        format!(
            "{} records {verb}, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            w.count,
            w.count as f64 / secs,
            w.bytes as f64 / secs / MB,
            avg_ms,
            w.max_latency_us as f64 / 1000.0,
        )
    }

    /// The whole run's figures, given its wall-clock time.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let count = self.latencies.count();
        let p = self.latencies.percentiles();
        Summary {
            records: count,
            bytes: self.bytes,
            failed: self.failed,
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
            records_per_sec: count as f64 / secs,
            mb_per_sec: self.bytes as f64 / secs / MB,
            avg_latency_ms: p.avg_ms,
            max_latency_ms: p.max_ms,
            p50_ms: p.p50_ms,
            p95_ms: p.p95_ms,
            p99_ms: p.p99_ms,
            p999_ms: p.p999_ms,
        }
    }
}

impl Summary {
    /// The final line in the shape of Kafka's ProducerPerformance (percentiles with
    /// two decimals rather than whole milliseconds).
    pub fn line(&self) -> String {
        self.line_as("sent")
    }

    /// [`line`](Self::line) saying what happened to the records ("sent", "received").
    pub fn line_as(&self, verb: &str) -> String {
        format!(
            "{} records {verb}, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, \
             {:.2} ms max latency, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
            self.records,
            self.records_per_sec,
            self.mb_per_sec,
            self.avg_latency_ms,
            self.max_latency_ms,
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.p999_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_samples_and_are_ordered() {
        let mut s = Stats::new(1000);
        for i in 0..1000u64 {
            s.record(i, Duration::from_micros(i + 1), 10);
        }
        let sum = s.summary(Duration::from_secs(1));
        assert_eq!((sum.records, sum.bytes), (1000, 10_000));
        assert_eq!(sum.p50_ms, 0.501);
        assert_eq!(sum.p999_ms, 1.0);
        assert_eq!(sum.max_latency_ms, 1.0);
        assert!((sum.avg_latency_ms - 0.5005).abs() < 1e-9);
        assert!(sum.p50_ms <= sum.p95_ms && sum.p95_ms <= sum.p99_ms);
        assert!(sum.p99_ms <= sum.p999_ms && sum.p999_ms <= sum.max_latency_ms);
    }

    #[test]
    fn samples_stay_bounded_for_large_runs() {
        let n = 3 * MAX_LATENCY_SAMPLES + 7;
        let mut s = Stats::new(n);
        for i in 0..n {
            s.record(i, Duration::from_micros(5), 1);
        }
        let l = &s.latencies;
        assert!(l.samples.len() as u64 <= MAX_LATENCY_SAMPLES);
        // Sampling every ceil(n / MAX)-th record keeps more than half the maximum.
        assert_eq!(l.samples.len() as u64, n.div_ceil(l.sampling));
        assert!(l.samples.len() as u64 > MAX_LATENCY_SAMPLES / 2);
        assert_eq!(s.summary(Duration::from_secs(1)).records, n);
    }

    #[test]
    fn a_window_reports_and_resets() {
        let mut s = Stats::new(10);
        let start = s.window.start;
        s.record(0, Duration::from_millis(4), 1024 * 1024);
        s.record(1, Duration::from_millis(2), 1024 * 1024);
        let line = s.take_window(start + Duration::from_secs(2));
        assert_eq!(
            line,
            "2 records sent, 1.0 records/sec (1.00 MB/sec), 3.0 ms avg latency, 4.0 ms max latency."
        );
        assert!(s
            .take_window(start + Duration::from_secs(3))
            .starts_with("0 records sent"));
    }
}
