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
    let rows = ws.registry_value(
        "SELECT (SELECT count(*) FROM artifacts WHERE run_id IN ('r1', 'r2'))
              + (SELECT count(*) FROM stage_executions WHERE run_id IN ('r1', 'r2'))
              + (SELECT count(*) FROM run_summaries WHERE run_id IN ('r1', 'r2'))",
    );
    assert_eq!(rows, "0");
    ws.assert_verify_clean();
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
    ws.assert_verify_clean();
}

#[test]
fn a_run_whose_artifacts_a_kept_run_uses_is_never_removed() {
    let ws = workspace();
    // r3's RenderOutput made from r1's RenderPlan, as a stage that shares
    // upstream artifacts across runs would record it.
    ws.registry_exec(
        "INSERT INTO artifact_edges (child_id, parent_id, parent_sha256)
         SELECT c.artifact_id, p.artifact_id, p.sha256 FROM artifacts c, artifacts p
         WHERE c.run_id = 'r3' AND c.artifact_type = 'RenderOutput'
           AND p.run_id = 'r1' AND p.artifact_type = 'RenderPlan';",
    );
    let plan = gc(&ws, &["--keep-last", "1"]);
    assert_eq!(ids(&plan["remove"]), ["lighthouse/r2"]);
    assert_eq!(ids(&plan["kept"]), ["lighthouse/r1"]);
    let reason = plan["kept"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("lighthouse/r3"), "{reason}");

    // Transitively: r1 (kept) made from r2 keeps r2 as well.
    ws.registry_exec(
        "INSERT INTO artifact_edges (child_id, parent_id, parent_sha256)
         SELECT c.artifact_id, p.artifact_id, p.sha256 FROM artifacts c, artifacts p
         WHERE c.run_id = 'r1' AND c.artifact_type = 'ShotList'
           AND p.run_id = 'r2' AND p.artifact_type = 'Script';",
    );
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
    ws.assert_verify_clean();
}

