//! Helpers shared by the end-to-end tests: a spawned `strom server`, running
//! the `strom` binary with bounded waits, and raw requests that check what a
//! tool left in the log.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use strom_client::{Connection, ConnectionConfig};
use strom_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use strom_protocol::messages::{ListOffsetsRequest, StrBytes};

/// Every wait in these tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub const STROM: &str = env!("CARGO_BIN_EXE_strom");

/// A `strom server` child process, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a server on a free port and waits for its "listening" line.
pub fn start_server() -> Server {
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

/// A `strom server` child process that can be killed with SIGKILL and restarted
/// on the same port and data directory; killed when dropped (also on panic).
pub struct RestartableServer {
    child: Option<Child>,
    pub addr: String,
    dir: tempfile::TempDir,
    /// Every line the server printed (stdout and stderr), across restarts.
    log: Arc<Mutex<Vec<String>>>,
    /// Broker properties passed as `--set KEY=VALUE` on every start.
    settings: Vec<String>,
    /// How many times the server was started.
    pub starts: u32,
}

impl RestartableServer {
    /// Starts a server on a free port with a fresh data directory.
    pub fn start() -> RestartableServer {
        RestartableServer::start_with(&[])
    }

    /// Like [`start`](Self::start), with broker properties (Kafka names) that
    /// apply to every start.
    pub fn start_with(settings: &[(&str, &str)]) -> RestartableServer {
        let mut server = RestartableServer {
            child: None,
            addr: format!("127.0.0.1:{}", free_port()),
            dir: tempfile::tempdir().unwrap(),
            log: Arc::new(Mutex::new(Vec::new())),
            settings: settings.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            starts: 0,
        };
        server.spawn();
        server
    }

    /// SIGKILL (`Child::kill` on Unix): an unclean stop, nothing flushed or closed.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same address and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "server still running");
        self.spawn();
    }

    /// Whether the process exited although it was not killed by us.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// The last `n` lines the server printed, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(n)..].join("\n")
    }

    fn spawn(&mut self) {
        self.starts += 1;
        self.log
            .lock()
            .unwrap()
            .push(format!("===== start #{} on {}", self.starts, self.addr));
        let mut child = Command::new(STROM)
            .args([
                "server",
                "--listen",
                &self.addr,
                "--advertise",
                &self.addr,
                "--data-dir",
            ])
            .arg(self.dir.path())
            .args(self.settings.iter().flat_map(|s| ["--set", s.as_str()]))
            .env("STROM_LOG", "info")
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        // Both pipes are drained to the end so the server never blocks on a full pipe.
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = self.log.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("strom server listening on") {
                        let _ = tx.send(());
                    }
                    let mut log = log.lock().unwrap();
                    if log.len() >= 20_000 {
                        log.drain(..10_000);
                    }
                    log.push(line);
                }
            });
        }
        self.child = Some(child);
        if rx.recv_timeout(TIMEOUT).is_err() {
            self.kill9();
            panic!(
                "the server did not report listening within {TIMEOUT:?}\n{}",
                self.log_tail(40)
            );
        }
    }
}

impl Drop for RestartableServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `strom ARGS` with a bounded wait and an empty stdin; kills it on timeout.
pub fn strom(args: &[&str]) -> Output {
    strom_with_stdin(args, b"")
}

/// Runs `strom ARGS` with `input` as its stdin (then closed), with a bounded
/// wait; kills it on timeout.
pub fn strom_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(STROM)
        .args(args)
        .env_remove("STROM_BOOTSTRAP")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A writer thread, so a tool that stops reading early cannot block the test;
    // its write error (a closed pipe) is then expected and ignored.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
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
    writer.join().unwrap();
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a tool that must succeed and returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let o = strom(args);
    assert!(
        o.status.success(),
        "strom {args:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

pub fn json(args: &[&str]) -> Value {
    let out = ok(args);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The log end offset of each partition, by ListOffsets with timestamp -1 (latest).
pub fn log_end_offsets(addr: &str, topic: &str, partitions: i32) -> Vec<i64> {
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
