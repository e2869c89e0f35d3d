//! `strom consume`: Kafka's `kafka-console-consumer` (and `kcat -C`).
//!
//! The tool assigns itself the partitions to read (all of the topic's, or the
//! `--partition`s given), moves each to its start position before the first
//! poll, and prints every record it polls as one line. It joins no group and
//! commits nothing.
//!
//! Output goes through one buffered writer, flushed after each poll's records
//! and before the tool ends, so an interactive session sees records as they
//! arrive and a pipe gets large writes. A reader that goes away (`| head`)
//! ends the tool quietly with exit 0, as do `--max-messages`, `--timeout-ms`,
//! Ctrl-C and SIGTERM.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::builder::ArgPredicate;
use clap::{Args, ValueEnum};
use serde::Serialize;
use strom_client::{Consumer, ConsumerConfig, ConsumerRecord, TopicPartition};
use strom_protocol::records::TimestampType;
use tokio::time::Instant;

use super::progress::{Counter, Progress};
use super::{parse_key_value, time, topic_partitions, ConnectArgs};

/// `client.id` unless `--consumer-props` sets one (Kafka's tool says `console-consumer`).
const CLIENT_ID: &str = "strom-console-consumer";

/// How long one poll waits without `--timeout-ms`. It only bounds a single
/// wait (a poll holds a long-polling fetch, so idle time costs no requests
/// beyond `fetch.max.wait.ms`); Ctrl-C interrupts it at once.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Bytes buffered before stdout is written even mid-poll: large enough that a
/// pipe sees big writes, small enough that memory stays flat.
const STDOUT_BUFFER_BYTES: usize = 64 * 1024;

/// Examples and formats shown after `strom consume --help`.
const EXAMPLES: &str = "\
Examples:
  strom consume events --from-beginning
  strom consume events -p 0 --offset 42 -n 10 --print-key --key-separator ' => '
  strom consume events --from-timestamp 2024-05-01T12:00:00Z --timeout-ms 5000
  strom consume events --format json --from-beginning -n 100 | jq .value
  strom consume events --template '{partition}@{offset} {key}={value} [{headers}]'

Output formats (one line per record):
  text      the value, or key SEP value with --print-key; bytes verbatim, null as 'null'
  json      {\"topic\",\"partition\",\"offset\",\"timestamp\",\"timestamp_type\",\"key\",\"value\",\"headers\"}
            key, value and header values are null, or a string: the bytes themselves when
            they are valid UTF-8, else their base64 (RFC 4648, padded) with
            \"key_base64\": true / \"value_base64\": true next to it; headers is a list of
            {\"key\", \"value\"} objects in record order (keys may repeat)
  template  --template TEXT with placeholders {topic} {partition} {offset} {timestamp}
            {timestamp_type} {key} {value} {headers}; {headers} is k=v,k=v (empty without
            headers), null key or value prints 'null'; {{ and }} are literal braces and
            \\n, \\t, \\\\ are escapes

Starts at the log end unless --from-beginning, --offset or --from-timestamp says otherwise.
Prints 'Processed a total of N messages' on stderr when done.";

/// Flags of `strom consume`.
#[derive(Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct ConsumeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to read (it must exist).
    #[arg(value_name = "TOPIC")]
    topic: String,
    /// Read as a member of this consumer group: the group assigns the partitions,
    /// reading starts at the group's committed offsets, and offsets are
    /// committed automatically and on exit (kafka-console-consumer --group).
    ///
    /// Other members of the group (any client) share the partitions. Use
    /// --consumer-props group.protocol=consumer for the KIP-848 protocol.
    #[arg(
        short,
        long,
        value_name = "GROUP",
        conflicts_with_all = ["partitions", "offset", "from_timestamp"]
    )]
    group: Option<String>,
    /// Read only this partition (repeatable) [default: every partition of the topic].
    #[arg(
        short,
        long = "partition",
        value_name = "N",
        value_parser = clap::value_parser!(i32).range(0..)
    )]
    partitions: Vec<i32>,
    /// Start at the log start offset of each partition instead of its log end.
    ///
    /// Also makes auto.offset.reset earliest (unless --consumer-props sets it),
    /// as kafka-console-consumer does; with --group it applies to partitions
    /// without a committed offset.
    #[arg(long, conflicts_with_all = ["offset", "from_timestamp"])]
    from_beginning: bool,
    /// Start each --partition at this offset: a non-negative number, earliest or latest.
    ///
    /// An offset past the log end falls back to auto.offset.reset (latest unless
    /// --consumer-props says otherwise).
    #[arg(
        long,
        value_name = "OFFSET",
        requires = "partitions",
        value_parser = parse_start_offset,
        conflicts_with = "from_timestamp"
    )]
    offset: Option<StartOffset>,
    /// Start at the first record whose timestamp is at least this: ms since the epoch or RFC 3339.
    ///
    /// Partitions without a record that recent start at their log end.
    #[arg(long, value_name = "MS|RFC3339", value_parser = time::parse_timestamp)]
    from_timestamp: Option<i64>,
    /// Exit after printing N records.
    #[arg(
        short = 'n',
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    max_messages: Option<u64>,
    /// Exit when no record arrives for this long [default: run until Ctrl-C or SIGTERM].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: Option<u64>,
    /// Output format [default: text, or template when --template is given].
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value_t = Format::Text,
        default_value_if("template", ArgPredicate::IsPresent, "template"),
        hide_default_value = true
    )]
    format: Format,
    /// Print each record through this template, e.g. '{offset} {key}={value}'.
    ///
    /// Placeholders: {topic} {partition} {offset} {timestamp} {timestamp_type}
    /// {key} {value} {headers}. A newline follows each record. See below for details.
    #[arg(
        long,
        value_name = "TEXT",
        value_parser = Template::parse,
        required_if_eq("format", "template")
    )]
    template: Option<Template>,
    /// Print the key before the value (text format).
    #[arg(long)]
    print_key: bool,
    /// What separates key and value under --print-key [default: a tab].
    #[arg(
        long,
        value_name = "SEP",
        default_value = "\t",
        hide_default_value = true,
        requires = "print_key"
    )]
    key_separator: String,
    /// Consumer properties by their Kafka names, e.g. --consumer-props fetch.max.wait.ms=100.
    ///
    /// group.id here is the same as --group.
    #[arg(long, value_name = "KEY=VALUE", num_args = 1.., value_parser = parse_key_value)]
    consumer_props: Vec<(String, String)>,
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The value (or key, separator, value), bytes verbatim.
    Text,
    /// One JSON object per line.
    Json,
    /// The --template text with placeholders filled in.
    Template,
}

