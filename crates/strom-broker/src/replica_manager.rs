//! The partitions this broker hosts, kept in step with the metadata image.
//!
//! Each partition lives in `<data dir>/<topic>-<partition>/` with a
//! `partition.metadata` file naming its topic id, so a directory left by a
//! deleted topic is never mistaken for a new topic of the same name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use strom_controller::{ClusterImage, TopicId};
use strom_storage::PartitionLog;

use crate::config::{BrokerConfig, TopicConfig};
use crate::partition::{Partition, SyncRounds};
use crate::state::now_ms;

const PARTITION_METADATA: &str = "partition.metadata";
const DELETE_SUFFIX: &str = "-delete";

/// Hosted partitions by (topic, partition).
pub struct ReplicaManager {
    data_dir: PathBuf,
    node_id: i32,
    /// Whether the previous run closed every log cleanly (no recovery needed).
    clean_shutdown: bool,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// Group commit for `flush.messages`, shared by every partition.
    rounds: Arc<SyncRounds>,
}

fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

fn read_topic_id(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(PARTITION_METADATA)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id: "))
        .map(|s| s.trim().to_owned())
}

fn write_topic_id(dir: &Path, id: &TopicId) -> std::io::Result<()> {
    let tmp = dir.join(format!("{PARTITION_METADATA}.tmp"));
    std::fs::write(&tmp, format!("version: 0\ntopic_id: {id}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(PARTITION_METADATA))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Removes a partition directory: renamed first (atomic), then deleted, so a
/// crash in between leaves a `-delete` directory that the next start removes.
fn remove_partition_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let mut doomed = dir.as_os_str().to_owned();
    doomed.push(format!(".{}{DELETE_SUFFIX}", now_ms()));
    let doomed = PathBuf::from(doomed);
    std::fs::rename(dir, &doomed)?;
    std::fs::remove_dir_all(&doomed)
}

impl ReplicaManager {
    /// Prepares the data directory: removes half-deleted partitions.
    pub fn new(data_dir: &Path, node_id: i32, clean_shutdown: bool) -> std::io::Result<Self> {
        for entry in std::fs::read_dir(data_dir)? {
            let path = entry?.path();
            if path.is_dir() && path.to_string_lossy().ends_with(DELETE_SUFFIX) {
                std::fs::remove_dir_all(&path)?;
            }
        }
        Ok(ReplicaManager {
            data_dir: data_dir.to_owned(),
            node_id,
            clean_shutdown,
            partitions: RwLock::new(HashMap::new()),
            rounds: Arc::default(),
        })
    }

    /// The hosted partition, if any.
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .expect("partitions lock")
            .get(&(topic.to_owned(), partition))
            .cloned()
    }

    /// The broker's `flush.messages` sync rounds.
    pub fn sync_rounds(&self) -> Arc<SyncRounds> {
        self.rounds.clone()
    }

    /// Every hosted partition.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .expect("partitions lock")
            .values()
            .cloned()
            .collect()
    }

    /// Brings hosted partitions in line with `image`: opens (and on first
    /// sight creates) the ones assigned here, removes the ones that are gone,
    /// and refreshes leader epochs and configs.
    pub fn reconcile(&self, image: &ClusterImage, broker: &BrokerConfig) -> std::io::Result<()> {
        let mut partitions = self.partitions.write().expect("partitions lock");
        // Remove partitions whose topic is gone or was re-created under a new id.
        let stale: Vec<(String, i32)> = partitions
            .iter()
            .filter(|((topic, p), partition)| {
                image.topic(topic).is_none_or(|t| {
                    t.topic_id != partition.topic_id || *p as usize >= t.partitions.len()
                })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Some(partition) = partitions.remove(&key) {
                tracing::info!(topic = %key.0, partition = key.1, "deleting partition");
                drop(partition);
                remove_partition_dir(&partition_dir(&self.data_dir, &key.0, key.1))?;
            }
        }
        for topic in image.topics.values() {
            let config = Arc::new(TopicConfig::resolve(&topic.name, broker, image));
            for registration in &topic.partitions {
                if !registration.replicas.contains(&self.node_id) {
                    continue;
                }
                let key = (topic.name.clone(), registration.partition);
                if let Some(existing) = partitions.get(&key) {
                    existing.set_leader_epoch(registration.leader_epoch);
                    if *existing.config() != *config {
                        existing.set_config(config.clone(), config.log_config());
                    }
                    continue;
                }
                let dir = partition_dir(&self.data_dir, &topic.name, registration.partition);
                let id = topic.topic_id.to_string();
                match read_topic_id(&dir) {
                    Some(found) if found != id => {
                        tracing::warn!(dir = %dir.display(), "removing directory of an earlier topic with the same name");
                        remove_partition_dir(&dir)?;
                    }
                    _ => {}
                }
                std::fs::create_dir_all(&dir)?;
                write_topic_id(&dir, &topic.topic_id)?;
                let log =
                    PartitionLog::open(&dir, config.log_config(), self.clean_shutdown, now_ms())
                        .map_err(|e| {
                            std::io::Error::other(format!("opening {}: {e}", dir.display()))
                        })?;
                let partition = Partition::new(
                    topic.name.clone(),
                    topic.topic_id,
                    registration.partition,
                    log,
                    registration.leader_epoch,
                    config.clone(),
                    self.rounds.clone(),
                );
                partitions.insert(key, Arc::new(partition));
            }
        }
        Ok(())
    }

    /// Removes directories on disk that belong to no topic in `image` (topics
    /// deleted while this broker was down).
    pub fn remove_orphans(&self, image: &ClusterImage) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.data_dir)? {
            let path = entry?.path();
            if !path.is_dir() || !path.join(PARTITION_METADATA).exists() {
                continue;
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some((topic, p)) = name.rsplit_once('-') else {
                continue;
            };
            let Ok(p) = p.parse::<i32>() else { continue };
            let keep = image.topic(topic).is_some_and(|t| {
                (p as usize) < t.partitions.len()
                    && read_topic_id(&path).as_deref() == Some(&t.topic_id.to_string())
            });
            if !keep {
                tracing::info!(dir = %path.display(), "removing partition of a deleted topic");
                remove_partition_dir(&path)?;
            }
        }
        Ok(())
    }

    /// Flushes and closes every log (clean shutdown).
    pub fn close_all(&self) -> Result<(), String> {
        let partitions: Vec<_> = self
            .partitions
            .write()
            .expect("partitions lock")
            .drain()
            .collect();
        let mut first_error = None;
        for ((topic, p), partition) in partitions {
            if let Err(e) = partition.with_log_mut(|log| log.close_in_place()) {
                tracing::error!(%topic, partition = p, error = %e, "closing log failed");
                first_error.get_or_insert(e.to_string());
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
