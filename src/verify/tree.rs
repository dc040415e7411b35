//! What the tree holds that no registered run accounts for: run
//! directories the registry does not know, runs an interrupted `gc` was
//! deleting, and the copies a dead `reindex` left beside the registry.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Problem, ProblemKind, RunInProgress};
use crate::config::is_valid_id;
use crate::error::Result;
use crate::gc::delete::{deleting_name, run_of_deleting_name};
use crate::registry::{LiveCheck, Registry};

/// Which part of the tree to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeScope<'a> {
    /// Only the registered runs asked for (`verify --run`).
    Runs,
    /// One project's directory.
    Project(&'a str),
    /// The whole artifacts directory, and the registry's own directory.
    All,
}

/// What the scan found: problems, and runs a live process is making or
/// deleting right now (not judged).
#[derive(Debug, Default)]
pub(super) struct Found {
    pub problems: Vec<Problem>,
    pub in_progress: Vec<RunInProgress>,
    pub being_removed: Vec<RunInProgress>,
}

/// Look at every run directory in `scope` that is not in `known`.
pub(super) fn scan(
    registry: &Registry,
    artifacts_dir: &Path,
    scope: TreeScope<'_>,
    known: &BTreeSet<(&str, &str)>,
    live: LiveCheck<'_>,
) -> Result<Found> {
    let mut found = Found::default();
    let projects: Vec<String> = match scope {
        TreeScope::Runs => return Ok(found),
        TreeScope::Project(p) => vec![p.to_string()],
        TreeScope::All => dirs(artifacts_dir)
            .into_iter()
            .filter(|n| is_valid_id(n))
            .collect(),
    };
    for project in projects {
        let project_dir = artifacts_dir.join(&project);
        for name in dirs(&project_dir) {
            let (run, deleting) = match run_of_deleting_name(&name) {
                Some(run) => (run.to_string(), true),
                None if is_valid_id(&name) => (name.clone(), false),
                None => continue,
            };
            let key = (project.as_str(), run.as_str());
            let entry = RunInProgress {
                project_id: project.clone(),
                run_id: run.clone(),
            };
            if deleting {
                // A registered run that is marked was reported with the
                // registered runs.
                if known.contains(&key) {
                    continue;
                }
                if live(&project, &run) {
                    found.being_removed.push(entry);
                } else {
                    found.problems.push(interrupted_deletion(
                        artifacts_dir,
                        &project,
                        &run,
                        Marked::Unregistered,
                    ));
                }
                continue;
            }
            if known.contains(&key) {
                continue;
            }
            if live(&project, &run) {
                // A run begins before its first commit records it.
                found.in_progress.push(entry);
                continue;
            }
            // Recorded after the runs were listed: not unknown.
            if registry.run_exists(&project, &run)? {
                continue;
            }
            let rel = format!("{project}/{name}");
            found.problems.push(Problem {
                kind: ProblemKind::UnknownRun,
                path: rel.clone(),
                project_id: project.clone(),
                run_id: run.clone(),
                artifact_type: None,
                expected: "a run the registry records".to_string(),
                found: format!(
                    "a run directory the registry does not know, holding {}: \
                     `orchestrator run --run-id {run}` resumes a run killed before it \
                     recorded anything, `orchestrator reindex` indexes a finished one",
                    entries(&artifacts_dir.join(&rel))
                ),
            });
        }
    }
    Ok(found)
}

/// What the registry and the tree say of a run whose
/// `<project>/.deleting-<run>` a gc left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Marked {
    /// The registry still records the run, and `<project>/<run>` is gone:
    /// the run itself is half-deleted.
    Registered,
    /// The registry no longer records it.
    Unregistered,
    /// A later `run` of the same id made `<project>/<run>` anew, and the
    /// registry records that run: the marked directory is the earlier
    /// take's, and `gc --run <run>` would delete the new one too.
    Remade,
}