/// `--offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StartOffset {
    Earliest,
    Latest,
    At(i64),
}

fn parse_start_offset(s: &str) -> Result<StartOffset, String> {
    match s.trim() {
        "earliest" => Ok(StartOffset::Earliest),
        "latest" => Ok(StartOffset::Latest),
        n => match n.parse::<i64>() {
            Ok(o) if o >= 0 => Ok(StartOffset::At(o)),
            _ => Err(format!(
                "expected a non-negative offset, earliest or latest, got '{s}'"
            )),
        },
    }
}

/// A record field a template can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Topic,
    Partition,
    Offset,
    Timestamp,
    TimestampType,
    Key,
    Value,
    Headers,
}

impl Field {
    fn from_name(name: &str) -> Option<Field> {
        Some(match name {
            "topic" => Field::Topic,
            "partition" => Field::Partition,
            "offset" => Field::Offset,
            "timestamp" => Field::Timestamp,
            "timestamp_type" => Field::TimestampType,
            "key" => Field::Key,
            "value" => Field::Value,
            "headers" => Field::Headers,
            _ => return None,
        })
    }
}

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Field),
}

/// A parsed `--template`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses placeholders, `{{`/`}}` and the escapes `\n`, `\t`, `\\`.
    fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("unclosed '{{' in template '{s}'")),
                        }
                    }
                    let field = Field::from_name(&name).ok_or_else(|| {
                        format!(
                            "unknown placeholder {{{name}}}; known: {{topic}} {{partition}} {{offset}} \
                             {{timestamp}} {{timestamp_type}} {{key}} {{value}} {{headers}}"
                        )
                    })?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Field(field));
                }
                '}' => return Err(format!("unmatched '}}' in template '{s}' (write '}}}}')")),
                '\\' => match chars.next() {
                    Some('n') => text.push('\n'),
                    Some('t') => text.push('\t'),
                    Some('\\') => text.push('\\'),
                    Some(other) => {
                        text.push('\\');
                        text.push(other);
                    }
                    None => text.push('\\'),
                },
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    fn write(&self, out: &mut impl Write, r: &ConsumerRecord) -> io::Result<()> {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.write_all(t.as_bytes())?,
                Piece::Field(Field::Topic) => out.write_all(r.topic.as_bytes())?,
                Piece::Field(Field::Partition) => write!(out, "{}", r.partition)?,
                Piece::Field(Field::Offset) => write!(out, "{}", r.offset)?,
                Piece::Field(Field::Timestamp) => write!(out, "{}", r.timestamp)?,
                Piece::Field(Field::TimestampType) => {
                    out.write_all(timestamp_type_name(r.timestamp_type).as_bytes())?
                }
                Piece::Field(Field::Key) => write_nullable(out, r.key.as_deref())?,
                Piece::Field(Field::Value) => write_nullable(out, r.value.as_deref())?,
                Piece::Field(Field::Headers) => {
                    for (i, h) in r.headers.iter().enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(h.key.as_bytes())?;
                        out.write_all(b"=")?;
                        write_nullable(out, h.value.as_deref())?;
                    }
                }
            }
        }
        out.write_all(b"\n")
    }
}

