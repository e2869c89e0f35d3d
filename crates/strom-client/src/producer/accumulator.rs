//! Per-partition batching (Java's `RecordAccumulator`): records are appended to
//! an open batch per partition, which is sealed when it reaches `batch.size`,
//! when `linger.ms` has passed, or on flush. Sealed batches wait in a per-partition
//! queue, in order, until the sender drains them. Keyless records follow a sticky
//! partition that changes only when its batch is sealed (KIP-480).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use strom_protocol::records::{
    decode_batch, set_producer_state, Compression, Header, RecordBatchBuilder,
};

use super::{ProducerError, ProducerRecord, RecordMetadata, Responder};
use crate::cluster::PartitionMetadata;

/// Per-record overhead assumed when sizing a batch (varint lengths, deltas,
/// attributes): Java's estimate is of the same order. The 61-byte batch header
/// is counted once per batch.
pub(crate) const RECORD_OVERHEAD_BYTES: usize = 21;
const BATCH_HEADER_BYTES: usize = 61;
/// Cap on the decompressed size of a batch split after `MESSAGE_TOO_LARGE`:
/// the producer's own batch, bounded by `batch.size`/`max.request.size`, so
/// this only guards against a bug, not a peer.
const MAX_SPLIT_UNCOMPRESSED_BYTES: usize = 256 * 1024 * 1024;

/// Bytes a record adds to a batch, before compression.
pub(crate) fn record_size(r: &ProducerRecord) -> usize {
    let headers: usize = r
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()) + 10)
        .sum();
    RECORD_OVERHEAD_BYTES
        + r.key.as_ref().map_or(0, |k| k.len())
        + r.value.as_ref().map_or(0, |v| v.len())
        + headers
}

/// Producer identity stamped on idempotent batches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProducerIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// One batch for one partition and the futures of its records.
pub(crate) struct Batch {
    pub topic: String,
    pub partition: i32,
    builder: Option<RecordBatchBuilder>,
    /// The encoded batch, fixed once drained so retries resend identical bytes.
    pub bytes: Option<Bytes>,
    /// Futures to complete, with each record's create timestamp, in offset order.
    responders: Vec<(Responder, i64)>,
    size_bytes: usize,
    created: Instant,
    /// When `delivery.timeout.ms` runs out for the batch's first record.
    pub deadline: Instant,
    /// Sends so far that failed retriably.
    pub attempts: u32,
    pub base_sequence: Option<i32>,
    /// Not resent before this instant (`retry.backoff.ms`).
    pub retry_at: Option<Instant>,
    /// Encoded under a producer id that was since replaced: the next send
    /// writes the new id and sequence into the header.
    restamp: bool,
    /// Written with the transactional attribute (a transactional producer's batch).
    transactional: bool,
}

impl Batch {
    pub fn record_count(&self) -> usize {
        self.responders.len()
    }

    /// Completes every record: offsets follow the batch's base offset.
    pub fn complete(self, base_offset: i64, log_append_time_ms: i64) {
        for (i, (tx, ts)) in self.responders.into_iter().enumerate() {
            let offset = if base_offset < 0 {
                -1
            } else {
                base_offset + i as i64
            };
            let timestamp = if log_append_time_ms >= 0 {
                log_append_time_ms
            } else {
                ts
            };
            tx.send(Ok(RecordMetadata {
                topic: self.topic.clone(),
                partition: self.partition,
                offset,
                timestamp,
            }));
        }
    }

    /// Fails every record with `err`.
    pub fn fail(self, err: ProducerError) {
        for (tx, _) in self.responders {
            tx.send(Err(err.clone()));
        }
    }

