//! Record bytes handed out by reads: in memory, or a range of a segment file
//! that a server sends to a socket without copying it through user space
//! (`sendfile`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use strom_protocol::fetch_response::RecordSet;

/// A range of a segment's `.log` file. The handle keeps the file readable
/// after the segment is deleted or replaced (retention, compaction), so a
/// response already being sent is not cut short by them. Only truncation
/// (a follower cutting its log) can shorten the file; a reader then gets
/// fewer bytes than `len` and must treat the range as gone.
#[derive(Clone, Debug)]
pub struct FileRange {
    pub file: Arc<File>,
    /// Byte position of the first batch in the file.
    pub position: u64,
    /// Bytes of whole batches from `position`.
    pub len: usize,
}

/// Whole batches returned by [`crate::PartitionLog::read_slice`].
#[derive(Clone, Debug)]
pub enum LogSlice {
    /// Bytes read into memory (logs whose files cannot be shared, as under
    /// fault injection).
    Memory(Bytes),
    /// Bytes still in the segment file.
    File(FileRange),
}

impl Default for LogSlice {
    fn default() -> Self {
        LogSlice::Memory(Bytes::new())
    }
}

impl LogSlice {
    /// Bytes of the batches.
    pub fn len(&self) -> usize {
        match self {
            LogSlice::Memory(b) => b.len(),
            LogSlice::File(r) => r.len,
        }
    }

    /// Whether no batch was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batches in memory, reading them from the file if needed.
    pub fn into_bytes(self) -> io::Result<Bytes> {
        match self {
            LogSlice::Memory(b) => Ok(b),
            LogSlice::File(r) => {
                let mut buf = vec![0u8; r.len];
                r.file.read_exact_at(&mut buf, r.position)?;
                Ok(Bytes::from(buf))
            }
        }
    }
}

impl RecordSet for LogSlice {
    fn len(&self) -> usize {
        LogSlice::len(self)
    }
}