/// Kafka's names for the timestamp types.
fn timestamp_type_name(t: TimestampType) -> &'static str {
    match t {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

/// Bytes verbatim, or `null` (as Kafka's DefaultMessageFormatter prints a null).
fn write_nullable(out: &mut impl Write, bytes: Option<&[u8]>) -> io::Result<()> {
    out.write_all(bytes.unwrap_or(b"null"))
}

/// How records become lines.
enum Printer {
    Text {
        /// `--key-separator` when `--print-key` is on.
        key_separator: Option<Vec<u8>>,
    },
    Json,
    Template(Template),
}

/// One record as `--format json` prints it.
#[derive(Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    timestamp_type: &'static str,
    key: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "is_false")]
    key_base64: bool,
    value: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "is_false")]
    value_base64: bool,
    headers: Vec<JsonHeader<'a>>,
}

#[derive(Serialize)]
struct JsonHeader<'a> {
    key: &'a str,
    value: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "is_false")]
    value_base64: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The JSON rule for bytes: UTF-8 text as itself, anything else as base64
/// (the flag says which).
fn json_bytes(bytes: Option<&[u8]>) -> (Option<Cow<'_, str>>, bool) {
    match bytes {
        None => (None, false),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => (Some(Cow::Borrowed(s)), false),
            Err(_) => (Some(Cow::Owned(base64(b))), true),
        },
    }
}

impl Printer {
    fn write(&self, out: &mut impl Write, r: &ConsumerRecord) -> io::Result<()> {
        match self {
            Printer::Text { key_separator } => {
                if let Some(sep) = key_separator {
                    write_nullable(out, r.key.as_deref())?;
                    out.write_all(sep)?;
                }
                write_nullable(out, r.value.as_deref())?;
                out.write_all(b"\n")
            }
            Printer::Json => {
                let (key, key_base64) = json_bytes(r.key.as_deref());
                let (value, value_base64) = json_bytes(r.value.as_deref());
                let record = JsonRecord {
                    topic: &r.topic,
                    partition: r.partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    timestamp_type: timestamp_type_name(r.timestamp_type),
                    key,
                    key_base64,
                    value,
                    value_base64,
                    headers: r
                        .headers
                        .iter()
                        .map(|h| {
                            let (value, value_base64) = json_bytes(h.value.as_deref());
                            JsonHeader {
                                key: &h.key,
                                value,
                                value_base64,
                            }
                        })
                        .collect(),
                };
                serde_json::to_writer(&mut *out, &record).map_err(io::Error::from)?;
                out.write_all(b"\n")
            }
            Printer::Template(t) => t.write(out, r),
        }
    }
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Runs `strom consume`.
pub async fn run(a: ConsumeArgs) -> anyhow::Result<()> {
    let printer = printer(&a);
    let config = consumer_config(&a)?;

    // Fail fast on a missing topic or partition: the consumer would otherwise
    // wait for metadata that never comes.
    let count = topic_partitions(&a.connect.bootstrap_server, &a.topic)
        .await?
        .len();
    let in_group = config.group_id.is_some();
    let partitions = if in_group {
        Vec::new()
    } else {
        chosen_partitions(&a, count)?
    };

    let mut consumer = Consumer::new(config).await?;
    if in_group {
        consumer.subscribe([a.topic.as_str()])?;
    } else {
        consumer.assign(partitions.clone());
    }
    let mut out = BufWriter::with_capacity(STDOUT_BUFFER_BYTES, io::stdout());
    let mut printed = 0u64;
    // A progress line while records go to a file or a pipe.
    let progress = Progress::start("consumed", !io::stdout().is_terminal());
    let counter = progress.counter();
    let result = tokio::select! {
        biased;
        () = shutdown_signal() => Ok(()),
        r = async {
            if !in_group {
                start_positions(&mut consumer, &a, &partitions).await?;
            }
            consume(&mut consumer, &a, &printer, &mut out, &mut printed, &counter).await
        } => r,
    };
    progress.finish();
    // A group member commits its positions and leaves the group, so the
    // partitions move on at once and a later run continues where this one stopped.
    consumer.close().await;
    // What was printed before a failure or a signal still reaches stdout.
    let flushed = out.flush();
    match result {
        Err(e) if !is_closed_pipe(&e) => return Err(e),
        _ => {}
    }
    match flushed {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(anyhow::Error::new(e).context("writing to stdout"))
        }
        _ => {}
    }
    let plural = if printed == 1 { "" } else { "s" };
    eprintln!("Processed a total of {printed} message{plural}");
    Ok(())
}

