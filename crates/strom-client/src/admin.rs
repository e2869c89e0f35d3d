//! The admin client: topics, configs, cluster description, DeleteRecords.
//!
//! Shaped like Java's `Admin`: batch calls return one result per topic so one
//! bad topic does not hide the others' outcome.

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use strom_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use strom_protocol::messages::delete_topics_request::DeleteTopicState;
use strom_protocol::messages::describe_configs_request::DescribeConfigsResource;
use strom_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use strom_protocol::messages::{
    CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};

use crate::cluster::{Cluster, Node, TopicMetadata};
use crate::connection::ConnectionConfig;
use crate::error::ClientError;

/// How long the broker may take for topic operations (Java's default API timeout is 60 s).
const ADMIN_TIMEOUT_MS: i32 = 60_000;

/// A topic to create.
#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    /// Partitions; -1 asks for the broker's `num.partitions`.
    pub num_partitions: i32,
    /// Replicas per partition; -1 asks for `default.replication.factor`.
    pub replication_factor: i16,
    /// Topic configs such as `cleanup.policy` or `retention.ms`.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with `num_partitions` and `replication_factor` and no configs.
    pub fn new(name: &str, num_partitions: i32, replication_factor: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }
    /// Adds a topic config.
    pub fn config(mut self, key: &str, value: &str) -> NewTopic {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// What a config request is about (Kafka's `ConfigResource`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
}

impl ConfigResource {
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (2, t.clone()),
            ConfigResource::Broker(id) => (4, id.to_string()),
        }
    }
}

/// One config value as DescribeConfigs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub is_sensitive: bool,
    /// Kafka's `ConfigSource` id (1 = topic config, 5 = default, …).
    pub source: i8,
}

/// One IncrementalAlterConfigs operation (KIP-339).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterConfigOp {
    Set(String, String),
    Delete(String),
    Append(String, String),
    Subtract(String, String),
}

/// DescribeCluster's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: String,
    pub controller_id: i32,
    pub brokers: Vec<Node>,
}

/// The admin client.
pub struct Admin {
    cluster: Arc<Cluster>,
}

impl Admin {
    /// Connects to `bootstrap.servers` (comma-separated `host:port` list).
    pub async fn connect(bootstrap_servers: &str) -> Result<Admin, ClientError> {
        let servers: Vec<String> = bootstrap_servers
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let cluster = Cluster::connect(&servers, ConnectionConfig::default()).await?;
        Ok(Admin { cluster })
    }

    /// An admin client sharing an existing cluster view.
    pub fn from_cluster(cluster: Arc<Cluster>) -> Admin {
        Admin { cluster }
    }

