//! KIP-848 consumer-group records of `__consumer_offsets`, in Kafka's layouts
//! (`group-coordinator/src/main/resources/common/message/ConsumerGroup*.json`),
//! so a consumer group's membership and epochs survive a restart and Kafka's
//! tools can read them.
//!
//! A key is an `int16` type followed by non-flexible strings (`int16` length):
//!
//! | type | key | value (version 0, flexible) |
//! |---|---|---|
//! | 3 | `ConsumerGroupMetadataKey` (group) | `ConsumerGroupMetadataValue`: epoch |
//! | 4 | `ConsumerGroupPartitionMetadataKey` (group) | `ConsumerGroupPartitionMetadataValue`: epoch, subscribed topics |
//! | 5 | `ConsumerGroupMemberMetadataKey` (group, member) | `ConsumerGroupMemberMetadataValue`: subscription |
//! | 6 | `ConsumerGroupTargetAssignmentMetadataKey` (group) | `ConsumerGroupTargetAssignmentMetadataValue`: assignment epoch |
//! | 7 | `ConsumerGroupTargetAssignmentMemberKey` (group, member) | `ConsumerGroupTargetAssignmentMemberValue`: target partitions |
//! | 8 | `ConsumerGroupCurrentMemberAssignmentKey` (group, member) | `ConsumerGroupCurrentMemberAssignmentValue`: epochs, state, partitions |
//!
//! Values start with an `int16` version (only 0 exists) and use the flexible
//! encoding: compact strings and arrays (unsigned varint length + 1, 0 = null)
//! and a tagged-field section after every struct. Tagged fields are skipped on
//! read and never written (Kafka's defaults then apply: `MetadataHash` 0,
//! `ClassicMemberMetadata` null, `AssignmentEpochs` null). Partition racks of
//! type 4 are written empty and ignored on read (Strom's assignors are not
//! rack-aware). A null value is a tombstone.

use bytes::{BufMut, Bytes, BytesMut};
use strom_controller::TopicId;
use thiserror::Error;

use crate::schema_reader::{ReadError, SchemaReader};

use std::collections::{BTreeMap, BTreeSet};

use super::consumer::{Assignment, ConsumerGroupSnapshot, MemberSnapshot, MemberState};

/// Largest number of partitions accepted for one topic in one record: far
/// above any real topic, it bounds what a corrupt record can make us build.
pub const MAX_PARTITIONS_PER_TOPIC: usize = 1 << 20;

/// A key of a consumer-group record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsumerKey {
    /// Type 3: the group epoch.
    GroupMetadata { group: String },
    /// Type 4: metadata of the subscribed topics.
    PartitionMetadata { group: String },
    /// Type 5: one member's subscription.
    MemberMetadata { group: String, member: String },
    /// Type 6: the target assignment's epoch.
    TargetAssignmentMetadata { group: String },
    /// Type 7: one member's target assignment.
    TargetAssignmentMember { group: String, member: String },
    /// Type 8: one member's current assignment and epochs.
    CurrentMemberAssignment { group: String, member: String },
}

/// `ConsumerGroupMetadataValue` v0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// The group epoch.
    pub epoch: i32,
}

/// One topic of `ConsumerGroupPartitionMetadataValue` v0 (racks left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMetadata {
    pub topic_id: TopicId,
    pub topic_name: String,
    pub num_partitions: i32,
}

/// `ConsumerGroupPartitionMetadataValue` v0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionMetadataValue {
    /// The group epoch the metadata was computed at.
    pub epoch: i32,
    /// The subscribed topics that exist.
    pub topics: Vec<TopicMetadata>,
}

/// `ConsumerGroupMemberMetadataValue` v0 (without the tagged
/// `ClassicMemberMetadata`: Strom has no classic members in consumer groups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// `ConsumerGroupTargetAssignmentMetadataValue` v0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetAssignmentMetadataValue {
    pub assignment_epoch: i32,
}

