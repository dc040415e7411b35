//! `orchestrator diff`, driven through the binary: exit codes like diff(1),
//! config and artifact differences as JSON pointers, RFC 6902 patches that
//! turn run A's artifacts into run B's exactly, and refusal to compare a
//! file that no longer matches the registry.

mod common;

use std::path::PathBuf;

use common::{TYPES, Workspace, assert_usage_error, example_config, example_run};
use serde_json::{Value, json};

fn diff(ws: &Workspace, args: &[&str]) -> std::process::Output {
    ws.cmd().arg("diff").args(args).output().unwrap()
}

/// `diff --json --full A B`: the exit code and the parsed report, with
/// every patch complete.
fn diff_json(ws: &Workspace, a: &str, b: &str) -> (i32, Value) {
    let out = diff(ws, &["--json", "--full", a, b]);
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 1,
        "exit {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, serde_json::from_slice(&out.stdout).unwrap())
}

/// The example run plus a run of the example with `change` applied.
fn two_runs(change: impl FnOnce(&mut Value)) -> (Workspace, String, String) {
    let (ws, first) = example_run();
    let mut config = example_config();
    change(&mut config);
    let path = ws.write_config("changed.json", &config);
    let second = ws.run_ok(&path, &[]);
    (ws, id(&first), id(&second))
}

fn id(summary: &Value) -> String {
    summary["run_id"].as_str().unwrap().to_string()
}

fn artifact_path(ws: &Workspace, run: &str, artifact_type: &str) -> PathBuf {
    ws.run_dir("lighthouse", run)
        .join(format!("{artifact_type}.json"))
}

fn read_json(path: &PathBuf) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A strict RFC 6902 applier for the three operations `diff` emits: every
/// target must exist (or, for `add`, its parent), every index be in range.
fn apply_patch(doc: &Value, patch: &Value) -> Value {
    let mut doc = doc.clone();
    for op in patch.as_array().unwrap() {
        let keys: Vec<&String> = op.as_object().unwrap().keys().collect();
        let kind = op["op"].as_str().unwrap();
        let expected_keys = if kind == "remove" {
            vec!["op", "path"]
        } else {
            vec!["op", "path", "value"]
        };
        assert_eq!(keys, expected_keys, "{op}");
        let path = op["path"].as_str().unwrap();
        if path.is_empty() {
            assert_eq!(kind, "replace", "{op}");
            doc = op["value"].clone();
            continue;
        }
        let (parent, last) = path.rsplit_once('/').unwrap();
        let last = last.replace("~1", "/").replace("~0", "~");
        let value = op["value"].clone();
        match (kind, doc.pointer_mut(parent)) {
            ("add", Some(Value::Object(m))) => {
                m.insert(last, value);
            }
            ("replace", Some(Value::Object(m))) => {
                *m.get_mut(&last)
                    .unwrap_or_else(|| panic!("{op}: no target")) = value;
            }
            ("remove", Some(Value::Object(m))) => {
                m.remove(&last).unwrap_or_else(|| panic!("{op}: no target"));
            }
            ("add", Some(Value::Array(a))) => {
                let i = if last == "-" {
                    a.len()
                } else {
                    last.parse().unwrap()
                };
                assert!(i <= a.len(), "{op}: index out of range");
                a.insert(i, value);
            }
            ("replace", Some(Value::Array(a))) => {
                let i: usize = last.parse().unwrap();
                assert!(i < a.len(), "{op}: index out of range");
                a[i] = value;
            }
            ("remove", Some(Value::Array(a))) => {
                let i: usize = last.parse().unwrap();
                assert!(i < a.len(), "{op}: index out of range");
                a.remove(i);
            }
            _ => panic!("{op}: no such parent"),
        }
    }
    doc
}

/// For every differing stage of `report` (a `diff --json A B`), applying its
/// patch to A's file gives B's file exactly; the counts add up.
fn assert_patches_reproduce(ws: &Workspace, report: &Value, a: &str, b: &str) {
    for s in report["stages"].as_array().unwrap() {
        let t = s["artifact_type"].as_str().unwrap();
        if s["status"] != "different" {
            assert_eq!(s["patch"], Value::Null, "{t}");
            continue;
        }
        let patch = &s["patch"];
        let counts = &s["counts"];
        let ops = patch.as_array().unwrap();
        assert!(!ops.is_empty(), "{t}");
        let count = |op: &str| ops.iter().filter(|o| o["op"] == op).count();
        assert_eq!(counts["changed"], count("replace"), "{t}");
        assert_eq!(counts["added"], count("add"), "{t}");
        assert_eq!(counts["removed"], count("remove"), "{t}");
        let from = read_json(&artifact_path(ws, a, t));
        let to = read_json(&artifact_path(ws, b, t));
        assert_eq!(apply_patch(&from, patch), to, "{t}: patch does not give B");
    }
}

