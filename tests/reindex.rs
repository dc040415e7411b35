//! `orchestrator reindex`, driven through the binary: the registry deleted
//! and rebuilt gives the same answers, and a damaged tree is reported, not
//! guessed at.
//!
//! What reindex indexes is checked on both backends. How it replaces a
//! SQLite file (the copy beside it, waiting for the file's users, the swap,
//! the stale WAL) is SQLite's: PostgreSQL's reindex rebuilds in one
//! transaction under the registry-wide lock, and those tests are
//! `sqlite_only!`.

mod common;
mod reindex_fixtures;

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use common::{TYPES, Workspace, example_run, statuses};
use reindex_fixtures::{answers, failed_run, project, registry_rows};
use serde_json::Value;

struct Reindexed {
    code: i32,
    report: Value,
}

fn reindex(ws: &Workspace) -> Reindexed {
    let out = ws.cmd().args(["reindex", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    Reindexed {
        code: out.status.code().unwrap(),
        report: serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}{stderr}",
                String::from_utf8_lossy(&out.stdout)
            )
        }),
    }
}

/// `(kind, path)` of each problem (or note) of a report.
/// The registry's name as reindex prints it.
fn registry_name(ws: &Workspace) -> &str {
    ws.pg_url().unwrap_or("artifacts/registry.db")
}

/// What must not change when reindex keeps the registry as it was: a
/// SQLite file's bytes, a PostgreSQL registry's rows.
fn registry_state(ws: &Workspace) -> Vec<String> {
    if common::postgres_pass() {
        return registry_rows(ws);
    }
    vec![format!("{:?}", std::fs::read(ws.db()).unwrap())]
}

/// `artifact_type` of every indexed artifact, by stage.
fn indexed_types(ws: &Workspace) -> Vec<String> {
    ws.registry_rows("SELECT artifact_type FROM artifacts ORDER BY stage")
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
}

