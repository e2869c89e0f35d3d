//! Fetch responses whose record sets stay where they are.
//!
//! A fetch response is mostly record bytes that the broker already has in a
//! segment file. Encoding it through the generated `FetchResponse` encoder
//! would copy those bytes into the response buffer (after reading them into
//! memory); this encoder writes everything *around* the record sets and leaves
//! each record set as a [`FramePart::Records`] for the caller, which sends it
//! with `sendfile` on a plain TCP socket (DESIGN §5), or writes it from memory.
//!
//! The bytes are those of the generated encoder for the same response: the
//! tests encode responses both ways for every advertised version and compare.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_wire::fetch_response::{EpochEndOffset, LeaderIdAndEpoch, PartitionData, SnapshotId};
use kafka_wire::FetchResponse;
use kafka_wire_core::{ApiVersion, EncodeError, Encoder, KafkaEncode};
use thiserror::Error;

use crate::header::encode_response_header;

/// First Fetch version with flexible (compact, tagged) encoding.
const FIRST_FLEXIBLE_VERSION: i16 = 12;
/// First Fetch version that names topics by id instead of name.
const FIRST_TOPIC_ID_VERSION: i16 = 13;
/// First Fetch version with the `NodeEndpoints` tagged field (KIP-951).
const FIRST_NODE_ENDPOINTS_VERSION: i16 = 16;

/// Something that stands for a partition's record bytes in a response.
pub trait RecordSet {
    /// Bytes the record set occupies on the wire.
    fn len(&self) -> usize;
    /// Whether it holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RecordSet for Bytes {
    fn len(&self) -> usize {
        Bytes::len(self)
    }
}

/// One piece of a response frame, in wire order.
#[derive(Debug)]
pub enum FramePart<R> {
    /// Encoded bytes (the size prefix, headers, partition fields).
    Bytes(Bytes),
    /// A partition's record set, written by the caller.
    Records(R),
}

/// A response frame in pieces.
#[derive(Debug)]
pub struct Frame<R> {
    /// The pieces in wire order; the first holds the 4-byte size prefix.
    pub parts: Vec<FramePart<R>>,
    /// Bytes of the whole frame, size prefix included.
    pub len: usize,
}

/// Why a fetch response could not be encoded.
#[derive(Debug, Error)]
pub enum FetchEncodeError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The response carries unknown tagged fields, which this encoder does not
    /// write (the broker never sets them on its own responses).
    #[error("fetch response v{version} carries unknown tagged fields")]
    UnknownTaggedFields { version: i16 },
    /// `records` did not hold one entry per partition of the response.
    #[error("{given} record sets for {partitions} partitions")]
    RecordSetCount { given: usize, partitions: usize },
    /// A partition carried its records inline; they go in `records` instead.
    #[error("partition {partition} has inline records")]
    InlineRecords { partition: i32 },
    /// The frame would not fit the 4-byte size prefix.
    #[error("fetch response of {bytes} bytes exceeds the frame size limit")]
    TooLarge { bytes: usize },
}

/// Builds the parts while tracking the frame's length.
struct Parts<R> {
    parts: Vec<FramePart<R>>,
    buf: BytesMut,
    len: usize,
}

impl<R: RecordSet> Parts<R> {
    fn encoder(&mut self) -> Encoder<kafka_wire_core::BufferTarget<'_>> {
        Encoder::new(&mut self.buf)
    }

    fn records(&mut self, records: R) {
        self.flush();
        self.len += records.len();
        self.parts.push(FramePart::Records(records));
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            let bytes = self.buf.split().freeze();
            self.len += bytes.len();
            self.parts.push(FramePart::Bytes(bytes));
        }
    }
}

