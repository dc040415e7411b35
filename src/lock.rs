//! Advisory locks that keep two processes from running the same run at once.
//!
//! A run's lock is a file under `<artifacts>/.locks/`, outside every run
//! directory (which must hold exactly the artifact files). The OS releases
//! the lock when the holder exits, however it exits, which is also how
//! `runs list` tells a crashed run ("interrupted") from a live one.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Held for as long as the value lives.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

pub fn lock_path(artifacts_dir: &Path, project_id: &str, run_id: &str) -> PathBuf {
    artifacts_dir
        .join(".locks")
        .join(format!("{project_id}.{run_id}.lock"))
}

/// Take the run's lock, waiting up to `wait` for another holder to finish.
pub fn acquire(
    artifacts_dir: &Path,
    project_id: &str,
    run_id: &str,
    wait: Duration,
) -> Result<RunLock> {
    let path = lock_path(artifacts_dir, project_id, run_id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("creating the lock directory", dir, e))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening the run lock", &path, e))?;
    // A wait too long to represent is simply no deadline.
    let deadline = Instant::now().checked_add(wait);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(RunLock { _file: file }),
            Err(TryLockError::WouldBlock) if deadline.is_none_or(|d| Instant::now() < d) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Busy {
                    what: format!("run {project_id}/{run_id}"),
                    message: format!(
                        "another `orchestrator run` has held `{}` for over {}s",
                        path.display(),
                        wait.as_secs()
                    ),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("locking", &path, e)),
        }
    }
}

/// Whether some process holds the run's lock right now. A missing lock file
/// means nobody does.
pub fn is_held(artifacts_dir: &Path, project_id: &str, run_id: &str) -> bool {
    let path = lock_path(artifacts_dir, project_id, run_id);
    let Ok(file) = File::open(&path) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_times_out_while_first_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path(), "p", "r", Duration::ZERO).unwrap();
        assert!(is_held(dir.path(), "p", "r"));
        let err = acquire(dir.path(), "p", "r", Duration::from_millis(100)).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::BUSY);
        drop(held);
        assert!(!is_held(dir.path(), "p", "r"));
        acquire(dir.path(), "p", "r", Duration::ZERO).unwrap();
    }
}
