//! Crash safety, driven through the binary with the test-only failpoints of
//! `src/failpoint.rs` (this file builds only with `--features failpoints`,
//! which `make test` passes).
//!
//! For every point of the write path, a run is killed with SIGKILL (or made
//! to fail as a full disk would) and then: `verify` must find nothing lost
//! (only files that were written but never committed may be unregistered),
//! the next run must complete, and the final artifacts must be
//! byte-identical to an uninterrupted run's.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{TYPES, Workspace, example_config, sha256_file, statuses};
use serde_json::{Value, json};

/// What an uninterrupted run leaves: each artifact's bytes, and each meta
/// record without its timestamp (the one field that differs by design).
type Snapshot = BTreeMap<String, Vec<u8>>;

fn snapshot(ws: &Workspace, project: &str, run: &str) -> Snapshot {
    let dir = ws.run_dir(project, run);
    let mut out = BTreeMap::new();
    for ty in TYPES {
        let bytes = std::fs::read(dir.join(format!("{ty}.json"))).unwrap();
        let mut meta: Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{ty}.meta.json"))).unwrap())
                .unwrap();
        assert_eq!(meta["sha256"], sha256_file(&dir.join(format!("{ty}.json"))));
        meta.as_object_mut().unwrap().remove("created_at");
        out.insert(format!("{ty}.json"), bytes);
        out.insert(
            format!("{ty}.meta.json"),
            serde_json::to_vec(&meta).unwrap(),
        );
    }
    out
}

/// The binary, to be started in the background in `ws` (killed or paused
/// by the test), against the pass's registry.
fn background(ws: &Workspace) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("orchestrator"));
    cmd.current_dir(ws.path())
        .env_remove("ORCHESTRATOR_ARTIFACTS_DIR")
        .env_remove("ORCHESTRATOR_DB");
    if let Some(url) = ws.pg_url() {
        cmd.env("ORCHESTRATOR_DB", url);
    }
    cmd
}

fn run_with(ws: &Workspace, config: &Path, failpoints: &str) -> Output {
    ws.cmd()
        .env("ORCHESTRATOR_FAILPOINTS", failpoints)
        .args(["run", "--json", "--project"])
        .arg(config)
        .output()
        .unwrap()
}