    /// Encodes the batch (once), with the producer id and sequence when idempotent.
    /// A batch encoded before a producer id reset gets the new id and sequence
    /// written into its header instead.
    fn seal_bytes(&mut self, identity: Option<ProducerIdentity>) -> Result<(), ProducerError> {
        if let Some(bytes) = &self.bytes {
            if let (Some(id), Some(seq), true) = (identity, self.base_sequence, self.restamp) {
                let mut b = bytes.to_vec();
                set_producer_state(&mut b, id.producer_id, id.producer_epoch, seq);
                self.bytes = Some(Bytes::from(b));
                self.restamp = false;
            }
            return Ok(());
        }
        let mut builder = self.builder.take().expect("unsealed batch has a builder");
        if let (Some(id), Some(seq)) = (identity, self.base_sequence) {
            builder = builder
                .producer(id.producer_id, id.producer_epoch, seq)
                .transactional(self.transactional);
        }
        // A transactional batch without a producer id would be refused by the
        // broker; the transaction manager never lets one be drained.
        debug_assert!(!self.transactional || identity.is_some());
        let bytes = builder
            .build()
            .map_err(|e| ProducerError::Encode(e.to_string()))?;
        self.bytes = Some(bytes.freeze());
        Ok(())
    }
}

/// One partition's open batch, sealed queue and send state.
#[derive(Default)]
pub(crate) struct PartitionQueue {
    open: Option<Batch>,
    /// Sealed batches in send order (retried ones keep their place by sequence).
    pub queue: VecDeque<Batch>,
    /// Produce requests in flight carrying a batch of this partition.
    pub in_flight: usize,
    /// Next sequence number to assign (idempotence).
    next_sequence: i32,
    /// A batch failed retriably: send one at a time until it is through, so
    /// sequence order (and record order) is kept.
    pub retrying: bool,
}

/// All partitions' batches.
pub(crate) struct Accumulator {
    pub partitions: HashMap<(String, i32), PartitionQueue>,
    sticky: HashMap<String, i32>,
    batch_size: usize,
    linger: Duration,
    compression: Compression,
    delivery_timeout: Duration,
    /// A sequenced batch failed for good: its sequence numbers never reached
    /// the broker, so later batches of its partition would be out of order.
    /// The sender replaces the producer id before sending more.
    pub sequence_gap: bool,
    /// Batches carry the transactional attribute (`transactional.id` is set).
    transactional: bool,
    /// Where the next drain starts among the partitions (see [`Accumulator::drain`]).
    drain_start: usize,
}

impl Accumulator {
    pub fn new(
        batch_size: usize,
        linger: Duration,
        compression: Compression,
        delivery_timeout: Duration,
        transactional: bool,
    ) -> Self {
        Accumulator {
            partitions: HashMap::new(),
            sticky: HashMap::new(),
            batch_size,
            linger,
            compression,
            delivery_timeout,
            sequence_gap: false,
            transactional,
            drain_start: 0,
        }
    }

    /// The sticky partition for keyless records of `topic`; when its open batch
    /// cannot take `size` more bytes, that batch is sealed and a new partition
    /// chosen among those with a leader, or among all if none has one (KIP-480).
    pub fn sticky_partition(
        &mut self,
        topic: &str,
        partitions: &[PartitionMetadata],
        size: usize,
    ) -> i32 {
        let with_leader = partitions.iter().filter(|p| p.leader >= 0).count();
        let available = |p: &PartitionMetadata| with_leader == 0 || p.leader >= 0;
        // Read before sealing: sealing forgets the sticky partition, and the
        // next one must differ from it (KIP-480).
        let previous = self.sticky.get(topic).copied();
        if let Some(p) = previous {
            let full = self
                .partitions
                .get(&(topic.to_string(), p))
                .and_then(|q| q.open.as_ref())
                .is_some_and(|b| b.size_bytes + size > self.batch_size);
            if !full && partitions.iter().any(|m| m.partition == p && available(m)) {
                return p;
            }
            if full {
                self.seal(topic, p);
            }
        }
        let choices: Vec<i32> = partitions
            .iter()
            .filter(|m| available(m))
            .map(|m| m.partition)
            .collect();
        let choices: Vec<i32> = choices
            .iter()
            .copied()
            .filter(|&p| choices.len() < 2 || Some(p) != previous)
            .collect();
        let p = choices[rand::rng().random_range(0..choices.len())];
        self.sticky.insert(topic.to_string(), p);
        p
    }

