//! `orchestrator verify`, driven through the binary against real damage.

mod common;

use std::path::PathBuf;

use common::{Workspace, example_run};
use serde_json::Value;

struct Verified {
    code: i32,
    report: Value,
}

fn verify_json(ws: &Workspace, args: &[&str]) -> Verified {
    let out = ws
        .cmd()
        .args(["verify", "--json"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    Verified {
        code: out.status.code().unwrap(),
        report: serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))),
    }
}

fn problems(v: &Verified) -> Vec<(String, String)> {
    v.report["problems"]
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

fn run_dir(ws: &Workspace, summary: &Value) -> PathBuf {
    ws.run_dir("lighthouse", summary["run_id"].as_str().unwrap())
}

fn rel(summary: &Value, file: &str) -> String {
    format!("lighthouse/{}/{file}", summary["run_id"].as_str().unwrap())
}

fn last_results(ws: &Workspace) -> Vec<(String, String)> {
    ws.registry_rows(
        "SELECT artifact_type, last_verify_result FROM artifact_overview
         WHERE last_verified_at IS NOT NULL ORDER BY stage",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect()
}

#[test]
fn a_clean_run_verifies_and_records_ok() {
    let (ws, summary) = example_run();
    let v = verify_json(&ws, &[]);
    assert_eq!(v.code, 0, "{}", v.report);
    assert_eq!(v.report["ok"], true);
    assert_eq!(v.report["runs_checked"], 1);
    assert_eq!(v.report["artifacts_checked"], 5);
    assert!(problems(&v).is_empty());
    let runs = v.report["runs"].as_array().unwrap();
    assert_eq!(runs[0]["run_id"], summary["run_id"]);
    assert_eq!(runs[0]["artifacts_ok"], 5);

    let recorded = last_results(&ws);
    assert_eq!(recorded.len(), 5);
    assert!(recorded.iter().all(|(_, r)| r == "ok"), "{recorded:?}");

    let out = ws.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("RUN ID") && text.contains("ok: 5 artifacts in 1 run"),
        "{text}"
    );
}

#[test]
fn a_flipped_byte_is_a_hash_mismatch_naming_both_hashes() {
    let (ws, summary) = example_run();
    let path = run_dir(&ws, &summary).join("ShotList.json");
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip a byte inside a string value so the file stays valid JSON.
    let i = bytes.windows(5).position(|w| w == b"sc000").unwrap() + 4;
    bytes[i] = b'9';
    std::fs::write(&path, &bytes).unwrap();

    let v = verify_json(&ws, &[]);
    assert_eq!(v.code, 1);
    assert_eq!(v.report["ok"], false);
    assert_eq!(
        problems(&v),
        vec![("hash_mismatch".to_string(), rel(&summary, "ShotList.json"))]
    );
    let p = &v.report["problems"][0];
    let recorded = summary["stages"][1]["sha256"].as_str().unwrap();
    assert!(p["expected"].as_str().unwrap().contains(recorded), "{p}");
    assert!(
        p["found"]
            .as_str()
            .unwrap()
            .contains(&common::sha256_file(&path)),
        "{p}"
    );
    assert_eq!(p["artifact_type"], "ShotList");

    let recorded = last_results(&ws);
    assert_eq!(
        recorded,
        vec![
            ("Script".into(), "ok".into()),
            ("ShotList".into(), "problem".into()),
            ("AssetManifest".into(), "ok".into()),
            ("RenderPlan".into(), "ok".into()),
            ("RenderOutput".into(), "ok".into()),
        ]
    );

    // The text form names the file, the expectation and the finding.
    let out = ws.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().next().unwrap();
    assert!(line.starts_with(&rel(&summary, "ShotList.json")), "{line}");
    assert!(line.contains("hash mismatch") && line.contains("expected") && line.contains("found"));
}

#[test]
fn a_change_that_breaks_the_schema_is_reported_with_its_pointer() {
    let (ws, summary) = example_run();
    let path = run_dir(&ws, &summary).join("RenderPlan.json");
    let mut plan: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    plan["fps"] = "fast".into();
    std::fs::write(&path, serde_json::to_vec_pretty(&plan).unwrap()).unwrap();

    let v = verify_json(&ws, &[]);
    assert_eq!(v.code, 1);
    let kinds: Vec<_> = problems(&v).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, vec!["hash_mismatch", "schema_invalid"]);
    assert!(
        v.report["problems"][1]["found"]
            .as_str()
            .unwrap()
            .contains("/fps")
    );
}

