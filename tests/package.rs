//! `orchestrator package`: the RenderPackage manifest of a finished run,
//! registered with its five parents, and a deterministic archive.

mod common;

use std::path::Path;

use common::{TYPES, Workspace, example_run, sha256_file, summary_of};
use serde_json::Value;

fn package(ws: &Workspace, args: &[&str]) -> std::process::Output {
    ws.cmd().arg("package").args(args).output().unwrap()
}

fn package_ok(ws: &Workspace, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    summary_of(&package(ws, &all))
}

#[test]
fn a_finished_run_is_packaged_registered_and_verified() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let report = package_ok(&ws, &[&run_id[..6]]);
    assert_eq!(report["written"], true);
    let dir = ws.run_dir("lighthouse", run_id);
    let path = dir.join("RenderPackage.json");
    let pkg: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(pkg["artifact_type"], "RenderPackage");
    assert_eq!(pkg["run_id"], run_id);
    assert_eq!(pkg["project_id"], "lighthouse");
    assert_eq!(pkg["config_hash"], summary["config_hash"]);
    // Every stage output, with its path, size and the hash sha256sum gives.
    let listed = pkg["artifacts"].as_array().unwrap();
    assert_eq!(listed.len(), 5);
    for (entry, ty) in listed.iter().zip(TYPES) {
        assert_eq!(entry["artifact_type"], ty);
        assert_eq!(entry["path"], format!("{ty}.json"));
        assert_eq!(entry["schema_version"], "1.0.0");
        let file = dir.join(format!("{ty}.json"));
        assert_eq!(entry["sha256"], sha256_file(&file));
        assert_eq!(entry["size_bytes"], std::fs::metadata(&file).unwrap().len());
    }
    // Its meta record vouches for it, and the registry holds the same.
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("RenderPackage.meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["sha256"], sha256_file(&path));
    assert_eq!(report["sha256"], meta["sha256"]);
    assert_eq!(meta["parents"].as_array().unwrap().len(), 5);
    assert_eq!(
        ws.registry_rows(
            "SELECT a.sha256, (SELECT count(*) FROM artifact_edges e WHERE e.child_id = a.artifact_id)
             FROM artifacts a WHERE a.artifact_type = 'RenderPackage'"
        ),
        [[sha256_file(&path), "5".to_string()]]
    );

    // lineage and verify cover it.
    let lineage = summary_of(
        &ws.cmd()
            .args(["lineage", "RenderPackage", "--format", "json"])
            .output()
            .unwrap(),
    );
    let text = lineage.to_string();
    for ty in TYPES {
        assert!(text.contains(ty), "{ty} missing from {text}");
    }
    let verify = ws.cmd().args(["verify", "--json"]).output().unwrap();
    let verify_report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(verify.status.code(), Some(0), "{verify_report}");
    assert_eq!(verify_report["artifacts_checked"], 6);
}

/// (name, mode, uid, gid, mtime) of each member, in archive order.
fn members(path: &Path) -> Vec<(String, u32, u64, u64, u64)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
            )
        })
        .collect()
}

#[test]
fn two_packagings_of_one_run_give_byte_identical_archives() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let first = package_ok(&ws, &[run_id, "--archive", "a.tar"]);
    let second = package_ok(&ws, &[run_id, "--archive", "b.tar"]);
    assert_eq!(first["written"], true);
    assert_eq!(
        second["written"], false,
        "an identical package is not rewritten"
    );
    let a = std::fs::read(ws.path().join("a.tar")).unwrap();
    let b = std::fs::read(ws.path().join("b.tar")).unwrap();
    assert!(a == b, "archives differ");
    assert_eq!(
        first["archive"]["sha256"],
        sha256_file(&ws.path().join("a.tar"))
    );

    let listed = members(&ws.path().join("a.tar"));
    let names: Vec<&str> = listed.iter().map(|m| m.0.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "members in name order");
    assert_eq!(names.len(), 13, "{names:?}");
    assert!(names.contains(&format!("lighthouse/{run_id}/RenderPackage.json").as_str()));
    let mtime = listed[0].4;
    for (name, mode, uid, gid, t) in &listed {
        assert_eq!((*mode, *uid, *gid, *t), (0o644, 0, 0, mtime), "{name}");
    }
    // A no-op resume leaves the package as it was.
    ws.run_ok(&ws.path().join("project.json"), &[]);
    assert_eq!(package_ok(&ws, &[run_id])["written"], false);
}

