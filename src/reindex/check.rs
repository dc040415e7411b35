//! One run directory → the rows that rebuild it, or findings saying why
//! (part of) it cannot be indexed.
//!
//! The run summary is what attributes files to a run row; without a usable
//! one nothing in the directory is indexed. Each artifact is indexed only
//! when its meta record is readable and lies where it says it does, the
//! file hashes to the recorded sha256 and size, it passes its schema, and
//! every parent it names is an artifact of the same run indexed before it
//! (types are visited in pipeline order). A parent that changed since the
//! child was made still gets its edge, with the hash the child recorded —
//! exactly what `run` would have registered — and a note says so.

use std::collections::{BTreeMap, BTreeSet};

use super::read::{
    META_LIMIT, PARSE_LIMIT, ReadError, SUMMARY_LIMIT, Unparsed, bytes, hash_and_parse,
    read_limited,
};
use super::summary::{self, is_sha256};
use super::walk::{Entry, RunDir, run_files};
use super::{Finding, FindingKind};
use crate::artifact::{ArtifactType, MetaRecord, RUN_SUMMARY_FILE, sha256_hex, short_sha};
use crate::error::Result;
use crate::registry::{RebuiltArtifact, RebuiltRun, RebuiltSummary};
use crate::schema;

/// What one run directory gave: its rows (when its summary was usable),
/// problems (something not indexed) and notes (indexed, but worth saying).
#[derive(Debug, Default)]
pub struct RunResult {
    pub rebuilt: Option<RebuiltRun>,
    pub problems: Vec<Finding>,
    pub notes: Vec<Finding>,
}

/// Check and collect one run directory. `Err` only for a defect of this
/// build (a schema that does not compile); the tree's faults are findings.
pub fn index_run(run: &RunDir) -> Result<RunResult> {
    let mut out = RunResult::default();
    let files = match run_files(run, &mut out.problems) {
        Ok(files) => files,
        Err(e) => {
            out.problems.push(Finding::new(
                FindingKind::Unreadable,
                &run.rel,
                format!("cannot list it: {e}; the run was not indexed"),
            ));
            return Ok(out);
        }
    };
    let present = ArtifactType::EVERY
        .iter()
        .filter(|t| files.contains_key(&t.file_name()) || files.contains_key(&t.meta_file_name()))
        .count();
    let Some((checked, bytes)) = read_summary(run, &files, present, &mut out) else {
        return Ok(out);
    };

    let mut accepted: BTreeMap<ArtifactType, String> = BTreeMap::new();
    let mut artifacts = Vec::new();
    for ty in ArtifactType::EVERY {
        if let Some(a) = check_artifact(run, &files, ty, &accepted, &mut out)? {
            accepted.insert(ty, a.meta.sha256.clone());
            artifacts.push(a);
        }
    }
    let mut run_row = checked.run_row();
    // A summary written before runs recorded `created_at` has only its
    // latest attempt's start, which a no-op re-run moved to the top of
    // history. The run's artifacts were made from its first attempt on, so
    // the earliest of them is nearer when the run was created. (Both are
    // normalised by `utc_time`, so they compare as text.)
    if checked.summary.created_at.is_none()
        && let Some(first) = artifacts.iter().map(|a| &a.meta.created_at).min()
        && *first < run_row.created_at
    {
        run_row.created_at = first.clone();
    }
    out.rebuilt = Some(RebuiltRun {
        run: run_row,
        config_json: checked.config_json.clone(),
        summary: RebuiltSummary {
            path: format!("{}/{RUN_SUMMARY_FILE}", run.rel),
            sha256: sha256_hex(&bytes),
            // `summary::parse` accepted the bytes, so they are UTF-8 JSON.
            json: String::from_utf8_lossy(&bytes).into_owned(),
            written_at: checked.written_at(),
        },
        artifacts,
        executions: checked.executions(),
    });
    Ok(out)
}

/// The run's checked summary and its bytes, or the finding that says why
/// the run (and the `present` artifacts in it) cannot be indexed.
fn read_summary(
    run: &RunDir,
    files: &BTreeMap<String, Entry>,
    present: usize,
    out: &mut RunResult,
) -> Option<(summary::CheckedSummary, Vec<u8>)> {
    let rel = format!("{}/{RUN_SUMMARY_FILE}", run.rel);
    let lost = match present {
        0 => "the run was not indexed".to_string(),
        1 => "the run and the 1 artifact in it were not indexed".to_string(),
        n => format!("the run and the {n} artifacts in it were not indexed"),
    };
    let (kind, message) = match files.get(RUN_SUMMARY_FILE) {
        // A run killed before it wrote anything leaves an empty directory:
        // nothing is lost by not indexing it.
        None if present == 0 => {
            out.notes.push(Finding::new(
                FindingKind::EmptyRun,
                &run.rel,
                "no run summary and no artifacts: nothing to index".to_string(),
            ));
            return None;
        }
        None => (
            FindingKind::SummaryMissing,
            format!("no {RUN_SUMMARY_FILE}, so its files cannot be attributed to a run; {lost}"),
        ),
        Some(Entry::NotRegular { symlink, what }) => {
            (not_regular_kind(*symlink), format!("{what}; {lost}"))
        }
        Some(Entry::Regular) => match read_limited(&run.path.join(RUN_SUMMARY_FILE), SUMMARY_LIMIT)
        {
            Err(e) => (read_error_kind(&e), format!("{}; {lost}", e.describe())),
            Ok(bytes) => match summary::parse(&bytes, &run.project_id, &run.run_id) {
                Ok(checked) => return Some((checked, bytes)),
                Err(why) => (FindingKind::SummaryInvalid, format!("{why}; {lost}")),
            },
        },
    };
    out.problems.push(Finding::new(kind, &rel, message));
    None
}

