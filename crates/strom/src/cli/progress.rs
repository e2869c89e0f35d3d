//! A one-line progress display on stderr for long tool runs (`strom produce`
//! from a file or pipe, `strom consume` into a file or pipe).
//!
//! Shown only when stderr is a terminal, so scripts and logs never see it; the
//! line is redrawn in place four times a second and erased when the run ends,
//! before the tool prints its summary.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

const REDRAW: Duration = Duration::from_millis(250);

/// Counts records (and bytes) and, when enabled, draws them.
pub struct Progress {
    records: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    task: Option<JoinHandle<()>>,
}

/// A handle to add to the counts from another task or thread.
#[derive(Clone)]
pub struct Counter {
    records: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl Counter {
    pub fn add(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Progress {
    /// Starts drawing "`verb` N records (X MB, R records/s)" if `wanted` and
    /// stderr is a terminal.
    pub fn start(verb: &'static str, wanted: bool) -> Progress {
        let records = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let task = (wanted && std::io::stderr().is_terminal()).then(|| {
            let (records, bytes) = (records.clone(), bytes.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let mut tick = tokio::time::interval(REDRAW);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let n = records.load(Ordering::Relaxed);
                    let b = bytes.load(Ordering::Relaxed);
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
                    let mut line = format!("\r{verb} {n} records");
                    if b > 0 {
                        line.push_str(&format!(" ({:.1} MB", b as f64 / (1024.0 * 1024.0)));
                    } else {
                        line.push_str(" (");
                    }
                    let sep = if b > 0 { ", " } else { "" };
                    line.push_str(&format!("{sep}{:.0} records/s)\x1b[K", n as f64 / secs));
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(line.as_bytes());
                    let _ = err.flush();
                }
            })
        });
        Progress {
            records,
            bytes,
            task,
        }
    }

    pub fn counter(&self) -> Counter {
        Counter {
            records: self.records.clone(),
            bytes: self.bytes.clone(),
        }
    }

    /// Stops drawing and erases the line.
    pub fn finish(mut self) {
        self.erase();
    }

    fn erase(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(b"\r\x1b[K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.erase();
    }
}
