//! The client-side tools of the `strom` binary: `topic`, `cluster`, `produce`,
//! `consume` and `perf`.
//!
//! Each tool runs on its own tokio runtime, talks to brokers through
//! `strom-client`, and reports failure as one line on stderr plus an exit code
//! from [`ExitCode`] that scripts can rely on.

pub mod cluster;
pub mod consume;
pub mod group;
pub mod output;
pub mod perf_consume;
pub mod perf_e2e;
pub mod perf_produce;
mod perf_stats;
pub mod produce;
mod progress;
mod time;
pub mod topic;

use std::future::Future;

use clap::{Args, Subcommand};
use strom_client::{ClientError, ConsumerError, ProducerError};

/// The broker address flag every tool takes.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Broker(s) to bootstrap from, as a comma-separated list of host:port.
    #[arg(
        short = 'b',
        long = "bootstrap-server",
        value_name = "HOST:PORT",
        env = "STROM_BOOTSTRAP",
        hide_env_values = true,
        default_value = "localhost:9092"
    )]
    pub bootstrap_server: String,
}

/// Flags of `strom perf`.
#[derive(Args, Debug)]
pub struct PerfArgs {
    #[command(subcommand)]
    pub command: PerfCommand,
}

/// The benchmark tools.
#[derive(Subcommand, Debug)]
pub enum PerfCommand {
    /// Produce records at a target rate and report throughput and latency percentiles
    /// (Kafka's kafka-producer-perf-test).
    Produce(perf_produce::PerfProduceArgs),
    /// Consume records as fast as possible and report throughput and fetch latency
    /// (Kafka's kafka-consumer-perf-test).
    Consume(perf_consume::PerfConsumeArgs),
    /// Measure produce-to-consume latency at a given rate (Kafka's EndToEndLatency).
    E2e(perf_e2e::PerfE2eArgs),
}

/// Runs `strom perf ...`.
pub async fn run_perf(args: PerfArgs) -> anyhow::Result<()> {
    match args.command {
        PerfCommand::Produce(a) => perf_produce::run(a).await,
        PerfCommand::Consume(a) => perf_consume::run(a).await,
        PerfCommand::E2e(a) => perf_e2e::run(a).await,
    }
}

/// Exit codes of the tools. Clap itself exits with 2 on a usage error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// The broker (or the tool) reported an error: unknown topic, topic exists, ...
    ServerError = 1,
    /// No broker accepted a connection, or the connection broke mid-request.
    Unreachable = 3,
}

/// The text of `strom --help`'s exit code section.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the broker reported an error (unknown topic, topic exists, ...) or the tool failed
  2  usage error (unknown flag, bad value)
  3  broker unreachable (connection refused, timed out or closed)

Every tool takes -b/--bootstrap-server (default localhost:9092, or $STROM_BOOTSTRAP).";

/// Runs a tool's future on a fresh runtime and turns its outcome into an exit code.
pub fn run<F>(tool: F) -> std::process::ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strom: cannot start the runtime: {e}");
            return std::process::ExitCode::from(ExitCode::ServerError as u8);
        }
    };
    match runtime.block_on(tool) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let (code, message) = describe_error(&e);
            eprintln!("strom: {message}");
            std::process::ExitCode::from(code as u8)
        }
    }
}

/// One readable line and the exit code for a tool's error.
fn describe_error(e: &anyhow::Error) -> (ExitCode, String) {
    for cause in e.chain() {
        let client = cause
            .downcast_ref::<ClientError>()
            .or_else(|| match cause.downcast_ref::<ProducerError>() {
                Some(ProducerError::Client(c)) => Some(c),
                _ => None,
            })
            .or_else(|| match cause.downcast_ref::<ConsumerError>() {
                Some(ConsumerError::Client(c)) => Some(c),
                _ => None,
            });
        match client {
            Some(ClientError::Unreachable { addr, reason }) => {
                let reason = short_io_reason(reason);
                return (
                    ExitCode::Unreachable,
                    format!("cannot reach broker at {addr}: {reason}"),
                );
            }
            Some(ClientError::ConnectionClosed { addr }) => {
                return (
                    ExitCode::Unreachable,
                    format!("connection to broker at {addr} closed"),
                );
            }
            _ => {}
        }
    }
    (ExitCode::ServerError, format!("{e:#}"))
}

/// "Connection refused (os error 111)" -> "connection refused".
fn short_io_reason(reason: &str) -> String {
    let trimmed = match reason.find(" (os error") {
        Some(i) => &reason[..i],
        None => reason,
    };
    let mut chars = trimmed.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Parses `key=value` for flags such as `--config` and `--producer-props`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

/// The partitions of `topic`, or "topic 'x' does not exist" (exit 1) when it
/// is missing: tools check before starting a consumer, which would otherwise
/// wait for metadata that never comes.
pub async fn topic_partitions(
    bootstrap: &str,
    topic: &str,
) -> anyhow::Result<Vec<strom_client::TopicPartition>> {
    let admin = strom_client::Admin::connect(bootstrap).await?;
    let described = admin
        .describe_topics(&[topic])
        .await
        .map_err(|e| topic_error(topic, e))?;
    Ok(described
        .first()
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| strom_client::TopicPartition::new(topic, p.partition))
                .collect()
        })
        .unwrap_or_default())
}

/// Turns a Kafka error about one topic into a sentence naming the topic.
pub fn topic_error(topic: &str, e: ClientError) -> anyhow::Error {
    match e.code() {
        Some(3) => anyhow::anyhow!("topic '{topic}' does not exist"),
        Some(36) => anyhow::anyhow!("topic '{topic}' already exists"),
        _ => anyhow::Error::new(e).context(format!("topic '{topic}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_errors_exit_with_3_and_read_as_one_line() {
        let e = anyhow::Error::new(ClientError::Unreachable {
            addr: "127.0.0.1:1".into(),
            reason: "Connection refused (os error 111)".into(),
        })
        .context("connecting");
        let (code, msg) = describe_error(&e);
        assert_eq!(code, ExitCode::Unreachable);
        assert_eq!(
            msg,
            "cannot reach broker at 127.0.0.1:1: connection refused"
        );
        let (code, _) = describe_error(&topic_error("t", ClientError::kafka(36, None)));
        assert_eq!(code, ExitCode::ServerError);
    }

    #[test]
    fn key_values_need_a_key_and_an_equals_sign() {
        assert_eq!(
            parse_key_value("acks = all").unwrap(),
            ("acks".to_owned(), "all".to_owned())
        );
        assert!(parse_key_value("acks").is_err());
        assert!(parse_key_value("=1").is_err());
    }
}
