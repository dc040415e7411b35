//! Comparing two recorded runs: per stage, whether the outputs are the same
//! bytes; for those that are not, what changed inside the artifact JSON; and
//! what differs between the two runs' configs.
//!
//! Invariants:
//! - Output hashes come from the registry. An artifact is read from disk only
//!   when its contents are needed (the two runs' hashes differ), and then its
//!   bytes must hash to what the registry recorded: a file edited, replaced
//!   or removed since is an error naming it, never a silent diff.
//! - [`json_changes`] returns changes in an order that, applied one after
//!   another as RFC 6902 operations, turns the old value into the new one
//!   exactly. Arrays are compared element by element at the same index (no
//!   move detection): common indices recurse, extra new elements are added
//!   in ascending order, extra old ones removed from the end backwards.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::Serialize;
use serde_json::Value;

use serde_json::value::RawValue;

use crate::artifact::ArtifactType;
use crate::error::{Error, Result};
use crate::registry::{ArtifactRecord, Registry, RunRow};

/// What an RFC 6902 operation does at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Remove,
    Replace,
}

/// One difference at a JSON pointer: `old` is absent for an add, `new` for
/// a remove.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub op: Op,
    /// RFC 6901 JSON pointer (`/shots/3/duration_ms`); `""` is the root.
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

impl Change {
    /// This change as one RFC 6902 JSON Patch operation.
    pub fn to_patch_op(&self) -> Value {
        let mut op = serde_json::Map::new();
        op.insert(
            "op".into(),
            serde_json::to_value(self.op).unwrap_or_default(),
        );
        op.insert("path".into(), self.path.clone().into());
        if let Some(v) = &self.new {
            op.insert("value".into(), v.clone());
        }
        Value::Object(op)
    }
}

/// How many changes of each kind a list holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub changed: usize,
    pub added: usize,
    pub removed: usize,
}

impl Counts {
    pub fn of(changes: &[Change]) -> Counts {
        let mut c = Counts::default();
        for ch in changes {
            match ch.op {
                Op::Replace => c.changed += 1,
                Op::Add => c.added += 1,
                Op::Remove => c.removed += 1,
            }
        }
        c
    }

    pub fn total(&self) -> usize {
        self.changed + self.added + self.removed
    }
}

/// Escape one reference token for a JSON pointer (RFC 6901: `~` → `~0`,
/// then `/` → `~1`).
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Every difference between `old` and `new`, as changes that applied in
/// order turn `old` into `new` (see the module docs for arrays).
pub fn json_changes(old: &Value, new: &Value) -> Vec<Change> {
    json_changes_capped(old, new, None).0
}

/// [`json_changes`], keeping only the first `cap` changes (all of them
/// with `None`) but counting every one. Values of changes past the cap are
/// never copied, so comparing two large artifacts costs their parsed
/// forms and a page of changes, not a copy of everything that differs.
pub fn json_changes_capped(old: &Value, new: &Value, cap: Option<usize>) -> (Vec<Change>, Counts) {
    let mut out = Collector {
        cap,
        kept: Vec::new(),
        counts: Counts::default(),
    };
    walk(old, new, &mut String::new(), &mut out);
    (out.kept, out.counts)
}

/// Changes as the walk finds them: counted always, kept up to the cap.
struct Collector {
    cap: Option<usize>,
    kept: Vec<Change>,
    counts: Counts,
}

impl Collector {
    fn push(
        &mut self,
        op: Op,
        path: impl FnOnce() -> String,
        old: Option<&Value>,
        new: Option<&Value>,
    ) {
        match op {
            Op::Replace => self.counts.changed += 1,
            Op::Add => self.counts.added += 1,
            Op::Remove => self.counts.removed += 1,
        }
        if self.cap.is_none_or(|cap| self.kept.len() < cap) {
            self.kept.push(Change {
                op,
                path: path(),
                old: old.cloned(),
                new: new.cloned(),
            });
        }
    }
}

