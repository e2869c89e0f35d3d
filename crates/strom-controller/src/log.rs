//! The metadata log: committed records, durable before they are applied.
//!
//! Single-node mode stores records in one append-only file. Each entry is
//! `u32 length | u32 crc32c | JSON record`. Recovery keeps the longest valid
//! prefix: a torn last entry (the process died mid-append) is truncated away,
//! which is safe because a record only counts as committed once `append`
//! returned after fsync.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{ControllerError, MetadataRecord};

/// Largest encoded record accepted when reading the log back (1 MiB). Records
/// are small (a topic, a partition, a config); a bigger length means corruption.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Where committed metadata records live. The Raft quorum implements this too.
pub trait MetadataLog: Send {
    /// Durably appends `records` as one atomic batch; returns once committed.
    fn append(&mut self, records: &[MetadataRecord]) -> Result<(), ControllerError>;
    /// Every committed record, in order.
    fn replay(&mut self) -> Result<Vec<MetadataRecord>, ControllerError>;
}

/// The single-node metadata log: one file under the metadata directory.
pub struct FileMetadataLog {
    path: PathBuf,
    file: File,
}

impl FileMetadataLog {
    /// Opens (creating if needed) `<dir>/metadata.log`.
    pub fn open(dir: &Path) -> Result<Self, ControllerError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("metadata.log");
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        Ok(FileMetadataLog { path, file })
    }
}

fn encode(records: &[MetadataRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        let body = serde_json::to_vec(record).expect("metadata records always serialize");
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
    }
    out
}

impl MetadataLog for FileMetadataLog {
    fn append(&mut self, records: &[MetadataRecord]) -> Result<(), ControllerError> {
        // One write, then fsync: a crash leaves either the whole batch or a torn
        // tail that recovery truncates, and the caller has not been told "done".
        self.file.write_all(&encode(records))?;
        self.file.sync_data()?;
        Ok(())
    }

    fn replay(&mut self) -> Result<Vec<MetadataRecord>, ControllerError> {
        let mut bytes = Vec::new();
        let mut reader = File::open(&self.path)?;
        reader.read_to_end(&mut bytes)?;
        let mut records = Vec::new();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let valid = (|| {
                let head = bytes.get(pos..pos + 8)?;
                let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
                let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
                if len > MAX_RECORD_BYTES {
                    return None;
                }
                let body = bytes.get(pos + 8..pos + 8 + len)?;
                if crc32c::crc32c(body) != crc {
                    return None;
                }
                let record: MetadataRecord = serde_json::from_slice(body).ok()?;
                Some((record, 8 + len))
            })();
            match valid {
                Some((record, len)) => {
                    records.push(record);
                    pos += len;
                }
                None => {
                    tracing::warn!(
                        path = %self.path.display(),
                        position = pos,
                        dropped_bytes = bytes.len() - pos,
                        "truncating torn tail of the metadata log"
                    );
                    let file = OpenOptions::new().write(true).open(&self.path)?;
                    file.set_len(pos as u64)?;
                    file.sync_all()?;
                    self.file.seek(SeekFrom::End(0))?;
                    break;
                }
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_keeps_the_valid_prefix_of_a_torn_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = FileMetadataLog::open(dir.path()).unwrap();
        let a = MetadataRecord::ClusterId {
            cluster_id: "c".into(),
        };
        let b = MetadataRecord::ProducerIds {
            broker_id: 1,
            next_producer_id: 1000,
        };
        log.append(std::slice::from_ref(&a)).unwrap();
        log.append(std::slice::from_ref(&b)).unwrap();
        let full = std::fs::metadata(dir.path().join("metadata.log"))
            .unwrap()
            .len();
        for cut in 0..full {
            let copy = tempfile::tempdir().unwrap();
            let bytes = std::fs::read(dir.path().join("metadata.log")).unwrap();
            std::fs::write(copy.path().join("metadata.log"), &bytes[..cut as usize]).unwrap();
            let mut log = FileMetadataLog::open(copy.path()).unwrap();
            let records = log.replay().unwrap();
            let first_len = encode(std::slice::from_ref(&a)).len() as u64;
            let expected = if cut >= first_len { 1 } else { 0 };
            assert_eq!(records.len(), expected, "cut at {cut}");
            // The log accepts appends after recovery and replays them.
            log.append(std::slice::from_ref(&b)).unwrap();
            assert_eq!(log.replay().unwrap().len(), expected + 1);
        }
    }
}
