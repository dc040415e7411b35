//! Verification: re-check what the registry promises against the disk.
//!
//! For every registered artifact in scope: the file exists, is a regular
//! file (a symlink is reported, never followed), hashes to the recorded
//! sha256, still passes its schema, and its meta file agrees with the
//! registry's copy of the meta record. Each run directory is also checked
//! for its run summary and for files the registry never recorded.
//!
//! Finding problems is a result, not an error: `verify` returns a report
//! and the CLI turns "any problem" into exit code 1.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::artifact::{RUN_SUMMARY_FILE, sha256_hex};
use crate::clock::{Clock, rfc3339};
use crate::error::{Error, Result};
use crate::registry::{ArtifactRecord, LiveCheck, Registry, RunRow, Verification};
use crate::schema;

/// What kind of promise was broken. Serialized in snake_case for `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A registered file is not on disk.
    Missing,
    /// A registered path is a symlink, directory or other non-regular file.
    NotRegularFile,
    /// The file could not be read.
    Unreadable,
    /// The file's sha256 differs from the registry's.
    HashMismatch,
    /// The file no longer passes its schema (or is not JSON).
    SchemaInvalid,
    /// The `.meta.json` is missing, unreadable or not a meta record.
    MetaMissing,
    /// The `.meta.json` and the registry's meta record disagree.
    MetaMismatch,
    /// A parent was re-made after this artifact was made from it.
    StaleParent,
    /// A file in a run directory that the registry does not know.
    Unregistered,
    /// A registered path that would leave the artifacts directory (absolute,
    /// or with `..`): never opened.
    UnsafePath,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Missing => "missing",
            ProblemKind::NotRegularFile => "not a regular file",
            ProblemKind::Unreadable => "unreadable",
            ProblemKind::HashMismatch => "hash mismatch",
            ProblemKind::SchemaInvalid => "schema invalid",
            ProblemKind::MetaMissing => "meta missing",
            ProblemKind::MetaMismatch => "meta/registry mismatch",
            ProblemKind::StaleParent => "stale parent",
            ProblemKind::Unregistered => "unregistered file",
            ProblemKind::UnsafePath => "unsafe path",
        }
    }
}

/// One broken promise, naming the file, what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// Relative to the artifacts directory.
    pub path: String,
    pub project_id: String,
    pub run_id: String,
    pub artifact_type: Option<String>,
    pub expected: String,
    pub found: String,
}

/// Per-run tally for the summary table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunTally {
    pub project_id: String,
    pub run_id: String,
    pub artifacts: usize,
    pub artifacts_ok: usize,
    pub problems: usize,
}

/// A run a live `orchestrator run` held while verify looked at it: its
/// in-flight files would read as drift, so it is left out, not judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunInProgress {
    pub project_id: String,
    pub run_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub verified_at: String,
    pub runs_checked: usize,
    /// Runs being written while verify ran; not checked.
    pub runs_in_progress: Vec<RunInProgress>,
    pub artifacts_checked: usize,
    pub problems: Vec<Problem>,
    pub runs: Vec<RunTally>,
}