/// One artifact of the run, if it can be indexed; otherwise one finding.
fn check_artifact(
    run: &RunDir,
    files: &BTreeMap<String, Entry>,
    ty: ArtifactType,
    accepted: &BTreeMap<ArtifactType, String>,
    out: &mut RunResult,
) -> Result<Option<RebuiltArtifact>> {
    let file_rel = format!("{}/{}", run.rel, ty.file_name());
    let meta_rel = format!("{}/{}", run.rel, ty.meta_file_name());
    let mut problem = |kind, rel: &str, message: String| {
        out.problems.push(Finding::new(
            kind,
            rel,
            format!("{message}; {ty} not indexed"),
        ));
        Ok(None)
    };
    match (files.get(&ty.file_name()), files.get(&ty.meta_file_name())) {
        (None, None) => return Ok(None),
        (Some(Entry::NotRegular { symlink, what }), _) => {
            return problem(not_regular_kind(*symlink), &file_rel, what.clone());
        }
        (_, Some(Entry::NotRegular { symlink, what })) => {
            return problem(not_regular_kind(*symlink), &meta_rel, what.clone());
        }
        (Some(Entry::Regular), None) => {
            return problem(
                FindingKind::MetaMissing,
                &meta_rel,
                "no meta record beside the artifact".to_string(),
            );
        }
        (None, Some(Entry::Regular)) => {
            return problem(
                FindingKind::ArtifactMissing,
                &file_rel,
                "its meta record is there, the file is not".to_string(),
            );
        }
        (Some(Entry::Regular), Some(Entry::Regular)) => {}
    }

    let meta_bytes = match read_limited(&run.path.join(ty.meta_file_name()), META_LIMIT) {
        Ok(b) => b,
        Err(e) => return problem(read_error_kind(&e), &meta_rel, e.describe()),
    };
    let mut meta: MetaRecord = match serde_json::from_slice(&meta_bytes) {
        Ok(m) => m,
        Err(e) => {
            return problem(
                FindingKind::MetaInvalid,
                &meta_rel,
                format!("not a meta record: {e}"),
            );
        }
    };
    if let Err(why) = check_placement(&meta, run, ty) {
        return problem(FindingKind::MetaMisplaced, &meta_rel, why);
    }
    match summary::utc_time("created_at", &meta.created_at) {
        Ok(t) => meta.created_at = t,
        Err(why) => return problem(FindingKind::MetaInvalid, &meta_rel, why),
    }
    let mut stale = Vec::new();
    let mut seen = BTreeSet::new();
    for p in &meta.parents {
        let parent_ty = p.artifact_type.parse::<ArtifactType>().ok();
        let Some(parent_ty) = parent_ty.filter(|t| p.path == t.file_name()) else {
            return problem(
                FindingKind::MetaInvalid,
                &meta_rel,
                format!(
                    "parent `{}` at `{}` is not an artifact of this run",
                    p.artifact_type, p.path
                ),
            );
        };
        if !is_sha256(&p.sha256) || !seen.insert(parent_ty) {
            return problem(
                FindingKind::MetaInvalid,
                &meta_rel,
                format!("parent {parent_ty} is listed twice or its sha256 is malformed"),
            );
        }
        match accepted.get(&parent_ty) {
            None => {
                return problem(
                    FindingKind::ParentNotIndexed,
                    &meta_rel,
                    format!("its parent {parent_ty} is not indexed in this run"),
                );
            }
            Some(now) if *now != p.sha256 => stale.push(Finding::new(
                FindingKind::StaleParent,
                &file_rel,
                format!(
                    "made from {parent_ty} {}, which is now {}; the edge is indexed with the \
                     recorded hash, as `run` registered it (`verify` reports it as stale)",
                    short_sha(&p.sha256),
                    short_sha(now)
                ),
            )),
            Some(_) => {}
        }
    }
    // An input left out of `parents` would be an edge silently dropped, and
    // one the stage does not read an edge made up.
    if let Some(inputs) = declared_inputs(ty) {
        if let Some(missing) = inputs.iter().find(|t| !seen.contains(t)) {
            return problem(
                FindingKind::ParentMissing,
                &meta_rel,
                format!(
                    "its parents do not list {missing}, which stage {} reads",
                    ty.stage()
                ),
            );
        }
        if let Some(extra) = seen.iter().find(|t| !inputs.contains(t)) {
            return problem(
                FindingKind::MetaInvalid,
                &meta_rel,
                format!(
                    "its parents list {extra}, which stage {} does not read",
                    ty.stage()
                ),
            );
        }
    }

    let streamed = match hash_and_parse(&run.path.join(ty.file_name()), meta.size_bytes) {
        Ok(s) => s,
        Err(e) => return problem(read_error_kind(&e), &file_rel, e.describe()),
    };
    if streamed.sha256 != meta.sha256 || streamed.size != meta.size_bytes {
        return problem(
            FindingKind::HashMismatch,
            &file_rel,
            format!(
                "its meta record says sha256 {} ({} bytes), the file has sha256 {} ({} bytes)",
                meta.sha256, meta.size_bytes, streamed.sha256, streamed.size
            ),
        );
    }
    let value = match streamed.json {
        Ok(v) => v,
        Err(Unparsed::Invalid(e)) => {
            return problem(
                FindingKind::SchemaInvalid,
                &file_rel,
                format!("not JSON: {e}"),
            );
        }
        // Its hash and size match its record, so only the size kept it
        // from being parsed.
        Err(Unparsed::Skipped) => {
            return problem(
                FindingKind::TooLarge,
                &file_rel,
                format!(
                    "not checked against its schema: {} bytes is over the {} parse limit",
                    streamed.size,
                    bytes(PARSE_LIMIT)
                ),
            );
        }
    };
    let violations = schema::validate(ty.name(), &value)?;
    if let Some(first) = violations.first() {
        let more = match violations.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return problem(
            FindingKind::SchemaInvalid,
            &file_rel,
            format!(
                "fails its schema at `{}`: {}{more}",
                first.pointer, first.message
            ),
        );
    }
    let Ok(meta_json) = String::from_utf8(meta_bytes) else {
        return problem(FindingKind::MetaInvalid, &meta_rel, "not UTF-8".to_string());
    };
    out.notes.extend(stale);
    Ok(Some(RebuiltArtifact {
        meta,
        path: file_rel,
        meta_json,
    }))
}

