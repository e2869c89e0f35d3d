//! Produce (key 0): append one record batch per partition; answer per `acks`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use strom_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use strom_protocol::messages::{ProduceRequest, ProduceResponse, StrBytes};
use strom_protocol::records::BatchHeader;
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::{encode_response, Outcome, Request};
use crate::partition::{Partition, PartitionError, PendingAppend};
use crate::state::{now_ms, State};
use crate::txn::{ProducerIdAndEpoch, TopicPartition};

fn failed(index: i32, code: ErrorCode, message: Option<String>) -> PartitionProduceResponse {
    let mut p = PartitionProduceResponse::default();
    p.index = index;
    p.error_code = code.code();
    p.base_offset = -1;
    p.error_message = message.map(StrBytes::from);
    if code == ErrorCode::InvalidRecord {
        // Kafka names the offending batch: always the only one, index 0.
        let mut e = BatchIndexAndErrorMessage::default();
        e.batch_index = 0;
        e.batch_index_error_message = p.error_message.clone();
        p.record_errors = vec![e];
    }
    p
}

/// KIP-890: before the first transactional batch of a producer lands in a
/// partition, check with the transaction coordinator. Produce v11 and older
/// (part 1) only verify that the client added the partition to its ongoing
/// transaction: a produce that arrives late, after its transaction ended (a
/// hung request, a zombie), is refused instead of opening a transaction the
/// coordinator knows nothing about, which would hold back the last stable
/// offset until its timeout. Produce v12+ (part 2, transaction version 2)
/// comes from clients that do not send AddPartitionsToTxn: the partition is
/// added to the transaction here, which is fenced by epoch like any other
/// request of an earlier transaction.
async fn verify_transaction(
    state: &State,
    version: i16,
    transactional_id: &str,
    partition: &Arc<Partition>,
    records: &Bytes,
) -> Result<(), PartitionError> {
    let Ok(header) = BatchHeader::parse(records) else {
        // Malformed: the append's validation answers it.
        return Ok(());
    };
    if !header.is_transactional() || header.is_control() {
        return Ok(());
    }
    let open_here = partition.with_log(|log| {
        log.producer_state(header.producer_id).is_some_and(|e| {
            e.current_txn_first_offset.is_some() && e.producer_epoch == header.producer_epoch
        })
    });
    if open_here {
        return Ok(());
    }
    let tp = TopicPartition::new(partition.topic.as_str(), partition.index);
    let producer = ProducerIdAndEpoch::new(header.producer_id, header.producer_epoch);
    // Produce v11 and older predate TRANSACTION_ABORTABLE.
    state
        .txn
        .verify_partition(
            state,
            transactional_id,
            producer,
            &tp,
            version >= 12,
            version <= 10,
        )
        .await
        .map_err(|code| {
            let (pid, epoch) = (header.producer_id, header.producer_epoch);
            let message = match code {
                ErrorCode::InvalidProducerEpoch => {
                    format!("producer {pid} epoch {epoch} is older than the transaction's epoch")
                }
                ErrorCode::InvalidTxnState | ErrorCode::TransactionAbortable => {
                    format!("producer {pid} epoch {epoch} has no ongoing transaction with {tp}")
                }
                other => format!("transaction check for {tp} failed: {other}"),
            };
            PartitionError::new(code, message)
        })
}

/// A partition's answer: decided, or written and waiting to be acknowledged.
enum Slot {
    Done(PartitionProduceResponse),
    Written(Arc<Partition>, Option<PendingAppend>),
}

fn rejected(topic: &str, index: i32, e: PartitionError) -> PartitionProduceResponse {
    tracing::debug!(%topic, partition = index, code = ?e.code, message = %e.message, "produce rejected");
    failed(index, e.code, Some(e.message))
}

/// Runs `futures` concurrently on the current task; their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *output = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

