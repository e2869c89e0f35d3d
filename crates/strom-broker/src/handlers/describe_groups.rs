//! DescribeGroups (key 15): state, protocol and members of classic groups.

use bytes::Bytes;
use strom_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use strom_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, StrBytes};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::state::State;

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: DescribeGroupsRequest = request.decode(state, body)?;
    let groups = state.groups.lock().await;
    let mut response = DescribeGroupsResponse::default();
    for id in &req.groups {
        let mut out = DescribedGroup::default();
        out.group_id = id.clone();
        match groups.groups.get(id.as_str()) {
            None => {
                // Kafka describes an unknown group as Dead; v6 adds an explicit error.
                out.group_state = StrBytes::from("Dead");
                if request.version >= 6 {
                    out.error_code = ErrorCode::GroupIdNotFound.code();
                    out.error_message = Some(StrBytes::from(format!("Group {id} not found.")));
                }
            }
            Some(entry) if entry.consumer.is_some() => {
                // A KIP-848 group is not described by the classic API (as Kafka 4):
                // v6 says so, older versions see a Dead group.
                out.group_state = StrBytes::from("Dead");
                if request.version >= 6 {
                    out.error_code = ErrorCode::GroupIdNotFound.code();
                    out.error_message = Some(StrBytes::from(format!(
                        "Group {id} is not a classic group."
                    )));
                }
            }
            Some(entry) => {
                let g = &entry.classic;
                out.group_state = StrBytes::from(g.state().name());
                out.protocol_type = StrBytes::from(g.protocol_type().unwrap_or(""));
                out.protocol_data = StrBytes::from(g.protocol_name().unwrap_or(""));
                out.members = g
                    .members()
                    .map(|m| {
                        let mut d = DescribedGroupMember::default();
                        d.member_id = StrBytes::from(m.member_id);
                        d.group_instance_id = m.group_instance_id.map(StrBytes::from);
                        d.client_id = StrBytes::from(m.client_id);
                        d.client_host = StrBytes::from(m.client_host);
                        d.member_metadata = m.metadata.clone();
                        d.member_assignment = m.assignment.clone();
                        d
                    })
                    .collect();
            }
        }
        response.groups.push(out);
    }
    Ok(request.respond(&response))
}
