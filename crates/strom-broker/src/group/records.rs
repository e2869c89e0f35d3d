//! Records of the `__consumer_offsets` topic, in Kafka's key/value layouts, so
//! that a group's committed offsets and metadata are stored the way Kafka stores
//! them (and Kafka's tools can read them).
//!
//! A record key starts with an `int16` version that names its type: 0 and 1 are
//! `OffsetCommitKey`, 2 is `GroupMetadataKey`. Values start with their own
//! version. A null value is a tombstone (the offset or group was deleted).
//! Strom writes `OffsetCommitValue` v3 and `GroupMetadataValue` v3 (the newest
//! non-flexible versions) and reads v0–v4 of both.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::schema_reader::{ReadError, SchemaReader};

/// A key of `__consumer_offsets`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OffsetsKey {
    /// A committed offset of one partition.
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// A group's metadata.
    Group { group: String },
}

/// A committed offset (`OffsetCommitValue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// Leader epoch of the record at `offset - 1` as the client knew it, or -1.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Only in v1 records (old explicit retention); -1 otherwise.
    pub expire_timestamp_ms: i64,
}

/// A member as stored in `GroupMetadataValue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A classic group's metadata (`GroupMetadataValue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

/// Why a `__consumer_offsets` record could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordFormatError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown key version {0}")]
    UnknownKeyVersion(i16),
    #[error("unknown value version {0}")]
    UnknownValueVersion(i16),
    #[error("invalid UTF-8 in a string")]
    InvalidUtf8,
    #[error("negative length {0}")]
    NegativeLength(i64),
}

type Result<T> = std::result::Result<T, RecordFormatError>;

impl From<ReadError> for RecordFormatError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Truncated | ReadError::MalformedVarint => RecordFormatError::Truncated,
            ReadError::NegativeLength(n) => RecordFormatError::NegativeLength(n),
            ReadError::InvalidUtf8 => RecordFormatError::InvalidUtf8,
        }
    }
}

/// A string field; Kafka's readers take a null as empty.
fn string(r: &mut SchemaReader<'_>) -> Result<String> {
    Ok(r.nullable_string()?.unwrap_or_default())
}

/// A bytes field of `record` (zero-copy); null as empty.
fn bytes(r: &mut SchemaReader<'_>, record: &Bytes) -> Result<Bytes> {
    Ok(r.nullable_bytes()?
        .map_or_else(Bytes::new, |b| record.slice_ref(b)))
}

fn put_string(out: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.put_i16(s.len() as i16);
    out.put_slice(s);
}

fn put_nullable_string(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(out, s),
        None => out.put_i16(-1),
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_i32(b.len() as i32);
    out.put_slice(b);
}

impl OffsetsKey {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            OffsetsKey::Offset { group, .. } | OffsetsKey::Group { group } => group,
        }
    }

    /// Encodes the key (OffsetCommitKey v1 or GroupMetadataKey v2).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            OffsetsKey::Offset {
                group,
                topic,
                partition,
            } => {
                out.put_i16(1);
                put_string(&mut out, group);
                put_string(&mut out, topic);
                out.put_i32(*partition);
            }
            OffsetsKey::Group { group } => {
                out.put_i16(2);
                put_string(&mut out, group);
            }
        }
        out.freeze()
    }

    /// Decodes a key. `Ok(None)` for key versions of other record types
    /// (KIP-848 and share-group records), which classic groups skip.
    pub fn decode(key: Bytes) -> Result<Option<Self>> {
        let mut r = SchemaReader::new(&key, false);
        match r.i16()? {
            0 | 1 => Ok(Some(OffsetsKey::Offset {
                group: string(&mut r)?,
                topic: string(&mut r)?,
                partition: r.i32()?,
            })),
            2 => Ok(Some(OffsetsKey::Group {
                group: string(&mut r)?,
            })),
            v if v >= 3 => Ok(None),
            v => Err(RecordFormatError::UnknownKeyVersion(v)),
        }
    }
}