impl Collector {
    /// [`Collector::push`] with the values made only if the change is kept.
    fn push_with(
        &mut self,
        op: Op,
        path: impl FnOnce() -> String,
        values: impl FnOnce() -> (Option<Value>, Option<Value>),
    ) {
        match op {
            Op::Replace => self.counts.changed += 1,
            Op::Add => self.counts.added += 1,
            Op::Remove => self.counts.removed += 1,
        }
        if self.cap.is_none_or(|cap| self.kept.len() < cap) {
            let (old, new) = values();
            self.kept.push(Change {
                op,
                path: path(),
                old,
                new,
            });
        }
    }
}

/// [`json_changes_capped`] over two documents' text, parsing one level at
/// a time: a subtree is compared as text first (artifacts are canonical
/// JSON, so equal text is equal value and is skipped unparsed), and only
/// the parts that differ are looked into. Memory is the two texts plus one
/// level's index at each depth walked, not two parsed trees; the changes
/// are exactly those of the parsed comparison.
pub fn text_changes_capped(
    old: &str,
    new: &str,
    cap: Option<usize>,
) -> serde_json::Result<(Vec<Change>, Counts)> {
    let mut out = Collector {
        cap,
        kept: Vec::new(),
        counts: Counts::default(),
    };
    let old: &RawValue = serde_json::from_str(old)?;
    let new: &RawValue = serde_json::from_str(new)?;
    walk_raw(old, new, &mut String::new(), &mut out)?;
    Ok((out.kept, out.counts))
}

/// An object's members or an array's elements, unparsed below this level.
enum Level<'a> {
    Object(BTreeMap<String, &'a RawValue>),
    Array(Vec<&'a RawValue>),
    Scalar,
}

fn level(raw: &RawValue) -> serde_json::Result<Level<'_>> {
    Ok(match raw.get().trim_start().as_bytes().first() {
        Some(b'{') => Level::Object(serde_json::from_str(raw.get())?),
        Some(b'[') => Level::Array(serde_json::from_str(raw.get())?),
        _ => Level::Scalar,
    })
}

fn parse(raw: &RawValue) -> Option<Value> {
    serde_json::from_str(raw.get()).ok()
}

fn walk_raw(
    old: &RawValue,
    new: &RawValue,
    path: &mut String,
    out: &mut Collector,
) -> serde_json::Result<()> {
    if old.get() == new.get() {
        return Ok(());
    }
    match (level(old)?, level(new)?) {
        (Level::Object(a), Level::Object(b)) => {
            for (key, va) in &a {
                let len = path.len();
                path.push('/');
                path.push_str(&escape_token(key));
                match b.get(key) {
                    Some(vb) => walk_raw(va, vb, path, out)?,
                    None => out.push_with(Op::Remove, || path.clone(), || (parse(va), None)),
                }
                path.truncate(len);
            }
            for (key, vb) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                out.push_with(
                    Op::Add,
                    || format!("{path}/{}", escape_token(key)),
                    || (None, parse(vb)),
                );
            }
        }
        (Level::Array(a), Level::Array(b)) => {
            for (i, (va, vb)) in a.iter().zip(&b).enumerate() {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                walk_raw(va, vb, path, out)?;
                path.truncate(len);
            }
            for (i, vb) in b.iter().enumerate().skip(a.len()) {
                out.push_with(Op::Add, || format!("{path}/{i}"), || (None, parse(vb)));
            }
            for (i, va) in a.iter().enumerate().skip(b.len()).rev() {
                out.push_with(Op::Remove, || format!("{path}/{i}"), || (parse(va), None));
            }
        }
        _ => {
            // Different text can still be one value (spacing, or escapes
            // in a file written by hand): compare them parsed.
            let (va, vb) = (parse(old), parse(new));
            if va != vb {
                out.push_with(Op::Replace, || path.clone(), || (va, vb));
            }
        }
    }
    Ok(())
}

