//! Definitions of every config Strom understands, under Kafka's names.
//!
//! One table serves startup validation, DescribeConfigs (types, defaults,
//! sources, synonyms) and the Alter*Configs handlers. Topic configs carry the
//! name of the broker property that supplies their default (`retention.ms` ←
//! `log.retention.ms`), as in Kafka.

/// A config value's type, with the numbering DescribeConfigs v3+ uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// What values a config accepts.
#[derive(Clone, Copy, Debug)]
pub enum Validator {
    /// Any value of the type.
    Any,
    /// An integer within `min..=max`.
    Range(i64, i64),
    /// One of the listed strings (case-sensitive, as Kafka).
    OneOf(&'static [&'static str]),
    /// A comma-separated list whose items are each one of these.
    ListOf(&'static [&'static str]),
}

/// One config definition.
#[derive(Clone, Copy, Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    /// Kafka's default, as text.
    pub default: &'static str,
    pub validator: Validator,
    /// For topic configs: the broker property giving the default.
    pub broker_synonym: Option<&'static str>,
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    kind: ConfigType,
    default: &'static str,
    validator: Validator,
    broker_synonym: Option<&'static str>,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        default,
        validator,
        broker_synonym,
        doc,
    }
}

use ConfigType::*;
use Validator::*;

const I32_MAX: i64 = i32::MAX as i64;
const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const CLEANUP_POLICIES: &[&str] = &["delete", "compact"];

/// Topic-level configs (Kafka's `TopicConfig`).
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def(
        "cleanup.policy",
        List,
        "delete",
        ListOf(CLEANUP_POLICIES),
        Some("log.cleanup.policy"),
        "Retention policy for old segments: delete and/or compact.",
    ),
    def(
        "compression.type",
        String,
        "producer",
        OneOf(COMPRESSION_TYPES),
        Some("compression.type"),
        "Final compression of the topic's data; 'producer' keeps what the producer sent.",
    ),
    def(
        "delete.retention.ms",
        Long,
        "86400000",
        Range(0, i64::MAX),
        Some("log.cleaner.delete.retention.ms"),
        "How long tombstones are kept on compacted topics.",
    ),
    def(
        "file.delete.delay.ms",
        Long,
        "60000",
        Range(0, i64::MAX),
        Some("log.segment.delete.delay.ms"),
        "Delay before a deleted segment's files are removed.",
    ),
    def(
        "flush.messages",
        Long,
        "9223372036854775807",
        Range(1, i64::MAX),
        Some("log.flush.interval.messages"),
        "Messages appended between fsyncs; 1 fsyncs every write before acknowledging.",
    ),
    def(
        "flush.ms",
        Long,
        "9223372036854775807",
        Range(0, i64::MAX),
        Some("log.flush.interval.ms"),
        "Longest time data may stay unsynced to disk.",
    ),
    def(
        "index.interval.bytes",
        Int,
        "4096",
        Range(0, I32_MAX),
        Some("log.index.interval.bytes"),
        "Log bytes between offset index entries.",
    ),
    def(
        "max.compaction.lag.ms",
        Long,
        "9223372036854775807",
        Range(1, i64::MAX),
        Some("log.cleaner.max.compaction.lag.ms"),
        "Longest time a record stays ineligible for compaction.",
    ),
    def(
        "max.message.bytes",
        Int,
        "1048588",
        Range(0, I32_MAX),
        Some("message.max.bytes"),
        "Largest record batch the topic accepts.",
    ),
    def(
        "message.timestamp.type",
        String,
        "CreateTime",
        OneOf(TIMESTAMP_TYPES),
        Some("log.message.timestamp.type"),
        "Whether record timestamps are the producer's or the broker's append time.",
    ),
    def(
        "message.timestamp.before.max.ms",
        Long,
        "9223372036854775807",
        Range(0, i64::MAX),
        Some("log.message.timestamp.before.max.ms"),
        "How far in the past a CreateTime timestamp may be.",
    ),
    def(
        "message.timestamp.after.max.ms",
        Long,
        "3600000",
        Range(0, i64::MAX),
        Some("log.message.timestamp.after.max.ms"),
        "How far in the future a CreateTime timestamp may be.",
    ),
    def(
        "min.cleanable.dirty.ratio",
        Double,
        "0.5",
        Any,
        Some("log.cleaner.min.cleanable.ratio"),
        "Dirty fraction of the log that triggers compaction.",
    ),
    def(
        "min.compaction.lag.ms",
        Long,
        "0",
        Range(0, i64::MAX),
        Some("log.cleaner.min.compaction.lag.ms"),
        "Shortest time a record stays uncompacted.",
    ),
    def(
        "min.insync.replicas",
        Int,
        "1",
        Range(1, I32_MAX),
        Some("min.insync.replicas"),
        "Replicas that must acknowledge an acks=all write.",
    ),
    def(
        "preallocate",
        Boolean,
        "false",
        Any,
        Some("log.preallocate"),
        "Preallocate segment files (accepted; Strom does not preallocate).",
    ),
    def(
        "retention.bytes",
        Long,
        "-1",
        Range(-1, i64::MAX),
        Some("log.retention.bytes"),
        "Largest partition size before old segments are deleted; -1 unlimited.",
    ),
    def(
        "retention.ms",
        Long,
        "604800000",
        Range(-1, i64::MAX),
        Some("log.retention.ms"),
        "Longest time a segment is kept; -1 unlimited.",
    ),
    def(
        "segment.bytes",
        Int,
        "1073741824",
        Range(14, I32_MAX),
        Some("log.segment.bytes"),
        "Segment file size before a new one is rolled.",
    ),
    def(
        "segment.index.bytes",
        Int,
        "10485760",
        Range(4, I32_MAX),
        Some("log.index.size.max.bytes"),
        "Largest offset index per segment.",
    ),
    def(
        "segment.jitter.ms",
        Long,
        "0",
        Range(0, i64::MAX),
        Some("log.roll.jitter.ms"),
        "Random jitter subtracted from segment.ms (accepted; Strom rolls without jitter).",
    ),
    def(
        "segment.ms",
        Long,
        "604800000",
        Range(1, i64::MAX),
        Some("log.roll.ms"),
        "Age after which a segment is rolled even if not full.",
    ),
    def(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        Any,
        Some("unclean.leader.election.enable"),
        "Whether an out-of-sync replica may become leader.",
    ),
];