/// The types the stage making `ty` reads, which its meta record must list as
/// parents; `None` for the package, which no stage makes.
fn declared_inputs(ty: ArtifactType) -> Option<&'static [ArtifactType]> {
    crate::pipeline::default_stages()
        .iter()
        .find(|s| s.output() == ty)
        .map(|s| s.inputs())
}

/// The meta record must describe the file beside it, in the run it lies in.
fn check_placement(meta: &MetaRecord, run: &RunDir, ty: ArtifactType) -> Result<(), String> {
    let stage = ty.stage();
    let checks = [
        (
            "artifact_type",
            meta.artifact_type.clone(),
            ty.name().to_string(),
        ),
        ("path", meta.path.clone(), ty.file_name()),
        (
            "project_id",
            meta.project_id.clone(),
            run.project_id.clone(),
        ),
        ("run_id", meta.run_id.clone(), run.run_id.clone()),
        (
            "creation_params.stage",
            meta.creation_params.stage.to_string(),
            stage.to_string(),
        ),
    ];
    for (field, says, expected) in checks {
        if says != expected {
            return Err(format!(
                "it says {field} `{says}`, but it lies where `{expected}` belongs"
            ));
        }
    }
    Ok(())
}

fn not_regular_kind(symlink: bool) -> FindingKind {
    if symlink {
        FindingKind::Symlink
    } else {
        FindingKind::NotRegularFile
    }
}

fn read_error_kind(e: &ReadError) -> FindingKind {
    match e {
        ReadError::Missing | ReadError::Io(_) => FindingKind::Unreadable,
        ReadError::NotRegular { symlink, .. } => not_regular_kind(*symlink),
        ReadError::TooLarge { .. } => FindingKind::TooLarge,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_dir_with_nothing_in_it_is_a_note_not_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir {
            project_id: "p".into(),
            run_id: "r".into(),
            rel: "p/r".into(),
            path: dir.path().to_path_buf(),
        };
        let r = index_run(&run).unwrap();
        assert!(r.rebuilt.is_none());
        assert!(r.problems.is_empty());
        assert_eq!(r.notes[0].kind, FindingKind::EmptyRun);

        std::fs::write(dir.path().join("Script.json"), b"{}").unwrap();
        let r = index_run(&run).unwrap();
        assert_eq!(r.problems[0].kind, FindingKind::SummaryMissing);
        assert!(
            r.problems[0].message.contains("the 1 artifact in it"),
            "{}",
            r.problems[0].message
        );
    }
}