fn walk(old: &Value, new: &Value, path: &mut String, out: &mut Collector) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, va) in a {
                let len = path.len();
                path.push('/');
                path.push_str(&escape_token(key));
                match b.get(key) {
                    Some(vb) => walk(va, vb, path, out),
                    None => out.push(Op::Remove, || path.clone(), Some(va), None),
                }
                path.truncate(len);
            }
            for (key, vb) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                out.push(
                    Op::Add,
                    || format!("{path}/{}", escape_token(key)),
                    None,
                    Some(vb),
                );
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                walk(va, vb, path, out);
                path.truncate(len);
            }
            for (i, vb) in b.iter().enumerate().skip(a.len()) {
                out.push(Op::Add, || format!("{path}/{i}"), None, Some(vb));
            }
            // From the end, so each index is still valid when it is removed.
            for (i, va) in a.iter().enumerate().skip(b.len()).rev() {
                out.push(Op::Remove, || format!("{path}/{i}"), Some(va), None);
            }
        }
        _ if old == new => {}
        _ => out.push(Op::Replace, || path.clone(), Some(old), Some(new)),
    }
}

/// How one stage's outputs compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Both runs registered the same bytes.
    Same,
    /// Both runs registered an artifact, with different bytes.
    Different,
    /// Only run A has an artifact for this stage.
    OnlyInA,
    /// Only run B has an artifact for this stage.
    OnlyInB,
    /// Neither run has one (both stopped before this stage).
    Neither,
}

/// One stage of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageDiff {
    pub stage: u8,
    pub artifact_type: String,
    pub status: StageStatus,
    pub sha256_a: Option<String>,
    pub sha256_b: Option<String>,
    /// For `Different`: the changes that turn A's artifact into B's, the
    /// first `cap` of them when the comparison was capped.
    pub changes: Vec<Change>,
    /// How many changes there are in all (`changes` may hold fewer).
    pub counts: Counts,
}

impl StageDiff {
    /// Whether `changes` leaves some out.
    pub fn truncated(&self) -> bool {
        self.changes.len() < self.counts.total()
    }
}

/// The whole comparison of run A with run B.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDiff {
    pub run_a: RunRow,
    pub run_b: RunRow,
    /// Changes that turn A's canonical config into B's (configs are small:
    /// never capped).
    pub config: Vec<Change>,
    /// One entry per pipeline stage, in order.
    pub stages: Vec<StageDiff>,
}

impl RunDiff {
    /// Whether every stage produced the same bytes in both runs (the
    /// configs may still differ in ways no output depends on).
    pub fn identical(&self) -> bool {
        self.stages
            .iter()
            .all(|s| matches!(s.status, StageStatus::Same | StageStatus::Neither))
    }

    /// The first stage, in pipeline order, whose outputs differ.
    pub fn first_divergence(&self) -> Option<&StageDiff> {
        self.stages
            .iter()
            .find(|s| !matches!(s.status, StageStatus::Same | StageStatus::Neither))
    }
}

