//! Cluster metadata: bootstrap, brokers, topics, partition leaders, and one
//! cached [`Connection`] per broker.
//!
//! Metadata is fetched on demand and refreshed when a caller sees an error that
//! means it is stale (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
//! LEADER_NOT_AVAILABLE: see [`ClientError::invalidates_metadata`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use strom_protocol::messages::metadata_request::MetadataRequestTopic;
use strom_protocol::messages::{MetadataRequest, MetadataResponse, Uuid};
use tracing::debug;

use crate::connection::{Connection, ConnectionConfig};
use crate::error::ClientError;

/// A broker as metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The broker's `node.id`.
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl Node {
    /// `host:port`, ready for `TcpStream::connect`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition's replicas and leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: i32,
    /// Leader's node id, or -1 while there is none (LEADER_NOT_AVAILABLE).
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// The partition's error code in the metadata answer (0 = none).
    pub error_code: i16,
}

/// A topic's metadata, partitions sorted by index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    /// The topic id (zero from brokers older than Metadata v10).
    pub topic_id: Uuid,
    pub is_internal: bool,
    pub partitions: Vec<PartitionMetadata>,
}

#[derive(Default)]
struct State {
    brokers: HashMap<i32, Node>,
    /// Shared, so that a lookup per produced record costs no copy.
    topics: HashMap<String, Arc<TopicMetadata>>,
    cluster_id: Option<String>,
    controller_id: i32,
}

/// Shared view of the cluster, used by the admin client and the producer.
pub struct Cluster {
    bootstrap: Vec<String>,
    config: ConnectionConfig,
    state: Mutex<State>,
    /// Connections by node id; bootstrap connections use negative ids.
    connections: tokio::sync::Mutex<HashMap<i32, Arc<Connection>>>,
    /// Whether metadata requests for named topics ask the broker to create
    /// missing ones (when its `auto.create.topics.enable` allows).
    auto_create_topics: AtomicBool,
}

impl Cluster {
    /// Connects to the first reachable `bootstrap.servers` entry and loads the broker list.
    pub async fn connect(
        bootstrap: &[String],
        config: ConnectionConfig,
    ) -> Result<Arc<Cluster>, ClientError> {
        if bootstrap.is_empty() {
            return Err(ClientError::Config("bootstrap.servers is empty".into()));
        }
        let cluster = Arc::new(Cluster {
            bootstrap: bootstrap.to_vec(),
            config,
            state: Mutex::default(),
            connections: tokio::sync::Mutex::default(),
            auto_create_topics: AtomicBool::new(false),
        });
        cluster.refresh(&[]).await?;
        Ok(cluster)
    }

    /// Makes metadata requests for named topics ask for their creation, as
    /// Java's producer does and its consumer does with `allow.auto.create.topics`
    /// (the broker decides, by `auto.create.topics.enable`). Off by default.
    pub fn set_allow_auto_topic_creation(&self, allow: bool) {
        self.auto_create_topics.store(allow, Ordering::Relaxed);
    }

    /// The connection settings every broker connection uses.
    pub fn connection_config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// A live connection to some broker: a known one if possible, else a bootstrap server.
    pub async fn any_connection(&self) -> Result<Arc<Connection>, ClientError> {
        let mut ids: Vec<i32> = self.state.lock().unwrap().brokers.keys().copied().collect();
        ids.sort_unstable();
        let mut last = None;
        for id in ids {
            match self.connection(id).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        for (i, addr) in self.bootstrap.iter().enumerate() {
            match self.connect_slot(-1 - i as i32, addr).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClientError::NoMetadata {
            what: "brokers".into(),
        }))
    }

    /// The (cached, reconnected when closed) connection to broker `node_id`.
    pub async fn connection(&self, node_id: i32) -> Result<Arc<Connection>, ClientError> {
        let addr = self
            .broker(node_id)
            .ok_or_else(|| ClientError::NoMetadata {
                what: format!("broker {node_id}"),
            })?
            .addr();
        self.connect_slot(node_id, &addr).await
    }

    async fn connect_slot(&self, slot: i32, addr: &str) -> Result<Arc<Connection>, ClientError> {
        let mut conns = self.connections.lock().await;
        if let Some(c) = conns.get(&slot) {
            if !c.is_closed() && c.addr() == addr {
                return Ok(c.clone());
            }
        }
        let conn = Arc::new(Connection::connect(addr, self.config.clone()).await?);
        conns.insert(slot, conn.clone());
        Ok(conn)
    }

