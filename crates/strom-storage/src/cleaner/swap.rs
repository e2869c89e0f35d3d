//! Replacing segments with their cleaned version so that a crash at any point
//! leaves the log reading exactly as before or exactly as after the clean —
//! the protocol of Kafka's `.cleaned` / `.swap` files, with one addition.
//!
//! For a group of segments `[b0, …, bk]` whose successor starts at `end`:
//!
//! 1. The cleaner writes `<b0>.log.cleaned`, `.index.cleaned`,
//!    `.timeindex.cleaned`, `.txnindex.cleaned` and fsyncs them.
//! 2. It writes the manifest `cleaner-swap` (`b0`, `end`) atomically and durably.
//!    Kafka infers the replaced range from the swap segment's own offsets;
//!    that misses a trailing member whose records were all removed, so Strom
//!    records the range.
//! 3. It renames the four files to `.swap` — the indexes first, the log
//!    last — and fsyncs the directory. From here on the clean is committed.
//! 4. It deletes the original files of `bk` … `b0` (newest first).
//! 5. It renames the `.swap` files to their final names (log last), fsyncs the
//!    directory, and removes the manifest.
//!
//! On open ([`recover_swaps`]): `.cleaned` files are deleted (the clean never
//! happened); if `<b0>.log.swap` and the manifest exist, every remaining
//! original in `[b0, end)` is deleted and the swap files are renamed (redoing
//! steps 4–5); any other `.swap` file is an index renamed before its log and
//! is deleted; finally the manifest goes. A missing index is rebuilt by the
//! normal segment open.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::checkpoint::{
    offset_file, parse_offset_file_name, remove_file_if_exists, sync_dir, write_atomic, INDEX_EXT,
    LOG_EXT, SEGMENT_EXTS, TIME_INDEX_EXT, TXN_INDEX_EXT,
};
use crate::error::StorageError;

/// Suffix of the files a cleaning pass is still writing.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of cleaned files committed to replace their originals.
pub(crate) const SWAP_SUFFIX: &str = ".swap";
/// The replaced range of the swap in progress: version, first base, end offset.
pub(crate) const SWAP_MANIFEST: &str = "cleaner-swap";
/// A segment's files in the order they are renamed: indexes first, the log
/// last, so a `.swap` log means every index reached `.swap` before it.
const RENAME_ORDER: [&str; 4] = [INDEX_EXT, TIME_INDEX_EXT, TXN_INDEX_EXT, LOG_EXT];

/// Steps of the swap, for tests that simulate a crash right after one of them.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapStep {
    /// Step 1 done: `.cleaned` files written and fsynced.
    CleanedWritten,
    /// Step 2 done: manifest written.
    ManifestWritten,
    /// Step 3 done: `.cleaned` renamed to `.swap`.
    RenamedToSwap,
    /// Step 4 begun: the newest original deleted.
    FirstOriginalDeleted,
    /// Step 4 done: every original deleted.
    OriginalsDeleted,
    /// Step 5 renames done, manifest not yet removed.
    SwapRenamed,
}

/// `<dir>/<base>.<ext><suffix>`.
pub(crate) fn suffixed(dir: &Path, base: i64, ext: &str, suffix: &str) -> PathBuf {
    let mut path = offset_file(dir, base, ext).into_os_string();
    path.push(suffix);
    PathBuf::from(path)
}

fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    fs::rename(from, to).map_err(|e| StorageError::io("rename", from, e))
}

fn simulated_crash(dir: &Path, step: SwapStep) -> StorageError {
    StorageError::io(
        "simulated crash",
        dir,
        io::Error::other(format!("test hook: stopped after {step:?}")),
    )
}

/// Deletes the `.cleaned` files of `base` (an abandoned step 1).
pub(crate) fn remove_cleaned(dir: &Path, base: i64) -> Result<(), StorageError> {
    for ext in SEGMENT_EXTS {
        remove_file_if_exists(&suffixed(dir, base, ext, CLEANED_SUFFIX))?;
    }
    Ok(())
}