/// Compare two runs: their configs (from the registry) and, stage by stage,
/// their registered outputs, reading from `artifacts_dir` the artifacts
/// whose hashes differ. Each stage keeps at most `cap` changes (`None`:
/// all) and counts all; one stage's artifacts are parsed at a time.
pub fn diff_runs(
    registry: &Registry,
    artifacts_dir: &Path,
    run_a: RunRow,
    run_b: RunRow,
    cap: Option<usize>,
) -> Result<RunDiff> {
    let config_a = config_of(registry, &run_a)?;
    let config_b = config_of(registry, &run_b)?;
    let by_type = |run: &RunRow| -> Result<BTreeMap<String, ArtifactRecord>> {
        Ok(registry
            .artifacts_of_run(&run.project_id, &run.run_id)?
            .into_iter()
            .map(|a| (a.artifact_type.clone(), a))
            .collect())
    };
    let artifacts_a = by_type(&run_a)?;
    let artifacts_b = by_type(&run_b)?;
    let mut stages = Vec::new();
    for (i, t) in ArtifactType::ALL.iter().enumerate() {
        let a = artifacts_a.get(t.name());
        let b = artifacts_b.get(t.name());
        let status = match (a, b) {
            (Some(a), Some(b)) if a.sha256 == b.sha256 => StageStatus::Same,
            (Some(_), Some(_)) => StageStatus::Different,
            (Some(_), None) => StageStatus::OnlyInA,
            (None, Some(_)) => StageStatus::OnlyInB,
            (None, None) => StageStatus::Neither,
        };
        let (changes, counts) = match (status, a, b) {
            (StageStatus::Different, Some(a), Some(b)) => {
                let ta = read_checked(artifacts_dir, &run_a, a)?;
                let tb = read_checked(artifacts_dir, &run_b, b)?;
                text_changes_capped(&ta, &tb, cap).map_err(|e| {
                    Error::usage_with_hint(
                        format!("{} of run {} or {} is not JSON: {e}", t.name(), run_a.run_id, run_b.run_id),
                        "the registry recorded these files as they are; `orchestrator verify` reports them",
                    )
                })?
            }
            _ => (Vec::new(), Counts::default()),
        };
        stages.push(StageDiff {
            stage: a.or(b).map_or(i as u8 + 1, |r| r.stage),
            artifact_type: t.name().to_string(),
            status,
            sha256_a: a.map(|r| r.sha256.clone()),
            sha256_b: b.map(|r| r.sha256.clone()),
            changes,
            counts,
        });
    }
    Ok(RunDiff {
        config: json_changes(&config_a, &config_b),
        run_a,
        run_b,
        stages,
    })
}

/// The run's canonical config, as recorded.
fn config_of(registry: &Registry, run: &RunRow) -> Result<Value> {
    let (_, text) = registry.run_record(&run.project_id, &run.run_id)?;
    serde_json::from_str(&text).map_err(|e| Error::RegistryUnusable {
        path: registry.path().to_path_buf(),
        message: format!(
            "the config recorded for run {} is not JSON: {e}",
            run.run_id
        ),
        source: None,
    })
}

