//! Records of the `__transaction_state` topic in Kafka's layouts, so the
//! coordinator's state is stored the way Kafka stores it (and Kafka's tools
//! can read it).
//!
//! A key is `TransactionLogKey` prefixed with its int16 version: version 0
//! holds the transactional id as an int16-length string. A value is
//! `TransactionLogValue` prefixed with its version: v0 (classic encoding) and
//! v1 (flexible encoding, with the tagged fields `previous_producer_id` (tag
//! 0), `next_producer_id` (tag 1) and `client_transaction_version` (tag 2)).
//! A null value is the tombstone of an expired transactional id.
//!
//! Strom writes v1, whose tagged fields keep what TV2 retries need across a
//! failover; Kafka writes v0 until `transaction.version` 1 is enabled and
//! reads both, as Strom does. kafka-wire does not generate these coordinator
//! record types, so they are encoded here by hand from Kafka's JSON schemas.
//! Decoding checks every length against the bytes left before allocating and
//! returns an error, never panics, on bad input.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::state::TxnState;
use super::{TopicPartition, NO_PRODUCER_ID};
use crate::schema_reader::{ReadError, SchemaReader};

/// The key version Strom writes and reads.
pub const KEY_VERSION: i16 = 0;

/// The value version Strom writes (the flexible one).
pub const VALUE_VERSION: i16 = 1;

/// Tag of `PreviousProducerId` in `TransactionLogValue` v1.
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
/// Tag of `NextProducerId`.
const TAG_NEXT_PRODUCER_ID: u32 = 1;
/// Tag of `ClientTransactionVersion`.
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

/// Why a `__transaction_state` record could not be read or written.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TxnRecordError {
    /// The bytes end inside a field.
    #[error("record truncated")]
    Truncated,
    /// A key version no Kafka has written.
    #[error("unknown key version {0}")]
    UnknownKeyVersion(i16),
    /// A value version this coordinator cannot read.
    #[error("unknown value version {0}")]
    UnknownValueVersion(i16),
    /// A status byte that names no [`TxnState`].
    #[error("unknown transaction status {0}")]
    UnknownStatus(i8),
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in a string")]
    InvalidUtf8,
    /// A length or count below -1.
    #[error("negative length {0}")]
    NegativeLength(i64),
    /// Null where the schema does not allow it.
    #[error("null {0}")]
    UnexpectedNull(&'static str),
    /// An unsigned varint longer than five bytes.
    #[error("malformed varint")]
    MalformedVarint,
    /// A known tagged field whose size does not match its type.
    #[error("tagged field {tag} has {size} bytes, expected {expected}")]
    TaggedFieldSize {
        /// The tag.
        tag: u32,
        /// The size the record claims.
        size: usize,
        /// The size of the field's type.
        expected: usize,
    },
    /// A string too long for an int16 length (only transactional ids in keys).
    #[error("string of {0} bytes is too long for an int16 length")]
    StringTooLong(usize),
}

type Result<T> = std::result::Result<T, TxnRecordError>;

/// A `TransactionLogValue`: the metadata of one transactional id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnLogValue {
    /// The producer id in use.
    pub producer_id: i64,
    /// v1 tag 0: the producer id before the last change (-1 if unknown).
    pub previous_producer_id: i64,
    /// v1 tag 1: the producer id a completing TV2 transaction rotates to (-1 if none).
    pub next_producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The transaction timeout.
    pub transaction_timeout_ms: i32,
    /// The state, stored as its byte code.
    pub transaction_status: TxnState,
    /// The transaction's partitions; stored grouped by topic, and as a null
    /// array in the Empty state (as Kafka writes it).
    pub transaction_partitions: BTreeSet<TopicPartition>,
    /// When the metadata last changed.
    pub transaction_last_update_timestamp_ms: i64,
    /// When the transaction started, or -1.
    pub transaction_start_timestamp_ms: i64,
    /// v1 tag 2: the client's `transaction.version` feature level (default 0).
    pub client_transaction_version: i16,
}

/// Encodes a `TransactionLogKey` v0 for `transactional_id`.
pub fn encode_key(transactional_id: &str) -> Result<Bytes> {
    let len = i16::try_from(transactional_id.len())
        .map_err(|_| TxnRecordError::StringTooLong(transactional_id.len()))?;
    let mut out = BytesMut::with_capacity(4 + transactional_id.len());
    out.put_i16(KEY_VERSION);
    out.put_i16(len);
    out.put_slice(transactional_id.as_bytes());
    Ok(out.freeze())
}

