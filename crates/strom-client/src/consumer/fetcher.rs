//! Fetching (Java's `Fetcher`): one Fetch request per partition leader in
//! flight, responses decoded into per-partition buffers, and buffered records
//! handed to `poll` at most `max.poll.records` at a time.
//!
//! Pipelining: `poll` sends the next round of fetches right after taking records
//! from the buffers, so the broker works while the application processes. A
//! partition with buffered records is not fetched again until they are
//! consumed, and no fetch is sent while the buffers hold `fetch.max.bytes`.

use std::collections::{HashMap, HashSet, VecDeque};

use strom_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_protocol::messages::{FetchRequest, FetchResponse};
use strom_protocol::ErrorCode;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::records::{decode_partition, AbortedTxn};
use super::subscription::{FetchState, ResetTo, SubscriptionState};
use super::{AutoOffsetReset, ConsumerConfig, ConsumerError, ConsumerRecord, TopicPartition};
use crate::cluster::Cluster;
use crate::error::ClientError;

/// A fetch that came back, with the offsets it asked for.
pub struct FetchDone {
    node: i32,
    /// The position each partition was fetched from; an answer for a partition
    /// whose position has moved since (a seek) is stale and dropped.
    sent: HashMap<TopicPartition, i64>,
    result: Result<FetchResponse, ClientError>,
}

/// One partition's decoded records waiting for `poll`.
struct Buffered {
    tp: TopicPartition,
    records: VecDeque<ConsumerRecord>,
    /// The position the next record handed out must match (moves as records go).
    position: i64,
    /// Where fetching resumes once the buffer is empty (past skipped control batches).
    next_offset: i64,
    bytes: usize,
}

pub struct Fetcher {
    /// Leaders with a fetch outstanding.
    in_flight: HashSet<i32>,
    tx: mpsc::UnboundedSender<FetchDone>,
    rx: mpsc::UnboundedReceiver<FetchDone>,
    /// Buffered partitions in arrival order; `poll` drains from the front.
    buffered: VecDeque<Buffered>,
    buffered_bytes: usize,
    /// Set when an answer said the metadata is stale or a leader is unknown.
    pub metadata_stale: bool,
}

impl Fetcher {
    pub fn new() -> Fetcher {
        let (tx, rx) = mpsc::unbounded_channel();
        Fetcher {
            in_flight: HashSet::new(),
            tx,
            rx,
            buffered: VecDeque::new(),
            buffered_bytes: 0,
            metadata_stale: false,
        }
    }

    pub fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Drops buffered records of `tp` (after a seek or an unassignment).
    pub fn clear(&mut self, tp: &TopicPartition) {
        self.retain(|b| &b.tp != tp);
    }

    /// Drops buffered records of partitions no longer assigned.
    pub fn retain_assigned(&mut self, subs: &SubscriptionState) {
        self.retain(|b| subs.is_assigned(&b.tp));
    }

    fn retain(&mut self, keep: impl Fn(&Buffered) -> bool) {
        let mut bytes = 0;
        self.buffered.retain(|b| {
            let k = keep(b);
            if !k {
                bytes += b.bytes;
            }
            k
        });
        self.buffered_bytes -= bytes;
    }

    /// Sends a fetch to every leader that has fetchable partitions and no fetch outstanding.
    pub async fn send_fetches(
        &mut self,
        cluster: &Cluster,
        subs: &SubscriptionState,
        config: &ConsumerConfig,
    ) {
        if self.buffered_bytes >= config.fetch_max_bytes as usize {
            return;
        }
        let buffered: HashSet<&TopicPartition> = self.buffered.iter().map(|b| &b.tp).collect();
        let mut by_leader: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        for (tp, offset, _) in subs.fetchable() {
            if buffered.contains(&tp) {
                continue;
            }
            match cluster.leader(&tp.topic, tp.partition) {
                Some(node) if !self.in_flight.contains(&node) => {
                    by_leader.entry(node).or_default().push((tp, offset))
                }
                Some(_) => {}
                None => self.metadata_stale = true,
            }
        }
        for (node, parts) in by_leader {
            if let Err(e) = self.send_fetch(cluster, config, node, parts).await {
                debug!(node, error = %e, "fetch not sent");
                self.metadata_stale |= e.invalidates_metadata();
            }
        }
    }