/// Refuses `--template` with another `--format` as clap refuses conflicting
/// flags (exit 2), and builds the printer.
fn printer(a: &ConsumeArgs) -> Printer {
    match (a.format, &a.template) {
        (Format::Template, Some(t)) => Printer::Template(t.clone()),
        (Format::Text, None) => Printer::Text {
            key_separator: a.print_key.then(|| a.key_separator.clone().into_bytes()),
        },
        (Format::Json, None) => Printer::Json,
        (format, _) => {
            let message = match format {
                Format::Template => "--format template needs --template".to_owned(),
                f => format!(
                    "--template cannot be used with --format {}",
                    f.to_possible_value()
                        .map_or("?".into(), |v| v.get_name().to_owned())
                ),
            };
            ConsumeArgs::augment_args(clap::Command::new("strom consume"))
                .error(clap::error::ErrorKind::ArgumentConflict, message)
                .exit()
        }
    }
}

/// The consumer config from the flags.
fn consumer_config(a: &ConsumeArgs) -> anyhow::Result<ConsumerConfig> {
    let mut config = ConsumerConfig::default();
    config.set("bootstrap.servers", &a.connect.bootstrap_server)?;
    config.set("client.id", CLIENT_ID)?;
    let reset = if a.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    config.set("auto.offset.reset", reset)?;
    for (k, v) in &a.consumer_props {
        config.set(k, v).context("invalid --consumer-props")?;
    }
    if let Some(g) = &a.group {
        config.set("group.id", g)?;
    }
    if config.group_id.is_some()
        && (!a.partitions.is_empty() || a.offset.is_some() || a.from_timestamp.is_some())
    {
        bail!("a group.id cannot be combined with --partition, --offset or --from-timestamp");
    }
    config.validate().context("invalid --consumer-props")?;
    Ok(config)
}

/// The `--partition`s (checked against the topic), or every partition.
fn chosen_partitions(a: &ConsumeArgs, count: usize) -> anyhow::Result<Vec<TopicPartition>> {
    let chosen: BTreeSet<i32> = if a.partitions.is_empty() {
        (0..i32::try_from(count).unwrap_or(i32::MAX)).collect()
    } else {
        a.partitions.iter().copied().collect()
    };
    for &p in &chosen {
        if usize::try_from(p).map_or(true, |p| p >= count) {
            bail!(
                "partition {p} does not exist (topic '{}' has {count} partitions)",
                a.topic
            );
        }
    }
    Ok(chosen
        .into_iter()
        .map(|p| TopicPartition::new(a.topic.as_str(), p))
        .collect())
}

/// Moves every partition to its start and resolves the positions now, so what
/// the tool reads is fixed when it starts (not at its first fetch).
async fn start_positions(
    consumer: &mut Consumer,
    a: &ConsumeArgs,
    partitions: &[TopicPartition],
) -> anyhow::Result<()> {
    match (a.offset, a.from_timestamp) {
        (Some(StartOffset::At(offset)), _) => {
            for tp in partitions {
                consumer.seek(tp, offset)?;
            }
        }
        (Some(StartOffset::Earliest), _) => consumer.seek_to_beginning(&[])?,
        (Some(StartOffset::Latest), _) => consumer.seek_to_end(&[])?,
        (None, Some(ts)) => {
            let wanted: HashMap<TopicPartition, i64> =
                partitions.iter().map(|tp| (tp.clone(), ts)).collect();
            let found = consumer.offsets_for_times(&wanted).await?;
            for tp in partitions {
                match found.get(tp).copied().flatten() {
                    Some(at) => consumer.seek(tp, at.offset)?,
                    None => consumer.seek_to_end(std::slice::from_ref(tp))?,
                }
            }
        }
        (None, None) if a.from_beginning => consumer.seek_to_beginning(&[])?,
        (None, None) => consumer.seek_to_end(&[])?,
    }
    for tp in partitions {
        consumer.position(tp).await?;
    }
    Ok(())
}