// Interrupts a run with a failpoint, so it needs the test build's feature.
#[cfg(feature = "failpoints")]
#[test]
fn an_incomplete_run_is_refused_naming_the_missing_stages() {
    let ws = Workspace::new();
    let config = ws.example();
    let killed = ws
        .cmd()
        .env("ORCHESTRATOR_FAILPOINTS", "stage.before_data_write=kill@4")
        .args(["run", "--project"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!killed.status.success());
    let run_id = ws.runs_list(&[])[0]["run_id"].as_str().unwrap().to_string();
    let out = package(&ws, &[&run_id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains("stage 4 (RenderPlan), stage 5 (RenderOutput) not done"),
        "{stderr}"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("hint: "), "{stderr}");
    assert!(
        !ws.run_dir("lighthouse", &run_id)
            .join("RenderPackage.json")
            .exists()
    );
}

#[test]
fn a_changed_artifact_is_refused_and_nothing_is_packaged() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let dir = ws.run_dir("lighthouse", run_id);
    std::fs::write(dir.join("ShotList.json"), b"{}\n").unwrap();
    let out = package(&ws, &[run_id, "--archive", "x.tar"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ShotList.json"), "{stderr}");
    assert!(
        stderr.contains("changed since it was registered"),
        "{stderr}"
    );
    assert!(!dir.join("RenderPackage.json").exists());
    assert!(!ws.path().join("x.tar").exists());
}

#[test]
fn an_unknown_run_is_a_usage_error() {
    let (ws, _) = example_run();
    let out = package(&ws, &["ffff"]);
    common::assert_usage_error(&out);
}

#[test]
fn reindex_brings_the_package_back_with_its_edges() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    package_ok(&ws, &[run_id]);
    let lineage = |ws: &Workspace| {
        ws.cmd()
            .args(["lineage", "RenderPackage", "--format", "json"])
            .output()
            .unwrap()
            .stdout
    };
    let before = lineage(&ws);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", ws.db().display()));
    }
    let out = ws.cmd().args(["reindex", "--json"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(lineage(&ws), before);
    assert_eq!(package_ok(&ws, &[run_id])["written"], false);
}

/// `package <args>` started in the background; returns it once it says it
/// is waiting for the run's lock, and a handle that yields its whole stderr.
fn package_waiting(
    ws: &Workspace,
    args: &[&str],
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    use std::io::BufRead;
    let mut all = vec!["package", "--lock-timeout", "60"];
    all.extend_from_slice(args);
    let mut child = ws.spawn(&all);
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line.starts_with("waiting for run") {
                let _ = tx.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    if rx.recv_timeout(std::time::Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        panic!("package never waited: {}", reader.join().unwrap());
    }
    (child, reader)
}

/// Exit code, stdout and stderr of a `package_waiting` child, which must
/// end within a minute.
fn finished(
    mut child: std::process::Child,
    stderr: std::thread::JoinHandle<String>,
) -> (Option<i32>, Vec<u8>, String) {
    use std::io::Read;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("package hung after the lock was released");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    (status.code(), stdout, stderr.join().unwrap())
}

/// Whether process `pid` is stopped (SIGSTOP), from `/proc/<pid>/stat`.
#[cfg(feature = "failpoints")]
fn is_stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('T'))
}

// A real `run --force` held mid-way by the `stop` failpoint.
#[cfg(feature = "failpoints")]
#[test]
fn a_package_waiting_on_a_run_packages_the_run_as_it_finished_not_as_it_began() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let config = ws.path().join("project.json");
    let mut run = std::process::Command::new(assert_cmd::cargo::cargo_bin!("orchestrator"));
    run.current_dir(ws.path())
        .env_remove("ORCHESTRATOR_ARTIFACTS_DIR")
        .env_remove("ORCHESTRATOR_DB");
    if let Some(url) = ws.pg_url() {
        run.env("ORCHESTRATOR_DB", url);
    }
    let mut run = run
        .env("ORCHESTRATOR_FAILPOINTS", "stage.after_commit=stop@2")
        .args(["run", "--json", "--force", "--run-id", run_id, "--project"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !is_stopped(run.id()) {
        assert!(
            run.try_wait().unwrap().is_none(),
            "the run ended before its stop"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the run never stopped"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The run is `running` now, and package reads it so before it waits.
    assert_eq!(ws.runs_list(&[])[0]["status"], "running");
    let (package, stderr) = package_waiting(&ws, &[run_id, "--json"]);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(run.id() as i32, libc::SIGCONT) }, 0);
    let ran = run.wait_with_output().unwrap();
    assert!(ran.status.success(), "{ran:?}");
    let ran: Value = serde_json::from_slice(&ran.stdout).unwrap();

    let (code, stdout, stderr) = finished(package, stderr);
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(report["written"], true);
    let pkg: Value = serde_json::from_slice(
        &std::fs::read(ws.run_dir("lighthouse", run_id).join("RenderPackage.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(pkg["config_hash"], ran["config_hash"]);
    ws.assert_verify_clean();
}

#[test]
fn a_package_waiting_on_a_run_replaced_meanwhile_records_the_new_config_hash() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let held = ws.hold_live("lighthouse", run_id);
    let (package, stderr) = package_waiting(&ws, &[run_id, "--json"]);
    // What a replacement under the lock changes in the row package read.
    let replaced = "f".repeat(64);
    ws.registry_exec(&format!(
        "UPDATE runs SET config_hash = '{replaced}' WHERE run_id = '{run_id}'"
    ));
    drop(held);
    let (code, _, stderr) = finished(package, stderr);
    assert_eq!(code, Some(0), "{stderr}");
    let pkg: Value = serde_json::from_slice(
        &std::fs::read(ws.run_dir("lighthouse", run_id).join("RenderPackage.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(pkg["config_hash"], replaced.as_str());
}

#[test]
fn a_package_waiting_on_a_run_removed_meanwhile_says_it_was_removed() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let held = ws.hold_live("lighthouse", run_id);
    let (package, stderr) = package_waiting(&ws, &[run_id, "--archive", "run.tar"]);
    // What `gc --run` does once it holds the run: rows, then the directory.
    // (SQLite enforces foreign keys where a connection asks, PostgreSQL
    // always.)
    let foreign_keys = if common::postgres_pass() {
        ""
    } else {
        "PRAGMA foreign_keys = ON;"
    };
    ws.registry_exec(&format!(
        "{foreign_keys} DELETE FROM runs WHERE run_id = '{run_id}'"
    ));
    std::fs::remove_dir_all(ws.run_dir("lighthouse", run_id)).unwrap();
    drop(held);
    let (code, stdout, stderr) = finished(package, stderr);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains(&format!("run lighthouse/{run_id} was removed while")),
        "{stderr}"
    );
    assert!(!stderr.contains("not complete"), "{stderr}");
    assert!(!ws.path().join("run.tar").exists());
}

/// sha256 of every file under `dir`, by path relative to it.
fn tree_hashes(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                dirs.push(e.path());
            } else if t.is_file() {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, sha256_file(&e.path()));
            }
        }
    }
    out
}

#[test]
fn an_archive_over_an_artifact_or_the_registry_is_refused_and_nothing_is_written() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let run_dir = format!("artifacts/lighthouse/{run_id}");
    std::os::unix::fs::symlink(ws.run_dir("lighthouse", run_id), ws.path().join("runlink"))
        .unwrap();
    std::fs::create_dir(ws.path().join("sub")).unwrap();
    std::fs::hard_link(
        ws.run_dir("lighthouse", run_id).join("Script.json"),
        ws.path().join("hard.json"),
    )
    .unwrap();
    std::fs::write(ws.path().join("important.txt"), b"keep me").unwrap();
    std::os::unix::fs::symlink("important.txt", ws.path().join("out.tar")).unwrap();
    let before = tree_hashes(&ws.artifacts());
    let db_before = (!common::postgres_pass()).then(|| sha256_file(&ws.db()));
    for dest in [
        format!("{run_dir}/RenderOutput.json"),
        format!("{run_dir}/new.tar"),
        "artifacts/registry.db".to_string(),
        "artifacts/registry.db-wal".to_string(),
        "artifacts/anything.tar".to_string(),
        format!("sub/../{run_dir}/Script.json"),
        "runlink/ShotList.json".to_string(),
        "hard.json".to_string(),
        "out.tar".to_string(),
    ] {
        let out = package(&ws, &[run_id, "--archive", &dest]);
        let stderr = common::assert_usage_error(&out);
        assert!(stderr.contains(&format!("`{dest}`")), "{dest}: {stderr}");
        assert!(!stderr.contains(".tmp-"), "{stderr}");
    }
    // Nothing was written: not even the package, which comes first.
    assert_eq!(tree_hashes(&ws.artifacts()), before);
    if let Some(db_before) = db_before {
        assert_eq!(sha256_file(&ws.db()), db_before);
    }
    assert_eq!(
        ws.registry_value("SELECT count(*) FROM artifacts WHERE artifact_type = 'RenderPackage'"),
        "0"
    );
    assert_eq!(
        std::fs::read(ws.path().join("important.txt")).unwrap(),
        b"keep me"
    );
    assert!(
        std::fs::symlink_metadata(ws.path().join("out.tar"))
            .unwrap()
            .is_symlink()
    );

    // The registry wherever --db puts it, its side files included (a
    // SQLite file's, so in the SQLite pass).
    if !common::postgres_pass() {
        std::fs::create_dir(ws.path().join("reg")).unwrap();
        std::fs::copy(ws.db(), ws.path().join("reg/my.db")).unwrap();
        for dest in [
            "reg/my.db",
            "reg/my.db-shm",
            "reg/my.db.users",
            "reg/my.db.reindex-7",
        ] {
            let out = package(&ws, &["--db", "reg/my.db", run_id, "--archive", dest]);
            common::assert_usage_error(&out);
        }
    }
    // Beside them, an ordinary file is fine.
    let report = package_ok(&ws, &[run_id, "--archive", "sub/run.tar"]);
    assert_eq!(report["archive"]["path"], "sub/run.tar");
}

#[test]
fn a_db_inside_a_run_directory_is_refused_by_every_command() {
    // `--db` names a SQLite file here, whatever the pass.
    sqlite_only!();
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let run_dir = ws.run_dir("lighthouse", run_id);
    // A registry that got there somehow: gc of the run would delete it.
    std::fs::copy(ws.db(), run_dir.join("registry.db")).unwrap();
    let before = tree_hashes(&ws.artifacts());
    for db in [
        format!("artifacts/lighthouse/{run_id}/registry.db"),
        format!("artifacts/lighthouse/{run_id}/deeper/registry.db"),
        "artifacts/lighthouse/new-run/registry.db".to_string(),
    ] {
        for args in [
            vec!["run", "--project", "project.json"],
            vec!["runs", "list"],
            vec!["verify"],
            vec!["lineage", "Script"],
            vec!["gc", "--run", run_id, "--yes"],
            vec!["package", run_id],
            vec!["export", "--format", "prov", run_id],
            vec!["reindex"],
            vec!["diff", run_id, run_id],
        ] {
            let out = ws.cmd().arg("--db").arg(&db).args(&args).output().unwrap();
            let stderr = common::assert_usage_error(&out);
            assert!(
                stderr.contains("inside a run directory"),
                "{args:?}: {stderr}"
            );
        }
    }
    assert_eq!(tree_hashes(&ws.artifacts()), before);
    assert!(!ws.artifacts().join("lighthouse/new-run").exists());
}

// Kills a package with a failpoint, so it needs the test build's feature.
#[cfg(feature = "failpoints")]
#[test]
fn a_killed_package_leaves_no_temp_files_after_the_next_package_or_verify() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let dir = ws.run_dir("lighthouse", run_id);
    let temps = || {
        common::dir_names(&dir)
            .into_iter()
            .filter(|n| n.starts_with(".tmp-"))
            .count()
    };
    let killed_package = || {
        let out = ws
            .cmd()
            .env("ORCHESTRATOR_FAILPOINTS", "write.before_rename=kill@1")
            .args(["package", run_id])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert_eq!(temps(), 1, "the kill left its temp file");
    };
    killed_package();
    ws.assert_verify_clean();
    assert_eq!(temps(), 0, "verify removed the dead writer's temp file");

    killed_package();
    package_ok(&ws, &[run_id]);
    assert_eq!(temps(), 0, "package removed the dead writer's temp file");
}

