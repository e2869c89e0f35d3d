//! Configuration: definitions under Kafka's names, the broker's static
//! config, and effective topic configs.

mod broker;
pub mod defs;
pub mod topic;

pub use broker::{BrokerConfig, ConfigError};
pub use topic::{ConfigSource, TopicConfig};