#[test]
fn a_deleted_file_is_missing() {
    let (ws, summary) = example_run();
    std::fs::remove_file(run_dir(&ws, &summary).join("RenderPlan.json")).unwrap();
    let v = verify_json(&ws, &[]);
    assert_eq!(v.code, 1);
    assert_eq!(
        problems(&v),
        vec![("missing".to_string(), rel(&summary, "RenderPlan.json"))]
    );
}

#[test]
fn an_edited_meta_file_disagrees_with_the_registry() {
    let (ws, summary) = example_run();
    let path = run_dir(&ws, &summary).join("AssetManifest.meta.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    meta["sha256"] = "0".repeat(64).into();
    std::fs::write(&path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();

    let v = verify_json(&ws, &[]);
    assert_eq!(v.code, 1);
    assert_eq!(
        problems(&v),
        vec![(
            "meta_mismatch".to_string(),
            rel(&summary, "AssetManifest.meta.json")
        )]
    );
    let found = v.report["problems"][0]["found"].as_str().unwrap();
    assert!(
        found.contains("sha256") && found.contains(&"0".repeat(64)),
        "{found}"
    );

    std::fs::remove_file(&path).unwrap();
    let v = verify_json(&ws, &[]);
    assert_eq!(
        problems(&v),
        vec![(
            "meta_missing".to_string(),
            rel(&summary, "AssetManifest.meta.json")
        )]
    );
}

#[test]
fn a_symlinked_artifact_is_reported_and_not_followed() {
    let (ws, summary) = example_run();
    let path = run_dir(&ws, &summary).join("Script.json");
    // An identical copy elsewhere: following the link would find nothing wrong.
    let elsewhere = ws.path().join("Script-copy.json");
    std::fs::rename(&path, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();

    let v = verify_json(&ws, &[]);
    assert_eq!(v.code, 1);
    assert_eq!(
        problems(&v),
        vec![("not_regular_file".to_string(), rel(&summary, "Script.json"))]
    );
    let found = v.report["problems"][0]["found"].as_str().unwrap();
    assert!(
        found.contains("symlink") && found.contains("not followed"),
        "{found}"
    );
}

#[test]
fn a_stray_file_in_a_run_directory_is_unregistered() {
    let (ws, summary) = example_run();
    std::fs::write(run_dir(&ws, &summary).join("notes.txt"), "todo").unwrap();
    std::fs::create_dir(run_dir(&ws, &summary).join("renders")).unwrap();
    let v = verify_json(&ws, &[]);
    assert_eq!(v.code, 1);
    assert_eq!(
        problems(&v),
        vec![
            ("unregistered".to_string(), rel(&summary, "notes.txt")),
            ("unregistered".to_string(), rel(&summary, "renders")),
        ]
    );
}

#[test]
fn an_edited_run_summary_is_a_hash_mismatch() {
    let (ws, summary) = example_run();
    let path = run_dir(&ws, &summary).join("run_summary.json");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b" ");
    std::fs::write(&path, bytes).unwrap();
    let v = verify_json(&ws, &[]);
    assert_eq!(
        problems(&v),
        vec![(
            "hash_mismatch".to_string(),
            rel(&summary, "run_summary.json")
        )]
    );
}

#[test]
fn scope_by_run_prefix_and_project() {
    let (ws, summary) = example_run();
    let mut other = common::example_config();
    other["project_id"] = "other".into();
    let other_path = ws.write_config("other.json", &other);
    let other_summary = ws.run_ok(&other_path, &[]);
    // Damage only the other project.
    std::fs::remove_file(
        ws.run_dir("other", other_summary["run_id"].as_str().unwrap())
            .join("Script.json"),
    )
    .unwrap();

    let all = verify_json(&ws, &[]);
    assert_eq!(
        (all.code, all.report["runs_checked"].as_u64()),
        (1, Some(2))
    );

    let lighthouse = verify_json(&ws, &["--project", "lighthouse"]);
    assert_eq!(
        (lighthouse.code, lighthouse.report["runs_checked"].as_u64()),
        (0, Some(1))
    );

    let run_id = summary["run_id"].as_str().unwrap();
    let one = verify_json(&ws, &["--run", &run_id[..6], "--project", "lighthouse"]);
    assert_eq!(one.code, 0);
    assert_eq!(one.report["runs"][0]["run_id"], run_id);

    let other_only = verify_json(&ws, &["--project", "other"]);
    assert_eq!(other_only.code, 1);
    assert_eq!(problems(&other_only).len(), 1);

    let out = ws
        .cmd()
        .args(["verify", "--run", "nosuchrun"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_stage_remade_after_its_child_leaves_a_stale_parent() {
    let (ws, summary) = example_run();
    // Pretend the ShotList was re-made with different content after the
    // AssetManifest and RenderPlan were made from it.
    ws.registry_exec(&format!(
        "UPDATE artifact_edges SET parent_sha256 = '{}'
         WHERE parent_id = (SELECT artifact_id FROM artifacts WHERE artifact_type = 'ShotList')
           AND child_id = (SELECT artifact_id FROM artifacts WHERE artifact_type = 'AssetManifest')",
        "f".repeat(64)
    ));
    let v = verify_json(&ws, &[]);
    assert_eq!(v.code, 1);
    assert_eq!(
        problems(&v),
        vec![(
            "stale_parent".to_string(),
            rel(&summary, "AssetManifest.json")
        )]
    );
}

#[test]
fn a_symlinked_run_directory_is_reported_and_nothing_inside_is_read() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    // An intact copy elsewhere: following the link would find nothing wrong.
    let elsewhere = ws.path().join("copy-of-run");
    std::fs::rename(&dir, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();

    let v = verify_json(&ws, &[]);
    assert_eq!(v.code, 1);
    assert_eq!(
        problems(&v),
        vec![(
            "not_regular_file".to_string(),
            rel(&summary, "").trim_end_matches('/').to_string()
        )]
    );
    assert_eq!(v.report["runs"][0]["artifacts_ok"], 0);
    let found = v.report["problems"][0]["found"].as_str().unwrap();
    assert!(
        found.contains("symlink") && found.contains("not followed"),
        "{found}"
    );
}

#[test]
fn a_registry_path_leaving_the_artifacts_directory_is_never_opened() {
    let (ws, _) = example_run();
    ws.registry_exec(
        "UPDATE artifacts SET path = '/etc/hostname' WHERE artifact_type = 'Script';
         UPDATE artifacts SET path = '../../escape.json' WHERE artifact_type = 'ShotList';",
    );
    let v = verify_json(&ws, &[]);
    assert_eq!(v.code, 1);
    let found = problems(&v);
    assert!(
        found.contains(&("unsafe_path".to_string(), "/etc/hostname".to_string())),
        "{found:?}"
    );
    assert!(
        found.contains(&("unsafe_path".to_string(), "../../escape.json".to_string())),
        "{found:?}"
    );
    assert!(found.iter().all(|(k, _)| k != "hash_mismatch"), "{found:?}");
}

#[test]
fn a_mistyped_project_is_a_usage_error_not_a_clean_bill() {
    let (ws, _) = example_run();
    let out = ws
        .cmd()
        .args(["verify", "--project", "lighthuose"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: ") && err.contains("lighthuose"),
        "{err}"
    );
}

#[test]
fn a_run_being_written_is_reported_in_progress_not_as_drift() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let dir = run_dir(&ws, &summary);
    // What a live run looks like mid-stage: a rewritten file the registry
    // does not know yet, and a new file.
    std::fs::write(dir.join("ShotList.json"), b"{}\n").unwrap();
    std::fs::write(dir.join("extra.json"), b"{}\n").unwrap();
    let results = || {
        ws.registry_rows(
            "SELECT artifact_type, last_verify_result FROM artifact_overview ORDER BY stage",
        )
    };
    let before = results();

    let held = ws.hold_live("lighthouse", run_id);
    let out = ws.cmd().args(["verify", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["problems"], serde_json::json!([]));
    assert_eq!(report["runs_checked"], 0);
    assert_eq!(
        report["runs_in_progress"],
        serde_json::json!([{"project_id": "lighthouse", "run_id": run_id}])
    );
    assert!(stderr.contains("being written"), "{stderr}");
    // Nothing was recorded for the run it did not judge.
    assert_eq!(results(), before);

    // Once the writer is gone, the same state is drift.
    drop(held);
    let v = verify_json(&ws, &[]);
    assert_eq!(v.code, 1);
    let kinds: Vec<_> = problems(&v).into_iter().map(|(k, _)| k).collect();
    assert!(kinds.contains(&"hash_mismatch".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"unregistered".to_string()), "{kinds:?}");
}

/// Replace an artifact of the example run with `bytes` and make
/// the registry and the meta file vouch for them, as if a writer had
/// validated and recorded them: only the schema check can then object.
fn register_as_written(ws: &Workspace, summary: &Value, artifact_type: &str, bytes: &[u8]) {
    let dir = run_dir(ws, summary);
    let path = dir.join(format!("{artifact_type}.json"));
    std::fs::write(&path, bytes).unwrap();
    let sha = common::sha256_file(&path);
    let meta_path = dir.join(format!("{artifact_type}.meta.json"));
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["sha256"] = sha.clone().into();
    meta["size_bytes"] = bytes.len().into();
    let meta_text = serde_json::to_string_pretty(&meta).unwrap() + "\n";
    std::fs::write(&meta_path, &meta_text).unwrap();
    ws.registry_exec(&format!(
        "UPDATE artifacts SET sha256 = '{sha}', size_bytes = {}, meta_json = '{}'
         WHERE artifact_type = '{artifact_type}'",
        bytes.len(),
        meta_text.replace('\'', "''")
    ));
}

#[test]
fn a_recorded_hash_under_the_current_schema_is_trusted_and_an_older_schema_is_rechecked() {
    let (ws, summary) = example_run();
    let mut output: Value = serde_json::from_slice(
        &std::fs::read(run_dir(&ws, &summary).join("RenderOutput.json")).unwrap(),
    )
    .unwrap();
    output["fps"] = "fast".into();
    register_as_written(
        &ws,
        &summary,
        "RenderOutput",
        &serde_json::to_vec_pretty(&output).unwrap(),
    );

    // (The last stage: no child goes stale.) The registry says these
    // bytes were validated under this schema, and
    // they are those bytes: not parsed again.
    let v = verify_json(&ws, &[]);
    assert_eq!((v.code, problems(&v)), (0, vec![]), "{}", v.report);

    // Validated under another schema version: checked against this one.
    ws.registry_exec(
        "UPDATE artifacts SET schema_version = '0.9.0' WHERE artifact_type = 'RenderOutput'",
    );
    let v = verify_json(&ws, &[]);
    assert_eq!(v.code, 1);
    assert_eq!(
        problems(&v),
        vec![(
            "schema_invalid".to_string(),
            rel(&summary, "RenderOutput.json")
        )]
    );
    let found = v.report["problems"][0]["found"].as_str().unwrap();
    assert!(found.contains("/fps"), "{found}");

    // And under another schema id likewise.
    ws.registry_exec(
        "UPDATE artifacts SET schema_version = '1.0.0', schema_id = 'urn:old'
         WHERE artifact_type = 'RenderOutput'",
    );
    let v = verify_json(&ws, &[]);
    assert_eq!(
        problems(&v),
        vec![(
            "schema_invalid".to_string(),
            rel(&summary, "RenderOutput.json")
        )]
    );
}

#[test]
fn a_reformatted_but_equal_meta_file_still_matches() {
    let (ws, summary) = example_run();
    let path = run_dir(&ws, &summary).join("Script.meta.json");
    let meta: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    // Compact instead of pretty: different bytes, the same record.
    std::fs::write(&path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let v = verify_json(&ws, &[]);
    assert_eq!((v.code, problems(&v)), (0, vec![]), "{}", v.report);
}

#[test]
fn a_huge_file_in_an_artifacts_place_is_hashed_not_parsed() {
    let (ws, summary) = example_run();
    let path = run_dir(&ws, &summary).join("RenderOutput.json");
    // Past the 64 MiB parse limit, and not JSON: parsing it would fail
    // with "not JSON" after holding it all in memory. (Hashing it is slow
    // in a debug build, so it is hashed as few times as the test allows.)
    let size = (64 << 20) + 1;
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(size).unwrap();
    let v = verify_json(&ws, &[]);
    assert_eq!(v.code, 1);
    assert_eq!(
        problems(&v),
        vec![(
            "hash_mismatch".to_string(),
            rel(&summary, "RenderOutput.json")
        )]
    );
    let found = v.report["problems"][0]["found"].as_str().unwrap();
    assert!(
        found.contains(&format!("{size} bytes"))
            && found.contains("too large to check against its schema"),
        "{found}"
    );

    // Recorded under an older schema, the same file would need parsing:
    // that is refused too, and said.
    register_as_written(&ws, &summary, "RenderOutput", &vec![0; size as usize]);
    ws.registry_exec(
        "UPDATE artifacts SET schema_version = '0.9.0' WHERE artifact_type = 'RenderOutput'",
    );
    let v = verify_json(&ws, &[]);
    assert_eq!(
        problems(&v),
        vec![(
            "schema_invalid".to_string(),
            rel(&summary, "RenderOutput.json")
        )]
    );
    let found = v.report["problems"][0]["found"].as_str().unwrap();
    assert!(found.contains("not parsed"), "{found}");
}

/// `(kind, path)` of each problem `verify --json` reports, and its exit code.
fn verify_kinds(ws: &common::Workspace) -> (Option<i32>, Vec<(String, String)>) {
    let out = ws.cmd().args(["verify", "--json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
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

#[test]
fn verify_reports_a_run_directory_the_registry_does_not_know() {
    let (ws, summary) = common::example_run();
    let run = summary["run_id"].as_str().unwrap();
    let ghost = ws.run_dir("lighthouse", "ghost");
    std::fs::create_dir(&ghost).unwrap();
    std::fs::copy(
        ws.run_dir("lighthouse", run).join("Script.json"),
        ghost.join("Script.json"),
    )
    .unwrap();
    assert_eq!(
        verify_kinds(&ws),
        (
            Some(1),
            vec![("unknown_run".to_string(), "lighthouse/ghost".to_string())]
        )
    );
    // Verifying one run does not search the tree.
    let out = ws.cmd().args(["verify", "--run", run]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn verify_reports_the_copies_a_killed_reindex_left_beside_the_registry() {
    // The copies are SQLite's rebuild files; PostgreSQL rebuilds in place.
    sqlite_only!();
    let (ws, _) = common::example_run();
    // The registry held open here, as a reader would: reindex builds its
    // copy, then waits for the reader to close.
    let reader =
        orchestrator::registry::Registry::open_existing(&ws.db(), &ws.artifacts()).unwrap();
    let mut reindexing = ws.spawn(&["reindex", "--lock-timeout", "60"]);
    let pid = reindexing.id();
    let copy = ws.artifacts().join(format!("registry.db.reindex-{pid}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !copy.exists() {
        assert!(std::time::Instant::now() < deadline, "reindex made no copy");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // A live reindex's copy is its own business.
    assert_eq!(verify_kinds(&ws), (Some(0), vec![]));
    reindexing.kill().unwrap();
    reindexing.wait().unwrap();
    drop(reader);
    assert!(copy.exists(), "a killed reindex leaves its copy");
    assert_eq!(
        verify_kinds(&ws),
        (
            Some(1),
            vec![(
                "reindex_leftover".to_string(),
                copy.to_string_lossy()
                    .into_owned()
                    .replace(&format!("{}/", ws.path().display()), "")
            )]
        )
    );
}
