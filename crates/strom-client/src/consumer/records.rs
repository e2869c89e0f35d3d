//! Turning one partition's fetched record bytes into consumer records: whole
//! batches are decoded as records are taken, records below the fetch
//! position are dropped (a fetch returns the whole batch containing the
//! position), control batches are skipped, and under read_committed aborted transactions are filtered using
//! the response's aborted-transaction list (as Java's `CompletedFetch` does).

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;
use strom_protocol::records::{
    decode_batch_iter, parse_control_record, BatchHeader, BatchIter, ControlRecordType,
    DecodedRecords, RecordError,
};

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

/// One partition's fetched bytes, decoded a batch at a time as records are
/// taken (as Java's `CompletedFetch` does): the fetcher can send the next
/// fetch, which starts at [`next_offset`](Self::next_offset), before any CRC
/// is checked, and decoded records never pile up beyond one batch.
#[derive(Debug)]
pub struct PartitionRecords {
    topic: String,
    partition: i32,
    fetch_offset: i64,
    isolation: IsolationLevel,
    /// The complete batches at or past the fetch offset; decoding moves `pos`.
    data: Bytes,
    pos: usize,
    /// Decoded records of the current batch not yet taken.
    decoded: VecDeque<ConsumerRecord>,
    /// Aborted transactions not yet reached, latest first.
    pending_aborts: Vec<AbortedTxn>,
    /// Producers whose aborted transaction is open at the current batch.
    aborted_producers: HashSet<i64>,
    /// Offset after the last complete batch (control and aborted batches
    /// included): where the next fetch starts.
    pub next_offset: i64,
    /// Encoded bytes of the complete batches, for the buffering bound.
    pub bytes: usize,
}

impl PartitionRecords {
    /// Takes `data` (the `records` field of a fetch partition) of `topic`/`partition`
    /// fetched at `fetch_offset`. Only batch headers are read here. A trailing
    /// partial batch (cut off by the byte limits) is left out: the next fetch starts at it.
    pub fn new(
        topic: &str,
        partition: i32,
        fetch_offset: i64,
        data: &Bytes,
        isolation: IsolationLevel,
        aborted: &[AbortedTxn],
    ) -> PartitionRecords {
        let mut next_offset = fetch_offset;
        let mut range = None::<(usize, usize)>;
        for item in BatchIter::new(data) {
            let Ok((header, r)) = item else {
                break;
            };
            if header.last_offset() < fetch_offset {
                continue;
            }
            next_offset = next_offset.max(header.last_offset() + 1);
            range = Some((range.map_or(r.start, |(s, _)| s), r.end));
        }
        let data = range.map_or_else(Bytes::new, |(s, e)| data.slice(s..e));
        let mut pending_aborts = aborted.to_vec();
        pending_aborts.sort_by_key(|a| std::cmp::Reverse(a.first_offset));
        PartitionRecords {
            topic: topic.to_string(),
            partition,
            fetch_offset,
            isolation,
            bytes: data.len(),
            data,
            pos: 0,
            decoded: VecDeque::new(),
            pending_aborts,
            aborted_producers: HashSet::new(),
            next_offset,
        }
    }

    /// True when every record was taken (or skipped).
    pub fn is_exhausted(&self) -> bool {
        self.decoded.is_empty() && self.pos == self.data.len()
    }