fn findings(report: &Value, list: &str) -> Vec<(String, String)> {
    report[list]
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

/// Take the registry away: the SQLite file and its logs; every row of a
/// PostgreSQL registry (as a freshly migrated database has none).
fn delete_registry(ws: &Workspace) {
    if common::postgres_pass() {
        ws.registry_exec(
            "DELETE FROM artifact_verifications; DELETE FROM artifact_edges;
             DELETE FROM stage_executions; DELETE FROM run_summaries; DELETE FROM artifacts;
             DELETE FROM runs; DELETE FROM projects; DELETE FROM run_counts;",
        );
        return;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut path = ws.db().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn deleting_the_registry_and_reindexing_gives_the_same_runs_and_lineage() {
    let ws = Workspace::new();
    let lighthouse = ws.example();
    ws.run_ok(&lighthouse, &[]);
    // The first run of this project ends at attempt 2.
    let resumed = ws.run_ok(&lighthouse, &[]);
    assert_eq!(resumed["attempt"], 2);
    ws.run_ok(&lighthouse, &["--run-id", "my-run-001"]);
    let other = project(&ws, "other", 7);
    ws.run_ok(&other, &[]);
    let forced = ws.run_ok(&other, &["--force"]);
    assert_eq!(statuses(&forced), vec!["executed"; 5]);
    ws.run_ok(&project(&ws, "third", 99), &[]);
    failed_run(&ws, &project(&ws, "broken", 3));

    let runs: Vec<(String, String)> = ws
        .runs_list(&[])
        .iter()
        .map(|r| {
            (
                r["project_id"].as_str().unwrap().to_string(),
                r["run_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(runs.len(), 5);
    let before = answers(&ws, &runs);
    let rows_before = registry_rows(&ws);

    delete_registry(&ws);
    let r = reindex(&ws);
    assert_eq!(r.code, 0, "{:#}", r.report);
    assert_eq!(r.report["ok"], true);
    assert!(findings(&r.report, "problems").is_empty());
    assert_eq!(r.report["projects"], 4);
    assert_eq!(r.report["runs"], 5);
    // Four complete runs and the Script of the failed one.
    assert_eq!(r.report["artifacts"], 4 * 5 + 1);
    assert_eq!(r.report["edges"], 4 * 7);
    // Five stages of each complete run; Script and the failed ShotList.
    assert_eq!(r.report["stage_executions"], 4 * 5 + 2);

    let after = answers(&ws, &runs);
    assert_eq!(before.len(), after.len());
    for ((command, was), (_, now)) in before.iter().zip(&after) {
        assert_eq!(was, now, "`{command}` answers differently after reindex");
    }
    let rows_after = registry_rows(&ws);
    assert_eq!(rows_before.len(), rows_after.len());
    for (was, now) in rows_before.iter().zip(&rows_after) {
        assert_eq!(was, now);
    }

    // The rebuilt registry is one resume trusts, and verify finds it whole.
    assert_eq!(statuses(&ws.run_ok(&lighthouse, &[])), vec!["skipped"; 5]);
    ws.assert_verify_clean();
}

#[test]
fn a_tampered_artifact_is_reported_and_left_out_with_what_was_made_from_it() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let dir = ws.run_dir("lighthouse", run_id);
    let mut text = std::fs::read_to_string(dir.join("RenderPlan.json")).unwrap();
    text.push(' ');
    std::fs::write(dir.join("RenderPlan.json"), text).unwrap();

    // A dry run reports the same and keeps the registry as it was.
    let registry_before = registry_state(&ws);
    let dry = ws
        .cmd()
        .args(["reindex", "--dry-run", "--json"])
        .output()
        .unwrap();
    assert_eq!(dry.status.code(), Some(1));
    let dry: Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(findings(&dry, "problems").len(), 2);
    assert_eq!(registry_state(&ws), registry_before);
    assert!(
        !common::dir_names(&ws.artifacts())
            .iter()
            .any(|n| n.contains("reindex")),
        "the discarded registry is removed"
    );

    let r = reindex(&ws);
    assert_eq!(r.code, 1, "{:#}", r.report);
    assert_eq!(r.report["ok"], false);
    let rel = |f: &str| format!("lighthouse/{run_id}/{f}");
    assert_eq!(
        findings(&r.report, "problems"),
        vec![
            ("hash_mismatch".to_string(), rel("RenderPlan.json")),
            (
                "parent_not_indexed".to_string(),
                rel("RenderOutput.meta.json")
            ),
        ]
    );
    assert_eq!(r.report["runs"], 1);
    assert_eq!(r.report["artifacts"], 3);
    assert_eq!(indexed_types(&ws), TYPES[..3]);

    // The next run re-makes the tampered artifact (byte-identical to the
    // original), which makes the RenderOutput left out above check out
    // again: it is adopted, not recomputed.
    let again = ws.run_ok(&ws.path().join("project.json"), &[]);
    assert_eq!(
        statuses(&again),
        ["skipped", "skipped", "skipped", "executed", "skipped"]
    );
    assert!(
        again["stages"][4]["reason"]
            .as_str()
            .unwrap()
            .starts_with("adopted"),
        "{}",
        again["stages"][4]
    );
}

#[cfg(unix)]
#[test]
fn symlinks_are_reported_and_never_followed() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    // A whole run elsewhere, linked in as a run of its own, and an artifact
    // replaced by a link to a byte-identical copy.
    let outside = ws.path().join("outside");
    copy_dir(&ws.run_dir("lighthouse", run_id), &outside);
    std::os::unix::fs::symlink(&outside, ws.artifacts().join("lighthouse/linked")).unwrap();
    let script = ws.run_dir("lighthouse", run_id).join("Script.json");
    std::fs::remove_file(&script).unwrap();
    std::os::unix::fs::symlink(outside.join("Script.json"), &script).unwrap();

    let r = reindex(&ws);
    assert_eq!(r.code, 1, "{:#}", r.report);
    assert_eq!(
        findings(&r.report, "problems"),
        vec![
            ("symlink".to_string(), "lighthouse/linked".to_string()),
            (
                "symlink".to_string(),
                format!("lighthouse/{run_id}/Script.json")
            ),
            (
                "parent_not_indexed".to_string(),
                format!("lighthouse/{run_id}/ShotList.meta.json")
            ),
            (
                "parent_not_indexed".to_string(),
                format!("lighthouse/{run_id}/AssetManifest.meta.json")
            ),
            (
                "parent_not_indexed".to_string(),
                format!("lighthouse/{run_id}/RenderPlan.meta.json")
            ),
            (
                "parent_not_indexed".to_string(),
                format!("lighthouse/{run_id}/RenderOutput.meta.json")
            ),
        ]
    );
    let message = r.report["problems"][0]["message"].as_str().unwrap();
    assert!(message.contains("not followed"), "{message}");
    assert_eq!(r.report["runs"], 1, "the linked run is not indexed");
    assert_eq!(r.report["artifacts"], 0);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn an_oversized_meta_file_is_reported_without_being_read_whole() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let meta = ws
        .run_dir("lighthouse", run_id)
        .join("RenderOutput.meta.json");
    let mut value: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    value["padding"] = "x"
        .repeat(orchestrator::reindex::META_LIMIT as usize)
        .into();
    std::fs::write(&meta, serde_json::to_vec(&value).unwrap()).unwrap();

    let r = reindex(&ws);
    assert_eq!(r.code, 1);
    assert_eq!(
        findings(&r.report, "problems"),
        vec![(
            "too_large".to_string(),
            format!("lighthouse/{run_id}/RenderOutput.meta.json")
        )]
    );
    let message = r.report["problems"][0]["message"].as_str().unwrap();
    assert!(message.contains("1 MiB"), "{message}");
    assert_eq!(r.report["artifacts"], 4);
}

#[test]
fn a_damaged_registry_is_replaced_and_a_stale_wal_beside_it_removed() {
    sqlite_only!();
    let (ws, summary) = example_run();
    // Half a registry: its header (with the registry's mark) is intact.
    let bytes = std::fs::read(ws.db()).unwrap();
    delete_registry(&ws);
    std::fs::write(ws.db(), &bytes[..bytes.len() / 2]).unwrap();
    // A stale WAL beside it would be replayed into the new file if left.
    let mut wal = ws.db().into_os_string();
    wal.push("-wal");
    std::fs::write(&wal, vec![0xA5; 4096]).unwrap();

    let broken = ws.cmd().args(["runs", "list"]).output().unwrap();
    assert_eq!(broken.status.code(), Some(3));

    let r = reindex(&ws);
    assert_eq!(r.code, 0, "{:#}", r.report);
    assert!(!Path::new(&wal).exists());
    let rows = ws.runs_list(&[]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["run_id"], summary["run_id"]);
    let check: String = ws
        .sqlite()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // Nothing of the rebuild is left beside the registry.
    let left: Vec<String> = common::dir_names(&ws.artifacts())
        .into_iter()
        .filter(|n| n.contains("reindex"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_empty_artifacts_dir_gives_an_empty_registry_and_a_missing_one_is_refused() {
    let ws = Workspace::new();
    let out = ws.cmd().arg("reindex").output().unwrap();
    common::assert_usage_error(&out);
    assert!(!ws.artifacts().exists(), "nothing is created for a typo");

    std::fs::create_dir(ws.artifacts()).unwrap();
    let r = reindex(&ws);
    assert_eq!(r.code, 0, "{:#}", r.report);
    assert_eq!(r.report["runs"], 0);
    if !common::postgres_pass() {
        assert!(ws.db().exists());
    }
    assert!(ws.runs_list(&[]).is_empty());

    let text = ws.cmd().arg("reindex").output().unwrap();
    assert!(text.status.success());
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!("rebuilt `{}`: 0 runs", registry_name(&ws))),
        "{stdout}"
    );
}

#[test]
fn a_run_holding_its_lock_makes_reindex_exit_4_and_touch_nothing() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let before = registry_state(&ws);
    let held = ws.hold_live("lighthouse", run_id);

    // (A SQLite reindex refuses a held run at once; a PostgreSQL one waits
    // for the registry-wide lock every run holds shared, up to the timeout.)
    let out = ws
        .cmd()
        .args(["reindex", "--lock-timeout", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    if common::postgres_pass() {
        // Named by its connection's application_name (see hold_run).
        assert!(
            err.contains(&format!("pid={}", std::process::id())),
            "{err}"
        );
    } else {
        assert!(err.starts_with("error: run lighthouse/"), "{err}");
    }
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(registry_state(&ws), before);

    drop(held);
    assert_eq!(reindex(&ws).code, 0);
}

#[test]
fn a_missing_summary_or_a_run_copied_under_another_name_is_not_attributed() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let copy = ws.run_dir("lighthouse", "copied");
    copy_dir(&ws.run_dir("lighthouse", run_id), &copy);
    let no_summary = ws.run_dir("lighthouse", "no-summary");
    copy_dir(&ws.run_dir("lighthouse", run_id), &no_summary);
    std::fs::remove_file(no_summary.join("run_summary.json")).unwrap();
    // Leftovers of an interrupted write and an empty run are not problems.
    std::fs::write(copy.join(".tmp-abc123"), b"half").unwrap();
    std::fs::create_dir(ws.run_dir("lighthouse", "empty")).unwrap();
    std::fs::write(ws.artifacts().join("notes.txt"), b"mine").unwrap();

    let r = reindex(&ws);
    assert_eq!(r.code, 1);
    assert_eq!(
        findings(&r.report, "problems"),
        vec![
            ("unexpected".to_string(), "notes.txt".to_string()),
            (
                "summary_invalid".to_string(),
                "lighthouse/copied/run_summary.json".to_string()
            ),
            (
                "summary_missing".to_string(),
                "lighthouse/no-summary/run_summary.json".to_string()
            ),
        ]
    );
    assert_eq!(
        findings(&r.report, "notes"),
        vec![("empty_run".to_string(), "lighthouse/empty".to_string())]
    );
    let copied = r.report["problems"][1]["message"].as_str().unwrap();
    assert!(copied.contains(&format!("lighthouse/{run_id}")), "{copied}");
    assert_eq!(r.report["runs"], 1);
    assert_eq!(r.report["artifacts"], 5);
}

#[test]
fn a_parent_changed_since_keeps_its_recorded_edge_and_says_so() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let dir = ws.run_dir("lighthouse", run_id);
    let recorded = summary["stages"][2]["sha256"].as_str().unwrap().to_string();
    // AssetManifest re-made (bytes and meta consistent) after RenderPlan
    // was made from it.
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("AssetManifest.json")).unwrap()).unwrap();
    manifest["assets"][0]["description"] = "repainted".into();
    let mut bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    bytes.push(b'\n');
    std::fs::write(dir.join("AssetManifest.json"), &bytes).unwrap();
    let mut meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("AssetManifest.meta.json")).unwrap())
            .unwrap();
    meta["sha256"] = orchestrator::artifact::sha256_hex(&bytes).into();
    meta["size_bytes"] = bytes.len().into();
    std::fs::write(
        dir.join("AssetManifest.meta.json"),
        serde_json::to_vec_pretty(&meta).unwrap(),
    )
    .unwrap();

    let r = reindex(&ws);
    assert_eq!(r.code, 0, "{:#}", r.report);
    assert_eq!(
        findings(&r.report, "notes"),
        vec![(
            "stale_parent".to_string(),
            format!("lighthouse/{run_id}/RenderPlan.json")
        )]
    );
    assert_eq!(
        ws.registry_rows(
            "SELECT e.parent_sha256, CAST(v.parent_unchanged AS INTEGER)
             FROM artifact_edges e
             JOIN lineage_edges v ON v.child_id = e.child_id AND v.parent_id = e.parent_id
             WHERE v.child_type = 'RenderPlan' AND v.parent_type = 'AssetManifest'"
        ),
        [[recorded.as_str(), "0"]]
    );
    let verify = ws.cmd().args(["verify", "--json"]).output().unwrap();
    assert_eq!(verify.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["problems"][0]["kind"], "stale_parent");
}

#[cfg(unix)]
#[test]
fn a_fifo_in_place_of_an_artifact_is_reported_without_hanging() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let output = ws.run_dir("lighthouse", run_id).join("RenderOutput.json");
    std::fs::remove_file(&output).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&output)
        .status()
        .unwrap();
    assert!(made.success());

    let out = ws
        .cmd()
        .arg("reindex")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let first = stdout.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "lighthouse/{run_id}/RenderOutput.json: not a regular file: a FIFO (not opened); \
             RenderOutput not indexed"
        )
    );
    assert!(stdout.contains(&format!(
        "rebuilt `{}`: 1 run in 1 project, 4 artifacts",
        registry_name(&ws)
    )));
}