    /// Appends a record to `partition`'s open batch, sealing it first when full.
    pub fn append(
        &mut self,
        partition: i32,
        record: ProducerRecord,
        timestamp: i64,
        responder: Responder,
        now: Instant,
    ) {
        let size = record_size(&record);
        let key = (record.topic.clone(), partition);
        let full = self
            .partitions
            .get(&key)
            .and_then(|q| q.open.as_ref())
            .is_some_and(|b| b.size_bytes + size > self.batch_size);
        if full {
            self.seal(&record.topic, partition);
        }
        let q = self.partitions.entry(key).or_default();
        let batch = q.open.get_or_insert_with(|| Batch {
            topic: record.topic.clone(),
            partition,
            builder: Some(RecordBatchBuilder::new(self.compression)),
            bytes: None,
            responders: Vec::new(),
            size_bytes: BATCH_HEADER_BYTES,
            created: now,
            deadline: now + self.delivery_timeout,
            attempts: 0,
            base_sequence: None,
            restamp: false,
            retry_at: None,
            transactional: self.transactional,
        });
        batch.size_bytes += size;
        let headers: Vec<Header> = record.headers;
        batch
            .builder
            .as_mut()
            .expect("open batch has a builder")
            .push(timestamp, record.key, record.value, headers);
        batch.responders.push((responder, timestamp));
    }

    /// Moves `partition`'s open batch to its queue; a sealed sticky batch ends the stickiness.
    fn seal(&mut self, topic: &str, partition: i32) {
        if let Some(q) = self.partitions.get_mut(&(topic.to_string(), partition)) {
            if let Some(b) = q.open.take() {
                q.queue.push_back(b);
            }
        }
        if self.sticky.get(topic) == Some(&partition) {
            self.sticky.remove(topic);
        }
    }

