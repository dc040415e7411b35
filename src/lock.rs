//! Advisory locks that keep two processes from running the same run at once,
//! and let readers tell a live run from a dead one without getting in its way.
//!
//! Each run has two files under `<artifacts>/.locks/`, outside every run
//! directory (which must hold exactly the artifact files):
//!
//! - `<project>.<run>.lock`, the **run lock**. `run`, `package` and `gc` take
//!   it (and `reindex` takes every one): an exclusive lock, polling until `--lock-timeout` (or giving up at once
//!   with `--no-wait`). The holder then writes its pid and start time into
//!   the file, so a waiter can say whom it is waiting for, and empties it
//!   again on release.
//! - `<project>.<run>.live`, the **liveness flag**. Right after taking the run
//!   lock, the holder also locks this file exclusively, with a blocking
//!   `lock()`. Readers (`runs list`/`show`, `lineage`, `verify`) look only at
//!   this file: a momentary shared `try_lock` that would block means a live
//!   holder.
//!
//! Why two files: probing a lock is itself taking one. If readers probed the
//! run lock, a `run --no-wait` arriving during a probe would find it taken
//! and be refused because of a reader. On the `.live` file the only process
//! a probe can contend with is one that already owns the run lock, and that
//! one simply waits out the probe. So readers never wait and never make a
//! writer fail; between taking the run lock and the flag (before the run
//! records anything) a reader may see the run as not live, which is harmless.
//!
//! Both files are opened only by [`crate::regular_file::open_lock_file`]:
//! never through a symlink, never a FIFO or other special file (refused
//! with exit 5), and the `.locks` directory itself must be a real directory
//! for a writer. The holder record is written only into a lock file with
//! no other hard link, so no other name's bytes ever change.
//!
//! Locks are `flock`s: the OS drops them when the holder exits, however it
//! exits, which is how a crashed run's `running` row reads as `interrupted`.
//! The pid and time in the lock file are only ever shown, never trusted.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::regular_file::{is_sole_link, open_lock_file, open_nofollow};

/// How often a waiter retries the run lock.
const POLL: Duration = Duration::from_millis(50);

/// How long a waiter gives a new holder to write its pid before announcing
/// the wait without one.
const HOLDER_GRACE: Duration = Duration::from_millis(250);

/// The lock file is a few dozen bytes; anything bigger is not ours.
const HOLDER_MAX_BYTES: u64 = 1024;

/// Held for as long as the value lives.
#[derive(Debug)]
pub struct RunLock {
    // Field order is drop order: the flag goes before the run lock, so
    // whoever takes the run lock next does not wait on the flag.
    _live: File,
    lock: File,
    /// Whether the holder record was written (see [`write_holder`]).
    recorded: bool,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // A waiter must not show a pid that no longer holds anything. A
        // killed holder cannot do this; its successor overwrites the file.
        if self.recorded {
            let _ = self.lock.set_len(0);
        }
    }
}

/// A run's lock, held for as long as the value lives: its lock file
/// (SQLite registries), or an advisory lock on the registry connection
/// (PostgreSQL), which ends with that connection.
#[derive(Debug)]
pub enum RunGuard {
    File(RunLock),
    Registry,
}

/// Who holds a run, as read from its lock file by a process waiting for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `<project>/<run>`.
    pub run: String,
    /// `None` when the lock file did not say (an older or a brand-new holder).
    pub pid: Option<u32>,
    /// The holder's host, when the lock says (a PostgreSQL registry's
    /// locks do; a lock file is on this host's view of the artifacts).
    pub host: Option<String>,
    /// When the holder took the lock, RFC 3339.
    pub since: Option<String>,
}

impl Holder {
    /// `pid 1234 since 2025-01-01T00:00:00Z`, or what is known of that.
    pub fn describe(&self) -> String {
        let who = match (self.pid, &self.since) {
            (Some(pid), Some(since)) => format!("pid {pid} since {since}"),
            (Some(pid), None) => format!("pid {pid}"),
            (None, _) => "another process".to_string(),
        };
        match &self.host {
            Some(host) => format!("{who} on host {host}"),
            None => who,
        }
    }
}