/// Verify every artifact of `runs`, record each artifact's result in the
/// registry (unless it was opened read-only), and return the report.
/// `progress(done, total)` is called after each artifact, in bytes of
/// registered artifact files. A run that `live` says a process holds,
/// before or after it is checked, is reported as in progress instead.
pub fn verify(
    registry: &mut Registry,
    artifacts_dir: &Path,
    runs: &[RunRow],
    live: LiveCheck<'_>,
    clock: &dyn Clock,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport> {
    let verified_at = rfc3339(clock.now());
    let mut work = Vec::with_capacity(runs.len());
    let mut in_progress = Vec::new();
    for run in runs {
        if live(&run.project_id, &run.run_id) {
            in_progress.push(RunInProgress {
                project_id: run.project_id.clone(),
                run_id: run.run_id.clone(),
            });
            continue;
        }
        work.push((
            run,
            registry.artifacts_of_run(&run.project_id, &run.run_id)?,
        ));
    }
    let total_artifacts: usize = work.iter().map(|(_, a)| a.len()).sum();
    let total_bytes: u64 = work.iter().flat_map(|(_, a)| a).map(|a| a.size_bytes).sum();

    let mut problems = Vec::new();
    let mut tallies = Vec::new();
    let mut verifications = Vec::with_capacity(total_artifacts);
    let mut done = 0;
    for (run, artifacts) in &work {
        let mut run_problems = Vec::new();
        let mut ok = 0;
        // A run directory that is a symlink (or outside the artifacts
        // directory) is reported once and nothing inside it is read.
        let dir_problem = check_run_dir_itself(artifacts_dir, run);
        for artifact in artifacts {
            let found = match &dir_problem {
                Some(_) => Vec::new(),
                None => check_artifact(artifacts_dir, artifact),
            };
            let artifact_ok = dir_problem.is_none() && found.is_empty();
            if artifact_ok {
                ok += 1;
            }
            verifications.push(Verification {
                artifact_id: artifact.artifact_id,
                verified_at: verified_at.clone(),
                ok: artifact_ok,
                problems: serde_json::to_string(&found).unwrap_or_else(|_| "[]".to_string()),
            });
            run_problems.extend(found);
            done += artifact.size_bytes;
            progress(done, total_bytes);
        }
        run_problems.extend(check_edges(registry, run)?);
        match dir_problem {
            Some(p) => run_problems.push(p),
            None => run_problems.extend(check_run_dir(registry, artifacts_dir, run, artifacts)?),
        }
        // A run that started while it was being checked may have been seen
        // half-written: its findings mean nothing, and none are recorded.
        if live(&run.project_id, &run.run_id) {
            let ids: Vec<i64> = artifacts.iter().map(|a| a.artifact_id).collect();
            verifications.retain(|v| !ids.contains(&v.artifact_id));
            in_progress.push(RunInProgress {
                project_id: run.project_id.clone(),
                run_id: run.run_id.clone(),
            });
            continue;
        }
        tallies.push(RunTally {
            project_id: run.project_id.clone(),
            run_id: run.run_id.clone(),
            artifacts: artifacts.len(),
            artifacts_ok: ok,
            problems: run_problems.len(),
        });
        problems.extend(run_problems);
    }
    // A read-only registry still gets a full report; only the record of it
    // is skipped (the CLI says so).
    if !registry.is_read_only() {
        registry.record_verifications(&verifications)?;
    }

    Ok(VerifyReport {
        ok: problems.is_empty(),
        verified_at,
        runs_checked: tallies.len(),
        runs_in_progress: in_progress,
        artifacts_checked: tallies.iter().map(|t| t.artifacts).sum(),
        problems,
        runs: tallies,
    })
}

fn problem(
    kind: ProblemKind,
    path: &str,
    a: &ArtifactRecord,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> Problem {
    Problem {
        kind,
        path: path.to_string(),
        project_id: a.project_id.clone(),
        run_id: a.run_id.clone(),
        artifact_type: Some(a.artifact_type.clone()),
        expected: expected.into(),
        found: found.into(),
    }
}

/// What a non-regular file is, for the "found" half of a problem.
fn describe_non_regular(path: &Path, meta: &std::fs::Metadata) -> String {
    let ft = meta.file_type();
    if ft.is_symlink() {
        match std::fs::read_link(path) {
            Ok(target) => format!("a symlink to `{}` (not followed)", target.display()),
            Err(_) => "a symlink (not followed)".to_string(),
        }
    } else if ft.is_dir() {
        "a directory".to_string()
    } else {
        special_file_kind(&ft).to_string()
    }
}

/// Which special file it is; it is never opened (opening a FIFO for
/// reading would block until a writer appears).
#[cfg(unix)]
fn special_file_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO (named pipe), not opened"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device file, not opened"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_file_kind(_ft: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// Read a regular file without following a symlink; `Err` is the problem.
fn read_regular(path: &Path) -> std::result::Result<Vec<u8>, (ProblemKind, String)> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err((ProblemKind::Missing, "no file".to_string()))
        }
        Err(e) => Err((ProblemKind::Unreadable, e.to_string())),
        Ok(m) if !m.file_type().is_file() => {
            Err((ProblemKind::NotRegularFile, describe_non_regular(path, &m)))
        }
        Ok(_) => std::fs::read(path).map_err(|e| (ProblemKind::Unreadable, e.to_string())),
    }
}