#[test]
fn a_meta_record_that_names_another_run_is_reported_as_misplaced() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let meta = ws
        .run_dir("lighthouse", run_id)
        .join("RenderOutput.meta.json");
    let mut value: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    value["run_id"] = "elsewhere".into();
    std::fs::write(&meta, serde_json::to_vec_pretty(&value).unwrap()).unwrap();

    let r = reindex(&ws);
    assert_eq!(r.code, 1);
    assert_eq!(
        findings(&r.report, "problems"),
        vec![(
            "meta_misplaced".to_string(),
            format!("lighthouse/{run_id}/RenderOutput.meta.json")
        )]
    );
    let message = r.report["problems"][0]["message"].as_str().unwrap();
    assert!(message.contains("run_id `elsewhere`"), "{message}");
}

/// Registry files beside the database that a reindex leaves behind it
/// (rebuild temp files are named `registry.db.reindex-<pid>…`).
fn reindex_leftovers(ws: &Workspace) -> Vec<String> {
    std::fs::read_dir(ws.artifacts())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".reindex-"))
        .collect()
}

#[cfg(unix)]
#[test]
fn reindex_waits_for_every_process_that_has_the_registry_open() {
    // Waits for the SQLite file's users; PostgreSQL's reindex has none to
    // wait for (it holds the registry-wide lock instead).
    sqlite_only!();
    use std::os::unix::fs::MetadataExt;
    let (ws, _) = example_run();
    let before = std::fs::metadata(ws.db()).unwrap().ino();
    // This test process has the registry open, as `runs list` or `verify`
    // would: closing the old file after a swap would remove the new
    // file's `-wal` and `-shm`.
    let reader =
        orchestrator::registry::Registry::open_existing(&ws.db(), &ws.artifacts()).unwrap();

    let out = ws
        .cmd()
        .args(["reindex", "--lock-timeout", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("registry.db.users"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::metadata(ws.db()).unwrap().ino(),
        before,
        "swapped anyway"
    );
    assert_eq!(reindex_leftovers(&ws), Vec::<String>::new());

    // Given time, it waits for the reader to close, then swaps.
    let mut waiting = ws.spawn(&["reindex", "--json", "--lock-timeout", "60"]);
    std::thread::sleep(Duration::from_millis(700));
    assert!(waiting.try_wait().unwrap().is_none(), "did not wait");
    drop(reader);
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["runs"], 1);
    assert_ne!(
        std::fs::metadata(ws.db()).unwrap().ino(),
        before,
        "not swapped"
    );
    assert_eq!(ws.runs_list(&[]).len(), 1);
}

#[test]
fn a_command_opening_the_registry_during_a_swap_waits_for_it() {
    // The file swap.
    sqlite_only!();
    let (ws, _) = example_run();
    let swapping = orchestrator::registry::lock_for_swap(&ws.db(), Duration::from_secs(5)).unwrap();
    let mut listing = ws.spawn(&["runs", "list", "--json"]);
    std::thread::sleep(Duration::from_millis(700));
    assert!(listing.try_wait().unwrap().is_none(), "did not wait");
    drop(swapping);
    let out = listing.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 1);
}