    /// Moves up to `max` records into `out`, decoding batches as needed, and
    /// returns how many. A corrupt batch is an error naming its offset; the
    /// records before it are taken first.
    pub fn take(
        &mut self,
        max: usize,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<usize, ConsumerError> {
        let start = out.len();
        let room = |out: &Vec<ConsumerRecord>| max - (out.len() - start);
        while room(out) > 0 {
            if self.decoded.is_empty() {
                // A batch that fits is decoded straight into `out`; one that
                // does not goes to `decoded`, which the next calls drain.
                match self.decode_next_batch(out, room(out)) {
                    Ok(true) => {}
                    Ok(false) => break,
                    // The error comes back on the next call, before any later record.
                    Err(_) if out.len() > start => break,
                    Err(e) => return Err(e),
                }
            }
            let n = self.decoded.len().min(room(out));
            out.extend(self.decoded.drain(..n));
        }
        Ok(out.len() - start)
    }

    /// Decodes the next batch that holds records for the application: into
    /// `out` when it has at most `room` of them, else into `decoded`. False
    /// when no batch is left.
    fn decode_next_batch(
        &mut self,
        out: &mut Vec<ConsumerRecord>,
        room: usize,
    ) -> Result<bool, ConsumerError> {
        loop {
            let Some(Ok((header, range))) = BatchIter::new(&self.data[self.pos..]).next() else {
                self.pos = self.data.len();
                return Ok(false);
            };
            let batch = self
                .data
                .slice(self.pos + range.start..self.pos + range.end);
            let base_offset = header.base_offset;
            let (header, mut records) = decode_batch_iter(&batch, MAX_DECOMPRESSED_BATCH_BYTES)
                .map_err(|e| self.corrupt(base_offset, e))?;
            if self.isolation == IsolationLevel::ReadCommitted && header.is_transactional() {
                while self
                    .pending_aborts
                    .last()
                    .is_some_and(|a| a.first_offset <= header.last_offset())
                {
                    let a = self.pending_aborts.pop().expect("checked above");
                    self.aborted_producers.insert(a.producer_id);
                }
                if header.is_control() {
                    let marker = records.next().transpose();
                    let marker = marker.map_err(|e| self.corrupt(base_offset, e))?;
                    let marker = marker.as_ref().and_then(parse_control_record);
                    if matches!(marker, Some((ControlRecordType::Abort, _))) {
                        self.aborted_producers.remove(&header.producer_id);
                    }
                    self.pos += range.end;
                    continue;
                }
                if self.aborted_producers.contains(&header.producer_id) {
                    self.pos += range.end;
                    continue;
                }
            }
            if header.is_control() {
                self.pos += range.end;
                continue;
            }
            // On an error `pos` stays at the batch, so the next call reports it again.
            let before = out.len();
            if records.remaining() <= room {
                out.reserve(records.remaining());
                let pushed = self.push_records(&header, records, &mut |r| out.push(r));
                if let Err(e) = pushed {
                    out.truncate(before);
                    return Err(self.corrupt(base_offset, e));
                }
            } else {
                let mut decoded = std::mem::take(&mut self.decoded);
                decoded.reserve(records.remaining());
                let pushed = self.push_records(&header, records, &mut |r| decoded.push_back(r));
                if let Err(e) = pushed {
                    return Err(self.corrupt(base_offset, e));
                }
                self.decoded = decoded;
            }
            self.pos += range.end;
            if out.len() > before || !self.decoded.is_empty() {
                return Ok(true);
            }
        }
    }

    fn corrupt(&self, base_offset: i64, e: RecordError) -> ConsumerError {
        ConsumerError::CorruptRecord {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: base_offset,
            reason: e.to_string(),
        }
    }

    /// Decodes a data batch's records at or past the fetch offset, handing
    /// each to `push`; stops at a malformed record (the caller drops what
    /// was pushed, so none of the batch is taken).
    fn push_records(
        &self,
        header: &BatchHeader,
        records: DecodedRecords,
        push: &mut dyn FnMut(ConsumerRecord),
    ) -> Result<(), RecordError> {
        let leader_epoch =
            (header.partition_leader_epoch >= 0).then_some(header.partition_leader_epoch);
        for r in records {
            let r = r?;
            let offset = r.offset(header);
            if offset < self.fetch_offset {
                continue;
            }
            push(ConsumerRecord {
                topic: self.topic.clone(),
                partition: self.partition,
                offset,
                timestamp: r.timestamp(header),
                timestamp_type: header.timestamp_type(),
                key: r.key,
                value: r.value,
                headers: r.headers,
                leader_epoch,
            });
        }
        Ok(())
    }
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

    /// Takes every record of `p`.
    fn take_all(
        mut p: PartitionRecords,
    ) -> Result<(PartitionRecords, Vec<ConsumerRecord>), ConsumerError> {
        let mut records = Vec::new();
        p.take(usize::MAX, &mut records)?;
        assert!(p.is_exhausted());
        Ok((p, records))
    }

    fn values(records: &[ConsumerRecord]) -> Vec<i64> {
        records.iter().map(|r| r.offset).collect()
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
            let (d, records) = take_all(PartitionRecords::new(
                "t",
                0,
                3,
                &data,
                IsolationLevel::ReadUncommitted,
                &[],
            ))
            .unwrap();
            assert_eq!(values(&records), vec![3, 4, 5, 6, 7], "{codec:?}");
            assert_eq!(d.next_offset, 8);
            assert_eq!(d.bytes, full);
            assert_eq!(records[0].value.as_deref(), Some(&b"v3"[..]));
            assert_eq!(records[0].timestamp, 1_003);
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
        let (committed, records) = take_all(PartitionRecords::new(
            "t",
            0,
            0,
            &data,
            IsolationLevel::ReadCommitted,
            &aborted,
        ))
        .unwrap();
        assert_eq!(values(&records), vec![3, 4]);
        assert_eq!(committed.next_offset, 6);
        let (_, all) = take_all(PartitionRecords::new(
            "t",
            0,
            0,
            &data,
            IsolationLevel::ReadUncommitted,
            &aborted,
        ))
        .unwrap();
        assert_eq!(values(&all), vec![0, 1, 3, 4]);
    }

    #[test]
    fn a_corrupt_batch_is_an_error_naming_its_offset() {
        let mut raw = batch(10, 2, None, Compression::None);
        let last = raw.len() - 1;
        raw[last] ^= 0xff;
        let err = take_all(PartitionRecords::new(
            "t",
            1,
            10,
            &raw.freeze(),
            IsolationLevel::ReadUncommitted,
            &[],
        ))
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

    #[test]
    fn records_before_a_corrupt_batch_are_taken_first_and_the_error_stays() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, 3, None, Compression::None));
        let mut bad = batch(3, 2, None, Compression::None);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        data.extend_from_slice(&bad);
        let data = data.freeze();
        let mut p = PartitionRecords::new("t", 0, 1, &data, IsolationLevel::ReadUncommitted, &[]);
        // The next fetch position is known from the headers alone.
        assert_eq!(p.next_offset, 5);
        let mut out = Vec::new();
        assert_eq!(p.take(1, &mut out).unwrap(), 1);
        assert_eq!(p.take(10, &mut out).unwrap(), 1);
        assert_eq!(values(&out), vec![1, 2]);
        for _ in 0..2 {
            let err = p.take(10, &mut out).unwrap_err();
            assert!(matches!(
                err,
                ConsumerError::CorruptRecord { offset: 3, .. }
            ));
        }
        assert!(!p.is_exhausted());
    }

    #[test]
    fn takes_of_any_size_return_every_record_once_in_order() {
        let mut data = BytesMut::new();
        for base in (0..20).step_by(4) {
            data.extend_from_slice(&batch(base, 4, None, Compression::None));
        }
        let data = data.freeze();
        for sizes in [[1, 2, 3, 5], [3, 4, 5, 8], [4, 1, 7, 2]] {
            let mut p =
                PartitionRecords::new("t", 0, 2, &data, IsolationLevel::ReadUncommitted, &[]);
            let mut out = Vec::new();
            for max in sizes.iter().cycle() {
                let before = out.len();
                let n = p.take(*max, &mut out).unwrap();
                assert_eq!(n, out.len() - before);
                assert!(n <= *max);
                if n == 0 {
                    break;
                }
            }
            assert!(p.is_exhausted());
            assert_eq!(
                values(&out),
                (2..20).collect::<Vec<_>>(),
                "takes of {sizes:?}"
            );
        }
    }
}
