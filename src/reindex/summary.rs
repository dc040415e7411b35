//! `run_summary.json` as reindex reads it: the source of a run's row, its
//! project's title and its stage executions.
//!
//! The summary is written at run start (status `running`, no stages) and
//! rewritten at the end, so every column the registry keeps about a run is
//! in it. Unknown fields are ignored (forward compatibility); everything the
//! registry's constraints would refuse is refused here first, with a message
//! naming the field, so one bad summary costs one run, not the rebuild.

use crate::registry::{ExecutionStatus, RunStatus};
use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use crate::artifact::canonical::jcs;
use crate::artifact::sha256_hex;
use crate::registry::{ExecutionRecord, RunRow};

#[derive(Debug, Clone, Deserialize)]
pub struct RunSummary {
    pub project_id: String,
    pub run_id: String,
    pub title: String,
    /// The canonical config object; `runs.config_json` is its RFC 8785 form.
    pub config: Value,
    pub config_hash: String,
    /// `running`, `complete` or `failed`.
    pub status: String,
    pub attempt: u32,
    pub started_at: String,
    /// When the run's first attempt started; absent from summaries written
    /// before it was recorded, which then count from `started_at`.
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub config_path: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub stages_executed: u32,
    pub stages_skipped: u32,
    pub error: Option<String>,
    pub orchestrator_version: String,
    pub host: String,
    pub stages: Vec<SummaryStage>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SummaryStage {
    pub stage: u8,
    pub name: String,
    pub artifact_type: String,
    pub stage_version: String,
    /// `executed`, `skipped`, `failed` or `not_run`.
    pub status: String,
    pub reason: String,
    pub sha256: Option<String>,
    #[serde(default)]
    pub input_hashes: BTreeMap<String, String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// A summary checked against the directory it lies in, with the config in
/// the form the registry stores.
#[derive(Debug, Clone)]
pub struct CheckedSummary {
    pub summary: RunSummary,
    pub config_json: String,
}

/// Parse and check the summary of run `run_id` of `project_id`. `Err` says
/// what is wrong, for a report line. Every time is rewritten in the
/// registry's one format (UTC, milliseconds, `Z`), which sorts as text: a
/// `+14:00` offset stored as written would order runs wrongly.
pub fn parse(bytes: &[u8], project_id: &str, run_id: &str) -> Result<CheckedSummary, String> {
    let mut summary: RunSummary =
        serde_json::from_slice(bytes).map_err(|e| format!("not a run summary: {e}"))?;
    let config_json = check(&mut summary, project_id, run_id)?;
    Ok(CheckedSummary {
        summary,
        config_json,
    })
}

/// The largest attempt number a summary may record. Every later `run` of
/// the run counts one more, and attempts are `u32` everywhere: a bound just
/// below `u32::MAX` would only move the overflow a run or two later. At
/// most `i32::MAX`, over two billion runs stay countable (far more than
/// any run is ever run), and a reader taking it as a signed 32-bit
/// integer reads it right.
pub const MAX_ATTEMPT: u32 = i32::MAX as u32;

fn check(s: &mut RunSummary, project_id: &str, run_id: &str) -> Result<String, String> {
    if s.project_id != project_id || s.run_id != run_id {
        return Err(format!(
            "it describes run {}/{}, not the directory it is in",
            s.project_id, s.run_id
        ));
    }
    if !matches!(s.status.as_str(), "running" | "complete" | "failed") {
        return Err(format!("unknown status `{}`", s.status));
    }
    if s.attempt == 0 {
        return Err("attempt is 0 (they count from 1)".to_string());
    }
    if s.attempt > MAX_ATTEMPT {
        return Err(format!(
            "attempt {} is out of range (at most {MAX_ATTEMPT}, so that later runs can count on)",
            s.attempt
        ));
    }
    // Each counts stages of this run, of which there are five.
    let stage_count = crate::artifact::ArtifactType::ALL.len() as u32;
    for (field, n) in [
        ("stages_executed", s.stages_executed),
        ("stages_skipped", s.stages_skipped),
    ] {
        if n > stage_count {
            return Err(format!(
                "{field} {n} is out of range (a run has {stage_count} stages)"
            ));
        }
    }
    s.started_at = utc_time("started_at", &s.started_at)?;
    s.created_at = s
        .created_at
        .as_deref()
        .map(|t| utc_time("created_at", t))
        .transpose()?;
    s.finished_at = s
        .finished_at
        .as_deref()
        .map(|t| utc_time("finished_at", t))
        .transpose()?;
    check_ms("duration_ms", s.duration_ms)?;
    if !s.config.is_object() {
        return Err("`config` is not an object".to_string());
    }
    let config_json = jcs(&s.config).map_err(|e| format!("`config` cannot be encoded: {e}"))?;
    let hash = sha256_hex(config_json.as_bytes());
    if hash != s.config_hash {
        return Err(format!(
            "`config` hashes to {hash}, not to its config_hash {}",
            s.config_hash
        ));
    }
    let mut seen = BTreeSet::new();
    for st in &mut s.stages {
        let at = format!("stage {}", st.stage);
        if !(1..=5).contains(&st.stage) || !seen.insert(st.stage) {
            return Err(format!("{at} is out of range or listed twice"));
        }
        let makes = crate::artifact::ArtifactType::ALL[usize::from(st.stage) - 1];
        if st.artifact_type != makes.name() {
            return Err(format!(
                "{at} says it makes {}, but stage {} makes {makes}",
                st.artifact_type, st.stage
            ));
        }
        if !matches!(
            st.status.as_str(),
            "executed" | "skipped" | "failed" | "not_run"
        ) {
            return Err(format!("{at} has unknown status `{}`", st.status));
        }
        if st.status == "not_run" {
            continue;
        }
        let (Some(started), Some(finished)) = (&st.started_at, &st.finished_at) else {
            return Err(format!("{at} has no started_at/finished_at"));
        };
        let started = utc_time(&format!("{at} started_at"), started)?;
        let finished = utc_time(&format!("{at} finished_at"), finished)?;
        st.started_at = Some(started);
        st.finished_at = Some(finished);
        check_ms(&format!("{at} duration_ms"), Some(st.duration_ms))?;
        if let Some(sha) = &st.sha256
            && !is_sha256(sha)
        {
            return Err(format!("{at} sha256 `{sha}` is not a sha256"));
        }
    }
    Ok(config_json)
}

/// An RFC 3339 time, in the registry's own format: UTC, milliseconds, `Z`
/// ([`crate::clock::rfc3339`]), so that times compare correctly as text.
pub fn utc_time(field: &str, value: &str) -> Result<String, String> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| crate::clock::rfc3339(t.with_timezone(&chrono::Utc)))
        .map_err(|_| format!("{field} `{value}` is not an RFC 3339 time"))
}

