//! DescribeConfigs (key 32): topic and broker configs with values, sources,
//! synonyms, types and documentation.

use bytes::Bytes;
use strom_controller::{ClusterImage, ConfigResource};
use strom_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use strom_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, StrBytes};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::config::defs::{broker_def, ConfigDef, BROKER_CONFIGS, TOPIC_CONFIGS};
use crate::config::topic::{resolve_broker, resolve_topic, ConfigSource};
use crate::dispatch::Request;
use crate::state::State;

/// Resource type codes shared by the config APIs.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

fn entry(
    def: &ConfigDef,
    name: &str,
    value: String,
    source: ConfigSource,
    read_only: bool,
    synonyms: Vec<DescribeConfigsSynonym>,
    docs: bool,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default();
    e.name = StrBytes::from(name);
    e.value = if value.is_empty() && def.default.is_empty() {
        None
    } else {
        Some(StrBytes::from(value))
    };
    e.read_only = read_only;
    e.config_source = source as i8;
    e.is_sensitive = false;
    e.synonyms = synonyms;
    e.config_type = def.kind as i8;
    e.documentation = docs.then(|| StrBytes::from(def.doc));
    e
}

fn synonym(name: &str, value: &str, source: ConfigSource) -> DescribeConfigsSynonym {
    let mut s = DescribeConfigsSynonym::default();
    s.name = StrBytes::from(name);
    s.value = Some(StrBytes::from(value));
    s.source = source as i8;
    s
}

/// Every value a broker property has at each level, most specific first.
fn broker_synonyms(
    state: &State,
    image: &ClusterImage,
    name: &str,
    default: &str,
) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    if let Some(v) = image
        .configs
        .get(&ConfigResource::Broker(Some(state.config.node_id)))
        .and_then(|m| m.get(name))
    {
        out.push(synonym(name, v, ConfigSource::DynamicBrokerConfig));
    }
    if let Some(v) = image
        .configs
        .get(&ConfigResource::Broker(None))
        .and_then(|m| m.get(name))
    {
        out.push(synonym(name, v, ConfigSource::DynamicDefaultBrokerConfig));
    }
    if let Some(v) = state.config.explicit.get(name) {
        out.push(synonym(name, v, ConfigSource::StaticBrokerConfig));
    }
    if !default.is_empty() {
        out.push(synonym(name, default, ConfigSource::DefaultConfig));
    }
    out
}

/// The configs of a topic, optionally filtered by `keys`.
pub fn topic_config_entries(
    state: &State,
    image: &ClusterImage,
    topic: &str,
    keys: Option<&[StrBytes]>,
    synonyms: bool,
    docs: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let overrides = image.topic_configs(topic);
    TOPIC_CONFIGS
        .iter()
        .filter(|d| keys.is_none_or(|k| k.iter().any(|k| k.as_str() == d.name)))
        .map(|d| {
            let resolved = resolve_topic(d, &overrides, &state.config, image);
            let mut syn = Vec::new();
            if synonyms {
                if let Some(v) = overrides.get(d.name) {
                    syn.push(synonym(d.name, v, ConfigSource::TopicConfig));
                }
                match d.broker_synonym {
                    Some(b) => syn.extend(broker_synonyms(state, image, b, d.default)),
                    None => syn.push(synonym(d.name, d.default, ConfigSource::DefaultConfig)),
                }
            }
            entry(d, d.name, resolved.value, resolved.source, false, syn, docs)
        })
        .collect()
}

fn broker_config_entries(
    state: &State,
    image: &ClusterImage,
    keys: Option<&[StrBytes]>,
    synonyms: bool,
    docs: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let names = BROKER_CONFIGS
        .iter()
        .map(|d| d.name)
        .chain(TOPIC_CONFIGS.iter().filter_map(|d| d.broker_synonym));
    let mut seen = std::collections::BTreeSet::new();
    names
        .filter(|n| seen.insert(*n))
        .filter(|n| keys.is_none_or(|k| k.iter().any(|k| k.as_str() == *n)))
        .filter_map(|name| {
            let def = broker_def(name)?;
            let value = if name == "log.retention.ms" || name == "log.roll.ms" {
                state
                    .config
                    .static_value(name)
                    .unwrap_or_else(|| def.default.to_owned())
            } else {
                def.default.to_owned()
            };
            let resolved = resolve_broker(name, &value, &state.config, image);
            let dynamic = TOPIC_CONFIGS.iter().any(|d| d.broker_synonym == Some(name));
            let syn = if synonyms {
                broker_synonyms(state, image, name, def.default)
            } else {
                Vec::new()
            };
            Some(entry(
                &def,
                name,
                resolved.value,
                resolved.source,
                !dynamic,
                syn,
                docs,
            ))
        })
        .collect()
}

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: DescribeConfigsRequest = request.decode(state, body)?;
    let image = state.controller.image();
    let mut response = DescribeConfigsResponse::default();
    for resource in &req.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let keys = resource.configuration_keys.as_deref();
        let name = resource.resource_name.as_str();
        match resource.resource_type {
            RESOURCE_TOPIC => {
                if image.topic(name).is_some() {
                    result.configs = topic_config_entries(
                        state,
                        &image,
                        name,
                        keys,
                        req.include_synonyms,
                        req.include_documentation,
                    );
                } else {
                    result.error_code = ErrorCode::UnknownTopicOrPartition.code();
                    result.error_message =
                        Some(StrBytes::from(format!("Topic {name} does not exist")));
                }
            }
            RESOURCE_BROKER => {
                if name.is_empty() {
                    // The cluster-wide default resource lists only what was set dynamically.
                    let defaults = image
                        .configs
                        .get(&ConfigResource::Broker(None))
                        .cloned()
                        .unwrap_or_default();
                    result.configs = defaults
                        .iter()
                        .filter(|(n, _)| {
                            keys.is_none_or(|k| k.iter().any(|k| k.as_str() == n.as_str()))
                        })
                        .filter_map(|(n, v)| {
                            let def = broker_def(n)?;
                            Some(entry(
                                &def,
                                n,
                                v.clone(),
                                ConfigSource::DynamicDefaultBrokerConfig,
                                false,
                                Vec::new(),
                                req.include_documentation,
                            ))
                        })
                        .collect();
                } else if name == state.config.node_id.to_string() {
                    result.configs = broker_config_entries(
                        state,
                        &image,
                        keys,
                        req.include_synonyms,
                        req.include_documentation,
                    );
                } else {
                    result.error_code = ErrorCode::InvalidRequest.code();
                    result.error_message = Some(StrBytes::from(format!(
                        "Unexpected broker id, expected {} but received {name}",
                        state.config.node_id
                    )));
                }
            }
            other => {
                result.error_code = ErrorCode::InvalidRequest.code();
                result.error_message =
                    Some(StrBytes::from(format!("Unsupported resource type {other}")));
            }
        }
        response.results.push(result);
    }
    Ok(request.respond(&response))
}
