//! Metadata (key 3): brokers, topics, partitions and leaders; creates unknown
//! topics when `auto.create.topics.enable` and the client allow it.

use bytes::Bytes;
use strom_controller::{ClusterImage, TopicImage};
use strom_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use strom_protocol::messages::{MetadataRequest, MetadataResponse, StrBytes, Uuid};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::admin;
use crate::dispatch::Request;
use crate::state::State;

/// The wire form of a topic id.
pub fn wire_uuid(id: &strom_controller::TopicId) -> Uuid {
    Uuid::from_bytes(id.0)
}

/// The controller's form of a wire topic id.
pub fn topic_id(id: &Uuid) -> strom_controller::TopicId {
    strom_controller::TopicId(id.to_bytes())
}

fn describe(topic: &TopicImage) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(StrBytes::from(topic.name.as_str()));
    t.topic_id = wire_uuid(&topic.topic_id);
    t.is_internal = topic.is_internal();
    t.partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let mut out = MetadataResponsePartition::default();
            out.partition_index = p.partition;
            out.leader_id = p.leader;
            out.leader_epoch = p.leader_epoch;
            out.replica_nodes = p.replicas.clone();
            out.isr_nodes = p.isr.clone();
            out
        })
        .collect();
    t
}

fn error_topic(name: Option<&str>, id: Uuid, code: ErrorCode) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = name.map(StrBytes::from);
    t.topic_id = id;
    t.error_code = code.code();
    t
}

fn brokers(image: &ClusterImage) -> Vec<MetadataResponseBroker> {
    image
        .brokers
        .values()
        .map(|b| {
            let mut out = MetadataResponseBroker::default();
            out.node_id = b.node_id;
            out.host = StrBytes::from(b.host.as_str());
            out.port = b.port;
            out.rack = b.rack.as_deref().map(StrBytes::from);
            out
        })
        .collect()
}

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: MetadataRequest = request.decode(state, body)?;
    // Before v4 clients could not opt out of auto-creation.
    let client_allows_create = request.version < 4 || req.allow_auto_topic_creation;
    let mut topics = Vec::new();
    let all_topics = match &req.topics {
        None => true,
        // In v0 an empty list meant "all topics".
        Some(list) => list.is_empty() && request.version == 0,
    };
    if all_topics {
        let image = state.controller.image();
        topics.extend(image.topics.values().map(|t| describe(t)));
    } else {
        for wanted in req.topics.iter().flatten() {
            let image = state.controller.image();
            let topic = match &wanted.name {
                Some(name) => {
                    let name = name.as_str();
                    match image.topic(name) {
                        Some(t) => describe(t),
                        None if client_allows_create && state.config.auto_create_topics => {
                            match admin::auto_create_topic(state, name) {
                                Ok(t) => describe(&t),
                                Err(e) => error_topic(Some(name), Uuid::ZERO, e.code),
                            }
                        }
                        None => {
                            error_topic(Some(name), Uuid::ZERO, ErrorCode::UnknownTopicOrPartition)
                        }
                    }
                }
                None => match image.topic_by_id(&topic_id(&wanted.topic_id)) {
                    Some(t) => describe(t),
                    // The name became nullable only in v12.
                    None if request.version < 12 => {
                        error_topic(Some(""), wanted.topic_id, ErrorCode::UnknownTopicId)
                    }
                    None => error_topic(None, wanted.topic_id, ErrorCode::UnknownTopicId),
                },
            };
            topics.push(topic);
        }
    }
    let image = state.controller.image();
    let mut response = MetadataResponse::default();
    response.brokers = brokers(&image);
    response.cluster_id = Some(StrBytes::from(image.cluster_id.as_str()));
    response.controller_id = image.controller_id;
    response.topics = topics;
    Ok(request.respond(&response))
}
