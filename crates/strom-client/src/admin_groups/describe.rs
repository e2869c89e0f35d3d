//! Describing groups: DescribeGroups for classic groups (member assignments
//! decoded from their `ConsumerProtocolAssignment` bytes), then
//! ConsumerGroupDescribe for the KIP-848 groups DescribeGroups does not describe.

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup as ConsumerDescribedGroup,
};
use strom_protocol::messages::describe_groups_response::DescribedGroup as ClassicDescribedGroup;
use strom_protocol::messages::{
    ApiVersion, Bytes, ConsumerGroupDescribeRequest, ConsumerProtocolAssignment, DecodeLimits,
    Decoder, DescribeGroupsRequest, KafkaDecode,
};
use strom_protocol::ErrorCode;

use super::{
    opt_string, GroupAnswers, GroupDescription, MemberDescription, ASSIGNMENT_MAX_VERSION,
};
use crate::connection::Connection;
use crate::consumer::TopicPartition;
use crate::error::ClientError;

/// DescribeGroups for a batch of groups on their coordinator, then
/// ConsumerGroupDescribe for those DescribeGroups does not describe (KIP-848
/// groups, and unknown ones).
pub(super) async fn describe_on(
    node: i32,
    conn: Arc<Connection>,
    groups: Vec<String>,
) -> Result<GroupAnswers<GroupDescription>, ClientError> {
    let mut req = DescribeGroupsRequest::default();
    req.groups = groups.iter().map(|g| g.as_str().into()).collect();
    let resp = conn.send(&req).await?;
    let mut answers = Vec::new();
    // Groups to ask ConsumerGroupDescribe about, with the classic answer to
    // keep when that API does not know them either.
    let mut retry: Vec<(String, Result<GroupDescription, ClientError>)> = Vec::new();
    for g in resp.groups {
        let group_id = g.group_id.to_string();
        let not_found = g.error_code == ErrorCode::GroupIdNotFound.code();
        // Before v6 an unknown (or KIP-848) group is described as Dead without members.
        let dead = g.error_code == 0 && g.group_state.as_str() == "Dead" && g.members.is_empty();
        let answer = match ClientError::check(g.error_code, opt_string(g.error_message.as_ref())) {
            Ok(()) => classic_description(node, g),
            Err(e) => Err(e),
        };
        if not_found || dead {
            retry.push((group_id, answer));
        } else {
            answers.push((group_id, answer));
        }
    }
    if retry.is_empty() || conn.version_for::<ConsumerGroupDescribeRequest>().is_err() {
        answers.extend(retry);
        return Ok(answers);
    }
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = retry.iter().map(|(g, _)| g.as_str().into()).collect();
    let resp = conn.send(&req).await?;
    let mut described: BTreeMap<String, ConsumerDescribedGroup> = resp
        .groups
        .into_iter()
        .map(|g| (g.group_id.to_string(), g))
        .collect();
    for (group_id, classic) in retry {
        let answer = match described.remove(&group_id) {
            Some(g) if g.error_code == ErrorCode::GroupIdNotFound.code() => classic,
            Some(g) => ClientError::check(g.error_code, opt_string(g.error_message.as_ref()))
                .map(|()| consumer_description(node, g)),
            None => classic,
        };
        answers.push((group_id, answer));
    }
    Ok(answers)
}

fn classic_description(
    node: i32,
    g: ClassicDescribedGroup,
) -> Result<GroupDescription, ClientError> {
    let consumer_protocol = g.protocol_type.as_str() == "consumer";
    let mut members = Vec::with_capacity(g.members.len());
    for m in g.members {
        let assignment = if consumer_protocol {
            decode_assignment(m.member_assignment).map_err(|e| {
                ClientError::Decode(format!(
                    "assignment of member {} of group {}: {e}",
                    m.member_id, g.group_id
                ))
            })?
        } else {
            Vec::new()
        };
        members.push(MemberDescription {
            member_id: m.member_id.to_string(),
            group_instance_id: opt_string(m.group_instance_id.as_ref()),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            assignment,
            member_epoch: None,
        });
    }
    Ok(GroupDescription {
        group_id: g.group_id.to_string(),
        group_type: "classic".into(),
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        assignor: g.protocol_data.to_string(),
        members,
        coordinator: node,
        group_epoch: None,
    })
}

