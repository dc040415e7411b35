//! Fixtures for `tests/reindex.rs`: runs of several kinds (including a
//! failed one), the answers users compare, and the registry rows reindex
//! rebuilds.

use std::path::Path;
use std::time::Duration;

use crate::common::{Workspace, example_config};
use orchestrator::artifact::ArtifactType;
use orchestrator::clock::SystemClock;
use orchestrator::pipeline::{RunOptions, Stage, StageContext, default_stages, run_pipeline};
use orchestrator::registry::Registry;
use serde_json::{Value, json};

/// Rewrite each run's `run_summary.json` into the shape reindex reads
/// (title, config, host, error, and per stage its version, input hashes,
/// times and error), from the registry. A stopgap until the runner writes
/// that shape itself; a summary that already has it is left alone, so once
/// the runner does, this does nothing and the tests read real summaries.
pub fn upgrade_summaries(ws: &Workspace) {
    let conn = ws.sqlite();
    let mut stmt = conn
        .prepare(
            "SELECT r.project_id, r.run_id, p.title, r.config_json, r.error, r.host
             FROM runs r JOIN projects p USING (project_id)",
        )
        .unwrap();
    type RunCols = (String, String, String, String, Option<String>, String);
    let runs: Vec<RunCols> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (project, run, title, config_json, error, host) in runs {
        let path = ws.run_dir(&project, &run).join("run_summary.json");
        let mut s: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if s.get("title").is_some() {
            continue;
        }
        s["title"] = title.into();
        s["config"] = serde_json::from_str(&config_json).unwrap();
        s["error"] = error.into();
        s["host"] = host.into();
        let attempt = s["attempt"].as_i64().unwrap();
        for st in s["stages"].as_array_mut().unwrap() {
            let row = conn.query_row(
                "SELECT stage_version, input_hashes, started_at, finished_at, error
                 FROM stage_executions
                 WHERE project_id = ?1 AND run_id = ?2 AND stage = ?3 AND attempt = ?4
                 ORDER BY execution_id DESC LIMIT 1",
                rusqlite::params![project, run, st["stage"].as_i64().unwrap(), attempt],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            );
            let (version, inputs, started, finished, err) = match row {
                Ok(row) => row,
                // A stage the attempt did not reach has no row.
                Err(_) => ("-".into(), "{}".into(), String::new(), String::new(), None),
            };
            st["stage_version"] = version.into();
            st["input_hashes"] = serde_json::from_str(&inputs).unwrap();
            st["started_at"] = started.into();
            st["finished_at"] = finished.into();
            st["error"] = err.into();
        }
        let mut bytes = serde_json::to_vec_pretty(&s).unwrap();
        bytes.push(b'\n');
        std::fs::write(&path, bytes).unwrap();
    }
}

/// Stage 2 replaced by one whose output breaks the schema, so the run fails.
struct BrokenShotList;

impl Stage for BrokenShotList {
    fn number(&self) -> u8 {
        2
    }
    fn name(&self) -> &'static str {
        "stage2_script_to_shotlist"
    }
    fn version(&self) -> &'static str {
        "9.9.9-broken"
    }
    fn inputs(&self) -> &'static [ArtifactType] {
        &[ArtifactType::Script]
    }
    fn output(&self) -> ArtifactType {
        ArtifactType::ShotList
    }
    fn run(&self, _ctx: &StageContext<'_>) -> orchestrator::Result<Value> {
        Ok(json!({"artifact_type": "ShotList"}))
    }
}

/// A first run of `config` that fails at stage 2.
pub fn failed_run(ws: &Workspace, config: &Path) {
    let mut registry = Registry::open(&ws.db()).unwrap();
    let opts = RunOptions {
        config: orchestrator::config::load(config).unwrap(),
        run_id: None,
        artifacts_dir: ws.artifacts(),
        from_stage: None,
        force: false,
        lock_wait: Duration::from_secs(1),
    };
    let mut stages = default_stages();
    stages[1] = Box::new(BrokenShotList);
    let outcome = run_pipeline(&opts, &mut registry, &SystemClock, &stages, &mut |_| {}).unwrap();
    assert!(outcome.error.is_some());
}

/// The example's config under another project id (and title, seed).
pub fn project(ws: &Workspace, id: &str, seed: u64) -> std::path::PathBuf {
    let mut config = example_config();
    config["project_id"] = id.into();
    config["title"] = format!("The {id} film").into();
    config["seed"] = seed.into();
    ws.write_config(&format!("{id}.json"), &config)
}

/// The stdout of every read command a user or script would compare, for
/// each run: `(command line, output)`.
pub fn answers(ws: &Workspace, runs: &[(String, String)]) -> Vec<(String, String)> {
    let mut commands: Vec<Vec<String>> = vec![vec!["runs".into(), "list".into(), "--json".into()]];
    for (project, run) in runs {
        let scope = ["--project".to_string(), project.clone()];
        let mut show: Vec<String> =
            vec!["runs".into(), "show".into(), run.clone(), "--json".into()];
        show.extend(scope.clone());
        commands.push(show);
        for (target, extra) in [("RenderOutput", None), ("Script", Some("--descendants"))] {
            let mut c: Vec<String> = vec!["lineage".into(), target.into(), "--run".into()];
            c.push(run.clone());
            c.extend(scope.clone());
            c.extend(["--format".into(), "json".into()]);
            c.extend(extra.map(String::from));
            commands.push(c);
        }
    }
    commands
        .into_iter()
        .map(|args| {
            let out = ws.cmd().args(&args).output().unwrap();
            let line = args.join(" ");
            // A failed run has no RenderOutput: then the error is the answer.
            let text = if out.status.success() {
                String::from_utf8(out.stdout).unwrap()
            } else {
                format!(
                    "exit {:?}: {}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr)
                )
            };
            (line, text)
        })
        .collect()
}

/// The registry rows reindex rebuilds, with ids replaced by what they name.
/// Left out: executions of earlier attempts and `projects.first_run_at`
/// (no file keeps them), and the run summaries' hashes (rewritten by
/// `upgrade_summaries` until the runner writes the full shape).
pub fn registry_rows(ws: &Workspace) -> Vec<String> {
    const QUERIES: [&str; 5] = [
        "SELECT project_id, title, last_run_at FROM projects ORDER BY project_id",
        "SELECT * FROM runs ORDER BY project_id, run_id",
        "SELECT project_id, run_id, artifact_type, sha256, schema_id, schema_version, path,
                size_bytes, stage, stage_name, stage_version, created_at, meta_json
         FROM artifacts ORDER BY project_id, run_id, stage",
        "SELECT c.project_id, c.run_id, c.artifact_type, p.artifact_type, e.parent_sha256
         FROM artifact_edges e
         JOIN artifacts c ON c.artifact_id = e.child_id
         JOIN artifacts p ON p.artifact_id = e.parent_id
         ORDER BY 1, 2, c.stage, p.stage",
        "SELECT x.project_id, x.run_id, x.attempt, x.stage, x.stage_name, x.stage_version,
                x.status, x.reason, x.started_at, x.finished_at, x.duration_ms, x.input_hashes,
                x.output_sha256, a.artifact_type, x.error
         FROM stage_executions x
         JOIN runs r ON r.project_id = x.project_id AND r.run_id = x.run_id
                    AND r.attempts = x.attempt
         LEFT JOIN artifacts a ON a.artifact_id = x.artifact_id
         ORDER BY 1, 2, x.stage",
    ];
    let conn = ws.sqlite();
    let mut out = Vec::new();
    for sql in QUERIES {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap();
        for row in rows {
            out.push(row.unwrap().join(" | "));
        }
    }
    out
}
