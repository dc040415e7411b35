//! The files a reindex makes beside the registry, and finding those that a
//! killed reindex left behind.
//!
//! A reindex with pid P builds `<db>.reindex-P` (with SQLite's `-wal`,
//! `-shm`, `-journal` and the registry's `.lock` and `.users` beside it)
//! and, before any of them, creates `<db>.reindex-P.live` and holds an
//! exclusive `flock` on it until it has removed the rest. The OS drops that
//! lock however the process ends, so liveness is the lock, never the pid (a
//! pid can be reused by an unrelated process): a group whose `.live` file
//! can be locked belongs to a dead reindex. A group without a `.live` file
//! (made by an older build, which had none) is dead when no process has
//! its pid; a reused pid only keeps such a group a while longer.
//!
//! The `.live` file is removed last, while still locked, so a group is
//! never seen without it while its owner is alive.

use std::ffi::OsString;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What follows `<db>.reindex-<pid>` in the names of a group's files.
const SUFFIXES: [&str; 7] = ["", "-wal", "-shm", "-journal", ".lock", ".users", LIVE];
const LIVE: &str = ".live";

/// `<db>.reindex-<pid>`, the rebuilt database of process `pid`.
pub fn temp_db_path(db: &Path, pid: u32) -> PathBuf {
    with_suffix(db, &format!(".reindex-{pid}"))
}

/// Every file that a reindex which is no longer running left beside `db`
/// (in name order). Only looks: nothing is removed or written, and a probe
/// of a live reindex's lock does not disturb it.
pub fn stale_leftovers(db: &Path) -> Vec<PathBuf> {
    groups(db)
        .into_iter()
        .filter(|(pid, _)| is_dead(db, *pid))
        .flat_map(|(_, files)| files)
        .collect()
}

/// Remove the files of every dead reindex beside `db`; returns them. Each
/// group is removed while holding its `.live` lock, so a reindex cannot
/// start using a name while it is being cleaned.
pub fn remove_stale(db: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for (pid, files) in groups(db) {
        let live = with_suffix(&temp_db_path(db, pid), LIVE);
        let _held = match crate::regular_file::open_nofollow(&live) {
            Ok(file) => match file.try_lock() {
                Ok(()) => Some(file),
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => return Err(Error::io("locking", &live, e)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !pid_is_gone(pid) {
                    continue;
                }
                None
            }
            // A symlink or FIFO by that name is not ours to lock: its group
            // stays, and `verify` still reports it.
            Err(_) => continue,
        };
        // The `.live` file last, still locked.
        let (live_files, rest): (Vec<PathBuf>, Vec<PathBuf>) =
            files.into_iter().partition(|f| *f == live);
        for file in rest.into_iter().chain(live_files) {
            remove_if_present(&file)?;
            removed.push(file);
        }
    }
    Ok(removed)
}

/// The liveness lock of the running reindex: `<db>.reindex-<pid>.live`,
/// held exclusively from before its temp files exist until after they are
/// gone.
pub struct LiveMark {
    path: PathBuf,
    _file: File,
}

impl LiveMark {
    /// Create and lock this process's mark. Any file already by that name
    /// was left by a dead process with the same pid and was removed by
    /// [`remove_stale`] just before; one made meanwhile is refused
    /// (`create_new` also refuses a symlink planted there).
    pub fn take(db: &Path) -> Result<LiveMark> {
        let path = with_suffix(&temp_db_path(db, std::process::id()), LIVE);
        // `--db` may name a file in a directory not made yet.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io("creating the registry directory", dir, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("creating the reindex mark", &path, e))?;
        // Blocking: a probe (`stale_leftovers`) holds it for an instant.
        file.lock()
            .map_err(|e| Error::io("locking the reindex mark", &path, e))?;
        // A cleaner that locked it between create and lock removed it:
        // then nothing else of ours exists yet, and trying again is safe.
        let still_ours = match (file.metadata(), std::fs::symlink_metadata(&path)) {
            (Ok(a), Ok(b)) => super::read::same_file(&a, &b),
            _ => false,
        };
        if !still_ours {
            return Err(Error::io(
                "keeping the reindex mark",
                &path,
                std::io::Error::other("another reindex removed it; run reindex again"),
            ));
        }
        Ok(LiveMark { path, _file: file })
    }
}

impl Drop for LiveMark {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Leftover files beside `db`, grouped by the pid in their names.
fn groups(db: &Path) -> Vec<(u32, Vec<PathBuf>)> {
    let dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(prefix) = db
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| format!("{n}.reindex-"))
    else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: std::collections::BTreeMap<u32, Vec<PathBuf>> = Default::default();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (pid, suffix) = rest.split_at(digits);
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if SUFFIXES.contains(&suffix) {
            out.entry(pid).or_default().push(entry.path());
        }
    }
    out.into_iter()
        .map(|(pid, mut files)| {
            files.sort();
            (pid, files)
        })
        .collect()
}

/// Whether the reindex that made group `pid` has ended: its `.live` lock
/// can be taken (and is let go at once), or, for a group without one, no
/// process has that pid.
fn is_dead(db: &Path, pid: u32) -> bool {
    let live = with_suffix(&temp_db_path(db, pid), LIVE);
    match crate::regular_file::open_nofollow(&live) {
        Ok(file) => !matches!(file.try_lock(), Err(TryLockError::WouldBlock)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => pid_is_gone(pid),
        Err(_) => true,
    }
}

#[cfg(unix)]
fn pid_is_gone(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn pid_is_gone(_pid: u32) -> bool {
    false
}

pub(super) fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("removing", path, e)),
        _ => Ok(()),
    }
}

/// `registry.db` + `-wal` → `registry.db-wal`, without going through UTF-8.
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_reindexs_files_are_found_and_a_live_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("registry.db");
        // Dead: its mark is not locked.
        let dead = temp_db_path(&db, 4_000_001);
        for s in ["", "-wal", ".users", LIVE] {
            std::fs::write(with_suffix(&dead, s), b"x").unwrap();
        }
        // Live: this process holds its mark.
        let mark = LiveMark::take(&db).unwrap();
        let live = temp_db_path(&db, std::process::id());
        std::fs::write(&live, b"x").unwrap();
        // Not a leftover: another name that merely starts alike.
        std::fs::write(dir.path().join("registry.db.reindex-12.bak"), b"x").unwrap();

        let stale = stale_leftovers(&db);
        assert_eq!(stale.len(), 4, "{stale:?}");
        let dead_name = dead.to_string_lossy().into_owned();
        assert!(
            stale
                .iter()
                .all(|p| p.to_string_lossy().starts_with(&dead_name)),
            "{stale:?}"
        );
        let mut removed = remove_stale(&db).unwrap();
        removed.sort();
        assert_eq!(removed, stale);
        assert!(stale_leftovers(&db).is_empty());
        assert!(live.exists());
        drop(mark);
        std::fs::remove_file(&live).unwrap();
    }
}
