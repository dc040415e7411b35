//! `run --dry-run`: the plan comes from the same decisions as a real run,
//! and nothing is written.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Workspace, example_run, statuses, summary_of};
use serde_json::Value;

fn plan(ws: &Workspace, extra: &[&str]) -> Value {
    let out = ws
        .cmd()
        .args(["run", "--dry-run", "--json", "--project"])
        .arg(ws.path().join("project.json"))
        .args(extra)
        .output()
        .unwrap();
    summary_of(&out)
}

fn actions(plan: &Value) -> Vec<String> {
    plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap().to_string())
        .collect()
}

/// Every file under `dir` with its bytes: what "nothing was written" means.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let e = e.unwrap();
        let path = e.path();
        if e.file_type().unwrap().is_dir() {
            for (k, v) in tree(&path) {
                out.insert(format!("{}/{k}", e.file_name().to_string_lossy()), v);
            }
        } else {
            out.insert(
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            );
        }
    }
    out
}

/// The real run that follows must do what the plan said: `execute` is
/// executed; `skip`, `adopt` and (with deterministic stages)
/// `skip_if_unchanged` are skipped.
fn assert_run_follows(ws: &Workspace, plan: &Value, extra: &[&str]) {
    let run = ws.run_ok(&ws.path().join("project.json"), extra);
    let expected: Vec<&str> = actions(plan)
        .iter()
        .map(|a| {
            if a == "execute" {
                "executed"
            } else {
                "skipped"
            }
        })
        .collect();
    assert_eq!(statuses(&run), expected, "plan {plan:#}");
    for (p, r) in plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .zip(run["stages"].as_array().unwrap())
    {
        if p["action"] == "execute" && !p["reason"].as_str().unwrap().starts_with("its input") {
            assert_eq!(p["reason"], r["reason"], "stage {}", p["stage"]);
        }
    }
}

#[test]
fn a_first_dry_run_plans_every_stage_and_creates_nothing() {
    let ws = Workspace::new();
    ws.example();
    let p = plan(&ws, &[]);
    assert_eq!(actions(&p), ["execute"; 5]);
    assert_eq!(p["stages"][0]["reason"], "not run before");
    assert_eq!(
        ws.entries(),
        ["project.json".to_string()].into_iter().collect(),
        "no artifacts directory, no registry"
    );
    assert_run_follows(&ws, &p, &[]);
}

#[test]
fn an_up_to_date_run_plans_all_skips_and_changes_no_byte() {
    let (ws, _) = example_run();
    let before = tree(&ws.artifacts());
    let p = plan(&ws, &[]);
    assert_eq!(actions(&p), ["skip"; 5]);
    assert_eq!(tree(&ws.artifacts()), before, "the dry run wrote something");
    assert_eq!(ws.runs_list(&[])[0]["attempt"], 1);
}

#[test]
fn a_changed_artifact_plans_its_stage_and_conditional_skips_after_it() {
    let (ws, summary) = example_run();
    let dir = ws.run_dir("lighthouse", summary["run_id"].as_str().unwrap());
    std::fs::write(dir.join("ShotList.json"), b"{}\n").unwrap();
    let p = plan(&ws, &[]);
    assert_eq!(
        actions(&p),
        [
            "skip",
            "execute",
            "skip_if_unchanged",
            "skip_if_unchanged",
            "skip_if_unchanged"
        ]
    );
    assert_eq!(p["stages"][1]["reason"], "hash mismatch");
    let why = p["stages"][2]["reason"].as_str().unwrap();
    assert!(why.contains("ShotList") && why.contains("stage 2"), "{why}");
    assert_run_follows(&ws, &p, &[]);
}

#[test]
fn a_missing_artifact_and_forcing_flags_are_planned_with_the_runs_reasons() {
    let (ws, summary) = example_run();
    let dir = ws.run_dir("lighthouse", summary["run_id"].as_str().unwrap());
    std::fs::remove_file(dir.join("RenderPlan.json")).unwrap();
    let p = plan(&ws, &[]);
    assert_eq!(
        actions(&p),
        ["skip", "skip", "skip", "execute", "skip_if_unchanged"]
    );
    assert_eq!(p["stages"][3]["reason"], "artifact missing");
    assert_run_follows(&ws, &p, &[]);

    let p = plan(&ws, &["--from-stage", "4"]);
    assert_eq!(actions(&p), ["skip", "skip", "skip", "execute", "execute"]);
    assert_eq!(p["stages"][4]["reason"], "forced (--from-stage 4)");
    assert_run_follows(&ws, &p, &["--from-stage", "4"]);

    let p = plan(&ws, &["--force"]);
    assert_eq!(actions(&p), ["execute"; 5]);
    assert_eq!(p["stages"][0]["reason"], "forced (--force)");
}

#[cfg(feature = "failpoints")]
#[test]
fn files_an_interrupted_run_left_are_planned_as_adopted() {
    let ws = Workspace::new();
    let config = ws.example();
    let killed = ws
        .cmd()
        .env("ORCHESTRATOR_FAILPOINTS", "stage.after_meta_write=kill@3")
        .args(["run", "--project"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!killed.status.success());
    let p = plan(&ws, &[]);
    assert_eq!(actions(&p), ["skip", "skip", "adopt", "execute", "execute"]);
    assert_run_follows(&ws, &p, &[]);
}

#[test]
fn the_text_plan_says_nothing_was_written() {
    let (ws, _) = example_run();
    let out = ws
        .cmd()
        .args(["run", "--dry-run", "--project"])
        .arg(ws.path().join("project.json"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("would skip: up to date"), "{text}");
    assert!(
        text.contains("0 of 5 stages would execute; nothing was written"),
        "{text}"
    );
}
