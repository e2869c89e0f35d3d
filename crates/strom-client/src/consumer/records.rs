//! Turning one partition's fetched record bytes into consumer records: whole
//! batches are decoded, records below the fetch position are dropped (a fetch
//! returns the whole batch containing the position), control batches are
//! skipped, and under read_committed aborted transactions are filtered using
//! the response's aborted-transaction list (as Java's `CompletedFetch` does).

use std::collections::HashSet;

use bytes::Bytes;
use strom_protocol::records::{decode_batch, parse_control_record, BatchIter, ControlRecordType};

use super::{ConsumerError, ConsumerRecord, IsolationLevel};

/// Largest decompressed size of one batch. Bounds what a corrupt or hostile
/// compressed batch can make the client allocate; Kafka's own batches are far
/// smaller (`message.max.bytes` defaults to 1 MiB compressed).
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// An aborted transaction as the fetch response reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first record in this partition.
    pub first_offset: i64,
}

/// The records of one partition's fetch, ready to hand out.
#[derive(Debug, Default)]
pub struct DecodedPartition {
    /// Records at or after the fetch position, in offset order.
    pub records: Vec<ConsumerRecord>,
    /// Offset after the last complete batch looked at (control and aborted
    /// batches included): where the next fetch starts once `records` are consumed.
    pub next_offset: i64,
    /// Encoded bytes of the batches used, for the buffering bound.
    pub bytes: usize,
}

/// Decodes `data` (the `records` field of a fetch partition) for `topic`/`partition`
/// fetched at `fetch_offset`. A trailing partial batch (cut off by the byte
/// limits) is ignored: the next fetch starts at it.
pub fn decode_partition(
    topic: &str,
    partition: i32,
    fetch_offset: i64,
    data: &Bytes,
    isolation: IsolationLevel,
    aborted: &[AbortedTxn],
) -> Result<DecodedPartition, ConsumerError> {
    let mut out = DecodedPartition {
        next_offset: fetch_offset,
        ..DecodedPartition::default()
    };
    let mut pending: Vec<AbortedTxn> = aborted.to_vec();
    pending.sort_by_key(|a| std::cmp::Reverse(a.first_offset));
    let mut aborted_producers: HashSet<i64> = HashSet::new();
    let corrupt = |offset: i64, reason: String| ConsumerError::CorruptRecord {
        topic: topic.to_string(),
        partition,
        offset,
        reason,
    };
    for item in BatchIter::new(data) {
        let Ok((header, range)) = item else {
            break;
        };
        if header.last_offset() < fetch_offset {
            continue;
        }
        let batch = data.slice(range);
        let (header, records) = decode_batch(&batch, MAX_DECOMPRESSED_BATCH_BYTES)
            .map_err(|e| corrupt(header.base_offset, e.to_string()))?;
        out.next_offset = out.next_offset.max(header.last_offset() + 1);
        out.bytes += batch.len();
        if isolation == IsolationLevel::ReadCommitted && header.is_transactional() {
            while pending
                .last()
                .is_some_and(|a| a.first_offset <= header.last_offset())
            {
                let a = pending.pop().expect("checked above");
                aborted_producers.insert(a.producer_id);
            }
            if header.is_control() {
                let abort = records.first().and_then(parse_control_record);
                if matches!(abort, Some((ControlRecordType::Abort, _))) {
                    aborted_producers.remove(&header.producer_id);
                }
                continue;
            }
            if aborted_producers.contains(&header.producer_id) {
                continue;
            }
        }
        if header.is_control() {
            continue;
        }
        let leader_epoch =
            (header.partition_leader_epoch >= 0).then_some(header.partition_leader_epoch);
        for r in records {
            let offset = r.offset(&header);
            if offset < fetch_offset {
                continue;
            }
            out.records.push(ConsumerRecord {
                topic: topic.to_string(),
                partition,
                offset,
                timestamp: r.timestamp(&header),
                timestamp_type: header.timestamp_type(),
                key: r.key,
                value: r.value,
                headers: r.headers,
                leader_epoch,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use strom_protocol::records::{control_batch, Compression, RecordBatchBuilder};

    fn batch(base: i64, n: usize, producer: Option<i64>, codec: Compression) -> BytesMut {
        let mut b = RecordBatchBuilder::new(codec).base_offset(base);
        if let Some(pid) = producer {
            b = b.producer(pid, 0, base as i32).transactional(true);
        }
        for i in 0..n {
            let v = format!("v{}", base + i as i64);
            b.push(1_000 + i as i64, None, Some(Bytes::from(v)), Vec::new());
        }
        b.build().unwrap()
    }

    fn values(d: &DecodedPartition) -> Vec<i64> {
        d.records.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn records_below_the_fetch_offset_are_dropped_and_partial_batches_ignored() {
        for codec in Compression::ALL {
            let mut data = BytesMut::new();
            data.extend_from_slice(&batch(0, 5, None, codec));
            data.extend_from_slice(&batch(5, 3, None, codec));
            let full = data.len();
            data.extend_from_slice(&batch(8, 3, None, codec)[..20]);
            let data = data.freeze();
            let d =
                decode_partition("t", 0, 3, &data, IsolationLevel::ReadUncommitted, &[]).unwrap();
            assert_eq!(values(&d), vec![3, 4, 5, 6, 7], "{codec:?}");
            assert_eq!(d.next_offset, 8);
            assert_eq!(d.bytes, full);
            assert_eq!(d.records[0].value.as_deref(), Some(&b"v3"[..]));
            assert_eq!(d.records[0].timestamp, 1_003);
        }
    }

    #[test]
    fn read_committed_skips_aborted_transactions_and_markers() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, 2, Some(7), Compression::None));
        data.extend_from_slice(&control_batch(ControlRecordType::Abort, 7, 0, 0, 2, 0, 0));
        data.extend_from_slice(&batch(3, 2, Some(8), Compression::None));
        data.extend_from_slice(&control_batch(ControlRecordType::Commit, 8, 0, 0, 5, 0, 0));
        let data = data.freeze();
        let aborted = [AbortedTxn {
            producer_id: 7,
            first_offset: 0,
        }];
        let committed =
            decode_partition("t", 0, 0, &data, IsolationLevel::ReadCommitted, &aborted).unwrap();
        assert_eq!(values(&committed), vec![3, 4]);
        assert_eq!(committed.next_offset, 6);
        let all =
            decode_partition("t", 0, 0, &data, IsolationLevel::ReadUncommitted, &aborted).unwrap();
        assert_eq!(values(&all), vec![0, 1, 3, 4]);
    }

    #[test]
    fn a_corrupt_batch_is_an_error_naming_its_offset() {
        let mut raw = batch(10, 2, None, Compression::None);
        let last = raw.len() - 1;
        raw[last] ^= 0xff;
        let err = decode_partition(
            "t",
            1,
            10,
            &raw.freeze(),
            IsolationLevel::ReadUncommitted,
            &[],
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ConsumerError::CorruptRecord {
                offset: 10,
                partition: 1,
                ..
            }
        ));
    }
}
