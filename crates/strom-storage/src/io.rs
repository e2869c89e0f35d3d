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
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFileSystem;

impl FileSystem for StdFileSystem {
    fn open(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(StdFile::open(path)?))
    }
}

/// A [`SegmentFile`] backed by a `std::fs::File` opened in append mode.
#[derive(Debug)]
pub struct StdFile {
    /// Shared with reads in flight ([`SegmentFile::shared_file`]).
    file: Arc<File>,
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
        })
    }
}

impl SegmentFile for StdFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        (&*self.file).write_all(buf)
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        FileExt::read_at(&*self.file, buf, pos)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn modified_ms(&self) -> io::Result<i64> {
        let modified = self.file.metadata()?.modified()?;
        Ok(modified
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0))
    }
    fn shared_file(&self) -> Option<Arc<File>> {
        Some(self.file.clone())
    }
}