/// Decodes a key: `Ok(None)` for a key version above 0, which Kafka skips as
/// written by a newer broker (an aborted upgrade).
pub fn decode_key(key: &[u8]) -> Result<Option<String>> {
    let mut r = SchemaReader::new(key, false);
    match r.i16()? {
        KEY_VERSION => Ok(Some(string(&mut r, "transactional id")?)),
        v if v > KEY_VERSION => Ok(None),
        v => Err(TxnRecordError::UnknownKeyVersion(v)),
    }
}

impl TxnLogValue {
    /// Encodes as `TransactionLogValue` v1, writing the tagged fields that
    /// differ from their defaults (as Kafka's generated code does).
    pub fn encode(&self) -> Bytes {
        self.encode_version(true)
    }

    /// v1 when `flexible`, else v0 (which drops the tagged fields).
    fn encode_version(&self, flexible: bool) -> Bytes {
        let mut w = Writer {
            out: BytesMut::with_capacity(64),
            flexible,
        };
        w.out.put_i16(if flexible { VALUE_VERSION } else { 0 });
        w.out.put_i64(self.producer_id);
        w.out.put_i16(self.producer_epoch);
        w.out.put_i32(self.transaction_timeout_ms);
        w.out.put_i8(self.transaction_status.id());
        if self.transaction_status == TxnState::Empty {
            w.len(None, true);
        } else {
            let topics = group_by_topic(&self.transaction_partitions);
            w.len(Some(topics.len()), true);
            for (topic, partitions) in topics {
                w.string(topic);
                w.len(Some(partitions.len()), true);
                for p in partitions {
                    w.out.put_i32(p);
                }
                w.no_tagged_fields();
            }
        }
        w.out.put_i64(self.transaction_last_update_timestamp_ms);
        w.out.put_i64(self.transaction_start_timestamp_ms);
        if flexible {
            let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
            if self.previous_producer_id != NO_PRODUCER_ID {
                let field = self.previous_producer_id.to_be_bytes().to_vec();
                tags.push((TAG_PREVIOUS_PRODUCER_ID, field));
            }
            if self.next_producer_id != NO_PRODUCER_ID {
                let field = self.next_producer_id.to_be_bytes().to_vec();
                tags.push((TAG_NEXT_PRODUCER_ID, field));
            }
            if self.client_transaction_version != 0 {
                let field = self.client_transaction_version.to_be_bytes().to_vec();
                tags.push((TAG_CLIENT_TRANSACTION_VERSION, field));
            }
            w.uvarint(tags.len() as u64);
            for (tag, field) in tags {
                w.uvarint(u64::from(tag));
                w.uvarint(field.len() as u64);
                w.out.put_slice(&field);
            }
        }
        w.out.freeze()
    }

    /// Encodes as `TransactionLogValue` v0, the layout Kafka writes before
    /// `transaction.version` 1 (for tests of reading Kafka's records).
    #[cfg(test)]
    pub(super) fn encode_v0(&self) -> Bytes {
        self.encode_version(false)
    }

    /// Decodes `TransactionLogValue` v0 or v1.
    pub fn decode(value: &[u8]) -> Result<Self> {
        let mut r = SchemaReader::new(value, false);
        let version = r.i16()?;
        if !(0..=VALUE_VERSION).contains(&version) {
            return Err(TxnRecordError::UnknownValueVersion(version));
        }
        r.flexible = version >= 1;
        let producer_id = r.i64()?;
        let producer_epoch = r.i16()?;
        let transaction_timeout_ms = r.i32()?;
        let status = r.i8()?;
        let transaction_status =
            TxnState::from_id(status).ok_or(TxnRecordError::UnknownStatus(status))?;
        let mut transaction_partitions = BTreeSet::new();
        // A topic entry takes at least 3 bytes flexible, 6 classic: `count`
        // cannot claim more entries than the bytes left could hold.
        let min_topic_bytes = if r.flexible { 3 } else { 6 };
        if let Some(count) = r.len(true, min_topic_bytes)? {
            for _ in 0..count {
                let topic = string(&mut r, "topic")?;
                let partitions = r
                    .len(true, 4)?
                    .ok_or(TxnRecordError::UnexpectedNull("partition ids"))?;
                for _ in 0..partitions {
                    transaction_partitions.insert(TopicPartition::new(topic.clone(), r.i32()?));
                }
                r.skip_tagged_fields()?;
            }
        }
        let mut value = TxnLogValue {
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch,
            transaction_timeout_ms,
            transaction_status,
            transaction_partitions,
            transaction_last_update_timestamp_ms: r.i64()?,
            transaction_start_timestamp_ms: r.i64()?,
            client_transaction_version: 0,
        };
        if r.flexible {
            value.read_tagged_fields(&mut r)?;
        }
        Ok(value)
    }

