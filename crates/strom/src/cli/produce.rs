//! `strom produce`: Kafka's `kafka-console-producer` (and `kcat -P`).
//!
//! Every input line (stdin, or `--file`) becomes one record. Sends are
//! pipelined: each line is handed to the producer as soon as it is read, and a
//! separate task awaits the acknowledgements in input order, so `--verbose`
//! prints `partition@offset` in input order and the first failure reported is
//! the earliest line that failed. Input is streamed; the bytes of records read
//! but not yet acknowledged are capped by `buffer.memory`, as `strom perf
//! produce` caps them, so piping a large file costs bounded memory.

use std::future::Future;
use std::io::{BufRead, IsTerminal, Write as _};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use strom_client::{
    Admin, Producer, ProducerConfig, ProducerError, ProducerRecord, RecordMetadata,
};
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::progress::{Counter, Progress};
use super::{parse_key_value, topic_error, ConnectArgs};

/// Bytes of records read but not yet acknowledged, unless `buffer.memory` is
/// given in `--producer-props`. Java's default; it bounds the tool's memory when
/// input arrives faster than the broker acknowledges it.
const DEFAULT_BUFFER_MEMORY: u32 = 32 * 1024 * 1024;

/// Charged against `buffer.memory` for each record on top of its line and
/// headers: the record, its future and its queue slots cost memory even when
/// the line is empty, so this also bounds how many tiny records are in flight.
const RECORD_OVERHEAD_BYTES: usize = 64;

/// `client.id` unless `--producer-props` sets one (Kafka's tool says `console-producer`).
const CLIENT_ID: &str = "strom-console-producer";

/// Examples shown after `strom produce --help`.
const EXAMPLES: &str = "\
Examples:
  echo hello | strom produce -t events
  strom produce -t events -K : -H source=cli -f keyed-lines.txt
  strom produce -t events --compression zstd --acks 1 -v < lines.txt

Prints nothing on stdout (unless --verbose) and 'N records produced' on stderr.";

/// Flags of `strom produce`.
#[derive(Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct ProduceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to produce to (it must exist).
    #[arg(short, long, value_name = "TOPIC")]
    topic: String,
    /// Read records from this file instead of stdin.
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Split each line at its first SEP into key and value [default: no key].
    ///
    /// The text before SEP is the key, the text after it the value, as with
    /// kafka-console-producer's parse.key=true key.separator=SEP. A line without
    /// SEP is an error.
    #[arg(short = 'K', long, value_name = "SEP", value_parser = parse_separator)]
    key_separator: Option<String>,
    /// A header added to every record (repeatable), e.g. -H source=cli.
    ///
    /// The value is everything after the first '=', kept verbatim.
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Send every record to this partition [default: the default partitioner].
    ///
    /// The default partitioner is Java's: murmur2 of the key, sticky batches
    /// for records without a key (KIP-480).
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Compression codec of the record batches [default: none].
    ///
    /// Overrides compression.type in --producer-props.
    #[arg(long, value_enum, value_name = "CODEC")]
    compression: Option<CompressionArg>,
    /// Acknowledgement to wait for [default: all].
    ///
    /// Overrides acks in --producer-props. Below all, idempotence is turned off
    /// (unless asked for, which is then an error).
    #[arg(long, value_enum, value_name = "ACKS")]
    acks: Option<AcksArg>,
    /// Producer properties by their Kafka names, e.g. --producer-props linger.ms=10 retries=5.
    ///
    /// buffer.memory caps the bytes of records read but not yet acknowledged
    /// (default 33554432); reading waits while it is full.
    #[arg(long, value_name = "KEY=VALUE", num_args = 1.., value_parser = parse_key_value)]
    producer_props: Vec<(String, String)>,
    /// Print partition@offset on stdout for each record, in input order.
    ///
    /// A line is printed once the record is acknowledged; with --acks 0 the
    /// offset is -1.
    #[arg(short, long)]
    verbose: bool,
}

/// `--compression`: the codecs Kafka's `compression.type` names.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionArg {
    /// The `compression.type` value.
    fn property(self) -> &'static str {
        match self {
            CompressionArg::None => "none",
            CompressionArg::Gzip => "gzip",
            CompressionArg::Snappy => "snappy",
            CompressionArg::Lz4 => "lz4",
            CompressionArg::Zstd => "zstd",
        }
    }
}