/// `ConsumerGroupTargetAssignmentMemberValue` v0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetAssignmentMemberValue {
    pub partitions: Assignment,
}

/// `ConsumerGroupCurrentMemberAssignmentValue` v0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentMemberAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

/// Why a consumer-group record could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConsumerRecordError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown key type {0}")]
    UnknownKeyVersion(i16),
    #[error("unknown value version {0}")]
    UnknownValueVersion(i16),
    #[error("invalid UTF-8 in a string")]
    InvalidUtf8,
    #[error("null where a value is required")]
    UnexpectedNull,
    #[error("negative length {0}")]
    NegativeLength(i64),
    #[error("varint too long")]
    VarintTooLong,
    #[error("unknown member state {0}")]
    UnknownMemberState(i8),
    #[error("{count} elements exceed the limit {limit}")]
    TooManyElements { count: usize, limit: usize },
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

type Result<T> = std::result::Result<T, ConsumerRecordError>;

/// Kafka's `MemberState` byte.
fn state_byte(s: MemberState) -> i8 {
    match s {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

fn byte_state(b: i8) -> Result<MemberState> {
    match b {
        0 => Ok(MemberState::Stable),
        1 => Ok(MemberState::UnrevokedPartitions),
        2 => Ok(MemberState::UnreleasedPartitions),
        b => Err(ConsumerRecordError::UnknownMemberState(b)),
    }
}

impl From<ReadError> for ConsumerRecordError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Truncated => ConsumerRecordError::Truncated,
            ReadError::NegativeLength(n) => ConsumerRecordError::NegativeLength(n),
            ReadError::InvalidUtf8 => ConsumerRecordError::InvalidUtf8,
            ReadError::MalformedVarint => ConsumerRecordError::VarintTooLong,
        }
    }
}

/// These records' reader: the shared bounded [`SchemaReader`] in its
/// flexible (compact) mode, plus the fields only these records have.
struct Reader<'a>(SchemaReader<'a>);

impl<'a> Reader<'a> {
    fn new(record: &'a [u8]) -> Self {
        Reader(SchemaReader::new(record, true))
    }
    fn i8(&mut self) -> Result<i8> {
        Ok(self.0.i8()?)
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(self.0.i16()?)
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(self.0.i32()?)
    }
    fn uuid(&mut self) -> Result<TopicId> {
        let mut id = [0u8; 16];
        id.copy_from_slice(self.0.take(16)?);
        Ok(TopicId(id))
    }
    /// A non-flexible string (`int16` length), as in keys.
    fn key_string(&mut self) -> Result<String> {
        let n = usize::try_from(self.i16()?).map_err(|_| ConsumerRecordError::UnexpectedNull)?;
        std::str::from_utf8(self.0.take(n)?)
            .map(str::to_owned)
            .map_err(|_| ConsumerRecordError::InvalidUtf8)
    }
    fn compact_nullable_string(&mut self) -> Result<Option<String>> {
        Ok(self.0.nullable_string()?)
    }
    fn compact_string(&mut self) -> Result<String> {
        self.compact_nullable_string()?
            .ok_or(ConsumerRecordError::UnexpectedNull)
    }
    /// A non-nullable compact array's element count; each element takes at
    /// least `min_bytes`.
    fn array_len(&mut self, min_bytes: usize) -> Result<usize> {
        self.0
            .len(true, min_bytes)?
            .ok_or(ConsumerRecordError::UnexpectedNull)
    }
    fn skip_tagged_fields(&mut self) -> Result<()> {
        Ok(self.0.skip_tagged_fields()?)
    }
    /// The value's version, which must be 0.
    fn version_zero(&mut self) -> Result<()> {
        match self.i16()? {
            0 => Ok(()),
            v => Err(ConsumerRecordError::UnknownValueVersion(v)),
        }
    }
    fn finish(self) -> Result<()> {
        match self.0.remaining() {
            0 => Ok(()),
            n => Err(ConsumerRecordError::TrailingBytes(n)),
        }
    }
    /// `[]TopicPartitions`: topic id, `[]int32` partitions, tagged fields.
    fn assignment(&mut self) -> Result<Assignment> {
        // uuid + empty array + empty tags.
        let topics = self.array_len(18)?;
        let mut out = Assignment::new();
        for _ in 0..topics {
            let topic = self.uuid()?;
            let count = self.array_len(4)?;
            if count > MAX_PARTITIONS_PER_TOPIC {
                return Err(ConsumerRecordError::TooManyElements {
                    count,
                    limit: MAX_PARTITIONS_PER_TOPIC,
                });
            }
            let partitions = out.entry(topic).or_default();
            for _ in 0..count {
                partitions.insert(self.i32()?);
            }
            self.skip_tagged_fields()?;
        }
        Ok(out)
    }
}

