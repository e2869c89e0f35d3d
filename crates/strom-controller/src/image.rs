//! The cluster image: metadata as of the last applied record.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::records::{ConfigResource, MetadataRecord};

/// A topic id (Kafka's 16-byte UUID), never all zeros for a real topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    /// A fresh random id (version-4 style; zero and the reserved "metadata topic" id avoided).
    pub fn random() -> Self {
        loop {
            let mut bytes: [u8; 16] = rand::random();
            bytes[6] = (bytes[6] & 0x0f) | 0x40;
            bytes[8] = (bytes[8] & 0x3f) | 0x80;
            if bytes != [0; 16] && bytes != ONE {
                return TopicId(bytes);
            }
        }
    }
}

const ONE: [u8; 16] = {
    let mut b = [0u8; 16];
    b[15] = 1;
    b
};

impl std::fmt::Display for TopicId {
    /// Kafka prints topic ids as URL-safe base64 without padding.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::with_capacity(22);
        for chunk in self.0.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        f.write_str(&out)
    }
}

/// A registered broker and where clients reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// A partition's replicas and leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRegistration {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// A topic as the cluster knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: TopicId,
    /// Indexed by partition number; dense from 0.
    pub partitions: Vec<PartitionRegistration>,
}

impl TopicImage {
    /// Whether this is an internal topic (`__consumer_offsets`, `__transaction_state`, …).
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }
}

/// The whole cluster metadata at one point of the log. Cheap to share: topics
/// are `Arc`s, and a change builds a new image that shares the untouched ones.
#[derive(Clone, Debug, Default)]
pub struct ClusterImage {
    /// The cluster id (base64 of 16 random bytes, as Kafka's).
    pub cluster_id: String,
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    /// Topic names by id.
    pub topic_names: BTreeMap<TopicId, String>,
    /// Dynamic configs per resource.
    pub configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    /// Live brokers by node id.
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// The id of the node acting as controller.
    pub controller_id: i32,
    /// Next producer id the controller will hand out.
    pub next_producer_id: i64,
    /// Records applied so far (the metadata offset).
    pub metadata_offset: u64,
}

impl ClusterImage {
    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }
    /// A topic by id.
    pub fn topic_by_id(&self, id: &TopicId) -> Option<&Arc<TopicImage>> {
        self.topic_names.get(id).and_then(|n| self.topics.get(n))
    }
    /// Dynamic configs set on a topic (empty when none).
    pub fn topic_configs(&self, name: &str) -> BTreeMap<String, String> {
        self.configs
            .get(&ConfigResource::Topic(name.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Applies one committed record. Records are validated before commit, so a
    /// record that does not fit the image is a bug or corruption: it is refused.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), String> {
        match record {
            MetadataRecord::ClusterId { cluster_id } => self.cluster_id = cluster_id.clone(),
            MetadataRecord::Topic { name, topic_id } => {
                if self.topics.contains_key(name) {
                    return Err(format!("topic {name} exists"));
                }
                self.topics.insert(
                    name.clone(),
                    Arc::new(TopicImage {
                        name: name.clone(),
                        topic_id: *topic_id,
                        partitions: Vec::new(),
                    }),
                );
                self.topic_names.insert(*topic_id, name.clone());
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                let name = self
                    .topic_names
                    .get(topic_id)
                    .ok_or_else(|| format!("partition for unknown topic {topic_id}"))?;
                let topic =
                    Arc::make_mut(self.topics.get_mut(name).expect("names and topics agree"));
                let registration = PartitionRegistration {
                    partition: *partition,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                };
                let index =
                    usize::try_from(*partition).map_err(|_| "negative partition".to_owned())?;
                match index.cmp(&topic.partitions.len()) {
                    std::cmp::Ordering::Less => topic.partitions[index] = registration,
                    std::cmp::Ordering::Equal => topic.partitions.push(registration),
                    std::cmp::Ordering::Greater => {
                        return Err(format!("partition {partition} of {name} is not dense"))
                    }
                }
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                let entry = self.configs.entry(resource.clone()).or_default();
                match value {
                    Some(v) => {
                        entry.insert(name.clone(), v.clone());
                    }
                    None => {
                        entry.remove(name);
                    }
                }
                if entry.is_empty() {
                    self.configs.remove(resource);
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let name = self
                    .topic_names
                    .remove(topic_id)
                    .ok_or_else(|| format!("removal of unknown topic {topic_id}"))?;
                self.topics.remove(&name);
                self.configs.remove(&ConfigResource::Topic(name));
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                if *next_producer_id < self.next_producer_id {
                    return Err("producer id block moved backwards".into());
                }
                self.next_producer_id = *next_producer_id;
            }
        }
        self.metadata_offset += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_id_prints_as_kafka_base64() {
        let id = TopicId([0; 16]);
        assert_eq!(id.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(id.to_string().len(), 22);
    }
}
