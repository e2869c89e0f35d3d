//! CreateTopics (key 19).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use strom_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use strom_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, StrBytes};
use strom_protocol::ErrorCode;

use super::describe_configs::topic_config_entries;
use super::metadata::wire_uuid;
use super::HandlerResult;
use crate::admin::{self, AdminError};
use crate::dispatch::Request;
use crate::state::State;

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: CreateTopicsRequest = request.decode(state, body)?;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &req.topics {
        *counts.entry(t.name.as_str()).or_default() += 1;
    }
    let mut response = CreateTopicsResponse::default();
    for topic in &req.topics {
        let name = topic.name.as_str();
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        let outcome = (|| -> Result<_, AdminError> {
            if counts[name] > 1 {
                return Err(AdminError::new(
                    ErrorCode::InvalidRequest,
                    format!("Create topics request from client contains duplicate topic {name}"),
                ));
            }
            let mut configs = BTreeMap::new();
            for c in &topic.configs {
                let value = c.value.as_ref().ok_or_else(|| {
                    AdminError::new(
                        ErrorCode::InvalidConfig,
                        format!("Null value not supported for topic configs: {}", c.name),
                    )
                })?;
                configs.insert(c.name.as_str().to_owned(), value.as_str().to_owned());
            }
            let (partitions, replication_factor) = if topic.assignments.is_empty() {
                let partitions = if topic.num_partitions == -1 {
                    state.config.num_partitions
                } else {
                    topic.num_partitions
                };
                let rf = if topic.replication_factor == -1 {
                    state.config.default_replication_factor
                } else {
                    topic.replication_factor
                };
                (partitions, rf)
            } else {
                if topic.num_partitions != -1 || topic.replication_factor != -1 {
                    return Err(AdminError::new(
                        ErrorCode::InvalidRequest,
                        "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
                    ));
                }
                let image = state.controller.image();
                let rf = topic.assignments[0].broker_ids.len();
                for (i, a) in topic.assignments.iter().enumerate() {
                    if a.partition_index != i as i32
                        || a.broker_ids.len() != rf
                        || a.broker_ids.is_empty()
                        || a.broker_ids.iter().any(|b| !image.brokers.contains_key(b))
                    {
                        return Err(AdminError::new(ErrorCode::InvalidReplicaAssignment, "replica assignment must name live brokers, partitions 0..n, equal replica counts"));
                    }
                }
                (topic.assignments.len() as i32, rf as i16)
            };
            admin::create_topic(
                state,
                name,
                partitions,
                replication_factor,
                configs.clone(),
                req.validate_only,
            )
            .map(|t| (t, partitions, replication_factor, configs))
        })();
        match outcome {
            Ok((created, partitions, rf, _)) => {
                result.topic_id = wire_uuid(&created.topic_id);
                result.num_partitions = partitions;
                result.replication_factor = rf;
                let image = state.controller.image();
                let entries = topic_config_entries(state, &image, name, None, false, false);
                result.configs = Some(
                    entries
                        .into_iter()
                        .map(|e| {
                            let mut c = CreatableTopicConfigs::default();
                            c.name = e.name;
                            c.value = e.value;
                            c.read_only = e.read_only;
                            c.config_source = e.config_source;
                            c.is_sensitive = e.is_sensitive;
                            c
                        })
                        .collect(),
                );
            }
            Err(e) => {
                result.error_code = e.code.code();
                result.error_message = Some(StrBytes::from(e.message));
                result.num_partitions = -1;
                result.replication_factor = -1;
            }
        }
        response.topics.push(result);
    }
    Ok(request.respond(&response))
}
