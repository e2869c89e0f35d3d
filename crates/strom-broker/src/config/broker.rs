//! The broker's static configuration, from Kafka property names.

use std::collections::BTreeMap;
use std::path::PathBuf;

use thiserror::Error;

use super::defs::{broker_def, validate};

/// A config that cannot start the broker.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown config '{0}' (Strom uses Kafka's broker property names)")]
    Unknown(String),
    #[error("{0}")]
    Invalid(String),
}

/// Static broker properties after validation, with typed accessors for what
/// the broker reads on its hot paths. The raw map is kept for DescribeConfigs.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `node.id`: this broker's id. Default 1.
    pub node_id: i32,
    /// Address the listener binds (`host:port`). Default `localhost:9092`.
    pub listen: String,
    /// Host clients are told to connect to. Default: the listen host.
    pub advertised_host: String,
    /// Port clients are told to connect to. Default: the listen port.
    pub advertised_port: i32,
    /// `log.dirs`: where logs and metadata live. Default `./strom-data`.
    pub data_dir: PathBuf,
    /// `auto.create.topics.enable`. Default true.
    pub auto_create_topics: bool,
    /// `num.partitions` for auto-created topics. Default 1.
    pub num_partitions: i32,
    /// `default.replication.factor`. Default 1.
    pub default_replication_factor: i16,
    /// `delete.topic.enable`. Default true.
    pub delete_topic_enable: bool,
    /// `socket.request.max.bytes`: largest frame, bytes. Default 100 MiB.
    pub socket_request_max_bytes: usize,
    /// `queued.max.request.bytes`: request memory across all connections, bytes. Default 256 MiB.
    pub queued_max_request_bytes: usize,
    /// `connections.max.idle.ms`. Default 10 minutes.
    pub connections_max_idle_ms: u64,
    /// `max.connections`. Default 10,000.
    pub max_connections: usize,
    /// `max.incremental.fetch.session.cache.slots`: fetch sessions kept. Default 1,000.
    pub fetch_session_slots: usize,
    /// `log.retention.check.interval.ms`. Default 5 minutes.
    pub retention_check_interval_ms: u64,
    /// `log.flush.scheduler.interval.ms`. Default 1 s.
    pub flush_scheduler_interval_ms: u64,
    /// `group.min.session.timeout.ms`. Default 6 s.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`. Default 30 minutes.
    pub group_max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`. Default 3 s.
    pub group_initial_rebalance_delay_ms: i64,
    /// `group.max.size`. Default unlimited.
    pub group_max_size: usize,
    /// `offsets.topic.num.partitions`. Default 50.
    pub offsets_topic_partitions: i32,
    /// `offsets.retention.minutes`, in ms. Default 7 days.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`. Default 10 minutes.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`. Default 4096.
    pub offset_metadata_max_bytes: usize,
    /// `group.consumer.session.timeout.ms`. Default 45 s.
    pub group_consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`. Default 5 s.
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `log.cleaner.backoff.ms`. Default 15 s.
    pub cleaner_backoff_ms: u64,
    /// Every property that was set explicitly (file, env, flags), by Kafka name.
    /// `transaction.state.log.num.partitions`.
    pub transaction_state_partitions: i32,
    /// `transaction.state.log.segment.bytes`.
    pub transaction_state_segment_bytes: i32,
    /// The transaction coordinator's settings (`transaction.*`).
    pub txn: crate::txn::TxnConfig,
    pub explicit: BTreeMap<String, String>,
}

