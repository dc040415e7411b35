//! One artifact's checks: its file, its schema and its meta file.
//!
//! The schema rule: an artifact is parsed and validated only when its
//! bytes are not known to be valid. Every writer of the registry (`run`,
//! `reindex`) validates an artifact against its schema before recording its
//! sha256, so a file whose sha256 matches the registry *and* whose recorded
//! `schema_id`/`schema_version` are this build's is exactly the bytes that
//! passed this schema; validating them again would only repeat that.
//! A file whose hash mismatches, or that was validated under another
//! schema, is parsed and validated against the current one, if it is at
//! most [`MAX_PARSED_BYTES`]: a larger file is never parsed into memory.

use std::path::Path;

use serde_json::Value;

use super::file::{Scratch, contained, hash_file, lstat_regular, read_small};
use super::{Problem, ProblemKind};
use crate::artifact::SCHEMA_VERSION;
use crate::registry::ArtifactRecord;
use crate::schema;

/// The largest artifact parsed for a schema check. The stub stages' largest
/// artifact at the maximum 10,000 scenes is about 26 MB; parsing costs
/// several times the file's size in memory.
pub(crate) const MAX_PARSED_BYTES: u64 = 64 << 20;

/// A meta record is about 1 KB; a bigger file in its place is not read.
const MAX_META_BYTES: u64 = 1 << 20;

pub(super) fn problem(
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

/// Every problem with artifact `a` and its meta file. `on_read(n)` is
/// called as the artifact's bytes are read.
pub(super) fn check_artifact(
    artifacts_dir: &Path,
    a: &ArtifactRecord,
    scratch: &mut Scratch,
    on_read: &mut dyn FnMut(u64),
) -> Vec<Problem> {
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
    let hashed = lstat_regular(&file).and_then(|m| {
        hash_file(&file, m.len(), &mut scratch.buf, on_read)
            .map_err(|e| (ProblemKind::Unreadable, e.to_string()))
    });
    match hashed {
        Err((kind, found)) => out.push(problem(
            kind,
            &a.path,
            a,
            format!("a regular file with sha256 {}", a.sha256),
            found,
        )),
        Ok(h) => {
            let hash_ok = h.sha256 == a.sha256;
            if !hash_ok {
                let unparsed = if h.len > MAX_PARSED_BYTES {
                    "; too large to check against its schema"
                } else {
                    ""
                };
                out.push(problem(
                    ProblemKind::HashMismatch,
                    &a.path,
                    a,
                    format!("sha256 {} ({} bytes)", a.sha256, a.size_bytes),
                    format!("sha256 {} ({} bytes{unparsed})", h.sha256, h.len),
                ));
            }
            if !hash_ok || !schema_is_current(a) {
                let bytes = if h.in_buf {
                    Some(Ok(&scratch.buf[..h.len as usize]))
                } else if h.len <= MAX_PARSED_BYTES {
                    Some(
                        read_small(&file, h.len, MAX_PARSED_BYTES, &mut scratch.small)
                            .map(|()| &scratch.small[..])
                            .map_err(|e| e.to_string()),
                    )
                } else if hash_ok {
                    Some(Err(format!(
                        "not parsed: {} bytes is over the {} MiB limit",
                        h.len,
                        MAX_PARSED_BYTES >> 20
                    )))
                } else {
                    // The hash mismatch says it is too large to check.
                    None
                };
                out.extend(bytes.and_then(|b| check_schema(a, b)));
            }
        }
    }
    out.extend(check_meta(artifacts_dir, a, &mut scratch.small));
    out
}

/// Whether the artifact was validated under the schema this build has.
fn schema_is_current(a: &ArtifactRecord) -> bool {
    a.schema_version == SCHEMA_VERSION
        && schema::schema_id(&a.artifact_type).is_ok_and(|id| id == a.schema_id)
}

/// The artifact's bytes against its type's current schema; `Err` says why
/// they could not be had.
fn check_schema(a: &ArtifactRecord, bytes: Result<&[u8], String>) -> Option<Problem> {
    let invalid = |expected: String, found: String| {
        Some(problem(
            ProblemKind::SchemaInvalid,
            &a.path,
            a,
            expected,
            found,
        ))
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(why) => return invalid(format!("valid against {}", a.schema_id), why),
    };
    let value = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => v,
        Err(e) => {
            return invalid(
                format!("JSON valid against {}", a.schema_id),
                format!("not JSON: {e}"),
            );
        }
    };
    match schema::validate(&a.artifact_type, &value) {
        Ok(v) if v.is_empty() => None,
        Ok(v) => invalid(
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
        ),
        Err(e) => invalid(
            format!("a known schema for {}", a.artifact_type),
            e.to_string(),
        ),
    }
}

/// The meta file must be a regular file whose record equals the
/// registry's. `run` and `reindex` store the meta file's text verbatim, so
/// equal bytes settle it without parsing; only differing bytes are parsed,
/// to tell a reformatted record from a different one.
fn check_meta(artifacts_dir: &Path, a: &ArtifactRecord, buf: &mut Vec<u8>) -> Option<Problem> {
    let meta_rel = meta_path_of(&a.path);
    let path = artifacts_dir.join(&meta_rel);
    let read = lstat_regular(&path).and_then(|m| {
        if m.len() > MAX_META_BYTES {
            return Err((
                ProblemKind::MetaMismatch,
                format!("a file of {} bytes, too large to be a meta record", m.len()),
            ));
        }
        read_small(&path, m.len(), MAX_META_BYTES, buf)
            .map_err(|e| (ProblemKind::Unreadable, e.to_string()))
    });
    match read {
        Ok(()) => {}
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
    }
    if buf[..] == *a.meta_json.as_bytes() {
        return None;
    }
    meta_difference(&meta_rel, a, buf)
}

/// Compare a meta file whose bytes differ from the registry's copy by
/// value, naming the fields that differ.
fn meta_difference(meta_rel: &str, a: &ArtifactRecord, bytes: &[u8]) -> Option<Problem> {
    let on_disk: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return Some(problem(
                ProblemKind::MetaMissing,
                meta_rel,
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
        let keys: std::collections::BTreeSet<&String> = d.keys().chain(r.keys()).collect();
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
        meta_rel,
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
pub(super) fn meta_path_of(path: &str) -> String {
    match path.strip_suffix(".json") {
        Some(stem) => format!("{stem}.meta.json"),
        None => format!("{path}.meta.json"),
    }
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
