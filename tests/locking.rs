//! Run locks: a second process waits for, or gives up on, a run another
//! process holds, and `runs list` tells a live run from a dead one.

mod common;

use std::fs::File;

use common::{Workspace, example_run};
use serde_json::Value;

/// Hold the run's lock from this test process, as a live `orchestrator run` would.
fn hold_lock(ws: &Workspace, project: &str, run: &str) -> File {
    let dir = ws.artifacts().join(".locks");
    std::fs::create_dir_all(&dir).unwrap();
    let file = File::create(dir.join(format!("{project}.{run}.lock"))).unwrap();
    file.lock().unwrap();
    file
}

#[test]
fn a_held_run_makes_a_second_run_exit_4_without_touching_files() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let script = ws.run_dir("lighthouse", run_id).join("Script.json");
    let before = std::fs::read(&script).unwrap();
    let _held = hold_lock(&ws, "lighthouse", run_id);

    let out = ws
        .cmd()
        .args(["run", "--force", "--lock-timeout", "0", "--project"])
        .arg(ws.path().join("project.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: ") && err.contains("busy"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(std::fs::read(&script).unwrap(), before);

    // The registry still says complete: the refused run recorded nothing.
    let rows = ws.runs_list(&[]);
    assert_eq!(rows[0]["status"], "complete");
    assert_eq!(rows[0]["attempts"], 1);
}

#[test]
fn a_running_run_with_a_live_holder_is_running_not_interrupted() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    ws.sqlite()
        .execute("UPDATE runs SET status = 'running', finished_at = NULL", [])
        .unwrap();
    let held = hold_lock(&ws, "lighthouse", run_id);
    let list = |args: &[&str]| ws.runs_list(args);
    assert_eq!(list(&[])[0]["status"], "running");
    assert_eq!(list(&["--status", "running"]).len(), 1);
    drop(held);
    assert_eq!(list(&[])[0]["status"], "interrupted");
}

#[test]
fn verify_stays_quiet_on_stderr_when_piped_even_for_a_large_tree() {
    let ws = Workspace::new();
    let config = ws.example();
    // 45 runs x 5 artifacts: past the progress-bar threshold.
    for i in 0..45 {
        ws.run_ok(&config, &["--run-id", &format!("take-{i:02}")]);
    }
    let out = ws.cmd().args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["artifacts_checked"], 225);
}