/// Wait until another process holds the run lock of `lighthouse/<run>`
/// (reindex takes every run lock first), so a reindex started in the
/// background is known to be past that point.
fn wait_until_run_lock_is_held(ws: &Workspace, run: &str) {
    let path = ws
        .artifacts()
        .join(".locks")
        .join(format!("lighthouse.{run}.lock"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let file = File::open(&path).unwrap();
        if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock_shared() {
            return;
        }
        drop(file);
        assert!(
            std::time::Instant::now() < deadline,
            "reindex never locked {run}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The registry held open by this test process, as `runs list` or
/// `verify` would hold it, and a reindex started behind it: once this
/// returns, reindex holds every run lock and waits for the reader to close.
fn reindex_waiting_for_a_reader(
    ws: &Workspace,
    run: &str,
) -> (orchestrator::registry::Registry, std::process::Child) {
    let reader =
        orchestrator::registry::Registry::open_existing(&ws.db(), &ws.artifacts()).unwrap();
    let reindexing = ws.spawn(&["reindex", "--lock-timeout", "60"]);
    wait_until_run_lock_is_held(ws, run);
    (reader, reindexing)
}

/// Read `child`'s stderr until a line contains `needle` (the rest is
/// drained in the background, so the child never blocks on a full pipe).
fn await_stderr(child: &mut std::process::Child, needle: &str) {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = needle.to_string();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains(&wanted) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("never said `{needle}`"));
}

/// While reindex holds every run lock and waits for the registry's users
/// to close it, a command that needs a run lock (`run`, `package`) must
/// wait for that lock without holding the registry open, or each would
/// wait for the other until one gave up.
fn a_command_waiting_for_its_run_lock_does_not_hold_up_reindex(command: &[&str]) {
    let (ws, summary) = example_run();
    let run = summary["run_id"].as_str().unwrap().to_string();
    if command[0] == "package" {
        // Packaged once already, so the command has work either way.
        assert_eq!(
            ws.cmd()
                .args(["package", &run])
                .output()
                .unwrap()
                .status
                .code(),
            Some(0)
        );
    }
    let (reader, reindexing) = reindex_waiting_for_a_reader(&ws, &run);
    let args: Vec<&str> = command
        .iter()
        .map(|a| if *a == "RUN" { run.as_str() } else { *a })
        .collect();
    let mut waiting = ws.spawn(&args);
    await_stderr(&mut waiting, "waiting for run");
    drop(reader);
    let out = reindexing.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{command:?}");
}

#[test]
fn a_run_started_while_reindex_waits_for_users_does_not_hold_it_up() {
    // Waits for the SQLite file's users; PostgreSQL's reindex has none to
    // wait for (it holds the registry-wide lock instead).
    sqlite_only!();
    a_command_waiting_for_its_run_lock_does_not_hold_up_reindex(&[
        "run",
        "--json",
        "--project",
        "project.json",
    ]);
}

#[test]
fn a_package_started_while_reindex_waits_for_users_does_not_hold_it_up() {
    // Waits for the SQLite file's users; PostgreSQL's reindex has none to
    // wait for (it holds the registry-wide lock instead).
    sqlite_only!();
    a_command_waiting_for_its_run_lock_does_not_hold_up_reindex(&["package", "--json", "RUN"]);
}

#[test]
fn a_run_made_while_reindex_waited_makes_it_give_up_instead_of_losing_the_run() {
    // Waits for the SQLite file's users; PostgreSQL's reindex has none to
    // wait for (it holds the registry-wide lock instead).
    sqlite_only!();
    let (ws, summary) = example_run();
    let run = summary["run_id"].as_str().unwrap().to_string();
    let (reader, reindexing) = reindex_waiting_for_a_reader(&ws, &run);
    // A new run begins and ends while reindex waits: it wrote to the
    // registry being replaced. (The pause lets the one-run rebuild finish
    // first, so the run happens during the wait for the reader; in either
    // phase it must be caught.)
    std::thread::sleep(Duration::from_secs(1));
    let other = project(&ws, "other", 11);
    ws.run_ok(&other, &[]);
    drop(reader);
    let out = reindexing.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("run other/") && stderr.contains("again"),
        "{stderr}"
    );
    // The registry that knows both runs was kept.
    assert_eq!(ws.runs_list(&[]).len(), 2);
    assert_eq!(reindex_leftovers(&ws), Vec::<String>::new());
}

#[test]
fn a_run_whose_lock_file_was_made_anew_during_reindex_is_refused_too() {
    // The run lock files under .locks/ and the wait for the file's users.
    sqlite_only!();
    let (ws, summary) = example_run();
    let run = summary["run_id"].as_str().unwrap().to_string();
    let (reader, reindexing) = reindex_waiting_for_a_reader(&ws, &run);
    // Someone removes the lock files under the held locks; a run of the
    // same run then makes its lock file anew at the same path, takes it
    // and records an attempt in the registry being replaced.
    let locks = ws.artifacts().join(".locks");
    for entry in std::fs::read_dir(&locks).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    ws.run_ok(&ws.path().join("project.json"), &[]);
    drop(reader);
    let out = reindexing.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!("run lighthouse/{run}")),
        "{stderr}"
    );
    // The registry that recorded the second attempt was kept.
    assert_eq!(ws.runs_list(&[])[0]["attempt"], 2);
}

