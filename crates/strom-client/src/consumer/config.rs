//! Consumer configuration by Kafka property names, with Java's defaults.

use std::time::Duration;

use super::assignor::Assignor;
use crate::error::ClientError;
use crate::props::{bad, parse_ms, parse_num, parse_servers};

/// `auto.offset.reset`: where a partition starts when it has no valid position
/// (no committed offset, or the position fell outside the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoOffsetReset {
    /// Start at the log start offset.
    Earliest,
    /// Start at the log end offset (the last stable offset under read_committed).
    Latest,
    /// Fail the poll with [`ConsumerError::NoOffsetForPartition`](super::ConsumerError)
    /// or [`ConsumerError::OffsetOutOfRange`](super::ConsumerError).
    None,
}

/// `isolation.level`: which records a fetch may return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Everything up to the high watermark, aborted transactions included.
    ReadUncommitted,
    /// Only up to the last stable offset, with aborted transactions filtered out.
    ReadCommitted,
}

impl IsolationLevel {
    /// The wire value of the Fetch and ListOffsets `isolation_level` field.
    pub fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// `group.protocol`: how a subscribing consumer takes part in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupProtocol {
    /// JoinGroup / SyncGroup / Heartbeat; the group leader assigns partitions.
    Classic,
    /// KIP-848 ConsumerGroupHeartbeat; the coordinator assigns partitions.
    Consumer,
}

