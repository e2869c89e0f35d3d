//! DescribeProducers (key 61): the producers a partition's log tracks — id,
//! epoch, last sequence and timestamp, the coordinator epoch of their last
//! marker and where their open transaction starts (`kafka-transactions.sh
//! describe-producers`, used to find hanging transactions).

use bytes::Bytes;
use strom_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use strom_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, StrBytes};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::state::State;

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: DescribeProducersRequest = request.decode(state, body)?;
    let image = state.controller.image();
    let mut response = DescribeProducersResponse::default();
    for topic in &req.topics {
        let mut t = TopicResponse::default();
        t.name = topic.name.clone();
        let known = image.topic(topic.name.as_str());
        for &index in &topic.partition_indexes {
            let mut p = PartitionResponse::default();
            p.partition_index = index;
            match state.replicas.get(topic.name.as_str(), index) {
                Some(partition) => {
                    p.active_producers = partition.with_log(|log| {
                        log.producer_states()
                            .into_iter()
                            .map(|e| {
                                let mut s = ProducerState::default();
                                s.producer_id = e.producer_id;
                                s.producer_epoch = i32::from(e.producer_epoch);
                                s.last_sequence = e.last_seq();
                                s.last_timestamp = e.last_timestamp;
                                s.coordinator_epoch = e.coordinator_epoch;
                                s.current_txn_start_offset =
                                    e.current_txn_first_offset.unwrap_or(-1);
                                s
                            })
                            .collect()
                    });
                }
                None => {
                    let exists =
                        known.is_some_and(|k| index >= 0 && (index as usize) < k.partitions.len());
                    let code = if exists {
                        ErrorCode::NotLeaderOrFollower
                    } else {
                        ErrorCode::UnknownTopicOrPartition
                    };
                    p.error_code = code.code();
                    p.error_message = Some(StrBytes::from(code.to_string()));
                }
            }
            t.partitions.push(p);
        }
        response.topics.push(t);
    }
    Ok(request.respond(&response))
}