/// Edit a JSON file of the example run in place.
fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut value: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

#[test]
fn a_summary_whose_attempt_cannot_be_counted_on_is_refused_and_the_next_run_works() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let path = ws.run_dir("lighthouse", run_id).join("run_summary.json");
    edit_json(&path, |v| v["attempt"] = u32::MAX.into());

    let r = reindex(&ws);
    assert_eq!(r.code, 1, "{:#}", r.report);
    let problems = findings(&r.report, "problems");
    assert_eq!(
        problems[0],
        (
            "summary_invalid".to_string(),
            format!("lighthouse/{run_id}/run_summary.json")
        ),
        "{problems:?}"
    );
    let message = r.report["problems"][0]["message"].as_str().unwrap();
    assert!(message.contains("attempt 4294967295"), "{message}");
    assert_eq!(r.report["runs"], 0);
    // Nothing unusable was indexed: the run can be run again.
    let out = ws.run_output(&ws.path().join("project.json"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_meta_record_leaving_out_a_parent_is_refused_not_indexed_without_its_edge() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let dir = ws.run_dir("lighthouse", run_id);
    edit_json(&dir.join("AssetManifest.meta.json"), |v| {
        v["parents"] = serde_json::json!([]);
    });

    let r = reindex(&ws);
    assert_eq!(r.code, 1, "{:#}", r.report);
    let rel = |f: &str| format!("lighthouse/{run_id}/{f}");
    assert_eq!(
        findings(&r.report, "problems"),
        vec![
            ("parent_missing".to_string(), rel("AssetManifest.meta.json")),
            (
                "parent_not_indexed".to_string(),
                rel("RenderPlan.meta.json")
            ),
            (
                "parent_not_indexed".to_string(),
                rel("RenderOutput.meta.json")
            ),
        ]
    );
    let message = r.report["problems"][0]["message"].as_str().unwrap();
    assert!(message.contains("ShotList"), "{message}");
    // No AssetManifest row stands without the edges it was made from.
    assert_eq!(indexed_types(&ws), TYPES[..2]);
}

#[test]
fn times_with_offsets_are_stored_in_utc_so_they_sort_as_text() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let dir = ws.run_dir("lighthouse", run_id);
    // 2026-11-24T08:00:00Z written as it was on a clock at +14:00.
    edit_json(&dir.join("run_summary.json"), |v| {
        v["started_at"] = "2026-11-24T22:00:00+14:00".into();
        v["finished_at"] = "2026-11-24T08:00:01.25+00:00".into();
        v["stages"][0]["started_at"] = "2026-11-23T23:00:00-09:00".into();
    });
    edit_json(&dir.join("Script.meta.json"), |v| {
        v["created_at"] = "2026-11-24T09:00:00.5+01:00".into();
    });

    let r = reindex(&ws);
    assert_eq!(r.code, 0, "{:#}", r.report);
    assert_eq!(
        ws.registry_rows("SELECT started_at, finished_at FROM runs"),
        [["2026-11-24T08:00:00.000Z", "2026-11-24T08:00:01.250Z"]]
    );
    assert_eq!(
        ws.registry_value("SELECT started_at FROM stage_executions WHERE stage = 1"),
        "2026-11-24T08:00:00.000Z"
    );
    assert_eq!(
        ws.registry_value("SELECT created_at FROM artifacts WHERE artifact_type = 'Script'"),
        "2026-11-24T08:00:00.500Z"
    );
    assert_eq!(
        ws.registry_value("SELECT first_run_at FROM projects"),
        "2026-11-24T08:00:00.000Z"
    );
}

