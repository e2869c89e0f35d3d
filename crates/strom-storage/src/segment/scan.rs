//! Reading a segment's batches: header scans, recovery with CRC checks, batch
//! lookup by offset, fetch reads and truncation.

use std::io;

use strom_protocol::records::{validate_batch, BatchHeader, RecordError, BATCH_HEADER_LEN};

use super::{Segment, Truncation};
use crate::error::StorageError;
use crate::io::SegmentFile;
use crate::slice::{FileRange, LogSlice};

pub(super) fn read_header_at(
    log: &dyn SegmentFile,
    pos: u64,
    limit: u64,
) -> io::Result<Result<BatchHeader, RecordError>> {
    let available = limit.saturating_sub(pos);
    if available < BATCH_HEADER_LEN as u64 {
        return Ok(Err(RecordError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: available as usize,
        }));
    }
    let mut buf = [0u8; BATCH_HEADER_LEN];
    log.read_exact_at(&mut buf, pos)?;
    let header = match BatchHeader::parse(&buf) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    if header.total_len() as u64 > available {
        return Ok(Err(RecordError::Truncated {
            needed: header.total_len(),
            available: available as usize,
        }));
    }
    Ok(Ok(header))
}

fn corrupt(e: RecordError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Segment {
    /// Loads the offset and time indexes and scans the log after the last
    /// offset index entry.
    pub(super) fn load_indexes(&mut self) -> Result<Result<(), String>, StorageError> {
        if let Err(reason) = self
            .index
            .load(self.size)
            .map_err(|e| self.io_err("read index", e))?
        {
            return Ok(Err(reason));
        }
        if let Err(reason) = self
            .time_index
            .load()
            .map_err(|e| self.io_err("read time index", e))?
        {
            return Ok(Err(reason));
        }
        self.rescan_tail()
    }

    /// Recomputes `next_offset`, the largest timestamp and the index interval
    /// counter from the indexes plus the batches after the last index entry.
    pub(super) fn rescan_tail(&mut self) -> Result<Result<(), String>, StorageError> {
        let (mut next, start) = match self.index.last() {
            Some(e) => (
                self.base_offset + i64::from(e.relative_offset),
                u64::from(e.position),
            ),
            None => (self.base_offset, 0),
        };
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        if let Some(t) = self.time_index.last() {
            self.max_timestamp = t.timestamp;
            self.offset_of_max_timestamp = self.time_index.offset_of(t);
        }
        let mut pos = start;
        let mut last_batch_pos = start;
        while pos < self.size {
            last_batch_pos = pos;
            let header = match read_header_at(self.log.as_ref(), pos, self.size)
                .map_err(|e| self.io_err("read", e))?
            {
                Ok(h) => h,
                Err(e) => return Ok(Err(format!("bad batch at position {pos}: {e}"))),
            };
            if header.base_offset < next {
                return Ok(Err(format!(
                    "offset {} out of order at position {pos}",
                    header.base_offset
                )));
            }
            if header.max_timestamp > self.max_timestamp {
                self.max_timestamp = header.max_timestamp;
                self.offset_of_max_timestamp = header.base_offset;
            }
            next = header.last_offset() + 1;
            pos += header.total_len() as u64;
        }
        // Appends add an entry once more than index.interval.bytes follow the
        // last one, so a longer unindexed tail means a lost or stale index.
        if last_batch_pos - start > self.index_interval_bytes && !self.index.is_full() {
            return Ok(Err("offset index is missing entries".to_string()));
        }
        if self.offset_of_max_timestamp >= next {
            return Ok(Err("time index points beyond the log".to_string()));
        }
        self.next_offset = next;
        self.bytes_since_last_index_entry = self.size - start;
        Ok(Ok(()))
    }

    /// Reads and validates every batch, rebuilds the offset and time indexes,
    /// and truncates the file at the first batch that is partial, fails its
    /// CRC, or breaks offset order. Returns what was cut off. The transaction
    /// index is emptied and marked stale: rebuilding it needs producer state
    /// (the log does that, see [`Segment::rebuild_txn_index`]).
    pub fn recover(&mut self) -> Result<Option<Truncation>, StorageError> {
        let file_len = self.log.size().map_err(|e| self.io_err("stat", e))?;
        self.index
            .reset()
            .and_then(|_| self.time_index.reset())
            .and_then(|_| self.txn_index.reset())
            .map_err(|e| self.io_err("reset index", e))?;
        self.txn_index_stale = true;
        let mut pos = 0u64;
        let mut next = self.base_offset;
        let (mut max_ts, mut max_off) = (-1i64, -1i64);
        let mut since_entry = 0u64;
        let mut offset_entries = Vec::new();
        let mut time_entries = Vec::new();
        let mut buf = Vec::new();
        let mut failure = None;
        while pos < file_len {
            let header = match read_header_at(self.log.as_ref(), pos, file_len)
                .map_err(|e| self.io_err("read", e))?
            {
                Ok(h) => h,
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            };
            if header.base_offset < next
                || header.last_offset() - self.base_offset > i64::from(i32::MAX)
                || pos > u64::from(u32::MAX)
            {
                failure = Some(format!(
                    "batch offset {} out of order or range",
                    header.base_offset
                ));
                break;
            }
            buf.resize(header.total_len(), 0);
            self.log
                .read_exact_at(&mut buf, pos)
                .map_err(|e| self.io_err("read", e))?;
            if let Err(e) = validate_batch(&buf) {
                failure = Some(e.to_string());
                break;
            }
            if header.max_timestamp > max_ts {
                max_ts = header.max_timestamp;
                max_off = header.base_offset;
            }
            if since_entry > self.index_interval_bytes {
                offset_entries.push((header.base_offset, pos as u32));
                time_entries.push((max_ts, max_off));
                since_entry = 0;
            }
            since_entry += buf.len() as u64;
            pos += buf.len() as u64;
            next = header.last_offset() + 1;
        }
        self.index
            .append(&offset_entries)
            .and_then(|_| self.time_index.append(&time_entries, false))
            .map_err(|e| self.io_err("write index", e))?;
        self.size = pos;
        self.next_offset = next;
        self.max_timestamp = max_ts;
        self.offset_of_max_timestamp = max_off;
        self.bytes_since_last_index_entry = since_entry;
        self.dirty = true;
        let Some(reason) = failure else {
            return Ok(None);
        };
        self.log
            .set_len(pos)
            .map_err(|e| self.io_err("truncate", e))?;
        let t = Truncation {
            position: pos,
            bytes_removed: file_len - pos,
            next_offset: next,
            reason,
        };
        tracing::warn!(
            segment = %self.log_path.display(),
            position = t.position,
            bytes_removed = t.bytes_removed,
            next_offset = t.next_offset,
            reason = %t.reason,
            "recovery truncated segment"
        );
        Ok(Some(t))
    }

    /// The first batch whose last offset is ≥ `offset`, with its position.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let (_, mut pos) = self.index.lookup(offset);
        while pos < self.size {
            let h = self.header_at(pos)?;
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// The header of the (committed) batch at `pos`.
    pub fn header_at(&self, pos: u64) -> Result<BatchHeader, StorageError> {
        read_header_at(self.log.as_ref(), pos, self.size)
            .and_then(|r| r.map_err(corrupt))
            .map_err(|e| self.io_err("read", e))
    }

    /// Reads `len` bytes of the log at `pos` (whole batches located by a header scan).
    pub fn read_bytes(&self, pos: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let mut buf = vec![0u8; len];
        self.log
            .read_exact_at(&mut buf, pos)
            .map_err(|e| self.io_err("read", e))?;
        Ok(buf)
    }

    /// Calls `f` with every batch header from position `pos` to the end.
    pub fn for_each_header(
        &self,
        mut pos: u64,
        mut f: impl FnMut(u64, &BatchHeader),
    ) -> Result<(), StorageError> {
        while pos < self.size {
            let h = self.header_at(pos)?;
            f(pos, &h);
            pos += h.total_len() as u64;
        }
        Ok(())
    }

    /// Where a read of whole batches starting with `first` at `pos` ends: at
    /// most `max_bytes` (or the first batch alone if larger and
    /// `min_one_batch`), only batches whose last offset is below
    /// `upper_bound`. Returns the bytes and the offset after the last batch,
    /// or `None` if not even the first batch qualifies.
    ///
    /// No batch bytes are read: a read to the end of the segment needs no
    /// header at all, any other skips ahead with the offset index and reads
    /// the headers of at most an index interval of batches.
    pub fn read_extent(
        &self,
        pos: u64,
        first: &BatchHeader,
        max_bytes: usize,
        upper_bound: i64,
        min_one_batch: bool,
    ) -> Result<Option<(u64, i64)>, StorageError> {
        if first.last_offset() >= upper_bound {
            return Ok(None);
        }
        let limit = if min_one_batch {
            max_bytes.max(first.total_len())
        } else {
            max_bytes
        };
        if first.total_len() > limit {
            return Ok(None);
        }
        let max_end = pos.saturating_add(limit as u64).min(self.size);
        if max_end == self.size && self.next_offset <= upper_bound {
            return Ok(Some((self.size - pos, self.next_offset)));
        }
        let mut end = pos + first.total_len() as u64;
        let mut next = first.last_offset() + 1;
        if let Some((offset, position)) = self.index.floor_within(max_end, upper_bound) {
            if position > end {
                (end, next) = (position, offset);
            }
        }
        while end < self.size {
            let h = self.header_at(end)?;
            if h.last_offset() >= upper_bound || end + h.total_len() as u64 > max_end {
                break;
            }
            end += h.total_len() as u64;
            next = h.last_offset() + 1;
        }
        Ok(Some((end - pos, next)))
    }

    /// `len` bytes of the log at `pos` as a [`LogSlice`]: a range of the file
    /// when it can be shared, else read into memory.
    pub fn slice(&self, pos: u64, len: u64) -> Result<LogSlice, StorageError> {
        match self.log.shared_file() {
            Some(file) => Ok(LogSlice::File(FileRange {
                file,
                position: pos,
                len: len as usize,
            })),
            None => Ok(LogSlice::Memory(self.read_bytes(pos, len as usize)?.into())),
        }
    }

    /// Removes the batch containing `offset` and everything after it, with
    /// the aborted transactions whose markers went. Returns the bytes removed.
    pub fn truncate_to(&mut self, offset: i64) -> Result<u64, StorageError> {
        let Some((pos, header)) = self.find_batch(offset)? else {
            return Ok(0);
        };
        let removed = self.size - pos;
        self.log
            .set_len(pos)
            .map_err(|e| self.io_err("truncate", e))?;
        self.size = pos;
        self.index
            .truncate_to_position(pos)
            .and_then(|_| self.time_index.truncate_to_offset(header.base_offset))
            .and_then(|_| self.txn_index.truncate_to(header.base_offset))
            .map_err(|e| self.io_err("truncate index", e))?;
        if let Err(reason) = self.rescan_tail()? {
            // Cannot happen for data that passed validation; rebuild to be safe.
            tracing::warn!(segment = %self.log_path.display(), %reason, "rebuilding after truncation");
            self.recover()?;
        }
        if self.size == 0 {
            self.roll_base_ms = None;
        }
        self.dirty = true;
        Ok(removed)
    }
}