/// `--acks`, spelled as Kafka's `acks` property.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum AcksArg {
    /// Every in-sync replica has the record.
    All,
    /// The leader has appended the record.
    #[value(name = "1")]
    Leader,
    /// None: a record counts as produced once sent.
    #[value(name = "0")]
    None,
}

impl AcksArg {
    /// The `acks` value.
    fn property(self) -> &'static str {
        match self {
            AcksArg::All => "all",
            AcksArg::Leader => "1",
            AcksArg::None => "0",
        }
    }
}

/// A non-empty key separator.
fn parse_separator(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the key separator must not be empty".into());
    }
    Ok(s.to_owned())
}

/// `KEY=VALUE` for `--header`: the key must be non-empty; the value is not trimmed,
/// because header values are data.
fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

/// The acknowledgement of one record, as `Producer::send` returns it.
type Ack = Pin<Box<dyn Future<Output = Result<RecordMetadata, ProducerError>> + Send>>;

/// A record sent and not yet acknowledged.
struct Pending {
    /// 1-based input line the record came from, for error messages.
    line: u64,
    ack: Ack,
    /// Its share of `buffer.memory`, returned when the acknowledgement is seen.
    _permit: OwnedSemaphorePermit,
}

/// What the acknowledgement task saw.
#[derive(Default)]
struct Outcome {
    /// Records acknowledged successfully.
    produced: u64,
    /// The earliest line whose record failed, and why.
    first_failure: Option<(u64, ProducerError)>,
    /// Writing `--verbose` output failed (e.g. a closed pipe).
    stdout_error: Option<std::io::Error>,
}

/// Where lines come from.
enum Input {
    Stdin,
    File(std::fs::File),
}

/// Runs `strom produce`.
pub async fn run(a: ProduceArgs) -> anyhow::Result<()> {
    let (config, buffer_bytes) = producer_config(&a)?;
    let input = match &a.file {
        Some(path) => Input::File(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => Input::Stdin,
    };

    // Fail fast on a missing topic or partition: a typo should not create a
    // topic (the producer asks for auto-creation, as Java's does), nor retry
    // until delivery.timeout.ms against a partition that does not exist.
    let admin = Admin::connect(&a.connect.bootstrap_server).await?;
    let topic = admin
        .describe_topics(&[a.topic.as_str()])
        .await
        .map_err(|e| topic_error(&a.topic, e))?;
    let partitions = topic.first().map_or(0, |t| t.partitions.len());
    if let Some(p) = a.partition {
        if usize::try_from(p).map_or(true, |p| p >= partitions) {
            bail!(
                "partition {p} does not exist (topic '{}' has {partitions} partitions)",
                a.topic
            );
        }
    }
    drop(admin);

    let max_line_bytes = config.max_request_size;
    let producer = Arc::new(Producer::new(config).await?);
    let buffer = Arc::new(Semaphore::new(buffer_bytes as usize));
    let (tx, rx) = mpsc::unbounded_channel();
    // A progress line while reading a file or a pipe (not while someone types).
    let progress = Progress::start(
        "produced",
        a.file.is_some() || !std::io::stdin().is_terminal(),
    );
    let acks = tokio::spawn(await_acks(
        rx,
        a.verbose,
        buffer.clone(),
        progress.counter(),
    ));
    let reader = Reader {
        topic: a.topic.clone(),
        key_separator: a.key_separator.clone().map(String::into_bytes),
        partition: a.partition,
        headers: a
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Bytes::from(v.clone())))
            .collect(),
        producer: producer.clone(),
        buffer,
        buffer_bytes,
        max_line_bytes,
        runtime: tokio::runtime::Handle::current(),
    };
    // Reading blocks, so it runs on its own thread; a plain thread (not
    // spawn_blocking) because a read blocked on an idle stdin must not keep the
    // runtime, and so the process, from ending after a failure.
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("strom-produce-reader".into())
        .spawn(move || {
            let _ = done_tx.send(reader.send_lines(input, tx));
        })
        .context("cannot start the input reader")?;
    let outcome = acks.await.context("the acknowledgement task panicked")?;
    producer.close().await;
    progress.finish();

    if let Some((line, e)) = outcome.first_failure {
        return Err(anyhow::Error::new(e).context(format!(
            "line {line} not delivered ({} records produced)",
            outcome.produced
        )));
    }
    if let Some(e) = outcome.stdout_error {
        return Err(anyhow::Error::new(e).context("writing to stdout"));
    }
    // The acknowledgement task ends only once the reader dropped its sender,
    // so the reader is done.
    let sent = done_rx.await.context("the input reader panicked")??;
    debug_assert_eq!(sent, outcome.produced, "every sent record was acknowledged");
    let plural = if outcome.produced == 1 { "" } else { "s" };
    eprintln!("{} record{plural} produced", outcome.produced);
    Ok(())
}