/// Encodes `response` as a whole frame (size prefix, response header, body)
/// for `correlation_id` at `version`, with `records[i]` as the record set of
/// the i-th partition in response order (`None` is a null record set). The
/// partitions' own `records` fields must be `None`.
pub fn encode_fetch_response<R: RecordSet>(
    correlation_id: i32,
    version: i16,
    response: &FetchResponse,
    records: Vec<Option<R>>,
) -> Result<Frame<R>, FetchEncodeError> {
    let partitions: usize = response.responses.iter().map(|t| t.partitions.len()).sum();
    if records.len() != partitions {
        return Err(FetchEncodeError::RecordSetCount {
            given: records.len(),
            partitions,
        });
    }
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    let unknown_tags = !response.unknown_tagged_fields.is_empty()
        || response.responses.iter().any(|t| {
            !t.unknown_tagged_fields.is_empty()
                || t.partitions
                    .iter()
                    .any(|p| !p.unknown_tagged_fields.is_empty())
        });
    if unknown_tags {
        return Err(FetchEncodeError::UnknownTaggedFields { version });
    }
    let v = ApiVersion::new(version);
    let mut out = Parts {
        parts: Vec::with_capacity(2 * partitions + 2),
        buf: BytesMut::with_capacity(256),
        len: 0,
    };
    // The size prefix is known only at the end: it gets a part of its own.
    out.parts.push(FramePart::Bytes(Bytes::new()));
    encode_response_header(&mut out.buf, correlation_id, i16::from(flexible));
    {
        let mut e = out.encoder();
        e.write_i32(response.throttle_time_ms)?;
        if version >= 7 {
            e.write_i16(response.error_code)?;
            e.write_i32(response.session_id)?;
        }
        array_len(&mut e, flexible, response.responses.len())?;
    }
    let mut records = records.into_iter();
    for topic in &response.responses {
        {
            let mut e = out.encoder();
            if version >= FIRST_TOPIC_ID_VERSION {
                e.write_uuid(topic.topic_id)?;
            } else if flexible {
                e.write_compact_string(&topic.topic)?;
            } else {
                e.write_string(&topic.topic)?;
            }
            array_len(&mut e, flexible, topic.partitions.len())?;
        }
        for partition in &topic.partitions {
            if partition.records.is_some() {
                return Err(FetchEncodeError::InlineRecords {
                    partition: partition.partition_index,
                });
            }
            let set = records.next().flatten();
            partition_fields(&mut out.encoder(), v, partition, set.as_ref().map(R::len))?;
            if let Some(set) = set {
                out.records(set);
            }
            if flexible {
                partition_tags(&mut out.encoder(), v, partition)?;
            }
        }
        if flexible {
            out.encoder().write_unsigned_varint(0)?;
        }
    }
    if flexible {
        let mut e = out.encoder();
        if version >= FIRST_NODE_ENDPOINTS_VERSION && !response.node_endpoints.is_empty() {
            e.write_unsigned_varint(1)?;
            e.write_unsigned_varint(0)?;
            let mut size = Encoder::sizing();
            size.write_compact_array_len(response.node_endpoints.len())?;
            for node in &response.node_endpoints {
                node.encode(&mut size, v)?;
            }
            e.write_unsigned_varint(u32_len(size.len())?)?;
            e.write_compact_array_len(response.node_endpoints.len())?;
            for node in &response.node_endpoints {
                node.encode(&mut e, v)?;
            }
        } else {
            e.write_unsigned_varint(0)?;
        }
    }
    out.flush();
    let body = out.len;
    let size = i32::try_from(body).map_err(|_| FetchEncodeError::TooLarge { bytes: body })?;
    let mut prefix = BytesMut::with_capacity(4);
    prefix.put_i32(size);
    out.parts[0] = FramePart::Bytes(prefix.freeze());
    Ok(Frame {
        parts: out.parts,
        len: body + 4,
    })
}

fn array_len<T: kafka_wire_core::EncodeTarget>(
    e: &mut Encoder<T>,
    flexible: bool,
    len: usize,
) -> Result<(), EncodeError> {
    if flexible {
        e.write_compact_array_len(len)
    } else {
        e.write_array_len(len)
    }
}

fn u32_len(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::LengthOverflow {
        kind: "tagged field",
        length: len,
        maximum: u32::MAX as usize,
    })
}

/// A partition's fields up to and including the records length.
fn partition_fields<T: kafka_wire_core::EncodeTarget>(
    e: &mut Encoder<T>,
    v: ApiVersion,
    p: &PartitionData,
    records_len: Option<usize>,
) -> Result<(), EncodeError> {
    let version = v.value();
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    e.write_i32(p.partition_index)?;
    e.write_i16(p.error_code)?;
    e.write_i64(p.high_watermark)?;
    e.write_i64(p.last_stable_offset)?;
    if version >= 5 {
        e.write_i64(p.log_start_offset)?;
    }
    let aborted = p.aborted_transactions.as_ref();
    if flexible {
        e.write_compact_nullable_array_len(aborted.map(Vec::len))?;
    } else {
        e.write_nullable_array_len(aborted.map(Vec::len))?;
    }
    for txn in aborted.into_iter().flatten() {
        txn.encode(e, v)?;
    }
    if version >= 11 {
        e.write_i32(p.preferred_read_replica)?;
    }
    match (records_len, flexible) {
        (None, false) => e.write_i32(-1),
        (None, true) => e.write_unsigned_varint(0),
        (Some(len), false) => {
            e.write_i32(i32::try_from(len).map_err(|_| EncodeError::LengthOverflow {
                kind: "records",
                length: len,
                maximum: i32::MAX as usize,
            })?)
        }
        (Some(len), true) => e.write_unsigned_varint(u32_len(len + 1)?),
    }
}

/// A flexible partition's tagged fields: each known one that differs from
/// its default, in tag order, as Kafka's generated code writes them.
fn partition_tags<T: kafka_wire_core::EncodeTarget>(
    e: &mut Encoder<T>,
    v: ApiVersion,
    p: &PartitionData,
) -> Result<(), EncodeError> {
    let diverging = p.diverging_epoch != EpochEndOffset::default();
    let leader = p.current_leader != LeaderIdAndEpoch::default();
    let snapshot = p.snapshot_id != SnapshotId::default();
    let count = u32::from(diverging) + u32::from(leader) + u32::from(snapshot);
    e.write_unsigned_varint(count)?;
    if diverging {
        tagged(e, v, 0, &p.diverging_epoch)?;
    }
    if leader {
        tagged(e, v, 1, &p.current_leader)?;
    }
    if snapshot {
        tagged(e, v, 2, &p.snapshot_id)?;
    }
    Ok(())
}

fn tagged<T: kafka_wire_core::EncodeTarget, S: KafkaEncode>(
    e: &mut Encoder<T>,
    v: ApiVersion,
    tag: u32,
    value: &S,
) -> Result<(), EncodeError> {
    e.write_unsigned_varint(tag)?;
    e.write_unsigned_varint(u32_len(value.encoded_len(v)?)?)?;
    value.encode(e, v)
}

#[cfg(test)]
mod tests;