/// Consumer settings. Build with [`ConsumerConfig::from_properties`] (Kafka names)
/// or start from `Default`; [`Consumer::new`](super::Consumer::new) validates.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// `bootstrap.servers`: `host:port` entries to discover the cluster from.
    pub bootstrap_servers: Vec<String>,
    /// `group.id`: the group whose committed offsets this consumer reads and
    /// writes. Optional for manual assignment; commits need it.
    pub group_id: Option<String>,
    /// `client.id`, sent in request headers. Default `strom-consumer`.
    pub client_id: String,
    /// `auto.offset.reset`. Default `latest` (as in Java).
    pub auto_offset_reset: AutoOffsetReset,
    /// `fetch.min.bytes`: bytes the broker waits for before answering a fetch. Default 1.
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes`: bytes one fetch response may carry, and the bound on
    /// records buffered in the client before it stops fetching ahead. Default 52 428 800.
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`: bytes one partition may contribute to a fetch. Default 1 048 576.
    pub max_partition_fetch_bytes: i32,
    /// `fetch.max.wait.ms`: how long the broker may hold a fetch waiting for
    /// `fetch.min.bytes`. Default 500.
    pub fetch_max_wait: Duration,
    /// `max.poll.records`: records one `poll` returns at most; the rest stay buffered. Default 500.
    pub max_poll_records: usize,
    /// `isolation.level`. Default `read_uncommitted`.
    pub isolation_level: IsolationLevel,
    /// `enable.auto.commit`: while subscribed to a group, commit the positions
    /// every `auto.commit.interval.ms` from `poll`, before partitions are
    /// revoked, and on `close`. Default true.
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`. Default 5000.
    pub auto_commit_interval: Duration,
    /// `group.protocol`: `classic` (default, as in Java 3.x) or `consumer` (KIP-848).
    pub group_protocol: GroupProtocol,
    /// `group.instance.id`: makes the member static (KIP-345).
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms` (classic protocol): how long the coordinator waits
    /// for a heartbeat before removing the member. Default 45 000.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (classic protocol). Default 3000; the consumer
    /// protocol uses the interval the coordinator sends.
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`: the longest gap between polls before the member
    /// leaves the group so its partitions move on; also the rebalance timeout. Default 300 000.
    pub max_poll_interval: Duration,
    /// `partition.assignment.strategy` (classic protocol), in preference order.
    /// Default `range`; `roundrobin` and Java's class names are accepted.
    pub assignment_strategies: Vec<Assignor>,
    /// `group.remote.assignor` (consumer protocol): the server-side assignor to
    /// ask for (`uniform` or `range`); the coordinator's default when unset.
    pub group_remote_assignor: Option<String>,
    /// `metadata.max.age.ms`: how often the subscribed topics' metadata is
    /// re-read to notice new partitions. Default 300 000.
    pub metadata_max_age: Duration,
    /// `allow.auto.create.topics`: metadata requests for subscribed or
    /// assigned topics let the broker create missing ones (when its
    /// `auto.create.topics.enable` is on). Default true, as in Java.
    pub allow_auto_create_topics: bool,
    /// `request.timeout.ms`: how long one request may take. Default 30 000.
    pub request_timeout: Duration,
    /// `retry.backoff.ms`: wait before retrying after a retriable error. Default 100.
    pub retry_backoff: Duration,
    /// `default.api.timeout.ms`: bound on blocking calls (commit, committed,
    /// offset lookups) that take no timeout argument. Default 60 000.
    pub default_api_timeout: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            bootstrap_servers: vec!["localhost:9092".into()],
            group_id: None,
            client_id: "strom-consumer".into(),
            auto_offset_reset: AutoOffsetReset::Latest,
            fetch_min_bytes: 1,
            fetch_max_bytes: 52_428_800,
            max_partition_fetch_bytes: 1_048_576,
            fetch_max_wait: Duration::from_millis(500),
            max_poll_records: 500,
            isolation_level: IsolationLevel::ReadUncommitted,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_millis(5_000),
            group_protocol: GroupProtocol::Classic,
            group_instance_id: None,
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3_000),
            max_poll_interval: Duration::from_millis(300_000),
            assignment_strategies: vec![Assignor::Range],
            group_remote_assignor: None,
            metadata_max_age: Duration::from_millis(300_000),
            allow_auto_create_topics: true,
            request_timeout: Duration::from_millis(30_000),
            retry_backoff: Duration::from_millis(100),
            default_api_timeout: Duration::from_millis(60_000),
        }
    }
}

impl ConsumerConfig {
    /// Reads Kafka property names; unknown names are an error so typos surface.
    pub fn from_properties<K, V>(
        props: impl IntoIterator<Item = (K, V)>,
    ) -> Result<ConsumerConfig, ClientError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut c = ConsumerConfig::default();
        for (k, v) in props {
            c.set(k.as_ref(), v.as_ref())?;
        }
        c.validate()?;
        Ok(c)
    }

    /// Sets one property by its Kafka name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        match key {
            "bootstrap.servers" => {
                self.bootstrap_servers = parse_servers(value);
            }
            "group.id" => {
                let v = value.trim();
                self.group_id = (!v.is_empty()).then(|| v.to_string());
            }
            "client.id" => self.client_id = value.into(),
            "auto.offset.reset" => {
                self.auto_offset_reset = match value.trim() {
                    "earliest" => AutoOffsetReset::Earliest,
                    "latest" => AutoOffsetReset::Latest,
                    "none" => AutoOffsetReset::None,
                    _ => return Err(bad(key, value)),
                }
            }
            "fetch.min.bytes" => self.fetch_min_bytes = parse_num(key, value)?,
            "fetch.max.bytes" => self.fetch_max_bytes = parse_num(key, value)?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = parse_num(key, value)?,
            "fetch.max.wait.ms" => self.fetch_max_wait = parse_ms(key, value)?,
            "max.poll.records" => self.max_poll_records = parse_num(key, value)?,
            "isolation.level" => {
                self.isolation_level = match value.trim() {
                    "read_uncommitted" => IsolationLevel::ReadUncommitted,
                    "read_committed" => IsolationLevel::ReadCommitted,
                    _ => return Err(bad(key, value)),
                }
            }
            "enable.auto.commit" => self.enable_auto_commit = parse_num(key, value)?,
            "auto.commit.interval.ms" => self.auto_commit_interval = parse_ms(key, value)?,
            "group.protocol" => {
                self.group_protocol = match value.trim().to_ascii_lowercase().as_str() {
                    "classic" => GroupProtocol::Classic,
                    "consumer" => GroupProtocol::Consumer,
                    _ => return Err(bad(key, value)),
                }
            }
            "group.instance.id" => {
                let v = value.trim();
                self.group_instance_id = (!v.is_empty()).then(|| v.to_string());
            }
            "session.timeout.ms" => self.session_timeout = parse_ms(key, value)?,
            "heartbeat.interval.ms" => self.heartbeat_interval = parse_ms(key, value)?,
            "max.poll.interval.ms" => self.max_poll_interval = parse_ms(key, value)?,
            "partition.assignment.strategy" => {
                let mut strategies = Vec::new();
                for name in value.split(',').filter(|n| !n.trim().is_empty()) {
                    match Assignor::parse(name) {
                        Some(a) => strategies.push(a),
                        None => {
                            return Err(ClientError::Config(format!(
                                "partition.assignment.strategy: unsupported assignor {} \
                                 (supported: range, roundrobin)",
                                name.trim()
                            )))
                        }
                    }
                }
                self.assignment_strategies = strategies;
            }
            "group.remote.assignor" => {
                let v = value.trim();
                self.group_remote_assignor = (!v.is_empty()).then(|| v.to_string());
            }
            "metadata.max.age.ms" => self.metadata_max_age = parse_ms(key, value)?,
            "allow.auto.create.topics" => self.allow_auto_create_topics = parse_num(key, value)?,
            "request.timeout.ms" => self.request_timeout = parse_ms(key, value)?,
            "retry.backoff.ms" => self.retry_backoff = parse_ms(key, value)?,
            "default.api.timeout.ms" => self.default_api_timeout = parse_ms(key, value)?,
            _ => {
                return Err(ClientError::Config(format!(
                    "unknown consumer property {key}"
                )))
            }
        }
        Ok(())
    }

    /// Checks ranges as Java's `ConsumerConfig` does.
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.bootstrap_servers.is_empty() {
            return Err(ClientError::Config("bootstrap.servers is required".into()));
        }
        if self.max_poll_records == 0 {
            return Err(ClientError::Config(
                "max.poll.records must be positive".into(),
            ));
        }
        if self.fetch_min_bytes < 0
            || self.fetch_max_bytes < 0
            || self.max_partition_fetch_bytes < 0
        {
            return Err(ClientError::Config(
                "fetch.min.bytes, fetch.max.bytes and max.partition.fetch.bytes must not be negative"
                    .into(),
            ));
        }
        if self.fetch_max_wait.as_millis() > i32::MAX as u128 {
            return Err(ClientError::Config("fetch.max.wait.ms is too large".into()));
        }
        if self.assignment_strategies.is_empty() {
            return Err(ClientError::Config(
                "partition.assignment.strategy needs at least one assignor".into(),
            ));
        }
        for (name, d) in [
            ("session.timeout.ms", self.session_timeout),
            ("max.poll.interval.ms", self.max_poll_interval),
        ] {
            if d.is_zero() || d.as_millis() > i32::MAX as u128 {
                return Err(ClientError::Config(format!(
                    "{name} must be between 1 and {}",
                    i32::MAX
                )));
            }
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.session_timeout {
            return Err(ClientError::Config(
                "heartbeat.interval.ms must be positive and lower than session.timeout.ms".into(),
            ));
        }
        Ok(())
    }

    /// `fetch.max.wait.ms` as the wire's i32.
    pub(crate) fn fetch_max_wait_ms(&self) -> i32 {
        self.fetch_max_wait.as_millis() as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_java_and_bad_values_are_refused() {
        let c = ConsumerConfig::from_properties([("bootstrap.servers", "a:1,b:2")]).unwrap();
        assert_eq!(c.bootstrap_servers, vec!["a:1", "b:2"]);
        assert_eq!(c.auto_offset_reset, AutoOffsetReset::Latest);
        assert_eq!((c.fetch_min_bytes, c.fetch_max_bytes), (1, 52_428_800));
        assert_eq!(c.max_partition_fetch_bytes, 1_048_576);
        assert_eq!(
            (c.fetch_max_wait.as_millis(), c.max_poll_records),
            (500, 500)
        );
        assert_eq!(c.isolation_level, IsolationLevel::ReadUncommitted);
        assert!(c.group_id.is_none());

        let c = ConsumerConfig::from_properties([
            ("group.id", "g"),
            ("auto.offset.reset", "none"),
            ("isolation.level", "read_committed"),
            ("enable.auto.commit", "false"),
            ("auto.commit.interval.ms", "100"),
        ])
        .unwrap();
        assert_eq!(c.group_id.as_deref(), Some("g"));
        assert_eq!(c.auto_offset_reset, AutoOffsetReset::None);
        assert_eq!(c.isolation_level.wire(), 1);
        assert!(!c.enable_auto_commit);

        assert!(ConsumerConfig::from_properties([("auto.offset.reset", "smallest")]).is_err());
        assert!(ConsumerConfig::from_properties([("max.poll.records", "0")]).is_err());
        assert!(ConsumerConfig::from_properties([("isolation.level", "x")]).is_err());
        assert!(ConsumerConfig::from_properties([("no.such.property", "1")]).is_err());
    }
}
