//! File names of a partition directory and the small checkpoint files, written
//! atomically (temp file, optional fsync, rename, optional directory fsync).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::StorageError;

/// Segment data file extension.
pub const LOG_EXT: &str = "log";
/// Offset index file extension.
pub const INDEX_EXT: &str = "index";
/// Time index file extension.
pub const TIME_INDEX_EXT: &str = "timeindex";
/// Aborted-transaction index file extension.
pub const TXN_INDEX_EXT: &str = "txnindex";
/// The files of one segment: its log, then its indexes.
pub const SEGMENT_EXTS: [&str; 4] = [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT, TXN_INDEX_EXT];
/// Producer-state snapshot file extension.
pub const SNAPSHOT_EXT: &str = "snapshot";
/// Temporary files of an atomic replace; left-overs are deleted on open.
pub const TMP_EXT: &str = "tmp";
/// The leader-epoch checkpoint (Kafka's text format).
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Offset below which every segment has been fsynced.
pub const RECOVERY_POINT_FILE: &str = "recovery-point";
/// The log start offset (raised by retention and DeleteRecords).
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";
/// Version line of the single-offset checkpoint files.
const OFFSET_FILE_VERSION: &str = "0";

/// `<dir>/<base offset as 20 digits>.<ext>`, Kafka's naming.
pub fn offset_file(dir: &Path, offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{offset:020}.{ext}"))
}

/// The offset in a file name of the form `<20 digits>.<ext>`, if it has that form.
pub fn parse_offset_file_name(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse::<i64>().ok()
}

/// Replaces `path` with `contents` atomically: a crash leaves either the old or
/// the new file. With `sync`, the data and the rename are durable on return.
pub fn write_atomic(path: &Path, contents: &[u8], sync: bool) -> Result<(), StorageError> {
    let tmp = path.with_extension(TMP_EXT);
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(contents)?;
        if sync {
            file.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| StorageError::io("write checkpoint", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| StorageError::io("rename checkpoint", path, e))?;
    if sync {
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
    }
    Ok(())
}

/// Fsyncs a directory so that created, renamed and deleted entries are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("fsync directory", dir, e))
}

/// Writes a single-offset checkpoint (`recovery-point`, `log-start-offset`):
/// a version line `0` and the offset.
pub fn write_offset_file(path: &Path, offset: i64, sync: bool) -> Result<(), StorageError> {
    write_atomic(
        path,
        format!("{OFFSET_FILE_VERSION}\n{offset}\n").as_bytes(),
        sync,
    )
}

/// Reads a single-offset checkpoint: `Ok(None)` if missing, `Err(reason)` if
/// unreadable or malformed (the caller falls back to a safe default).
pub fn read_offset_file(path: &Path) -> Result<Option<i64>, String> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut lines = text.lines();
    if lines.next() != Some(OFFSET_FILE_VERSION) {
        return Err("unknown version".to_string());
    }
    let offset = lines
        .next()
        .and_then(|l| l.trim().parse::<i64>().ok())
        .filter(|o| *o >= 0)
        .ok_or_else(|| "malformed offset".to_string())?;
    Ok(Some(offset))
}

/// Removes a file, treating "already gone" as success.
pub fn remove_file_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("delete file", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_with_twenty_digits() {
        let p = offset_file(Path::new("/d"), 42, LOG_EXT);
        assert_eq!(p, Path::new("/d/00000000000000000042.log"));
        assert_eq!(
            parse_offset_file_name("00000000000000000042.log", LOG_EXT),
            Some(42)
        );
        assert_eq!(parse_offset_file_name("0042.log", LOG_EXT), None);
        assert_eq!(
            parse_offset_file_name("00000000000000000042.index", LOG_EXT),
            None
        );
        assert_eq!(
            parse_offset_file_name("9999999999999999999x.log", LOG_EXT),
            None
        );
        assert_eq!(
            parse_offset_file_name("99999999999999999999.log", LOG_EXT),
            None
        );
    }

    #[test]
    fn offset_file_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(RECOVERY_POINT_FILE);
        assert_eq!(read_offset_file(&p), Ok(None));
        write_offset_file(&p, 1234, true).unwrap();
        assert_eq!(read_offset_file(&p), Ok(Some(1234)));
        fs::write(&p, "0\nabc\n").unwrap();
        assert!(read_offset_file(&p).is_err());
        fs::write(&p, "7\n1\n").unwrap();
        assert!(read_offset_file(&p).is_err());
    }
}