impl BrokerConfig {
    /// Builds a config from explicitly set properties; validates every one.
    pub fn from_properties(props: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut props = props;
        for (name, value) in &props {
            let def = broker_def(name).ok_or_else(|| ConfigError::Unknown(name.clone()))?;
            validate(&def, value).map_err(ConfigError::Invalid)?;
        }
        // Kafka's precedence among the retention/roll spellings: ms > minutes > hours.
        if !props.contains_key("log.retention.ms") {
            if let Some(m) = props.get("log.retention.minutes") {
                let v = m.parse::<i64>().unwrap_or(-1);
                props.insert(
                    "log.retention.ms".into(),
                    if v < 0 {
                        "-1".into()
                    } else {
                        (v * 60_000).to_string()
                    },
                );
            } else if let Some(h) = props.get("log.retention.hours") {
                let v = h.parse::<i64>().unwrap_or(-1);
                props.insert(
                    "log.retention.ms".into(),
                    if v < 0 {
                        "-1".into()
                    } else {
                        (v * 3_600_000).to_string()
                    },
                );
            }
        }
        if !props.contains_key("log.roll.ms") {
            if let Some(h) = props.get("log.roll.hours") {
                let v = h.parse::<i64>().unwrap_or(168);
                props.insert("log.roll.ms".into(), (v * 3_600_000).to_string());
            }
        }
        let get = |name: &str| -> String {
            props
                .get(name)
                .cloned()
                .or_else(|| broker_def(name).map(|d| d.default.to_owned()))
                .unwrap_or_default()
        };
        let int = |name: &str| -> i64 { get(name).trim().parse().expect("validated above") };
        let boolean = |name: &str| get(name).eq_ignore_ascii_case("true");

        let node_id = if props.contains_key("node.id") {
            int("node.id")
        } else {
            int("broker.id")
        } as i32;
        let listen = listener_address(&get("listeners"))?;
        let advertised_raw = get("advertised.listeners");
        let advertised = if advertised_raw.is_empty() {
            listen.clone()
        } else {
            listener_address(&advertised_raw)?
        };
        let (advertised_host, advertised_port) = split_host_port(&advertised)?;
        let data_dir = if props.contains_key("log.dirs") {
            get("log.dirs")
        } else {
            get("log.dir")
        };
        if data_dir.contains(',') {
            return Err(ConfigError::Invalid(
                "log.dirs: Strom uses one data directory; give exactly one path".into(),
            ));
        }
        Ok(BrokerConfig {
            node_id,
            listen,
            advertised_host,
            advertised_port,
            data_dir: PathBuf::from(data_dir),
            auto_create_topics: boolean("auto.create.topics.enable"),
            num_partitions: int("num.partitions") as i32,
            default_replication_factor: int("default.replication.factor") as i16,
            delete_topic_enable: boolean("delete.topic.enable"),
            socket_request_max_bytes: int("socket.request.max.bytes") as usize,
            queued_max_request_bytes: int("queued.max.request.bytes") as usize,
            connections_max_idle_ms: int("connections.max.idle.ms") as u64,
            max_connections: int("max.connections") as usize,
            fetch_session_slots: int("max.incremental.fetch.session.cache.slots") as usize,
            retention_check_interval_ms: int("log.retention.check.interval.ms") as u64,
            flush_scheduler_interval_ms: int("log.flush.scheduler.interval.ms") as u64,
            group_min_session_timeout_ms: int("group.min.session.timeout.ms") as i32,
            group_max_session_timeout_ms: int("group.max.session.timeout.ms") as i32,
            group_initial_rebalance_delay_ms: int("group.initial.rebalance.delay.ms"),
            group_max_size: int("group.max.size") as usize,
            offsets_topic_partitions: int("offsets.topic.num.partitions") as i32,
            offsets_retention_ms: int("offsets.retention.minutes") * 60_000,
            offsets_retention_check_interval_ms: int("offsets.retention.check.interval.ms"),
            offset_metadata_max_bytes: int("offset.metadata.max.bytes") as usize,
            cleaner_backoff_ms: int("log.cleaner.backoff.ms") as u64,
            group_consumer_session_timeout_ms: int("group.consumer.session.timeout.ms") as i32,
            group_consumer_heartbeat_interval_ms: int("group.consumer.heartbeat.interval.ms")
                as i32,
            transaction_state_partitions: int("transaction.state.log.num.partitions") as i32,
            transaction_state_segment_bytes: int("transaction.state.log.segment.bytes") as i32,
            txn: crate::txn::TxnConfig {
                max_timeout_ms: int("transaction.max.timeout.ms") as i32,
                transactional_id_expiration_ms: int("transactional.id.expiration.ms"),
                abort_timed_out_transaction_cleanup_interval_ms: int(
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                ),
                remove_expired_transaction_cleanup_interval_ms: int(
                    "transaction.remove.expired.transaction.cleanup.interval.ms",
                ),
                ..crate::txn::TxnConfig::default()
            },
            explicit: props,
        })
    }