/// Read a registered artifact's text and prove it is the file the registry
/// recorded before trusting its contents.
fn read_checked(artifacts_dir: &Path, run: &RunRow, a: &ArtifactRecord) -> Result<String> {
    let hint = || {
        format!(
            "`orchestrator verify --run {}` shows what changed; running the run's config again (`orchestrator run --project <config>`) rewrites the file",
            run.run_id
        )
    };
    let contained = !a.path.is_empty()
        && Path::new(&a.path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !contained {
        return Err(Error::usage_with_hint(
            format!(
                "the registry records {} of run {} at `{}`, outside the artifacts directory; it was not read",
                a.artifact_type, run.run_id, a.path
            ),
            hint(),
        ));
    }
    let full = artifacts_dir.join(&a.path);
    let shown = full.display();
    match std::fs::symlink_metadata(&full) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::usage_with_hint(
                format!(
                    "`{shown}` ({} of run {}) is missing",
                    a.artifact_type, run.run_id
                ),
                hint(),
            ));
        }
        Err(e) => return Err(Error::io("reading", &full, e)),
        Ok(m) if !m.file_type().is_file() => {
            return Err(Error::usage_with_hint(
                format!(
                    "`{shown}` ({} of run {}) is not a regular file; it was not followed",
                    a.artifact_type, run.run_id
                ),
                hint(),
            ));
        }
        Ok(_) => {}
    }
    let mut bytes = Vec::new();
    crate::regular_file::open_nofollow(&full)
        .and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut bytes))
        .map_err(|e| Error::io("reading", &full, e))?;
    let found = crate::artifact::sha256_hex(&bytes);
    if found != a.sha256 {
        return Err(Error::usage_with_hint(
            format!(
                "`{shown}` ({} of run {}) does not match the registry: it recorded sha256 {}, the file has {found}",
                a.artifact_type, run.run_id, a.sha256
            ),
            hint(),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::usage_with_hint(
            format!(
                "`{shown}` is not JSON: not UTF-8 at byte {}",
                e.utf8_error().valid_up_to()
            ),
            "the registry recorded this file as it is; `orchestrator verify` reports it",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal RFC 6902 applier for add/remove/replace, to prove the
    /// changes reproduce the target.
    fn apply(doc: &mut Value, changes: &[Change]) {
        for c in changes {
            let patch = c.to_patch_op();
            let path = patch["path"].as_str().unwrap();
            if path.is_empty() {
                *doc = patch["value"].clone();
                continue;
            }
            let (parent, last) = path.rsplit_once('/').unwrap();
            let last = last.replace("~1", "/").replace("~0", "~");
            let target = doc.pointer_mut(parent).unwrap();
            match (c.op, target) {
                (Op::Remove, Value::Object(m)) => {
                    m.remove(&last).unwrap();
                }
                (Op::Remove, Value::Array(v)) => {
                    v.remove(last.parse().unwrap());
                }
                (_, Value::Object(m)) => {
                    m.insert(last, patch["value"].clone());
                }
                (Op::Add, Value::Array(v)) => {
                    v.insert(last.parse().unwrap(), patch["value"].clone())
                }
                (_, Value::Array(v)) => v[last.parse::<usize>().unwrap()] = patch["value"].clone(),
                _ => panic!("bad target for {patch}"),
            }
        }
    }

    #[test]
    fn changes_turn_old_into_new() {
        let cases = [
            (json!({"a": 1, "b": [1, 2, 3]}), json!({"a": 2, "b": [1]})),
            (json!({"a": [1]}), json!({"a": [1, {"x": 2}, 3]})),
            (json!({"a/b": 1, "m~n": 2}), json!({"a/b": 3, "c": 4})),
            (json!([1, 2]), json!({"k": null})),
            (
                json!({"x": {"y": [{"z": 1}]}}),
                json!({"x": {"y": [{"z": 2, "w": 1}]}}),
            ),
            (json!(1), json!(1)),
        ];
        for (old, new) in cases {
            let changes = json_changes(&old, &new);
            let mut doc = old.clone();
            apply(&mut doc, &changes);
            assert_eq!(doc, new, "{changes:?}");
        }
    }

    #[test]
    fn the_text_walk_finds_exactly_the_parsed_walks_changes() {
        let cases = [
            (json!({"a": 1, "b": [1, 2, 3]}), json!({"a": 2, "b": [1]})),
            (json!({"a": [1]}), json!({"a": [1, {"x": 2}, 3]})),
            (json!({"a/b": 1, "m~n": 2}), json!({"a/b": 3, "c": 4})),
            (json!([1, 2]), json!({"k": null})),
            (
                json!({"x": {"y": [{"z": 1}]}, "s": "é\n"}),
                json!({"x": {"y": [{"z": 2, "w": 1}]}, "s": "é"}),
            ),
            (json!(1), json!(1)),
        ];
        for (old, new) in cases {
            for cap in [None, Some(1)] {
                let parsed = json_changes_capped(&old, &new, cap);
                let text = text_changes_capped(&old.to_string(), &new.to_string(), cap).unwrap();
                assert_eq!(text, parsed, "{old} -> {new}");
                let pretty = text_changes_capped(
                    &serde_json::to_string_pretty(&old).unwrap(),
                    &new.to_string(),
                    cap,
                )
                .unwrap();
                assert_eq!(pretty, parsed, "pretty {old} -> {new}");
            }
        }
        // Text that differs only in spacing is no change.
        assert_eq!(
            text_changes_capped("{\"a\": [1, 2]}", "{\"a\":[1,2]}", None)
                .unwrap()
                .0,
            []
        );
    }

    #[test]
    fn pointers_escape_tilde_before_slash() {
        let changes = json_changes(&json!({"a/~b": 1}), &json!({"a/~b": 2}));
        assert_eq!(changes[0].path, "/a~1~0b");
        assert_eq!(escape_token("~1"), "~01");
    }

    #[test]
    fn counts_follow_the_operations() {
        let changes = json_changes(
            &json!({"a": 1, "b": 2, "l": [1, 2]}),
            &json!({"a": 3, "c": 4, "l": [1]}),
        );
        assert_eq!(
            Counts::of(&changes),
            Counts {
                changed: 1,
                added: 1,
                removed: 2
            }
        );
    }
}