fn put_uvarint(out: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// A non-flexible key string. Longer than `i16::MAX` is cut, as records.rs
/// does: group and member ids come from requests that cannot carry more.
fn put_key_string(out: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.put_i16(s.len() as i16);
    out.put_slice(s);
}

fn put_compact_string(out: &mut BytesMut, s: &str) {
    put_uvarint(out, s.len() as u32 + 1);
    out.put_slice(s.as_bytes());
}

fn put_compact_nullable_string(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_compact_string(out, s),
        None => put_uvarint(out, 0),
    }
}

fn put_array_len(out: &mut BytesMut, n: usize) {
    put_uvarint(out, n as u32 + 1);
}

fn put_no_tags(out: &mut BytesMut) {
    put_uvarint(out, 0);
}

fn put_assignment(out: &mut BytesMut, a: &Assignment) {
    put_array_len(out, a.len());
    for (topic, partitions) in a {
        out.put_slice(&topic.0);
        put_array_len(out, partitions.len());
        for p in partitions {
            out.put_i32(*p);
        }
        put_no_tags(out);
    }
}

fn value_header() -> BytesMut {
    let mut out = BytesMut::new();
    out.put_i16(0);
    out
}

impl ConsumerKey {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            ConsumerKey::GroupMetadata { group }
            | ConsumerKey::PartitionMetadata { group }
            | ConsumerKey::TargetAssignmentMetadata { group }
            | ConsumerKey::MemberMetadata { group, .. }
            | ConsumerKey::TargetAssignmentMember { group, .. }
            | ConsumerKey::CurrentMemberAssignment { group, .. } => group,
        }
    }

    /// Encodes the key: its type, the group id, and the member id if any.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        let (kind, group, member) = match self {
            ConsumerKey::GroupMetadata { group } => (3, group, None),
            ConsumerKey::PartitionMetadata { group } => (4, group, None),
            ConsumerKey::MemberMetadata { group, member } => (5, group, Some(member)),
            ConsumerKey::TargetAssignmentMetadata { group } => (6, group, None),
            ConsumerKey::TargetAssignmentMember { group, member } => (7, group, Some(member)),
            ConsumerKey::CurrentMemberAssignment { group, member } => (8, group, Some(member)),
        };
        out.put_i16(kind);
        put_key_string(&mut out, group);
        if let Some(member) = member {
            put_key_string(&mut out, member);
        }
        out.freeze()
    }

    /// Decodes a key. `Ok(None)` for the types of other records (classic
    /// offsets and groups 0–2, share and streams groups 9+), an error for a
    /// negative type or a malformed key.
    pub fn decode(key: Bytes) -> Result<Option<Self>> {
        let mut r = Reader::new(&key);
        let kind = r.i16()?;
        let key = match kind {
            3 => ConsumerKey::GroupMetadata {
                group: r.key_string()?,
            },
            4 => ConsumerKey::PartitionMetadata {
                group: r.key_string()?,
            },
            5 => ConsumerKey::MemberMetadata {
                group: r.key_string()?,
                member: r.key_string()?,
            },
            6 => ConsumerKey::TargetAssignmentMetadata {
                group: r.key_string()?,
            },
            7 => ConsumerKey::TargetAssignmentMember {
                group: r.key_string()?,
                member: r.key_string()?,
            },
            8 => ConsumerKey::CurrentMemberAssignment {
                group: r.key_string()?,
                member: r.key_string()?,
            },
            k if k >= 0 => return Ok(None),
            k => return Err(ConsumerRecordError::UnknownKeyVersion(k)),
        };
        r.finish()?;
        Ok(Some(key))
    }
}

