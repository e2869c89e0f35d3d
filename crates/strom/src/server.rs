//! `strom server`: configuration from file, environment and flags, then run
//! until SIGTERM or Ctrl-C.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use strom_broker::config::defs::broker_def;
use strom_broker::config::BrokerConfig;

/// Flags of `strom server`. Precedence: flags > `STROM_*` environment > config file > defaults.
#[derive(Args, Debug, Default)]
pub struct ServerArgs {
    /// Address to listen on (host:port). Kafka property: listeners.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Address clients are told to use (host:port). Kafka property: advertised.listeners.
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Directory for logs and metadata. Kafka property: log.dirs.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML file of broker properties by their Kafka names, e.g. `"log.retention.hours" = 24`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Any broker property by its Kafka name (repeatable), e.g. `--set num.partitions=3`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Reads a TOML file of `name = value` pairs (nested tables join with '.').
fn read_config_file(path: &PathBuf, props: &mut BTreeMap<String, String>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
    fn walk(
        prefix: &str,
        table: &toml::Table,
        props: &mut BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            let value = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Table(t) => {
                    walk(&key, t, props)?;
                    continue;
                }
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                toml::Value::Datetime(d) => d.to_string(),
            };
            props.insert(key, value);
        }
        Ok(())
    }
    walk("", &table, props)
}

/// Builds the broker config from every source.
fn build_config(args: &ServerArgs) -> anyhow::Result<BrokerConfig> {
    let mut props = BTreeMap::new();
    if let Some(path) = &args.config {
        read_config_file(path, &mut props)?;
    }
    // STROM_LOG_RETENTION_HOURS=24 sets log.retention.hours. Only names of
    // broker properties count: other STROM_* variables belong to tools and
    // scripts (STROM_BOOTSTRAP, STROM_LOG, ...), and are left alone.
    for (key, value) in std::env::vars() {
        if let Some(name) = key.strip_prefix("STROM_") {
            let name = name.to_ascii_lowercase().replace('_', ".");
            if broker_def(&name).is_some() {
                props.insert(name, value);
            }
        }
    }
    for pair in &args.set {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--set expects KEY=VALUE, got '{pair}'");
        };
        props.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    if let Some(listen) = &args.listen {
        props.insert("listeners".into(), listen.clone());
    }
    if let Some(advertise) = &args.advertise {
        props.insert("advertised.listeners".into(), advertise.clone());
    }
    if let Some(dir) = &args.data_dir {
        props.insert("log.dirs".into(), dir.display().to_string());
        props.remove("log.dir");
    }
    BrokerConfig::from_properties(props).context("invalid configuration")
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STROM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

/// Runs the server until a termination signal.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    init_logging();
    let config = build_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        // Installed before the broker starts: a SIGTERM that arrives while it
        // is starting (already answering requests) stops it cleanly once
        // started, instead of killing the process with the default action.
        let mut signals = Signals::install()?;
        let broker = strom_broker::Broker::start(config).await?;
        signals.wait().await;
        tracing::info!("shutting down");
        broker.shutdown().await;
        Ok(())
    })
}

/// SIGTERM and SIGINT (Ctrl-C), caught from the moment they are installed.
struct Signals {
    term: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("strom.toml");
        std::fs::write(
            &file,
            "\"num.partitions\" = 3\n[log]\nretention.hours = 2\n",
        )
        .unwrap();
        let args = ServerArgs {
            config: Some(file),
            set: vec!["num.partitions=5".into()],
            listen: Some("127.0.0.1:0".into()),
            ..ServerArgs::default()
        };
        let config = build_config(&args).unwrap();
        assert_eq!(config.num_partitions, 5);
        assert_eq!(config.static_value("log.retention.ms").unwrap(), "7200000");
        assert_eq!(config.listen, "127.0.0.1:0");
    }

    #[test]
    fn invalid_values_are_refused_with_the_property_name() {
        let args = ServerArgs {
            set: vec!["num.partitions=zero".into()],
            ..ServerArgs::default()
        };
        let e = format!("{:#}", build_config(&args).unwrap_err());
        assert!(e.contains("num.partitions"), "{e}");
    }
}