#[test]
fn two_runs_of_one_config_are_identical_and_exit_0() {
    let (ws, first) = example_run();
    let a = id(&first);
    ws.run_ok(&ws.path().join("project.json"), &["--run-id", "copy-1"]);

    let (code, report) = diff_json(&ws, &a, "copy-1");
    assert_eq!(code, 0);
    assert_eq!(report["identical"], true);
    assert_eq!(report["config_changes"], json!([]));
    assert_eq!(report["first_divergence"], Value::Null);
    assert_eq!(report["run_a"]["run_id"], a.as_str());
    assert_eq!(report["run_b"]["run_id"], "copy-1");
    let stages = report["stages"].as_array().unwrap();
    assert_eq!(
        stages
            .iter()
            .map(|s| &s["artifact_type"])
            .collect::<Vec<_>>(),
        TYPES.iter().collect::<Vec<_>>()
    );
    for s in stages {
        assert_eq!(s["status"], "same");
        assert_eq!(s["sha256_a"], s["sha256_b"]);
        assert_eq!(s["patch"], Value::Null);
    }

    let out = diff(&ws, &[&a[..6], "copy-1"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("config: same"), "{text}");
    assert!(
        text.contains("identical: every stage has the same output in both runs"),
        "{text}"
    );
    // A run against itself.
    assert_eq!(diff(&ws, &[&a, &a]).status.code(), Some(0));
}

#[test]
fn a_changed_seed_differs_from_stage_1_and_each_patch_turns_a_into_b() {
    let (ws, a, b) = two_runs(|c| c["seed"] = 1978.into());
    let (code, report) = diff_json(&ws, &a, &b);
    assert_eq!(code, 1);
    assert_eq!(report["identical"], false);
    assert_eq!(
        report["config_changes"],
        json!([{"op": "replace", "path": "/seed", "old": 1977, "new": 1978}])
    );
    assert_eq!(
        report["first_divergence"],
        json!({"stage": 1, "artifact_type": "Script"})
    );
    for s in report["stages"].as_array().unwrap() {
        assert_eq!(s["status"], "different", "{s}");
    }
    assert_patches_reproduce(&ws, &report, &a, &b);
    // And the other way round.
    let (_, back) = diff_json(&ws, &b, &a);
    assert_patches_reproduce(&ws, &back, &b, &a);
}

#[test]
fn more_scenes_patch_by_adding_and_fewer_by_removing() {
    let (ws, a, b) = two_runs(|c| c["scene_count"] = 5.into());
    let (code, report) = diff_json(&ws, &a, &b);
    assert_eq!(code, 1);
    assert_eq!(
        report["config_changes"],
        json!([{"op": "replace", "path": "/scene_count", "old": 3, "new": 5}])
    );
    assert_patches_reproduce(&ws, &report, &a, &b);
    let ops = |r: &Value, t: usize, op: &str| {
        r["stages"][t]["patch"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["op"] == op)
            .count()
    };
    // Two more scenes are added to the script; going back removes them.
    assert!(ops(&report, 0, "add") >= 2, "{}", report["stages"][0]);
    let (_, back) = diff_json(&ws, &b, &a);
    assert!(ops(&back, 0, "remove") >= 2, "{}", back["stages"][0]);
    assert_patches_reproduce(&ws, &back, &b, &a);
}

#[test]
fn config_paths_escape_slash_and_tilde_and_outputs_decide_the_exit_code() {
    // An unknown field changes the run id but no artifact: the outputs are
    // identical (exit 0) and the config difference is still reported.
    let (ws, a, b) = two_runs(|c| c["notes/v~1"] = "take two".into());
    let (code, report) = diff_json(&ws, &a, &b);
    assert_eq!(code, 0);
    assert_eq!(report["identical"], true);
    assert_eq!(
        report["config_changes"],
        json!([{"op": "add", "path": "/notes~1v~01", "old": null, "new": "take two"}])
    );
    let text = String::from_utf8(diff(&ws, &[&a, &b]).stdout).unwrap();
    assert!(text.contains("+ /notes~1v~01: \"take two\""), "{text}");
}

#[test]
fn text_output_caps_paths_per_artifact_and_names_the_first_divergence() {
    let (ws, a, b) = two_runs(|c| c["seed"] = 1978.into());
    let (_, report) = diff_json(&ws, &a, &b);
    let out = diff(&ws, &["--max-paths", "3", &a, &b]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("~ /seed: 1977 → 1978"), "{text}");
    assert!(
        text.contains("first divergence: stage 1 (Script, different)"),
        "{text}"
    );
    for s in report["stages"].as_array().unwrap() {
        let t = s["artifact_type"].as_str().unwrap();
        let total = s["patch"].as_array().unwrap().len();
        let heading = format!("{t} (stage {}): {total} paths differ", s["stage"]);
        let section: Vec<&str> = text
            .split(&heading)
            .nth(1)
            .unwrap_or_else(|| panic!("no `{heading}` in {text}"))
            .lines()
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        assert_eq!(section.len(), 4, "{t}: {section:?}");
        assert!(
            section[..3]
                .iter()
                .all(|l| ["  ~ /", "  + /", "  - /"].iter().any(|p| l.starts_with(p))),
            "{section:?}"
        );
        assert_eq!(
            section[3],
            format!(
                "  … {} more not shown (--max-paths N shows more, --full all)",
                total - 3
            )
        );
    }
}

#[test]
fn a_run_that_stopped_early_has_stages_only_in_the_other() {
    let (ws, first) = example_run();
    let a = id(&first);
    // A directory where stage 4's file goes: the run fails there.
    let blocked = ws.run_dir("lighthouse", "stopped").join("RenderPlan.json");
    std::fs::create_dir_all(blocked.join("x")).unwrap();
    let out = ws.run_output(&ws.path().join("project.json"), &["--run-id", "stopped"]);
    assert_eq!(out.status.code(), Some(5));

    let (code, report) = diff_json(&ws, &a, "stopped");
    assert_eq!(code, 1);
    let statuses: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["same", "same", "same", "only_in_a", "only_in_a"]);
    assert_eq!(report["stages"][3]["sha256_b"], Value::Null);
    assert_eq!(
        report["first_divergence"],
        json!({"stage": 4, "artifact_type": "RenderPlan"})
    );
    let (_, back) = diff_json(&ws, "stopped", &a);
    assert_eq!(back["stages"][4]["status"], "only_in_b");
}

