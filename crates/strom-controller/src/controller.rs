//! The controller: validates metadata changes, commits them, applies them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use crate::image::{BrokerRegistration, ClusterImage, TopicId, TopicImage};
use crate::log::{FileMetadataLog, MetadataLog};
use crate::names::{collision_key, validate_topic_name};
use crate::records::{ConfigResource, MetadataRecord};
use crate::ControllerError;

/// Producer ids are handed out in blocks; one metadata record covers a block,
/// so a restart skips at most the unused rest of the last block.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Most partitions one topic may have. Each partition costs a directory, open
/// files and memory; Kafka has no hard cap, this one stops a typo from asking
/// for billions.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 100_000;

/// A request to create one topic.
#[derive(Clone, Debug)]
pub struct CreateTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i16,
    /// Topic configs, already validated by the caller against the config definitions.
    pub configs: BTreeMap<String, String>,
}

impl CreateTopic {
    /// A topic with no config overrides.
    pub fn new(name: &str, num_partitions: i32, replication_factor: i16) -> Self {
        CreateTopic {
            name: name.to_owned(),
            num_partitions,
            replication_factor,
            configs: BTreeMap::new(),
        }
    }
}

/// A change to one dynamic config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
}

struct Inner {
    log: Box<dyn MetadataLog>,
    /// Producer ids left in the block this node holds: `next..block_end`.
    producer_ids: std::ops::Range<i64>,
}

/// The metadata controller (a one-voter quorum in single-node mode).
pub struct Controller {
    node_id: i32,
    inner: Mutex<Inner>,
    image: RwLock<Arc<ClusterImage>>,
}

impl Controller {
    /// Opens the metadata log under `dir` and replays it; a new log gets a cluster id.
    pub fn open(dir: &Path, node_id: i32) -> Result<Self, ControllerError> {
        Self::with_log(Box::new(FileMetadataLog::open(dir)?), node_id)
    }

