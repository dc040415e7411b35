//! `orchestrator gc`: remove runs the user no longer wants, safely.
//!
//! A plan is made first and is all a dry run shows: the runs selected
//! (`--run`, `--keep-last N` per project, `--older-than DATE`; several
//! selectors must all hold), minus the runs that must stay — one a live
//! process holds, and one whose artifacts are parents of an artifact in a
//! run that stays (followed transitively, so nothing kept loses a parent).
//! Applying it removes each run's registry rows in one transaction (the
//! commit point: from then on the run is gone), then its directory; files
//! already deleted by hand are simply not there to remove.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::lock;
use crate::registry::{LiveCheck, Registry, RunFilter, RunRow};

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
    pub started_at: String,
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
    pub kept: Vec<Kept>,
    pub bytes: u64,
}

/// What applying a plan did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub removed: Vec<Doomed>,
    /// Runs that became busy between planning and removing, left alone.
    pub skipped: Vec<Kept>,
    pub bytes_freed: u64,
}

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
                .is_none_or(|t| run.started_at < *t);
        if chosen {
            selected.push(run);
        }
    }

    let key = |r: &RunRow| (r.project_id.clone(), r.run_id.clone());
    let mut kept: Vec<Kept> = Vec::new();
    let mut doomed: BTreeSet<(String, String)> = BTreeSet::new();
    for run in &selected {
        if run.status == "running" {
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
        let (files, bytes) = dir_usage(&artifacts_dir.join(&run.project_id).join(&run.run_id));
        remove.push(Doomed {
            project_id: run.project_id.clone(),
            run_id: run.run_id.clone(),
            status: run.status.clone(),
            started_at: run.started_at.clone(),
            files,
            bytes,
        });
    }
    let bytes = remove.iter().map(|d| d.bytes).sum();
    Ok(Plan {
        remove,
        kept,
        bytes,
    })
}

/// Remove what `plan` lists. Each run is locked (without waiting) while it
/// goes; one that became busy since the plan is skipped, not waited for.
pub fn apply(
    registry: &mut Registry,
    artifacts_dir: &Path,
    plan: &Plan,
    now: &str,
) -> Result<Outcome> {
    let mut removed = Vec::new();
    let mut skipped = Vec::new();
    for run in &plan.remove {
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
                skipped.push(Kept {
                    project_id: run.project_id.clone(),
                    run_id: run.run_id.clone(),
                    reason: "an `orchestrator run` started on it since the plan".to_string(),
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        registry.delete_run(&run.project_id, &run.run_id)?;
        let project_dir = artifacts_dir.join(&run.project_id);
        let run_dir = project_dir.join(&run.run_id);
        let (files, bytes) = dir_usage(&run_dir);
        remove_tree(&run_dir)?;
        // An empty project directory goes too; a non-empty one (other runs,
        // the user's files) stays, which `remove_dir` guarantees.
        let _ = std::fs::remove_dir(&project_dir);
        // The lock files stay (a few bytes each): unlinking one while
        // another process waits on it would let a newcomer lock a fresh
        // file beside that waiter, and two runs of one run could proceed.
        drop(guard);
        removed.push(Doomed {
            files,
            bytes,
            ..run.clone()
        });
    }
    let bytes_freed = removed.iter().map(|d| d.bytes).sum();
    Ok(Outcome {
        removed,
        skipped,
        bytes_freed,
    })
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

/// Remove a run directory and everything in it, never following a symlink
/// (std's `remove_dir_all` removes links, not their targets); a directory
/// already gone is fine.
fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("inspecting", dir, e)),
        // A run directory replaced by a symlink: remove the link only.
        Ok(m) if !m.is_dir() => remove_if_present(dir),
        Ok(_) => std::fs::remove_dir_all(dir).map_err(|e| Error::io("removing", dir, e)),
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("removing", path, e)),
        _ => Ok(()),
    }
}
