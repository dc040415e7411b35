//! One run's own checks: its directory is a real directory inside the
//! artifacts directory, its run summary is as registered, nothing in it is
//! unregistered, and no parent edge went stale.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::file::{Scratch, contained, describe_non_regular, hash_file, lstat_regular};
use super::{Problem, ProblemKind};
use crate::artifact::RUN_SUMMARY_FILE;
use crate::error::{Error, Result};
use crate::registry::{ArtifactRecord, RunRow, StaleEdge};

fn run_problem(
    run: &RunRow,
    kind: ProblemKind,
    path: String,
    expected: String,
    found: String,
) -> Problem {
    Problem {
        kind,
        path,
        project_id: run.project_id.clone(),
        run_id: run.run_id.clone(),
        artifact_type: None,
        expected,
        found,
    }
}

/// The project and run directories must be real directories inside the
/// artifacts directory; a symlink is reported, never followed.
pub(super) fn check_run_dir_itself(artifacts_dir: &Path, run: &RunRow) -> Option<Problem> {
    if !contained(&run.run_dir) {
        return Some(run_problem(
            run,
            ProblemKind::UnsafePath,
            run.run_dir.clone(),
            "a run directory inside the artifacts directory".to_string(),
            format!("`{}`", run.run_dir),
        ));
    }
    let mut rel = PathBuf::new();
    for part in Path::new(&run.run_dir).components() {
        rel.push(part);
        let full = artifacts_dir.join(&rel);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) => {
                return Some(run_problem(
                    run,
                    ProblemKind::NotRegularFile,
                    rel.to_string_lossy().into_owned(),
                    "a directory".to_string(),
                    describe_non_regular(&full, &m),
                ));
            }
            // Missing: every artifact in it is reported missing on its own.
            Err(_) => return None,
        }
    }
    None
}

/// Edges whose parent changed after the child was made from it.
pub(super) fn stale_parent_problems(run: &RunRow, edges: Vec<StaleEdge>) -> Vec<Problem> {
    edges
        .into_iter()
        .map(|e| Problem {
            kind: ProblemKind::StaleParent,
            path: e.child_path,
            project_id: run.project_id.clone(),
            run_id: run.run_id.clone(),
            artifact_type: Some(e.child_type),
            expected: format!(
                "parent {} with sha256 {}",
                e.parent_type, e.recorded_parent_sha256
            ),
            found: format!(
                "parent {} now has sha256 {}",
                e.parent_type, e.parent_sha256
            ),
        })
        .collect()
}

/// The run summary (`summary`: its registered path and sha256) is present
/// and as registered.
pub(super) fn check_summary(
    artifacts_dir: &Path,
    run: &RunRow,
    summary: Option<&(String, String)>,
    scratch: &mut Scratch,
) -> Option<Problem> {
    let (path, sha) = summary?;
    let hashed = if contained(path) {
        let full = artifacts_dir.join(path);
        lstat_regular(&full).and_then(|m| {
            hash_file(&full, m.len(), &mut scratch.buf, &mut |_| {})
                .map_err(|e| (ProblemKind::Unreadable, e.to_string()))
        })
    } else {
        Err((ProblemKind::UnsafePath, format!("`{path}`")))
    };
    match hashed {
        Err((kind, found)) => Some(run_problem(
            run,
            kind,
            path.clone(),
            format!("the run summary with sha256 {sha}"),
            found,
        )),
        Ok(h) if h.sha256 != *sha => Some(run_problem(
            run,
            ProblemKind::HashMismatch,
            path.clone(),
            format!("sha256 {sha}"),
            format!("sha256 {}", h.sha256),
        )),
        Ok(_) => None,
    }
}

/// The names in the run directory; `None` if it does not exist (its
/// missing files are reported one by one).
pub(super) fn list_run_dir(artifacts_dir: &Path, run: &RunRow) -> Result<Option<Vec<OsString>>> {
    let dir: PathBuf = artifacts_dir.join(&run.run_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("listing the run directory", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing the run directory", &dir, e))?;
        // As they are: a lossy name would not be found again by lstat.
        names.push(entry.file_name());
    }
    Ok(Some(names))
}

/// The files of the run directory (`names`, as listed) that the registry
/// does not know: not an artifact, its meta file or the run summary.
pub(super) fn unregistered(
    artifacts_dir: &Path,
    run: &RunRow,
    names: &[OsString],
    artifacts: &[ArtifactRecord],
    summary: Option<&(String, String)>,
) -> Vec<Problem> {
    // Compared as names within the run directory, without building a set
    // of paths for every run: there are at most eleven known names.
    let prefix = &format!("{}/", run.run_dir);
    let known = |name: &str| {
        let artifact_or_meta = artifacts
            .iter()
            .filter_map(|a| a.path.strip_prefix(prefix))
            .any(|file| file == name || is_meta_of(name, file));
        artifact_or_meta
            || match summary {
                Some((path, _)) => path.strip_prefix(prefix) == Some(name),
                None => name == RUN_SUMMARY_FILE,
            }
    };
    // A name that is not UTF-8 is no registered name.
    let mut extra: Vec<&OsString> = names
        .iter()
        .filter(|n| n.to_str().is_none_or(|n| !known(n)))
        .collect();
    extra.sort();
    extra
        .into_iter()
        .map(|name| {
            let rel = format!("{prefix}{}", crate::path_text::escaped(name));
            let full = artifacts_dir.join(&run.run_dir).join(name);
            let found = match std::fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_file() => format!("a file of {} bytes", m.len()),
                Ok(m) => describe_non_regular(&full, &m),
                Err(e) => e.to_string(),
            };
            run_problem(
                run,
                ProblemKind::Unregistered,
                rel,
                "only registered artifacts, their meta files and run_summary.json".to_string(),
                found,
            )
        })
        .collect()
}

/// Whether `name` is the meta file of artifact file `file`, as
/// [`meta_path_of`] names it: `X.json` → `X.meta.json`, `odd` → `odd.meta.json`.
fn is_meta_of(name: &str, file: &str) -> bool {
    name.strip_suffix(".meta.json") == Some(file.strip_suffix(".json").unwrap_or(file))
}

#[cfg(test)]
mod tests {
    use super::super::artifact::meta_path_of;
    use super::*;

    #[test]
    fn meta_names_match_meta_path_of() {
        for file in ["ShotList.json", "odd", "a.json.json", ".json"] {
            assert!(is_meta_of(&meta_path_of(file), file), "{file}");
        }
        assert!(!is_meta_of("ShotList.meta.json", "Script.json"));
        assert!(!is_meta_of("ShotList.json", "ShotList.json"));
    }
}