/// Steps 2–5 for the group whose `.cleaned` files at `base` are written and
/// fsynced; `members` are the original base offsets (`members[0] == base`),
/// `end` the base offset of the segment after the group.
pub(crate) fn install(
    dir: &Path,
    members: &[i64],
    end: i64,
    crash_after: Option<SwapStep>,
) -> Result<(), StorageError> {
    let base = members[0];
    let stop = |step: SwapStep| match crash_after {
        Some(s) if s == step => Err(simulated_crash(dir, step)),
        _ => Ok(()),
    };
    stop(SwapStep::CleanedWritten)?;
    write_atomic(
        &dir.join(SWAP_MANIFEST),
        format!("0\n{base}\n{end}\n").as_bytes(),
        true,
    )?;
    stop(SwapStep::ManifestWritten)?;
    for ext in RENAME_ORDER {
        rename(
            &suffixed(dir, base, ext, CLEANED_SUFFIX),
            &suffixed(dir, base, ext, SWAP_SUFFIX),
        )?;
    }
    sync_dir(dir)?;
    stop(SwapStep::RenamedToSwap)?;
    for (i, &member) in members.iter().rev().enumerate() {
        for ext in SEGMENT_EXTS {
            remove_file_if_exists(&offset_file(dir, member, ext))?;
        }
        if i == 0 {
            stop(SwapStep::FirstOriginalDeleted)?;
        }
    }
    stop(SwapStep::OriginalsDeleted)?;
    finish(dir, base)?;
    stop(SwapStep::SwapRenamed)?;
    remove_file_if_exists(&dir.join(SWAP_MANIFEST))
}

/// Step 5's renames (those whose `.swap` file still exists), log last.
fn finish(dir: &Path, base: i64) -> Result<(), StorageError> {
    for ext in RENAME_ORDER {
        let swap = suffixed(dir, base, ext, SWAP_SUFFIX);
        if swap.exists() {
            rename(&swap, &offset_file(dir, base, ext))?;
        }
    }
    sync_dir(dir)
}

/// Reads the manifest: `Some((base, end))`, or `None` if absent or unreadable.
fn read_manifest(dir: &Path) -> Option<(i64, i64)> {
    let text = fs::read_to_string(dir.join(SWAP_MANIFEST)).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "0" {
        return None;
    }
    let base = lines.next()?.trim().parse().ok()?;
    let end = lines.next()?.trim().parse().ok()?;
    Some((base, end))
}

/// Completes or rolls back a swap interrupted by a crash (see the module
/// docs). Runs on open, before the segments are listed.
pub(crate) fn recover_swaps(dir: &Path) -> Result<(), StorageError> {
    let mut swaps = Vec::new();
    let mut plain = Vec::new();
    let list_err = |e| StorageError::io("list directory", dir, e);
    for entry in fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(CLEANED_SUFFIX) {
            tracing::info!(file = name, "deleting an unfinished cleaner output");
            remove_file_if_exists(&entry.path())?;
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            swaps.push((stem.to_string(), entry.path()));
        } else {
            for ext in SEGMENT_EXTS {
                if let Some(base) = parse_offset_file_name(name, ext) {
                    plain.push((base, entry.path()));
                }
            }
        }
    }
    let manifest = read_manifest(dir);
    let mut changed = false;
    if let Some((base, end)) = manifest {
        let log_swap = format!("{base:020}.{LOG_EXT}");
        if swaps.iter().any(|(stem, _)| *stem == log_swap) {
            tracing::warn!(dir = %dir.display(), base, end, "completing an interrupted cleaner swap");
            for (b, path) in &plain {
                if (base..end).contains(b) {
                    remove_file_if_exists(path)?;
                }
            }
            finish(dir, base)?;
            swaps.retain(|(_, path)| path.exists());
            changed = true;
        }
    }
    for (_, path) in swaps {
        // An index renamed before its log reached `.swap`: the clean was not
        // committed and the originals are intact.
        tracing::warn!(file = %path.display(), "deleting an uncommitted swap file");
        remove_file_if_exists(&path)?;
        changed = true;
    }
    if manifest.is_some() {
        remove_file_if_exists(&dir.join(SWAP_MANIFEST))?;
        changed = true;
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}
