//! A [`FileSystem`] that injects faults, for tests (here and in other crates).
//!
//! Faults apply to files whose name ends with a configurable suffix (".log" by
//! default, i.e. segment data) and are armed through a cloneable handle that
//! shares state with every file opened from it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::io::{FileSystem, SegmentFile, StdFile};

#[derive(Debug)]
struct Faults {
    /// Only files whose path ends with this are affected.
    path_suffix: String,
    /// Every `sync_data` fails while set.
    fail_syncs: bool,
    /// The next append writes only this many bytes, then fails.
    torn_write: Option<usize>,
    /// Bytes that may still be appended before writes fail with `StorageFull`.
    free_bytes: Option<u64>,
    /// Every `set_len` fails while set (so a failed write cannot be rolled back).
    fail_set_len: bool,
}

/// A [`FileSystem`] over the real one that can tear writes, fail fsyncs and run
/// out of space on demand. Clone it to keep a handle after giving it to a log.
#[derive(Debug, Clone)]
pub struct FaultyFileSystem {
    faults: Arc<Mutex<Faults>>,
}

impl Default for FaultyFileSystem {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultyFileSystem {
    /// No faults armed; affects ".log" files once armed.
    pub fn new() -> Self {
        FaultyFileSystem {
            faults: Arc::new(Mutex::new(Faults {
                path_suffix: ".log".to_string(),
                fail_syncs: false,
                torn_write: None,
                free_bytes: None,
                fail_set_len: false,
            })),
        }
    }
    fn lock(&self) -> MutexGuard<'_, Faults> {
        // A panic in another test thread must not hide the faults from this one.
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Restricts faults to files whose path ends with `suffix` (e.g. ".index").
    pub fn target_suffix(&self, suffix: &str) {
        self.lock().path_suffix = suffix.to_string();
    }
    /// Makes every fsync fail (`true`) or succeed again (`false`).
    pub fn fail_syncs(&self, fail: bool) {
        self.lock().fail_syncs = fail;
    }
    /// The next append writes only `keep_bytes` of its buffer, then fails.
    pub fn tear_next_write(&self, keep_bytes: usize) {
        self.lock().torn_write = Some(keep_bytes);
    }
    /// Leaves `bytes` of free space (`None` = unlimited); writes beyond it are
    /// partially written and fail with `StorageFull`.
    pub fn set_free_bytes(&self, bytes: Option<u64>) {
        self.lock().free_bytes = bytes;
    }
    /// Makes `set_len` fail, so a torn write cannot be cut off.
    pub fn fail_set_len(&self, fail: bool) {
        self.lock().fail_set_len = fail;
    }
}

impl FileSystem for FaultyFileSystem {
    fn open(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(FaultyFile {
            inner: StdFile::open(path)?,
            path: path.to_path_buf(),
            faults: self.clone(),
        }))
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: StdFile,
    path: PathBuf,
    faults: FaultyFileSystem,
}

impl FaultyFile {
    fn targeted(&self, faults: &Faults) -> bool {
        self.path.to_string_lossy().ends_with(&faults.path_suffix)
    }
}

impl SegmentFile for FaultyFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut faults = self.faults.lock();
        if !self.targeted(&faults) {
            drop(faults);
            return self.inner.append(buf);
        }
        if let Some(keep) = faults.torn_write.take() {
            self.inner.append(&buf[..keep.min(buf.len())])?;
            return Err(io::Error::other("injected torn write"));
        }
        if let Some(free) = faults.free_bytes {
            if buf.len() as u64 > free {
                faults.free_bytes = Some(0);
                self.inner.append(&buf[..free as usize])?;
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "injected: no space left on device",
                ));
            }
            faults.free_bytes = Some(free - buf.len() as u64);
        }
        self.inner.append(buf)
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.inner.read_at(buf, pos)
    }
    fn sync_data(&self) -> io::Result<()> {
        let faults = self.faults.lock();
        if self.targeted(&faults) && faults.fail_syncs {
            return Err(io::Error::other("injected fsync failure"));
        }
        drop(faults);
        self.inner.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let faults = self.faults.lock();
        if self.targeted(&faults) && faults.fail_set_len {
            return Err(io::Error::other("injected set_len failure"));
        }
        drop(faults);
        self.inner.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn modified_ms(&self) -> io::Result<i64> {
        self.inner.modified_ms()
    }
}