/// The producer config from the flags, and `buffer.memory` in bytes.
fn producer_config(a: &ProduceArgs) -> anyhow::Result<(ProducerConfig, u32)> {
    let mut buffer_bytes = DEFAULT_BUFFER_MEMORY;
    let mut config = ProducerConfig::default();
    config.set("bootstrap.servers", &a.connect.bootstrap_server)?;
    config.set("client.id", CLIENT_ID)?;
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
    // The explicit flags win over --producer-props, as kafka-console-producer's do.
    if let Some(c) = a.compression {
        config.set("compression.type", c.property())?;
    }
    if let Some(acks) = a.acks {
        config.set("acks", acks.property())?;
    }
    config.validate().context("invalid producer settings")?;
    Ok((config, buffer_bytes))
}

/// Reads lines and sends them, on the reader thread.
struct Reader {
    topic: String,
    /// `--key-separator` as bytes.
    key_separator: Option<Vec<u8>>,
    partition: Option<i32>,
    /// `--header` values, shared by every record.
    headers: Vec<(String, Bytes)>,
    producer: Arc<Producer>,
    /// Permits are bytes of records in flight; a send waits when they run out.
    /// Closed by [`await_acks`] on the first failure, which stops reading.
    buffer: Arc<Semaphore>,
    buffer_bytes: u32,
    /// Longest line accepted (`max.request.size`): a longer record could not be
    /// sent anyway, and the cap keeps one endless line from exhausting memory.
    max_line_bytes: usize,
    /// To wait for buffer space from this non-runtime thread.
    runtime: tokio::runtime::Handle,
}

impl Reader {
    /// Sends one record per line until the input ends, a record fails or a line
    /// is invalid; returns how many records were sent.
    fn send_lines(&self, input: Input, tx: mpsc::UnboundedSender<Pending>) -> anyhow::Result<u64> {
        let stdin = std::io::stdin();
        let mut input: Box<dyn BufRead> = match input {
            Input::Stdin => Box::new(stdin.lock()),
            Input::File(f) => Box::new(std::io::BufReader::new(f)),
        };
        let headers_bytes: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        let mut line = Vec::new();
        let mut line_no = 0u64;
        let mut sent = 0u64;
        loop {
            line_no += 1;
            let more = read_line(&mut input, &mut line, self.max_line_bytes)
                .with_context(|| format!("line {line_no}"))?;
            if !more {
                return Ok(sent);
            }
            let weight = (line.len() + headers_bytes + RECORD_OVERHEAD_BYTES)
                .min(self.buffer_bytes as usize);
            let record = self
                .record(Bytes::from(std::mem::take(&mut line)))
                .with_context(|| format!("line {line_no}"))?;
            let acquire = self.buffer.clone().acquire_many_owned(weight as u32);
            let Ok(permit) = self.runtime.block_on(acquire) else {
                // A record failed; its error is reported, and nothing more is sent.
                return Ok(sent);
            };
            let pending = Pending {
                line: line_no,
                ack: Box::pin(self.producer.send(record)),
                _permit: permit,
            };
            if tx.send(pending).is_err() {
                // The acknowledgement task stopped after a failure, which it reports.
                return Ok(sent);
            }
            sent += 1;
        }
    }