/// Broker-level configs that are not topic synonyms.
pub const BROKER_CONFIGS: &[ConfigDef] = &[
    def(
        "node.id",
        Int,
        "1",
        Range(0, I32_MAX),
        None,
        "This node's id.",
    ),
    def(
        "broker.id",
        Int,
        "1",
        Range(0, I32_MAX),
        None,
        "Alias of node.id.",
    ),
    def(
        "listeners",
        List,
        "PLAINTEXT://localhost:9092",
        Any,
        None,
        "Where the broker listens (PLAINTEXT://host:port).",
    ),
    def(
        "advertised.listeners",
        List,
        "",
        Any,
        None,
        "Where clients are told to connect; defaults to listeners.",
    ),
    def(
        "log.dirs",
        String,
        "./strom-data",
        Any,
        None,
        "Directory holding the partition logs and metadata.",
    ),
    def(
        "log.dir",
        String,
        "./strom-data",
        Any,
        None,
        "Alias of log.dirs (one directory).",
    ),
    def(
        "auto.create.topics.enable",
        Boolean,
        "true",
        Any,
        None,
        "Create a topic when a client asks for metadata or produces to an unknown one.",
    ),
    def(
        "num.partitions",
        Int,
        "1",
        Range(1, I32_MAX),
        None,
        "Partitions of an auto-created topic.",
    ),
    def(
        "default.replication.factor",
        Int,
        "1",
        Range(1, 32767),
        None,
        "Replication factor of an auto-created topic.",
    ),
    def(
        "delete.topic.enable",
        Boolean,
        "true",
        Any,
        None,
        "Whether DeleteTopics is allowed.",
    ),
    def(
        "socket.request.max.bytes",
        Int,
        "104857600",
        Range(1, I32_MAX),
        None,
        "Largest request frame accepted; larger frames close the connection.",
    ),
    def(
        "queued.max.request.bytes",
        Long,
        "268435456",
        Range(1, i64::MAX),
        None,
        "Request bytes held in memory across all connections; over it, sockets stop being read.",
    ),
    def(
        "connections.max.idle.ms",
        Long,
        "600000",
        Range(1, i64::MAX),
        None,
        "Idle connections are closed after this long.",
    ),
    def(
        "max.connections",
        Int,
        "10000",
        Range(1, I32_MAX),
        None,
        "Most client connections at once; more are refused.",
    ),
    def(
        "max.incremental.fetch.session.cache.slots",
        Int,
        "1000",
        Range(0, I32_MAX),
        None,
        "Most fetch sessions (KIP-227) kept at once; 0 answers every fetch in full.",
    ),
    def(
        "log.retention.check.interval.ms",
        Long,
        "300000",
        Range(1, i64::MAX),
        None,
        "How often retention is applied.",
    ),
    def(
        "log.flush.scheduler.interval.ms",
        Long,
        "1000",
        Range(1, i64::MAX),
        None,
        "How often flush.ms is checked.",
    ),
    def(
        "log.retention.hours",
        Int,
        "168",
        Range(-1, I32_MAX),
        None,
        "retention in hours (log.retention.ms wins).",
    ),
    def(
        "log.retention.minutes",
        Int,
        "",
        Range(-1, I32_MAX),
        None,
        "retention in minutes (log.retention.ms wins).",
    ),
    def(
        "log.roll.hours",
        Int,
        "168",
        Range(1, I32_MAX),
        None,
        "segment.ms in hours (log.roll.ms wins).",
    ),
    def(
        "group.min.session.timeout.ms",
        Int,
        "6000",
        Range(1, I32_MAX),
        None,
        "Shortest session timeout a group member may ask for.",
    ),
    def(
        "group.max.session.timeout.ms",
        Int,
        "1800000",
        Range(1, I32_MAX),
        None,
        "Longest session timeout a group member may ask for.",
    ),
    def(
        "group.initial.rebalance.delay.ms",
        Int,
        "3000",
        Range(0, I32_MAX),
        None,
        "How long the first rebalance of an empty group waits for more members.",
    ),
    def(
        "group.max.size",
        Int,
        "2147483647",
        Range(1, I32_MAX),
        None,
        "Most members a group may have.",
    ),
    def(
        "offsets.topic.num.partitions",
        Int,
        "50",
        Range(1, I32_MAX),
        None,
        "Partitions of __consumer_offsets (fixed once the topic exists).",
    ),
    def(
        "offsets.retention.minutes",
        Int,
        "10080",
        Range(1, I32_MAX),
        None,
        "Committed offsets of an empty group are dropped this long after their commit.",
    ),
    def(
        "offsets.retention.check.interval.ms",
        Long,
        "600000",
        Range(1, i64::MAX),
        None,
        "How often expired offsets are looked for.",
    ),
    def(
        "log.cleaner.backoff.ms",
        Long,
        "15000",
        Range(1, i64::MAX),
        None,
        "How often the cleaner looks for compacted partitions to clean.",
    ),
    def(
        "group.consumer.session.timeout.ms",
        Int,
        "45000",
        Range(1, I32_MAX),
        None,
        "Session timeout of KIP-848 consumer group members.",
    ),
    def(
        "group.consumer.heartbeat.interval.ms",
        Int,
        "5000",
        Range(1, I32_MAX),
        None,
        "Heartbeat interval KIP-848 consumer group members are told to use.",
    ),
    def(
        "transaction.state.log.num.partitions",
        Int,
        "50",
        Range(1, I32_MAX),
        None,
        "Partitions of __transaction_state (fixed once the topic exists).",
    ),
    def(
        "transaction.state.log.segment.bytes",
        Int,
        "104857600",
        Range(1, I32_MAX),
        None,
        "segment.bytes of __transaction_state.",
    ),
    def(
        "transaction.max.timeout.ms",
        Int,
        "900000",
        Range(1, I32_MAX),
        None,
        "Largest transaction.timeout.ms a producer may ask for.",
    ),
    def(
        "transactional.id.expiration.ms",
        Int,
        "604800000",
        Range(1, I32_MAX),
        None,
        "A transactional id idle (no transaction) this long is forgotten.",
    ),
    def(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        Int,
        "10000",
        Range(1, I32_MAX),
        None,
        "How often transactions past their timeout are looked for and aborted.",
    ),
    def(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        Int,
        "3600000",
        Range(1, I32_MAX),
        None,
        "How often expired transactional ids are looked for.",
    ),
    def(
        "offset.metadata.max.bytes",
        Int,
        "4096",
        Range(0, I32_MAX),
        None,
        "Largest metadata string of a committed offset.",
    ),
];

