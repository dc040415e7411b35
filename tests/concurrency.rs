//! Many processes at once against one registry: different runs proceed in
//! parallel, the same run is run by one process while the others wait and
//! then find it up to date, and readers never get in a writer's way.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use common::{Workspace, example_config, postgres_pass, statuses, summary_of};
use serde_json::Value;

/// A config for `project_id` with `scenes` scenes, written into `ws`.
fn project(ws: &Workspace, project_id: &str, scenes: u32) -> String {
    let mut config = example_config();
    config["project_id"] = project_id.into();
    config["scene_count"] = scenes.into();
    let path = ws.write_config(&format!("{project_id}.json"), &config);
    path.to_str().unwrap().to_string()
}

/// Wait for `child`, whose stdout is still piped; `stderr` is what a
/// reader thread collected.
fn finish(child: Child, stderr: String) -> std::process::Output {
    let mut out = child.wait_with_output().unwrap();
    out.stderr = stderr.into_bytes();
    out
}

#[test]
fn eight_projects_and_three_takes_of_one_run_on_a_fresh_registry() {
    let ws = Workspace::new();
    const SHARED: &str = "shared";
    const SHARED_RUN: &str = "take-1";
    // Big enough that the runs overlap.
    let solo: Vec<String> = (0..8)
        .map(|i| project(&ws, &format!("solo-{i}"), 300))
        .collect();
    let shared = project(&ws, SHARED, 300);

    // The test holds the shared run until all three takes say they wait,
    // so none of them can slip in after another has finished.
    let held = ws.hold_run(SHARED, SHARED_RUN);
    if !postgres_pass() {
        assert!(!ws.db().exists(), "the registry must start out missing");
    }

    let mut solos: Vec<Child> = solo
        .iter()
        .map(|p| ws.spawn(&["run", "--json", "--project", p]))
        .collect();
    let (tx, waiting) = mpsc::channel();
    let mut takes = Vec::new();
    for _ in 0..3 {
        let mut child = ws.spawn(&[
            "run",
            "--json",
            "--project",
            &shared,
            "--run-id",
            SHARED_RUN,
            "--lock-timeout",
            "600",
        ]);
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let tx = tx.clone();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in stderr.lines() {
                let line = line.unwrap();
                if line.starts_with("waiting for run") {
                    let _ = tx.send(line.clone());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        takes.push((child, reader));
    }
    let expected = format!(
        "waiting for run {SHARED}/{SHARED_RUN} held by {}",
        held.holder
    );
    for _ in 0..3 {
        // A guard against a hang, not a timing assertion.
        let line = waiting
            .recv_timeout(Duration::from_secs(300))
            .expect("every take says it is waiting");
        assert_eq!(line, expected);
    }
    drop(held);

    let mut solo_runs = Vec::new();
    for child in solos.drain(..) {
        let summary = summary_of(&child.wait_with_output().unwrap());
        assert_eq!(statuses(&summary), vec!["executed"; 5]);
        solo_runs.push(summary);
    }
    let mut take_runs = Vec::new();
    for (child, reader) in takes {
        let out = finish(child, reader.join().unwrap());
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(stderr.matches("waiting for run").count(), 1, "{stderr}");
        take_runs.push(summary_of(&out));
    }

    // Exactly one take executed the five stages; the others found them done.
    let executed: u64 = take_runs
        .iter()
        .map(|s| s["stages_executed"].as_u64().unwrap())
        .sum();
    assert_eq!(executed, 5);
    let mut kinds: Vec<Vec<String>> = take_runs.iter().map(statuses).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            vec!["executed".to_string(); 5],
            vec!["skipped".to_string(); 5],
            vec!["skipped".to_string(); 5],
        ]
    );

    if !postgres_pass() {
        let integrity: String = ws
            .sqlite()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
    }

    let mut listed: Vec<(String, String)> = ws
        .runs_list(&["--limit", "100"])
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "complete", "{r}");
            (
                r["project_id"].as_str().unwrap().to_string(),
                r["run_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    let mut expected: Vec<(String, String)> = solo_runs
        .iter()
        .chain(&take_runs[..1])
        .map(|s| {
            (
                s["project_id"].as_str().unwrap().to_string(),
                s["run_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(listed, expected);

    let out = ws.cmd().args(["verify", "--json"]).output().unwrap();
    let report = summary_of(&out);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["runs_checked"], 9);
    assert_eq!(report["artifacts_checked"], 45);
}

/// Run `args` to completion; assert it exited 0 and return its stdout.
fn read_ok(ws: &Workspace, args: &[&str]) -> Value {
    let out = ws.cmd().args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "`{}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[test]
fn readers_and_no_wait_runs_succeed_while_a_large_run_writes() {
    let ws = Workspace::new();
    // `quiet` is only read; `small` is re-run over and over; `big` is the
    // large run everything overlaps with.
    let quiet = project(&ws, "quiet", 3);
    let quiet_id = ws.run_ok(std::path::Path::new(&quiet), &[])["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let small = project(&ws, "small", 3);
    ws.run_ok(std::path::Path::new(&small), &[]);
    let big = project(&ws, "big", 3000);

    let mut writer = ws.spawn(&["run", "--json", "--project", &big]);
    let mut writer_stderr = writer.stderr.take().unwrap();
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        writer_stderr.read_to_string(&mut s).unwrap();
        s
    });
    // Start reading once the large run is under way.
    loop {
        assert!(writer.try_wait().unwrap().is_none(), "the run ended early");
        let rows = ws.runs_list(&[]);
        if let Some(row) = rows.iter().find(|r| r["project_id"] == "big") {
            assert_eq!(row["status"], "running");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = AtomicBool::new(false);
    let (reads, no_wait_runs) = std::thread::scope(|scope| {
        // Re-runs of another run, refused at once if anything held it.
        let runs = scope.spawn(|| {
            let mut n = 0;
            loop {
                let summary = read_ok(&ws, &["run", "--json", "--no-wait", "--project", &small]);
                assert_eq!(statuses(&summary), vec!["skipped"; 5]);
                n += 1;
                if done.load(Ordering::SeqCst) {
                    return n;
                }
            }
        });
        let readers = scope.spawn(|| {
            let mut n = 0;
            loop {
                read_ok(&ws, &["runs", "list", "--json"]);
                read_ok(&ws, &["lineage", "RenderOutput", "--project", "quiet"]);
                read_ok(&ws, &["lineage", "RenderOutput", "--run", &quiet_id]);
                // A finished run verifies clean while others write.
                let report = read_ok(&ws, &["verify", "--json", "--project", "quiet"]);
                assert_eq!(report["ok"], true, "{report}");
                n += 1;
                if done.load(Ordering::SeqCst) {
                    return n;
                }
            }
        });
        let status = writer.wait().unwrap();
        done.store(true, Ordering::SeqCst);
        let stderr = drain.join().unwrap();
        assert!(status.success(), "{stderr}");
        (readers.join().unwrap(), runs.join().unwrap())
    });
    assert!(reads > 0 && no_wait_runs > 0);

    let mut out = String::new();
    writer
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(statuses(&summary), vec!["executed"; 5]);
    let report = read_ok(&ws, &["verify", "--json"]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["runs_checked"], 3);
}
