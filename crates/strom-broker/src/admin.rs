//! Topic administration shared by handlers: create (explicit and automatic),
//! delete, grow, and config changes, each followed by reconciling the hosted
//! partitions with the new metadata image.

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_controller::{ConfigOp, ConfigResource, ControllerError, CreateTopic, TopicImage};
use strom_protocol::ErrorCode;

use crate::config::defs::{broker_def, topic_def, validate};
use crate::handlers::controller_error_code;
use crate::state::State;

/// An admin failure: a Kafka code and the message clients show.
#[derive(Debug, Clone)]
pub struct AdminError {
    pub code: ErrorCode,
    pub message: String,
}

impl AdminError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AdminError {
            code,
            message: message.into(),
        }
    }
}

impl From<ControllerError> for AdminError {
    fn from(e: ControllerError) -> Self {
        AdminError::new(controller_error_code(&e), e.to_string())
    }
}

/// Checks topic configs by name and value (INVALID_CONFIG on failure).
pub fn validate_topic_configs<'a>(
    configs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<(), AdminError> {
    for (name, value) in configs {
        let def = topic_def(name).ok_or_else(|| {
            AdminError::new(
                ErrorCode::InvalidConfig,
                format!("Unknown topic config name: {name}"),
            )
        })?;
        if let Some(value) = value {
            validate(def, value).map_err(|m| AdminError::new(ErrorCode::InvalidConfig, m))?;
        }
    }
    Ok(())
}

/// Re-reads the image into the hosted partitions.
pub fn reconcile(state: &State) -> Result<(), AdminError> {
    state
        .replicas
        .reconcile(&state.controller.image(), &state.config)
        .map_err(|e| AdminError::new(ErrorCode::KafkaStorageError, e.to_string()))
}

/// Creates a topic (validating its configs first) and opens its partitions.
pub fn create_topic(
    state: &State,
    name: &str,
    num_partitions: i32,
    replication_factor: i16,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<Arc<TopicImage>, AdminError> {
    validate_topic_configs(configs.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))))?;
    let request = CreateTopic {
        name: name.to_owned(),
        num_partitions,
        replication_factor,
        configs,
    };
    let topic = state.controller.create_topic(request, validate_only)?;
    if !validate_only {
        tracing::info!(topic = name, partitions = num_partitions, "created topic");
        reconcile(state)?;
    }
    Ok(topic)
}

/// Creates a topic with the broker's defaults, as `auto.create.topics.enable` does.
pub fn auto_create_topic(state: &State, name: &str) -> Result<Arc<TopicImage>, AdminError> {
    match create_topic(
        state,
        name,
        state.config.num_partitions,
        state.config.default_replication_factor,
        BTreeMap::new(),
        false,
    ) {
        // Another connection created it first: fine.
        Err(e) if e.code == ErrorCode::TopicAlreadyExists => state
            .controller
            .image()
            .topic(name)
            .cloned()
            .ok_or_else(|| AdminError::new(ErrorCode::UnknownTopicOrPartition, "topic vanished")),
        other => other,
    }
}

/// Deletes a topic and its data.
pub fn delete_topic(state: &State, name: &str) -> Result<(), AdminError> {
    if !state.config.delete_topic_enable {
        return Err(AdminError::new(
            ErrorCode::TopicDeletionDisabled,
            "delete.topic.enable is false",
        ));
    }
    state.controller.delete_topic(name)?;
    tracing::info!(topic = name, "deleted topic");
    reconcile(state)
}

/// Broker configs that can change at runtime: the topic-default ones (`log.*`
/// and friends), as in Kafka's cluster-wide dynamic configs.
fn dynamic_broker_config(name: &str) -> bool {
    crate::config::defs::TOPIC_CONFIGS
        .iter()
        .any(|d| d.broker_synonym == Some(name))
}

/// Applies config changes to one resource after validating every one of them.
pub fn alter_configs(
    state: &State,
    resource: ConfigResource,
    ops: Vec<ConfigOp>,
    validate_only: bool,
) -> Result<(), AdminError> {
    match &resource {
        ConfigResource::Topic(topic) => {
            if state.controller.image().topic(topic).is_none() {
                return Err(AdminError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("topic {topic} does not exist"),
                ));
            }
            validate_topic_configs(ops.iter().map(|op| match op {
                ConfigOp::Set(n, v) => (n.as_str(), Some(v.as_str())),
                ConfigOp::Delete(n) => (n.as_str(), None),
            }))?;
        }
        ConfigResource::Broker(_) => {
            for op in &ops {
                let (ConfigOp::Set(name, _) | ConfigOp::Delete(name)) = op;
                let def = broker_def(name).ok_or_else(|| {
                    AdminError::new(
                        ErrorCode::InvalidConfig,
                        format!("Unknown broker config: {name}"),
                    )
                })?;
                if !dynamic_broker_config(name) {
                    return Err(AdminError::new(
                        ErrorCode::InvalidConfig,
                        format!("Cannot update these configs dynamically: [{name}]"),
                    ));
                }
                if let ConfigOp::Set(_, value) = op {
                    validate(&def, value)
                        .map_err(|m| AdminError::new(ErrorCode::InvalidConfig, m))?;
                }
            }
        }
    }
    if validate_only {
        return Ok(());
    }
    state.controller.alter_configs(resource, ops)?;
    reconcile(state)
}
