//! Per-partition log configuration, with Kafka's topic-config names and defaults.

use crate::error::StorageError;

/// Configuration of one [`crate::PartitionLog`]. Field docs give the Kafka topic
/// config name, unit and default; [`LogConfig::default`] is Kafka's default.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: a segment is rolled when an append would make it larger
    /// than this. Default 1 GiB; at most `i32::MAX` (index positions are 32-bit).
    pub segment_bytes: u64,
    /// `segment.ms`: a non-empty segment is rolled at the first append this long
    /// after its first append. Default 7 days.
    pub segment_ms: i64,
    /// `segment.index.bytes`: the largest offset/time index; a segment whose
    /// index is full is rolled. Default 10 MiB. Both indexes of a segment are
    /// kept in memory as well, so this also bounds the index memory per segment
    /// (8 bytes per offset entry + 16 per time entry; one entry per
    /// `index.interval.bytes` of log: about 6 MiB for a full 1 GiB segment).
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of log between two index entries.
    /// Default 4096. Smaller = faster lookups, more index memory.
    pub index_interval_bytes: u64,
    /// `retention.ms`: segments whose newest record is older than this are
    /// deleted. Default 7 days; -1 = unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`: the oldest segments are deleted while the log is larger
    /// than this. Default -1 = unlimited.
    pub retention_bytes: i64,
    /// `flush.messages`: the broker fsyncs after this many appended records.
    /// Default `u64::MAX` = never (Kafka: `Long.MAX_VALUE`). Read by the broker;
    /// the log only counts ([`crate::PartitionLog::unflushed_messages`]).
    pub flush_messages: u64,
    /// `flush.ms`: the broker fsyncs when the last flush is this old.
    /// Default `i64::MAX` = never. Read by the broker.
    pub flush_ms: i64,
    /// `file.delete.delay.ms`: Kafka renames deleted segments to `.deleted` and
    /// removes them after this delay. Strom ignores it and deletes immediately:
    /// reads take `&self` and cannot overlap a deletion, which needs `&mut self`.
    /// Default 60000.
    pub file_delete_delay_ms: i64,
    /// `cleanup.policy` contains `compact`: the log cleaner keeps only the
    /// latest record per key ([`crate::PartitionLog::clean`]), and appends must
    /// carry a key on every record. Default false (policy `delete`).
    pub cleanup_policy_compact: bool,
    /// `cleanup.policy` contains `delete`: `retention.ms` and `retention.bytes`
    /// delete old segments. With `compact` alone they are ignored. Default true.
    pub cleanup_policy_delete: bool,
    /// `delete.retention.ms`: how long a tombstone (a record with a null value)
    /// survives after the cleaning pass that first kept it (its delete horizon,
    /// KIP-534), so that consumers reading from the start see the deletion.
    /// Default 1 day.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: a segment whose newest record is younger than
    /// this is not cleaned yet. Default 0.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a log whose oldest uncleaned record is older
    /// than this must be cleaned whatever its dirty ratio, and on compacted logs
    /// the active segment is rolled at least this often (Kafka's effective
    /// `segment.ms` is the smaller of the two, KIP-354). Default `i64::MAX`.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: the cleaner picks a log when uncleaned
    /// bytes / cleanable bytes reach this, in `[0, 1]`. Default 0.5.
    pub min_cleanable_dirty_ratio: f64,
}

/// 1 GiB, Kafka's `segment.bytes` default.
pub const DEFAULT_SEGMENT_BYTES: u64 = 1 << 30;
/// 7 days in milliseconds, Kafka's `segment.ms` and `retention.ms` default.
pub const SEVEN_DAYS_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// 1 day in milliseconds, Kafka's `delete.retention.ms` default.
pub const ONE_DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Smallest `segment.bytes` Kafka accepts (the size of a legacy record overhead).
pub const MIN_SEGMENT_BYTES: u64 = 14;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_ms: SEVEN_DAYS_MS,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: SEVEN_DAYS_MS,
            retention_bytes: -1,
            flush_messages: u64::MAX,
            flush_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
            cleanup_policy_compact: false,
            cleanup_policy_delete: true,
            delete_retention_ms: ONE_DAY_MS,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

