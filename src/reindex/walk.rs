//! Walking `<artifacts>/<project>/<run>/` without following symlinks.
//!
//! The tree has a fixed shape, so this is three `read_dir` levels rather
//! than a generic walker. Every entry that does not fit the shape is
//! reported, never entered: a symlink (wherever it points), a file where a
//! directory belongs, a directory whose name is not an id. Skipped quietly:
//! `.locks/`, the registry's own files, and `.tmp-*` files an interrupted
//! write left behind. Entries are visited in name order so reports are
//! stable.

use std::collections::BTreeMap;
use std::fs::FileType;
use std::path::{Path, PathBuf};

use super::read::describe_non_regular;
use super::{Finding, FindingKind};
use crate::artifact::{RUN_SUMMARY_FILE, TEMP_PREFIX};
use crate::config::is_valid_id;
use crate::error::{Error, Result};

/// The lock directory, which belongs to `run`, not to any project.
pub const LOCKS_DIR: &str = ".locks";

/// A `<project>/<run>` directory to index.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub project_id: String,
    pub run_id: String,
    /// `<project>/<run>`, relative to the artifacts directory.
    pub rel: String,
    pub path: PathBuf,
}

/// What a name in a run directory is.
#[derive(Debug, Clone)]
pub enum Entry {
    Regular,
    /// Not opened; `what` says what it is.
    NotRegular {
        symlink: bool,
        what: String,
    },
}

/// Every run directory, in (project, run) name order. Only an unreadable
/// artifacts directory is an error; anything below it is a finding.
pub fn run_dirs(
    artifacts_dir: &Path,
    is_registry_file: &dyn Fn(&str) -> bool,
    findings: &mut Vec<Finding>,
) -> Result<Vec<RunDir>> {
    let top = sorted_entries(artifacts_dir)
        .map_err(|e| Error::io("listing the artifacts directory", artifacts_dir, e))?;
    let mut runs = Vec::new();
    for (name, path, ft) in top {
        if name == LOCKS_DIR || is_registry_file(&name) || is_temp_file(&name, ft) {
            continue;
        }
        let Some(project) = expect_id_dir(&path, &name, &name, ft, "project", findings) else {
            continue;
        };
        let project_dir = path;
        let entries = match sorted_entries(&project_dir) {
            Ok(entries) => entries,
            Err(e) => {
                findings.push(Finding::new(
                    FindingKind::Unreadable,
                    &project,
                    format!("cannot list it: {e}; its runs were not indexed"),
                ));
                continue;
            }
        };
        for (name, path, ft) in entries {
            if is_temp_file(&name, ft) {
                continue;
            }
            let rel = format!("{project}/{name}");
            // Half-deleted by an interrupted gc: never indexed as a run.
            if let (Some(run), true) = (crate::gc::delete::run_of_deleting_name(&name), ft.is_dir())
            {
                findings.push(Finding::new(
                    FindingKind::Unexpected,
                    &rel,
                    format!("run {project}/{run} was being deleted by a gc that was interrupted; not indexed (`orchestrator gc --run {run} --yes` finishes deleting it)"),
                ));
                continue;
            }
            if let Some(run) = expect_id_dir(&path, &name, &rel, ft, "run", findings) {
                runs.push(RunDir {
                    path,
                    project_id: project.clone(),
                    run_id: run,
                    rel,
                });
            }
        }
    }
    Ok(runs)
}

/// The files of a run directory worth looking at, by name: the summary,
/// artifacts and meta files. Anything else is reported here.
pub fn run_files(
    run: &RunDir,
    findings: &mut Vec<Finding>,
) -> std::io::Result<BTreeMap<String, Entry>> {
    let mut files = BTreeMap::new();
    for (name, path, ft) in sorted_entries(&run.path)? {
        if is_temp_file(&name, ft) {
            continue;
        }
        let rel = format!("{}/{name}", run.rel);
        let entry = if ft.is_file() {
            Entry::Regular
        } else {
            Entry::NotRegular {
                symlink: ft.is_symlink(),
                what: what_is(&path),
            }
        };
        if is_run_file(&name) {
            files.insert(name, entry);
            continue;
        }
        findings.push(match entry {
            Entry::NotRegular {
                symlink: true,
                what,
            } => Finding::new(FindingKind::Symlink, &rel, what),
            Entry::NotRegular { what, .. } => Finding::new(
                FindingKind::Unexpected,
                &rel,
                format!("{what} in a run directory, which holds only artifact files"),
            ),
            Entry::Regular => Finding::new(
                FindingKind::Unexpected,
                &rel,
                "not an artifact, meta file or run summary; not indexed".to_string(),
            ),
        });
    }
    Ok(files)
}

/// `run_summary.json`, `<Type>.json` or `<Type>.meta.json`.
fn is_run_file(name: &str) -> bool {
    use std::str::FromStr;
    let ty = |stem: &str| crate::artifact::ArtifactType::from_str(stem).is_ok();
    name == RUN_SUMMARY_FILE
        || name.strip_suffix(".meta.json").is_some_and(ty)
        || name.strip_suffix(".json").is_some_and(ty)
}

/// A leftover temp file of an interrupted atomic write. Only a regular file
/// qualifies: a symlink or directory by that name is reported like any other.
fn is_temp_file(name: &str, ft: FileType) -> bool {
    name.starts_with(TEMP_PREFIX) && ft.is_file()
}

/// `name` (at `path`) if it is a real directory named like an id;
/// otherwise a finding (`what` is `project` or `run`).
fn expect_id_dir(
    path: &Path,
    name: &str,
    rel: &str,
    ft: FileType,
    what: &str,
    findings: &mut Vec<Finding>,
) -> Option<String> {
    let finding = if ft.is_symlink() {
        Finding::new(
            FindingKind::Symlink,
            rel,
            format!(
                "{}; a {what} directory is never entered through one",
                what_is(path)
            ),
        )
    } else if !ft.is_dir() {
        Finding::new(
            FindingKind::Unexpected,
            rel,
            format!("{} where only {what} directories belong", what_is(path)),
        )
    } else if !is_valid_id(name) {
        Finding::new(
            FindingKind::Unexpected,
            rel,
            format!("a directory not named like a {what} id (a-z, 0-9, `-`, `_`); not searched"),
        )
    } else {
        return Some(name.to_string());
    };
    findings.push(finding);
    None
}

fn what_is(path: &Path) -> String {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => format!("a file of {} bytes", m.len()),
        Ok(m) => describe_non_regular(path, &m),
        Err(e) => format!("unreadable ({e})"),
    }
}

/// Entries of `dir` with their types (never following a symlink), by name.
/// The name is for reports and matching (a name that is not UTF-8 matches
/// nothing); the path is the real one.
fn sorted_entries(dir: &Path) -> std::io::Result<Vec<(String, PathBuf, FileType)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
            entry.file_type()?,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