impl GroupMetadataValue {
    pub fn encode(&self) -> Bytes {
        let mut out = value_header();
        out.put_i32(self.epoch);
        put_no_tags(&mut out);
        out.freeze()
    }

    pub fn decode(value: Bytes) -> Result<Self> {
        let mut r = Reader::new(&value);
        r.version_zero()?;
        let epoch = r.i32()?;
        r.skip_tagged_fields()?;
        r.finish()?;
        Ok(Self { epoch })
    }
}

impl PartitionMetadataValue {
    pub fn encode(&self) -> Bytes {
        let mut out = value_header();
        out.put_i32(self.epoch);
        put_array_len(&mut out, self.topics.len());
        for t in &self.topics {
            out.put_slice(&t.topic_id.0);
            put_compact_string(&mut out, &t.topic_name);
            out.put_i32(t.num_partitions);
            put_array_len(&mut out, 0);
            put_no_tags(&mut out);
        }
        put_no_tags(&mut out);
        out.freeze()
    }

    pub fn decode(value: Bytes) -> Result<Self> {
        let mut r = Reader::new(&value);
        r.version_zero()?;
        let epoch = r.i32()?;
        // uuid + name + int32 + racks + tags.
        let count = r.array_len(23)?;
        let mut topics = Vec::with_capacity(count);
        for _ in 0..count {
            let topic_id = r.uuid()?;
            let topic_name = r.compact_string()?;
            let num_partitions = r.i32()?;
            // PartitionRacks: partition, racks, tags; read and dropped.
            for _ in 0..r.array_len(6)? {
                let _partition = r.i32()?;
                for _ in 0..r.array_len(1)? {
                    r.compact_string()?;
                }
                r.skip_tagged_fields()?;
            }
            r.skip_tagged_fields()?;
            topics.push(TopicMetadata {
                topic_id,
                topic_name,
                num_partitions,
            });
        }
        r.skip_tagged_fields()?;
        r.finish()?;
        Ok(Self { epoch, topics })
    }
}

impl MemberMetadataValue {
    pub fn encode(&self) -> Bytes {
        let mut out = value_header();
        put_compact_nullable_string(&mut out, self.instance_id.as_deref());
        put_compact_nullable_string(&mut out, self.rack_id.as_deref());
        put_compact_string(&mut out, &self.client_id);
        put_compact_string(&mut out, &self.client_host);
        put_array_len(&mut out, self.subscribed_topic_names.len());
        for name in &self.subscribed_topic_names {
            put_compact_string(&mut out, name);
        }
        put_compact_nullable_string(&mut out, self.subscribed_topic_regex.as_deref());
        out.put_i32(self.rebalance_timeout_ms);
        put_compact_nullable_string(&mut out, self.server_assignor.as_deref());
        put_no_tags(&mut out);
        out.freeze()
    }

    pub fn decode(value: Bytes) -> Result<Self> {
        let mut r = Reader::new(&value);
        r.version_zero()?;
        let instance_id = r.compact_nullable_string()?;
        let rack_id = r.compact_nullable_string()?;
        let client_id = r.compact_string()?;
        let client_host = r.compact_string()?;
        let count = r.array_len(1)?;
        let mut subscribed_topic_names = Vec::with_capacity(count);
        for _ in 0..count {
            subscribed_topic_names.push(r.compact_string()?);
        }
        let subscribed_topic_regex = r.compact_nullable_string()?;
        let rebalance_timeout_ms = r.i32()?;
        let server_assignor = r.compact_nullable_string()?;
        // Tag 0 (ClassicMemberMetadata) is skipped with any other tag.
        r.skip_tagged_fields()?;
        r.finish()?;
        Ok(Self {
            instance_id,
            rack_id,
            client_id,
            client_host,
            subscribed_topic_names,
            subscribed_topic_regex,
            rebalance_timeout_ms,
            server_assignor,
        })
    }
}