    /// Reads the value's tagged fields; unknown tags are skipped (written by a
    /// newer broker).
    fn read_tagged_fields(&mut self, r: &mut SchemaReader<'_>) -> Result<()> {
        let count = r.uvarint()?;
        for _ in 0..count {
            let tag = r.uvarint()?;
            let size = usize::try_from(r.uvarint()?).map_err(|_| TxnRecordError::Truncated)?;
            let field = r.take(size)?;
            let expected = match tag {
                t if t == u64::from(TAG_PREVIOUS_PRODUCER_ID) => 8,
                t if t == u64::from(TAG_NEXT_PRODUCER_ID) => 8,
                t if t == u64::from(TAG_CLIENT_TRANSACTION_VERSION) => 2,
                _ => continue,
            };
            let tag = tag as u32; // One of the three known tags.
            if size != expected {
                return Err(TxnRecordError::TaggedFieldSize {
                    tag,
                    size,
                    expected,
                });
            }
            let mut be = [0u8; 8];
            be[..size].copy_from_slice(field);
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => self.previous_producer_id = i64::from_be_bytes(be),
                TAG_NEXT_PRODUCER_ID => self.next_producer_id = i64::from_be_bytes(be),
                _ => self.client_transaction_version = i16::from_be_bytes([be[0], be[1]]),
            }
        }
        Ok(())
    }
}

/// The partitions per topic, topics and partitions in order.
fn group_by_topic(partitions: &BTreeSet<TopicPartition>) -> Vec<(&str, Vec<i32>)> {
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in partitions {
        match topics.last_mut() {
            Some((topic, ids)) if *topic == tp.topic => ids.push(tp.partition),
            _ => topics.push((&tp.topic, vec![tp.partition])),
        }
    }
    topics
}

/// Writes Kafka's classic or flexible (compact) encodings.
struct Writer {
    out: BytesMut,
    flexible: bool,
}

impl Writer {
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.put_u8(v as u8);
    }

    /// An array count or string length (`wide`: int32 classic, else int16);
    /// compact encodings store length + 1 with 0 for null.
    fn len(&mut self, n: Option<usize>, wide: bool) {
        match (self.flexible, n) {
            (true, None) => self.uvarint(0),
            (true, Some(n)) => self.uvarint(n as u64 + 1),
            (false, None) if wide => self.out.put_i32(-1),
            (false, None) => self.out.put_i16(-1),
            (false, Some(n)) if wide => self.out.put_i32(i32::try_from(n).unwrap_or(i32::MAX)),
            (false, Some(n)) => self.out.put_i16(i16::try_from(n).unwrap_or(i16::MAX)),
        }
    }

    /// A topic name: Kafka limits them to 249 bytes, so the int16 length of
    /// v0 always fits.
    fn string(&mut self, s: &str) {
        debug_assert!(self.flexible || s.len() <= i16::MAX as usize);
        self.len(Some(s.len()), false);
        self.out.put_slice(s.as_bytes());
    }

    fn no_tagged_fields(&mut self) {
        if self.flexible {
            self.uvarint(0);
        }
    }
}

impl From<ReadError> for TxnRecordError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Truncated => TxnRecordError::Truncated,
            ReadError::NegativeLength(n) => TxnRecordError::NegativeLength(n),
            ReadError::InvalidUtf8 => TxnRecordError::InvalidUtf8,
            ReadError::MalformedVarint => TxnRecordError::MalformedVarint,
        }
    }
}

