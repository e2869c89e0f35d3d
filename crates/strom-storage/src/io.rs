//! File access behind a small trait, so tests can inject faults (torn writes,
//! fsync failures, a full disk) into the segment and index files.
//!
//! Only the files on the data path go through this trait: segment logs and their
//! offset/time indexes. The small checkpoint files (recovery point, log start
//! offset, leader-epoch checkpoint, producer snapshots) are written with
//! `std::fs` directly by [`crate::checkpoint`], always via temp file + rename.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// One append-only file: a segment log, an offset index or a time index.
///
/// Writes always go to the end of the file; reads are positional (`pread`), so
/// readers need only `&self` and never disturb the writer.
pub trait SegmentFile: Send + Sync + Debug {
    /// Appends all of `buf` at the end of the file. On error some prefix of `buf`
    /// may have been written (a torn write); the caller cuts it off with
    /// [`SegmentFile::set_len`].
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes the file's data to stable storage (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates (or extends with zeros) the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// The file's current length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Last modification time in milliseconds since the Unix epoch.
    fn modified_ms(&self) -> io::Result<i64>;
    /// Writes appends this file buffers in memory ([`IndexFile`]) to disk,
    /// without fsync. A no-op for files that write through.
    fn write_buffered(&self) -> io::Result<()> {
        Ok(())
    }
    /// Frees disk space reserved past the end of the file for appends that
    /// will not come (the segment stopped being active). A no-op for files
    /// that reserve none.
    fn release_reserved(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// A shared handle to the underlying file, for reads that send its bytes
    /// without copying them ([`crate::LogSlice::File`]); `None` where reads
    /// must go through this trait (fault injection).
    fn shared_file(&self) -> Option<Arc<File>> {
        None
    }

    /// Reads exactly `buf.len()` bytes at `pos`, failing with `UnexpectedEof` if
    /// the file is shorter.
    fn read_exact_at(&self, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, pos) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than expected",
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Opens segment and index files. One instance is shared by all files of a log.
pub trait FileSystem: Send + Sync + Debug {
    /// Opens `path` for reading and appending, creating it empty if missing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Opens an index file (`.index`, `.timeindex`, `.txnindex`) like
    /// [`FileSystem::open`]; an implementation may keep it closed between uses.
    fn open_index(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        self.open(path)
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFileSystem;

impl FileSystem for StdFileSystem {
    fn open(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(StdFile::open(path)?))
    }
    fn open_index(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(IndexFile::open(path)?))
    }
}

/// Appends reserve disk blocks ahead of themselves once a file passes this size.
const RESERVE_FROM_BYTES: u64 = 1 << 20;
/// Largest reservation past the end of a file.
const MAX_RESERVE_BYTES: u64 = 64 << 20;

/// A [`SegmentFile`] backed by a `std::fs::File` opened in append mode.
///
/// Appends reserve the file's next blocks ahead of time with
/// `fallocate(FALLOC_FL_KEEP_SIZE)`: as much again as the file holds, between
/// 1 and 64 MiB, once it passes 1 MiB. The file's length stays what was
/// written, so recovery and reads are unchanged; what changes is that the
/// block allocation no longer happens when the kernel writes dirty pages back.
/// On ext4 that allocation, done for many appended files at once, stalls
/// `write(2)` on all of them for up to hundreds of milliseconds while
/// writeback runs; with the blocks reserved ahead, appends go on. The
/// reservation past the end is freed when the segment is sealed
/// ([`SegmentFile::release_reserved`]); one left by a crash is freed with the
/// segment's file.
#[derive(Debug)]
pub struct StdFile {
    /// Shared with reads in flight ([`SegmentFile::shared_file`]).
    file: Arc<File>,
    /// The file's length as this handle last knew it (None after a failed write).
    len: Option<u64>,
    /// Blocks up to here are reserved; 0 when none are.
    reserved_to: u64,
    /// False once the file system refused a reservation.
    reserve: bool,
}

impl StdFile {
    /// Opens `path` read + append, creating it if missing.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        Ok(StdFile {
            file: Arc::new(file),
            len: None,
            reserved_to: 0,
            reserve: true,
        })
    }

    /// The file's length, asked of the file system only when not known.
    fn known_len(&mut self) -> io::Result<u64> {
        match self.len {
            Some(len) => Ok(len),
            None => {
                let len = self.file.metadata()?.len();
                self.len = Some(len);
                Ok(len)
            }
        }
    }

    /// Reserves blocks ahead of an append of `bytes` when the file is large
    /// enough and the reservation would not cover it. Best effort: a file
    /// system without `fallocate` turns reservations off for this file; any
    /// other failure (a full disk) is left for the write itself to report.
    fn reserve_ahead(&mut self, bytes: u64) -> io::Result<()> {
        let len = self.known_len()?;
        let end = len + bytes;
        if !self.reserve || end <= self.reserved_to || len < RESERVE_FROM_BYTES {
            return Ok(());
        }
        let ahead = len.clamp(RESERVE_FROM_BYTES, MAX_RESERVE_BYTES);
        let from = self.reserved_to.max(len);
        let to = end + ahead;
        match rustix::fs::fallocate(
            &*self.file,
            rustix::fs::FallocateFlags::KEEP_SIZE,
            from,
            to - from,
        ) {
            Ok(()) => self.reserved_to = to,
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => self.reserve = false,
            Err(_) => {}
        }
        Ok(())
    }
}