    /// Starts a controller over any metadata log.
    pub fn with_log(mut log: Box<dyn MetadataLog>, node_id: i32) -> Result<Self, ControllerError> {
        let mut image = ClusterImage {
            controller_id: node_id,
            ..ClusterImage::default()
        };
        for (i, record) in log.replay()?.iter().enumerate() {
            image
                .apply(record)
                .map_err(|reason| ControllerError::Corrupt {
                    position: i as u64,
                    reason,
                })?;
        }
        if image.cluster_id.is_empty() {
            let record = MetadataRecord::ClusterId {
                cluster_id: TopicId::random().to_string(),
            };
            log.append(std::slice::from_ref(&record))?;
            image.apply(&record).expect("a new cluster id applies");
        }
        tracing::info!(
            cluster_id = %image.cluster_id,
            topics = image.topics.len(),
            records = image.metadata_offset,
            "metadata loaded"
        );
        Ok(Controller {
            node_id,
            inner: Mutex::new(Inner {
                log,
                producer_ids: 0..0,
            }),
            image: RwLock::new(Arc::new(image)),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The current image.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.image.read().expect("image lock").clone()
    }

    /// Records a live broker. Registrations are not persisted: a broker
    /// registers each time it starts, with the endpoint it has then.
    pub fn register_broker(&self, registration: BrokerRegistration) {
        let _inner = self.inner.lock().expect("controller lock");
        let mut image = (*self.image()).clone();
        image.brokers.insert(registration.node_id, registration);
        *self.image.write().expect("image lock") = Arc::new(image);
    }

    /// Validates `records` against the image, commits them, applies them.
    fn commit(
        &self,
        inner: &mut Inner,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<ClusterImage>, ControllerError> {
        let mut image = (*self.image()).clone();
        for record in &records {
            image
                .apply(record)
                .map_err(ControllerError::InvalidRequest)?;
        }
        inner.log.append(&records)?;
        let image = Arc::new(image);
        *self.image.write().expect("image lock") = image.clone();
        Ok(image)
    }

    fn live_brokers(&self, image: &ClusterImage) -> Vec<i32> {
        let mut brokers: Vec<i32> = image.brokers.keys().copied().collect();
        if brokers.is_empty() {
            brokers.push(self.node_id);
        }
        brokers
    }

    /// Creates a topic with its partitions spread over the live brokers.
    /// With `validate_only`, checks everything and commits nothing.
    pub fn create_topic(
        &self,
        request: CreateTopic,
        validate_only: bool,
    ) -> Result<Arc<TopicImage>, ControllerError> {
        let mut inner = self.inner.lock().expect("controller lock");
        let image = self.image();
        validate_topic_name(&request.name)?;
        if image.topics.contains_key(&request.name) {
            return Err(ControllerError::TopicAlreadyExists(request.name));
        }
        let key = collision_key(&request.name);
        if let Some(existing) = image.topics.keys().find(|t| collision_key(t) == key) {
            return Err(ControllerError::InvalidTopic(format!(
                "topic '{}' collides with existing topic '{existing}': '.' and '_' are interchangeable in metric names",
                request.name
            )));
        }
        if request.num_partitions <= 0 || request.num_partitions > MAX_PARTITIONS_PER_TOPIC {
            return Err(ControllerError::InvalidPartitions(format!(
                "number of partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}, got {}",
                request.num_partitions
            )));
        }
        let brokers = self.live_brokers(&image);
        if request.replication_factor <= 0 {
            return Err(ControllerError::InvalidReplicationFactor(
                "replication factor must be larger than 0".into(),
            ));
        }
        if request.replication_factor as usize > brokers.len() {
            return Err(ControllerError::InvalidReplicationFactor(format!(
                "replication factor: {} larger than available brokers: {}",
                request.replication_factor,
                brokers.len()
            )));
        }
        if validate_only {
            return Ok(Arc::new(TopicImage {
                name: request.name,
                topic_id: TopicId([0; 16]),
                partitions: Vec::new(),
            }));
        }
        let topic_id = TopicId::random();
        let mut records = vec![MetadataRecord::Topic {
            name: request.name.clone(),
            topic_id,
        }];
        records.extend(partition_records(
            topic_id,
            0..request.num_partitions,
            &brokers,
            request.replication_factor,
        ));
        records.extend(
            request
                .configs
                .into_iter()
                .map(|(name, value)| MetadataRecord::Config {
                    resource: ConfigResource::Topic(request.name.clone()),
                    name,
                    value: Some(value),
                }),
        );
        let image = self.commit(&mut inner, records)?;
        Ok(image.topic(&request.name).expect("just created").clone())
    }

    /// Deletes a topic; returns its id.
    pub fn delete_topic(&self, name: &str) -> Result<TopicId, ControllerError> {
        let mut inner = self.inner.lock().expect("controller lock");
        let topic_id = self
            .image()
            .topic(name)
            .map(|t| t.topic_id)
            .ok_or_else(|| ControllerError::UnknownTopic(name.to_owned()))?;
        self.commit(&mut inner, vec![MetadataRecord::RemoveTopic { topic_id }])?;
        Ok(topic_id)
    }

    /// Grows a topic to `new_total` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        new_total: i32,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let mut inner = self.inner.lock().expect("controller lock");
        let image = self.image();
        let topic = image
            .topic(name)
            .ok_or_else(|| ControllerError::UnknownTopic(name.to_owned()))?;
        let current = topic.partitions.len() as i32;
        if new_total == current {
            return Err(ControllerError::InvalidPartitions(format!(
                "topic currently has {current} partitions, which is the same as the requested {new_total}"
            )));
        }
        if new_total < current {
            return Err(ControllerError::InvalidPartitions(format!(
                "topic currently has {current} partitions, {new_total} would not be an increase"
            )));
        }
        if new_total > MAX_PARTITIONS_PER_TOPIC {
            return Err(ControllerError::InvalidPartitions(format!(
                "number of partitions must be at most {MAX_PARTITIONS_PER_TOPIC}"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let rf = topic.partitions.first().map_or(1, |p| p.replicas.len()) as i16;
        let brokers = self.live_brokers(&image);
        let records = partition_records(topic.topic_id, current..new_total, &brokers, rf).collect();
        self.commit(&mut inner, records)?;
        Ok(())
    }

    /// Applies config changes to one resource atomically.
    pub fn alter_configs(
        &self,
        resource: ConfigResource,
        ops: Vec<ConfigOp>,
    ) -> Result<(), ControllerError> {
        let mut inner = self.inner.lock().expect("controller lock");
        if let ConfigResource::Topic(name) = &resource {
            if self.image().topic(name).is_none() {
                return Err(ControllerError::UnknownTopic(name.clone()));
            }
        }
        let records = ops
            .into_iter()
            .map(|op| {
                let (name, value) = match op {
                    ConfigOp::Set(n, v) => (n, Some(v)),
                    ConfigOp::Delete(n) => (n, None),
                };
                MetadataRecord::Config {
                    resource: resource.clone(),
                    name,
                    value,
                }
            })
            .collect::<Vec<_>>();
        if !records.is_empty() {
            self.commit(&mut inner, records)?;
        }
        Ok(())
    }

    /// Hands out a producer id never given before, also across restarts.
    pub fn allocate_producer_id(&self) -> Result<i64, ControllerError> {
        let mut inner = self.inner.lock().expect("controller lock");
        if inner.producer_ids.is_empty() {
            let start = self.image().next_producer_id;
            let end = start + PRODUCER_ID_BLOCK_SIZE;
            self.commit(
                &mut inner,
                vec![MetadataRecord::ProducerIds {
                    broker_id: self.node_id,
                    next_producer_id: end,
                }],
            )?;
            inner.producer_ids = start..end;
        }
        let id = inner.producer_ids.start;
        inner.producer_ids.start += 1;
        Ok(id)
    }
}

/// Partition records for `partitions`, replicas placed round-robin from a
/// start that rotates with the partition number (leaders spread evenly).
fn partition_records(
    topic_id: TopicId,
    partitions: std::ops::Range<i32>,
    brokers: &[i32],
    replication_factor: i16,
) -> impl Iterator<Item = MetadataRecord> + '_ {
    partitions.map(move |p| {
        let replicas: Vec<i32> = (0..replication_factor as usize)
            .map(|r| brokers[(p as usize + r) % brokers.len()])
            .collect();
        MetadataRecord::Partition {
            topic_id,
            partition: p,
            isr: replicas.clone(),
            leader: replicas[0],
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> Controller {
        Controller::open(dir, 1).unwrap()
    }

    #[test]
    fn topics_configs_and_producer_ids_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path());
        let mut req = CreateTopic::new("orders", 3, 1);
        req.configs.insert("retention.ms".into(), "1000".into());
        let t = c.create_topic(req, false).unwrap();
        assert_eq!(t.partitions.len(), 3);
        c.create_partitions("orders", 5, false).unwrap();
        let first_pid = c.allocate_producer_id().unwrap();
        let cluster_id = c.image().cluster_id.clone();
        drop(c);

        let c = open(dir.path());
        let image = c.image();
        assert_eq!(image.cluster_id, cluster_id);
        let t2 = image.topic("orders").unwrap();
        assert_eq!(t2.topic_id, t.topic_id);
        assert_eq!(t2.partitions.len(), 5);
        assert_eq!(image.topic_configs("orders")["retention.ms"], "1000");
        assert!(c.allocate_producer_id().unwrap() > first_pid);
    }

    #[test]
    fn refuses_duplicates_bad_names_bad_counts_and_colliding_names() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path());
        c.create_topic(CreateTopic::new("a.b", 1, 1), false)
            .unwrap();
        assert!(matches!(
            c.create_topic(CreateTopic::new("a.b", 1, 1), false),
            Err(ControllerError::TopicAlreadyExists(_))
        ));
        assert!(matches!(
            c.create_topic(CreateTopic::new("a_b", 1, 1), false),
            Err(ControllerError::InvalidTopic(_))
        ));
        assert!(matches!(
            c.create_topic(CreateTopic::new("bad name", 1, 1), false),
            Err(ControllerError::InvalidTopic(_))
        ));
        assert!(matches!(
            c.create_topic(CreateTopic::new("z", 0, 1), false),
            Err(ControllerError::InvalidPartitions(_))
        ));
        assert!(matches!(
            c.create_topic(CreateTopic::new("z", 1, 3), false),
            Err(ControllerError::InvalidReplicationFactor(_))
        ));
        assert!(matches!(
            c.create_partitions("a.b", 1, false),
            Err(ControllerError::InvalidPartitions(_))
        ));
        // validate_only commits nothing.
        c.create_topic(CreateTopic::new("v", 1, 1), true).unwrap();
        assert!(c.image().topic("v").is_none());
    }

    #[test]
    fn deleted_topic_and_its_configs_are_gone_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path());
        let mut req = CreateTopic::new("gone", 1, 1);
        req.configs
            .insert("cleanup.policy".into(), "compact".into());
        c.create_topic(req, false).unwrap();
        c.delete_topic("gone").unwrap();
        assert!(matches!(
            c.delete_topic("gone"),
            Err(ControllerError::UnknownTopic(_))
        ));
        drop(c);
        let c = open(dir.path());
        assert!(c.image().topic("gone").is_none());
        assert!(c.image().configs.is_empty());
        // The name can be reused with a new id.
        c.create_topic(CreateTopic::new("gone", 1, 1), false)
            .unwrap();
    }
}
