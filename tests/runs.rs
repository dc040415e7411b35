//! `orchestrator runs list` and `runs show`, driven through the binary.

mod common;

use common::{Workspace, example_config, example_run};
use serde_json::{Value, json};

fn list_json(ws: &Workspace, args: &[&str]) -> Vec<Value> {
    ws.runs_list(args)
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect()
}

/// The example plus a second project, run in that order.
fn two_projects() -> (Workspace, String, String) {
    let (ws, first) = example_run();
    let mut other = example_config();
    other["project_id"] = "other".into();
    let path = ws.write_config("other.json", &other);
    let second = ws.run_ok(&path, &[]);
    (
        ws,
        first["run_id"].as_str().unwrap().to_string(),
        second["run_id"].as_str().unwrap().to_string(),
    )
}

#[test]
fn list_json_has_the_documented_fields() {
    let (ws, summary) = example_run();
    let rows = list_json(&ws, &[]);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r["run_id"], summary["run_id"]);
    assert_eq!(r["project_id"], "lighthouse");
    assert_eq!(r["status"], "complete");
    assert_eq!(r["stages_executed"], 5);
    assert_eq!(r["stages_skipped"], 0);
    assert_eq!(r["started_at"], summary["started_at"]);
    assert_eq!(r["finished_at"], summary["finished_at"]);
    assert_eq!(r["config_hash"], summary["config_hash"]);

    // Re-running the same config updates the same run, not a new one.
    ws.run_ok(&ws.path().join("project.json"), &[]);
    let rows = list_json(&ws, &[]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["stages_executed"], 0);
    assert_eq!(rows[0]["stages_skipped"], 5);
    assert_eq!(rows[0]["attempt"], 2);
}

