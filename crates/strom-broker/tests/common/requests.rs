//! Request builders shared by the integration tests.
#![allow(dead_code)]

use bytes::Bytes;
use strom_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use strom_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use strom_protocol::messages::*;

use std::time::{Duration, Instant};

use strom_protocol::ErrorCode;

use super::{Client, TIMEOUT};

pub async fn create_topic(
    client: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> CreateTopicsResponse {
    let mut topic = CreatableTopic::default();
    topic.name = StrBytes::from(name);
    topic.num_partitions = partitions;
    topic.replication_factor = 1;
    topic.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut c = CreatableTopicConfig::default();
            c.name = StrBytes::from(*k);
            c.value = Some(StrBytes::from(*v));
            c
        })
        .collect();
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![topic];
    req.timeout_ms = 10_000;
    client.call(&req, 7).await
}

pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(records);
    let mut t = TopicProduceData::default();
    t.name = StrBytes::from(topic);
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 10_000;
    req.topic_data = vec![t];
    req
}

/// Produces and returns (error code, base offset).
pub async fn produce(
    client: &mut Client,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> (i16, i64) {
    let resp: ProduceResponse = client
        .call(&produce_request(topic, partition, records, -1), 9)
        .await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

pub fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    let mut p = FetchPartition::default();
    p.partition = partition;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    p.current_leader_epoch = -1;
    let mut t = FetchTopic::default();
    t.topic = StrBytes::from(topic);
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.replica_id = -1;
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = 1;
    req.max_bytes = 50 << 20;
    req.topics = vec![t];
    req
}

/// Fetches (v12, by name) and returns the partition's data.
pub async fn fetch(
    client: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
) -> fetch_response::PartitionData {
    let resp: FetchResponse = client
        .call(&fetch_request(topic, partition, offset, max_wait_ms), 12)
        .await;
    assert_eq!(resp.error_code, 0);
    resp.responses[0].partitions[0].clone()
}

pub async fn metadata(
    client: &mut Client,
    topics: Option<&[&str]>,
    allow_create: bool,
) -> MetadataResponse {
    let mut req = MetadataRequest::default();
    req.topics = topics.map(|t| {
        t.iter()
            .map(|n| {
                let mut m = metadata_request::MetadataRequestTopic::default();
                m.name = Some(StrBytes::from(*n));
                m
            })
            .collect()
    });
    req.allow_auto_topic_creation = allow_create;
    client.call(&req, 12).await
}

/// The error code as an `ErrorCode` (an unknown code fails the test).
pub fn code(c: i16) -> ErrorCode {
    ErrorCode::from_code(c).unwrap_or_else(|| panic!("unknown error code {c}"))
}

/// InitProducerId for a transactional id, retried while the coordinator is busy.
pub async fn init_transactional(client: &mut Client, id: &str, timeout_ms: i32) -> (i64, i16) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut req = InitProducerIdRequest::default();
        req.transactional_id = Some(StrBytes::from(id.to_owned()));
        req.transaction_timeout_ms = timeout_ms;
        req.producer_id = -1;
        req.producer_epoch = -1;
        let resp: InitProducerIdResponse = client.call(&req, 4).await;
        match code(resp.error_code) {
            ErrorCode::None => return (resp.producer_id, resp.producer_epoch),
            ErrorCode::ConcurrentTransactions | ErrorCode::CoordinatorLoadInProgress
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("InitProducerId failed: {other:?}"),
        }
    }
}