    async fn send_fetch(
        &mut self,
        cluster: &Cluster,
        config: &ConsumerConfig,
        node: i32,
        parts: Vec<(TopicPartition, i64)>,
    ) -> Result<(), ClientError> {
        let conn = cluster.connection(node).await?;
        let version = conn.version_for::<FetchRequest>()?;
        let mut req = FetchRequest::default();
        req.max_wait_ms = config.fetch_max_wait_ms();
        req.min_bytes = config.fetch_min_bytes;
        req.max_bytes = config.fetch_max_bytes;
        req.isolation_level = config.isolation_level.wire();
        // No fetch session (KIP-227): session id 0 and epoch -1 ask for a full fetch each time.
        req.session_id = 0;
        req.session_epoch = -1;
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (tp, offset) in &parts {
            if topics.last().is_none_or(|t| t.topic.as_str() != tp.topic) {
                let mut t = FetchTopic::default();
                t.topic = tp.topic.as_str().into();
                topics.push(t);
            }
            let mut p = FetchPartition::default();
            p.partition = tp.partition;
            p.fetch_offset = *offset;
            p.partition_max_bytes = config.max_partition_fetch_bytes;
            if version >= 9 {
                // Lets the leader fence a fetch based on stale metadata (KIP-320).
                p.current_leader_epoch = leader_epoch(cluster, tp);
            }
            topics.last_mut().expect("pushed above").partitions.push(p);
        }
        req.topics = topics;
        let pending = conn.dispatch(&req).await?;
        self.in_flight.insert(node);
        let tx = self.tx.clone();
        let sent = parts.into_iter().collect();
        tokio::spawn(async move {
            let result = pending.wait().await;
            let _ = tx.send(FetchDone { node, sent, result });
        });
        Ok(())
    }

