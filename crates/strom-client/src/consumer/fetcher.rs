//! Fetching (Java's `Fetcher`): one Fetch request per partition leader in
//! flight, answers kept per partition as they came (decoded a batch at a time
//! as `poll` takes records, see `records.rs`), and records handed to `poll`
//! at most `max.poll.records` at a time.
//!
//! Pipelining: `poll` sends the next round of fetches as soon as it has taken in
//! the answers that arrived, before it decodes records from the buffers, so the
//! broker works while the consumer decodes and the application processes. A
//! partition is fetched ahead of what is buffered for it (from the offset
//! after its last buffered batch), so every fetch names every partition that
//! may have data: a fetch holding only partitions that are caught up would wait
//! `fetch.max.wait.ms` at the broker while the others' buffers run dry. No
//! fetch is sent while the buffers hold `fetch.max.bytes`, so they hold at most
//! that plus one answer per leader.

use std::collections::{HashMap, HashSet, VecDeque};

use strom_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_protocol::messages::{FetchRequest, FetchResponse};
use strom_protocol::ErrorCode;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::records::{AbortedTxn, PartitionRecords};
use super::subscription::{FetchState, ResetTo, SubscriptionState};
use super::{AutoOffsetReset, ConsumerConfig, ConsumerError, ConsumerRecord, TopicPartition};
use crate::cluster::Cluster;
use crate::error::ClientError;

/// Most records `drain` makes room for before taking any (more grow the vector).
const MAX_PREALLOCATED_RECORDS: usize = 1024;

/// A fetch that came back, with the offsets it asked for.
pub struct FetchDone {
    node: i32,
    /// The position each partition was fetched from; an answer for a partition
    /// whose position has moved since (a seek) is stale and dropped.
    sent: HashMap<TopicPartition, i64>,
    result: Result<FetchResponse, ClientError>,
}

/// One fetch's records of one partition, waiting for `poll`. A partition may
/// have several, in offset order.
struct Buffered {
    tp: TopicPartition,
    records: PartitionRecords,
    /// The position the next record handed out must match (moves as records go).
    position: i64,
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

    /// Where the next fetch of `tp` starts: after its last buffered fetch, or
    /// at its position when nothing is buffered (None without a position).
    fn fetch_position(&self, tp: &TopicPartition, subs: &SubscriptionState) -> Option<i64> {
        match self.buffered.iter().rev().find(|b| &b.tp == tp) {
            Some(b) => subs.position(tp).map(|_| b.records.next_offset),
            None => subs.position(tp),
        }
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
                bytes += b.records.bytes;
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
        let mut by_leader: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        for (tp, _, _) in subs.fetchable() {
            let Some(offset) = self.fetch_position(&tp, subs) else {
                continue;
            };
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

    /// A fetch answer that has already arrived, if any.
    pub fn try_next(&mut self) -> Option<FetchDone> {
        self.rx.try_recv().ok()
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
                if self.fetch_position(&tp, subs) != Some(fetch_offset) {
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
            self.clear(&tp);
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
        let records = PartitionRecords::new(
            &tp.topic,
            tp.partition,
            fetch_offset,
            data,
            config.isolation_level,
            &aborted,
        );
        if records.is_exhausted() {
            // Nothing but a partial batch.
            return Ok(());
        }
        self.buffered_bytes += records.bytes;
        self.buffered.push_back(Buffered {
            tp,
            records,
            position: fetch_offset,
        });
        Ok(())
    }

    /// Takes up to `max` buffered records of assigned, unpaused partitions,
    /// advancing their positions past what is returned (and past control or
    /// aborted batches). A corrupt batch is an error once the records before
    /// it were returned; its partition stays at the batch, so later polls
    /// fail the same way until the application seeks past it (as Java's does).
    pub fn drain(
        &mut self,
        subs: &mut SubscriptionState,
        max: usize,
    ) -> Result<Vec<ConsumerRecord>, ConsumerError> {
        // Room for a full poll up front: growing by doubling would copy the
        // records several times over.
        let capacity = if self.buffered.is_empty() {
            0
        } else {
            max.min(MAX_PREALLOCATED_RECORDS)
        };
        let mut out = Vec::with_capacity(capacity);
        let mut i = 0;
        while i < self.buffered.len() && out.len() < max {
            let b = &mut self.buffered[i];
            let state = subs.get(&b.tp).copied();
            let stale = subs.position(&b.tp) != Some(b.position);
            if state.is_none() || stale {
                self.remove(i);
                continue;
            }
            if state.is_some_and(|s| s.paused) {
                i += 1;
                continue;
            }
            let before = out.len();
            match b.records.take(max - out.len(), &mut out) {
                Ok(_) => {}
                Err(_) if !out.is_empty() => break,
                Err(e) => {
                    let tp = b.tp.clone();
                    self.clear(&tp);
                    return Err(e);
                }
            }
            if let Some(last) = out[before..].last() {
                b.position = last.offset + 1;
                subs.set_position(&b.tp, b.position, last.leader_epoch);
            }
            if b.records.is_exhausted() {
                let b = self.remove(i);
                if b.records.next_offset > b.position {
                    // Past control and aborted batches at the end.
                    let epoch = match subs.get(&b.tp).map(|s| s.fetch) {
                        Some(FetchState::Valid { leader_epoch, .. }) => leader_epoch,
                        _ => None,
                    };
                    subs.set_position(&b.tp, b.records.next_offset, epoch);
                }
            }
        }
        Ok(out)
    }

    fn remove(&mut self, i: usize) -> Buffered {
        let b = self.buffered.remove(i).expect("index in range");
        self.buffered_bytes -= b.records.bytes;
        b
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
