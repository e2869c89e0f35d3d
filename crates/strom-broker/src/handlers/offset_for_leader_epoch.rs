//! OffsetForLeaderEpoch (key 23): the end offset of a leader epoch, used by
//! consumers to detect log truncation (KIP-320) and by followers (KIP-101/279).

use bytes::Bytes;
use strom_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use strom_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::state::State;

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: OffsetForLeaderEpochRequest = request.decode(state, body)?;
    let mut response = OffsetForLeaderEpochResponse::default();
    for topic in &req.topics {
        let mut out = OffsetForLeaderTopicResult::default();
        out.topic = topic.topic.clone();
        for p in &topic.partitions {
            let mut r = EpochEndOffset::default();
            r.partition = p.partition;
            r.leader_epoch = -1;
            r.end_offset = -1;
            match state.replicas.get(topic.topic.as_str(), p.partition) {
                None => r.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                Some(partition) => match partition.check_leader_epoch(p.current_leader_epoch) {
                    Err(code) => r.error_code = code.code(),
                    Ok(()) => {
                        let leo = partition.log_end_offset();
                        let found = partition.with_log(|log| log.epoch_end_offset(p.leader_epoch));
                        if let Some((epoch, end)) = found {
                            r.leader_epoch = epoch;
                            // The leader answers for its current epoch with its log end offset.
                            r.end_offset = if epoch == partition.leader_epoch() {
                                leo
                            } else {
                                end
                            };
                        } else if p.leader_epoch == partition.leader_epoch() {
                            r.leader_epoch = p.leader_epoch;
                            r.end_offset = leo;
                        }
                    }
                },
            }
            out.partitions.push(r);
        }
        response.topics.push(out);
    }
    Ok(request.respond(&response))
}
