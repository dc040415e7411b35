//! `orchestrator gc`: dry run by default, `--yes` deletes; runs a kept run
//! depends on, and live runs, are never removed; verify is clean after.

mod common;

use common::{Workspace, summary_of};
use serde_json::Value;

/// Three runs of the example (`r1` oldest … `r3` newest) and one of a
/// second project.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    let config = ws.example();
    for id in ["r1", "r2", "r3"] {
        ws.run_ok(&config, &["--run-id", id]);
    }
    let mut other = common::example_config();
    other["project_id"] = "harbor".into();
    let other = ws.write_config("harbor.json", &other);
    ws.run_ok(&other, &["--run-id", "h1"]);
    ws
}

fn gc(ws: &Workspace, args: &[&str]) -> Value {
    let out = ws
        .cmd()
        .arg("gc")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    summary_of(&out)
}

fn ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["project_id"].as_str().unwrap(),
                r["run_id"].as_str().unwrap()
            )
        })
        .collect();
    ids.sort();
    ids
}

fn listed(ws: &Workspace) -> Vec<String> {
    let mut ids: Vec<String> = ws
        .runs_list(&[])
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["project_id"].as_str().unwrap(),
                r["run_id"].as_str().unwrap()
            )
        })
        .collect();
    ids.sort();
    ids
}