    /// Waits for the next fetch answer until `deadline`.
    pub async fn wait(&mut self, deadline: Instant) -> Option<FetchDone> {
        tokio::time::timeout_at(deadline, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Buffers a fetch answer's records and applies its errors: resets on
    /// OFFSET_OUT_OF_RANGE, a metadata refresh on stale-leader errors. The
    /// first error the application must see is returned after every
    /// partition was handled.
    pub fn handle(
        &mut self,
        done: FetchDone,
        subs: &mut SubscriptionState,
        config: &ConsumerConfig,
    ) -> Result<(), ConsumerError> {
        self.in_flight.remove(&done.node);
        let resp = match done.result {
            Ok(resp) => resp,
            Err(e) if e.is_retriable() => {
                debug!(node = done.node, error = %e, "fetch failed");
                self.metadata_stale |= e.invalidates_metadata();
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if resp.error_code != 0 {
            let e = ClientError::kafka(resp.error_code, None);
            self.metadata_stale |= e.invalidates_metadata();
            return if e.is_retriable() {
                Ok(())
            } else {
                Err(e.into())
            };
        }
        let mut first_error = None;
        for t in &resp.responses {
            for p in &t.partitions {
                let tp = TopicPartition::new(t.topic.as_str(), p.partition_index);
                let Some(&fetch_offset) = done.sent.get(&tp) else {
                    continue;
                };
                if subs.position(&tp) != Some(fetch_offset) {
                    continue;
                }
                if let Err(e) = self.handle_partition(tp, fetch_offset, p, subs, config) {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn handle_partition(
        &mut self,
        tp: TopicPartition,
        fetch_offset: i64,
        p: &strom_protocol::messages::fetch_response::PartitionData,
        subs: &mut SubscriptionState,
        config: &ConsumerConfig,
    ) -> Result<(), ConsumerError> {
        if p.error_code == ErrorCode::OffsetOutOfRange.code() {
            let to = match config.auto_offset_reset {
                AutoOffsetReset::Earliest => ResetTo::Earliest,
                AutoOffsetReset::Latest => ResetTo::Latest,
                AutoOffsetReset::None => {
                    return Err(ConsumerError::OffsetOutOfRange {
                        topic: tp.topic,
                        partition: tp.partition,
                        offset: fetch_offset,
                    })
                }
            };
            debug!(%tp, fetch_offset, ?to, "offset out of range; resetting");
            if let Some(s) = subs.get_mut(&tp) {
                s.fetch = FetchState::AwaitingReset(to);
            }
            return Ok(());
        }
        if p.error_code != 0 {
            let e = ClientError::kafka(p.error_code, None);
            self.metadata_stale |= e.invalidates_metadata();
            if e.is_retriable() {
                debug!(%tp, error = %e, "partition fetch error");
                return Ok(());
            }
            return Err(e.into());
        }
        let Some(data) = p.records.as_ref().filter(|d| !d.is_empty()) else {
            return Ok(());
        };
        let aborted: Vec<AbortedTxn> = p
            .aborted_transactions
            .iter()
            .flatten()
            .map(|a| AbortedTxn {
                producer_id: a.producer_id,
                first_offset: a.first_offset,
            })
            .collect();
        let decoded = decode_partition(
            &tp.topic,
            tp.partition,
            fetch_offset,
            data,
            config.isolation_level,
            &aborted,
        )?;
        if decoded.records.is_empty() {
            // Only control or aborted batches: move past them.
            if decoded.next_offset > fetch_offset {
                subs.set_position(&tp, decoded.next_offset, None);
            }
            return Ok(());
        }
        self.buffered_bytes += decoded.bytes;
        self.buffered.push_back(Buffered {
            tp,
            records: decoded.records.into(),
            position: fetch_offset,
            next_offset: decoded.next_offset,
            bytes: decoded.bytes,
        });
        Ok(())
    }

    /// Takes up to `max` buffered records of assigned, unpaused partitions,
    /// advancing their positions past what is returned.
    pub fn drain(&mut self, subs: &mut SubscriptionState, max: usize) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.buffered.len() && out.len() < max {
            let b = &mut self.buffered[i];
            let state = subs.get(&b.tp).copied();
            let stale = subs.position(&b.tp) != Some(b.position);
            if state.is_none() || stale {
                let b = self.buffered.remove(i).expect("index in range");
                self.buffered_bytes -= b.bytes;
                continue;
            }
            if state.is_some_and(|s| s.paused) {
                i += 1;
                continue;
            }
            let take = b.records.len().min(max - out.len());
            for r in b.records.drain(..take) {
                b.position = r.offset + 1;
                subs.set_position(&b.tp, b.position, r.leader_epoch);
                out.push(r);
            }
            if b.records.is_empty() {
                let b = self.buffered.remove(i).expect("index in range");
                self.buffered_bytes -= b.bytes;
                if b.next_offset > b.position {
                    let epoch = match subs.get(&b.tp).map(|s| s.fetch) {
                        Some(FetchState::Valid { leader_epoch, .. }) => leader_epoch,
                        _ => None,
                    };
                    subs.set_position(&b.tp, b.next_offset, epoch);
                }
            }
        }
        out
    }
}

/// The leader epoch metadata reports for `tp`, or -1 when unknown.
fn leader_epoch(cluster: &Cluster, tp: &TopicPartition) -> i32 {
    cluster
        .topic(&tp.topic)
        .and_then(|t| {
            t.partitions
                .iter()
                .find(|p| p.partition == tp.partition)
                .map(|p| p.leader_epoch)
        })
        .unwrap_or(-1)
}