/// Polls and prints until `--max-messages` or `--timeout-ms` says stop;
/// `printed` counts the records written so far (it survives cancellation).
async fn consume(
    consumer: &mut Consumer,
    a: &ConsumeArgs,
    printer: &Printer,
    out: &mut impl Write,
    printed: &mut u64,
    progress: &Counter,
) -> anyhow::Result<()> {
    let idle_timeout = a.timeout_ms.map(Duration::from_millis);
    let mut last_record_at = Instant::now();
    loop {
        let wait = match idle_timeout {
            Some(t) => (last_record_at + t).saturating_duration_since(Instant::now()),
            None => IDLE_POLL,
        };
        let records = consumer.poll(wait).await?;
        if records.is_empty() {
            if idle_timeout.is_some_and(|t| last_record_at.elapsed() >= t) {
                return Ok(());
            }
            continue;
        }
        last_record_at = Instant::now();
        for r in &records {
            printer.write(out, r).map_err(stdout_error)?;
            *printed += 1;
            let bytes =
                r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len());
            progress.add(1, bytes as u64);
            if a.max_messages == Some(*printed) {
                return Ok(());
            }
        }
        out.flush().map_err(stdout_error)?;
    }
}

fn stdout_error(e: io::Error) -> anyhow::Error {
    anyhow::Error::new(e).context("writing to stdout")
}

/// Whether `e` is stdout's reader going away: the tool's cue to stop quietly.
fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// Resolves on Ctrl-C or SIGTERM. If a handler cannot be installed it never
/// resolves for that signal, which then keeps its default (ending the process).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                if term.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use strom_protocol::records::Header;

    fn record(key: Option<&[u8]>, value: Option<&[u8]>) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1000,
            timestamp_type: TimestampType::CreateTime,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: vec![
                Header {
                    key: "a".into(),
                    value: Some(Bytes::from_static(b"1")),
                },
                Header {
                    key: "b".into(),
                    value: None,
                },
            ],
            leader_epoch: None,
        }
    }

    fn render(printer: &Printer, r: &ConsumerRecord) -> String {
        let mut out = Vec::new();
        printer.write(&mut out, r).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn templates_fill_every_placeholder_and_keep_literal_braces() {
        let t = Template::parse(
            "{topic}-{partition}@{offset} {key}={value} [{headers}] {timestamp} {timestamp_type} {{x}}\\t.",
        )
        .unwrap();
        let line = render(&Printer::Template(t), &record(Some(b"k"), None));
        assert_eq!(line, "t-2@7 k=null [a=1,b=null] 1000 CreateTime {x}\t.\n");
    }

    #[test]
    fn bad_templates_are_refused() {
        for bad in ["{nope}", "{value", "x}y"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_values_are_utf8_text_or_flagged_base64() {
        let line = render(&Printer::Json, &record(Some(&[0xff, 0x00]), Some(b"v\"1")));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["key"], "/wA=");
        assert_eq!(v["key_base64"], true);
        assert_eq!(v["value"], "v\"1");
        assert!(v.get("value_base64").is_none());
        assert_eq!(v["headers"][0]["key"], "a");
        assert_eq!(v["headers"][1]["value"], serde_json::Value::Null);
        assert_eq!(
            (&v["topic"], &v["partition"], &v["offset"]),
            (&"t".into(), &2.into(), &7.into())
        );
        assert_eq!(v["timestamp_type"], "CreateTime");
    }

    #[test]
    fn text_prints_the_key_only_when_asked() {
        let r = record(None, Some(b"v"));
        let plain = Printer::Text {
            key_separator: None,
        };
        assert_eq!(render(&plain, &r), "v\n");
        let keyed = Printer::Text {
            key_separator: Some(b" => ".to_vec()),
        };
        assert_eq!(render(&keyed, &r), "null => v\n");
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn start_offsets_are_numbers_or_ends() {
        assert_eq!(parse_start_offset("earliest"), Ok(StartOffset::Earliest));
        assert_eq!(parse_start_offset("latest"), Ok(StartOffset::Latest));
        assert_eq!(parse_start_offset("42"), Ok(StartOffset::At(42)));
        assert!(parse_start_offset("-1").is_err());
        assert!(parse_start_offset("first").is_err());
    }
}
