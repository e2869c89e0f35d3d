//! CreatePartitions (key 37): grow a topic.

use bytes::Bytes;
use strom_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use strom_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, StrBytes};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::admin::{self, AdminError};
use crate::dispatch::Request;
use crate::state::State;

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: CreatePartitionsRequest = request.decode(state, body)?;
    let mut response = CreatePartitionsResponse::default();
    for topic in &req.topics {
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name.clone();
        let outcome = (|| -> Result<(), AdminError> {
            let image = state.controller.image();
            let current = image
                .topic(topic.name.as_str())
                .map(|t| t.partitions.len() as i32)
                .ok_or_else(|| {
                    AdminError::new(
                        ErrorCode::UnknownTopicOrPartition,
                        format!("topic {} does not exist", topic.name),
                    )
                })?;
            if let Some(assignments) = &topic.assignments {
                let added = topic.count - current;
                if added > 0 && assignments.len() as i32 != added {
                    return Err(AdminError::new(
                        ErrorCode::InvalidReplicaAssignment,
                        format!("increasing the number of partitions by {added} but {} assignments provided", assignments.len()),
                    ));
                }
                if assignments
                    .iter()
                    .flat_map(|a| &a.broker_ids)
                    .any(|b| !image.brokers.contains_key(b))
                {
                    return Err(AdminError::new(
                        ErrorCode::InvalidReplicaAssignment,
                        "assignment names an unknown broker",
                    ));
                }
            }
            state.controller.create_partitions(
                topic.name.as_str(),
                topic.count,
                req.validate_only,
            )?;
            if !req.validate_only {
                admin::reconcile(state)?;
            }
            Ok(())
        })();
        if let Err(e) = outcome {
            result.error_code = e.code.code();
            result.error_message = Some(StrBytes::from(e.message));
        }
        response.results.push(result);
    }
    Ok(request.respond(&response))
}
