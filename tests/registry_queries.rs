//! What the registry's read queries answer now that they read only what
//! they print (issue 5): the per-project run counts behind "showing N of M"
//! stay equal to the runs table through every kind of change, the count is
//! right for every filter, a hash target walks from every copy of its bytes,
//! and an ambiguous run prefix names a bounded list of candidates.
//! (`src/registry/query_plans.rs` checks that each query uses an index.)

mod common;

use common::{Workspace, assert_usage_error, example_config, example_run};
use serde_json::Value;

/// The stderr note of `runs list <args> --limit <limit>`.
fn note(ws: &Workspace, args: &[&str], limit: usize) -> String {
    let out = ws
        .cmd()
        .args(["runs", "list", "--json", "--limit", &limit.to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// (project, status, runs) rows.
type Counts = Vec<(String, String, i64)>;

/// `run_counts` (zero rows left out) and what counting `runs` says.
fn counts(ws: &Workspace) -> (Counts, Counts) {
    let read = |sql: &str| -> Counts {
        ws.registry_rows(sql)
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone(), r[2].parse().unwrap()))
            .collect()
    };
    (
        read("SELECT project_id, status, runs FROM run_counts WHERE runs > 0 ORDER BY 1, 2"),
        read("SELECT project_id, status, count(*) FROM runs GROUP BY 1, 2 ORDER BY 1, 2"),
    )
}

/// The example run, two copies of it and a run of project `other`.
fn four_runs() -> Workspace {
    let (ws, _) = example_run();
    let config = ws.path().join("project.json");
    ws.run_ok(&config, &["--run-id", "copy-1"]);
    ws.run_ok(&config, &["--run-id", "copy-2"]);
    let mut other = example_config();
    other["project_id"] = "other".into();
    let other = ws.write_config("other.json", &other);
    ws.run_ok(&other, &[]);
    ws
}

#[test]
fn run_counts_follow_every_change_to_the_runs_table() {
    let ws = four_runs();
    let (kept, counted) = counts(&ws);
    assert_eq!(kept, counted);
    assert_eq!(
        kept,
        [
            ("lighthouse".into(), "complete".into(), 3),
            ("other".into(), "complete".into(), 1)
        ]
    );
    // A resume passes through `running` and back.
    ws.run_ok(&ws.path().join("project.json"), &["--run-id", "copy-1"]);
    assert_eq!(counts(&ws).0, kept);

    // Changes made by hand are counted too.
    ws.registry_exec(
        "UPDATE runs SET status = 'failed' WHERE run_id = 'copy-2';
         DELETE FROM runs WHERE project_id = 'other';",
    );
    let (kept, counted) = counts(&ws);
    assert_eq!(kept, counted);
    assert_eq!(kept.len(), 2, "{kept:?}");
}

#[test]
fn a_registry_from_before_the_counts_gets_them_on_upgrade() {
    let ws = four_runs();
    // Take the registry back to V3: no counts, no triggers, no V4 (or
    // later) history; V5 rebuilds the artifacts table whatever it holds.
    // A PostgreSQL trigger is dropped ON its table, with its function.
    let triggers = if common::postgres_pass() {
        "DROP TRIGGER run_counts_on_insert ON runs; DROP FUNCTION run_counts_on_insert();
         DROP TRIGGER run_counts_on_delete ON runs; DROP FUNCTION run_counts_on_delete();
         DROP TRIGGER run_counts_on_update ON runs; DROP FUNCTION run_counts_on_update();"
    } else {
        "DROP TRIGGER run_counts_on_insert; DROP TRIGGER run_counts_on_delete;
         DROP TRIGGER run_counts_on_update;"
    };
    ws.registry_exec(&format!(
        "{triggers} DROP TABLE run_counts;
         DROP INDEX runs_by_project_created; DROP INDEX runs_by_created_at;
         DROP INDEX runs_by_status_created; DROP INDEX artifacts_by_sha256_run;
         CREATE INDEX artifacts_by_sha256 ON artifacts (sha256);
         CREATE INDEX runs_by_started_at ON runs (started_at DESC);
         CREATE INDEX runs_by_status ON runs (status, started_at DESC);
         ALTER TABLE runs DROP COLUMN created_at; ALTER TABLE runs DROP COLUMN title;
         ALTER TABLE runs DROP COLUMN config_path;
         DELETE FROM refinery_schema_history WHERE version >= 4;"
    ));
    if common::postgres_pass() {
        // A shared registry is upgraded by `registry migrate` alone, never
        // as a side effect of another command.
        let out = ws.cmd().args(["runs", "list"]).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        let out = ws.cmd().args(["registry", "migrate"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    assert!(note(&ws, &[], 1).contains("1 of 4"));
    let (kept, counted) = counts(&ws);
    assert_eq!(kept, counted);
    assert_eq!(kept.iter().map(|c| c.2).sum::<i64>(), 4);
}

#[test]
fn the_note_counts_every_matching_run_whatever_the_filter() {
    let ws = four_runs();
    for (args, limit, expected) in [
        (&[][..], 1, "1 of 4"),
        (&["--project", "lighthouse"][..], 1, "1 of 3"),
        (&["--status", "complete"][..], 2, "2 of 4"),
        (&["--since", "2000-01-01"][..], 1, "1 of 4"),
        (
            &["--project", "lighthouse", "--since", "2000-01-01"][..],
            2,
            "2 of 3",
        ),
        (
            &["--project", "lighthouse", "--status", "complete"][..],
            1,
            "1 of 3",
        ),
        (
            &["--status", "complete", "--since", "2000-01-01"][..],
            3,
            "3 of 4",
        ),
    ] {
        let note = note(&ws, args, limit);
        assert!(note.contains(expected), "{args:?}: {note}");
    }
    for (args, limit) in [(&[][..], 4), (&["--project", "other"][..], 1)] {
        let note = note(&ws, args, limit);
        assert!(note.is_empty(), "{args:?}: {note}");
    }
    assert!(note(&ws, &["--since", "2999-01-01"], 1).is_empty());

    // Crashed runs: recorded `running`, no lock held.
    ws.registry_exec("UPDATE runs SET status = 'running' WHERE run_id LIKE 'copy-%'");
    let interrupted = note(&ws, &["--status", "interrupted"], 1);
    assert!(interrupted.contains("1 of 2"), "{interrupted}");
    assert!(ws.runs_list(&["--status", "running"]).is_empty());
    let complete = note(&ws, &["--status", "complete"], 1);
    assert!(complete.contains("1 of 2"), "{complete}");
}

/// The example and the same film rendered wider: Script, ShotList and
/// AssetManifest are shared, RenderPlan and RenderOutput are not.
fn two_renders() -> (Workspace, Value, Value) {
    let (ws, example) = example_run();
    let mut wide = example_config();
    wide["render"]["width"] = 1920.into();
    let wide = ws.write_config("wide.json", &wide);
    let wide = ws.run_ok(&wide, &["--run-id", "wide"]);
    (ws, example, wide)
}

fn sha_of(summary: &Value, ty: &str) -> String {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["artifact_type"] == ty)
        .unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string()
}

fn lineage_json(ws: &Workspace, args: &[&str]) -> Value {
    let out = ws
        .cmd()
        .arg("lineage")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (type, sha256, run_id) of each node.
fn nodes(graph: &Value) -> Vec<(String, String, String)> {
    graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["artifact_type"].as_str().unwrap().to_string(),
                n["sha256"].as_str().unwrap().to_string(),
                n["run_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_hash_target_walks_from_every_copy_of_its_bytes() {
    let (ws, example, wide) = two_renders();
    let script = sha_of(&example, "Script");
    assert_eq!(script, sha_of(&wide, "Script"));
    assert_ne!(sha_of(&example, "RenderPlan"), sha_of(&wide, "RenderPlan"));

    // Everything made from that Script, in either run.
    let graph = lineage_json(&ws, &[&script[..12], "--descendants"]);
    assert_eq!(graph["root"], script.as_str());
    let found = nodes(&graph);
    let example_id = example["run_id"].as_str().unwrap();
    for (ty, summary) in [
        ("RenderPlan", &example),
        ("RenderPlan", &wide),
        ("RenderOutput", &example),
        ("RenderOutput", &wide),
    ] {
        let sha = sha_of(summary, ty);
        let run = summary["run_id"].as_str().unwrap();
        assert!(
            found.contains(&(ty.to_string(), sha.clone(), run.to_string())),
            "{ty} of {run} missing: {found:?}"
        );
    }
    assert_eq!(found.len(), 7, "{found:?}");
    assert_eq!(graph["edges"].as_array().unwrap().len(), 11, "{graph}");
    // Shared bytes are shown by the copy in the root's run (the newest).
    for (ty, _, run) in &found[..3] {
        assert_eq!(run, "wide", "{ty}");
    }

    // Narrowed to one run, or named by type (one run's file), one render.
    for args in [
        vec![&script[..12], "--descendants", "--run", example_id],
        vec!["Script", "--descendants"],
        vec!["Script", "--descendants", "--run", "wide"],
    ] {
        let found = nodes(&lineage_json(&ws, &args));
        assert_eq!(found.len(), 5, "{args:?}: {found:?}");
    }
    // A hash only one run has walks only that run.
    let plan = sha_of(&wide, "RenderPlan");
    let found = nodes(&lineage_json(&ws, &[&plan]));
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found.iter().all(|(_, _, run)| run == "wide"), "{found:?}");
}

#[test]
fn an_ambiguous_run_prefix_names_ten_runs_and_counts_the_rest() {
    let (ws, _) = example_run();
    // Twelve more runs whose ids share a prefix, added by hand.
    ws.registry_exec(
        "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12)
         INSERT INTO runs (project_id, run_id, config_hash, config_json, run_dir, status,
                           started_at, orchestrator_version, host)
         SELECT r.project_id, 'take-' || n.i, r.config_hash, r.config_json,
                r.run_dir, 'complete', r.started_at, r.orchestrator_version, r.host
         FROM runs r, n",
    );
    let out = ws.cmd().args(["runs", "show", "take"]).output().unwrap();
    let err = assert_usage_error(&out);
    assert!(
        err.contains("is ambiguous") && err.contains("and 2 more"),
        "{err}"
    );
    assert_eq!(err.matches("take-").count(), 10, "{err}");
    // The exact id still wins over the runs it is a prefix of.
    let out = ws
        .cmd()
        .args(["runs", "show", "take-1", "--json"])
        .output()
        .unwrap();
    let shown: Value = common::summary_of(&out);
    assert_eq!(shown["run_id"], "take-1");
}