#[test]
fn list_table_shows_each_run_newest_first() {
    let (ws, first, second) = two_projects();
    let out = ws.cmd().args(["runs", "list"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text
        .lines()
        .find(|l| l.contains("RUN ID"))
        .expect("a header row");
    for col in ["PROJECT", "STATUS", "EXEC/SKIP", "CREATED", "DURATION"] {
        assert!(header.contains(col), "{col} missing from {header}");
    }
    let pos_first = text.find(&first).expect("first run listed");
    let pos_second = text.find(&second).expect("second run listed");
    assert!(pos_second < pos_first, "newest first:\n{text}");
    assert!(text.contains("5/0"), "{text}");
    assert_eq!(ids(&list_json(&ws, &[])), vec![second, first]);
}

#[test]
fn list_filters_by_project_status_since_and_limit() {
    let (ws, first, second) = two_projects();
    assert_eq!(
        ids(&list_json(&ws, &["--project", "other"])),
        vec![second.clone()]
    );
    assert_eq!(
        ids(&list_json(&ws, &["--project", "lighthouse"])),
        vec![first.clone()]
    );
    assert!(list_json(&ws, &["--project", "nope"]).is_empty());

    assert_eq!(list_json(&ws, &["--status", "complete"]).len(), 2);
    assert!(list_json(&ws, &["--status", "failed"]).is_empty());
    ws.registry_exec("UPDATE runs SET status = 'failed' WHERE project_id = 'other'");
    assert_eq!(
        ids(&list_json(&ws, &["--status", "failed"])),
        vec![second.clone()]
    );

    assert_eq!(list_json(&ws, &["--since", "2000-01-01"]).len(), 2);
    assert_eq!(list_json(&ws, &["--since", "1d"]).len(), 2);
    assert!(list_json(&ws, &["--since", "2999-01-01"]).is_empty());
    assert!(list_json(&ws, &["--since", "2999-01-01T00:00:00Z"]).is_empty());

    let out = ws
        .cmd()
        .args(["runs", "list", "--json", "--limit", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids(&rows), vec![second]);
    let note = String::from_utf8(out.stderr).unwrap();
    assert!(
        note.contains("1 of 2"),
        "expected a note about more runs: {note}"
    );
}

#[test]
fn bad_since_is_a_usage_error() {
    let (ws, _) = example_run();
    let out = ws
        .cmd()
        .args(["runs", "list", "--since", "yesterday"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: ") && err.contains("yesterday"),
        "{err}"
    );
}

#[test]
fn a_run_whose_process_died_is_interrupted() {
    let (ws, summary) = example_run();
    // What a crash mid-run leaves: the row says running, nobody holds the lock.
    ws.registry_exec("UPDATE runs SET status = 'running', finished_at = NULL");
    let rows = list_json(&ws, &[]);
    assert_eq!(rows[0]["status"], "interrupted");
    assert_eq!(
        ids(&list_json(&ws, &["--status", "interrupted"])),
        ids(&rows)
    );
    assert!(list_json(&ws, &["--status", "running"]).is_empty());

    // Resuming it completes it again.
    ws.run_ok(&ws.path().join("project.json"), &[]);
    let rows = list_json(&ws, &[]);
    assert_eq!(rows[0]["status"], "complete");
    assert_eq!(rows[0]["run_id"], summary["run_id"]);
}

#[test]
fn a_directory_the_registry_never_recorded_is_not_listed() {
    let (ws, summary) = example_run();
    let stray = ws.artifacts().join("ghost").join("0123456789abcdef");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::copy(
        ws.run_dir("lighthouse", summary["run_id"].as_str().unwrap())
            .join("run_summary.json"),
        stray.join("run_summary.json"),
    )
    .unwrap();
    let rows = list_json(&ws, &[]);
    assert_eq!(
        ids(&rows),
        vec![summary["run_id"].as_str().unwrap().to_string()]
    );
    assert!(list_json(&ws, &["--project", "ghost"]).is_empty());
}

#[test]
fn show_by_prefix_lists_five_stages() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let out = ws
        .cmd()
        .args(["runs", "show", &run_id[..5], "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["run_id"], run_id);
    assert_eq!(shown["config_hash"], summary["config_hash"]);
    let stages = shown["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 5);
    for (i, (s, expected)) in stages
        .iter()
        .zip(summary["stages"].as_array().unwrap())
        .enumerate()
    {
        assert_eq!(s["stage"], i + 1);
        assert_eq!(s["name"], expected["name"]);
        assert_eq!(s["status"], "executed");
        assert_eq!(s["reason"], expected["reason"]);
        assert_eq!(s["sha256"], expected["sha256"]);
    }

    let text = ws.cmd().args(["runs", "show", run_id]).output().unwrap();
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains(summary["config_hash"].as_str().unwrap()),
        "{text}"
    );
    for s in summary["stages"].as_array().unwrap() {
        assert!(text.contains(s["name"].as_str().unwrap()), "{text}");
        assert!(
            text.contains(&s["sha256"].as_str().unwrap()[..12]),
            "{text}"
        );
    }
}

#[test]
fn show_with_an_ambiguous_prefix_lists_the_candidates() {
    let ws = Workspace::new();
    let config = ws.example();
    ws.run_ok(&config, &["--run-id", "take-1"]);
    ws.run_ok(&config, &["--run-id", "take-2"]);
    let out = ws.cmd().args(["runs", "show", "take"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("ambiguous") && err.contains("take-1") && err.contains("take-2"),
        "{err}"
    );

    // A full id that is also a prefix of another is not ambiguous.
    ws.run_ok(&config, &["--run-id", "take-10"]);
    let out = ws
        .cmd()
        .args(["runs", "show", "take-1", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["run_id"], "take-1");
}

#[test]
fn show_an_unknown_run_exits_2() {
    let (ws, _) = example_run();
    for bad in ["zzzz", "../etc"] {
        let out = ws.cmd().args(["runs", "show", bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("error: ") && err.contains(bad), "{err}");
    }
}

#[test]
fn querying_without_a_registry_says_so_and_creates_nothing() {
    // A missing registry is a missing file; a PostgreSQL one exists once
    // migrated (an unmigrated database is refused with exit 3).
    sqlite_only!();
    let ws = Workspace::new();
    for args in [&["runs", "list"][..], &["runs", "show", "abc"], &["verify"]] {
        let out = ws.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("no registry at") && err.contains("hint:"),
            "{err}"
        );
    }
    assert!(!ws.artifacts().exists());
}

#[test]
fn a_file_that_is_not_a_database_exits_3() {
    sqlite_only!();
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.artifacts()).unwrap();
    std::fs::write(
        ws.db(),
        "this is not sqlite, just text that is long enough to look like a header",
    )
    .unwrap();
    let out = ws.cmd().args(["runs", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: ") && err.contains("registry.db"),
        "{err}"
    );
    // And `run` refuses to touch it too, writing no artifacts.
    let config = ws.example();
    let out = ws
        .cmd()
        .args(["run", "--project"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(!ws.artifacts().join("lighthouse").exists());
}

#[test]
fn a_registry_from_a_newer_version_exits_3() {
    let (ws, _) = example_run();
    ws.registry_exec(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
         VALUES (99, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
    );
    let out = ws.cmd().args(["runs", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("newer"), "{err}");
}

#[test]
fn runs_list_show_puts_config_values_beside_each_take() {
    let ws = Workspace::new();
    let config = ws.example();
    ws.run_ok(&config, &["--run-id", "take-1"]);
    ws.run_ok(
        &config,
        &[
            "--run-id",
            "take-2",
            "--set",
            "seed=1978",
            "--set",
            "render.fps=\"24000/1001\"",
        ],
    );
    let rows = ws.runs_list(&["--show", "seed,render.fps,render.nope"]);
    let by_id = |id: &str| rows.iter().find(|r| r["run_id"] == id).unwrap().clone();
    assert_eq!(
        by_id("take-1")["config"],
        json!({"seed": 1977, "render.fps": 24, "render.nope": null})
    );
    assert_eq!(
        by_id("take-2")["config"],
        json!({"seed": 1978, "render.fps": "24000/1001", "render.nope": null})
    );
    // The table has one column per key, in the order given.
    let out = ws
        .cmd()
        .args(["runs", "list", "--show", "seed,render.fps"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[header.len() - 2..], ["SEED", "RENDER.FPS"]);
    let take2: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("take-2"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(take2[take2.len() - 2..], ["1978", "24000/1001"]);
    // Without --show the JSON has no `config` member.
    assert!(ws.runs_list(&[])[0].get("config").is_none());
}

#[test]
fn a_no_op_rerun_of_an_old_take_keeps_its_place_in_history() {
    let ws = Workspace::new();
    let config = ws.example();
    for id in ["take-1", "take-2", "take-3"] {
        ws.run_ok(&config, &["--run-id", id]);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Re-running the oldest take with everything up to date…
    ws.run_ok(&config, &["--run-id", "take-1"]);
    // …leaves the listing in creation order,
    assert_eq!(ids(&list_json(&ws, &[])), ["take-3", "take-2", "take-1"]);
    // the newest run is still the newest for lineage,
    let out = ws
        .cmd()
        .args(["lineage", "RenderOutput", "--json"])
        .output()
        .unwrap();
    let graph: Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = graph["root"].as_str().unwrap();
    let node = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["sha256"] == root)
        .unwrap();
    assert_eq!(node["run_id"], "take-3");
    // gc --keep-last 1 offers the two older takes, not the newer ones,
    let out = ws
        .cmd()
        .args(["gc", "--keep-last", "1", "--json"])
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let doomed: Vec<&str> = plan["remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(doomed, ["take-2", "take-1"]);
    // and `runs show` lists both attempts with what each did.
    let out = ws
        .cmd()
        .args(["runs", "show", "take-1", "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["attempt"], 2);
    let attempts: Vec<(u64, u64, u64)> = shown["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap(),
                a["executed"].as_u64().unwrap(),
                a["skipped"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(attempts, [(1, 5, 0), (2, 0, 5)]);
    assert!(shown["created_at"].as_str().unwrap() < shown["started_at"].as_str().unwrap());
}

#[test]
fn each_run_shows_the_title_of_the_config_it_ran() {
    let ws = Workspace::new();
    let config = ws.example();
    ws.run_ok(&config, &["--run-id", "original"]);
    let mut cut = example_config();
    cut["title"] = json!("Director's Cut");
    let cut = ws.write_config("cut.json", &cut);
    ws.run_ok(&cut, &["--run-id", "directors-cut"]);
    let rows = list_json(&ws, &[]);
    let title_of = |id: &str| rows.iter().find(|r| r["run_id"] == id).unwrap()["title"].clone();
    assert_eq!(title_of("original"), "The Last Keeper of Gull Point");
    assert_eq!(title_of("directors-cut"), "Director's Cut");
    let out = ws
        .cmd()
        .args(["runs", "show", "original"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("run original  (lighthouse: The Last Keeper of Gull Point)"),
        "{text}"
    );
}