impl TargetAssignmentMetadataValue {
    pub fn encode(&self) -> Bytes {
        let mut out = value_header();
        out.put_i32(self.assignment_epoch);
        put_no_tags(&mut out);
        out.freeze()
    }

    pub fn decode(value: Bytes) -> Result<Self> {
        let mut r = Reader::new(&value);
        r.version_zero()?;
        let assignment_epoch = r.i32()?;
        r.skip_tagged_fields()?;
        r.finish()?;
        Ok(Self { assignment_epoch })
    }
}

impl TargetAssignmentMemberValue {
    pub fn encode(&self) -> Bytes {
        let mut out = value_header();
        put_assignment(&mut out, &self.partitions);
        put_no_tags(&mut out);
        out.freeze()
    }

    pub fn decode(value: Bytes) -> Result<Self> {
        let mut r = Reader::new(&value);
        r.version_zero()?;
        let partitions = r.assignment()?;
        r.skip_tagged_fields()?;
        r.finish()?;
        Ok(Self { partitions })
    }
}

impl CurrentMemberAssignmentValue {
    pub fn encode(&self) -> Bytes {
        let mut out = value_header();
        out.put_i32(self.member_epoch);
        out.put_i32(self.previous_member_epoch);
        out.put_i8(state_byte(self.state));
        put_assignment(&mut out, &self.assigned);
        put_assignment(&mut out, &self.pending_revocation);
        put_no_tags(&mut out);
        out.freeze()
    }

    pub fn decode(value: Bytes) -> Result<Self> {
        let mut r = Reader::new(&value);
        r.version_zero()?;
        let member_epoch = r.i32()?;
        let previous_member_epoch = r.i32()?;
        let state = byte_state(r.i8()?)?;
        let assigned = r.assignment()?;
        let pending_revocation = r.assignment()?;
        r.skip_tagged_fields()?;
        r.finish()?;
        Ok(Self {
            member_epoch,
            previous_member_epoch,
            state,
            assigned,
            pending_revocation,
        })
    }
}

/// A record of `__consumer_offsets`: key and value (`None` = tombstone).
pub type OffsetsRecord = (Bytes, Option<Bytes>);