    /// A config with every default (for tests and `strom server` without flags).
    pub fn defaults() -> Self {
        Self::from_properties(BTreeMap::new()).expect("defaults are valid")
    }

    /// The static value of a broker property (explicit or Kafka's default).
    pub fn static_value(&self, name: &str) -> Option<String> {
        self.explicit
            .get(name)
            .cloned()
            .or_else(|| broker_def(name).map(|d| d.default.to_owned()))
    }
}

/// Accepts `host:port` or `PLAINTEXT://host:port` (one listener).
fn listener_address(raw: &str) -> Result<String, ConfigError> {
    let first = raw.split(',').next().unwrap_or("").trim();
    if raw.split(',').count() > 1 {
        return Err(ConfigError::Invalid(format!(
            "listeners '{raw}': Strom has one PLAINTEXT listener; give one address"
        )));
    }
    let addr = match first.split_once("://") {
        Some((proto, rest)) if proto.eq_ignore_ascii_case("PLAINTEXT") => rest,
        Some((proto, _)) => {
            return Err(ConfigError::Invalid(format!(
                "listener protocol '{proto}' is not supported (only PLAINTEXT)"
            )))
        }
        None => first,
    };
    split_host_port(addr)?;
    Ok(addr.to_owned())
}

fn split_host_port(addr: &str) -> Result<(String, i32), ConfigError> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| ConfigError::Invalid(format!("address '{addr}' must be host:port")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| ConfigError::Invalid(format!("address '{addr}': invalid port")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((
        if host.is_empty() {
            "localhost".into()
        } else {
            host.to_owned()
        },
        i32::from(port),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_kafka() {
        let c = BrokerConfig::defaults();
        assert_eq!(c.listen, "localhost:9092");
        assert_eq!(
            (c.advertised_host.as_str(), c.advertised_port),
            ("localhost", 9092)
        );
        assert_eq!(c.node_id, 1);
        assert!(c.auto_create_topics);
        assert_eq!(c.num_partitions, 1);
        assert_eq!(c.data_dir, PathBuf::from("./strom-data"));
    }

    #[test]
    fn refuses_unknown_and_invalid_values_with_clear_messages() {
        assert_eq!(
            BrokerConfig::from_properties(props(&[("log.retention.msec", "1")])).unwrap_err(),
            ConfigError::Unknown("log.retention.msec".into())
        );
        let e = BrokerConfig::from_properties(props(&[("num.partitions", "0")])).unwrap_err();
        assert!(e.to_string().contains("num.partitions"), "{e}");
        assert!(BrokerConfig::from_properties(props(&[("listeners", "SSL://x:1")])).is_err());
        assert!(BrokerConfig::from_properties(props(&[("listeners", "x")])).is_err());
    }

    #[test]
    fn retention_hours_and_listeners_resolve_as_kafka() {
        let c = BrokerConfig::from_properties(props(&[
            ("log.retention.hours", "1"),
            ("listeners", "PLAINTEXT://0.0.0.0:19092"),
            ("advertised.listeners", "PLAINTEXT://example:29092"),
        ]))
        .unwrap();
        assert_eq!(c.static_value("log.retention.ms").unwrap(), "3600000");
        assert_eq!(c.listen, "0.0.0.0:19092");
        assert_eq!(
            (c.advertised_host.as_str(), c.advertised_port),
            ("example", 29092)
        );
    }
}