/// Run `cmd` with its address space capped at `cap` bytes (so that a
/// memory blow-up fails fast instead of taking the machine) and return its
/// output and peak RSS in KiB, read with wait4(2) as the bench suite does.
#[cfg(unix)]
// Reaped with wait4(2), which `Child::wait` cannot replace: it drops the rusage.
#[allow(clippy::zombie_processes)]
fn run_measured(mut cmd: std::process::Command, cap: u64) -> (std::process::Output, u64) {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: cap as libc::rlim_t,
                rlim_max: cap as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The report is small: read it all, then reap (a full pipe cannot block).
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our unwaited child; both out-parameters outlive the call.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let output = std::process::Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        stdout,
        stderr,
    };
    (output, usage.ru_maxrss as u64)
}

#[cfg(unix)]
#[test]
fn a_huge_file_in_place_of_an_artifact_is_reported_with_bounded_memory() {
    use std::io::Write;
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let path = ws.run_dir("lighthouse", run_id).join("RenderOutput.json");
    // 300 MB of valid JSON: parsed whole, it would take gigabytes.
    let mut file = std::io::BufWriter::new(File::create(&path).unwrap());
    file.write_all(b"[").unwrap();
    let chunk = b"0,".repeat(1 << 19);
    for _ in 0..286 {
        file.write_all(&chunk).unwrap();
    }
    file.write_all(b"0]").unwrap();
    file.into_inner().unwrap().sync_all().unwrap();

    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("orchestrator"));
    cmd.current_dir(ws.path())
        .env_remove("ORCHESTRATOR_ARTIFACTS_DIR")
        .env_remove("ORCHESTRATOR_DB")
        .args(["reindex", "--json"]);
    let (out, peak_kib) = run_measured(cmd, 1 << 30);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        findings(&report, "problems"),
        vec![(
            "hash_mismatch".to_string(),
            format!("lighthouse/{run_id}/RenderOutput.json")
        )]
    );
    assert_eq!(report["artifacts"], 4);
    // A correctness bound, not a timing: the file is streamed, never held.
    assert!(peak_kib < 100 * 1024, "peak RSS {peak_kib} KiB");
    assert!(
        reindex_leftovers(&ws).is_empty(),
        "{:?}",
        reindex_leftovers(&ws)
    );
    eprintln!("reindex peak RSS with a 300 MB artifact: {peak_kib} KiB");
}