/// What a holder writes into its lock file.
#[derive(Debug, Serialize, Deserialize)]
struct HolderRecord {
    pid: u32,
    since: String,
}

/// What to do while the run lock is taken by someone else.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// Give up (exit 4) after this long; zero means at once (`--no-wait`).
    pub timeout: Duration,
    /// Called once, when this process starts waiting.
    pub on_wait: Option<fn(&Holder)>,
}

pub fn lock_path(artifacts_dir: &Path, project_id: &str, run_id: &str) -> PathBuf {
    locks_dir(artifacts_dir).join(format!("{project_id}.{run_id}.lock"))
}

/// The liveness flag beside the run lock; see the module comment.
pub fn live_path(artifacts_dir: &Path, project_id: &str, run_id: &str) -> PathBuf {
    locks_dir(artifacts_dir).join(format!("{project_id}.{run_id}.live"))
}

fn locks_dir(artifacts_dir: &Path) -> PathBuf {
    artifacts_dir.join(".locks")
}

/// Take the run's lock, waiting as `wait` says for another holder to
/// finish; `since` (RFC 3339, from the caller's clock) is recorded for
/// waiters to show.
pub fn acquire(
    artifacts_dir: &Path,
    project_id: &str,
    run_id: &str,
    since: &str,
    wait: Wait,
) -> Result<RunLock> {
    let dir = locks_dir(artifacts_dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the lock directory", &dir, e))?;
    refuse_symlinked_dir(&dir)?;
    let path = lock_path(artifacts_dir, project_id, run_id);
    let lock = open_lock_file(&path).map_err(|e| Error::io("opening the run lock", &path, e))?;
    let run = format!("{project_id}/{run_id}");
    let started = Instant::now();
    // A wait too long to represent is simply no deadline.
    let deadline = started.checked_add(wait.timeout);
    let mut announced = wait.on_wait.is_none();
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if deadline.is_none_or(|d| Instant::now() < d) => {
                if !announced {
                    let holder = read_holder(&path, &run);
                    if holder.pid.is_some() || started.elapsed() >= HOLDER_GRACE {
                        if let Some(f) = wait.on_wait {
                            f(&holder);
                        }
                        announced = true;
                    }
                }
                std::thread::sleep(POLL);
            }
            Err(TryLockError::WouldBlock) => {
                let holder = read_holder(&path, &run);
                let waited = if wait.timeout.is_zero() {
                    String::new()
                } else {
                    let secs = wait.timeout.as_secs_f64().ceil() as u64;
                    format!("; still held after waiting {secs}s")
                };
                return Err(Error::Busy {
                    what: format!("run {run}"),
                    message: format!(
                        "held by {} (lock `{}`){waited}",
                        holder.describe(),
                        path.display()
                    ),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("locking", &path, e)),
        }
    }
    // A lock file with another name (a hard link, innocent in a `cp -al`
    // snapshot, or not) is locked but never written: writing would change
    // the other name's bytes. Waiters then name "another process". The
    // record is only ever shown: on a full disk (where gc must still run,
    // to free space) it stays unwritten too.
    let recorded = is_sole_link(&lock);
    if recorded {
        match write_holder(&lock, since) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {}
            written => written.map_err(|e| Error::io("writing the run lock", &path, e))?,
        }
    }

    let live_file = live_path(artifacts_dir, project_id, run_id);
    let live = open_lock_file(&live_file)
        .map_err(|e| Error::io("opening the run's liveness flag", &live_file, e))?;
    // Blocking is right here: only readers' momentary probes contend for it.
    live.lock()
        .map_err(|e| Error::io("locking", &live_file, e))?;
    Ok(RunLock {
        _live: live,
        lock,
        recorded,
    })
}

/// A `.locks` that is a symlink would have lock files made, and holder
/// records written, wherever it points: refused, naming it.
fn refuse_symlinked_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| Error::io("inspecting the lock directory", dir, e))?;
    if meta.is_dir() {
        return Ok(());
    }
    Err(Error::io(
        "refusing the lock directory",
        dir,
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a symbolic link or other non-directory; lock files are never written through one",
        ),
    ))
}

fn write_holder(mut file: &File, since: &str) -> std::io::Result<()> {
    let record = HolderRecord {
        pid: std::process::id(),
        since: since.to_string(),
    };
    let bytes = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&bytes)
}

