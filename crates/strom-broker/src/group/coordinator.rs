//! The group coordinator's runtime: owns every group's state machine and
//! committed offsets, persists them to `__consumer_offsets`, routes delayed
//! join and sync responses, and drives the groups' timers.
//!
//! The state machines ([`ClassicGroup`]) decide; this module does the I/O they
//! ask for. One async lock guards all groups; a change and the record that
//! persists it happen under it, so records reach the log in the order the
//! changes happened.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strom_protocol::records::{Compression, RecordBatchBuilder};
use strom_protocol::ErrorCode;
use tokio::sync::{oneshot, watch, Notify};

use super::classic::{
    ClassicGroup, GroupConfig, GroupSnapshot, JoinResponse, MemberSnapshot, Output, RequestId,
    SyncResponse,
};
use super::consumer::{ConsumerGroup, ConsumerGroupConfig, Output as ConsumerOutput, TopicsView};
use super::consumer_records::{self, OffsetsRecord};
use super::load::Replay;
use super::offsets::GroupOffsets;
use super::records::{GroupValue, MemberValue, OffsetsKey};
use super::txn_offsets::OpenTransactions;
use crate::admin;
use crate::state::{now_ms, State};

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// `offsets.topic.segment.bytes` default (100 MiB): small segments let the
/// cleaner compact the topic often.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: &str = "104857600";
/// Largest decompressed batch read back while loading groups.
const LOAD_BATCH_CAP_BYTES: usize = 64 * 1024 * 1024;
/// Longest the coordinator sleeps without looking at deadlines.
const MAX_TIMER_SLEEP: Duration = Duration::from_secs(1);

