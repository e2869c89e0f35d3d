//! OffsetDelete (key 47): remove committed offsets of partitions a group no
//! longer consumes.

use bytes::Bytes;
use strom_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use strom_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::group::records::OffsetsKey;
use crate::state::State;

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: OffsetDeleteRequest = request.decode(state, body)?;
    let group_id = req.group_id.as_str().to_owned();
    let coordinator = &state.groups;
    let mut groups = coordinator.lock().await;
    let mut response = OffsetDeleteResponse::default();
    let Some(entry) = groups.groups.get_mut(&group_id) else {
        response.error_code = if group_id.is_empty() {
            ErrorCode::InvalidGroupId
        } else {
            ErrorCode::GroupIdNotFound
        }
        .code();
        return Ok(request.respond(&response));
    };
    if let Err(code) = entry.classic.validate_offset_delete() {
        response.error_code = code.code();
        return Ok(request.respond(&response));
    }
    let mut records = Vec::new();
    let mut deleted = Vec::new();
    for topic in &req.topics {
        let name = topic.name.as_str();
        let mut out = OffsetDeleteResponseTopic::default();
        out.name = topic.name.clone();
        for p in &topic.partitions {
            let mut r = OffsetDeleteResponsePartition::default();
            r.partition_index = p.partition_index;
            // A group whose members still subscribe to a topic keeps its offsets (Kafka's rule).
            if entry.classic.is_subscribed_to_topic(name) {
                r.error_code = ErrorCode::GroupSubscribedToTopic.code();
            } else if entry
                .offsets
                .contains_key(&(name.to_owned(), p.partition_index))
            {
                records.push((
                    OffsetsKey::Offset {
                        group: group_id.clone(),
                        topic: name.to_owned(),
                        partition: p.partition_index,
                    }
                    .encode(),
                    None,
                ));
                deleted.push((name.to_owned(), p.partition_index));
            }
            out.partitions.push(r);
        }
        response.topics.push(out);
    }
    if !records.is_empty() {
        if let Err(code) = coordinator.append(state, &group_id, records).await {
            response.error_code = code.code();
            return Ok(request.respond(&response));
        }
        if let Some(entry) = groups.groups.get_mut(&group_id) {
            for key in deleted {
                entry.offsets.remove(&key);
            }
        }
    }
    Ok(request.respond(&response))
}