#[test]
fn a_live_run_is_kept() {
    // Held by lock files. On PostgreSQL a live run holds the registry-wide
    // lock shared, so `gc --yes` waits for it instead (tests/postgres.rs).
    sqlite_only!();
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

/// Entries of the artifacts tree below a project, as `<run dir>/<name>`.
fn tree(ws: &Workspace, project: &str) -> Vec<String> {
    let mut out = Vec::new();
    let dir = ws.artifacts().join(project);
    let Ok(runs) = std::fs::read_dir(&dir) else {
        return out;
    };
    for run in runs {
        let run = run.unwrap();
        out.push(run.file_name().to_string_lossy().into_owned());
        if run.file_type().unwrap().is_dir() {
            for f in std::fs::read_dir(run.path()).unwrap() {
                out.push(format!(
                    "{}/{}",
                    run.file_name().to_string_lossy(),
                    f.unwrap().file_name().to_string_lossy()
                ));
            }
        }
    }
    out.sort();
    out
}

fn verify_json(ws: &Workspace) -> (Option<i32>, Value) {
    let out = ws.cmd().args(["verify", "--json"]).output().unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify output not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

/// `(kind, path)` of each problem of a verify report.
fn problems(report: &Value) -> Vec<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn gc_never_removes_a_file_it_did_not_write_and_says_what_it_left() {
    let ws = workspace();
    let run_dir = ws.run_dir("lighthouse", "r2");
    std::fs::write(run_dir.join("notes.txt"), b"my notes").unwrap();
    std::fs::create_dir(run_dir.join("stills")).unwrap();
    std::fs::write(run_dir.join("stills/frame.png"), b"png").unwrap();
    // A temp file an interrupted write left: the tool's own.
    std::fs::write(run_dir.join(".tmp-abc123"), b"half").unwrap();

    let out = ws
        .cmd()
        .args(["gc", "--run", "r2", "--yes", "--json"])
        .output()
        .unwrap();
    let done = summary_of(&out);
    assert_eq!(ids(&done["removed"]), ["lighthouse/r2"]);
    let left: Vec<&str> = done["left"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["lighthouse/r2/notes.txt", "lighthouse/r2/stills"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lighthouse/r2/notes.txt"), "{stderr}");
    // The user's files stay where they were, and only they.
    assert_eq!(
        std::fs::read(run_dir.join("notes.txt")).unwrap(),
        b"my notes"
    );
    assert!(run_dir.join("stills/frame.png").exists());
    let r2: Vec<String> = tree(&ws, "lighthouse")
        .into_iter()
        .filter(|e| e.starts_with("r2"))
        .collect();
    assert_eq!(r2, ["r2", "r2/notes.txt", "r2/stills"]);
    assert_eq!(listed(&ws), ["harbor/h1", "lighthouse/r1", "lighthouse/r3"]);
    // What stays is a directory the registry no longer knows: reported.
    let (code, report) = verify_json(&ws);
    assert_eq!(code, Some(1));
    assert_eq!(
        problems(&report),
        [("unknown_run".to_string(), "lighthouse/r2".to_string())]
    );
}

#[test]
fn a_registry_inside_a_run_directory_survives_gc() {
    // A registry file among a run's files; PostgreSQL's is not a file.
    sqlite_only!();
    let ws = workspace();
    // The registry moved (closed, so whole) into a run directory.
    let inside = ws.run_dir("lighthouse", "r1").join("registry.db");
    std::fs::rename(ws.db(), &inside).unwrap();
    let db = inside.to_str().unwrap();
    let out = ws
        .cmd()
        .args(["gc", "--db", db, "--keep-last", "0", "--yes", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Refused outright (exit 2) or done without touching the registry.
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "{:?}: {stderr}",
        out.status
    );
    let check: String = rusqlite::Connection::open(&inside)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    if out.status.code() == Some(0) {
        let done: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(ids(&done["kept"]), ["lighthouse/r1"]);
        let reason = done["kept"][0]["reason"].as_str().unwrap();
        assert!(reason.contains("registry"), "{reason}");
        assert!(ws.run_dir("lighthouse", "r1").join("Script.json").exists());
        assert!(!ws.run_dir("lighthouse", "r2").exists());
    }
}

/// Makes a file undeletable (even by root) while it lives, and deletable
/// again when dropped, so a failing test leaves nothing behind.
struct Immutable(std::path::PathBuf);

impl Immutable {
    /// `None` when this system cannot (no `chattr`, or a file system
    /// without the attribute).
    fn new(path: std::path::PathBuf) -> Option<Self> {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&path)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Immutable(path))
    }

    fn release(&self, now_at: &std::path::Path) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(now_at)
            .output();
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        self.release(&self.0.clone());
    }
}

#[test]
fn an_undeletable_file_leaves_the_run_marked_reported_and_finished_by_a_later_gc() {
    let ws = workspace();
    let file = ws.run_dir("lighthouse", "r1").join("ShotList.json");
    // Where the file is once gc has marked the run for deletion.
    let marked = ws.artifacts().join("lighthouse/.deleting-r1/ShotList.json");
    let guard = Immutable::new(file.clone());
    let _marked_guard;
    let mode_guard;
    if guard.is_none() {
        // Without chattr, a read-only directory does it for anyone but root.
        assert_ne!(
            unsafe { libc::geteuid() },
            0,
            "chattr is needed to make a file undeletable for root"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            ws.run_dir("lighthouse", "r1"),
            std::fs::Permissions::from_mode(0o555),
        )
        .unwrap();
        mode_guard = true;
    } else {
        _marked_guard = Immutable(marked.clone());
        mode_guard = false;
    }

    let out = ws
        .cmd()
        .args(["gc", "--run", "r1", "--yes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("ShotList.json"), "{stderr}");
    assert!(stderr.contains("marked as being deleted"), "{stderr}");
    // Visible: verify names the half-deleted run, and only that.
    let (code, report) = verify_json(&ws);
    assert_eq!(code, Some(1));
    assert_eq!(
        problems(&report),
        [(
            "deletion_interrupted".to_string(),
            "lighthouse/.deleting-r1".to_string()
        )]
    );

    // Once the file can go, any later gc finishes the deletion.
    if mode_guard {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            ws.artifacts().join("lighthouse/.deleting-r1"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    } else if let Some(g) = &guard {
        g.release(&marked);
    }
    let done = gc(&ws, &["--keep-last", "10", "--yes"]);
    assert_eq!(ids(&done["finished"]), ["lighthouse/r1"]);
    assert_eq!(done["removed"], serde_json::json!([]));
    assert_eq!(listed(&ws), ["harbor/h1", "lighthouse/r2", "lighthouse/r3"]);
    assert_eq!(
        tree(&ws, "lighthouse")
            .iter()
            .filter(|e| e.contains("r1"))
            .count(),
        0
    );
    ws.assert_verify_clean();
}

fn free_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}

/// `run --project <config> --run-id <id>` into `disk/artifacts`, which
/// must succeed.
fn run_on_disk(ws: &Workspace, config: &std::path::Path, id: &str) {
    let out = ws
        .cmd()
        .args(["--artifacts-dir", "disk/artifacts", "run", "--project"])
        .arg(config)
        .args(["--run-id", id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gc_frees_space_on_a_full_disk() {
    let ws = Workspace::new();
    let disk = ws.path().join("disk");
    let Some(_mount) = common::Mount::tmpfs(&disk, "2m", "gc_frees_space_on_a_full_disk") else {
        return;
    };
    let mut config = common::example_config();
    config["scene_count"] = 60.into();
    let config = ws.write_config("big.json", &config);
    let small = ws.example();
    let on_disk = |cmd: &mut assert_cmd::Command| {
        cmd.args(["--artifacts-dir", "disk/artifacts"]);
    };
    for (config, id) in [(&config, "big"), (&small, "small")] {
        run_on_disk(&ws, config, id);
    }
    common::fill_disk(&disk.join("filler"));
    assert_eq!(free_bytes(&disk), 0);

    let mut cmd = ws.cmd();
    on_disk(&mut cmd);
    let out = cmd
        .args(["gc", "--run", "big", "--yes", "--json"])
        .output()
        .unwrap();
    let done = summary_of(&out);
    assert_eq!(ids(&done["removed"]), ["lighthouse/big"]);
    assert!(free_bytes(&disk) > 256 * 1024, "{}", free_bytes(&disk));
    assert!(!disk.join("artifacts/lighthouse/big").exists());
    assert!(!disk.join("artifacts/lighthouse/.deleting-big").exists());
    let mut cmd = ws.cmd();
    on_disk(&mut cmd);
    let out = cmd.args(["runs", "list", "--json"]).output().unwrap();
    let runs = summary_of(&out);
    assert_eq!(ids(&runs), ["lighthouse/small"]);
}

// Kills a gc with a failpoint, so it needs the test build's feature.
#[cfg(feature = "failpoints")]
#[test]
fn a_run_remade_after_a_killed_gc_is_verified_and_not_pointed_at_gc_run() {
    let ws = workspace();
    let killed = ws
        .cmd()
        .env("ORCHESTRATOR_FAILPOINTS", "gc.after_mark=kill")
        .args(["gc", "--run", "r1", "--yes"])
        .output()
        .unwrap();
    assert_eq!(killed.status.code(), None, "killed");
    // The same id run again before any gc finished the deletion: a fresh
    // `lighthouse/r1` beside the earlier take's `lighthouse/.deleting-r1`.
    ws.run_ok(&ws.example(), &["--run-id", "r1"]);
    assert!(ws.artifacts().join("lighthouse/.deleting-r1").is_dir());

    let (code, report) = verify_json(&ws);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(
        problems(&report),
        [(
            "deletion_interrupted".to_string(),
            "lighthouse/.deleting-r1".to_string()
        )]
    );
    // The new run was checked, not taken for the half-deleted one.
    let r1 = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "r1")
        .unwrap();
    assert_eq!(
        (&r1["artifacts"], &r1["artifacts_ok"]),
        (&5.into(), &5.into())
    );
    // `gc --run r1 --yes` would delete the new run: not what verify says.
    let found = report["problems"][0]["found"].as_str().unwrap();
    assert!(!found.contains("gc --run r1 --yes"), "{found}");
    assert!(
        found.contains("gc --older-than 1970-01-01 --yes"),
        "{found}"
    );

    // Doing what it says finishes the old take and keeps the new one.
    let done = gc(&ws, &["--older-than", "1970-01-01", "--yes"]);
    assert_eq!(ids(&done["finished"]), ["lighthouse/r1"], "{done:#}");
    assert!(ids(&done["removed"]).is_empty(), "{done:#}");
    assert!(!ws.artifacts().join("lighthouse/.deleting-r1").exists());
    assert!(ws.run_dir("lighthouse", "r1").join("Script.json").is_file());
    assert!(listed(&ws).contains(&"lighthouse/r1".to_string()));
    ws.assert_verify_clean();
}

// Stops a gc with a failpoint, so it needs the test build's feature.
#[cfg(feature = "failpoints")]
#[test]
fn a_stopped_gc_suggests_a_gc_command_that_runs_and_finishes_it() {
    let ws = workspace();
    let stopped = ws
        .cmd()
        .env("ORCHESTRATOR_FAILPOINTS", "gc.before_rows=enospc")
        .args(["gc", "--run", "r1", "--yes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&stopped.stderr).into_owned();
    assert_eq!(stopped.status.code(), Some(5), "{stderr}");
    assert!(ws.artifacts().join("lighthouse/.deleting-r1").is_dir());
    // Every `orchestrator gc …` the message names must be a command that
    // works (plain `gc --yes` is refused: gc needs a selector).
    let suggested: Vec<&str> = stderr
        .split('`')
        .filter(|s| s.starts_with("orchestrator gc"))
        .collect();
    assert!(!suggested.is_empty(), "{stderr}");
    for command in suggested {
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let out = ws.cmd().args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!ws.artifacts().join("lighthouse/.deleting-r1").exists());
    assert_eq!(listed(&ws), ["harbor/h1", "lighthouse/r2", "lighthouse/r3"]);
    ws.assert_verify_clean();
}

#[test]
fn gc_on_a_full_disk_removes_every_selected_run_not_just_the_first() {
    let ws = Workspace::new();
    let disk = ws.path().join("disk");
    let Some(_mount) = common::Mount::tmpfs(
        &disk,
        "2m",
        "gc_on_a_full_disk_removes_every_selected_run_not_just_the_first",
    ) else {
        return;
    };
    let config = ws.example();
    let on_disk = |cmd: &mut assert_cmd::Command| {
        cmd.args(["--artifacts-dir", "disk/artifacts"]);
    };
    // Small runs: deleting the first one's files frees less than SQLite's
    // log takes to delete its rows, so its rows wait for the others' space.
    for id in ["r1", "r2", "r3", "r4"] {
        run_on_disk(&ws, &config, id);
    }
    common::fill_disk(&disk.join("filler"));
    assert_eq!(free_bytes(&disk), 0);

    let mut cmd = ws.cmd();
    on_disk(&mut cmd);
    let out = cmd
        .args(["gc", "--keep-last", "0", "--yes", "--json"])
        .output()
        .unwrap();
    let done = summary_of(&out);
    assert_eq!(
        ids(&done["removed"]),
        [
            "lighthouse/r1",
            "lighthouse/r2",
            "lighthouse/r3",
            "lighthouse/r4"
        ]
    );
    assert!(!disk.join("artifacts/lighthouse").exists());
    let mut cmd = ws.cmd();
    on_disk(&mut cmd);
    let out = cmd.args(["runs", "list", "--json"]).output().unwrap();
    assert_eq!(summary_of(&out), Value::Array(vec![]));
}

// Kills a gc with a failpoint, so it needs the test build's feature.
#[cfg(feature = "failpoints")]
#[test]
fn verify_of_a_project_whose_only_run_a_killed_gc_left_reports_it() {
    let ws = Workspace::new();
    ws.run_ok(&ws.example(), &["--run-id", "r1"]);
    let killed = ws
        .cmd()
        .env("ORCHESTRATOR_FAILPOINTS", "gc.after_rows=kill")
        .args(["gc", "--run", "r1", "--yes"])
        .output()
        .unwrap();
    assert_eq!(killed.status.code(), None, "killed");
    assert!(listed(&ws).is_empty());
    // The project's directory holds the half-deleted run: verifying that
    // project must say so, not that it has nothing to verify (exit 2).
    let out = ws
        .cmd()
        .args(["verify", "--project", "lighthouse", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(
        problems(&report),
        [(
            "deletion_interrupted".to_string(),
            "lighthouse/.deleting-r1".to_string()
        )]
    );
    // A project the tree does not hold either is still a usage error.
    let out = ws
        .cmd()
        .args(["verify", "--project", "lighthous"])
        .output()
        .unwrap();
    common::assert_usage_error(&out);
}
