//! Parsing of client properties given by their Kafka names, shared by the
//! producer and consumer configs.

use std::time::Duration;

use crate::error::ClientError;

/// The error for a value a property cannot take.
pub(crate) fn bad(key: &str, value: &str) -> ClientError {
    ClientError::Config(format!("invalid value {value:?} for {key}"))
}

/// A number, or `bad` naming the property.
pub(crate) fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ClientError> {
    value.trim().parse().map_err(|_| bad(key, value))
}

/// A duration given in milliseconds.
pub(crate) fn parse_ms(key: &str, value: &str) -> Result<Duration, ClientError> {
    parse_num::<u64>(key, value).map(Duration::from_millis)
}

/// `bootstrap.servers`: a comma-separated list of `host:port`.
pub(crate) fn parse_servers(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}