impl LogConfig {
    /// Checks every field's range once, when a log is opened.
    pub fn validate(&self) -> Result<(), StorageError> {
        fn bad(name: &'static str, value: impl ToString, reason: &'static str) -> StorageError {
            StorageError::InvalidConfig {
                name,
                value: value.to_string(),
                reason,
            }
        }
        if self.segment_bytes < MIN_SEGMENT_BYTES || self.segment_bytes > i32::MAX as u64 {
            return Err(bad(
                "segment.bytes",
                self.segment_bytes,
                "must be in [14, 2147483647]",
            ));
        }
        if self.segment_ms < 1 {
            return Err(bad("segment.ms", self.segment_ms, "must be at least 1"));
        }
        if self.segment_index_bytes < 4 || self.segment_index_bytes > i32::MAX as u64 {
            return Err(bad(
                "segment.index.bytes",
                self.segment_index_bytes,
                "must be in [4, 2147483647]",
            ));
        }
        if self.index_interval_bytes > i32::MAX as u64 {
            return Err(bad(
                "index.interval.bytes",
                self.index_interval_bytes,
                "must be at most 2147483647",
            ));
        }
        if self.retention_ms < -1 {
            return Err(bad(
                "retention.ms",
                self.retention_ms,
                "must be -1 or non-negative",
            ));
        }
        if self.retention_bytes < -1 {
            return Err(bad(
                "retention.bytes",
                self.retention_bytes,
                "must be -1 or non-negative",
            ));
        }
        if self.flush_messages < 1 {
            return Err(bad(
                "flush.messages",
                self.flush_messages,
                "must be at least 1",
            ));
        }
        if self.flush_ms < 0 {
            return Err(bad("flush.ms", self.flush_ms, "must be non-negative"));
        }
        if self.file_delete_delay_ms < 0 {
            return Err(bad(
                "file.delete.delay.ms",
                self.file_delete_delay_ms,
                "must be non-negative",
            ));
        }
        if self.delete_retention_ms < 0 {
            return Err(bad(
                "delete.retention.ms",
                self.delete_retention_ms,
                "must be non-negative",
            ));
        }
        if self.min_compaction_lag_ms < 0 {
            return Err(bad(
                "min.compaction.lag.ms",
                self.min_compaction_lag_ms,
                "must be non-negative",
            ));
        }
        if self.max_compaction_lag_ms < 1 {
            return Err(bad(
                "max.compaction.lag.ms",
                self.max_compaction_lag_ms,
                "must be at least 1",
            ));
        }
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return Err(bad(
                "min.compaction.lag.ms",
                self.min_compaction_lag_ms,
                "must not exceed max.compaction.lag.ms",
            ));
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(bad(
                "min.cleanable.dirty.ratio",
                self.min_cleanable_dirty_ratio,
                "must be in [0, 1]",
            ));
        }
        Ok(())
    }

    /// The `segment.ms` actually applied when rolling: on compacted logs Kafka
    /// also rolls once `max.compaction.lag.ms` has passed, so that records in
    /// the active segment become cleanable in time (KIP-354).
    pub fn max_segment_ms(&self) -> i64 {
        if self.cleanup_policy_compact {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1_073_741_824);
        assert_eq!(c.retention_ms, 604_800_000);
        assert_eq!(c.index_interval_bytes, 4096);
        assert!(!c.cleanup_policy_compact && c.cleanup_policy_delete);
        assert_eq!(c.delete_retention_ms, 86_400_000);
        assert_eq!(c.min_compaction_lag_ms, 0);
        assert_eq!(c.max_compaction_lag_ms, i64::MAX);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.5);
        c.validate().unwrap();
    }

    #[test]
    fn compaction_settings_are_range_checked() {
        let ratio = LogConfig {
            min_cleanable_dirty_ratio: 1.5,
            ..LogConfig::default()
        };
        assert!(ratio.validate().is_err());
        let lags = LogConfig {
            min_compaction_lag_ms: 10,
            max_compaction_lag_ms: 5,
            ..LogConfig::default()
        };
        assert!(lags.validate().is_err());
        let compact = LogConfig {
            cleanup_policy_compact: true,
            max_compaction_lag_ms: 1000,
            ..LogConfig::default()
        };
        assert_eq!(compact.max_segment_ms(), 1000);
    }

    #[test]
    fn segment_bytes_above_i32_is_rejected() {
        let c = LogConfig {
            segment_bytes: 1 << 31,
            ..LogConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(StorageError::InvalidConfig {
                name: "segment.bytes",
                ..
            })
        ));
    }
}