impl OffsetValue {
    /// Encodes as OffsetCommitValue v3.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(3);
        out.put_i64(self.offset);
        out.put_i32(self.leader_epoch);
        put_string(&mut out, &self.metadata);
        out.put_i64(self.commit_timestamp_ms);
        out.freeze()
    }

    /// Decodes OffsetCommitValue v0–v4.
    pub fn decode(value: Bytes) -> Result<Self> {
        let mut r = SchemaReader::new(&value, false);
        let version = r.i16()?;
        if !(0..=4).contains(&version) {
            return Err(RecordFormatError::UnknownValueVersion(version));
        }
        r.flexible = version >= 4;
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = string(&mut r)?;
        let commit_timestamp_ms = r.i64()?;
        let expire_timestamp_ms = if version == 1 { r.i64()? } else { -1 };
        r.skip_tagged_fields()?;
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms,
        })
    }
}

impl GroupValue {
    /// Encodes as GroupMetadataValue v3.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(3);
        put_string(&mut out, &self.protocol_type);
        out.put_i32(self.generation);
        put_nullable_string(&mut out, self.protocol.as_deref());
        put_nullable_string(&mut out, self.leader.as_deref());
        out.put_i64(self.current_state_timestamp_ms);
        out.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_string(&mut out, &m.member_id);
            put_nullable_string(&mut out, m.group_instance_id.as_deref());
            put_string(&mut out, &m.client_id);
            put_string(&mut out, &m.client_host);
            out.put_i32(m.rebalance_timeout_ms);
            out.put_i32(m.session_timeout_ms);
            put_bytes(&mut out, &m.subscription);
            put_bytes(&mut out, &m.assignment);
        }
        out.freeze()
    }

    /// Decodes GroupMetadataValue v0–v4.
    pub fn decode(value: Bytes) -> Result<Self> {
        let mut r = SchemaReader::new(&value, false);
        let version = r.i16()?;
        if !(0..=4).contains(&version) {
            return Err(RecordFormatError::UnknownValueVersion(version));
        }
        r.flexible = version >= 4;
        let protocol_type = string(&mut r)?;
        let generation = r.i32()?;
        let protocol = r.nullable_string()?;
        let leader = r.nullable_string()?;
        let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
        // `len` checks the count against the bytes left; a member takes at least 20.
        let count = r.len(true, 1)?.unwrap_or_default();
        let mut members = Vec::with_capacity(count.min(r.remaining() / 20));
        for _ in 0..count {
            let member_id = string(&mut r)?;
            let group_instance_id = if version >= 3 {
                r.nullable_string()?
            } else {
                None
            };
            let client_id = string(&mut r)?;
            let client_host = string(&mut r)?;
            let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
            let session_timeout_ms = r.i32()?;
            let subscription = bytes(&mut r, &value)?;
            let assignment = bytes(&mut r, &value)?;
            r.skip_tagged_fields()?;
            members.push(MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms: if version >= 1 {
                    rebalance_timeout_ms
                } else {
                    session_timeout_ms
                },
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        r.skip_tagged_fields()?;
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp_ms,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let k = OffsetsKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        assert_eq!(OffsetsKey::decode(k.encode()).unwrap(), Some(k));
        let k = OffsetsKey::Group { group: "g".into() };
        assert_eq!(OffsetsKey::decode(k.encode()).unwrap(), Some(k));
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp_ms: 1000,
            expire_timestamp_ms: -1,
        };
        assert_eq!(OffsetValue::decode(v.encode()).unwrap(), v);
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: 99,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupValue::decode(g.encode()).unwrap(), g);
    }

    #[test]
    fn reads_kafkas_older_offset_value_versions() {
        // OffsetCommitValue v1: offset, metadata, commit timestamp, expire timestamp.
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i64(10);
        put_string(&mut b, "x");
        b.put_i64(5);
        b.put_i64(6);
        let v = OffsetValue::decode(b.freeze()).unwrap();
        assert_eq!(
            (
                v.offset,
                v.leader_epoch,
                v.commit_timestamp_ms,
                v.expire_timestamp_ms
            ),
            (10, -1, 5, 6)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..40usize {
            let bytes = Bytes::from(vec![0xffu8; len]);
            let _ = OffsetsKey::decode(bytes.clone());
            let _ = OffsetValue::decode(bytes.clone());
            let _ = GroupValue::decode(bytes);
        }
        // A member count claiming billions with no bytes behind it.
        let mut b = BytesMut::new();
        b.put_i16(3);
        put_string(&mut b, "consumer");
        b.put_i32(1);
        b.put_i16(-1);
        b.put_i16(-1);
        b.put_i64(0);
        b.put_i32(i32::MAX);
        assert!(GroupValue::decode(b.freeze()).is_err());
    }
}