/// Contents and modification time: "left untouched" means both.
fn fingerprint(path: &Path) -> (Vec<u8>, std::time::SystemTime) {
    let meta = std::fs::metadata(path).unwrap();
    (std::fs::read(path).unwrap(), meta.modified().unwrap())
}

#[test]
fn reindex_refuses_to_overwrite_a_file_that_is_not_a_registry() {
    let (ws, _) = example_run();
    let json = ws.path().join("project.json");
    let photos = ws.path().join("photos.db");
    rusqlite::Connection::open(&photos)
        .unwrap()
        .execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY, caption TEXT)")
        .unwrap();
    for (file, says) in [
        (&json, "is not a SQLite database"),
        (&photos, "not an orchestrator registry"),
    ] {
        let before = fingerprint(file);
        // The hint of the read commands must not lead to a reindex of it.
        let listed = ws
            .cmd()
            .args(["runs", "list", "--db"])
            .arg(file)
            .output()
            .unwrap();
        assert_eq!(listed.status.code(), Some(3));
        let stderr = String::from_utf8_lossy(&listed.stderr);
        assert!(
            !stderr.contains("run `orchestrator reindex`"),
            "{}: {stderr}",
            file.display()
        );

        let names = common::dir_names(ws.path());
        let out = ws
            .cmd()
            .args(["reindex", "--db"])
            .arg(file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{}: {stderr}", file.display());
        assert!(stderr.contains(says), "{stderr}");
        assert!(stderr.contains("left untouched"), "{stderr}");
        assert!(
            fingerprint(file) == before,
            "{} was changed",
            file.display()
        );
        // Nothing made beside it either.
        assert_eq!(common::dir_names(ws.path()), names);
    }
}

#[test]
fn reindex_with_db_elsewhere_does_not_report_the_trees_registry_files() {
    let (ws, _) = example_run();
    let elsewhere = ws.path().join("elsewhere.db");
    let out = ws
        .cmd()
        .args(["reindex", "--json", "--db"])
        .arg(&elsewhere)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(findings(&report, "problems"), vec![]);
    assert_eq!(report["runs"], 1);
}

