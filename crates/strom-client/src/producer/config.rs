//! Producer configuration by Kafka property names, with Java's defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use strom_protocol::records::Compression;

use super::partitioner::{DefaultPartitioner, Partitioner};
use crate::error::ClientError;
use crate::props::{bad, parse_ms, parse_num, parse_servers};

/// `acks`: how many replicas must have a batch before the broker answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: no response; offsets are reported as -1.
    None,
    /// `acks=1`: the leader's append.
    Leader,
    /// `acks=all` / `-1`: every in-sync replica.
    All,
}

impl Acks {
    /// The wire value of the produce request's `acks` field.
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Java's `max.in.flight.requests.per.connection` ceiling under idempotence:
/// the broker keeps the last five batches' sequence state per producer.
pub const MAX_IN_FLIGHT_IDEMPOTENT: usize = 5;

/// The highest transaction protocol version (Kafka's `transaction.version`
/// feature level) this client speaks: 2 is KIP-890 part 2, where Produce v12
/// adds partitions to the transaction and every EndTxn v5 bumps the epoch.
pub const TRANSACTION_VERSION_LATEST: i16 = 2;

/// Producer settings. Build with [`ProducerConfig::from_properties`] (Kafka names)
/// or start from `Default` and set fields; [`Producer::new`](super::Producer::new) validates.
#[derive(Clone)]
pub struct ProducerConfig {
    /// `bootstrap.servers`: `host:port` entries to discover the cluster from.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`, sent in request headers. Default `strom-producer`.
    pub client_id: String,
    /// `acks`. Default `all`.
    pub acks: Acks,
    /// `linger.ms`: how long a partition's batch may wait for more records. Default 5.
    pub linger: Duration,
    /// `batch.size`: bytes at which a partition's batch is sent. Default 16384.
    pub batch_size: usize,
    /// `compression.type`: none, gzip, snappy, lz4, zstd. Default none.
    pub compression: Compression,
    /// `enable.idempotence`. Default true; needs `acks=all`.
    pub enable_idempotence: bool,
    /// Whether `enable.idempotence` was set explicitly (Java then refuses conflicts
    /// instead of silently turning idempotence off).
    pub idempotence_explicit: bool,
    /// `max.in.flight.requests.per.connection`. Default 5 (≤ 5 under idempotence).
    pub max_in_flight: usize,
    /// `delivery.timeout.ms`: upper bound from `send` to success or failure,
    /// retries included. Default 120 000.
    pub delivery_timeout: Duration,
    /// `request.timeout.ms`: how long one produce request may take. Default 30 000.
    pub request_timeout: Duration,
    /// `retries`: resends of a failed batch. Default `i32::MAX` (bounded by the delivery timeout).
    pub retries: u32,
    /// `retry.backoff.ms`: wait before resending or refreshing metadata. Default 100.
    pub retry_backoff: Duration,
    /// `max.request.size`: largest record (and request) accepted. Default 1 MiB.
    pub max_request_size: usize,
    /// The partitioner (`partitioner.class` in Java). Default: Java's built-in one.
    pub partitioner: Arc<dyn Partitioner>,
    /// `transactional.id`: makes the producer transactional (KIP-98). Implies
    /// `enable.idempotence`, so `acks=all`, at most 5 requests in flight and
    /// positive `retries` are required. A new producer with the same id fences
    /// the previous one. Default none.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms`: how long the transaction coordinator lets a
    /// transaction stay open before it aborts it (and fences this producer).
    /// The broker refuses values above its `transaction.max.timeout.ms`.
    /// Default 60 000.
    pub transaction_timeout: Duration,
    /// `max.block.ms`: bound on each transactional call (`init_transactions`,
    /// `send_offsets_to_transaction`, `commit_transaction`,
    /// `abort_transaction`), flushing included. A call that runs out fails
    /// with [`ProducerError::Timeout`](super::ProducerError::Timeout) and may
    /// be repeated. Default 60 000.
    pub max_block: Duration,
    /// Strom-specific (Java has no such setting): the highest transaction
    /// protocol version the producer uses. Default
    /// [`TRANSACTION_VERSION_LATEST`]: transaction version 2 whenever the
    /// broker finalizes it, as Java 4.x does. 1 forces the classic protocol
    /// (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn ≤ v4, Produce ≤ v11), for
    /// testing it or working around a broker's KIP-890 support.
    pub max_transaction_version: i16,
}

impl fmt::Debug for ProducerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("acks", &self.acks)
            .field("linger", &self.linger)
            .field("batch_size", &self.batch_size)
            .field("compression", &self.compression)
            .field("enable_idempotence", &self.enable_idempotence)
            .field("max_in_flight", &self.max_in_flight)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("transactional_id", &self.transactional_id)
            .field("transaction_timeout", &self.transaction_timeout)
            .field("max_block", &self.max_block)
            .field("max_transaction_version", &self.max_transaction_version)
            .finish_non_exhaustive()
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            bootstrap_servers: vec!["localhost:9092".into()],
            client_id: "strom-producer".into(),
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 16_384,
            compression: Compression::None,
            enable_idempotence: true,
            idempotence_explicit: false,
            max_in_flight: 5,
            delivery_timeout: Duration::from_millis(120_000),
            request_timeout: Duration::from_millis(30_000),
            retries: i32::MAX as u32,
            retry_backoff: Duration::from_millis(100),
            max_request_size: 1_048_576,
            partitioner: Arc::new(DefaultPartitioner),
            transactional_id: None,
            transaction_timeout: Duration::from_millis(60_000),
            max_block: Duration::from_millis(60_000),
            max_transaction_version: TRANSACTION_VERSION_LATEST,
        }
    }
}