impl SegmentFile for StdFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.reserve_ahead(buf.len() as u64)?;
        let written = (&*self.file).write_all(buf);
        self.len = match written {
            Ok(()) => self.len.map(|len| len + buf.len() as u64),
            Err(_) => None,
        };
        written
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        FileExt::read_at(&*self.file, buf, pos)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.len = None;
        self.file.set_len(len)?;
        self.len = Some(len);
        // Truncating also frees the blocks reserved past the new end.
        self.reserved_to = 0;
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn modified_ms(&self) -> io::Result<i64> {
        modified_ms(&self.file.metadata()?)
    }
    fn release_reserved(&mut self) -> io::Result<()> {
        if self.reserved_to == 0 {
            return Ok(());
        }
        let len = self.known_len()?;
        self.set_len(len)
    }
    fn shared_file(&self) -> Option<Arc<File>> {
        Some(self.file.clone())
    }
}

/// A file's modification time in milliseconds since the Unix epoch.
fn modified_ms(metadata: &std::fs::Metadata) -> io::Result<i64> {
    Ok(metadata
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0))
}

/// An index file that holds no file descriptor: indexes are read once when a
/// segment opens and answered from memory afterwards, so only their appends
/// need the file. Appends are buffered here and written through a descriptor
/// opened for the occasion when the segment is synced ([`SegmentFile::sync_data`])
/// or sealed ([`SegmentFile::write_buffered`]). A partition then keeps one
/// descriptor per segment (its `.log`) instead of four, which is what lets a
/// broker host tens of thousands of partitions under the usual open-files
/// limit, and an append costs no system call for its index entries.
///
/// Buffered entries are lost by a crash: recovery rebuilds the indexes of every
/// segment after the recovery point, and a segment before it was synced.
#[derive(Debug)]
pub struct IndexFile {
    path: std::path::PathBuf,
    state: std::sync::Mutex<IndexFileState>,
}

#[derive(Debug)]
struct IndexFileState {
    /// Bytes in the file on disk.
    on_disk: u64,
    /// Appended bytes not yet written, which follow `on_disk`.
    pending: Vec<u8>,
}