/// The records that describe `snapshot` whole: group, partition and
/// target-assignment metadata, and each member's metadata, target and current
/// assignment; plus tombstones for the members of `previous` (the member ids
/// last written) that are gone. Written in one batch, they replace whatever
/// the log said about the group.
pub fn group_records(
    snapshot: &ConsumerGroupSnapshot,
    previous: &BTreeSet<String>,
) -> Vec<OffsetsRecord> {
    let group = &snapshot.group_id;
    let mut out = Vec::with_capacity(3 + 3 * (snapshot.members.len() + previous.len()));
    for m in &snapshot.members {
        let member = || m.member_id.clone();
        let metadata = MemberMetadataValue {
            instance_id: m.instance_id.clone(),
            rack_id: m.rack_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            subscribed_topic_names: m.subscribed_topic_names.clone(),
            subscribed_topic_regex: m.subscribed_topic_regex.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            server_assignor: m.server_assignor.clone(),
        };
        let target = TargetAssignmentMemberValue {
            partitions: m.target.clone(),
        };
        let current = CurrentMemberAssignmentValue {
            member_epoch: m.member_epoch,
            previous_member_epoch: m.previous_member_epoch,
            state: m.state,
            assigned: m.assigned.clone(),
            pending_revocation: m.pending_revocation.clone(),
        };
        let group = group.clone();
        out.push((
            ConsumerKey::MemberMetadata {
                group: group.clone(),
                member: member(),
            }
            .encode(),
            Some(metadata.encode()),
        ));
        out.push((
            ConsumerKey::TargetAssignmentMember {
                group: group.clone(),
                member: member(),
            }
            .encode(),
            Some(target.encode()),
        ));
        out.push((
            ConsumerKey::CurrentMemberAssignment {
                group,
                member: member(),
            }
            .encode(),
            Some(current.encode()),
        ));
    }
    let current: BTreeSet<&str> = snapshot
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    for gone in previous.iter().filter(|id| !current.contains(id.as_str())) {
        out.extend(member_tombstones(group, gone));
    }
    let partition_metadata = PartitionMetadataValue {
        epoch: snapshot.group_epoch,
        topics: snapshot
            .subscription_metadata
            .iter()
            .map(|(name, (id, n))| TopicMetadata {
                topic_id: *id,
                topic_name: name.clone(),
                num_partitions: *n,
            })
            .collect(),
    };
    let g = || group.clone();
    out.push((
        ConsumerKey::PartitionMetadata { group: g() }.encode(),
        Some(partition_metadata.encode()),
    ));
    out.push((
        ConsumerKey::TargetAssignmentMetadata { group: g() }.encode(),
        Some(
            TargetAssignmentMetadataValue {
                assignment_epoch: snapshot.assignment_epoch,
            }
            .encode(),
        ),
    ));
    out.push((
        ConsumerKey::GroupMetadata { group: g() }.encode(),
        Some(
            GroupMetadataValue {
                epoch: snapshot.group_epoch,
            }
            .encode(),
        ),
    ));
    out
}

fn member_tombstones(group: &str, member: &str) -> [OffsetsRecord; 3] {
    let (group, member) = (group.to_owned(), member.to_owned());
    [
        (
            ConsumerKey::MemberMetadata {
                group: group.clone(),
                member: member.clone(),
            }
            .encode(),
            None,
        ),
        (
            ConsumerKey::TargetAssignmentMember {
                group: group.clone(),
                member: member.clone(),
            }
            .encode(),
            None,
        ),
        (
            ConsumerKey::CurrentMemberAssignment { group, member }.encode(),
            None,
        ),
    ]
}

/// Tombstones for every consumer-group record of `group`, whose members last
/// written were `members` (the group was deleted or became a classic group).
pub fn group_tombstones(group: &str, members: &BTreeSet<String>) -> Vec<OffsetsRecord> {
    let mut out: Vec<OffsetsRecord> = members
        .iter()
        .flat_map(|m| member_tombstones(group, m))
        .collect();
    for key in [
        ConsumerKey::PartitionMetadata {
            group: group.to_owned(),
        },
        ConsumerKey::TargetAssignmentMetadata {
            group: group.to_owned(),
        },
        ConsumerKey::GroupMetadata {
            group: group.to_owned(),
        },
    ] {
        out.push((key.encode(), None));
    }
    out
}

/// A consumer group's records as read back from the log, in log order: the
/// last value per key wins and a tombstone deletes.
#[derive(Clone, Debug, Default)]
pub struct GroupRecordsLoad {
    metadata: Option<GroupMetadataValue>,
    partition_metadata: Option<PartitionMetadataValue>,
    target_metadata: Option<TargetAssignmentMetadataValue>,
    members: BTreeMap<String, MemberMetadataValue>,
    targets: BTreeMap<String, TargetAssignmentMemberValue>,
    current: BTreeMap<String, CurrentMemberAssignmentValue>,
}

fn put_or_remove<V>(map: &mut BTreeMap<String, V>, member: String, value: Option<V>) {
    match value {
        Some(v) => {
            map.insert(member, v);
        }
        None => {
            map.remove(&member);
        }
    }
}