pub async fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let mut req: ProduceRequest = request.decode(state, body)?;
    let acks = req.acks;
    let acks_valid = matches!(acks, -1..=1);
    // Every partition's records are written first, then all are acknowledged
    // together: partitions that fsync (`flush.messages`) do so in parallel.
    let mut slots: Vec<Vec<(i32, Slot)>> = Vec::with_capacity(req.topic_data.len());
    for topic in &mut req.topic_data {
        let name = topic.name.as_str();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for partition in &mut topic.partition_data {
            let index = partition.index;
            let slot = if !acks_valid {
                Slot::Done(failed(index, ErrorCode::InvalidRequiredAcks, None))
            } else {
                match state.replicas.get(name, index) {
                    None => Slot::Done(failed(index, ErrorCode::UnknownTopicOrPartition, None)),
                    Some(p) => {
                        let records = partition.records.take().unwrap_or_default();
                        let verified = match req.transactional_id.as_ref() {
                            Some(id) => {
                                verify_transaction(
                                    state,
                                    request.version,
                                    id.as_str(),
                                    &p,
                                    &records,
                                )
                                .await
                            }
                            None => Ok(()),
                        };
                        match verified.and_then(|()| p.append_unacknowledged(&records, now_ms())) {
                            Ok(pending) => Slot::Written(p, Some(pending)),
                            Err(e) => Slot::Done(rejected(name, index, e)),
                        }
                    }
                }
            };
            partitions.push((index, slot));
        }
        slots.push(partitions);
    }
    let names: Vec<StrBytes> = req.topic_data.iter().map(|t| t.name.clone()).collect();
    let fsyncs = slots
        .iter()
        .flatten()
        .any(|(_, slot)| matches!(slot, Slot::Written(_, Some(pending)) if pending.needs_flush()));
    if !fsyncs || acks == 0 {
        // Nothing to wait for (or nobody to answer): acknowledged here.
        let response = answer(state.clone(), names, slots).await;
        if acks == 0 {
            return Ok(Outcome::NoResponse);
        }
        return Ok(request.respond(&response));
    }
    // The fsyncs run in a task of their own, so the high watermark moves as
    // soon as they are done, whatever the connection's writer is doing; the
    // connection meanwhile reads and appends the client's next requests.
    let answering = tokio::spawn(answer(state.clone(), names, slots));
    let (header, version) = (request.header.clone(), request.version);
    Ok(Outcome::Deferred(Box::pin(async move {
        match answering.await {
            Ok(response) => encode_response(&header, version, &response),
            Err(e) => Outcome::Close(format!("produce answer failed: {e}")),
        }
    })))
}

/// Acknowledges the written partitions together (their fsyncs run in
/// parallel) and builds the response.
async fn answer(
    state: State,
    names: Vec<StrBytes>,
    mut slots: Vec<Vec<(i32, Slot)>>,
) -> ProduceResponse {
    let acknowledging: Vec<_> = slots
        .iter_mut()
        .flatten()
        .filter_map(|(_, slot)| match slot {
            Slot::Written(p, pending) => {
                let pending = pending.take()?;
                Some(p.acknowledge(pending))
            }
            Slot::Done(_) => None,
        })
        .collect();
    let mut acknowledged = join_all(acknowledging).await.into_iter();
    let mut appended_any = false;
    let mut responses = Vec::with_capacity(slots.len());
    for (partitions, name) in slots.into_iter().zip(names) {
        let mut out = TopicProduceResponse::default();
        for (index, slot) in partitions {
            let response = match slot {
                Slot::Done(r) => r,
                Slot::Written(..) => match acknowledged.next() {
                    Some(Ok(a)) => {
                        appended_any = true;
                        let mut r = PartitionProduceResponse::default();
                        r.index = index;
                        r.base_offset = a.base_offset;
                        r.log_append_time_ms = a.log_append_time_ms;
                        r.log_start_offset = a.log_start_offset;
                        r
                    }
                    Some(Err(e)) => rejected(name.as_str(), index, e),
                    None => failed(index, ErrorCode::UnknownServerError, None),
                },
            };
            out.partition_responses.push(response);
        }
        out.name = name;
        responses.push(out);
    }
    if appended_any {
        state.notify_data();
    }
    let mut response = ProduceResponse::default();
    response.responses = responses;
    response
}