fn assert_verify_clean(ws: &Workspace) {
    let out = ws.cmd().args(["verify", "--json"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn keep_last_is_a_dry_run_until_yes_and_then_frees_what_it_said() {
    let ws = workspace();
    let before = listed(&ws);
    let expected_bytes =
        dir_bytes(&ws.run_dir("lighthouse", "r1")) + dir_bytes(&ws.run_dir("lighthouse", "r2"));

    let plan = gc(&ws, &["--keep-last", "1"]);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(ids(&plan["remove"]), ["lighthouse/r1", "lighthouse/r2"]);
    assert_eq!(plan["bytes"], expected_bytes);
    // Nothing was touched.
    assert_eq!(listed(&ws), before);
    assert!(ws.run_dir("lighthouse", "r1").join("Script.json").exists());

    let done = gc(&ws, &["--keep-last", "1", "--yes"]);
    assert_eq!(done["dry_run"], false);
    assert_eq!(ids(&done["removed"]), ["lighthouse/r1", "lighthouse/r2"]);
    assert_eq!(done["bytes_freed"], expected_bytes);
    assert_eq!(listed(&ws), ["harbor/h1", "lighthouse/r3"]);
    assert!(!ws.run_dir("lighthouse", "r1").exists());
    assert!(!ws.run_dir("lighthouse", "r2").exists());
    assert!(
        ws.run_dir("lighthouse", "r3")
            .join("RenderOutput.json")
            .exists()
    );
    // No row of a removed run is left behind.
    let rows: i64 = ws
        .sqlite()
        .query_row(
            "SELECT (SELECT count(*) FROM artifacts WHERE run_id IN ('r1', 'r2'))
                  + (SELECT count(*) FROM stage_executions WHERE run_id IN ('r1', 'r2'))
                  + (SELECT count(*) FROM run_summaries WHERE run_id IN ('r1', 'r2'))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0);
    assert_verify_clean(&ws);
    // Keeping what is left is a no-op.
    assert_eq!(
        gc(&ws, &["--keep-last", "1", "--yes"])["removed"],
        serde_json::json!([])
    );
}

#[test]
fn one_run_or_runs_older_than_a_date_can_be_selected() {
    let ws = workspace();
    assert_eq!(ids(&gc(&ws, &["--run", "r2"])["remove"]), ["lighthouse/r2"]);
    // Nothing started before 2000; everything before a date in the future.
    assert_eq!(
        gc(&ws, &["--older-than", "2000-01-01"])["remove"],
        serde_json::json!([])
    );
    let all = gc(
        &ws,
        &["--older-than", "2999-01-01", "--project", "lighthouse"],
    );
    assert_eq!(
        ids(&all["remove"]),
        ["lighthouse/r1", "lighthouse/r2", "lighthouse/r3"]
    );
    // Selectors combine: older than the future AND beyond the newest two.
    let both = gc(&ws, &["--older-than", "2999-01-01", "--keep-last", "2"]);
    assert_eq!(ids(&both["remove"]), ["lighthouse/r1"]);

    gc(&ws, &["--run", "r2", "--yes"]);
    assert_eq!(listed(&ws), ["harbor/h1", "lighthouse/r1", "lighthouse/r3"]);
    assert_verify_clean(&ws);
}

#[test]
fn a_run_whose_artifacts_a_kept_run_uses_is_never_removed() {
    let ws = workspace();
    // r3's RenderOutput made from r1's RenderPlan, as a stage that shares
    // upstream artifacts across runs would record it.
    ws.sqlite()
        .execute_batch(
            "INSERT INTO artifact_edges (child_id, parent_id, parent_sha256)
             SELECT c.artifact_id, p.artifact_id, p.sha256 FROM artifacts c, artifacts p
             WHERE c.run_id = 'r3' AND c.artifact_type = 'RenderOutput'
               AND p.run_id = 'r1' AND p.artifact_type = 'RenderPlan';",
        )
        .unwrap();
    let plan = gc(&ws, &["--keep-last", "1"]);
    assert_eq!(ids(&plan["remove"]), ["lighthouse/r2"]);
    assert_eq!(ids(&plan["kept"]), ["lighthouse/r1"]);
    let reason = plan["kept"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("lighthouse/r3"), "{reason}");

    // Transitively: r1 (kept) made from r2 keeps r2 as well.
    ws.sqlite()
        .execute_batch(
            "INSERT INTO artifact_edges (child_id, parent_id, parent_sha256)
             SELECT c.artifact_id, p.artifact_id, p.sha256 FROM artifacts c, artifacts p
             WHERE c.run_id = 'r1' AND c.artifact_type = 'ShotList'
               AND p.run_id = 'r2' AND p.artifact_type = 'Script';",
        )
        .unwrap();
    let plan = gc(&ws, &["--keep-last", "1"]);
    assert_eq!(plan["remove"], serde_json::json!([]));
    assert_eq!(ids(&plan["kept"]), ["lighthouse/r1", "lighthouse/r2"]);

    gc(&ws, &["--keep-last", "1", "--yes"]);
    assert_eq!(listed(&ws).len(), 4, "nothing removed");
}

#[test]
fn files_deleted_by_hand_are_tolerated() {
    let ws = workspace();
    std::fs::remove_dir_all(ws.run_dir("lighthouse", "r1")).unwrap();
    std::fs::remove_file(ws.run_dir("lighthouse", "r2").join("ShotList.json")).unwrap();
    let done = gc(&ws, &["--keep-last", "1", "--yes"]);
    assert_eq!(ids(&done["removed"]), ["lighthouse/r1", "lighthouse/r2"]);
    assert_eq!(listed(&ws), ["harbor/h1", "lighthouse/r3"]);
    assert_verify_clean(&ws);
}

#[test]
fn a_live_run_is_kept() {
    let ws = workspace();
    let _held = ws.hold_live_run("lighthouse", "r1");
    let done = gc(&ws, &["--keep-last", "1", "--yes"]);
    assert_eq!(ids(&done["removed"]), ["lighthouse/r2"]);
    assert_eq!(ids(&done["kept"]), ["lighthouse/r1"]);
    assert!(ws.run_dir("lighthouse", "r1").join("Script.json").exists());
}

#[test]
fn gc_without_a_selector_is_a_usage_error() {
    let ws = workspace();
    let out = ws.cmd().args(["gc", "--yes"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(listed(&ws).len(), 4);
}

#[test]
fn the_dry_run_text_says_nothing_was_deleted() {
    let ws = workspace();
    let out = ws.cmd().args(["gc", "--keep-last", "2"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("r1"), "{text}");
    assert!(text.contains("would remove 1 run"), "{text}");
    assert!(text.contains("pass --yes to delete"), "{text}");
}
