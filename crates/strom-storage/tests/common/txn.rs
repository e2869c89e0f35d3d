//! Transactional producers and transaction markers for the transaction tests.

use strom_protocol::records::{control_batch, Compression, ControlRecordType, RecordBatchBuilder};
use strom_storage::{AbortedTxn, AppendError, AppendInfo, AppendOrigin, PartitionLog};

use super::compact::{kv_batch_with, Kv};
use super::NOW;

/// A transactional producer as the log sees it: id, epoch, next sequence.
#[derive(Clone, Debug)]
pub struct TxnProducer {
    pub pid: i64,
    pub epoch: i16,
    pub seq: i32,
    /// Coordinator epoch its markers carry.
    pub coordinator_epoch: i32,
}

impl TxnProducer {
    pub fn new(pid: i64) -> Self {
        TxnProducer {
            pid,
            epoch: 0,
            seq: 0,
            coordinator_epoch: 0,
        }
    }

    /// A transactional batch of `records` at the next sequence (not advanced).
    pub fn batch(&self, records: &[Kv]) -> Vec<u8> {
        let builder = RecordBatchBuilder::new(Compression::None)
            .producer(self.pid, self.epoch, self.seq)
            .transactional(true);
        kv_batch_with(builder, records, NOW)
    }

    /// Appends a transactional batch of `n` keyed records as a client.
    pub fn send(&mut self, log: &mut PartitionLog, n: usize) -> AppendInfo {
        let keys: Vec<String> = (0..n).map(|i| format!("k{}-{}", self.pid, i)).collect();
        let records: Vec<Kv> = keys.iter().map(|k| (k.as_str(), Some("v"))).collect();
        self.send_kv(log, &records)
    }

    /// Appends a transactional batch of `records` as a client.
    pub fn send_kv(&mut self, log: &mut PartitionLog, records: &[Kv]) -> AppendInfo {
        let mut b = self.batch(records);
        let info = log
            .append(&mut b, 0, None, NOW)
            .expect("transactional append");
        self.seq += records.len() as i32;
        info
    }

    /// The marker batch for this producer's current epoch.
    pub fn marker(&self, kind: ControlRecordType) -> Vec<u8> {
        marker(kind, self.pid, self.epoch, self.coordinator_epoch)
    }

    /// Writes a COMMIT marker as the coordinator.
    pub fn commit(&self, log: &mut PartitionLog) -> AppendInfo {
        write_marker(log, self.marker(ControlRecordType::Commit)).expect("commit marker")
    }

    /// Writes an ABORT marker as the coordinator.
    pub fn abort(&self, log: &mut PartitionLog) -> AppendInfo {
        write_marker(log, self.marker(ControlRecordType::Abort)).expect("abort marker")
    }
}

/// A marker batch as the transaction coordinator builds it.
pub fn marker(kind: ControlRecordType, pid: i64, epoch: i16, coordinator_epoch: i32) -> Vec<u8> {
    control_batch(kind, pid, epoch, coordinator_epoch, 0, -1, NOW).to_vec()
}

/// Appends `batch` with [`AppendOrigin::Coordinator`].
pub fn write_marker(log: &mut PartitionLog, mut batch: Vec<u8>) -> Result<AppendInfo, AppendError> {
    log.append_with_origin(&mut batch, 0, None, NOW, AppendOrigin::Coordinator)
}

/// An aborted-transaction index entry.
pub fn aborted(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

/// Every aborted transaction in the log.
pub fn all_aborted(log: &PartitionLog) -> Vec<AbortedTxn> {
    log.aborted_transactions(0, i64::MAX)
}

/// Sizes of the `.txnindex` files in `dir`, by segment base offset.
pub fn txnindex_sizes(dir: &std::path::Path) -> Vec<(i64, u64)> {
    let mut out: Vec<(i64, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txnindex"))
        .map(|p| {
            let base = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            (base, std::fs::metadata(&p).unwrap().len())
        })
        .collect();
    out.sort();
    out
}
