//! Produce (key 0): append one record batch per partition; answer per `acks`.

use bytes::Bytes;
use strom_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use strom_protocol::messages::{ProduceRequest, ProduceResponse, StrBytes};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::{Outcome, Request};
use crate::state::{now_ms, State};

fn failed(index: i32, code: ErrorCode, message: Option<String>) -> PartitionProduceResponse {
    let mut p = PartitionProduceResponse::default();
    p.index = index;
    p.error_code = code.code();
    p.base_offset = -1;
    p.error_message = message.map(StrBytes::from);
    if code == ErrorCode::InvalidRecord {
        // Kafka names the offending batch: always the only one, index 0.
        let mut e = BatchIndexAndErrorMessage::default();
        e.batch_index = 0;
        e.batch_index_error_message = p.error_message.clone();
        p.record_errors = vec![e];
    }
    p
}

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let mut req: ProduceRequest = request.decode(state, body)?;
    let acks = req.acks;
    let acks_valid = matches!(acks, -1..=1);
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut appended_any = false;
    for topic in &mut req.topic_data {
        let name = topic.name.as_str().to_owned();
        let mut out = TopicProduceResponse::default();
        out.name = topic.name.clone();
        for partition in &mut topic.partition_data {
            let index = partition.index;
            let response = if !acks_valid {
                failed(index, ErrorCode::InvalidRequiredAcks, None)
            } else if req.transactional_id.is_some() {
                // Transactions are not served yet, and ApiVersions does not advertise them.
                failed(
                    index,
                    ErrorCode::TransactionalIdAuthorizationFailed,
                    Some("transactions are not supported".into()),
                )
            } else {
                match state.replicas.get(&name, index) {
                    None => failed(index, ErrorCode::UnknownTopicOrPartition, None),
                    Some(p) => {
                        let records = partition.records.take().unwrap_or_default();
                        match p.append(&records, now_ms()).await {
                            Ok(a) => {
                                appended_any = true;
                                let mut r = PartitionProduceResponse::default();
                                r.index = index;
                                r.base_offset = a.base_offset;
                                r.log_append_time_ms = a.log_append_time_ms;
                                r.log_start_offset = a.log_start_offset;
                                r
                            }
                            Err(e) => {
                                tracing::debug!(topic = %name, partition = index, code = ?e.code, message = %e.message, "produce rejected");
                                failed(index, e.code, Some(e.message))
                            }
                        }
                    }
                }
            };
            out.partition_responses.push(response);
        }
        responses.push(out);
    }
    if appended_any {
        state.notify_data();
    }
    if acks == 0 {
        return Ok(Outcome::NoResponse);
    }
    let mut response = ProduceResponse::default();
    response.responses = responses;
    Ok(request.respond(&response))
}