/// `verify --json`: every problem must be a file the registry does not know
/// (written, never committed) or a run summary a kill caught between its
/// write and its registry record (it is derived, and the next run rewrites
/// it). Anything else means committed data was lost or damaged.
fn assert_nothing_lost(ws: &Workspace, context: &str) {
    let out = ws.cmd().args(["verify", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{context}: verify exit {:?}: {stderr}",
        out.status
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{context}: verify output not JSON ({e}): {stderr}"));
    for p in report["problems"].as_array().unwrap() {
        let summary = p["path"]
            .as_str()
            .is_some_and(|s| s.ends_with("/run_summary.json"));
        // A run directory made before the run's first commit is unknown
        // to the registry in the same way.
        assert!(
            p["kind"] == "unregistered" || p["kind"] == "unknown_run" || summary,
            "{context}: verify found {p}"
        );
    }
}

fn assert_clean(ws: &Workspace, context: &str) {
    let out = ws.cmd().args(["verify", "--json"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{context}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// No execution row is left `running` once a run has come and gone, and
/// every registered artifact's file hashes to what the registry says.
fn assert_registry_consistent(ws: &Workspace, context: &str) {
    let running =
        ws.registry_value("SELECT count(*) FROM stage_executions WHERE status = 'running'");
    assert_eq!(running, "0", "{context}: running rows left");
    for row in ws.registry_rows("SELECT path, sha256 FROM artifacts") {
        let (path, sha) = (&row[0], &row[1]);
        assert_eq!(
            &sha256_file(&ws.artifacts().join(path)),
            sha,
            "{context}: {path}"
        );
    }
}

fn reference() -> (Workspace, Snapshot, String) {
    let ws = Workspace::new();
    let config = ws.example();
    let summary = ws.run_ok(&config, &[]);
    let run_id = summary["run_id"].as_str().unwrap().to_string();
    let snap = snapshot(&ws, "lighthouse", &run_id);
    (ws, snap, run_id)
}

/// The failpoints a stage passes when it executes, in order.
const STAGE_POINTS: [&str; 5] = [
    "stage.before_data_write",
    "stage.after_data_write",
    "stage.after_meta_write",
    "stage.in_commit",
    "stage.after_commit",
];

/// Each kill case: the failpoint spec, and whether the stage it hits is
/// committed by the time the process dies.
fn kill_cases() -> Vec<String> {
    let mut cases = Vec::new();
    for point in STAGE_POINTS {
        for stage in 1..=5 {
            cases.push(format!("{point}=kill@{stage}"));
        }
    }
    // write_atomic runs 12 times: the opening summary, two files per stage,
    // the closing summary.
    for n in 1..=12 {
        cases.push(format!("write.before_rename=kill@{n}"));
    }
    for n in 1..=2 {
        cases.push(format!("summary.before_write=kill@{n}"));
        cases.push(format!("summary.after_write=kill@{n}"));
    }
    // A directory sync after each stage's files, and after the closing summary.
    for n in 1..=6 {
        cases.push(format!("dir.sync=kill@{n}"));
    }
    cases
}

#[test]
fn a_kill_at_every_point_of_the_write_path_loses_nothing_and_resumes_to_identical_bytes() {
    let (_ref_ws, expected, run_id) = reference();
    for case in kill_cases() {
        let ws = Workspace::new();
        let config = ws.example();
        let killed = run_with(&ws, &config, &case);
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "{case}: expected SIGKILL, got {:?}: {}",
            killed.status,
            String::from_utf8_lossy(&killed.stderr)
        );
        assert_nothing_lost(&ws, &case);
        // A killed run is never shown as still running.
        let listed = ws.runs_list(&[]);
        assert_eq!(listed.len(), 1, "{case}");
        let status = listed[0]["status"].as_str().unwrap();
        assert!(
            ["interrupted", "complete"].contains(&status),
            "{case}: listed as {status}"
        );

        let resumed = ws.run_ok(&config, &[]);
        assert_eq!(resumed["status"], "complete", "{case}");
        assert_clean(&ws, &case);
        assert_registry_consistent(&ws, &case);
        assert_eq!(snapshot(&ws, "lighthouse", &run_id), expected, "{case}");
        let summary: Value = serde_json::from_slice(
            &std::fs::read(ws.run_dir("lighthouse", &run_id).join("run_summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(summary["status"], "complete", "{case}");
        assert_eq!(summary["attempt"], 2, "{case}");
    }
}

#[test]
fn files_written_before_a_kill_at_the_commit_are_adopted_not_recomputed() {
    for point in ["stage.after_meta_write", "stage.in_commit"] {
        let ws = Workspace::new();
        let config = ws.example();
        let killed = run_with(&ws, &config, &format!("{point}=kill@3"));
        assert_eq!(killed.status.signal(), Some(9), "{point}");

        let resumed = ws.run_ok(&config, &[]);
        assert_eq!(
            statuses(&resumed),
            ["skipped", "skipped", "skipped", "executed", "executed"],
            "{point}"
        );
        let reason = resumed["stages"][2]["reason"].as_str().unwrap();
        assert!(reason.starts_with("adopted"), "{point}: {reason}");

        // The dead process's in-flight row is marked, not left running.
        let marked = ws.registry_rows(
            "SELECT stage, status FROM stage_executions WHERE attempt = 1 ORDER BY stage",
        );
        assert_eq!(
            marked,
            [["1", "executed"], ["2", "executed"], ["3", "interrupted"]],
            "{point}"
        );
    }
}

#[test]
fn adoption_refuses_leftovers_that_do_not_check_out() {
    // Killed after stage 2's files were written but before its commit; then
    // the leftover artifact is damaged in three different ways.
    type Damage = fn(&Path);
    let damage: [(&str, Damage); 3] = [
        ("bytes changed", |dir| {
            let path = dir.join("ShotList.json");
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.insert(1, b' ');
            std::fs::write(path, bytes).unwrap();
        }),
        ("meta names another parent", |dir| {
            let path = dir.join("ShotList.meta.json");
            let mut meta: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            meta["parents"][0]["sha256"] = json!("0".repeat(64));
            std::fs::write(path, serde_json::to_vec(&meta).unwrap()).unwrap();
        }),
        ("meta from another stage version", |dir| {
            let path = dir.join("ShotList.meta.json");
            let mut meta: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            meta["creation_params"]["stage_version"] = json!("0.0.1");
            std::fs::write(path, serde_json::to_vec(&meta).unwrap()).unwrap();
        }),
    ];
    let (_ref_ws, expected, run_id) = reference();
    for (what, damage) in damage {
        let ws = Workspace::new();
        let config = ws.example();
        let killed = run_with(&ws, &config, "stage.after_meta_write=kill@2");
        assert_eq!(killed.status.signal(), Some(9), "{what}");
        damage(&ws.run_dir("lighthouse", &run_id));

        let resumed = ws.run_ok(&config, &[]);
        assert_eq!(resumed["stages"][1]["status"], "executed", "{what}");
        assert_eq!(resumed["stages"][1]["reason"], "not run before", "{what}");
        assert_eq!(snapshot(&ws, "lighthouse", &run_id), expected, "{what}");
        assert_clean(&ws, what);
    }
}

#[test]
fn a_full_disk_or_io_error_at_any_point_fails_clearly_and_keeps_what_was_committed() {
    let (_ref_ws, expected, run_id) = reference();
    let mut cases = Vec::new();
    for point in STAGE_POINTS {
        cases.push((format!("{point}=enospc@3"), "No space left on device"));
        cases.push((format!("{point}=eio@4"), "Input/output error"));
    }
    cases.push((
        "write.before_rename=enospc@4".to_string(),
        "No space left on device",
    ));
    cases.push((
        "summary.before_write=enospc@2".to_string(),
        "No space left on device",
    ));
    cases.push((
        "summary.after_write=eio@2".to_string(),
        "Input/output error",
    ));
    for (case, cause) in cases {
        let ws = Workspace::new();
        let config = ws.example();
        let out = run_with(&ws, &config, &case);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{case}: {stderr}");
        assert!(stderr.starts_with("error: "), "{case}: {stderr}");
        assert!(stderr.contains(cause), "{case}: {stderr}");
        let registry = ws.pg_url().unwrap_or("registry.db");
        assert!(
            stderr.contains(&format!("lighthouse/{run_id}/")) || stderr.contains(registry),
            "{case}: the message names the file or the registry: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");

        assert_nothing_lost(&ws, &case);
        assert_registry_consistent(&ws, &case);
        // Nothing half-registered: each registered artifact has the
        // execution that made it, and the failed stage says why.
        let orphans = ws.registry_value(
            "SELECT count(*) FROM artifacts a WHERE NOT EXISTS (
                 SELECT 1 FROM stage_executions e
                 WHERE e.artifact_id = a.artifact_id AND e.status IN ('executed', 'skipped'))",
        );
        assert_eq!(orphans, "0", "{case}");
        if case.starts_with("stage.") {
            let last = ws.registry_rows(
                "SELECT status, error FROM stage_executions ORDER BY execution_id DESC LIMIT 1",
            );
            let (status, error) = (&last[0][0], &last[0][1]);
            assert_eq!(status, "failed", "{case}");
            assert!(error.contains(cause), "{case}: {error}");
            assert_eq!(ws.runs_list(&[])[0]["status"], "failed", "{case}");
        }

        let resumed = ws.run_ok(&config, &[]);
        assert_eq!(resumed["status"], "complete", "{case}");
        assert_clean(&ws, &case);
        assert_eq!(snapshot(&ws, "lighthouse", &run_id), expected, "{case}");
    }
}

/// splitmix64: a seeded generator, so a failing seed can be replayed with
/// `CRASH_SEED=<seed> cargo test --features failpoints --test crash`.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn random_sigkills_during_a_large_run_never_lose_data_and_end_byte_identical() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("CRASH_SEED={seed}");
    let mut rng = seed;
    let mut config = example_config();
    config["project_id"] = json!("epic");
    config["scene_count"] = json!(2000);

    let reference = Workspace::new();
    let ref_config = reference.write_config("project.json", &config);
    let started = std::time::Instant::now();
    let summary = reference.run_ok(&ref_config, &[]);
    // How long an uninterrupted run takes here: kills land within it.
    let full = started.elapsed();
    let run_id = summary["run_id"].as_str().unwrap().to_string();
    let expected = snapshot(&reference, "epic", &run_id);

    let ws = Workspace::new();
    let path = ws.write_config("project.json", &config);
    let mut kills = 0;
    for round in 0..8 {
        let mut child = background(&ws)
            .env_remove("ORCHESTRATOR_FAILPOINTS")
            .args(["run", "--json", "--project"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The first round lands in the first half of a full run's time, so
        // at least one kill happens even when load slows this machine
        // unevenly; later rounds may land anywhere (or after the end).
        let span = if round == 0 { 0.5 } else { 1.0 };
        let delay = full.mul_f64(span * (next(&mut rng) % 1000) as f64 / 1000.0);
        std::thread::sleep(delay.max(Duration::from_millis(5)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            kills += 1;
            // Killed before it created the registry: nothing was made yet.
            if !common::postgres_pass() && !ws.db().exists() {
                continue;
            }
            assert_nothing_lost(&ws, &format!("seed {seed}, round {round}"));
        } else {
            assert!(status.success(), "seed {seed}, round {round}: {status:?}");
        }
    }
    assert!(kills > 0, "seed {seed}: no round was killed mid-run");
    let done = ws.run_ok(&path, &[]);
    assert_eq!(done["status"], "complete", "seed {seed}");
    assert_clean(&ws, &format!("seed {seed}"));
    assert_registry_consistent(&ws, &format!("seed {seed}"));
    assert_eq!(
        snapshot(&ws, "epic", &run_id),
        expected,
        "seed {seed} ({kills} kills)"
    );
    // The registry file's own integrity survives every kill.
    if !common::postgres_pass() {
        let check: String = ws
            .sqlite()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "seed {seed}");
    }
}

/// Whether the registry records an artifact of `ty`.
fn registered(ws: &Workspace, ty: &str) -> bool {
    ws.registry_value(&format!(
        "SELECT count(*) FROM artifacts WHERE artifact_type = '{ty}'"
    )) != "0"
}

#[test]
fn a_force_that_keeps_every_file_still_syncs_their_directory_before_recording() {
    let ws = Workspace::new();
    let config = ws.example();
    ws.run_ok(&config, &[]);
    // Every stage reproduces its bytes and keeps its files; the names must
    // still be made durable (once) before the first stage is recorded.
    let out = ws
        .cmd()
        .env("ORCHESTRATOR_FAILPOINTS", "dir.sync=eio@1")
        .args(["run", "--json", "--force", "--project"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["stages"][0]["status"], "failed", "{report:#}");
    assert_nothing_lost(&ws, "dir.sync=eio@1 under --force");
}

#[test]
fn adopting_leftover_files_syncs_their_directory_before_recording_them() {
    let ws = Workspace::new();
    let config = ws.example();
    let killed = run_with(&ws, &config, "stage.after_meta_write=kill@3");
    assert_eq!(killed.status.signal(), Some(9));
    assert!(!registered(&ws, "AssetManifest"));
    // The next run adopts stage 3's files; its first directory sync fails.
    let out = run_with(&ws, &config, "dir.sync=eio@1");
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !registered(&ws, "AssetManifest"),
        "adopted without syncing the directory first"
    );
    let resumed = ws.run_ok(&config, &[]);
    assert_eq!(resumed["status"], "complete");
    assert_clean(&ws, "after the failed adoption");
}

#[test]
fn prov_credits_adopted_files_to_the_interrupted_execution_that_wrote_them() {
    let ws = Workspace::new();
    let config = ws.example();
    let killed = run_with(&ws, &config, "stage.after_meta_write=kill@3");
    assert_eq!(killed.status.signal(), Some(9));
    let resumed = ws.run_ok(&config, &[]);
    let run = resumed["run_id"].as_str().unwrap().to_string();
    let out = ws
        .cmd()
        .args(["export", "--format", "prov", &run])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = format!(
        "orch:artifact/{}",
        sha256_file(&ws.run_dir("lighthouse", &run).join("AssetManifest.json"))
    );
    let generation = doc["wasGeneratedBy"]
        .as_object()
        .unwrap()
        .values()
        .find(|g| g["prov:entity"] == manifest.as_str())
        .unwrap();
    let activity = generation["prov:activity"].as_str().unwrap();
    assert_eq!(
        activity,
        format!("orch:execution/lighthouse/{run}/attempt-1/stage-3")
    );
    let time = generation["prov:time"].as_str().unwrap();
    let start = doc["activity"][activity]["prov:startTime"]
        .as_str()
        .unwrap();
    assert!(start <= time, "made at {time}, started {start}");
}

#[test]
fn an_interrupted_run_counts_the_stages_it_executed_everywhere() {
    let ws = Workspace::new();
    let config = ws.example();
    let out = run_with(&ws, &config, "stage.after_commit=kill@3");
    assert_eq!(out.status.code(), None, "killed");
    let listed = ws.runs_list(&[]);
    assert_eq!(listed[0]["status"], "interrupted");
    assert_eq!(
        (&listed[0]["stages_executed"], &listed[0]["stages_skipped"]),
        (&Value::from(3), &Value::from(0)),
        "{}",
        listed[0]
    );
    let run_id = listed[0]["run_id"].as_str().unwrap();
    let out = ws
        .cmd()
        .args(["runs", "show", run_id, "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["stages_executed"], 3);
    let executed = shown["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "executed")
        .count();
    assert_eq!(executed, 3, "{shown}");
}

/// The failpoints of reindex's swap, in order (see `swap` in src/reindex).
const REINDEX_SWAP_POINTS: [&str; 4] = [
    "reindex.before_swap",
    "reindex.after_fold",
    "reindex.after_side_files",
    "reindex.after_rename",
];

/// Artifacts the registry holds for run `run_id` (opening it replays a
/// WAL beside it, as any command would).
fn artifacts_of(ws: &Workspace, run_id: &str) -> i64 {
    let db = ws.sqlite();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    db.query_row(
        "SELECT count(*) FROM artifacts WHERE run_id = ?1",
        [run_id],
        |r| r.get(0),
    )
    .unwrap()
}

fn reindex_files(ws: &Workspace) -> Vec<String> {
    common::dir_names(&ws.artifacts())
        .into_iter()
        .filter(|n| n.contains(".reindex-"))
        .collect()
}

#[test]
fn a_reindex_killed_at_any_step_of_the_swap_keeps_every_commit_and_the_next_cleans_up() {
    // The file swap, WAL and leftovers of a SQLite reindex; PostgreSQL
    // rebuilds in one transaction.
    sqlite_only!();
    for point in REINDEX_SWAP_POINTS {
        let ws = Workspace::new();
        let config = ws.example();
        ws.run_ok(&config, &[]);
        // A run killed after its third stage's commit: its rows are only
        // in the registry's WAL, which nothing has checkpointed.
        let killed = ws
            .cmd()
            .env("ORCHESTRATOR_FAILPOINTS", "stage.after_commit=kill@3")
            .args(["run", "--json", "--run-id", "take-b", "--project"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(killed.status.signal(), Some(9), "{point}");
        let mut wal = ws.db().into_os_string();
        wal.push("-wal");
        assert!(
            std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0),
            "{point}: the killed run's commits should be in the WAL"
        );

        let out = ws
            .cmd()
            .env("ORCHESTRATOR_FAILPOINTS", format!("{point}=kill"))
            .arg("reindex")
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The old registry with the killed run's commits, or the rebuilt
        // one (which has them from the files): never one without them.
        assert_eq!(artifacts_of(&ws, "take-b"), 3, "{point}");
        let stale = orchestrator::reindex::stale_leftovers(&ws.db());
        assert!(!stale.is_empty(), "{point}: {:?}", reindex_files(&ws));
        assert_eq!(stale.len(), reindex_files(&ws).len(), "{point}");

        // The next reindex removes what the killed one left, and says so.
        let again = ws.cmd().args(["reindex", "--json"]).output().unwrap();
        let report: Value = serde_json::from_slice(&again.stdout).unwrap();
        assert_eq!(again.status.code(), Some(0), "{point}: {report:#}");
        let removed: Vec<&str> = report["removed_leftovers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(removed.len(), stale.len(), "{point}: {removed:?}");
        assert!(reindex_files(&ws).is_empty(), "{point}");
        assert_eq!(artifacts_of(&ws, "take-b"), 3, "{point}");
        assert_nothing_lost(&ws, point);
    }
}

/// `verify --json`: exit code and `(kind, path)` of each problem.
fn verify_problems(ws: &Workspace) -> (Option<i32>, Vec<(String, String)>) {
    let out = ws.cmd().args(["verify", "--json"]).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify output not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let problems = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (out.status.code(), problems)
}

fn run_ids(ws: &Workspace) -> Vec<String> {
    let mut ids: Vec<String> = ws
        .runs_list(&[])
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Two runs of the example, `r1` and `r2`.
fn two_runs() -> Workspace {
    let ws = Workspace::new();
    let config = ws.example();
    for id in ["r1", "r2"] {
        ws.run_ok(&config, &["--run-id", id]);
    }
    ws
}

#[test]
fn a_gc_killed_at_any_point_is_reported_finished_by_the_next_gc_and_never_resurrected() {
    let cases = [
        "gc.after_mark=kill",
        "gc.file_removed=kill@1",
        "gc.file_removed=kill@6",
        "gc.before_rows=kill",
        "gc.after_rows=kill",
    ];
    for case in cases {
        for reindex_first in [false, true] {
            let context = format!("{case}, reindex first: {reindex_first}");
            let ws = two_runs();
            let killed = ws
                .cmd()
                .env("ORCHESTRATOR_FAILPOINTS", case)
                .args(["gc", "--run", "r1", "--yes"])
                .output()
                .unwrap();
            assert_eq!(killed.status.signal(), Some(9), "{context}");
            // Visible: one problem, naming the half-deleted run.
            assert_eq!(
                verify_problems(&ws),
                (
                    Some(1),
                    vec![(
                        "deletion_interrupted".to_string(),
                        "lighthouse/.deleting-r1".to_string()
                    )]
                ),
                "{context}"
            );
            if reindex_first {
                let out = ws.cmd().arg("reindex").output().unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(
                    matches!(out.status.code(), Some(0 | 1)),
                    "{context}: {stdout}"
                );
                // Never brought back as a run, complete or not.
                assert_eq!(run_ids(&ws), ["r2"], "{context}");
                // `--run` still reaches it, though the registry forgot it.
                let out = ws
                    .cmd()
                    .args(["gc", "--run", "r1", "--yes", "--json"])
                    .output()
                    .unwrap();
                let done: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
                    panic!("{context}: {}", String::from_utf8_lossy(&out.stderr))
                });
                assert_eq!(done["finished"][0]["run_id"], "r1", "{context}");
            } else {
                // Any gc finishes it, whatever it selects.
                let out = ws
                    .cmd()
                    .args(["gc", "--keep-last", "10", "--yes", "--json"])
                    .output()
                    .unwrap();
                let done: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
                    panic!("{context}: {}", String::from_utf8_lossy(&out.stderr))
                });
                assert_eq!(done["finished"][0]["run_id"], "r1", "{context}");
                assert_eq!(done["removed"], json!([]), "{context}");
            }
            assert_eq!(run_ids(&ws), ["r2"], "{context}");
            assert_eq!(
                common::dir_names(&ws.artifacts().join("lighthouse")),
                ["r2".to_string()].into(),
                "{context}"
            );
            assert_clean(&ws, &context);
            assert_registry_consistent(&ws, &context);
        }
    }
}

#[test]
fn verify_racing_gc_skips_the_removed_runs_with_a_note_instead_of_exit_3() {
    let ws = Workspace::new();
    let config = ws.example();
    for id in ["r1", "r2", "r3"] {
        ws.run_ok(&config, &["--run-id", id]);
    }
    // verify, paused after checking every run and before recording.
    let verifying = background(&ws)
        .env("ORCHESTRATOR_FAILPOINTS", "verify.before_record=pause")
        .args(["verify", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let paused = ws.path().join("failpoint-verify.before_record.paused");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !paused.exists() {
        assert!(std::time::Instant::now() < deadline, "verify never paused");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = ws
        .cmd()
        .args(["gc", "--keep-last", "1", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    std::fs::write(ws.path().join("failpoint-verify.before_record.resume"), b"").unwrap();
    let out = verifying.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["problems"], json!([]));
    let mut removed: Vec<&str> = report["runs_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    removed.sort();
    assert_eq!(removed, ["r1", "r2"]);
    assert_eq!(report["runs_checked"], 1);
    assert!(
        stderr.contains("run lighthouse/r1 was removed by `orchestrator gc` while verify ran"),
        "{stderr}"
    );
    // The run that stays had its result recorded.
    let recorded = ws.registry_value("SELECT count(*) FROM artifact_verifications");
    assert_eq!(recorded, "5");
}