#[test]
fn an_artifact_that_no_longer_matches_the_registry_is_an_error_naming_it() {
    let (ws, a, b) = two_runs(|c| c["seed"] = 1978.into());
    let shot_list = artifact_path(&ws, &b, "ShotList");

    // Edited.
    let mut edited = read_json(&shot_list);
    edited["shot_count"] = 999.into();
    std::fs::write(&shot_list, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
    let err = assert_usage_error(&diff(&ws, &["--json", &a, &b]));
    assert!(
        err.contains("ShotList.json") && err.contains("does not match the registry"),
        "{err}"
    );
    assert!(
        err.contains(&format!("orchestrator verify --run {b}")),
        "{err}"
    );

    // Replaced by a symlink to A's file: never followed.
    std::fs::remove_file(&shot_list).unwrap();
    std::os::unix::fs::symlink(artifact_path(&ws, &a, "ShotList"), &shot_list).unwrap();
    let err = assert_usage_error(&diff(&ws, &[&a, &b]));
    assert!(err.contains("not a regular file"), "{err}");

    // Removed.
    std::fs::remove_file(&shot_list).unwrap();
    let err = assert_usage_error(&diff(&ws, &[&a, &b]));
    assert!(
        err.contains("ShotList.json") && err.contains("missing"),
        "{err}"
    );

    // Putting the bytes back makes the runs comparable again.
    let out = ws.run_output(&ws.path().join("changed.json"), &[]);
    assert!(out.status.success());
    assert_eq!(diff(&ws, &[&a, &b]).status.code(), Some(1));
}

#[test]
fn unknown_runs_and_bad_flags_are_usage_errors() {
    let (ws, first) = example_run();
    let a = id(&first);
    let err = assert_usage_error(&diff(&ws, &[&a, "nosuchrun"]));
    assert!(err.contains("nosuchrun"), "{err}");
    assert_usage_error(&diff(&ws, &["Bad/Id", &a]));
    assert_eq!(diff(&ws, &[&a]).status.code(), Some(2));
    assert_eq!(
        diff(&ws, &["--max-paths", "0", &a, &a]).status.code(),
        Some(2)
    );
}

#[test]
fn a_default_diff_caps_each_patch_and_says_so_while_counting_everything() {
    let (ws, a, b) = two_runs(|c| c["scene_count"] = 6.into());
    let (_, full) = diff_json(&ws, &a, &b);
    let out = diff(&ws, &["--json", &a, &b]);
    assert_eq!(out.status.code(), Some(1));
    let capped: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut some_truncated = false;
    for (c, f) in capped["stages"]
        .as_array()
        .unwrap()
        .iter()
        .zip(full["stages"].as_array().unwrap())
    {
        if c["status"] != "different" {
            continue;
        }
        let all = f["patch"].as_array().unwrap();
        let shown = c["patch"].as_array().unwrap();
        assert_eq!(c["counts"], f["counts"], "counts cover every change");
        assert_eq!(shown.len(), all.len().min(20));
        assert_eq!(shown[..], all[..shown.len()], "the first changes, in order");
        assert_eq!(c["truncated"], all.len() > 20);
        assert_eq!(f["truncated"], false);
        some_truncated |= all.len() > 20;
    }
    assert!(
        some_truncated,
        "the example's diff has a stage over 20 paths"
    );
}

/// A config key holding ESC/BEL differs between two takes: `diff` names it
/// in a JSON pointer, which was printed raw and drove the terminal.
#[test]
fn terminal_escapes_in_a_differing_key_are_not_printed_raw() {
    let (ws, a, b) = two_runs(|c| {
        c["x\u{1b}[31mred\u{7}"] = json!(1);
    });
    let out = diff(&ws, &[&a, &b]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("/x\\u{1b}[31mred"), "{stdout}");
    assert!(
        !stdout.chars().any(|c| c.is_control() && c != '\n'),
        "raw control character in: {stdout:?}"
    );
}
