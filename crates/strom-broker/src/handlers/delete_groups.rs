//! DeleteGroups (key 42): remove empty groups and their offsets, committed
//! and pending in open transactions.

use bytes::Bytes;
use strom_protocol::messages::delete_groups_response::DeletableGroupResult;
use strom_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::group::coordinator::GroupCoordinator;
use crate::group::records::OffsetsKey;
use crate::state::State;

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: DeleteGroupsRequest = request.decode(state, body)?;
    let coordinator = &state.groups;
    let mut groups = coordinator.lock().await;
    let mut response = DeleteGroupsResponse::default();
    for id in &req.groups_names {
        let group_id = id.as_str().to_owned();
        let mut result = DeletableGroupResult::default();
        result.group_id = id.clone();
        let code = match groups.groups.get_mut(&group_id) {
            None if group_id.is_empty() => ErrorCode::InvalidGroupId,
            None => ErrorCode::GroupIdNotFound,
            // A KIP-848 group with members cannot be deleted (Kafka's
            // `ConsumerGroup.validateDeleteGroup`).
            Some(entry) if entry.consumer.as_ref().is_some_and(|c| !c.is_empty()) => {
                ErrorCode::NonEmptyGroup
            }
            Some(entry) => match entry.classic.remove_all_members_for_deletion() {
                Err(code) => code,
                Ok(()) => {
                    // Tombstones for every committed offset and for every
                    // partition only an open transaction holds an offset for:
                    // they delete those pending offsets too, so the
                    // transaction's commit marker later finds nothing to
                    // apply (Kafka's `deleteAllOffsets`).
                    let pending_only: Vec<_> = entry
                        .offsets
                        .pending_keys()
                        .filter(|k| !entry.offsets.has_committed(k))
                        .collect();
                    let mut records: Vec<_> = entry
                        .offsets
                        .keys()
                        .chain(pending_only)
                        .map(|(topic, partition)| {
                            (
                                OffsetsKey::Offset {
                                    group: group_id.clone(),
                                    topic: topic.clone(),
                                    partition: *partition,
                                }
                                .encode(),
                                None,
                            )
                        })
                        .collect();
                    records.push((
                        OffsetsKey::Group {
                            group: group_id.clone(),
                        }
                        .encode(),
                        None,
                    ));
                    records.extend(GroupCoordinator::consumer_tombstones(&group_id, entry));
                    match coordinator.append(state, &group_id, records).await {
                        Ok(()) => {
                            groups.groups.remove(&group_id);
                            ErrorCode::None
                        }
                        Err(code) => code,
                    }
                }
            },
        };
        result.error_code = code.code();
        response.results.push(result);
    }
    Ok(request.respond(&response))
}
