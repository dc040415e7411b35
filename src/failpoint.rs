//! Test-only fault injection on the write path.
//!
//! With the `failpoints` cargo feature (which `make test` enables and no
//! release build has), the environment variable `ORCHESTRATOR_FAILPOINTS`
//! names points on the write path and what happens there:
//!
//! ```text
//! ORCHESTRATOR_FAILPOINTS="stage.after_meta_write=kill@3,summary.before_write=enospc"
//! ```
//!
//! `kill` sends the process SIGKILL (no destructors, no flush: what a power
//! cut or `kill -9` leaves), `stop` sends it SIGSTOP (a test holds the
//! process there, locks held, until it sends SIGCONT; the point then
//! passes), `enospc` and `eio` make the point fail as a full disk or a
//! failing device would, and `pause` (for races) creates
//! `failpoint-<name>.paused` in the working directory and waits (up to a
//! minute) until a test creates `failpoint-<name>.resume` beside it. `@N` fires on the N-th time the
//! point is reached (default 1), so `stage.*@3` hits stage 3. The crash
//! tests in `tests/crash.rs` drive every point listed in [`POINTS`].
//!
//! Without the feature, [`hit`] is an inlined `Ok(())` and the variable is
//! never read.

/// Every point on the write path, in the order a stage reaches them.
pub const POINTS: &[&str] = &[
    // `write_atomic`: the temp file is written and synced, not yet renamed.
    "write.before_rename",
    // A stage's output is computed and valid; nothing of it is on disk.
    "stage.before_data_write",
    // `X.json` is in place; `X.meta.json` is not.
    "stage.after_data_write",
    // Both files are in place; the registry knows nothing of them.
    "stage.after_meta_write",
    // A run directory is about to be synced (after a stage's files, before
    // an adoption is recorded, after the closing summary).
    "dir.sync",
    // Inside the stage's transaction: rows inserted, not committed.
    "stage.in_commit",
    // The stage is committed; the runner has not moved on.
    "stage.after_commit",
    // Every stage is done; `run_summary.json` is not yet rewritten.
    "summary.before_write",
    // `run_summary.json` is rewritten; the run is not yet marked finished.
    "summary.after_write",
    // `package --archive`: each write into the archive's temp file.
    "archive.write",
    // Reindex: the rebuilt registry is complete and closed beside the old
    // one, which is untouched; no process has the old one open.
    "reindex.before_swap",
    // The old registry's WAL is checkpointed into its file.
    "reindex.after_fold",
    // The old registry's `-wal`, `-shm` and `-journal` are gone.
    "reindex.after_side_files",
    // The rebuilt registry is renamed into place; the directory is not
    // yet synced and the rebuild's side files are not yet removed.
    "reindex.after_rename",
    // gc: the run directory has its deletion name; nothing is deleted yet.
    "gc.after_mark",
    // gc: one more file of a run being deleted is gone (`@N`: the N-th).
    "gc.file_removed",
    // gc: every file gc may delete is gone; the registry rows are not.
    "gc.before_rows",
    // gc: the registry rows are gone; the emptied directory is not.
    "gc.after_rows",
    // verify: every run of a chunk is checked; no result is recorded yet.
    "verify.before_record",
];

/// Pass point `name`: `Ok` unless the environment arms it for this hit.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &'static str) -> std::io::Result<()> {
    Ok(())
}

#[cfg(feature = "failpoints")]
pub fn hit(name: &'static str) -> std::io::Result<()> {
    armed::hit(name)
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Action {
        Kill,
        Stop,
        Errno(i32),
        Pause,
    }

    struct Armed {
        action: Action,
        on_hit: u32,
    }

    /// The armed points, and how often each point has been reached.
    type Table = (HashMap<String, Armed>, HashMap<&'static str, u32>);

    fn table() -> &'static Mutex<Table> {
        static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
        TABLE.get_or_init(|| {
            let spec = std::env::var("ORCHESTRATOR_FAILPOINTS").unwrap_or_default();
            Mutex::new((parse(&spec), HashMap::new()))
        })
    }

    /// `name=action[@n],…`; an entry that does not parse is a test bug, so
    /// it aborts loudly rather than silently arming nothing.
    fn parse(spec: &str) -> HashMap<String, Armed> {
        let mut out = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, rest) = entry
                .split_once('=')
                .unwrap_or_else(|| panic!("failpoint `{entry}`: expected name=action"));
            assert!(
                super::POINTS.contains(&name),
                "unknown failpoint `{name}`; known: {:?}",
                super::POINTS
            );
            let (action, on_hit) = match rest.split_once('@') {
                Some((a, n)) => (a, n.parse().expect("failpoint hit count")),
                None => (rest, 1),
            };
            let action = match action {
                "kill" => Action::Kill,
                "stop" => Action::Stop,
                "enospc" => Action::Errno(libc::ENOSPC),
                "eio" => Action::Errno(libc::EIO),
                "pause" => Action::Pause,
                other => panic!("failpoint `{name}`: unknown action `{other}`"),
            };
            out.insert(name.to_string(), Armed { action, on_hit });
        }
        out
    }

    pub fn hit(name: &'static str) -> std::io::Result<()> {
        let mut guard = table().lock().unwrap_or_else(|e| e.into_inner());
        let (armed, counts) = &mut *guard;
        let count = counts.entry(name).or_insert(0);
        *count += 1;
        let Some(point) = armed.get(name).filter(|p| p.on_hit == *count) else {
            return Ok(());
        };
        let action = point.action;
        match action {
            Action::Kill => {
                // SAFETY: raise(2) has no memory-safety preconditions; the
                // process does not return from SIGKILL.
                unsafe {
                    libc::raise(libc::SIGKILL);
                }
                unreachable!("SIGKILL returned");
            }
            Action::Stop => {
                // SAFETY: as above; the process resumes here on SIGCONT.
                unsafe {
                    libc::raise(libc::SIGSTOP);
                }
                Ok(())
            }
            Action::Errno(code) => Err(std::io::Error::from_raw_os_error(code)),
            Action::Pause => {
                drop(guard);
                std::fs::write(format!("failpoint-{name}.paused"), b"")?;
                let resume = format!("failpoint-{name}.resume");
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                while !std::path::Path::new(&resume).exists()
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Ok(())
            }
        }
    }
}