/// A `sqlite3` shell (or any program but orchestrator) takes no users
/// lock: reindex only learns of it when the old registry's log cannot be
/// folded in. Swapping then would delete the log under the writer and put
/// a new file in place of the one it writes: its commit would be lost.
#[test]
fn reindex_leaves_a_registry_another_program_is_writing_to_alone() {
    // A sqlite3 shell's write transaction on the file.
    sqlite_only!();
    let (ws, _) = example_run();
    let writer = rusqlite::Connection::open(ws.db()).unwrap();
    writer
        .execute_batch(
            "BEGIN IMMEDIATE;
             INSERT INTO projects VALUES ('by-hand', 'Written in a sqlite3 shell',
                 '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');",
        )
        .unwrap();
    let started = std::time::Instant::now();
    let out = ws
        .cmd()
        .args(["reindex", "--lock-timeout", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("`artifacts/registry.db`"),
        "{stderr}"
    );
    assert!(stderr.contains("left as it was"), "{stderr}");
    // Bounded by --lock-timeout, not SQLite's default wait.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reindex_leftovers(&ws), Vec::<String>::new());

    writer.execute_batch("COMMIT;").unwrap();
    drop(writer);
    let title: String = ws
        .sqlite()
        .query_row(
            "SELECT title FROM projects WHERE project_id = 'by-hand'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(title, "Written in a sqlite3 shell");
}

#[test]
fn an_attempt_one_short_of_the_limit_is_refused_too_so_later_runs_never_overflow() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let path = ws.run_dir("lighthouse", run_id).join("run_summary.json");
    // Accepted before, as "the next run can count one more": the run after
    // that one panicked adding to the attempt.
    edit_json(&path, |v| v["attempt"] = (u32::MAX - 1).into());

    let r = reindex(&ws);
    assert_eq!(r.code, 1, "{:#}", r.report);
    let message = r.report["problems"][0]["message"].as_str().unwrap();
    assert!(message.contains("attempt 4294967294"), "{message}");
    assert_eq!(r.report["runs"], 0);
    for _ in 0..2 {
        let out = ws.run_output(&ws.path().join("project.json"), &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A process that reaches the registry through a symlink (`--db
/// ~/reg.db`, `ORCHESTRATOR_DB`) uses the same file, and SQLite the same
/// `-wal` and `-shm`: it must hold the same users lock, or reindex swaps
/// under it and its closing removes the new file's log by name.
#[cfg(unix)]
#[test]
fn reindex_waits_for_a_process_that_opened_the_registry_through_a_symlink() {
    // The SQLite file's users, through a symlink.
    sqlite_only!();
    use std::os::unix::fs::MetadataExt;
    let (ws, _) = example_run();
    let link = ws.path().join("reg.db");
    std::os::unix::fs::symlink(ws.db(), &link).unwrap();
    let before = std::fs::metadata(ws.db()).unwrap().ino();
    let reader = orchestrator::registry::Registry::open_existing(&link, &ws.artifacts()).unwrap();

    let out = ws
        .cmd()
        .args(["reindex", "--lock-timeout", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert_eq!(
        std::fs::metadata(ws.db()).unwrap().ino(),
        before,
        "swapped under a reader"
    );
    drop(reader);
    assert!(!ws.path().join("reg.db.users").exists());
}

/// A summary written before V7 has no `created_at`. Reindex must not take
/// the latest attempt's start for it: after a no-op re-run of an old take
/// that would put the old take above a newer one again, the very history
/// rewrite V7 fixed.
#[test]
fn a_pre_v7_summary_after_a_no_op_rerun_keeps_its_place_in_history() {
    let ws = Workspace::new();
    let example = ws.example();
    let old = ws.run_ok(&example, &[]);
    let old_id = old["run_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(20));
    let new = ws.run_ok(&example, &["--set", "seed=1978"]);
    let new_id = new["run_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(20));
    // The no-op re-run of the old take: attempt 2, started last of all.
    ws.run_ok(&example, &[]);
    let order = |ws: &Workspace| -> Vec<String> {
        ws.runs_list(&[])
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(order(&ws), [new_id.clone(), old_id.clone()]);
    for id in [&old_id, &new_id] {
        edit_json(
            &ws.run_dir("lighthouse", id).join("run_summary.json"),
            |v| {
                let v = v.as_object_mut().unwrap();
                v.remove("created_at");
                v.remove("config_path");
            },
        );
    }
    delete_registry(&ws);
    let r = reindex(&ws);
    assert_eq!(r.code, 0, "{}", r.report);
    assert_eq!(order(&ws), [new_id, old_id]);
}