    /// Seals open batches that are full, have lingered long enough, or (when
    /// `flushing`) any open batch.
    pub fn seal_ready(&mut self, now: Instant, flushing: bool) {
        let ready: Vec<(String, i32)> = self
            .partitions
            .iter()
            .filter(|(_, q)| {
                q.open.as_ref().is_some_and(|b| {
                    flushing || b.size_bytes >= self.batch_size || now >= b.created + self.linger
                })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (topic, partition) in ready {
            self.seal(&topic, partition);
        }
    }

    /// Fails batches (not in flight) whose delivery timeout has passed.
    pub fn expire(&mut self, now: Instant, delivery_timeout_ms: u64) -> usize {
        let mut expired = 0;
        for q in self.partitions.values_mut() {
            // Most steps expire nothing: look before rebuilding the queue.
            if q.queue.iter().any(|b| now >= b.deadline) {
                let mut keep = VecDeque::with_capacity(q.queue.len());
                for b in q.queue.drain(..) {
                    if now >= b.deadline {
                        expired += b.record_count();
                        // Its sequence numbers will never reach the broker.
                        self.sequence_gap |= b.base_sequence.is_some();
                        b.fail(ProducerError::DeliveryTimeout {
                            delivery_timeout_ms,
                        });
                    } else {
                        keep.push_back(b);
                    }
                }
                q.queue = keep;
            }
            if q.open.as_ref().is_some_and(|b| now >= b.deadline) {
                let b = q.open.take().expect("checked above");
                expired += b.record_count();
                b.fail(ProducerError::DeliveryTimeout {
                    delivery_timeout_ms,
                });
            }
        }
        expired
    }

    /// Fails every batch not in flight (open or queued) with `err`, as Java's
    /// `abortUndrainedBatches` does when a transaction cannot commit; returns
    /// the number of records failed. Batches in flight complete normally.
    pub fn fail_undrained(&mut self, err: &ProducerError) -> usize {
        let mut failed = 0;
        for q in self.partitions.values_mut() {
            let batches = q.open.take().into_iter().chain(q.queue.drain(..));
            for b in batches {
                failed += b.record_count();
                self.sequence_gap |= b.base_sequence.is_some();
                b.fail(err.clone());
            }
            q.retrying = false;
        }
        self.sticky.clear();
        failed
    }

    /// Takes the next sendable batch of each partition whose leader `leader_of`
    /// knows, up to `max_in_flight` per partition (one at a time while retrying),
    /// assigning sequence numbers to first sends when `identity` is set. What
    /// goes to one broker stays within `max_request_size` (`max.request.size`;
    /// a first batch always goes), as in Kafka's drain; the next drain starts
    /// at the first partition left out, so that every partition gets its turn.
    pub fn drain(
        &mut self,
        now: Instant,
        max_in_flight: usize,
        max_request_size: usize,
        identity: Option<ProducerIdentity>,
        mut leader_of: impl FnMut(&str, i32) -> Option<i32>,
    ) -> Vec<(i32, Batch)> {
        let mut out = Vec::new();
        let mut queues: Vec<_> = self.partitions.iter_mut().collect();
        if queues.is_empty() {
            return out;
        }
        let count = queues.len();
        let start = self.drain_start % count;
        queues.rotate_left(start);
        let mut request_bytes: HashMap<i32, usize> = HashMap::new();
        let mut first_left_out = None;
        for (i, ((topic, partition), q)) in queues.into_iter().enumerate() {
            let limit = if q.retrying { 1 } else { max_in_flight };
            if q.in_flight >= limit {
                continue;
            }
            let Some(front) = q.queue.front() else {
                continue;
            };
            if front.retry_at.is_some_and(|t| now < t) {
                continue;
            }
            let size = front.bytes.as_ref().map_or(front.size_bytes, Bytes::len);
            let Some(leader) = leader_of(topic, *partition) else {
                continue;
            };
            let request = request_bytes.entry(leader).or_default();
            if *request > 0 && *request + size > max_request_size {
                first_left_out.get_or_insert(i);
                continue;
            }
            let mut batch = q.queue.pop_front().expect("front exists");
            if identity.is_some() && batch.base_sequence.is_none() {
                batch.base_sequence = Some(q.next_sequence);
                // Sequences wrap to 0 after i32::MAX, as in Kafka.
                let next = i64::from(q.next_sequence) + batch.record_count() as i64;
                q.next_sequence = (next % (i64::from(i32::MAX) + 1)) as i32;
            }
            if let Err(e) = batch.seal_bytes(identity) {
                batch.fail(e);
                continue;
            }
            *request += batch.bytes.as_ref().map_or(size, Bytes::len);
            q.in_flight += 1;
            out.push((leader, batch));
        }
        if let Some(i) = first_left_out {
            self.drain_start = (start + i) % count;
        }
        out
    }

    /// Whether any partition has a produce request in flight.
    pub fn any_in_flight(&self) -> bool {
        self.partitions.values().any(|q| q.in_flight > 0)
    }

    /// After a new producer id: every partition's sequence restarts at 0, and
    /// queued batches that were sequenced under the old id are sequenced again
    /// (in queue order) when next sent. Call with nothing in flight.
    pub fn reset_sequences(&mut self) {
        self.sequence_gap = false;
        for q in self.partitions.values_mut() {
            q.next_sequence = 0;
            q.retrying = false;
            for b in q.queue.iter_mut() {
                if b.base_sequence.take().is_some() {
                    b.restamp = true;
                }
            }
        }
    }

    /// Splits a batch the broker refused as too large (`MESSAGE_TOO_LARGE`)
    /// into one batch per record, as Java's producer splits such a batch
    /// instead of failing every record in it: records that fit then go
    /// through, and only the oversized one fails. The parts keep the batch's
    /// sequence numbers (one each, in order), its deadline and its futures.
    /// `None` (the batch untouched) if it cannot be split: one record, or
    /// not encoded; on success the batch is left without records.
    pub fn split(&self, batch: &mut Batch) -> Option<Vec<Batch>> {
        if batch.record_count() < 2 {
            return None;
        }
        let bytes = batch.bytes.clone()?;
        let (header, records) = decode_batch(&bytes, MAX_SPLIT_UNCOMPRESSED_BYTES).ok()?;
        if records.len() != batch.responders.len() {
            return None;
        }
        let responders = std::mem::take(&mut batch.responders);
        let parts = records
            .into_iter()
            .zip(responders)
            .enumerate()
            .map(|(i, (record, responder))| {
                let size = BATCH_HEADER_BYTES
                    + RECORD_OVERHEAD_BYTES
                    + record.key.as_ref().map_or(0, |k| k.len())
                    + record.value.as_ref().map_or(0, |v| v.len());
                let mut builder = RecordBatchBuilder::new(self.compression);
                builder.push(responder.1, record.key, record.value, record.headers);
                Batch {
                    topic: batch.topic.clone(),
                    partition: batch.partition,
                    builder: Some(builder),
                    bytes: None,
                    responders: vec![responder],
                    size_bytes: size,
                    created: batch.created,
                    deadline: batch.deadline,
                    attempts: batch.attempts,
                    base_sequence: batch
                        .base_sequence
                        .map(|s| ((i64::from(s) + i as i64) % (i64::from(i32::MAX) + 1)) as i32),
                    retry_at: None,
                    restamp: batch.restamp,
                    transactional: batch.transactional,
                }
            })
            .collect();
        debug_assert!(header.records_count >= 2);
        Some(parts)
    }

    /// Puts a retriable failure back in its partition's queue, ahead of batches
    /// with higher (or no) sequence numbers.
    pub fn requeue(&mut self, batch: Batch) {
        let q = self
            .partitions
            .entry((batch.topic.clone(), batch.partition))
            .or_default();
        q.retrying = true;
        let at = q
            .queue
            .iter()
            .position(|b| match (b.base_sequence, batch.base_sequence) {
                (Some(s), Some(mine)) => s > mine,
                (None, _) => true,
                (Some(_), None) => false,
            })
            .unwrap_or(q.queue.len());
        q.queue.insert(at, batch);
    }

    /// The earliest instant at which something here may become sendable or expire.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        for q in self.partitions.values() {
            if let Some(b) = &q.open {
                consider(b.created + self.linger);
                consider(b.deadline);
            }
            if let Some(b) = q.queue.front() {
                consider(b.retry_at.unwrap_or(b.deadline).min(b.deadline));
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    /// An accumulator holding `batches` sealed batches of one 300-byte record
    /// for each of `partitions` partitions of topic "t".
    fn filled(partitions: i32, batches: usize) -> Accumulator {
        let mut acc = Accumulator::new(
            16384,
            Duration::ZERO,
            Compression::None,
            Duration::from_secs(60),
            false,
        );
        let now = Instant::now();
        for _ in 0..batches {
            for partition in 0..partitions {
                let (tx, _rx) = oneshot::channel();
                let record = ProducerRecord::new("t").value(vec![b'x'; 300]);
                acc.append(partition, record, 0, Responder::new(tx), now);
            }
            acc.seal_ready(now, true);
        }
        acc
    }

    #[test]
    fn a_drain_keeps_within_max_request_size_and_the_next_starts_where_it_stopped() {
        let mut acc = filled(6, 2);
        let estimate = acc.partitions.values().next().unwrap().queue[0].size_bytes;
        // Room for two batches per request.
        let limit = estimate * 5 / 2;
        let mut taken = Vec::new();
        for drain in 0..3 {
            let drained = acc.drain(Instant::now(), 5, limit, None, |_, _| Some(1));
            let bytes: usize = drained
                .iter()
                .map(|(_, b)| b.bytes.as_ref().unwrap().len())
                .sum();
            assert_eq!(drained.len(), 2, "drain {drain}");
            assert!(bytes <= limit, "drain {drain}: {bytes} bytes over {limit}");
            taken.extend(drained.into_iter().map(|(_, b)| b.partition));
        }
        // Each partition's first batch before any partition's second.
        taken.sort();
        assert_eq!(taken, (0..6).collect::<Vec<_>>());
    }

    #[test]
    fn a_batch_larger_than_max_request_size_still_goes_alone() {
        let mut acc = filled(3, 1);
        let drained = acc.drain(Instant::now(), 5, 10, None, |_, _| Some(1));
        assert_eq!(drained.len(), 1);
        // Brokers are filled separately.
        let drained = acc.drain(Instant::now(), 5, 10, None, |_, p| Some(p));
        assert_eq!(drained.len(), 2);
    }
}