/// Whether a registry path stays inside the directory it is joined to:
/// relative, and made only of plain names (no `..`, no root). `Path::join`
/// with an absolute path would silently replace the base.
fn contained(rel: &str) -> bool {
    !rel.is_empty()
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// The project and run directories must be real directories inside the
/// artifacts directory; a symlink is reported, never followed.
fn check_run_dir_itself(artifacts_dir: &Path, run: &RunRow) -> Option<Problem> {
    let problem = |path: String, found: String| Problem {
        kind: ProblemKind::NotRegularFile,
        path,
        project_id: run.project_id.clone(),
        run_id: run.run_id.clone(),
        artifact_type: None,
        expected: "a directory".to_string(),
        found,
    };
    if !contained(&run.run_dir) {
        return Some(Problem {
            kind: ProblemKind::UnsafePath,
            expected: "a run directory inside the artifacts directory".to_string(),
            found: format!("`{}`", run.run_dir),
            ..problem(run.run_dir.clone(), String::new())
        });
    }
    let mut rel = PathBuf::new();
    for part in Path::new(&run.run_dir).components() {
        rel.push(part);
        let full = artifacts_dir.join(&rel);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) => {
                return Some(problem(
                    rel.to_string_lossy().into_owned(),
                    describe_non_regular(&full, &m),
                ));
            }
            // Missing: every artifact in it is reported missing on its own.
            Err(_) => return None,
        }
    }
    None
}

fn check_artifact(artifacts_dir: &Path, a: &ArtifactRecord) -> Vec<Problem> {
    let mut out = Vec::new();
    if !contained(&a.path) {
        out.push(problem(
            ProblemKind::UnsafePath,
            &a.path,
            a,
            "a path inside the artifacts directory",
            format!("`{}`", a.path),
        ));
        return out;
    }
    let file = artifacts_dir.join(&a.path);
    match read_regular(&file) {
        Err((kind, found)) => out.push(problem(
            kind,
            &a.path,
            a,
            format!("a regular file with sha256 {}", a.sha256),
            found,
        )),
        Ok(bytes) => {
            let sha = sha256_hex(&bytes);
            if sha != a.sha256 {
                out.push(problem(
                    ProblemKind::HashMismatch,
                    &a.path,
                    a,
                    format!("sha256 {} ({} bytes)", a.sha256, a.size_bytes),
                    format!("sha256 {sha} ({} bytes)", bytes.len()),
                ));
            }
            match serde_json::from_slice::<Value>(&bytes) {
                Err(e) => out.push(problem(
                    ProblemKind::SchemaInvalid,
                    &a.path,
                    a,
                    format!("JSON valid against {}", a.schema_id),
                    format!("not JSON: {e}"),
                )),
                Ok(value) => match schema::validate(&a.artifact_type, &value) {
                    Ok(v) if v.is_empty() => {}
                    Ok(v) => out.push(problem(
                        ProblemKind::SchemaInvalid,
                        &a.path,
                        a,
                        format!("valid against {}", a.schema_id),
                        format!(
                            "at `{}`: {}{}",
                            v[0].pointer,
                            v[0].message,
                            if v.len() > 1 {
                                format!(" (and {} more)", v.len() - 1)
                            } else {
                                String::new()
                            }
                        ),
                    )),
                    Err(e) => out.push(problem(
                        ProblemKind::SchemaInvalid,
                        &a.path,
                        a,
                        format!("a known schema for {}", a.artifact_type),
                        e.to_string(),
                    )),
                },
            }
        }
    }
    out.extend(check_meta(artifacts_dir, a));
    out
}

