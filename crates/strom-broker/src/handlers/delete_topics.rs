//! DeleteTopics (key 20): by name (all versions) or by id (v6+).

use bytes::Bytes;
use strom_protocol::messages::delete_topics_response::DeletableTopicResult;
use strom_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, StrBytes, Uuid};
use strom_protocol::ErrorCode;

use super::metadata::{topic_id, wire_uuid};
use super::HandlerResult;
use crate::admin;
use crate::dispatch::Request;
use crate::state::State;

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: DeleteTopicsRequest = request.decode(state, body)?;
    let wanted: Vec<(Option<String>, Uuid)> = if request.version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.as_str().to_owned()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.as_str().to_owned()), Uuid::ZERO))
            .collect()
    };
    let mut response = DeleteTopicsResponse::default();
    for (name, id) in wanted {
        let mut result = DeletableTopicResult::default();
        result.name = name.as_deref().map(StrBytes::from);
        result.topic_id = id;
        let image = state.controller.image();
        let resolved = match (&name, id.is_zero()) {
            (Some(n), true) => image
                .topic(n)
                .map(|t| (t.name.clone(), t.topic_id))
                .ok_or(ErrorCode::UnknownTopicOrPartition),
            (None, false) => image
                .topic_by_id(&topic_id(&id))
                .map(|t| (t.name.clone(), t.topic_id))
                .ok_or(ErrorCode::UnknownTopicId),
            _ => Err(ErrorCode::InvalidRequest),
        };
        match resolved {
            Ok((n, tid)) => {
                result.name = Some(StrBytes::from(n.as_str()));
                result.topic_id = wire_uuid(&tid);
                if let Err(e) = admin::delete_topic(state, &n) {
                    result.error_code = e.code.code();
                    result.error_message = Some(StrBytes::from(e.message));
                }
            }
            Err(code) => result.error_code = code.code(),
        }
        response.responses.push(result);
    }
    Ok(request.respond(&response))
}
