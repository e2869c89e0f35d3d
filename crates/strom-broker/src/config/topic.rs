//! Effective topic configs: topic override, then dynamic broker default, then
//! static broker property, then Kafka's default — each with its source, as
//! DescribeConfigs reports it.

use std::collections::BTreeMap;

use strom_controller::{ClusterImage, ConfigResource};

use super::defs::{ConfigDef, TOPIC_CONFIGS};
use super::BrokerConfig;

/// Where a config value came from (DescribeConfigs `config_source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    TopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
}

/// One resolved value with its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub value: String,
    pub source: ConfigSource,
}

/// Resolves a broker property: dynamic per-broker, dynamic default, static, default.
pub fn resolve_broker(
    name: &str,
    def_default: &str,
    broker: &BrokerConfig,
    image: &ClusterImage,
) -> Resolved {
    let dynamic = |resource: ConfigResource| {
        image
            .configs
            .get(&resource)
            .and_then(|m| m.get(name))
            .cloned()
    };
    if let Some(v) = dynamic(ConfigResource::Broker(Some(broker.node_id))) {
        return Resolved {
            value: v,
            source: ConfigSource::DynamicBrokerConfig,
        };
    }
    if let Some(v) = dynamic(ConfigResource::Broker(None)) {
        return Resolved {
            value: v,
            source: ConfigSource::DynamicDefaultBrokerConfig,
        };
    }
    if let Some(v) = broker.explicit.get(name) {
        return Resolved {
            value: v.clone(),
            source: ConfigSource::StaticBrokerConfig,
        };
    }
    Resolved {
        value: def_default.to_owned(),
        source: ConfigSource::DefaultConfig,
    }
}

/// Resolves one topic config.
pub fn resolve_topic(
    def: &ConfigDef,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
    image: &ClusterImage,
) -> Resolved {
    if let Some(v) = overrides.get(def.name) {
        return Resolved {
            value: v.clone(),
            source: ConfigSource::TopicConfig,
        };
    }
    match def.broker_synonym {
        Some(synonym) => resolve_broker(synonym, def.default, broker, image),
        None => Resolved {
            value: def.default.to_owned(),
            source: ConfigSource::DefaultConfig,
        },
    }
}

/// A topic's effective configs, typed for the broker's use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicConfig {
    values: BTreeMap<&'static str, String>,
}

impl TopicConfig {
    /// Resolves every topic config for `topic`.
    pub fn resolve(topic: &str, broker: &BrokerConfig, image: &ClusterImage) -> Self {
        let overrides = image.topic_configs(topic);
        let values = TOPIC_CONFIGS
            .iter()
            .map(|d| (d.name, resolve_topic(d, &overrides, broker, image).value))
            .collect();
        TopicConfig { values }
    }

    fn raw(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    /// An integer config (validated on the way in; a bad stored value reads as the default's sign: -1).
    pub fn i64(&self, name: &str) -> i64 {
        self.raw(name).trim().parse().unwrap_or(-1)
    }

    /// `max.message.bytes`.
    pub fn max_message_bytes(&self) -> usize {
        self.i64("max.message.bytes").max(0) as usize
    }
    /// `message.timestamp.type=LogAppendTime`.
    pub fn log_append_time(&self) -> bool {
        self.raw("message.timestamp.type") == "LogAppendTime"
    }
    /// `message.timestamp.before.max.ms`.
    pub fn timestamp_before_max_ms(&self) -> i64 {
        self.i64("message.timestamp.before.max.ms")
    }
    /// `message.timestamp.after.max.ms`.
    pub fn timestamp_after_max_ms(&self) -> i64 {
        self.i64("message.timestamp.after.max.ms")
    }
    /// `flush.messages`.
    pub fn flush_messages(&self) -> u64 {
        self.i64("flush.messages").max(1) as u64
    }
    /// `flush.ms`.
    pub fn flush_ms(&self) -> i64 {
        self.i64("flush.ms")
    }
    /// `cleanup.policy` contains `compact`.
    pub fn compacted(&self) -> bool {
        self.raw("cleanup.policy")
            .split(',')
            .any(|p| p.trim() == "compact")
    }
    /// `cleanup.policy` contains `delete`.
    pub fn deletes(&self) -> bool {
        self.raw("cleanup.policy")
            .split(',')
            .any(|p| p.trim() == "delete")
    }
    /// `compression.type`.
    pub fn compression_type(&self) -> &str {
        self.raw("compression.type")
    }
}

impl TopicConfig {
    /// The storage settings of a partition of this topic.
    pub fn log_config(&self) -> strom_storage::LogConfig {
        let positive = |name: &str, fallback: i64| {
            let v = self.i64(name);
            if v > 0 {
                v
            } else {
                fallback
            }
        };
        let defaults = strom_storage::LogConfig::default();
        strom_storage::LogConfig {
            segment_bytes: positive("segment.bytes", defaults.segment_bytes as i64) as u64,
            segment_ms: positive("segment.ms", defaults.segment_ms),
            segment_index_bytes: positive(
                "segment.index.bytes",
                defaults.segment_index_bytes as i64,
            ) as u64,
            index_interval_bytes: self.i64("index.interval.bytes").max(0) as u64,
            retention_ms: self.i64("retention.ms"),
            retention_bytes: self.i64("retention.bytes"),
            flush_messages: self.flush_messages(),
            flush_ms: self.flush_ms(),
            file_delete_delay_ms: self.i64("file.delete.delay.ms").max(0),
            cleanup_policy_compact: self.compacted(),
            cleanup_policy_delete: self.deletes(),
            delete_retention_ms: self.i64("delete.retention.ms").max(0),
            min_compaction_lag_ms: self.i64("min.compaction.lag.ms").max(0),
            max_compaction_lag_ms: positive("max.compaction.lag.ms", i64::MAX),
            min_cleanable_dirty_ratio: self
                .raw("min.cleanable.dirty.ratio")
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .unwrap_or(defaults.min_cleanable_dirty_ratio),
        }
    }
}