/// Best effort: a lock file that is empty, half-written or not ours yields
/// a holder with no pid.
fn read_holder(path: &Path, run: &str) -> Holder {
    let mut bytes = Vec::new();
    let record = open_nofollow(path)
        .and_then(|f| f.take(HOLDER_MAX_BYTES).read_to_end(&mut bytes))
        .ok()
        .and_then(|_| serde_json::from_slice::<HolderRecord>(&bytes).ok());
    Holder {
        run: run.to_string(),
        pid: record.as_ref().map(|r| r.pid),
        host: None,
        since: record.map(|r| r.since),
    }
}

/// Whether a live process holds the run right now. Probes only the
/// liveness flag, read-only and without waiting, so it can neither block
/// nor refuse a `run`. A missing flag means nobody holds the run, and so
/// does one that is not a regular file (a FIFO must not hang a reader; no
/// `run` can hold such a flag, it refuses to open one).
pub fn is_held(artifacts_dir: &Path, project_id: &str, run_id: &str) -> bool {
    let path = live_path(artifacts_dir, project_id, run_id);
    let Ok(file) = open_nofollow(&path) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    }
}

/// A run found idle and kept so while this value lives: see [`hold_if_idle`].
#[derive(Debug)]
pub struct IdleRun {
    _live: File,
}

/// Hold the run idle, for a reader that must change its directory (remove
/// the temp files of a writer that died) without being a writer: the
/// liveness flag taken exclusively, without waiting. `None` when a process
/// holds the run, or the flag is missing (no process has completed taking
/// the run's lock since `.locks/` was made) or not a regular file.
///
/// Only the flag is taken, never the run lock, so a `run` is never refused
/// because of it: one that starts meanwhile takes the run lock and then
/// waits on the flag (a blocking `lock()` in [`acquire`]) until this is
/// dropped, before it writes anything.
pub fn hold_if_idle(artifacts_dir: &Path, project_id: &str, run_id: &str) -> Option<IdleRun> {
    let path = live_path(artifacts_dir, project_id, run_id);
    let file = crate::regular_file::open_nofollow(&path).ok()?;
    file.try_lock().ok()?;
    Some(IdleRun { _live: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SINCE: &str = "2025-01-01T00:00:00Z";

    fn no_wait() -> Wait {
        Wait {
            timeout: Duration::ZERO,
            on_wait: None,
        }
    }

    #[test]
    fn second_acquire_times_out_while_first_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path(), "p", "r", SINCE, no_wait()).unwrap();
        assert!(is_held(dir.path(), "p", "r"));
        let wait = Wait {
            timeout: Duration::from_millis(100),
            on_wait: None,
        };
        let err = acquire(dir.path(), "p", "r", SINCE, wait).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::BUSY);
        let pid = std::process::id();
        assert!(
            err.to_string()
                .contains(&format!("run p/r is busy: held by pid {pid} since {SINCE}")),
            "{err}"
        );
        drop(held);
        assert!(!is_held(dir.path(), "p", "r"));
        acquire(dir.path(), "p", "r", SINCE, no_wait()).unwrap();
    }

    #[test]
    fn a_liveness_probe_never_refuses_a_no_wait_acquire() {
        let dir = tempfile::tempdir().unwrap();
        drop(acquire(dir.path(), "p", "r", SINCE, no_wait()).unwrap());
        // A reader caught mid-probe: it holds the flag shared.
        let probe = File::open(live_path(dir.path(), "p", "r")).unwrap();
        probe.try_lock_shared().unwrap();
        let released = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(probe);
        });
        let held = acquire(dir.path(), "p", "r", SINCE, no_wait()).unwrap();
        released.join().unwrap();
        assert!(is_held(dir.path(), "p", "r"));
        drop(held);
    }

    #[test]
    fn a_released_lock_names_no_holder() {
        let dir = tempfile::tempdir().unwrap();
        drop(acquire(dir.path(), "p", "r", SINCE, no_wait()).unwrap());
        let holder = read_holder(&lock_path(dir.path(), "p", "r"), "p/r");
        assert_eq!(holder.pid, None);
        assert_eq!(holder.describe(), "another process");
    }
}
