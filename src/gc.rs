//! `orchestrator gc`: remove runs the user no longer wants, safely.
//!
//! A plan is made first and is all a dry run shows: the runs selected
//! (`--run`, `--keep-last N` per project, `--older-than DATE`; several
//! selectors must all hold), minus the runs that must stay — one a live
//! process holds, and one whose artifacts are parents of an artifact in a
//! run that stays (followed transitively, so nothing kept loses a parent).
//! Applying it deletes each run as [`delete`] says: marked in the tree
//! first, then its files, then its registry rows, so that a gc killed or
//! failing half-way leaves a run `verify` reports and the next gc finishes.
//! Every deletion an earlier gc left unfinished is part of every plan,
//! whatever the selectors. Files already deleted by hand are simply not
//! there to remove; files gc did not write are never removed.

pub mod delete;

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use self::delete::{Mode, delete_run};
use crate::error::{Error, Result};
use crate::lock;
use crate::registry::{LiveCheck, Registry, RunFilter, RunRow, RunStatus};

/// Which runs to remove. Every selector given must hold.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Exactly this run (already resolved).
    pub run: Option<RunRow>,
    /// Keep the newest N runs of each project.
    pub keep_last: Option<usize>,
    /// Runs started before this RFC 3339 UTC time.
    pub older_than: Option<String>,
    /// Only this project.
    pub project: Option<String>,
}

/// A run the plan removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Doomed {
    pub project_id: String,
    pub run_id: String,
    pub status: String,
    /// When the run was created (its first attempt): what `--older-than`
    /// and `--keep-last` go by.
    pub created_at: String,
    /// Files in its run directory now (0 when already deleted by hand).
    pub files: u64,
    pub bytes: u64,
}

/// A selected run that stays, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub project_id: String,
    pub run_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub remove: Vec<Doomed>,
    /// Deletions an earlier gc began and did not finish (status
    /// `deleting`), finished whatever the selectors.
    pub finish: Vec<Doomed>,
    pub kept: Vec<Kept>,
    pub bytes: u64,
}

/// A path gc left in place because it did not write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Left {
    /// Relative to the artifacts directory.
    pub path: String,
    pub reason: String,
}

/// What applying a plan did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub removed: Vec<Doomed>,
    pub finished: Vec<Doomed>,
    /// Runs that became busy between planning and removing, left alone,
    /// and runs gc refused to remove.
    pub skipped: Vec<Kept>,
    pub left: Vec<Left>,
    pub bytes_freed: u64,
}

/// The status shown for a deletion being finished.
pub const DELETING: &str = "deleting";

/// Work out what `selection` would remove.
pub fn plan(
    registry: &Registry,
    artifacts_dir: &Path,
    selection: &Selection,
    live: LiveCheck<'_>,
) -> Result<Plan> {
    let filter = RunFilter {
        project: selection.project.clone(),
        limit: usize::MAX,
        ..RunFilter::default()
    };
    // Newest first, which is what `--keep-last` counts from.
    let (runs, _) = registry.list_runs(&filter, live)?;
    let mut per_project: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut selected = Vec::new();
    for run in &runs {
        let rank = per_project.entry(run.project_id.as_str()).or_insert(0);
        *rank += 1;
        let chosen = selection
            .run
            .as_ref()
            .is_none_or(|r| r.project_id == run.project_id && r.run_id == run.run_id)
            && selection.keep_last.is_none_or(|n| *rank > n)
            && selection
                .older_than
                .as_ref()
                .is_none_or(|t| run.created_at < *t);
        if chosen {
            selected.push(run);
        }
    }

    let key = |r: &RunRow| (r.project_id.clone(), r.run_id.clone());
    let mut kept: Vec<Kept> = Vec::new();
    let mut doomed: BTreeSet<(String, String)> = BTreeSet::new();
    for run in &selected {
        if run.status == RunStatus::Running {
            kept.push(Kept {
                project_id: run.project_id.clone(),
                run_id: run.run_id.clone(),
                reason: "a live `orchestrator run` holds it".to_string(),
            });
        } else {
            doomed.insert(key(run));
        }
    }
    // A run whose artifacts a staying run was made from stays too; that
    // can make another run stay, so repeat until nothing changes.
    loop {
        let mut saved = Vec::new();
        for (project_id, run_id) in &doomed {
            let users = registry.runs_using(project_id, run_id)?;
            if let Some(user) = users.iter().find(|u| !doomed.contains(*u)) {
                saved.push(Kept {
                    project_id: project_id.clone(),
                    run_id: run_id.clone(),
                    reason: format!(
                        "its artifacts are parents of run {}/{}, which stays",
                        user.0, user.1
                    ),
                });
            }
        }
        if saved.is_empty() {
            break;
        }
        for k in saved {
            doomed.remove(&(k.project_id.clone(), k.run_id.clone()));
            kept.push(k);
        }
    }

    let mut remove = Vec::new();
    for run in selected.iter().filter(|r| doomed.contains(&key(r))) {
        let project_dir = artifacts_dir.join(&run.project_id);
        let (files, bytes) = add(
            dir_usage(&project_dir.join(&run.run_id)),
            dir_usage(&project_dir.join(delete::deleting_name(&run.run_id))),
        );
        remove.push(Doomed {
            project_id: run.project_id.clone(),
            run_id: run.run_id.clone(),
            status: run.status.to_string(),
            created_at: run.created_at.clone(),
            files,
            bytes,
        });
    }
    // Whatever was selected: an interrupted deletion is finished by any gc
    // (a run being removed anyway finishes its own).
    let mut finish = Vec::new();
    for i in delete::interrupted(artifacts_dir, None) {
        if doomed.contains(&(i.project_id.clone(), i.run_id.clone())) {
            continue;
        }
        let (files, bytes) = dir_usage(&artifacts_dir.join(&i.rel));
        finish.push(Doomed {
            project_id: i.project_id,
            run_id: i.run_id,
            status: DELETING.to_string(),
            created_at: String::new(),
            files,
            bytes,
        });
    }
    let bytes = remove.iter().chain(&finish).map(|d| d.bytes).sum();
    Ok(Plan {
        remove,
        finish,
        kept,
        bytes,
    })
}