/// A non-nullable string; `what` names it in the error for a null.
fn string(r: &mut SchemaReader<'_>, what: &'static str) -> Result<String> {
    r.nullable_string()?
        .ok_or(TxnRecordError::UnexpectedNull(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnLogValue {
        TxnLogValue {
            producer_id: 4000,
            previous_producer_id: 3999,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: 7,
            transaction_timeout_ms: 60_000,
            transaction_status: TxnState::Ongoing,
            transaction_partitions: BTreeSet::from([
                TopicPartition::new("orders", 0),
                TopicPartition::new("orders", 3),
                TopicPartition::new("__consumer_offsets", 12),
            ]),
            transaction_last_update_timestamp_ms: 1_700_000_000_123,
            transaction_start_timestamp_ms: 1_700_000_000_000,
            client_transaction_version: 2,
        }
    }

    #[test]
    fn key_round_trips_and_skips_newer_versions() {
        let key = encode_key("payments-1").unwrap();
        assert_eq!(&key[..4], &[0, 0, 0, 10]);
        assert_eq!(decode_key(&key).unwrap().as_deref(), Some("payments-1"));
        assert_eq!(decode_key(&[0, 1, 0, 0]).unwrap(), None);
        assert_eq!(
            decode_key(&[0xff, 0xff]),
            Err(TxnRecordError::UnknownKeyVersion(-1))
        );
        let long = "x".repeat(40_000);
        assert_eq!(
            encode_key(&long),
            Err(TxnRecordError::StringTooLong(40_000))
        );
    }

    #[test]
    fn value_round_trips_in_both_versions() {
        let v = ongoing();
        assert_eq!(TxnLogValue::decode(&v.encode()).unwrap(), v);
        // v0 has no tagged fields: they read back as their defaults.
        let v0 = TxnLogValue::decode(&v.encode_v0()).unwrap();
        let defaults = TxnLogValue {
            previous_producer_id: NO_PRODUCER_ID,
            client_transaction_version: 0,
            ..v.clone()
        };
        assert_eq!(v0, defaults);
        // Every status and the rotation tag.
        for status in TxnState::ALL {
            let mut v = ongoing();
            v.transaction_status = status;
            v.next_producer_id = 5000;
            if status == TxnState::Empty {
                v.transaction_partitions.clear();
            }
            assert_eq!(TxnLogValue::decode(&v.encode()).unwrap(), v, "{status}");
        }
    }

    #[test]
    fn value_layout_matches_kafkas_schema() {
        let mut v = ongoing();
        v.previous_producer_id = NO_PRODUCER_ID;
        v.client_transaction_version = 0;
        v.transaction_partitions = BTreeSet::from([TopicPartition::new("t", 1)]);
        let expected_v0: Vec<u8> = [
            &0i16.to_be_bytes()[..],
            &4000i64.to_be_bytes(),
            &7i16.to_be_bytes(),
            &60_000i32.to_be_bytes(),
            &[1],                // Ongoing
            &1i32.to_be_bytes(), // one topic
            &1i16.to_be_bytes(), // "t"
            b"t",
            &1i32.to_be_bytes(), // one partition
            &1i32.to_be_bytes(), // partition 1
            &1_700_000_000_123i64.to_be_bytes(),
            &1_700_000_000_000i64.to_be_bytes(),
        ]
        .concat();
        assert_eq!(v.encode_v0().as_ref(), expected_v0.as_slice());
        v.client_transaction_version = 2;
        let expected_v1: Vec<u8> = [
            &1i16.to_be_bytes()[..],
            &4000i64.to_be_bytes(),
            &7i16.to_be_bytes(),
            &60_000i32.to_be_bytes(),
            &[1],
            &[2], // compact array: one topic
            &[2], // compact string: 1 byte
            b"t",
            &[2], // compact array: one partition
            &1i32.to_be_bytes(),
            &[0], // no tagged fields in the topic entry
            &1_700_000_000_123i64.to_be_bytes(),
            &1_700_000_000_000i64.to_be_bytes(),
            &[1, 2, 2, 0, 2], // one tagged field: tag 2, 2 bytes, version 2
        ]
        .concat();
        assert_eq!(v.encode().as_ref(), expected_v1.as_slice());
    }

    #[test]
    fn empty_state_stores_a_null_partition_array() {
        let mut v = ongoing();
        v.transaction_status = TxnState::Empty;
        v.transaction_partitions.clear();
        let bytes = v.encode_v0();
        // version, producer id, epoch, timeout, status, then a null array.
        assert_eq!(&bytes[17..21], &(-1i32).to_be_bytes());
        assert_eq!(
            TxnLogValue::decode(&bytes)
                .unwrap()
                .transaction_partitions
                .len(),
            0
        );
    }

    #[test]
    fn unknown_tags_are_skipped_and_bad_known_tags_refused() {
        let v = ongoing();
        let bytes = v.encode();
        // The tagged-field section is the tail: count 2, tag 0 (8 bytes), tag 2 (2 bytes).
        let tail = 1 + (1 + 1 + 8) + (1 + 1 + 2);
        let body = &bytes[..bytes.len() - tail];
        let mut with_unknown = body.to_vec();
        with_unknown.extend_from_slice(&[1, 9, 3, 0xaa, 0xbb, 0xcc]);
        let decoded = TxnLogValue::decode(&with_unknown).unwrap();
        assert_eq!(decoded.previous_producer_id, NO_PRODUCER_ID);
        let mut bad = body.to_vec();
        bad.extend_from_slice(&[1, 0, 2, 0, 1]);
        assert_eq!(
            TxnLogValue::decode(&bad),
            Err(TxnRecordError::TaggedFieldSize {
                tag: 0,
                size: 2,
                expected: 8
            })
        );
    }

    #[test]
    fn truncated_and_garbage_values_are_errors_not_panics() {
        let full = ongoing().encode();
        for len in 0..full.len() {
            assert!(
                TxnLogValue::decode(&full[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
        let full_v0 = ongoing().encode_v0();
        for len in 0..full_v0.len() {
            assert!(TxnLogValue::decode(&full_v0[..len]).is_err());
        }
        for len in 0..64usize {
            for byte in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
                let bytes = vec![byte; len];
                let _ = decode_key(&bytes);
                let _ = TxnLogValue::decode(&bytes);
            }
        }
        // A partition count claiming billions with nothing behind it.
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i64(1);
        b.put_i16(0);
        b.put_i32(1000);
        b.put_i8(1);
        b.put_i32(i32::MAX);
        assert_eq!(TxnLogValue::decode(&b), Err(TxnRecordError::Truncated));
        // Unknown versions and status bytes.
        assert_eq!(
            TxnLogValue::decode(&[0, 2]),
            Err(TxnRecordError::UnknownValueVersion(2))
        );
        let mut v = ongoing().encode_v0().to_vec();
        v[16] = 42;
        assert_eq!(
            TxnLogValue::decode(&v),
            Err(TxnRecordError::UnknownStatus(42))
        );
        // A varint that never ends.
        let mut v = ongoing().encode().to_vec();
        v.truncate(17);
        v.extend_from_slice(&[0xff; 8]);
        assert_eq!(
            TxnLogValue::decode(&v),
            Err(TxnRecordError::MalformedVarint)
        );
    }

    #[test]
    fn deterministic_random_values_round_trip() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed >> 33
        };
        for _ in 0..500 {
            let status = TxnState::ALL[(next() % 8) as usize];
            let mut partitions = BTreeSet::new();
            if status != TxnState::Empty {
                for _ in 0..next() % 6 {
                    let topic = format!("topic-{}", next() % 3);
                    partitions.insert(TopicPartition::new(topic, (next() % 200) as i32));
                }
            }
            let pick = |x: u64| {
                if x.is_multiple_of(2) {
                    NO_PRODUCER_ID
                } else {
                    x as i64
                }
            };
            let v = TxnLogValue {
                producer_id: next() as i64,
                previous_producer_id: pick(next()),
                next_producer_id: pick(next()),
                producer_epoch: (next() % 32_768) as i16,
                transaction_timeout_ms: (next() % 900_001) as i32,
                transaction_status: status,
                transaction_partitions: partitions,
                transaction_last_update_timestamp_ms: next() as i64,
                transaction_start_timestamp_ms: next() as i64 - 1,
                client_transaction_version: (next() % 3) as i16,
            };
            assert_eq!(TxnLogValue::decode(&v.encode()).unwrap(), v);
        }
    }
}