/// The problem for run `project`/`run`, which `<project>/.deleting-<run>`
/// says a gc began deleting and did not finish.
pub(super) fn interrupted_deletion(
    artifacts_dir: &Path,
    project: &str,
    run: &str,
    marked: Marked,
) -> Problem {
    let rel = format!("{project}/{}", deleting_name(run));
    let left = entries(&artifacts_dir.join(&rel));
    let found = match marked {
        Marked::Registered | Marked::Unregistered => format!(
            "a run a `gc` was deleting when it stopped ({left} left; the registry {} records \
             it): `orchestrator gc --run {run} --yes` finishes deleting it",
            if marked == Marked::Registered {
                "still"
            } else {
                "no longer"
            }
        ),
        Marked::Remade => format!(
            "an earlier take of run {run} that a `gc` was deleting when it stopped ({left} \
             left), beside the run now in `{project}/{run}`: any `orchestrator gc --yes` \
             finishes deleting it and leaves the new run alone, e.g. \
             `orchestrator gc --older-than 1970-01-01 --yes`, which selects no run \
             (`gc --run {run}` would delete the new run too)"
        ),
    };
    Problem {
        kind: ProblemKind::DeletionInterrupted,
        path: rel,
        project_id: project.to_string(),
        run_id: run.to_string(),
        artifact_type: None,
        expected: "no run left half-deleted".to_string(),
        found,
    }
}

/// Whether `<project>/.deleting-<run>` exists.
pub(super) fn is_marked_for_deletion(artifacts_dir: &Path, project: &str, run: &str) -> bool {
    std::fs::symlink_metadata(artifacts_dir.join(project).join(deleting_name(run)))
        .is_ok_and(|m| m.is_dir())
}

/// `<db>.reindex-<pid>…` files of reindex processes that are gone: each
/// dead process's files are one problem. Which reindex is alive is judged
/// as `reindex` judges it before removing them
/// ([`crate::reindex::stale_leftovers`]: the lock on its `.live` mark),
/// which only ever opens that mark, never following a link and never
/// waiting on a FIFO.
pub(super) fn reindex_leftovers(db: &Path) -> Vec<Problem> {
    let dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(db_name) = db.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let prefix = format!("{db_name}.reindex-");
    let mut by_pid: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for path in crate::reindex::stale_leftovers(db) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(pid) = digits.parse::<u32>() {
            by_pid.entry(pid).or_default().push(name.to_string());
        }
    }
    let mut out = Vec::new();
    for (pid, mut names) in by_pid {
        let base: PathBuf = dir.join(format!("{prefix}{pid}"));
        names.sort();
        out.push(Problem {
            kind: ProblemKind::ReindexLeftover,
            path: base.to_string_lossy().into_owned(),
            project_id: String::new(),
            run_id: String::new(),
            artifact_type: None,
            expected: "no leftovers of an `orchestrator reindex` that is no longer running"
                .to_string(),
            found: format!(
                "{} left by reindex process {pid}, which is gone: {}; the registry in use is \
                 `{}`, so these can be deleted",
                if names.len() == 1 { "a file" } else { "files" },
                names.join(", "),
                db.display()
            ),
        });
    }
    out
}

/// Real directories (not symlinks) in `dir`, by name, sorted; names that
/// are not UTF-8 are not ids and are skipped. Shared with `gc`, which walks
/// the same tree for deletions to finish.
pub(crate) fn dirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// "3 entries (a.json, b.json, notes.txt)", at most a few names shown.
fn entries(dir: &Path) -> String {
    const SHOWN: usize = 5;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    match names.len() {
        0 => "nothing".to_string(),
        n => {
            let mut shown = names.iter().take(SHOWN).cloned().collect::<Vec<_>>();
            if n > SHOWN {
                shown.push("…".to_string());
            }
            format!(
                "{n} {} ({})",
                if n == 1 { "entry" } else { "entries" },
                shown.join(", ")
            )
        }
    }
}