    /// Fetches metadata for `topics` (none: brokers only) and merges it into the cache.
    /// Topics the broker reports with an error are dropped from the cache.
    pub async fn refresh(&self, topics: &[String]) -> Result<(), ClientError> {
        let conn = self.any_connection().await?;
        let version = conn.version_for::<MetadataRequest>()?;
        let mut req = MetadataRequest::default();
        req.topics = Some(
            topics
                .iter()
                .map(|t| {
                    let mut rt = MetadataRequestTopic::default();
                    rt.name = Some(t.as_str().into());
                    rt
                })
                .collect(),
        );
        if version >= 4 {
            req.allow_auto_topic_creation = self.auto_create_topics.load(Ordering::Relaxed);
        }
        let resp = conn.send(&req).await?;
        self.apply(resp);
        Ok(())
    }

    /// Fetches metadata for every topic.
    pub async fn refresh_all(&self) -> Result<(), ClientError> {
        let conn = self.any_connection().await?;
        let version = conn.version_for::<MetadataRequest>()?;
        let mut req = MetadataRequest::default();
        req.topics = None;
        if version >= 4 {
            req.allow_auto_topic_creation = false;
        }
        let resp = conn.send(&req).await?;
        let mut state = self.state.lock().unwrap();
        state.topics.clear();
        drop(state);
        self.apply(resp);
        Ok(())
    }

    fn apply(&self, resp: MetadataResponse) {
        let mut state = self.state.lock().unwrap();
        state.brokers = resp
            .brokers
            .iter()
            .map(|b| {
                let node = Node {
                    id: b.node_id,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                };
                (b.node_id, node)
            })
            .collect();
        state.cluster_id = resp.cluster_id.as_ref().map(|c| c.to_string());
        state.controller_id = resp.controller_id;
        for t in resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.to_string()) else {
                continue;
            };
            if t.error_code != 0 {
                debug!(topic = %name, code = t.error_code, "topic metadata error");
                state.topics.remove(&name);
                continue;
            }
            let mut partitions: Vec<PartitionMetadata> = t
                .partitions
                .iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: p.leader_id,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.clone(),
                    isr: p.isr_nodes.clone(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let meta = TopicMetadata {
                name: name.clone(),
                topic_id: t.topic_id,
                is_internal: t.is_internal,
                partitions,
            };
            state.topics.insert(name, Arc::new(meta));
        }
    }

    /// Cached metadata for `topic`.
    pub fn topic(&self, topic: &str) -> Option<Arc<TopicMetadata>> {
        self.state.lock().unwrap().topics.get(topic).cloned()
    }

    /// The cached topic with id `id`.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<TopicMetadata> {
        let state = self.state.lock().unwrap();
        state
            .topics
            .values()
            .find(|t| t.topic_id == *id)
            .map(|t| TopicMetadata::clone(t))
    }

    /// Cached metadata for every known topic.
    pub fn topics(&self) -> Vec<TopicMetadata> {
        self.state
            .lock()
            .unwrap()
            .topics
            .values()
            .map(|t| TopicMetadata::clone(t))
            .collect()
    }

    /// The cached leader of `topic`/`partition`, if it has one.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let state = self.state.lock().unwrap();
        let p = state
            .topics
            .get(topic)?
            .partitions
            .iter()
            .find(|p| p.partition == partition)?;
        (p.leader >= 0).then_some(p.leader)
    }

    /// A broker from the cache.
    pub fn broker(&self, node_id: i32) -> Option<Node> {
        self.state.lock().unwrap().brokers.get(&node_id).cloned()
    }

    /// Every known broker, sorted by id.
    pub fn brokers(&self) -> Vec<Node> {
        let mut v: Vec<Node> = self
            .state
            .lock()
            .unwrap()
            .brokers
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|n| n.id);
        v
    }

    /// The cluster id from the last metadata answer.
    pub fn cluster_id(&self) -> Option<String> {
        self.state.lock().unwrap().cluster_id.clone()
    }

    /// The controller id from the last metadata answer (-1 when unknown).
    pub fn controller_id(&self) -> i32 {
        self.state.lock().unwrap().controller_id
    }
}
