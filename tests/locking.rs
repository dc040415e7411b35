//! Run locks: a second process waits for, or gives up on, a run another
//! process holds, and `runs list` tells a live run from a dead one.

mod common;

use std::fs::File;

use common::{Workspace, example_run, postgres_pass, statuses, summary_of};
use serde_json::Value;

#[test]
fn a_held_run_makes_a_second_run_exit_4_without_touching_files() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let script = ws.run_dir("lighthouse", run_id).join("Script.json");
    let before = std::fs::read(&script).unwrap();
    let _held = ws.hold_run("lighthouse", run_id);

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
    assert_eq!(rows[0]["attempt"], 1);
}

#[test]
fn a_running_run_with_a_live_holder_is_running_not_interrupted() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    ws.registry_exec("UPDATE runs SET status = 'running', finished_at = NULL");
    let held = ws.hold_live("lighthouse", run_id);
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

/// The line `run` prints once on stderr while it waits for `holder`.
fn waiting_line(project: &str, run: &str, holder: &str) -> String {
    format!("waiting for run {project}/{run} held by {holder}")
}

#[test]
fn no_wait_on_a_held_run_exits_4_at_once_and_a_timeout_after_waiting() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let config = ws.path().join("project.json");
    let held = ws.hold_run("lighthouse", run_id);

    let out = ws.run_output(&config, &["--no-wait"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8(out.stderr).unwrap();
    let busy = format!(
        "error: run lighthouse/{run_id} is busy: held by {}",
        held.holder
    );
    assert!(err.starts_with(&busy), "{err}");
    // Refused at once: it never waited, so it never said it was waiting.
    assert!(!err.contains("waiting for run"), "{err}");
    assert!(out.stdout.is_empty());

    let out = ws.run_output(&config, &["--lock-timeout", "1"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        waiting_line("lighthouse", run_id, &held.holder),
        "{err}"
    );
    assert_eq!(err.matches("waiting for run").count(), 1, "{err}");
    assert!(lines[1].starts_with(&busy), "{err}");
    assert!(lines[1].ends_with("still held after waiting 1s"), "{err}");

    drop(held);
    let again = summary_of(&ws.run_output(&config, &["--no-wait"]));
    assert_eq!(statuses(&again), vec!["skipped"; 5]);
    assert_eq!(ws.runs_list(&[])[0]["attempt"], 2);
}

#[test]
fn no_wait_and_lock_timeout_together_are_a_usage_error() {
    let ws = Workspace::new();
    let config = ws.example();
    let out = ws.run_output(&config, &["--no-wait", "--lock-timeout", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!ws.db().exists());
}

/// Readers probe only the liveness flag; one caught in the middle of its
/// probe (holding the flag shared) must not refuse or stall a `run`.
#[test]
fn a_reader_mid_probe_never_refuses_a_no_wait_run() {
    // The liveness flag file; PostgreSQL's readers look at pg_locks.
    sqlite_only!();
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let flag = ws
        .artifacts()
        .join(".locks")
        .join(format!("lighthouse.{run_id}.live"));
    let probe = File::open(&flag).unwrap();
    probe.try_lock_shared().unwrap();
    let mut child = ws.spawn(&[
        "run",
        "--json",
        "--no-wait",
        "--project",
        ws.path().join("project.json").to_str().unwrap(),
    ]);
    // Once the run has written its pid into the run lock it goes for the
    // flag next, and must wait out the probe rather than give up.
    let lock_file = flag.with_extension("lock");
    let pid = format!("\"pid\":{}", child.id());
    while !std::fs::read_to_string(&lock_file).unwrap().contains(&pid) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    drop(probe);
    let out = child.wait_with_output().unwrap();
    assert_eq!(statuses(&summary_of(&out)), vec!["skipped"; 5]);
}

#[test]
fn a_killed_run_reads_interrupted_and_running_again_while_its_locks_are_held() {
    let ws = Workspace::new();
    let mut config = common::example_config();
    // Large enough to be caught mid-run.
    config["scene_count"] = 10_000.into();
    let path = ws.write_config("big.json", &config);
    let mut child = ws.spawn(&["run", "--project", path.to_str().unwrap()]);

    // Wait for its `running` row: the run holds its locks from before then.
    let row = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be seen running");
        }
        let rows = (postgres_pass() || ws.db().exists()).then(|| ws.runs_list(&[]));
        if let Some(row) = rows.and_then(|r| r.into_iter().next()) {
            break row;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(row["status"], "running");
    child.kill().unwrap();
    child.wait().unwrap();

    let run_id = row["run_id"].as_str().unwrap();
    let status = || ws.runs_list(&[])[0]["status"].clone();
    assert_eq!(status(), "interrupted");
    let held = ws.hold_live(row["project_id"].as_str().unwrap(), run_id);
    assert_eq!(status(), "running");
    drop(held);
    assert_eq!(status(), "interrupted");
}

/// Run `orchestrator <args>` in `ws`, failing the test (not hanging it) if
/// it has not finished within `secs`.
fn output_within(ws: &Workspace, args: &[&str], secs: u64) -> std::process::Output {
    let mut child = ws.spawn(args);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`orchestrator {}` hung for over {secs}s", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// `artifacts/.locks/lighthouse.<run>.<ext>`.
fn lock_file(ws: &Workspace, run_id: &str, ext: &str) -> std::path::PathBuf {
    ws.artifacts()
        .join(".locks")
        .join(format!("lighthouse.{run_id}.{ext}"))
}

/// Assert exit 5 with an `error:` naming `path` (as given, or relative to
/// the workspace, the working directory) and saying what it is.
fn assert_refused(out: &std::process::Output, path: &std::path::Path, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    let named = |p: &std::path::Path| err.contains(&format!("`{}`", p.display()));
    let relative = path
        .components()
        .skip_while(|c| c.as_os_str() != "artifacts")
        .collect::<std::path::PathBuf>();
    assert!(
        err.starts_with("error: ") && (named(path) || named(&relative)),
        "{err}"
    );
    assert!(
        err.contains(&format!("{what}, not a regular file")),
        "{err}"
    );
}

#[test]
fn a_symlinked_run_lock_is_refused_not_truncated() {
    sqlite_only!();
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let important = ws.path().join("important.txt");
    std::fs::write(&important, b"years of notes").unwrap();
    let lock = lock_file(&ws, run_id, "lock");
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&important, &lock).unwrap();
    let config = ws.path().join("project.json");
    let commands: [&[&str]; 3] = [
        &["run", "--force", "--project", config.to_str().unwrap()],
        &["package", run_id],
        &["gc", "--run", run_id, "--yes"],
    ];
    for args in commands {
        let out = output_within(&ws, args, 30);
        assert_refused(&out, &lock, "a symbolic link");
        assert_eq!(std::fs::read(&important).unwrap(), b"years of notes");
    }
    // Nothing was run, packaged or collected.
    let rows = ws.runs_list(&[]);
    assert_eq!((rows.len(), &rows[0]["attempt"]), (1, &Value::from(1)));
    assert!(
        !ws.run_dir("lighthouse", run_id)
            .join("RenderPackage.json")
            .exists()
    );

    // The liveness flag is held to the same terms.
    std::fs::remove_file(&lock).unwrap();
    let live = lock_file(&ws, run_id, "live");
    std::fs::remove_file(&live).unwrap();
    std::os::unix::fs::symlink(&important, &live).unwrap();
    let out = output_within(&ws, commands[0], 30);
    assert_refused(&out, &live, "a symbolic link");
    assert_eq!(std::fs::read(&important).unwrap(), b"years of notes");
}

#[test]
fn a_fifo_liveness_flag_hangs_no_command() {
    sqlite_only!();
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let live = lock_file(&ws, run_id, "live");
    std::fs::remove_file(&live).unwrap();
    mkfifo(&live);
    let readers: [&[&str]; 6] = [
        &["runs", "list"],
        &["runs", "show", run_id],
        &["verify"],
        &["lineage", "RenderOutput"],
        &["gc", "--keep-last", "1"],
        &["export", "--format", "prov", run_id],
    ];
    for args in readers {
        let out = output_within(&ws, args, 30);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A writer cannot hold such a flag: refused, not hung.
    let config = ws.path().join("project.json");
    let run = ["run", "--force", "--project", config.to_str().unwrap()];
    assert_refused(&output_within(&ws, &run, 30), &live, "a FIFO");

    // Nor a FIFO for the run lock itself. `reindex`, which locks every run,
    // passes it by: no run can hold it.
    std::fs::remove_file(&live).unwrap();
    let lock = lock_file(&ws, run_id, "lock");
    std::fs::remove_file(&lock).unwrap();
    mkfifo(&lock);
    assert_refused(&output_within(&ws, &run, 30), &lock, "a FIFO");
    assert_eq!(output_within(&ws, &["reindex"], 30).status.code(), Some(0));
}

#[test]
fn a_fifo_given_as_the_registry_is_refused_without_hanging() {
    let ws = Workspace::new();
    let config = ws.example();
    let fifo = ws.path().join("registry.fifo");
    mkfifo(&fifo);
    let db = fifo.to_str().unwrap();
    let config = config.to_str().unwrap();
    for args in [
        &["--db", db, "run", "--project", config][..],
        &["--db", db, "runs", "list"],
        &["--db", db, "verify"],
    ] {
        assert_refused(&output_within(&ws, args, 30), &fifo, "a FIFO");
    }
    // Refused before a run lock or a run directory was made.
    assert!(!ws.artifacts().join("lighthouse").exists());
}

#[test]
fn a_symlinked_locks_directory_is_never_written_through() {
    // A PostgreSQL run keeps its locks in the registry: no .locks at all.
    sqlite_only!();
    let ws = Workspace::new();
    let config = ws.example();
    let elsewhere = ws.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(ws.artifacts()).unwrap();
    let locks = ws.artifacts().join(".locks");
    std::os::unix::fs::symlink(&elsewhere, &locks).unwrap();
    let out = output_within(&ws, &["run", "--project", config.to_str().unwrap()], 30);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("`artifacts/.locks`"), "{err}");
    assert!(common::dir_names(&elsewhere).is_empty());
}

#[test]
fn a_hard_linked_run_lock_is_locked_but_its_bytes_never_change() {
    sqlite_only!();
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let important = ws.path().join("important.txt");
    std::fs::write(&important, b"years of notes").unwrap();
    let lock = lock_file(&ws, run_id, "lock");
    std::fs::remove_file(&lock).unwrap();
    std::fs::hard_link(&important, &lock).unwrap();
    let out = ws.run_output(&ws.path().join("project.json"), &["--force"]);
    assert_eq!(statuses(&summary_of(&out)), vec!["executed"; 5]);
    assert_eq!(std::fs::read(&important).unwrap(), b"years of notes");
}

#[test]
fn a_symlinked_registry_lock_file_is_refused_not_written() {
    sqlite_only!();
    let (ws, _) = example_run();
    let important = ws.path().join("important.txt");
    std::fs::write(&important, b"years of notes").unwrap();
    let users = ws.artifacts().join("registry.db.users");
    std::fs::remove_file(&users).unwrap();
    std::os::unix::fs::symlink(&important, &users).unwrap();
    let config = ws.path().join("project.json");
    for args in [
        &["run", "--force", "--project", config.to_str().unwrap()][..],
        &["runs", "list"],
        &["reindex"],
    ] {
        assert_refused(&output_within(&ws, args, 30), &users, "a symbolic link");
    }
    assert_eq!(std::fs::read(&important).unwrap(), b"years of notes");

    // The migration lock, taken when a registry is created.
    std::fs::remove_file(&users).unwrap();
    let fresh = Workspace::new();
    let config = fresh.example();
    std::fs::create_dir_all(fresh.artifacts()).unwrap();
    let migration = fresh.artifacts().join("registry.db.lock");
    std::os::unix::fs::symlink(&important, &migration).unwrap();
    let out = output_within(&fresh, &["run", "--project", config.to_str().unwrap()], 30);
    assert_refused(&out, &migration, "a symbolic link");
    assert_eq!(std::fs::read(&important).unwrap(), b"years of notes");
}

#[test]
fn a_busy_registry_exits_4_within_the_lock_timeout_and_leaves_no_run_directory() {
    // SQLite's one write lock, held through the file.
    sqlite_only!();
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let mut other = common::example_config();
    other["project_id"] = "harbour".into();
    let other = ws.write_config("other.json", &other);
    // What `sqlite3 registry.db 'begin immediate;'` does, held by this
    // process for the whole test.
    let holder = ws.sqlite();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let config = ws.path().join("project.json");
    let (config, other) = (config.to_str().unwrap(), other.to_str().unwrap());
    let attempts: [&[&str]; 3] = [
        &["--project", config, "--run-id", "take-2"],
        &["--project", config, "--force"],
        &["--project", other],
    ];
    for extra in attempts {
        let mut args = vec!["run", "--lock-timeout", "2"];
        args.extend_from_slice(extra);
        let started = std::time::Instant::now();
        let out = output_within(&ws, &args, 60);
        let elapsed = started.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        // One wait of --lock-timeout, not one per statement (it took 40s).
        assert!(elapsed.as_secs_f64() < 6.0, "{args:?} took {elapsed:?}");
        let pid = std::process::id();
        assert!(
            err.contains(&format!(
                "error: the registry `artifacts/registry.db` is busy: pid {pid} "
            )) && err.contains("has held its write lock for over 2s"),
            "{err}"
        );
        assert!(!err.contains("no rows"), "{err}");
    }
    assert!(!ws.run_dir("lighthouse", "take-2").exists());
    assert!(!ws.artifacts().join("harbour").exists());
    assert!(
        ws.run_dir("lighthouse", run_id)
            .join("Script.json")
            .exists()
    );
    holder.execute_batch("ROLLBACK").unwrap();
    let rows = ws.runs_list(&[]);
    assert_eq!((rows.len(), &rows[0]["attempt"]), (1, &Value::from(1)));
}

#[test]
fn a_fifo_named_like_a_dead_reindexs_users_lock_does_not_hang_verify() {
    sqlite_only!();
    let (ws, _) = example_run();
    // No process 4000001: verify once opened `<copy>.users` to ask whether
    // the copy was in use, and waited for ever on a FIFO there.
    let fifo = ws.artifacts().join("registry.db.reindex-4000001.users");
    mkfifo(&fifo);
    let out = output_within(&ws, &["verify", "--json"], 30);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let kinds: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reindex_leftover"], "{report:#}");
    // Reported, never opened: still the FIFO it was.
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
}