/// Coordinator settings, from broker properties with Kafka's names.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Classic-group timeouts and limits.
    pub group: GroupConfig,
    /// `offsets.topic.num.partitions` (50).
    pub offsets_topic_partitions: i32,
    /// `offsets.retention.minutes` in ms (7 days): offsets of an empty group expire this long after commit.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms` (10 minutes).
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes` (4096).
    pub offset_metadata_max_bytes: usize,
    /// KIP-848 consumer groups: session timeout, heartbeat interval, assignors.
    pub consumer: ConsumerGroupConfig,
}

/// A delayed answer to a JoinGroup or SyncGroup.
pub enum Reply {
    Join(JoinResponse),
    Sync(SyncResponse),
}

/// One group: its membership state machine and its committed offsets.
///
/// A group speaks one protocol at a time: `consumer` is set while it is a
/// KIP-848 consumer group; otherwise `classic` holds its membership. An empty
/// group switches protocol with its first member (offsets are kept), as Kafka
/// allows; a non-empty group refuses members of the other protocol.
pub struct GroupEntry {
    pub classic: ClassicGroup,
    pub consumer: Option<ConsumerGroup>,
    /// Committed offsets, and those of open transactions (KIP-98).
    pub offsets: GroupOffsets,
    /// The member ids whose KIP-848 records are in the log (`None`: the log
    /// holds no consumer-group records for this group). The next write
    /// tombstones the members that are no longer in the group.
    pub consumer_records: Option<BTreeSet<String>>,
}

impl GroupEntry {
    /// A new, empty classic group.
    pub fn new(group_id: &str, now_ms: i64) -> Self {
        GroupEntry {
            classic: ClassicGroup::new(group_id.to_owned(), now_ms),
            consumer: None,
            offsets: GroupOffsets::default(),
            consumer_records: None,
        }
    }
    /// Whether no member of either protocol is in the group.
    pub fn is_empty(&self) -> bool {
        self.classic.members().next().is_none()
            && self.consumer.as_ref().is_none_or(|c| c.is_empty())
    }
    /// The group's type as ListGroups reports it.
    pub fn group_type(&self) -> &'static str {
        if self.consumer.is_some() {
            "consumer"
        } else {
            "classic"
        }
    }
    /// The group's state name as ListGroups reports it.
    pub fn state_name(&self) -> &'static str {
        match &self.consumer {
            Some(c) => c.state().name(),
            None => self.classic.state().name(),
        }
    }
    /// The earliest timer of either state machine.
    fn next_deadline_ms(&self) -> Option<i64> {
        let consumer = self.consumer.as_ref().and_then(|c| c.next_deadline_ms());
        match (self.classic.next_deadline_ms(), consumer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Every group this coordinator owns.
#[derive(Default)]
pub struct Groups {
    pub groups: HashMap<String, GroupEntry>,
    /// When offsets were last checked for expiry.
    last_expiry_check_ms: i64,
    /// Which groups hold pending transactional offsets of which producer, so
    /// that a transaction marker finds them without scanning every group.
    pub(super) open_transactions: OpenTransactions,
}

/// The group coordinator of one broker.
pub struct GroupCoordinator {
    pub config: CoordinatorConfig,
    groups: tokio::sync::Mutex<Groups>,
    waiting: std::sync::Mutex<HashMap<RequestId, oneshot::Sender<Reply>>>,
    next_request_id: AtomicU64,
    /// Wakes the timer task when a deadline may have moved earlier.
    timers_changed: Notify,
}

/// Java's `String.hashCode` over UTF-16 code units, which Kafka uses to map a
/// group to its `__consumer_offsets` partition.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// A fresh member id: `<prefix>-<uuid>`, as Kafka's.
pub fn new_member_id(prefix: &str) -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{prefix}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        (u16::from_be_bytes([b[6], b[7]]) & 0x0fff) | 0x4000,
        (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]])
    )
}

fn snapshot_value(s: &GroupSnapshot) -> GroupValue {
    GroupValue {
        protocol_type: s.protocol_type.clone(),
        generation: s.generation_id,
        protocol: s.protocol_name.clone(),
        leader: s.leader.clone(),
        current_state_timestamp_ms: s.current_state_timestamp_ms,
        members: s
            .members
            .iter()
            .map(|m| MemberValue {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: m.subscription.clone(),
                assignment: m.assignment.clone(),
            })
            .collect(),
    }
}

fn value_snapshot(group_id: &str, v: GroupValue) -> GroupSnapshot {
    GroupSnapshot {
        group_id: group_id.to_owned(),
        protocol_type: v.protocol_type,
        generation_id: v.generation,
        protocol_name: v.protocol,
        leader: v.leader,
        current_state_timestamp_ms: v.current_state_timestamp_ms,
        members: v
            .members
            .into_iter()
            .map(|m| MemberSnapshot {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: m.subscription,
                assignment: m.assignment,
            })
            .collect(),
    }
}

impl GroupCoordinator {
    pub fn new(config: CoordinatorConfig) -> Self {
        GroupCoordinator {
            config,
            groups: tokio::sync::Mutex::new(Groups::default()),
            waiting: std::sync::Mutex::new(HashMap::new()),
            next_request_id: AtomicU64::new(1),
            timers_changed: Notify::new(),
        }
    }

    /// The `__consumer_offsets` partition that stores `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        (java_string_hash(group_id) & 0x7fff_ffff) % self.config.offsets_topic_partitions
    }

    /// The groups, locked (handlers that read or change several things at once).
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, Groups> {
        self.groups.lock().await
    }

    /// Registers a delayed response; the receiver gets it when the group decides.
    pub fn register(&self) -> (RequestId, oneshot::Receiver<Reply>) {
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().expect("waiting lock").insert(id, tx);
        (id, rx)
    }

    /// Drops a registration whose request gave up.
    pub fn forget(&self, id: RequestId) {
        self.waiting.lock().expect("waiting lock").remove(&id);
    }

    /// Carries out what a group's state machine asked for: persist its
    /// metadata (first, so an answer never runs ahead of the record), then
    /// answer the waiting requests.
    pub async fn apply_outputs(
        &self,
        state: &State,
        group_id: &str,
        entry: &GroupEntry,
        outputs: Vec<Output>,
    ) {
        if outputs.iter().any(|o| matches!(o, Output::PersistGroup)) {
            let value = snapshot_value(&entry.classic.snapshot());
            let key = OffsetsKey::Group {
                group: group_id.to_owned(),
            }
            .encode();
            if let Err(code) = self
                .append(state, group_id, vec![(key, Some(value.encode()))])
                .await
            {
                tracing::error!(group = group_id, ?code, "persisting group metadata failed");
            }
        }
        let mut waiting = self.waiting.lock().expect("waiting lock");
        for output in outputs {
            let (id, reply) = match output {
                Output::Join(id, r) => (id, Reply::Join(r)),
                Output::Sync(id, r) => (id, Reply::Sync(r)),
                Output::PersistGroup => continue,
            };
            if let Some(tx) = waiting.remove(&id) {
                let _ = tx.send(reply);
            }
        }
        drop(waiting);
        self.timers_changed.notify_one();
    }

    /// Writes the KIP-848 records that describe the group's consumer state as
    /// it is now, in one batch (atomic): the whole group, plus tombstones for
    /// members written before and gone since. With no consumer group left
    /// (deleted or turned classic), tombstones every consumer record written
    /// for it. Kafka writes only the records that changed; writing the whole
    /// group costs more bytes per change but keeps this stateless.
    pub async fn persist_consumer_group(
        &self,
        state: &State,
        group_id: &str,
        entry: &mut GroupEntry,
    ) -> Result<(), ErrorCode> {
        let previous = entry.consumer_records.clone().unwrap_or_default();
        let (records, written) = match &entry.consumer {
            Some(group) => {
                let snapshot = group.snapshot();
                let written: BTreeSet<String> = snapshot
                    .members
                    .iter()
                    .map(|m| m.member_id.clone())
                    .collect();
                (
                    consumer_records::group_records(&snapshot, &previous),
                    Some(written),
                )
            }
            None if entry.consumer_records.is_some() => (
                consumer_records::group_tombstones(group_id, &previous),
                None,
            ),
            None => return Ok(()),
        };
        self.append(state, group_id, records).await?;
        entry.consumer_records = written;
        Ok(())
    }

    /// Tombstones for every consumer-group record written for the group (to
    /// add to a batch that deletes the group).
    pub fn consumer_tombstones(group_id: &str, entry: &GroupEntry) -> Vec<OffsetsRecord> {
        entry
            .consumer_records
            .as_ref()
            .map(|members| consumer_records::group_tombstones(group_id, members))
            .unwrap_or_default()
    }

    /// Makes sure `__consumer_offsets` exists, creating it as Kafka does on
    /// first use: compacted, `offsets.topic.num.partitions` partitions.
    pub fn ensure_offsets_topic(&self, state: &State) -> Result<(), ErrorCode> {
        if state.controller.image().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let configs = BTreeMap::from([
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            ("compression.type".to_owned(), "producer".to_owned()),
            (
                "segment.bytes".to_owned(),
                OFFSETS_TOPIC_SEGMENT_BYTES.to_owned(),
            ),
        ]);
        match admin::create_topic(
            state,
            OFFSETS_TOPIC,
            self.config.offsets_topic_partitions,
            1,
            configs,
            false,
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.code == ErrorCode::TopicAlreadyExists => Ok(()),
            Err(e) => {
                tracing::error!(error = %e.message, "creating {OFFSETS_TOPIC} failed");
                Err(ErrorCode::CoordinatorNotAvailable)
            }
        }
    }

    /// Appends records to the group's `__consumer_offsets` partition and waits
    /// until they are committed (durable by the topic's flush policy).
    pub async fn append(
        &self,
        state: &State,
        group_id: &str,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), ErrorCode> {
        self.ensure_offsets_topic(state)?;
        let partition = state
            .replicas
            .get(OFFSETS_TOPIC, self.partition_for(group_id))
            .ok_or(ErrorCode::CoordinatorNotAvailable)?;
        let now = now_ms();
        let mut builder = RecordBatchBuilder::new(Compression::None);
        for (key, value) in records {
            builder.push(now, Some(key), value, Vec::new());
        }
        let batch = builder
            .build()
            .map_err(|_| ErrorCode::UnknownServerError)?
            .freeze();
        match partition.append(&batch, now).await {
            Ok(_) => {
                state.notify_data();
                Ok(())
            }
            Err(e) => {
                tracing::error!(group = group_id, code = ?e.code, message = %e.message, "write to {OFFSETS_TOPIC} failed");
                Err(match e.code {
                    ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => {
                        ErrorCode::InvalidCommitOffsetSize
                    }
                    _ => ErrorCode::CoordinatorNotAvailable,
                })
            }
        }
    }

    /// Rebuilds every group from `__consumer_offsets` (start-up).
    pub fn load(&self, state: &State) -> Result<usize, String> {
        let Some(topic) = state.controller.image().topic(OFFSETS_TOPIC).cloned() else {
            return Ok(0);
        };
        let now = now_ms();
        let mut groups = self
            .groups
            .try_lock()
            .map_err(|_| "coordinator busy during load".to_owned())?;
        let mut replay = Replay::default();
        for p in 0..topic.partitions.len() as i32 {
            let Some(partition) = state.replicas.get(OFFSETS_TOPIC, p) else {
                continue;
            };
            partition.replay(LOAD_BATCH_CAP_BYTES, |header, records| {
                replay.batch(&header, records)
            })?;
            replay.end_partition();
        }
        let Replay {
            mut metadata,
            mut offsets,
            mut consumers,
            ..
        } = replay;
        let mut ids: Vec<String> = metadata
            .keys()
            .chain(offsets.keys())
            .chain(consumers.keys())
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            let classic = match metadata.remove(&id).flatten() {
                Some(v) => ClassicGroup::restore(value_snapshot(&id, v), &self.config.group, now),
                None => ClassicGroup::new(id.clone(), now),
            };
            let offsets = offsets.remove(&id).unwrap_or_default();
            let snapshot = match consumers.remove(&id).map(|c| c.into_snapshot(&id)) {
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    tracing::error!(group = %id, error = %e, "dropping inconsistent consumer group records");
                    None
                }
                None => None,
            };
            let snapshot = match snapshot {
                Some(_) if classic.members().next().is_some() => {
                    tracing::warn!(group = %id, "group has classic members and consumer records; keeping the classic group");
                    None
                }
                s => s,
            };
            let consumer_records = snapshot
                .as_ref()
                .map(|s| s.members.iter().map(|m| m.member_id.clone()).collect());
            let consumer = snapshot.map(|s| ConsumerGroup::restore(s, &self.config.consumer, now));
            if classic.members().next().is_none()
                && offsets.is_empty()
                && !offsets.has_any_pending()
                && consumer.is_none()
            {
                continue;
            }
            for producer_id in offsets.pending_producers() {
                groups.open_transactions.add(producer_id, &id);
            }
            groups.groups.insert(
                id,
                GroupEntry {
                    classic,
                    consumer,
                    offsets,
                    consumer_records,
                },
            );
        }
        groups.last_expiry_check_ms = now;
        Ok(groups.groups.len())
    }

    /// Runs group timers (session and rebalance timeouts) and offset expiry
    /// until shutdown. Sleeps until the earliest deadline, or until a change
    /// may have moved it.
    pub async fn run_timers(self: Arc<Self>, state: State, mut shutdown: watch::Receiver<bool>) {
        loop {
            let now = now_ms();
            let next = {
                let mut groups = self.groups.lock().await;
                let ids: Vec<String> = groups.groups.keys().cloned().collect();
                for id in ids {
                    let Some(entry) = groups.groups.get_mut(&id) else {
                        continue;
                    };
                    if entry.classic.next_deadline_ms().is_some_and(|d| d <= now) {
                        let outputs = entry.classic.tick(&self.config.group, now);
                        if !outputs.is_empty() {
                            let entry = &groups.groups[&id];
                            self.apply_outputs(&state, &id, entry, outputs).await;
                        }
                    }
                    let Some(entry) = groups.groups.get_mut(&id) else {
                        continue;
                    };
                    let outputs = match entry.consumer.as_mut() {
                        Some(c) if c.next_deadline_ms().is_some_and(|d| d <= now) => c.tick(now),
                        _ => Vec::new(),
                    };
                    for output in &outputs {
                        if let ConsumerOutput::MemberRemoved { member_id, reason } = output {
                            tracing::info!(group = %id, member_id, ?reason, "consumer group member removed");
                        }
                    }
                    if !outputs.is_empty() {
                        if let Err(code) = self.persist_consumer_group(&state, &id, entry).await {
                            // The next successful write describes the whole group again.
                            tracing::error!(group = %id, ?code, "persisting consumer group failed");
                        }
                    }
                }
                if now - groups.last_expiry_check_ms
                    >= self.config.offsets_retention_check_interval_ms
                {
                    groups.last_expiry_check_ms = now;
                    self.expire_offsets(&state, &mut groups, now).await;
                }
                groups
                    .groups
                    .values()
                    .filter_map(GroupEntry::next_deadline_ms)
                    .min()
            };
            let sleep = next
                .map(|d| {
                    Duration::from_millis(
                        (d - now_ms()).clamp(0, MAX_TIMER_SLEEP.as_millis() as i64) as u64,
                    )
                })
                .unwrap_or(MAX_TIMER_SLEEP);
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(sleep) => {}
                _ = self.timers_changed.notified() => {}
            }
        }
    }

    /// Removes offsets of empty groups older than `offsets.retention.minutes`
    /// (tombstones in the log), and groups left with nothing.
    pub(crate) async fn expire_offsets(&self, state: &State, groups: &mut Groups, now: i64) {
        let retention = self.config.offsets_retention_ms;
        let mut emptied = Vec::new();
        for (id, entry) in groups.groups.iter_mut() {
            if !entry.is_empty() {
                continue;
            }
            // An offset with a pending transactional commit is kept until the
            // transaction ends, and so is the group (Kafka's
            // `cleanupExpiredOffsets`).
            let expired: Vec<(String, i32)> = entry
                .offsets
                .iter()
                .filter(|(k, v)| {
                    now - v.commit_timestamp_ms >= retention && !entry.offsets.has_pending(k)
                })
                .map(|(k, _)| k.clone())
                .collect();
            let all_gone = expired.len() == entry.offsets.len() && !entry.offsets.has_any_pending();
            if expired.is_empty() && !all_gone {
                continue;
            }
            let mut records: Vec<(Bytes, Option<Bytes>)> = expired
                .iter()
                .map(|(topic, partition)| {
                    let key = OffsetsKey::Offset {
                        group: id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    };
                    (key.encode(), None)
                })
                .collect();
            if all_gone {
                records.push((OffsetsKey::Group { group: id.clone() }.encode(), None));
                records.extend(Self::consumer_tombstones(id, entry));
            }
            if self.append(state, id, records).await.is_ok() {
                for k in &expired {
                    entry.offsets.remove(k);
                }
                if all_gone {
                    emptied.push(id.clone());
                }
                tracing::info!(group = %id, expired = expired.len(), "expired committed offsets");
            }
        }
        for id in emptied {
            groups.groups.remove(&id);
        }
    }
}

/// The topics a consumer group may subscribe to, by name: every non-internal topic.
pub fn topics_view(image: &strom_controller::ClusterImage) -> TopicsView {
    image
        .topics
        .values()
        .filter(|t| !t.is_internal())
        .map(|t| (t.name.clone(), (t.topic_id, t.partitions.len() as i32)))
        .collect()
}
