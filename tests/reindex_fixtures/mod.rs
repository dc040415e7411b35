//! Fixtures for `tests/reindex.rs`: runs of several kinds (including a
//! failed one), the answers users compare, and the registry rows reindex
//! rebuilds.

use std::path::Path;
use std::time::Duration;

use crate::common::{Workspace, example_config};
use orchestrator::clock::SystemClock;
use orchestrator::pipeline::{RunOptions, default_stages, run_pipeline};
use orchestrator::registry::Location;

/// A first run of `config` that fails at stage 2, in the workspace's
/// registry (either backend).
pub fn failed_run(ws: &Workspace, config: &Path) {
    let db = match ws.pg_url() {
        Some(url) => std::path::PathBuf::from(url),
        None => ws.db(),
    };
    let location = Location::parse(Some(&db), &ws.artifacts()).unwrap();
    let opts = RunOptions {
        config: orchestrator::config::load(config).unwrap(),
        run_id: None,
        artifacts_dir: ws.artifacts(),
        from_stage: None,
        force: false,
        lock_wait: Duration::from_secs(1),
        on_lock_wait: None,
    };
    let mut stages = default_stages();
    stages[1] = Box::new(crate::common::BrokenShotList);
    let mut session = orchestrator::workspace::Workspace::new(ws.artifacts(), location)
        .lock_run(&opts, &SystemClock, Duration::from_secs(1))
        .unwrap();
    let outcome = run_pipeline(
        &opts,
        &session.locked,
        &mut session.registry,
        &SystemClock,
        &stages,
        &mut |_| {},
    )
    .unwrap();
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
            let text = if out.status.success() && args[0] == "runs" && args[1] == "show" {
                // Earlier attempts' executions are not in any file, so
                // reindex cannot bring back the attempt history (README,
                // "What the files do not keep"): compare the rest.
                let mut shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                shown.as_object_mut().unwrap().remove("attempts");
                serde_json::to_string_pretty(&shown).unwrap()
            } else if out.status.success() {
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
/// (no file keeps them).
pub fn registry_rows(ws: &Workspace) -> Vec<String> {
    const QUERIES: [&str; 6] = [
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
        "SELECT project_id, run_id, sha256, path, summary_json, written_at
         FROM run_summaries ORDER BY 1, 2",
    ];
    let mut out = Vec::new();
    for sql in QUERIES {
        // (A value over several lines, a stored JSON document, comes as
        // several rows on PostgreSQL: the same before and after.)
        for row in ws.registry_rows(sql) {
            out.push(row.join(" | "));
        }
    }
    out
}