impl ProducerConfig {
    /// Reads Kafka property names; unknown names are an error so typos surface.
    pub fn from_properties<K, V>(
        props: impl IntoIterator<Item = (K, V)>,
    ) -> Result<ProducerConfig, ClientError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut c = ProducerConfig::default();
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
            "client.id" => self.client_id = value.into(),
            "acks" => {
                self.acks = match value.trim() {
                    "all" | "-1" => Acks::All,
                    "1" => Acks::Leader,
                    "0" => Acks::None,
                    _ => return Err(bad(key, value)),
                }
            }
            "linger.ms" => self.linger = parse_ms(key, value)?,
            "batch.size" => self.batch_size = parse_num(key, value)?,
            "compression.type" => {
                self.compression = match value.trim() {
                    "none" => Compression::None,
                    "gzip" => Compression::Gzip,
                    "snappy" => Compression::Snappy,
                    "lz4" => Compression::Lz4,
                    "zstd" => Compression::Zstd,
                    _ => return Err(bad(key, value)),
                }
            }
            "enable.idempotence" => {
                self.enable_idempotence = parse_num(key, value)?;
                self.idempotence_explicit = true;
            }
            "max.in.flight.requests.per.connection" => self.max_in_flight = parse_num(key, value)?,
            "delivery.timeout.ms" => self.delivery_timeout = parse_ms(key, value)?,
            "request.timeout.ms" => self.request_timeout = parse_ms(key, value)?,
            "retries" => self.retries = parse_num(key, value)?,
            "retry.backoff.ms" => self.retry_backoff = parse_ms(key, value)?,
            "max.request.size" => self.max_request_size = parse_num(key, value)?,
            "transactional.id" => self.transactional_id = Some(value.into()),
            "transaction.timeout.ms" => self.transaction_timeout = parse_ms(key, value)?,
            "max.block.ms" => self.max_block = parse_ms(key, value)?,
            _ => {
                return Err(ClientError::Config(format!(
                    "unknown producer property {key}"
                )))
            }
        }
        Ok(())
    }

    /// Checks the combination as Java's `ProducerConfig` does. Idempotence that
    /// was not asked for explicitly is turned off when `acks` is not `all`,
    /// unless `transactional.id` needs it: then the conflict is an error.
    pub fn validate(&mut self) -> Result<(), ClientError> {
        if self.bootstrap_servers.is_empty() {
            return Err(ClientError::Config("bootstrap.servers is required".into()));
        }
        if self.max_in_flight == 0 || self.batch_size == 0 {
            return Err(ClientError::Config(
                "max.in.flight.requests.per.connection and batch.size must be positive".into(),
            ));
        }
        if self.enable_idempotence {
            let conflict = if self.acks != Acks::All {
                Some("acks must be all")
            } else if self.max_in_flight > MAX_IN_FLIGHT_IDEMPOTENT {
                Some("max.in.flight.requests.per.connection must be at most 5")
            } else if self.retries == 0 {
                Some("retries must be positive")
            } else {
                None
            };
            match conflict {
                Some(why) if self.transactional_id.is_some() => {
                    return Err(ClientError::Config(format!(
                        "transactional.id requires idempotence, which requires: {why}"
                    )))
                }
                Some(why) if self.idempotence_explicit => {
                    return Err(ClientError::Config(format!(
                        "enable.idempotence=true requires: {why}"
                    )))
                }
                Some(_) => self.enable_idempotence = false,
                None => {}
            }
        }
        self.validate_transactions()?;
        if self.delivery_timeout < self.linger + self.request_timeout {
            return Err(ClientError::Config(
                "delivery.timeout.ms must be at least linger.ms + request.timeout.ms".into(),
            ));
        }
        Ok(())
    }

    /// `transactional.id` needs idempotence (Java: "Cannot set a
    /// transactional.id without also enabling idempotence"), is never empty,
    /// and `transaction.timeout.ms` fits the wire's int32.
    fn validate_transactions(&self) -> Result<(), ClientError> {
        let Some(id) = &self.transactional_id else {
            return Ok(());
        };
        if id.is_empty() {
            return Err(ClientError::Config(
                "transactional.id must not be empty".into(),
            ));
        }
        if !self.enable_idempotence {
            return Err(ClientError::Config(
                "cannot set a transactional.id without also enabling idempotence".into(),
            ));
        }
        let timeout_ms = self.transaction_timeout.as_millis();
        if timeout_ms == 0 || timeout_ms > i32::MAX as u128 {
            return Err(ClientError::Config(format!(
                "transaction.timeout.ms must be between 1 and {}",
                i32::MAX
            )));
        }
        Ok(())
    }

    /// The transaction timeout as the InitProducerId field (validated to fit).
    pub(crate) fn transaction_timeout_ms(&self) -> i32 {
        self.transaction_timeout.as_millis().min(i32::MAX as u128) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_java_and_conflicts_are_refused() {
        let c = ProducerConfig::from_properties([("bootstrap.servers", "a:1,b:2")]).unwrap();
        assert_eq!(c.bootstrap_servers, vec!["a:1", "b:2"]);
        assert_eq!((c.batch_size, c.linger.as_millis()), (16_384, 5));
        assert!(c.enable_idempotence && c.acks == Acks::All);

        // Implicit idempotence yields to acks=1; explicit idempotence refuses it.
        let c = ProducerConfig::from_properties([("acks", "1")]).unwrap();
        assert!(!c.enable_idempotence);
        let err = ProducerConfig::from_properties([("acks", "1"), ("enable.idempotence", "true")]);
        assert!(err.is_err());
        let err = ProducerConfig::from_properties([("max.in.flight.requests.per.connection", "6")]);
        assert!(err.is_ok_and(|c| !c.enable_idempotence));
        assert!(ProducerConfig::from_properties([("compression.type", "brotli")]).is_err());
        assert!(ProducerConfig::from_properties([("no.such.property", "1")]).is_err());
    }

    #[test]
    fn transactional_id_implies_idempotence_and_refuses_conflicts() {
        let c = ProducerConfig::from_properties([("transactional.id", "t")]).unwrap();
        assert_eq!(c.transactional_id.as_deref(), Some("t"));
        assert!(c.enable_idempotence && c.acks == Acks::All);
        assert_eq!(c.transaction_timeout.as_millis(), 60_000);
        assert_eq!(c.max_block.as_millis(), 60_000);
        assert_eq!(c.max_transaction_version, TRANSACTION_VERSION_LATEST);

        // Java disables implicit idempotence for these, then refuses the
        // transactional id; both are refused here.
        for conflict in [
            ("acks", "1"),
            ("enable.idempotence", "false"),
            ("max.in.flight.requests.per.connection", "6"),
            ("retries", "0"),
        ] {
            let r = ProducerConfig::from_properties([("transactional.id", "t"), conflict]);
            assert!(r.is_err(), "{conflict:?} accepted");
        }
        assert!(ProducerConfig::from_properties([("transactional.id", "")]).is_err());
        let r = ProducerConfig::from_properties([
            ("transactional.id", "t"),
            ("transaction.timeout.ms", "0"),
        ]);
        assert!(r.is_err());
        let c = ProducerConfig::from_properties([
            ("transactional.id", "t"),
            ("transaction.timeout.ms", "5000"),
            ("max.block.ms", "1000"),
        ])
        .unwrap();
        assert_eq!(c.transaction_timeout_ms(), 5000);
        assert_eq!(c.max_block.as_millis(), 1000);
    }
}
