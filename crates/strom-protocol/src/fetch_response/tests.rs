use kafka_wire::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, NodeEndpoint, PartitionData,
};
use kafka_wire_core::{StrBytes, Uuid};
use proptest::prelude::*;

use super::*;
use crate::apis;
use crate::header::response_header_version;

/// The frame the generated encoder writes for `response` (records inline).
fn generated(correlation_id: i32, version: i16, response: &FetchResponse) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_i32(0);
    encode_response_header(
        &mut out,
        correlation_id,
        response_header_version(apis::FETCH, version),
    );
    response
        .encode_into(&mut out, ApiVersion::new(version))
        .expect("generated encoder");
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out.to_vec()
}

/// The same response through [`encode_fetch_response`], parts concatenated.
fn in_parts(correlation_id: i32, version: i16, response: &FetchResponse) -> Vec<u8> {
    let mut bare = response.clone();
    let mut sets = Vec::new();
    for t in &mut bare.responses {
        for p in &mut t.partitions {
            sets.push(p.records.take());
        }
    }
    let frame = encode_fetch_response(correlation_id, version, &bare, sets).expect("encode");
    let mut out = Vec::new();
    for part in frame.parts {
        match part {
            FramePart::Bytes(b) | FramePart::Records(b) => out.extend_from_slice(&b),
        }
    }
    assert_eq!(out.len(), frame.len, "declared frame length");
    out
}

#[derive(Debug, Clone)]
struct PartitionShape {
    index: i32,
    error_code: i16,
    offsets: (i64, i64, i64),
    aborted: Option<Vec<(i64, i64)>>,
    preferred_read_replica: i32,
    records: Option<Vec<u8>>,
    leader: Option<(i32, i32)>,
    diverging: Option<(i32, i64)>,
    snapshot: Option<(i64, i32)>,
}

fn partition_shape() -> impl Strategy<Value = PartitionShape> {
    (
        (0i32..1000, -1i16..100, any::<(i64, i64, i64)>()),
        proptest::option::of(proptest::collection::vec(any::<(i64, i64)>(), 0..4)),
        -1i32..5,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        proptest::option::of(any::<(i32, i32)>()),
        proptest::option::of(any::<(i32, i64)>()),
        proptest::option::of(any::<(i64, i32)>()),
    )
        .prop_map(
            |(
                (index, error_code, offsets),
                aborted,
                replica,
                records,
                leader,
                diverging,
                snapshot,
            )| {
                PartitionShape {
                    index,
                    error_code,
                    offsets,
                    aborted,
                    preferred_read_replica: replica,
                    records,
                    leader,
                    diverging,
                    snapshot,
                }
            },
        )
}

/// A response representable at `version` (the generated encoder refuses
/// fields a version cannot carry).
fn response(version: i16, topics: &[(String, [u8; 16], Vec<PartitionShape>)]) -> FetchResponse {
    let mut r = FetchResponse::default();
    r.throttle_time_ms = 7;
    if version >= 7 {
        r.error_code = 0;
        r.session_id = 42;
    }
    for (name, id, partitions) in topics {
        let mut t = FetchableTopicResponse::default();
        if version >= FIRST_TOPIC_ID_VERSION {
            t.topic_id = Uuid::from_bytes(*id);
        } else {
            t.topic = StrBytes::from(name.clone());
        }
        for s in partitions {
            let mut p = PartitionData::default();
            p.partition_index = s.index;
            p.error_code = s.error_code;
            (p.high_watermark, p.last_stable_offset, p.log_start_offset) = s.offsets;
            if version < 5 {
                p.log_start_offset = -1;
            }
            p.aborted_transactions = s.aborted.as_ref().map(|list| {
                list.iter()
                    .map(|&(producer_id, first_offset)| {
                        let mut a = AbortedTransaction::default();
                        a.producer_id = producer_id;
                        a.first_offset = first_offset;
                        a
                    })
                    .collect()
            });
            if version >= 11 {
                p.preferred_read_replica = s.preferred_read_replica;
            }
            if version >= FIRST_FLEXIBLE_VERSION {
                if let Some((leader_id, leader_epoch)) = s.leader {
                    p.current_leader.leader_id = leader_id;
                    p.current_leader.leader_epoch = leader_epoch;
                }
                if let Some((epoch, end_offset)) = s.diverging {
                    p.diverging_epoch.epoch = epoch;
                    p.diverging_epoch.end_offset = end_offset;
                }
                if let Some((end_offset, epoch)) = s.snapshot {
                    p.snapshot_id.end_offset = end_offset;
                    p.snapshot_id.epoch = epoch;
                }
            }
            p.records = s.records.clone().map(Bytes::from);
            t.partitions.push(p);
        }
        r.responses.push(t);
    }
    if version >= FIRST_NODE_ENDPOINTS_VERSION {
        let mut n = NodeEndpoint::default();
        n.node_id = 1;
        n.host = StrBytes::from("localhost".to_string());
        n.port = 9092;
        r.node_endpoints.push(n);
    }
    r
}

proptest! {
    #[test]
    fn parts_concatenate_to_the_generated_encoding(
        version in 4i16..=16,
        correlation_id in any::<i32>(),
        topics in proptest::collection::vec(
            ("[a-z]{1,12}", any::<[u8; 16]>(), proptest::collection::vec(partition_shape(), 0..4)),
            0..4,
        ),
    ) {
        let r = response(version, &topics);
        prop_assert_eq!(in_parts(correlation_id, version, &r), generated(correlation_id, version, &r));
    }
}

#[test]
fn every_advertised_fetch_version_is_covered() {
    let range = apis::advertised(apis::FETCH).expect("fetch is advertised");
    assert!(range.min_version >= 4 && range.max_version <= 16);
}

#[test]
fn records_stay_separate_parts_in_partition_order() {
    let shape = |index, records: &[u8]| PartitionShape {
        index,
        error_code: 0,
        offsets: (10, 10, 0),
        aborted: None,
        preferred_read_replica: -1,
        records: Some(records.to_vec()),
        leader: Some((1, 0)),
        diverging: None,
        snapshot: None,
    };
    let topics = vec![(
        "t".to_string(),
        [1; 16],
        vec![shape(0, b"first"), shape(1, b"second")],
    )];
    let mut r = response(16, &topics);
    let sets: Vec<Option<Bytes>> = r.responses[0]
        .partitions
        .iter_mut()
        .map(|p| p.records.take())
        .collect();
    let frame = encode_fetch_response(3, 16, &r, sets).unwrap();
    let records: Vec<&[u8]> = frame
        .parts
        .iter()
        .filter_map(|p| match p {
            FramePart::Records(b) => Some(&b[..]),
            FramePart::Bytes(_) => None,
        })
        .collect();
    assert_eq!(records, vec![&b"first"[..], &b"second"[..]]);
}

#[test]
fn mismatched_record_sets_and_inline_records_are_refused() {
    let r = response(12, &[("t".into(), [0; 16], vec![])]);
    let err = encode_fetch_response::<Bytes>(1, 12, &r, vec![None]).unwrap_err();
    assert!(matches!(
        err,
        FetchEncodeError::RecordSetCount {
            given: 1,
            partitions: 0
        }
    ));
    let mut r = FetchResponse::default();
    let mut t = FetchableTopicResponse::default();
    let mut p = PartitionData::default();
    p.records = Some(Bytes::from_static(b"x"));
    t.partitions.push(p);
    r.responses.push(t);
    let err = encode_fetch_response::<Bytes>(1, 12, &r, vec![None]).unwrap_err();
    assert!(matches!(err, FetchEncodeError::InlineRecords { .. }));
}
