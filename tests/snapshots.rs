//! Snapshot tests of what people read: the human output of every command
//! and the text of common errors and hints (insta; the snapshots live in
//! `tests/snapshots/`). Hashes, times, durations, pids and temp paths are
//! redacted, so a snapshot changes only when the wording or the layout
//! does — and then `cargo insta review` shows the change for review.
//!
//! Output goes to a pipe here, so tables are in their plain form.
//!
//! The same snapshots serve the suite's PostgreSQL pass: the output must be
//! the same on both backends but for the registry's name, which the one
//! snapshot that shows it redacts ([`registry_redacted`]). Snapshots of a
//! missing registry file are SQLite's and taken in its pass alone.

mod common;

use common::{Workspace, example_config};
use serde_json::json;

/// stdout, stderr and the exit code of `orchestrator <args>`, as one text.
fn shown(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.cmd().args(args).output().unwrap();
    let mut text = format!("$ orchestrator {}\n", args.join(" "));
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.is_empty() {
        text.push_str("--- stderr\n");
        text.push_str(&stderr);
    }
    text.push_str(&format!("--- exit {}\n", out.status.code().unwrap_or(-1)));
    let text = text.replace(&ws.path().display().to_string(), "[WS]");
    match ws.pg_url() {
        Some(url) => text.replace(url, "[REGISTRY]"),
        None => text,
    }
}

/// `text` with the default SQLite registry's name redacted as [`shown`]
/// redacts a PostgreSQL one, for output that names the registry.
fn registry_redacted(text: String) -> String {
    text.replace("`artifacts/registry.db`", "`[REGISTRY]`")
}

/// Redactions shared by every snapshot.
fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(false);
    for (pattern, replacement) in [
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[TIME]"),
        (r"\b[0-9a-f]{64}\b", "[SHA256]"),
        (r"\b[0-9a-f]{16}\b", "[RUN]"),
        (r"\b[0-9a-f]{12}\b", "[SHA]"),
        // A duration inside a table row, with the padding that aligns the
        // next column: that padding varies with the duration's digits.
        (r"\b\d+(\.\d+)? (ms|s) {2,}", "[DUR]  "),
        (r"\b\d+(\.\d+)? (ms|s)\b", "[DUR]"),
        (r"\bpid \d+", "pid [PID]"),
        (r"\b\d+ bytes\b", "[N] bytes"),
        // Sizes ending a table row: a run summary's size varies with the
        // digits of the durations it records.
        (r"(?m)\b\d{4,}$", "[BYTES]"),
    ] {
        s.add_filter(pattern, replacement);
    }
    s
}

macro_rules! snap {
    ($name:expr, $text:expr) => {
        settings().bind(|| insta::assert_snapshot!($name, $text))
    };
}

#[test]
fn human_output_of_every_command() {
    let ws = Workspace::new();
    let config = ws.example();
    let project = config.display().to_string();
    let mut changed = example_config();
    changed["seed"] = json!(1978);
    let changed = ws.write_config("changed.json", &changed);
    let changed = changed.display().to_string();

    snap!(
        "run_first",
        shown(&ws, &["run", "--project", &project, "--run-id", "take-1"])
    );
    snap!(
        "run_resume",
        shown(&ws, &["run", "--project", &project, "--run-id", "take-1"])
    );
    snap!(
        "run_dry_run",
        shown(
            &ws,
            &[
                "run",
                "--project",
                &changed,
                "--run-id",
                "take-2",
                "--dry-run"
            ]
        )
    );
    shown(&ws, &["run", "--project", &changed, "--run-id", "take-2"]);
    snap!("runs_list", shown(&ws, &["runs", "list"]));
    snap!(
        "runs_list_show",
        shown(&ws, &["runs", "list", "--show", "seed,scene_count"])
    );
    snap!("runs_show", shown(&ws, &["runs", "show", "take-1"]));
    snap!(
        "lineage_tree",
        shown(&ws, &["lineage", "RenderOutput", "--run", "take-1"])
    );
    snap!("verify_clean", shown(&ws, &["verify"]));
    snap!(
        "diff",
        shown(&ws, &["diff", "take-1", "take-2", "--max-paths", "2"])
    );
    snap!("package", shown(&ws, &["package", "take-1"]));
    snap!("gc_dry_run", shown(&ws, &["gc", "--run", "take-2"]));
    snap!("gc_yes", shown(&ws, &["gc", "--run", "take-2", "--yes"]));
    snap!("reindex", registry_redacted(shown(&ws, &["reindex"])));
}

#[test]
fn errors_and_hints_people_meet_first() {
    let ws = Workspace::new();
    let config = ws.example();
    let project = config.display().to_string();
    // A missing registry is a missing file; a PostgreSQL one is there.
    if !common::postgres_pass() {
        snap!("error_no_registry", shown(&ws, &["runs", "list"]));
    }
    snap!(
        "error_run_without_project_flag",
        shown(&ws, &["run", &project])
    );
    std::fs::write(
        ws.path().join("comment.json"),
        "{\n  // seed\n  \"seed\": 1\n}\n",
    )
    .unwrap();
    snap!(
        "error_config_comment",
        shown(&ws, &["run", "--project", "comment.json"])
    );
    let mut typo = example_config();
    typo["render"] = json!({"widht": 3840});
    let typo = ws.write_config("typo.json", &typo).display().to_string();
    snap!(
        "warning_unknown_key",
        shown(&ws, &["run", "--project", &typo, "--dry-run"])
    );
    snap!(
        "error_unknown_key_strict",
        shown(&ws, &["run", "--project", &typo, "--strict"])
    );
    shown(&ws, &["run", "--project", &project, "--run-id", "take-1"]);
    snap!(
        "error_run_id_taken",
        shown(&ws, &["run", "--project", &typo, "--run-id", "take-1"])
    );
    snap!("error_unknown_run", shown(&ws, &["runs", "show", "nope"]));
    snap!("error_type_near_miss", shown(&ws, &["lineage", "Shotlist"]));
    snap!(
        "error_no_package",
        shown(&ws, &["lineage", "RenderPackage"])
    );
}

#[test]
fn errors_for_a_wrong_artifacts_dir_or_db() {
    let ws = Workspace::new();
    std::fs::create_dir(ws.path().join("somedir")).unwrap();
    // The default registry file is in the artifacts directory; a
    // PostgreSQL registry is not.
    if !common::postgres_pass() {
        snap!(
            "error_artifacts_dir_missing",
            shown(&ws, &["runs", "list", "--artifacts-dir", "nope"])
        );
    }
    snap!(
        "error_db_is_a_directory",
        shown(&ws, &["runs", "list", "--db", "somedir"])
    );
}
