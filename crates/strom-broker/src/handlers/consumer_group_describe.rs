//! ConsumerGroupDescribe (key 69): KIP-848 groups with epochs, members,
//! subscriptions, current and target assignments.

use bytes::Bytes;
use strom_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use strom_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, StrBytes,
};
use strom_protocol::ErrorCode;

use super::metadata::wire_uuid;
use super::HandlerResult;
use crate::dispatch::Request;
use crate::group::consumer::DescribedTopicPartitions;
use crate::group::coordinator::topics_view;
use crate::state::State;

fn assignment(parts: Vec<DescribedTopicPartitions>) -> Assignment {
    let mut a = Assignment::default();
    a.topic_partitions = parts
        .into_iter()
        .map(|p| {
            let mut tp = TopicPartitions::default();
            tp.topic_id = wire_uuid(&p.topic_id);
            tp.topic_name = StrBytes::from(p.topic_name);
            tp.partitions = p.partitions;
            tp
        })
        .collect();
    a
}

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: ConsumerGroupDescribeRequest = request.decode(state, body)?;
    let topics = topics_view(&state.controller.image());
    let groups = state.groups.lock().await;
    let cfg = &state.groups.config.consumer;
    let mut response = ConsumerGroupDescribeResponse::default();
    for id in &req.group_ids {
        let mut out = DescribedGroup::default();
        out.group_id = id.clone();
        match groups.groups.get(id.as_str()) {
            Some(entry) => match &entry.consumer {
                Some(group) => {
                    let d = group.describe(&topics, cfg);
                    out.group_state = StrBytes::from(d.state.name());
                    out.group_epoch = d.group_epoch;
                    out.assignment_epoch = d.assignment_epoch;
                    out.assignor_name = StrBytes::from(d.assignor_name);
                    out.members = d
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut member = Member::default();
                            member.member_id = StrBytes::from(m.member_id);
                            member.instance_id = m.instance_id.map(StrBytes::from);
                            member.rack_id = m.rack_id.map(StrBytes::from);
                            member.member_epoch = m.member_epoch;
                            member.client_id = StrBytes::from(m.client_id);
                            member.client_host = StrBytes::from(m.client_host);
                            member.subscribed_topic_names = m
                                .subscribed_topic_names
                                .into_iter()
                                .map(StrBytes::from)
                                .collect();
                            member.subscribed_topic_regex =
                                m.subscribed_topic_regex.map(StrBytes::from);
                            member.assignment = assignment(m.assignment);
                            member.target_assignment = assignment(m.target_assignment);
                            member
                        })
                        .collect();
                }
                None => {
                    out.error_code = ErrorCode::GroupIdNotFound.code();
                    out.error_message = Some(StrBytes::from(format!(
                        "Group {id} is not a consumer group."
                    )));
                }
            },
            None => {
                out.error_code = ErrorCode::GroupIdNotFound.code();
                out.error_message = Some(StrBytes::from(format!("Group {id} not found.")));
            }
        }
        response.groups.push(out);
    }
    Ok(request.respond(&response))
}