/// SQLite integers are signed 64-bit.
fn check_ms(field: &str, value: Option<u64>) -> Result<(), String> {
    match value {
        Some(ms) if i64::try_from(ms).is_err() => Err(format!("{field} {ms} is out of range")),
        _ => Ok(()),
    }
}

/// 64 lowercase hex digits, as every hash in the tree is written.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl CheckedSummary {
    /// The run's registry row (status as recorded: `running` stays
    /// `running`, which readers show as interrupted when no lock is held).
    pub fn run_row(&self) -> RunRow {
        let s = &self.summary;
        RunRow {
            run_id: s.run_id.clone(),
            project_id: s.project_id.clone(),
            title: s.title.clone(),
            // `check` admitted only `running`, `complete` and `failed`.
            status: s.status.parse().unwrap_or(RunStatus::Failed),
            started_at: s.started_at.clone(),
            created_at: s.created_at.clone().unwrap_or_else(|| s.started_at.clone()),
            config_path: s.config_path.clone(),
            finished_at: s.finished_at.clone(),
            duration_ms: s.duration_ms,
            stages_executed: s.stages_executed,
            stages_skipped: s.stages_skipped,
            attempts: s.attempt,
            config_hash: s.config_hash.clone(),
            run_dir: format!("{}/{}", s.project_id, s.run_id),
            error: s.error.clone(),
            orchestrator_version: s.orchestrator_version.clone(),
            host: s.host.clone(),
        }
    }

    /// One execution row per stage the latest attempt reached. Earlier
    /// attempts' rows are not in any file, so they are not rebuilt.
    pub fn executions(&self) -> Vec<ExecutionRecord> {
        let s = &self.summary;
        s.stages
            .iter()
            .filter(|st| st.status != "not_run")
            .map(|st| ExecutionRecord {
                execution_id: None,
                project_id: s.project_id.clone(),
                run_id: s.run_id.clone(),
                attempt: s.attempt,
                stage: st.stage,
                stage_name: st.name.clone(),
                stage_version: st.stage_version.clone(),
                // `check` admitted only these words (and `not_run`,
                // filtered out above).
                status: st.status.parse().unwrap_or(ExecutionStatus::Failed),
                reason: st.reason.clone(),
                started_at: st.started_at.clone().unwrap_or_default(),
                finished_at: st.finished_at.clone(),
                duration_ms: Some(st.duration_ms),
                input_hashes: st.input_hashes.clone(),
                output_sha256: st.sha256.clone(),
                error: st.error.clone(),
            })
            .collect()
    }

    /// When the summary was last written: its end, or its start while running.
    pub fn written_at(&self) -> String {
        let s = &self.summary;
        s.finished_at
            .clone()
            .unwrap_or_else(|| s.started_at.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Value {
        json!({"project_id": "p", "title": "T", "seed": 7, "scene_count": 2})
    }

    fn stage(n: u8, status: &str) -> Value {
        let sha = format!("{n}").repeat(64);
        let ty = [
            "Script",
            "ShotList",
            "AssetManifest",
            "RenderPlan",
            "RenderOutput",
            "X",
        ];
        json!({
            "stage": n, "name": format!("stage{n}"), "artifact_type": ty[usize::from(n) - 1],
            "stage_version": "1.0.0", "status": status, "reason": "not run before",
            "sha256": if status == "failed" || status == "not_run" { Value::Null } else { sha.into() },
            "input_hashes": {"config": "c".repeat(64)},
            "started_at": "2026-11-24T08:00:00.001Z", "finished_at": "2026-11-24T08:00:00.004Z",
            "duration_ms": 3, "error": if status == "failed" { "boom".into() } else { Value::Null }
        })
    }

    /// A summary in the shape the runner writes at the end of a run.
    fn summary(stages: Vec<Value>) -> Value {
        let hash = sha256_hex(jcs(&config()).unwrap().as_bytes());
        json!({
            "project_id": "p", "run_id": "r1", "title": "T", "config": config(),
            "config_hash": hash, "status": "complete", "attempt": 2,
            "started_at": "2026-11-24T08:00:00.000Z", "finished_at": "2026-11-24T08:00:01.000Z",
            "duration_ms": 1000, "stages_executed": 1, "stages_skipped": 0, "error": null,
            "orchestrator_version": "0.1.0", "host": "h", "stages": stages,
            "a_field_from_the_future": true
        })
    }

    fn parse_value(v: &Value) -> Result<CheckedSummary, String> {
        parse(&serde_json::to_vec(v).unwrap(), "p", "r1")
    }

    #[test]
    fn a_finished_summary_gives_the_run_row_and_one_execution_per_reached_stage() {
        let v = summary(vec![
            stage(1, "skipped"),
            stage(2, "executed"),
            stage(3, "failed"),
            stage(4, "not_run"),
            stage(5, "not_run"),
        ]);
        let s = parse_value(&v).unwrap();
        assert_eq!(s.config_json, jcs(&config()).unwrap());
        let row = s.run_row();
        assert_eq!(
            (row.status.as_str(), row.attempts, row.run_dir.as_str()),
            ("complete", 2, "p/r1")
        );
        assert_eq!(row.title, "T");
        assert_eq!(row.duration_ms, Some(1000));
        let ex = s.executions();
        let got: Vec<(u8, &str, u32)> = ex
            .iter()
            .map(|e| (e.stage, e.status.as_str(), e.attempt))
            .collect();
        assert_eq!(
            got,
            vec![(1, "skipped", 2), (2, "executed", 2), (3, "failed", 2)]
        );
        assert_eq!(ex[2].error.as_deref(), Some("boom"));
        assert_eq!(ex[2].output_sha256, None);
        assert_eq!(ex[1].input_hashes["config"], "c".repeat(64));
        assert_eq!(s.written_at(), "2026-11-24T08:00:01.000Z");
    }

    #[test]
    fn times_with_offsets_are_stored_in_utc_so_they_sort_as_text() {
        let mut v = summary(vec![stage(1, "executed")]);
        v["started_at"] = "2026-11-24T22:00:00+14:00".into();
        v["finished_at"] = "2026-11-24T08:00:01.5-00:30".into();
        v["stages"][0]["started_at"] = "2026-11-24T08:00:00.000001Z".into();
        let s = parse_value(&v).unwrap();
        let row = s.run_row();
        assert_eq!(row.started_at, "2026-11-24T08:00:00.000Z");
        assert_eq!(row.finished_at.as_deref(), Some("2026-11-24T08:30:01.500Z"));
        assert_eq!(s.executions()[0].started_at, "2026-11-24T08:00:00.000Z");
        assert_eq!(s.written_at(), "2026-11-24T08:30:01.500Z");
    }

    #[test]
    fn a_summary_written_at_run_start_indexes_as_running() {
        let mut v = summary(vec![]);
        v["status"] = "running".into();
        v["finished_at"] = Value::Null;
        v["duration_ms"] = Value::Null;
        let s = parse_value(&v).unwrap();
        assert_eq!(s.run_row().status, RunStatus::Running);
        assert_eq!(s.run_row().finished_at, None);
        assert!(s.executions().is_empty());
        assert_eq!(s.written_at(), "2026-11-24T08:00:00.000Z");
    }

    #[test]
    fn what_the_registry_would_refuse_is_refused_with_the_field_named() {
        type Edit = fn(&mut Value);
        let cases: Vec<(&str, Edit)> = vec![
            ("describes run p/r2", |v| v["run_id"] = "r2".into()),
            ("unknown status", |v| v["status"] = "done".into()),
            ("attempt is 0", |v| v["attempt"] = 0.into()),
            ("attempt 4294967295 is out of range", |v| {
                v["attempt"] = u32::MAX.into()
            }),
            ("stages_executed 6 is out of range", |v| {
                v["stages_executed"] = 6.into()
            }),
            ("stage 1 finished_at", |v| {
                v["stages"][0]["finished_at"] = "soon".into()
            }),
            ("config_hash", |v| v["config"]["seed"] = 8.into()),
            ("not an object", |v| v["config"] = json!([1])),
            ("started_at", |v| v["started_at"] = "yesterday".into()),
            ("listed twice", |v| {
                v["stages"] = json!([stage(1, "executed"), stage(1, "executed")])
            }),
            ("out of range", |v| {
                v["stages"] = json!([stage(6, "executed")])
            }),
            ("stage 1 makes Script", |v| {
                v["stages"][0]["artifact_type"] = "ShotList".into()
            }),
            ("not a sha256", |v| v["stages"][0]["sha256"] = "ABC".into()),
            ("duration_ms", |v| v["duration_ms"] = u64::MAX.into()),
            ("started_at/finished_at", |v| {
                v["stages"][0]["finished_at"] = Value::Null
            }),
            ("missing field `title`", |v| {
                v.as_object_mut().unwrap().remove("title");
            }),
        ];
        for (needle, edit) in cases {
            let mut v = summary(vec![stage(1, "executed")]);
            edit(&mut v);
            let err = parse_value(&v).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let err = parse(b"[1, 2]", "p", "r1").unwrap_err();
        assert!(err.starts_with("not a run summary"), "{err}");
    }
}
