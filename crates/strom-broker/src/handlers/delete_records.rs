//! DeleteRecords (key 21): move a partition's log start offset forward.

use bytes::Bytes;
use strom_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use strom_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::state::State;

/// "Delete up to the high watermark".
const TO_HIGH_WATERMARK: i64 = -1;

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: DeleteRecordsRequest = request.decode(state, body)?;
    let mut response = DeleteRecordsResponse::default();
    for topic in &req.topics {
        let mut out = DeleteRecordsTopicResult::default();
        out.name = topic.name.clone();
        for p in &topic.partitions {
            let mut r = DeleteRecordsPartitionResult::default();
            r.partition_index = p.partition_index;
            r.low_watermark = -1;
            match state.replicas.get(topic.name.as_str(), p.partition_index) {
                None => r.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                Some(partition) => {
                    let hw = partition.high_watermark();
                    let target = if p.offset == TO_HIGH_WATERMARK {
                        hw
                    } else {
                        p.offset
                    };
                    if target < 0 || target > hw {
                        r.error_code = ErrorCode::OffsetOutOfRange.code();
                    } else {
                        match partition.with_log_mut(|log| log.delete_records_before(target)) {
                            Ok(low) => r.low_watermark = low,
                            Err(e) => {
                                tracing::error!(error = %e, "delete records failed");
                                r.error_code = ErrorCode::KafkaStorageError.code();
                            }
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