/// Looks up a topic config by name.
pub fn topic_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Looks up a broker config by name: its own table, then topic synonyms.
pub fn broker_def(name: &str) -> Option<ConfigDef> {
    if let Some(d) = BROKER_CONFIGS.iter().find(|d| d.name == name) {
        return Some(*d);
    }
    TOPIC_CONFIGS
        .iter()
        .find(|d| d.broker_synonym == Some(name))
        .map(|d| ConfigDef {
            name: d.broker_synonym.expect("matched"),
            ..*d
        })
}

/// Checks `value` against `def`; the message is the one Kafka's INVALID_CONFIG carries.
pub fn validate(def: &ConfigDef, value: &str) -> Result<(), std::string::String> {
    let invalid = |why: &str| {
        Err(format!(
            "Invalid value {value} for configuration {}: {why}",
            def.name
        ))
    };
    match def.kind {
        Boolean => {
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                return invalid("Expected value to be either true or false");
            }
        }
        Int | Long => {
            let n: i64 = match value.trim().parse() {
                Ok(n) => n,
                Err(_) => return invalid("Not a number"),
            };
            if def.kind == Int && i32::try_from(n).is_err() {
                return invalid("Not an int");
            }
            if let Range(min, max) = def.validator {
                if n < min || n > max {
                    return invalid(&format!("Value must be at least {min}"));
                }
            }
        }
        Double => {
            if value
                .trim()
                .parse::<f64>()
                .map(|d| !d.is_finite())
                .unwrap_or(true)
            {
                return invalid("Not a number of type DOUBLE");
            }
        }
        String | List => {}
    }
    match def.validator {
        OneOf(allowed) if !allowed.contains(&value) => {
            invalid(&format!("String must be one of: {}", allowed.join(", ")))
        }
        ListOf(allowed) => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            if items.iter().any(|i| !allowed.contains(i)) {
                return invalid(&format!("each item must be one of: {}", allowed.join(", ")));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_types_ranges_and_choices() {
        let seg = topic_def("segment.bytes").unwrap();
        assert!(validate(seg, "1048576").is_ok());
        assert!(validate(seg, "10").is_err());
        assert!(validate(seg, "abc").is_err());
        assert!(validate(seg, "99999999999").is_err());
        let policy = topic_def("cleanup.policy").unwrap();
        assert!(validate(policy, "compact,delete").is_ok());
        assert!(validate(policy, "shred").is_err());
        assert!(validate(
            topic_def("message.timestamp.type").unwrap(),
            "LogAppendTime"
        )
        .is_ok());
        assert!(validate(topic_def("preallocate").unwrap(), "yes").is_err());
        assert_eq!(
            broker_def("log.retention.ms").unwrap().name,
            "log.retention.ms"
        );
        assert!(broker_def("retention.ms").is_none());
    }
}