/// The meta file must be a regular file whose record equals the registry's.
fn check_meta(artifacts_dir: &Path, a: &ArtifactRecord) -> Option<Problem> {
    let meta_rel = meta_path_of(&a.path);
    let bytes = match read_regular(&artifacts_dir.join(&meta_rel)) {
        Ok(b) => b,
        Err((ProblemKind::Missing, found)) => {
            return Some(problem(
                ProblemKind::MetaMissing,
                &meta_rel,
                a,
                "the meta record",
                found,
            ));
        }
        Err((kind, found)) => return Some(problem(kind, &meta_rel, a, "the meta record", found)),
    };
    let on_disk: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return Some(problem(
                ProblemKind::MetaMissing,
                &meta_rel,
                a,
                "a JSON meta record",
                format!("not JSON: {e}"),
            ));
        }
    };
    let registered: Value = serde_json::from_str(&a.meta_json).unwrap_or(Value::Null);
    if on_disk == registered {
        return None;
    }
    // Name the fields that differ, the sha256 first since it matters most.
    let mut fields: Vec<String> = Vec::new();
    if let (Some(d), Some(r)) = (on_disk.as_object(), registered.as_object()) {
        let keys: BTreeSet<&String> = d.keys().chain(r.keys()).collect();
        for k in keys {
            if d.get(k) != r.get(k) {
                fields.push(k.clone());
            }
        }
    }
    fields.sort_by_key(|f| f != "sha256");
    let disk_sha = on_disk
        .get("sha256")
        .and_then(Value::as_str)
        .unwrap_or("none");
    Some(problem(
        ProblemKind::MetaMismatch,
        &meta_rel,
        a,
        format!("the registry's meta record (sha256 {})", a.sha256),
        format!(
            "a record differing in {} (sha256 {disk_sha})",
            if fields.is_empty() {
                "shape".to_string()
            } else {
                fields.join(", ")
            }
        ),
    ))
}

/// `lighthouse/r1/ShotList.json` → `lighthouse/r1/ShotList.meta.json`.
fn meta_path_of(path: &str) -> String {
    match path.strip_suffix(".json") {
        Some(stem) => format!("{stem}.meta.json"),
        None => format!("{path}.meta.json"),
    }
}

/// Edges whose parent changed after the child was made from it.
fn check_edges(registry: &Registry, run: &RunRow) -> Result<Vec<Problem>> {
    Ok(registry
        .stale_edges(&run.project_id, &run.run_id)?
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
        .collect())
}

/// The run summary is present and as registered; nothing unregistered.
fn check_run_dir(
    registry: &Registry,
    artifacts_dir: &Path,
    run: &RunRow,
    artifacts: &[ArtifactRecord],
) -> Result<Vec<Problem>> {
    let mut out = Vec::new();
    let run_problem = |kind, path: String, expected: String, found: String| Problem {
        kind,
        path,
        project_id: run.project_id.clone(),
        run_id: run.run_id.clone(),
        artifact_type: None,
        expected,
        found,
    };

    let mut known: BTreeSet<String> = BTreeSet::new();
    for a in artifacts {
        known.insert(a.path.clone());
        known.insert(meta_path_of(&a.path));
    }
    if let Some((path, sha)) = registry.run_summary_of(&run.project_id, &run.run_id)? {
        known.insert(path.clone());
        let read = if contained(&path) {
            read_regular(&artifacts_dir.join(&path))
        } else {
            Err((ProblemKind::UnsafePath, format!("`{path}`")))
        };
        match read {
            Err((kind, found)) => out.push(run_problem(
                kind,
                path,
                format!("the run summary with sha256 {sha}"),
                found,
            )),
            Ok(bytes) => {
                let found = sha256_hex(&bytes);
                if found != sha {
                    out.push(run_problem(
                        ProblemKind::HashMismatch,
                        path,
                        format!("sha256 {sha}"),
                        format!("sha256 {found}"),
                    ));
                }
            }
        }
    } else {
        known.insert(format!("{}/{RUN_SUMMARY_FILE}", run.run_dir));
    }

    let dir: PathBuf = artifacts_dir.join(&run.run_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        // Missing files were reported one by one above.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("listing the run directory", dir, e)),
    };
    let mut extra: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing the run directory", &dir, e))?;
        let rel = format!("{}/{}", run.run_dir, entry.file_name().to_string_lossy());
        if !known.contains(&rel) {
            extra.push((rel, entry.path()));
        }
    }
    extra.sort();
    for (rel, full) in extra {
        let found = match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_file() => format!("a file of {} bytes", m.len()),
            Ok(m) => describe_non_regular(&full, &m),
            Err(e) => e.to_string(),
        };
        out.push(run_problem(
            ProblemKind::Unregistered,
            rel,
            "only registered artifacts, their meta files and run_summary.json".to_string(),
            found,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_path_sits_beside_the_artifact() {
        assert_eq!(meta_path_of("p/r/ShotList.json"), "p/r/ShotList.meta.json");
        assert_eq!(meta_path_of("odd"), "odd.meta.json");
    }
}
