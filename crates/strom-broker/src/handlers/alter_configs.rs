//! AlterConfigs (key 33, replaces a resource's whole config set) and
//! IncrementalAlterConfigs (key 44, set/delete/append/subtract per key).

use std::collections::BTreeSet;

use bytes::Bytes;
use strom_controller::{ConfigOp, ConfigResource};
use strom_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use strom_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use strom_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, StrBytes,
};
use strom_protocol::ErrorCode;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::HandlerResult;
use crate::admin::{self, AdminError};
use crate::config::defs::{topic_def, ConfigType};
use crate::dispatch::Request;
use crate::state::State;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn resource(state: &State, resource_type: i8, name: &str) -> Result<ConfigResource, AdminError> {
    match resource_type {
        RESOURCE_TOPIC => Ok(ConfigResource::Topic(name.to_owned())),
        RESOURCE_BROKER if name.is_empty() => Ok(ConfigResource::Broker(None)),
        RESOURCE_BROKER if name == state.config.node_id.to_string() => {
            Ok(ConfigResource::Broker(Some(state.config.node_id)))
        }
        RESOURCE_BROKER => Err(AdminError::new(
            ErrorCode::InvalidRequest,
            format!("Unexpected broker id {name}"),
        )),
        other => Err(AdminError::new(
            ErrorCode::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

fn current(state: &State, resource: &ConfigResource) -> std::collections::BTreeMap<String, String> {
    state
        .controller
        .image()
        .configs
        .get(resource)
        .cloned()
        .unwrap_or_default()
}

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: AlterConfigsRequest = request.decode(state, body)?;
    let mut response = AlterConfigsResponse::default();
    for r in &req.resources {
        let mut out = AlterConfigsResourceResponse::default();
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        let outcome = (|| -> Result<(), AdminError> {
            let res = resource(state, r.resource_type, r.resource_name.as_str())?;
            let mut ops = Vec::new();
            let mut named = BTreeSet::new();
            for c in &r.configs {
                named.insert(c.name.as_str().to_owned());
                match &c.value {
                    Some(v) => ops.push(ConfigOp::Set(
                        c.name.as_str().to_owned(),
                        v.as_str().to_owned(),
                    )),
                    None => ops.push(ConfigOp::Delete(c.name.as_str().to_owned())),
                }
            }
            // Non-incremental: whatever is not named returns to its default.
            for existing in current(state, &res).into_keys() {
                if !named.contains(&existing) {
                    ops.push(ConfigOp::Delete(existing));
                }
            }
            admin::alter_configs(state, res, ops, req.validate_only)
        })();
        if let Err(e) = outcome {
            out.error_code = e.code.code();
            out.error_message = Some(StrBytes::from(e.message));
        }
        response.responses.push(out);
    }
    Ok(request.respond(&response))
}

pub fn handle_incremental(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: IncrementalAlterConfigsRequest = request.decode(state, body)?;
    let mut response = IncrementalAlterConfigsResponse::default();
    for r in &req.resources {
        let mut out = IncrementalResult::default();
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        let outcome = (|| -> Result<(), AdminError> {
            let res = resource(state, r.resource_type, r.resource_name.as_str())?;
            let existing = current(state, &res);
            let mut ops = Vec::new();
            for c in &r.configs {
                let name = c.name.as_str().to_owned();
                let value = c.value.as_ref().map(|v| v.as_str().to_owned());
                match c.config_operation {
                    OP_SET => ops.push(ConfigOp::Set(
                        name.clone(),
                        value.ok_or_else(|| {
                            AdminError::new(
                                ErrorCode::InvalidRequest,
                                format!("Null value not supported for: {name}"),
                            )
                        })?,
                    )),
                    OP_DELETE => ops.push(ConfigOp::Delete(name)),
                    OP_APPEND | OP_SUBTRACT => {
                        let is_list = topic_def(&name).is_some_and(|d| d.kind == ConfigType::List);
                        if !is_list {
                            return Err(AdminError::new(ErrorCode::InvalidConfig, format!("Config {name} is not a list; APPEND and SUBTRACT need a list config")));
                        }
                        let base = existing
                            .get(&name)
                            .cloned()
                            .or_else(|| topic_def(&name).map(|d| d.default.to_owned()))
                            .unwrap_or_default();
                        let mut items: Vec<String> = base
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect();
                        for v in value
                            .unwrap_or_default()
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                        {
                            if c.config_operation == OP_APPEND {
                                if !items.iter().any(|i| i == v) {
                                    items.push(v.to_owned());
                                }
                            } else {
                                items.retain(|i| i != v);
                            }
                        }
                        ops.push(if items.is_empty() {
                            ConfigOp::Delete(name)
                        } else {
                            ConfigOp::Set(name, items.join(","))
                        });
                    }
                    other => {
                        return Err(AdminError::new(
                            ErrorCode::InvalidRequest,
                            format!("Unknown config operation {other}"),
                        ))
                    }
                }
            }
            admin::alter_configs(state, res, ops, req.validate_only)
        })();
        if let Err(e) = outcome {
            out.error_code = e.code.code();
            out.error_message = Some(StrBytes::from(e.message));
        }
        response.responses.push(out);
    }
    Ok(request.respond(&response))
}