    /// The record for one line.
    fn record(&self, line: Bytes) -> anyhow::Result<ProducerRecord> {
        let mut record = ProducerRecord::new(self.topic.as_str());
        record = match &self.key_separator {
            Some(sep) => {
                let Some(at) = line.windows(sep.len()).position(|w| w == sep) else {
                    bail!("no key separator '{}' found", String::from_utf8_lossy(sep));
                };
                record
                    .key(line.slice(..at))
                    .value(line.slice(at + sep.len()..))
            }
            None => record.value(line),
        };
        if let Some(p) = self.partition {
            record = record.partition(p);
        }
        for (k, v) in &self.headers {
            record = record.header(k, v.clone());
        }
        Ok(record)
    }
}

/// Reads one line into `line` without its `\n` or `\r\n`; `false` at the end of
/// input. A last line without `\n` still counts. Fails, without buffering it
/// all, on a line longer than `max_bytes`.
fn read_line(
    input: &mut dyn BufRead,
    line: &mut Vec<u8>,
    max_bytes: usize,
) -> anyhow::Result<bool> {
    line.clear();
    let mut read_any = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(anyhow::Error::new(e).context("reading input")),
        };
        if buf.is_empty() {
            break;
        }
        read_any = true;
        let (chunk, used, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        // One byte of slack for the '\r' of "\r\n", stripped below.
        if line.len() + chunk.len() > max_bytes.saturating_add(1) {
            bail!("longer than max.request.size ({max_bytes} bytes)");
        }
        line.extend_from_slice(chunk);
        input.consume(used);
        if done {
            break;
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if line.len() > max_bytes {
        bail!("longer than max.request.size ({max_bytes} bytes)");
    }
    Ok(read_any)
}

/// Awaits every sent record's acknowledgement in input order, printing
/// `partition@offset` when `verbose`. On the first failure it closes `buffer`
/// and the channel so the reader stops, and keeps awaiting what was already sent.
async fn await_acks(
    mut rx: mpsc::UnboundedReceiver<Pending>,
    verbose: bool,
    buffer: Arc<Semaphore>,
    progress: Counter,
) -> Outcome {
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut outcome = Outcome::default();
    loop {
        let pending = match rx.try_recv() {
            Ok(p) => p,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                // Nothing is waiting: show what is acknowledged so far before
                // blocking, so an interactive session sees each line's offset.
                if let Err(e) = out.flush() {
                    outcome.stdout_error.get_or_insert(e);
                }
                match rx.recv().await {
                    Some(p) => p,
                    None => break,
                }
            }
        };
        let result = pending.ack.await;
        let failed = match result {
            Ok(meta) => {
                outcome.produced += 1;
                progress.add(1, 0);
                if verbose && outcome.stdout_error.is_none() {
                    if let Err(e) = writeln!(out, "{}@{}", meta.partition, meta.offset) {
                        outcome.stdout_error = Some(e);
                    }
                }
                false
            }
            Err(e) => {
                outcome.first_failure.get_or_insert((pending.line, e));
                true
            }
        };
        if failed || outcome.stdout_error.is_some() {
            // Stop the reader (it may be blocked on input, so it is not waited
            // for); drain what it already sent.
            buffer.close();
            rx.close();
        }
    }
    if let Err(e) = out.flush() {
        outcome.stdout_error.get_or_insert(e);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<anyhow::Result<Vec<u8>>> {
        let mut r = std::io::BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            match read_line(&mut r, &mut line, max) {
                Ok(true) => out.push(Ok(line.clone())),
                Ok(false) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    #[test]
    fn lines_drop_their_terminator_and_a_last_line_needs_none() {
        let got: Vec<Vec<u8>> = lines(b"a\r\n\nbcdefgh\nlast", 100)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, [&b"a"[..], b"", b"bcdefgh", b"last"]);
        assert!(lines(b"", 100).is_empty());
        assert_eq!(lines(b"x\n", 100).len(), 1);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_refused() {
        let got = lines(b"12345\r\n123456\n", 5);
        assert_eq!(got[0].as_ref().unwrap(), b"12345");
        let e = got[1].as_ref().unwrap_err().to_string();
        assert_eq!(e, "longer than max.request.size (5 bytes)");
    }

    #[test]
    fn header_values_are_kept_verbatim() {
        assert_eq!(
            parse_header("trace=a= b").unwrap(),
            ("trace".to_owned(), "a= b".to_owned())
        );
        assert!(parse_header("=v").is_err());
        assert!(parse_header("novalue").is_err());
    }
}
