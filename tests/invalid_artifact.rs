//! A stage whose output breaks its schema: nothing is written or registered
//! for it, the run stops with exit code 1 naming the stage and the JSON
//! pointer, and what earlier stages produced is kept.
//!
//! The stub stages never produce invalid artifacts, so this drives the
//! library's runner with a deliberately broken stage in place of stage 2 —
//! the same seam a real generator plugs into.

mod common;

use std::time::Duration;

use orchestrator::clock::SystemClock;
use orchestrator::pipeline::{RunOptions, default_stages, run_pipeline};
use orchestrator::registry::Location;
use orchestrator::{Error, config};
use serde_json::Value;

#[test]
fn an_invalid_artifact_is_never_written_or_registered() {
    let ws = common::Workspace::new();
    let loaded = config::load(&ws.example()).unwrap();
    let run_id = loaded.default_run_id();
    // The pass's registry, opened and locked as the binary does it.
    let location = Location::parse(ws.pg_url().map(std::path::Path::new), &ws.artifacts()).unwrap();
    let workspace = orchestrator::workspace::Workspace::new(ws.artifacts(), location);
    let opts = RunOptions {
        config: loaded,
        run_id: None,
        artifacts_dir: ws.artifacts(),
        from_stage: None,
        force: false,
        lock_wait: Duration::from_secs(1),
        on_lock_wait: None,
    };
    let mut stages = default_stages();
    stages[1] = Box::new(common::BrokenShotList);

    let mut seen = Vec::new();
    let mut session = workspace
        .lock_run(&opts, &SystemClock, Duration::from_secs(1))
        .unwrap();
    let err = run_pipeline(
        &opts,
        &session.locked,
        &mut session.registry,
        &SystemClock,
        &stages,
        &mut |r| seen.push((r.stage, r.status.as_str())),
    )
    .unwrap()
    .error
    .expect("the run fails");
    // Released, as the binary releases it when a run ends.
    drop(session);
    match &err {
        Error::InvalidArtifact {
            stage,
            pointer,
            artifact_type,
            ..
        } => {
            assert_eq!(*stage, 2);
            assert_eq!(artifact_type, "ShotList");
            assert_eq!(pointer, "/shots/0/size");
        }
        other => panic!("expected InvalidArtifact, got {other}"),
    }
    assert_eq!(err.exit_code(), 1);
    assert!(err.to_string().contains("stage 2") && err.to_string().contains("/shots/0/size"));
    assert_eq!(
        seen,
        vec![
            (1, "executed"),
            (2, "failed"),
            (3, "not_run"),
            (4, "not_run"),
            (5, "not_run")
        ]
    );

    let dir = ws.run_dir("lighthouse", &run_id);
    assert!(dir.join("Script.json").exists(), "earlier output is kept");
    assert!(!dir.join("ShotList.json").exists());
    assert!(!dir.join("ShotList.meta.json").exists());

    let types = ws.registry_rows("SELECT artifact_type FROM artifacts ORDER BY stage");
    assert_eq!(types, [["Script"]]);
    let run = ws.registry_rows("SELECT status, error FROM runs");
    let (status, error) = (&run[0][0], &run[0][1]);
    assert_eq!(status, "failed");
    assert!(error.contains("/shots/0/size"), "{error}");
    let failed = ws.registry_value(
        "SELECT count(*) FROM stage_executions WHERE stage = 2 AND status = 'failed'",
    );
    assert_eq!(failed, "1");

    let summary: Value =
        serde_json::from_slice(&std::fs::read(dir.join("run_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "failed");
    assert_eq!(
        common::statuses(&summary),
        ["executed", "failed", "not_run", "not_run", "not_run"]
    );

    // The real stages then resume from what was kept.
    let summary = ws.run_ok(&ws.path().join("project.json"), &[]);
    assert_eq!(
        common::statuses(&summary),
        ["skipped", "executed", "executed", "executed", "executed"]
    );
}