fn consumer_description(node: i32, g: ConsumerDescribedGroup) -> GroupDescription {
    let assigned = |a: Assignment| {
        let mut out: Vec<TopicPartition> = a
            .topic_partitions
            .into_iter()
            .flat_map(|tp| {
                let topic = tp.topic_name.to_string();
                tp.partitions
                    .into_iter()
                    .map(move |p| TopicPartition::new(topic.as_str(), p))
            })
            .collect();
        out.sort();
        out
    };
    GroupDescription {
        group_id: g.group_id.to_string(),
        group_type: "consumer".into(),
        state: g.group_state.to_string(),
        protocol_type: "consumer".into(),
        assignor: g.assignor_name.to_string(),
        members: g
            .members
            .into_iter()
            .map(|m| MemberDescription {
                member_id: m.member_id.to_string(),
                group_instance_id: opt_string(m.instance_id.as_ref()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: assigned(m.assignment),
                member_epoch: Some(m.member_epoch),
            })
            .collect(),
        coordinator: node,
        group_epoch: Some(g.group_epoch),
    }
}

/// The partitions of a version-prefixed `ConsumerProtocolAssignment` (what a
/// classic consumer group's leader hands each member in SyncGroup). Empty
/// bytes mean no assignment yet.
fn decode_assignment(bytes: Bytes) -> Result<Vec<TopicPartition>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut decoder = Decoder::new(bytes, DecodeLimits::default()).map_err(|e| e.to_string())?;
    let version = decoder.read_i16().map_err(|e| e.to_string())?;
    if version < 0 {
        return Err(format!("negative schema version {version}"));
    }
    let version = ApiVersion::new(version.min(ASSIGNMENT_MAX_VERSION));
    let assignment =
        ConsumerProtocolAssignment::decode(&mut decoder, version).map_err(|e| e.to_string())?;
    let mut out: Vec<TopicPartition> = assignment
        .assigned_partitions
        .into_iter()
        .flat_map(|tp| {
            let topic = tp.topic.to_string();
            tp.partitions
                .into_iter()
                .map(move |p| TopicPartition::new(topic.as_str(), p))
        })
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use strom_protocol::messages::consumer_protocol_assignment::TopicPartition as Assigned;
    use strom_protocol::messages::{encode_consumer_protocol_assignment, BytesMut};

    use super::*;

    fn encoded(version: i16, parts: &[(&str, &[i32])]) -> Bytes {
        let mut a = ConsumerProtocolAssignment::default();
        a.assigned_partitions = parts
            .iter()
            .map(|(t, ps)| {
                let mut tp = Assigned::default();
                tp.topic = (*t).into();
                tp.partitions = ps.to_vec();
                tp
            })
            .collect();
        let mut buf = BytesMut::new();
        encode_consumer_protocol_assignment(&mut buf, &a, ApiVersion::new(version))
            .expect("encode");
        buf.freeze()
    }

    #[test]
    fn assignments_decode_sorted_at_every_version_and_newer_ones_as_the_newest() {
        for version in 0..=3 {
            let got = decode_assignment(encoded(version, &[("b", &[1, 0]), ("a", &[2])])).unwrap();
            assert_eq!(
                got,
                vec![
                    TopicPartition::new("a", 2),
                    TopicPartition::new("b", 0),
                    TopicPartition::new("b", 1)
                ]
            );
        }
        // A future version with an extra trailing field reads as v3.
        let mut future = BytesMut::from(&encoded(3, &[("t", &[0])])[..]);
        future[..2].copy_from_slice(&7i16.to_be_bytes());
        future.extend_from_slice(&[0, 0, 0, 9]);
        assert_eq!(
            decode_assignment(future.freeze()).unwrap(),
            vec![TopicPartition::new("t", 0)]
        );
        assert_eq!(decode_assignment(Bytes::new()).unwrap(), vec![]);
        assert!(decode_assignment(Bytes::from_static(&[0xff, 0xff])).is_err());
        assert!(decode_assignment(Bytes::from_static(&[0, 0, 0, 0, 0, 9])).is_err());
    }
}