fn add(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0 + b.0, a.1 + b.1)
}

/// Remove what `plan` lists, interrupted deletions first. Each run is
/// locked (without waiting) while it goes; one that became busy since the
/// plan is skipped, not waited for.
pub fn apply(
    registry: &mut Registry,
    artifacts_dir: &Path,
    plan: &Plan,
    now: &str,
) -> Result<Outcome> {
    let mut outcome = Outcome {
        removed: Vec::new(),
        finished: Vec::new(),
        skipped: Vec::new(),
        left: Vec::new(),
        bytes_freed: 0,
    };
    let work = plan
        .finish
        .iter()
        .map(|d| (d, Mode::Finish))
        .chain(plan.remove.iter().map(|d| (d, Mode::Remove)));
    // Runs whose files went but whose rows a full disk kept: finished
    // after every other run has freed its space.
    let mut rows_pending = Vec::new();
    for (run, mode) in work {
        if let Some(done) = delete_locked(registry, artifacts_dir, run, mode, now, &mut outcome)? {
            if done.rows_pending {
                rows_pending.push((run, mode, done));
            } else {
                record(&mut outcome, run, mode, done);
            }
        }
    }
    if !rows_pending.is_empty() {
        // The log grew into the space the files freed while the failed
        // deletions were rolled back; folding it into the database lets
        // SQLite write it again from its start. Best effort: the retry
        // below says what still fails.
        if let Some(conn) = registry.db().sqlite() {
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
    for (run, mode, mut done) in rows_pending {
        match delete_locked(
            registry,
            artifacts_dir,
            run,
            Mode::Finish,
            now,
            &mut outcome,
        )? {
            Some(again) if again.rows_pending => {
                return Err(Error::io(
                    "deleting the registry rows of a run whose files are deleted, in",
                    registry.path(),
                    std::io::Error::from_raw_os_error(libc::ENOSPC),
                ));
            }
            Some(again) => {
                done.left.extend(again.left);
                record(&mut outcome, run, mode, done);
            }
            None => {}
        }
    }
    Ok(outcome)
}

fn record(outcome: &mut Outcome, run: &Doomed, mode: Mode, deleted: delete::Deleted) {
    outcome.bytes_freed += deleted.bytes;
    outcome
        .left
        .extend(deleted.left.into_iter().map(|path| Left {
            path,
            reason: "not written by orchestrator: gc removes only what it wrote".to_string(),
        }));
    let done = Doomed {
        files: deleted.files,
        bytes: deleted.bytes,
        ..run.clone()
    };
    match mode {
        Mode::Remove => outcome.removed.push(done),
        Mode::Finish => outcome.finished.push(done),
    }
}

/// Delete one run under its lock; `None` when it is skipped (busy, or
/// refused: recorded in `outcome.skipped`).
fn delete_locked(
    registry: &mut Registry,
    artifacts_dir: &Path,
    run: &Doomed,
    mode: Mode,
    now: &str,
    outcome: &mut Outcome,
) -> Result<Option<delete::Deleted>> {
    let held = lock::acquire(
        artifacts_dir,
        &run.project_id,
        &run.run_id,
        now,
        lock::Wait {
            timeout: std::time::Duration::ZERO,
            on_wait: None,
        },
    );
    let guard = match held {
        Ok(guard) => guard,
        Err(Error::Busy { .. }) => {
            outcome.skipped.push(Kept {
                project_id: run.project_id.clone(),
                run_id: run.run_id.clone(),
                reason: "another process (`run`, `package`, `gc`) holds it".to_string(),
            });
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let deleted = delete_run(registry, artifacts_dir, &run.project_id, &run.run_id, mode)?;
    // The lock files stay (a few bytes each): unlinking one while
    // another process waits on it would let a newcomer lock a fresh
    // file beside that waiter, and two runs of one run could proceed.
    drop(guard);
    match deleted {
        Ok(d) => Ok(Some(d)),
        Err(refusal) => {
            outcome.skipped.push(Kept {
                project_id: run.project_id.clone(),
                run_id: run.run_id.clone(),
                reason: refusal.0,
            });
            Ok(None)
        }
    }
}

/// Files and bytes under `dir`, not following symlinks (a link counts as
/// itself). A missing directory is empty.
fn dir_usage(dir: &Path) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let mut files = 0;
    let mut bytes = 0;
    for entry in entries.flatten() {
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            let (f, b) = dir_usage(&entry.path());
            files += f;
            bytes += b;
        } else {
            files += 1;
            bytes += meta.len();
        }
    }
    (files, bytes)
}