impl GroupRecordsLoad {
    /// Applies one record (its key already decoded). An unreadable value is
    /// an error and changes nothing.
    pub fn apply(&mut self, key: ConsumerKey, value: Option<Bytes>) -> Result<()> {
        match key {
            ConsumerKey::GroupMetadata { .. } => {
                self.metadata = value.map(GroupMetadataValue::decode).transpose()?
            }
            ConsumerKey::PartitionMetadata { .. } => {
                self.partition_metadata = value.map(PartitionMetadataValue::decode).transpose()?
            }
            ConsumerKey::TargetAssignmentMetadata { .. } => {
                self.target_metadata = value
                    .map(TargetAssignmentMetadataValue::decode)
                    .transpose()?
            }
            ConsumerKey::MemberMetadata { member, .. } => {
                let v = value.map(MemberMetadataValue::decode).transpose()?;
                put_or_remove(&mut self.members, member, v);
            }
            ConsumerKey::TargetAssignmentMember { member, .. } => {
                let v = value.map(TargetAssignmentMemberValue::decode).transpose()?;
                put_or_remove(&mut self.targets, member, v);
            }
            ConsumerKey::CurrentMemberAssignment { member, .. } => {
                let v = value
                    .map(CurrentMemberAssignmentValue::decode)
                    .transpose()?;
                put_or_remove(&mut self.current, member, v);
            }
        }
        Ok(())
    }

    /// The group's snapshot: `Ok(None)` when the log holds no live group
    /// metadata record (no consumer group, or it was deleted). Members are
    /// those with a member-metadata record; a missing current assignment
    /// means epoch 0 with nothing owned (Kafka's defaults), a missing target
    /// means an empty one. Refuses a log in which two members own one
    /// partition: restoring it would break the protocol's invariant.
    pub fn into_snapshot(
        self,
        group_id: &str,
    ) -> std::result::Result<Option<ConsumerGroupSnapshot>, String> {
        let Some(metadata) = self.metadata else {
            return Ok(None);
        };
        let mut targets = self.targets;
        let mut current = self.current;
        let mut owners: BTreeMap<(TopicId, i32), &str> = BTreeMap::new();
        let mut members = Vec::with_capacity(self.members.len());
        for (member_id, m) in &self.members {
            let c = current
                .remove(member_id)
                .unwrap_or(CurrentMemberAssignmentValue {
                    member_epoch: 0,
                    previous_member_epoch: 0,
                    state: MemberState::Stable,
                    assigned: Assignment::new(),
                    pending_revocation: Assignment::new(),
                });
            for (topic, partitions) in c.assigned.iter().chain(c.pending_revocation.iter()) {
                for p in partitions {
                    if let Some(other) = owners.insert((*topic, *p), member_id) {
                        if other != member_id {
                            return Err(format!(
                                "partition {topic}-{p} is owned by both {other} and {member_id}"
                            ));
                        }
                    }
                }
            }
            let mut subscribed_topic_names = m.subscribed_topic_names.clone();
            subscribed_topic_names.sort();
            subscribed_topic_names.dedup();
            members.push(MemberSnapshot {
                member_id: member_id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names,
                subscribed_topic_regex: m.subscribed_topic_regex.clone().filter(|r| !r.is_empty()),
                server_assignor: m.server_assignor.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                state: c.state,
                member_epoch: c.member_epoch,
                previous_member_epoch: c.previous_member_epoch,
                assigned: c.assigned,
                pending_revocation: c.pending_revocation,
                target: targets
                    .remove(member_id)
                    .map(|t| t.partitions)
                    .unwrap_or_default(),
            });
        }
        Ok(Some(ConsumerGroupSnapshot {
            group_id: group_id.to_owned(),
            group_epoch: metadata.epoch,
            assignment_epoch: self
                .target_metadata
                .map(|t| t.assignment_epoch)
                .unwrap_or(0),
            subscription_metadata: self
                .partition_metadata
                .map(|p| {
                    p.topics
                        .into_iter()
                        .map(|t| (t.topic_name, (t.topic_id, t.num_partitions)))
                        .collect()
                })
                .unwrap_or_default(),
            members,
        }))
    }
}

#[cfg(test)]
mod tests;