    /// The cluster view this client uses.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Creates topics; one result per topic name.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
    ) -> Result<BTreeMap<String, Result<(), ClientError>>, ClientError> {
        let mut req = CreateTopicsRequest::default();
        req.timeout_ms = ADMIN_TIMEOUT_MS;
        for t in topics {
            let mut ct = CreatableTopic::default();
            ct.name = t.name.as_str().into();
            ct.num_partitions = t.num_partitions;
            ct.replication_factor = t.replication_factor;
            for (k, v) in &t.configs {
                let mut c = CreatableTopicConfig::default();
                c.name = k.as_str().into();
                c.value = Some(v.as_str().into());
                ct.configs.push(c);
            }
            req.topics.push(ct);
        }
        let resp = self.cluster.any_connection().await?.send(&req).await?;
        Ok(resp
            .topics
            .into_iter()
            .map(|r| {
                let msg = r.error_message.map(|m| m.to_string());
                (r.name.to_string(), ClientError::check(r.error_code, msg))
            })
            .collect())
    }

    /// Deletes topics by name; one result per topic name.
    pub async fn delete_topics(
        &self,
        names: &[&str],
    ) -> Result<BTreeMap<String, Result<(), ClientError>>, ClientError> {
        let conn = self.cluster.any_connection().await?;
        let mut req = DeleteTopicsRequest::default();
        req.timeout_ms = ADMIN_TIMEOUT_MS;
        if conn.version_for::<DeleteTopicsRequest>()? >= 6 {
            for n in names {
                let mut s = DeleteTopicState::default();
                s.name = Some((*n).into());
                req.topics.push(s);
            }
        } else {
            req.topic_names = names.iter().map(|n| (*n).into()).collect();
        }
        let resp = conn.send(&req).await?;
        Ok(resp
            .responses
            .into_iter()
            .map(|r| {
                let msg = r.error_message.map(|m| m.to_string());
                let name = r.name.map(|n| n.to_string()).unwrap_or_default();
                (name, ClientError::check(r.error_code, msg))
            })
            .collect())
    }

    /// Names of all non-internal topics, sorted.
    pub async fn list_topics(&self) -> Result<Vec<String>, ClientError> {
        self.cluster.refresh_all().await?;
        let mut names: Vec<String> = self
            .cluster
            .topics()
            .into_iter()
            .filter(|t| !t.is_internal)
            .map(|t| t.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Partitions, leaders, replicas and ISR of each topic; a missing topic is
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub async fn describe_topics(&self, names: &[&str]) -> Result<Vec<TopicMetadata>, ClientError> {
        let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.cluster.refresh(&owned).await?;
        names
            .iter()
            .map(|n| {
                self.cluster
                    .topic(n)
                    .map(|t| TopicMetadata::clone(&t))
                    .ok_or_else(|| ClientError::kafka(3, Some(format!("topic {n}"))))
            })
            .collect()
    }

    /// Current configs of a topic or broker.
    pub async fn describe_configs(
        &self,
        resource: &ConfigResource,
    ) -> Result<Vec<ConfigEntry>, ClientError> {
        let (resource_type, name) = resource.wire();
        let mut r = DescribeConfigsResource::default();
        r.resource_type = resource_type;
        r.resource_name = name.into();
        r.configuration_keys = None;
        let mut req = DescribeConfigsRequest::default();
        req.resources.push(r);
        let resp = self.cluster.any_connection().await?.send(&req).await?;
        let result =
            resp.results.into_iter().next().ok_or_else(|| {
                ClientError::Decode("DescribeConfigs answered no resource".into())
            })?;
        ClientError::check(
            result.error_code,
            result.error_message.map(|m| m.to_string()),
        )?;
        Ok(result
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                read_only: c.read_only,
                is_sensitive: c.is_sensitive,
                source: c.config_source,
            })
            .collect())
    }

    /// Applies config operations to one resource (IncrementalAlterConfigs).
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<(), ClientError> {
        let (resource_type, name) = resource.wire();
        let mut r = AlterConfigsResource::default();
        r.resource_type = resource_type;
        r.resource_name = name.into();
        for op in ops {
            let (operation, key, value) = match op {
                AlterConfigOp::Set(k, v) => (0, k, Some(v)),
                AlterConfigOp::Delete(k) => (1, k, None),
                AlterConfigOp::Append(k, v) => (2, k, Some(v)),
                AlterConfigOp::Subtract(k, v) => (3, k, Some(v)),
            };
            let mut c = AlterableConfig::default();
            c.name = key.as_str().into();
            c.config_operation = operation;
            c.value = value.map(|v| v.as_str().into());
            r.configs.push(c);
        }
        let mut req = IncrementalAlterConfigsRequest::default();
        req.resources.push(r);
        let resp = self.cluster.any_connection().await?.send(&req).await?;
        for r in resp.responses {
            ClientError::check(r.error_code, r.error_message.map(|m| m.to_string()))?;
        }
        Ok(())
    }

    /// The cluster id, controller and brokers.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, ClientError> {
        let req = DescribeClusterRequest::default();
        let resp = self.cluster.any_connection().await?.send(&req).await?;
        ClientError::check(resp.error_code, resp.error_message.map(|m| m.to_string()))?;
        Ok(ClusterDescription {
            cluster_id: resp.cluster_id.to_string(),
            controller_id: resp.controller_id,
            brokers: resp
                .brokers
                .into_iter()
                .map(|b| Node {
                    id: b.broker_id,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                })
                .collect(),
        })
    }

    /// Deletes records of `topic` before each given offset (-1: the high watermark),
    /// sending each partition to its leader; returns the new low watermark per partition.
    pub async fn delete_records(
        &self,
        topic: &str,
        before: &[(i32, i64)],
    ) -> Result<BTreeMap<i32, i64>, ClientError> {
        self.cluster.refresh(&[topic.to_string()]).await?;
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        for &(partition, offset) in before {
            let leader =
                self.cluster
                    .leader(topic, partition)
                    .ok_or_else(|| ClientError::NoMetadata {
                        what: format!("leader of {topic}-{partition}"),
                    })?;
            by_leader
                .entry(leader)
                .or_default()
                .push((partition, offset));
        }
        let mut out = BTreeMap::new();
        for (leader, parts) in by_leader {
            let mut t = DeleteRecordsTopic::default();
            t.name = topic.into();
            for (partition, offset) in parts {
                let mut p = DeleteRecordsPartition::default();
                p.partition_index = partition;
                p.offset = offset;
                t.partitions.push(p);
            }
            let mut req = DeleteRecordsRequest::default();
            req.timeout_ms = ADMIN_TIMEOUT_MS;
            req.topics.push(t);
            let resp = self.cluster.connection(leader).await?.send(&req).await?;
            for p in resp.topics.into_iter().flat_map(|t| t.partitions) {
                ClientError::check(p.error_code, None)?;
                out.insert(p.partition_index, p.low_watermark);
            }
        }
        Ok(out)
    }
}