#[test]
fn verify_leaves_the_temp_files_of_a_run_in_progress_alone() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let temp = ws.run_dir("lighthouse", run_id).join(".tmp-alive");
    std::fs::write(&temp, b"being written").unwrap();
    let held = ws.hold_live("lighthouse", run_id);
    let out = ws.cmd().args(["verify", "--json"]).output().unwrap();
    assert!(out.status.success() || out.status.code() == Some(1));
    assert!(temp.exists(), "a live writer's temp file was removed");
    drop(held);
}

#[test]
fn a_non_utf8_file_name_is_reported_as_it_is_and_left_out_of_the_archive() {
    use std::os::unix::ffi::OsStrExt;
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let dir = ws.run_dir("lighthouse", run_id);
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
    std::fs::write(dir.join(odd), b"12345").unwrap();

    let verify = ws.cmd().args(["verify", "--json"]).output().unwrap();
    assert_eq!(verify.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["kind"], "unregistered");
    assert_eq!(
        problems[0]["path"],
        format!("lighthouse/{run_id}/caf\\xE9.png")
    );
    assert_eq!(problems[0]["found"], "a file of 5 bytes");

    let out = package(&ws, &[run_id, "--archive", "run.tar", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("`caf\\xE9.png`"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["archive"]["left_out"],
        serde_json::json!(["caf\\xE9.png"])
    );
    assert_eq!(members(&ws.path().join("run.tar")).len(), 13);
}

#[test]
fn an_archive_holds_only_the_registered_files_of_the_run() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let dir = ws.run_dir("lighthouse", run_id);
    std::fs::write(dir.join("notes.txt"), b"private").unwrap();
    std::fs::write(dir.join("Script.json.bak"), b"old").unwrap();
    std::fs::create_dir(dir.join("scratch")).unwrap();
    let report = package_ok(&ws, &[run_id, "--archive", "run.tar"]);
    let names: Vec<String> = members(&ws.path().join("run.tar"))
        .into_iter()
        .map(|m| m.0)
        .collect();
    let mut expected = vec![format!("lighthouse/{run_id}/run_summary.json")];
    for ty in TYPES.iter().chain(&["RenderPackage"]) {
        expected.push(format!("lighthouse/{run_id}/{ty}.json"));
        expected.push(format!("lighthouse/{run_id}/{ty}.meta.json"));
    }
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(
        report["archive"]["left_out"],
        serde_json::json!(["Script.json.bak", "notes.txt", "scratch"])
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn a_full_disk_while_archiving_names_the_archive_not_the_file_read() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let out = ws
        .cmd()
        .env("ORCHESTRATOR_FAILPOINTS", "archive.write=enospc@3")
        .args(["package", run_id, "--archive", "run.tar"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    let first = stderr.lines().next().unwrap();
    assert_eq!(
        first, "error: the disk is full: writing `run.tar` needs space",
        "{stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(!stderr.contains(".tmp-"), "{stderr}");
    assert!(!ws.path().join("run.tar").exists());
    assert!(
        !ws.entries().iter().any(|n| n.starts_with(".tmp-")),
        "{:?}",
        ws.entries()
    );
}

#[test]
fn a_db_symlinked_into_a_run_directory_is_refused_by_every_command() {
    // `--db` names a SQLite file here, whatever the pass.
    sqlite_only!();
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let run_dir = ws.run_dir("lighthouse", run_id);
    std::fs::copy(ws.db(), run_dir.join("registry.db")).unwrap();
    // SQLite follows the link: the registry, its `-wal` and `-shm` would
    // live in the run directory, which gc renames and empties.
    let existing = ws.path().join("link.db");
    std::os::unix::fs::symlink(
        format!("artifacts/lighthouse/{run_id}/registry.db"),
        &existing,
    )
    .unwrap();
    let dangling = ws.path().join("dangling.db");
    std::os::unix::fs::symlink("artifacts/lighthouse/new-run/registry.db", &dangling).unwrap();
    // Two links deep, the first to a name outside the tree.
    let twice = ws.path().join("twice.db");
    std::os::unix::fs::symlink("link.db", &twice).unwrap();
    let before = tree_hashes(&ws.artifacts());
    for db in ["link.db", "dangling.db", "twice.db"] {
        for args in [
            vec!["run", "--project", "project.json"],
            vec!["runs", "list"],
            vec!["verify"],
            vec!["gc", "--run", run_id, "--yes"],
            vec!["package", run_id],
            vec!["reindex"],
        ] {
            let out = ws.cmd().args(["--db", db]).args(&args).output().unwrap();
            let stderr = common::assert_usage_error(&out);
            assert!(
                stderr.contains(&format!("the registry `{db}`"))
                    && stderr.contains("inside a run directory"),
                "{db} {args:?}: {stderr}"
            );
        }
    }
    assert_eq!(tree_hashes(&ws.artifacts()), before);
    assert!(!ws.artifacts().join("lighthouse/new-run").exists());
    // A link to a registry outside the run directories is fine.
    let out = ws
        .cmd()
        .args(["--db", "artifacts/registry.db", "runs", "list"])
        .output();
    assert_eq!(out.unwrap().status.code(), Some(0));
    let fine = ws.path().join("fine.db");
    std::os::unix::fs::symlink("artifacts/registry.db", &fine).unwrap();
    let out = ws
        .cmd()
        .args(["--db", "fine.db", "runs", "list"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_output_or_db_through_a_bind_mount_of_a_run_directory_is_refused() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let run_dir = ws.run_dir("lighthouse", run_id);
    let test = "an_output_or_db_through_a_bind_mount_of_a_run_directory_is_refused";
    let Some(_mounted) = common::Mount::bind(&run_dir, &ws.path().join("mnt"), test) else {
        return;
    };
    let before = tree_hashes(&ws.artifacts());
    for args in [
        vec!["package", run_id, "--archive", "mnt/run.tar"],
        vec![
            "export",
            "--format",
            "prov",
            run_id,
            "--output",
            "mnt/Script.json",
        ],
        vec!["--db", "mnt/registry.db", "runs", "list"],
        vec!["--db", "mnt/deeper/registry.db", "runs", "list"],
    ] {
        let out = ws.cmd().args(&args).output().unwrap();
        let stderr = common::assert_usage_error(&out);
        assert!(
            stderr.contains("`mnt/"),
            "{args:?} names the user's path: {stderr}"
        );
    }
    assert_eq!(tree_hashes(&ws.artifacts()), before);
    assert!(!run_dir.join("run.tar").exists());
}

// Kills a gc with a failpoint, so it needs the test build's feature.
#[cfg(feature = "failpoints")]
#[test]
fn packaging_a_run_a_killed_gc_was_deleting_says_so_and_writes_nothing() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let killed = ws
        .cmd()
        .env("ORCHESTRATOR_FAILPOINTS", "gc.after_mark=kill")
        .args(["gc", "--run", run_id, "--yes"])
        .output()
        .unwrap();
    assert_eq!(killed.status.code(), None, "killed");
    let marked = ws
        .artifacts()
        .join(format!("lighthouse/.deleting-{run_id}"));
    let before = tree_hashes(&marked);

    // Was exit 5, "reading `…/Script.json`: No such file or directory".
    let out = package(&ws, &[run_id, "--archive", "run.tar"]);
    let stderr = common::assert_usage_error(&out);
    assert!(stderr.contains("is being deleted"), "{stderr}");
    assert!(
        stderr.contains(&format!("gc --run {run_id} --yes")),
        "{stderr}"
    );
    assert_eq!(tree_hashes(&marked), before);
    assert!(!ws.run_dir("lighthouse", run_id).exists());
    assert!(!ws.path().join("run.tar").exists());
}
