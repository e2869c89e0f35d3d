//! ListOffsets (key 2): earliest, latest, by timestamp, max timestamp.

use bytes::Bytes;
use strom_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use strom_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::state::State;

/// Special timestamps of ListOffsets.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: ListOffsetsRequest = request.decode(state, body)?;
    let read_committed = req.isolation_level == 1;
    let mut response = ListOffsetsResponse::default();
    for topic in &req.topics {
        let mut out = ListOffsetsTopicResponse::default();
        out.name = topic.name.clone();
        let mut seen = std::collections::HashSet::new();
        for p in &topic.partitions {
            let mut r = ListOffsetsPartitionResponse::default();
            r.partition_index = p.partition_index;
            r.timestamp = -1;
            r.offset = -1;
            if !seen.insert(p.partition_index) {
                r.error_code = ErrorCode::InvalidRequest.code();
                out.partitions.push(r);
                continue;
            }
            let Some(partition) = state.replicas.get(topic.name.as_str(), p.partition_index) else {
                r.error_code = ErrorCode::UnknownTopicOrPartition.code();
                out.partitions.push(r);
                continue;
            };
            if let Err(code) = partition.check_leader_epoch(p.current_leader_epoch) {
                r.error_code = code.code();
                out.partitions.push(r);
                continue;
            }
            if request.version >= 4 {
                r.leader_epoch = partition.leader_epoch();
            }
            match p.timestamp {
                LATEST => {
                    r.offset = if read_committed {
                        partition.last_stable_offset()
                    } else {
                        partition.high_watermark()
                    };
                }
                EARLIEST | EARLIEST_LOCAL => r.offset = partition.log_start_offset(),
                MAX_TIMESTAMP => {
                    let hw = partition.high_watermark();
                    if let Some((offset, ts)) = partition
                        .with_log(|log| log.max_timestamp())
                        .filter(|(o, _)| *o < hw)
                    {
                        r.offset = offset;
                        r.timestamp = ts;
                    }
                }
                ts if ts < 0 => r.error_code = ErrorCode::InvalidRequest.code(),
                ts => {
                    let bound = if read_committed {
                        partition.last_stable_offset()
                    } else {
                        partition.high_watermark()
                    };
                    match partition.with_log(|log| log.offset_for_timestamp(ts)) {
                        Ok(Some((offset, found_ts))) if offset < bound => {
                            r.offset = offset;
                            r.timestamp = found_ts;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "offset lookup by timestamp failed");
                            r.error_code = ErrorCode::KafkaStorageError.code();
                        }
                    }
                }
            }
            out.partitions.push(r);
        }
        response.topics.push(out);
    }
    Ok(request.respond(&response))
}