impl IndexFile {
    /// Opens `path`, creating it empty if missing; no descriptor is kept.
    pub fn open(path: &Path) -> io::Result<Self> {
        let on_disk = StdFile::open(path)?.size()?;
        Ok(IndexFile {
            path: path.to_path_buf(),
            state: std::sync::Mutex::new(IndexFileState {
                on_disk,
                pending: Vec::new(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, IndexFileState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file, which must still exist (a file renamed or deleted under a
    /// live segment must fail, not be created again).
    fn file(&self) -> io::Result<File> {
        OpenOptions::new().read(true).append(true).open(&self.path)
    }

    fn write_pending(&self, state: &mut IndexFileState) -> io::Result<Option<File>> {
        if state.pending.is_empty() {
            return Ok(None);
        }
        let mut file = self.file()?;
        if let Err(e) = file.write_all(&state.pending) {
            // Cut a partial write off: the file stays a whole number of entries.
            let _ = file.set_len(state.on_disk);
            return Err(e);
        }
        state.on_disk += state.pending.len() as u64;
        state.pending.clear();
        Ok(Some(file))
    }
}

impl SegmentFile for IndexFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.state().pending.extend_from_slice(buf);
        Ok(())
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let state = self.state();
        if pos < state.on_disk {
            let n = ((state.on_disk - pos) as usize).min(buf.len());
            return FileExt::read_at(&self.file()?, &mut buf[..n], pos);
        }
        let from = (pos - state.on_disk) as usize;
        let pending = state.pending.get(from..).unwrap_or_default();
        let n = pending.len().min(buf.len());
        buf[..n].copy_from_slice(&pending[..n]);
        Ok(n)
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.state();
        match self.write_pending(&mut state)? {
            Some(file) => file.sync_data(),
            None => self.file()?.sync_data(),
        }
    }
    fn write_buffered(&self) -> io::Result<()> {
        let mut state = self.state();
        self.write_pending(&mut state).map(|_| ())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let file = self.file();
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if len >= state.on_disk {
            state.pending.resize((len - state.on_disk) as usize, 0);
            return Ok(());
        }
        state.pending.clear();
        file?.set_len(len)?;
        state.on_disk = len;
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        let state = self.state();
        Ok(state.on_disk + state.pending.len() as u64)
    }
    fn modified_ms(&self) -> io::Result<i64> {
        modified_ms(&std::fs::metadata(&self.path)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_disk(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    #[test]
    fn appends_reserve_blocks_ahead_without_changing_the_length_and_sealing_frees_them() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut f = StdFile::open(&path).unwrap();
        let chunk = vec![7u8; 256 * 1024];
        let mut written = 0u64;
        while written < 3 * RESERVE_FROM_BYTES {
            f.append(&chunk).unwrap();
            written += chunk.len() as u64;
            assert_eq!(f.size().unwrap(), written, "the length is what was written");
            assert_eq!(std::fs::metadata(&path).unwrap().len(), written);
        }
        let allocated = |p: &Path| std::fs::metadata(p).unwrap().blocks() * 512;
        if f.reserve {
            // The file system took the reservation: blocks past the end are held.
            assert!(f.reserved_to >= written + RESERVE_FROM_BYTES);
            assert!(
                allocated(&path) >= f.reserved_to,
                "{} < {}",
                allocated(&path),
                f.reserved_to
            );
        }
        f.release_reserved().unwrap();
        assert_eq!(f.size().unwrap(), written);
        assert!(allocated(&path) < written + RESERVE_FROM_BYTES);
        assert_eq!(on_disk(&path), vec![7u8; written as usize]);
        // A torn write cut off with set_len: appends go on from the cut.
        f.set_len(written - 10).unwrap();
        f.append(b"abc").unwrap();
        assert_eq!(f.size().unwrap(), written - 7);
    }

    #[test]
    fn index_file_buffers_appends_until_written_or_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut f = IndexFile::open(&path).unwrap();
        f.append(b"abcd").unwrap();
        assert_eq!(f.size().unwrap(), 4);
        assert!(
            on_disk(&path).is_empty(),
            "an append is not written at once"
        );
        f.write_buffered().unwrap();
        assert_eq!(on_disk(&path), b"abcd");
        f.append(b"efgh").unwrap();
        let mut buf = [0u8; 8];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"abcdefgh", "reads see the disk and the buffer");
        f.sync_data().unwrap();
        assert_eq!(on_disk(&path), b"abcdefgh");
        // Reopening finds what was written.
        assert_eq!(IndexFile::open(&path).unwrap().size().unwrap(), 8);
    }

    #[test]
    fn index_file_truncation_covers_the_buffer_and_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut f = IndexFile::open(&path).unwrap();
        f.append(b"abcd").unwrap();
        f.write_buffered().unwrap();
        f.append(b"efgh").unwrap();
        f.set_len(6).unwrap();
        f.write_buffered().unwrap();
        assert_eq!(on_disk(&path), b"abcdef");
        f.append(b"xy").unwrap();
        f.set_len(2).unwrap();
        f.sync_data().unwrap();
        assert_eq!(on_disk(&path), b"ab");
        assert_eq!(f.size().unwrap(), 2);
    }

    #[test]
    fn index_file_removed_under_it_fails_instead_of_reappearing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut f = IndexFile::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f.append(b"abcd").unwrap();
        assert!(f.write_buffered().is_err());
        assert!(!path.exists());
    }
}
