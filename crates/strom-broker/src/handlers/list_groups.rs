//! ListGroups (key 16): every group, filtered by state (v4+) and type (v5+).

use bytes::Bytes;
use strom_protocol::messages::list_groups_response::ListedGroup;
use strom_protocol::messages::{ListGroupsRequest, ListGroupsResponse, StrBytes};

use super::HandlerResult;
use crate::dispatch::Request;
use crate::state::State;

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: ListGroupsRequest = request.decode(state, body)?;
    let groups = state.groups.lock().await;
    let mut response = ListGroupsResponse::default();
    let mut listed: Vec<ListedGroup> = groups
        .groups
        .iter()
        .filter(|(_, e)| {
            req.states_filter.is_empty()
                || req
                    .states_filter
                    .iter()
                    .any(|f| f.as_str().eq_ignore_ascii_case(e.state_name()))
        })
        .filter(|(_, e)| {
            req.types_filter.is_empty()
                || req
                    .types_filter
                    .iter()
                    .any(|t| t.as_str().eq_ignore_ascii_case(e.group_type()))
        })
        .map(|(id, e)| {
            let mut g = ListedGroup::default();
            g.group_id = StrBytes::from(id.as_str());
            let protocol_type = if e.consumer.is_some() {
                Some("consumer")
            } else {
                e.classic.protocol_type()
            };
            g.protocol_type = StrBytes::from(protocol_type.unwrap_or(""));
            if request.version >= 4 {
                g.group_state = StrBytes::from(e.state_name());
            }
            if request.version >= 5 {
                g.group_type = StrBytes::from(e.group_type());
            }
            g
        })
        .collect();
    listed.sort_by(|a, b| a.group_id.as_str().cmp(b.group_id.as_str()));
    response.groups = listed;
    Ok(request.respond(&response))
}
