//! Integration tests for `orchestrator run`: the artifact tree, resume from
//! the registry, run identity, schemas and the registry's contents. Every
//! test drives the real binary in a fresh temp directory and judges parsed
//! output: the `--json` summary, the files and their hashes, and the
//! registry (SQLite or, in the suite's PostgreSQL pass, PostgreSQL).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{
    TYPES, Workspace, assert_usage_error, dir_names, example_config, example_run, reasons,
    sha256_file, statuses, summary_of,
};
use serde_json::{Value, json};

/// The stage table of the spec: number, name, artifact type, parents.
const STAGES: [(u64, &str, &str, &[&str]); 5] = [
    (1, "stage1_generate_script", "Script", &[]),
    (2, "stage2_script_to_shotlist", "ShotList", &["Script"]),
    (
        3,
        "stage3_shotlist_to_assetmanifest",
        "AssetManifest",
        &["ShotList", "Script"],
    ),
    (
        4,
        "stage4_build_renderplan",
        "RenderPlan",
        &["AssetManifest", "ShotList"],
    ),
    (
        5,
        "stage5_render_preview",
        "RenderOutput",
        &["RenderPlan", "ShotList"],
    ),
];

const ALL_EXECUTED: [&str; 5] = ["executed"; 5];
const ALL_SKIPPED: [&str; 5] = ["skipped"; 5];

// ------------------------------------------------------------- helpers --

fn run_dir(ws: &Workspace, summary: &Value) -> PathBuf {
    ws.run_dir(
        summary["project_id"].as_str().unwrap(),
        summary["run_id"].as_str().unwrap(),
    )
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The deterministic encoding the spec requires: sorted keys (serde_json's
/// map is sorted), two-space indent, one trailing newline.
fn canonical(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap();
    bytes.push(b'\n');
    bytes
}

/// Exactly what a run directory must hold.
fn expected_tree() -> BTreeSet<String> {
    TYPES
        .iter()
        .flat_map(|t| [format!("{t}.json"), format!("{t}.meta.json")])
        .chain(["run_summary.json".to_string()])
        .collect()
}

fn assert_tree(dir: &Path) {
    assert_eq!(
        dir_names(dir),
        expected_tree(),
        "contents of {}",
        dir.display()
    );
}

/// The bytes of the five `X.json` files of a run directory.
fn artifact_bytes(dir: &Path) -> BTreeMap<&'static str, Vec<u8>> {
    TYPES
        .iter()
        .map(|t| (*t, std::fs::read(dir.join(format!("{t}.json"))).unwrap()))
        .collect()
}

/// The five artifact files still hold exactly `before`.
fn assert_unchanged(dir: &Path, before: &BTreeMap<&'static str, Vec<u8>>) {
    let after = artifact_bytes(dir);
    for ty in TYPES {
        assert!(after[ty] == before[ty], "{ty}.json bytes changed");
    }
}

fn artifact(dir: &Path, ty: &str) -> Value {
    read_json(&dir.join(format!("{ty}.json")))
}

fn meta(dir: &Path, ty: &str) -> Value {
    read_json(&dir.join(format!("{ty}.meta.json")))
}

fn assert_statuses(summary: &Value, expected: [&str; 5]) {
    assert_eq!(
        statuses(summary),
        expected,
        "statuses; reasons were {:?}",
        reasons(summary)
    );
}

fn stage(summary: &Value, n: usize) -> &Value {
    &summary["stages"][n - 1]
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {v}"))
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not an unsigned integer in {v}"))
}

fn assert_rfc3339_utc(s: &str) {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("`{s}` is not RFC 3339: {e}"));
    assert_eq!(t.offset().local_minus_utc(), 0, "`{s}` is not UTC");
}

/// Run the example with `config` changed by `edit`, in a fresh workspace.
fn run_variant(edit: impl FnOnce(&mut Value)) -> (Workspace, Value) {
    let ws = Workspace::new();
    let mut config = example_config();
    edit(&mut config);
    let path = ws.write_config("project.json", &config);
    let summary = ws.run_ok(&path, &[]);
    (ws, summary)
}

/// Write `text` as a config file and run it.
fn run_text(ws: &Workspace, name: &str, text: &str) -> Value {
    let path = ws.path().join(name);
    std::fs::write(&path, text).unwrap();
    ws.run_ok(&path, &[])
}

/// `value` as compact JSON with every object's keys in reverse order.
fn reversed_compact(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .rev()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), reversed_compact(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(reversed_compact).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

fn schema(ty: &str) -> Value {
    read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("schemas")
            .join(format!("{ty}.v1.json")),
    )
}

fn validator(ty: &str) -> jsonschema::Validator {
    jsonschema::draft7::new(&schema(ty))
        .unwrap_or_else(|e| panic!("schemas/{ty}.v1.json does not compile: {e}"))
}

fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path().as_str()))
        .collect()
}

/// Every artifact of a run directory must pass its schema.
fn assert_valid_artifacts(dir: &Path) {
    for ty in TYPES {
        let errors = schema_errors(&validator(ty), &artifact(dir, ty));
        assert!(errors.is_empty(), "{ty} fails its schema: {errors:#?}");
    }
}

/// `(child type, parent type, parent_sha256 recorded on the edge, sha256
/// of the parent row)` for every edge of the run.
fn edges(ws: &Workspace, run_id: &str) -> Vec<(String, String, String, String)> {
    ws.registry_rows(&format!(
        "SELECT c.artifact_type, p.artifact_type, e.parent_sha256, p.sha256
         FROM artifact_edges e
         JOIN artifacts c ON c.artifact_id = e.child_id
         JOIN artifacts p ON p.artifact_id = e.parent_id
         WHERE c.run_id = '{run_id}'
         ORDER BY c.stage, p.stage"
    ))
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone()))
    .collect()
}

/// `(artifact_type, sha256)` of every registered artifact of the run.
fn registered_hashes(ws: &Workspace, run_id: &str) -> BTreeMap<String, String> {
    ws.registry_rows(&format!(
        "SELECT artifact_type, sha256 FROM artifacts WHERE run_id = '{run_id}'"
    ))
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect()
}

/// The sha256 in each meta file of a run directory, by type.
fn meta_hashes(dir: &Path) -> BTreeMap<String, String> {
    TYPES
        .iter()
        .map(|t| (t.to_string(), str_of(&meta(dir, t), "sha256").to_string()))
        .collect()
}

/// After any run, files, meta records and registry must agree.
fn assert_consistent(ws: &Workspace, summary: &Value) {
    let dir = run_dir(ws, summary);
    assert_tree(&dir);
    for (i, ty) in TYPES.iter().enumerate() {
        let sha = sha256_file(&dir.join(format!("{ty}.json")));
        assert_eq!(str_of(&meta(&dir, ty), "sha256"), sha, "{ty} meta sha256");
        assert_eq!(
            str_of(&summary["stages"][i], "sha256"),
            sha,
            "{ty} summary sha256"
        );
    }
    let run_id = str_of(summary, "run_id");
    assert_eq!(registered_hashes(ws, run_id), meta_hashes(&dir));
    assert_eq!(
        edges(ws, run_id).len(),
        7,
        "edges: {:#?}",
        edges(ws, run_id)
    );
}

// ------------------------------------------------------- the artifact tree --

#[test]
fn first_run_writes_exactly_five_artifacts_five_metas_and_a_summary() {
    let (ws, summary) = example_run();
    let run_id = str_of(&summary, "run_id");
    assert_eq!(str_of(&summary, "project_id"), "lighthouse");
    let dir = ws.artifacts().join("lighthouse").join(run_id);
    assert_tree(&dir);
    // Beside the project directories, only the registry (and its WAL
    // files) and hidden bookkeeping such as run locks.
    let top: BTreeSet<String> = dir_names(&ws.artifacts())
        .into_iter()
        .filter(|n| !n.starts_with("registry.db") && !n.starts_with('.'))
        .collect();
    assert_eq!(top, BTreeSet::from(["lighthouse".to_string()]));
    if !common::postgres_pass() {
        assert!(ws.db().is_file());
    }
    assert_eq!(
        dir_names(&ws.artifacts().join("lighthouse")),
        BTreeSet::from([run_id.to_string()])
    );
}

#[test]
fn meta_records_match_file_hash_size_schema_parents_and_provenance() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    let config_hash = str_of(&summary, "config_hash");
    for (n, name, ty, parents) in STAGES {
        let m = meta(&dir, ty);
        let file = dir.join(format!("{ty}.json"));
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(str_of(&m, "sha256"), sha256_file(&file), "{ty}");
        assert_eq!(u64_of(&m, "size_bytes"), bytes.len() as u64, "{ty}");
        assert_eq!(str_of(&m, "artifact_type"), ty);
        assert_eq!(str_of(&m, "path"), format!("{ty}.json"));
        assert_eq!(str_of(&m, "project_id"), "lighthouse");
        assert_eq!(str_of(&m, "run_id"), str_of(&summary, "run_id"));
        assert_eq!(str_of(&m, "schema_version"), "1.0.0");
        assert_eq!(
            m["schema_id"],
            schema(ty)["$id"],
            "{ty} schema_id is its schema's $id"
        );

        // Parents in the stage table's order, each as the file now on disk.
        let want_parents: Vec<Value> = parents
            .iter()
            .map(|p| {
                json!({
                    "artifact_type": p,
                    "sha256": sha256_file(&dir.join(format!("{p}.json"))),
                    "path": format!("{p}.json"),
                })
            })
            .collect();
        assert_eq!(m["parents"], json!(want_parents), "{ty} parents");

        let cp = &m["creation_params"];
        assert_eq!(u64_of(cp, "stage"), n);
        assert_eq!(str_of(cp, "stage_name"), name);
        assert_eq!(str_of(cp, "stage_version"), "1.0.0");
        assert_eq!(str_of(cp, "config_hash"), config_hash);

        let origin = &m["compute_origin"];
        assert_eq!(str_of(origin, "engine"), "local-stub");
        assert_eq!(
            str_of(origin, "orchestrator_version"),
            env!("CARGO_PKG_VERSION")
        );
        assert!(!str_of(origin, "host").is_empty());
        assert_rfc3339_utc(str_of(&m, "created_at"));
    }
}

#[test]
fn artifact_files_are_canonical_sorted_two_space_json_with_trailing_newline() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    for name in expected_tree() {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(
            bytes == canonical(&value),
            "{name} is not in canonical form (sorted keys, 2-space indent, one trailing newline)"
        );
        assert!(!bytes.ends_with(b"\n\n"), "{name} ends with a blank line");
        // The comparison above is only as strong as its inputs: the file
        // must actually have nested, indented structure.
        assert!(
            std::str::from_utf8(&bytes).unwrap().contains("\n  \""),
            "{name}"
        );
    }
}

#[test]
fn run_summary_lists_the_five_stages_in_order_and_matches_stdout() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    let file = read_json(&dir.join("run_summary.json"));
    assert_eq!(file, summary, "run_summary.json and `--json` stdout differ");

    let run_id = str_of(&file, "run_id");
    let config_hash = str_of(&file, "config_hash");
    assert_eq!(run_id.len(), 16);
    assert_eq!(config_hash.len(), 64);
    assert!(
        config_hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(str_of(&file, "project_id"), "lighthouse");
    assert_rfc3339_utc(str_of(&file, "started_at"));
    assert_rfc3339_utc(str_of(&file, "finished_at"));

    let stages = file["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 5);
    for ((n, name, ty, _), s) in STAGES.iter().zip(stages) {
        assert_eq!(u64_of(s, "stage"), *n);
        assert_eq!(str_of(s, "name"), *name);
        assert_eq!(str_of(s, "artifact_type"), *ty);
        assert_eq!(str_of(s, "status"), "executed");
        assert!(!str_of(s, "reason").is_empty(), "stage {n} has no reason");
        assert_eq!(
            str_of(s, "sha256"),
            sha256_file(&dir.join(format!("{ty}.json")))
        );
        assert!(s["duration_ms"].is_u64(), "stage {n} duration_ms: {s}");
    }
}

// ---------------------------------------------------------------- resume --

#[test]
fn second_run_skips_all_five_as_up_to_date_and_rewrites_nothing() {
    let (ws, first) = example_run();
    assert_statuses(&first, ALL_EXECUTED);
    let dir = run_dir(&ws, &first);
    let before: BTreeMap<String, Vec<u8>> = expected_tree()
        .into_iter()
        .filter(|n| n != "run_summary.json")
        .map(|n| {
            let b = std::fs::read(dir.join(&n)).unwrap();
            (n, b)
        })
        .collect();

    let second = ws.run_ok(&ws.path().join("project.json"), &[]);
    assert_statuses(&second, ALL_SKIPPED);
    assert_eq!(reasons(&second), ["up to date"; 5]);
    assert_eq!(second["run_id"], first["run_id"]);
    for (i, s) in second["stages"].as_array().unwrap().iter().enumerate() {
        assert_eq!(s["sha256"], first["stages"][i]["sha256"]);
    }
    // Skipping must not touch artifacts or their meta records.
    for (name, bytes) in before {
        assert!(
            std::fs::read(dir.join(&name)).unwrap() == bytes,
            "{name} changed"
        );
    }
    assert_consistent(&ws, &second);
}

#[test]
fn from_stage_3_executes_stages_3_to_5_only() {
    let (ws, first) = example_run();
    let dir = run_dir(&ws, &first);
    let before = artifact_bytes(&dir);
    let summary = ws.run_ok(&ws.path().join("project.json"), &["--from-stage", "3"]);
    assert_statuses(
        &summary,
        ["skipped", "skipped", "executed", "executed", "executed"],
    );
    let reasons = reasons(&summary);
    assert_eq!(reasons[..2], ["up to date", "up to date"]);
    for r in &reasons[2..] {
        assert!(r.contains("from-stage"), "reason {r:?}");
    }
    assert_unchanged(&dir, &before);
    assert_consistent(&ws, &summary);
}

#[test]
fn force_executes_all_five_with_byte_identical_output() {
    let (ws, first) = example_run();
    let dir = run_dir(&ws, &first);
    let before = artifact_bytes(&dir);
    let summary = ws.run_ok(&ws.path().join("project.json"), &["--force"]);
    assert_statuses(&summary, ALL_EXECUTED);
    for r in reasons(&summary) {
        assert!(r.contains("forced"), "reason {r:?}");
    }
    assert_unchanged(&dir, &before);
    assert_consistent(&ws, &summary);

    let again = ws.run_ok(&ws.path().join("project.json"), &[]);
    assert_statuses(&again, ALL_SKIPPED);
}

/// Inode, modification time and bytes of every artifact and meta file.
#[cfg(unix)]
fn file_identities(dir: &Path) -> BTreeMap<String, (u64, i64, i64, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    TYPES
        .iter()
        .flat_map(|t| [format!("{t}.json"), format!("{t}.meta.json")])
        .map(|name| {
            let path = dir.join(&name);
            let m = std::fs::symlink_metadata(&path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            (name, (m.ino(), m.mtime(), m.mtime_nsec(), bytes))
        })
        .collect()
}

#[cfg(unix)]
#[test]
fn force_that_reproduces_every_artifact_leaves_every_file_untouched() {
    let (ws, first) = example_run();
    let dir = run_dir(&ws, &first);
    let before = file_identities(&dir);
    // Long enough that a rewritten meta record would carry another time.
    std::thread::sleep(std::time::Duration::from_millis(20));

    let forced = ws.run_ok(&ws.path().join("project.json"), &["--force"]);
    assert_statuses(&forced, ALL_EXECUTED);
    assert_eq!(file_identities(&dir), before, "a file was rewritten");
    // The executions are new, with their own times.
    for i in 0..5 {
        assert!(
            str_of(&forced["stages"][i], "started_at") > str_of(&first["stages"][i], "finished_at"),
            "stage {} kept its old times",
            i + 1
        );
    }
    assert_consistent(&ws, &forced);
    ws.assert_verify_clean();
    assert_statuses(
        &ws.run_ok(&ws.path().join("project.json"), &[]),
        ALL_SKIPPED,
    );
}

#[cfg(unix)]
#[test]
fn force_rewrites_a_hand_edited_meta_record_even_beside_reproduced_bytes() {
    let (ws, first) = example_run();
    let dir = run_dir(&ws, &first);
    let before = file_identities(&dir);
    let path = dir.join("AssetManifest.meta.json");
    let original = meta(&dir, "AssetManifest");
    // Only the time: the rest still says what the registry says.
    let mut edited = original.clone();
    edited["created_at"] = "2000-01-01T00:00:00.000Z".into();
    std::fs::write(&path, canonical(&edited)).unwrap();

    let forced = ws.run_ok(&ws.path().join("project.json"), &["--force"]);
    assert_statuses(&forced, ALL_EXECUTED);
    let after = file_identities(&dir);
    for (name, identity) in &before {
        if name != "AssetManifest.meta.json" {
            assert_eq!(&after[name], identity, "{name} was rewritten");
        }
    }
    let rewritten = meta(&dir, "AssetManifest");
    assert_ne!(rewritten["created_at"], edited["created_at"]);
    assert_ne!(rewritten["created_at"], original["created_at"]);
    assert_consistent(&ws, &forced);
    ws.assert_verify_clean();
}

#[test]
fn tampered_shotlist_reexecutes_stage_2_restores_its_bytes_and_downstream_stays_skipped() {
    let (ws, first) = example_run();
    let dir = run_dir(&ws, &first);
    let path = dir.join("ShotList.json");
    let original = std::fs::read(&path).unwrap();
    let all_before = artifact_bytes(&dir);

    // Two kinds of tampering: a plausible edit that keeps the file valid
    // canonical JSON, and a single flipped byte.
    let mut edited = read_json(&path);
    let d = edited["shots"][0]["duration_ms"].as_u64().unwrap();
    edited["shots"][0]["duration_ms"] = json!(d + 100);
    let value_edit = canonical(&edited);
    let mut byte_edit = original.clone();
    let i = byte_edit.len() / 2;
    byte_edit[i] = if byte_edit[i] == b'x' { b'y' } else { b'x' };

    for tampered in [value_edit, byte_edit] {
        assert_ne!(tampered, original);
        std::fs::write(&path, &tampered).unwrap();
        let summary = ws.run_ok(&ws.path().join("project.json"), &[]);
        assert_statuses(
            &summary,
            ["skipped", "executed", "skipped", "skipped", "skipped"],
        );
        assert_eq!(str_of(stage(&summary, 2), "reason"), "hash mismatch");
        assert!(
            std::fs::read(&path).unwrap() == original,
            "ShotList not restored byte-identically"
        );
        assert_unchanged(&dir, &all_before);
        assert_consistent(&ws, &summary);
    }
}

#[test]
fn tampered_script_reexecutes_stage_1_only() {
    let (ws, first) = example_run();
    let dir = run_dir(&ws, &first);
    let before = artifact_bytes(&dir);
    let path = dir.join("Script.json");
    let mut script = read_json(&path);
    script["title"] = json!("Someone Else's Film");
    std::fs::write(&path, canonical(&script)).unwrap();

    let summary = ws.run_ok(&ws.path().join("project.json"), &[]);
    assert_statuses(
        &summary,
        ["executed", "skipped", "skipped", "skipped", "skipped"],
    );
    assert_eq!(str_of(stage(&summary, 1), "reason"), "hash mismatch");
    assert_unchanged(&dir, &before);
    assert_consistent(&ws, &summary);
}

#[test]
fn deleted_renderplan_reexecutes_stage_4_only_and_is_restored_byte_identically() {
    let (ws, first) = example_run();
    let dir = run_dir(&ws, &first);
    let before = artifact_bytes(&dir);
    std::fs::remove_file(dir.join("RenderPlan.json")).unwrap();

    let summary = ws.run_ok(&ws.path().join("project.json"), &[]);
    assert_statuses(
        &summary,
        ["skipped", "skipped", "skipped", "executed", "skipped"],
    );
    assert_eq!(str_of(stage(&summary, 4), "reason"), "artifact missing");
    assert_unchanged(&dir, &before);
    assert_consistent(&ws, &summary);
}

#[test]
fn deleted_meta_record_reexecutes_its_stage_and_is_rewritten() {
    let (ws, first) = example_run();
    let dir = run_dir(&ws, &first);
    let before = artifact_bytes(&dir);
    std::fs::remove_file(dir.join("AssetManifest.meta.json")).unwrap();

    let summary = ws.run_ok(&ws.path().join("project.json"), &[]);
    assert_statuses(
        &summary,
        ["skipped", "skipped", "executed", "skipped", "skipped"],
    );
    assert_unchanged(&dir, &before);
    assert_consistent(&ws, &summary);
}

#[test]
fn deleted_run_directory_is_regenerated_byte_identically() {
    let (ws, first) = example_run();
    let dir = run_dir(&ws, &first);
    let before = artifact_bytes(&dir);
    std::fs::remove_dir_all(&dir).unwrap();

    let summary = ws.run_ok(&ws.path().join("project.json"), &[]);
    assert_statuses(&summary, ALL_EXECUTED);
    assert_eq!(reasons(&summary), ["artifact missing"; 5]);
    assert_unchanged(&dir, &before);
    assert_consistent(&ws, &summary);
}

#[test]
fn changed_stage_version_reexecutes_that_stage_and_unchanged_output_keeps_downstream_skipped() {
    let (ws, first) = example_run();
    let run_id = str_of(&first, "run_id");
    let dir = run_dir(&ws, &first);
    let before = artifact_bytes(&dir);
    // A second invocation adds a `skipped` row per stage, so "newest" is
    // not simply the executed row.
    assert_statuses(
        &ws.run_ok(&ws.path().join("project.json"), &[]),
        ALL_SKIPPED,
    );
    ws.registry_exec(&format!(
        "UPDATE stage_executions SET stage_version = '0.9.0'
         WHERE execution_id = (SELECT max(execution_id) FROM stage_executions
                               WHERE run_id = '{run_id}' AND stage = 3)"
    ));
    assert_eq!(
        ws.registry_value(&format!(
            "SELECT count(*) FROM stage_executions WHERE run_id = '{run_id}' AND stage_version = '0.9.0'"
        )),
        "1"
    );

    let summary = ws.run_ok(&ws.path().join("project.json"), &[]);
    assert_statuses(
        &summary,
        ["skipped", "skipped", "executed", "skipped", "skipped"],
    );
    let reason = str_of(stage(&summary, 3), "reason");
    assert!(
        reason.contains("version") && reason.contains("0.9.0"),
        "reason {reason:?}"
    );
    assert_unchanged(&dir, &before);
    assert_consistent(&ws, &summary);

    // The re-execution recorded the current version: nothing left to do.
    let again = ws.run_ok(&ws.path().join("project.json"), &[]);
    assert_statuses(&again, ALL_SKIPPED);
}

#[test]
fn reusing_a_run_id_with_another_config_is_refused_and_keeps_the_first_take() {
    let ws = Workspace::new();
    let config = ws.example();
    let first = ws.run_ok(&config, &["--run-id", "take-2"]);
    let dir = run_dir(&ws, &first);
    let before = artifact_bytes(&dir);
    let summary_before = std::fs::read(dir.join("run_summary.json")).unwrap();

    let mut changed = example_config();
    changed["seed"] = json!(1978);
    let changed = ws.write_config("changed.json", &changed);
    let first_hash = str_of(&first, "config_hash").to_string();
    for extra in [
        &["--run-id", "take-2"][..],
        &["--run-id", "take-2", "--dry-run"],
    ] {
        let out = ws.run_output(&changed, extra);
        let stderr = assert_usage_error(&out);
        assert!(
            stderr.contains("run id `take-2` of project `lighthouse` is already taken")
                && stderr.contains(&first_hash[..12]),
            "names the run and the recorded config hash: {stderr}"
        );
        assert!(
            stderr.contains("hint: pick another `--run-id`")
                && stderr.contains("orchestrator gc --project lighthouse --run take-2 --yes"),
            "says how to proceed: {stderr}"
        );
    }
    // The first take is exactly as it was, on disk and in the registry.
    assert_eq!(artifact_bytes(&dir), before);
    assert_eq!(
        std::fs::read(dir.join("run_summary.json")).unwrap(),
        summary_before
    );
    assert_eq!(
        ws.registry_rows("SELECT config_hash, attempts FROM runs WHERE run_id = 'take-2'"),
        [[first_hash.as_str(), "1"]]
    );
    // The same config under the same id is the same take: it resumes.
    assert_statuses(&ws.run_ok(&config, &["--run-id", "take-2"]), ALL_SKIPPED);
    // Another id is a new take beside the first.
    let other = ws.run_ok(&changed, &["--run-id", "take-3"]);
    assert_statuses(&other, ALL_EXECUTED);
    assert_eq!(artifact_bytes(&dir), before);
}

#[test]
fn a_run_id_reused_after_the_registry_was_lost_is_refused_by_its_run_summary() {
    let ws = Workspace::new();
    let config = ws.example();
    let first = ws.run_ok(&config, &["--run-id", "take-2"]);
    let dir = run_dir(&ws, &first);
    let before = artifact_bytes(&dir);
    // A new registry that does not know the take (`--db` elsewhere).
    let other_db = ws.path().join("other.db");
    let mut changed = example_config();
    changed["seed"] = json!(1978);
    let changed = ws.write_config("changed.json", &changed);
    let out = ws
        .cmd()
        .arg("--db")
        .arg(&other_db)
        .args(["run", "--json", "--run-id", "take-2", "--project"])
        .arg(&changed)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("its run_summary.json (not in this registry) records config hash")
            && stderr.contains(&str_of(&first, "config_hash")[..12]),
        "{stderr}"
    );
    assert_eq!(artifact_bytes(&dir), before);
}

// ----------------------------------------------------------- run identity --

#[test]
fn run_id_flag_names_the_run_directory() {
    let ws = Workspace::new();
    let config = ws.example();
    let summary = ws.run_ok(&config, &["--run-id", "my-run-001"]);
    assert_eq!(str_of(&summary, "run_id"), "my-run-001");
    let dir = ws.run_dir("lighthouse", "my-run-001");
    assert_tree(&dir);
    assert_eq!(
        dir_names(&ws.artifacts().join("lighthouse")),
        BTreeSet::from(["my-run-001".to_string()]),
        "the derived run id must not be used as well"
    );
    for ty in TYPES {
        assert_eq!(str_of(&meta(&dir, ty), "run_id"), "my-run-001");
    }
    assert_eq!(
        ws.registry_value(
            "SELECT count(*) FROM runs WHERE run_id = 'my-run-001' AND status = 'complete'"
        ),
        "1"
    );
    assert_statuses(
        &ws.run_ok(&config, &["--run-id", "my-run-001"]),
        ALL_SKIPPED,
    );
}

#[test]
fn invalid_run_ids_are_refused_with_exit_2_and_nothing_written() {
    let too_long = "a".repeat(65);
    for id in ["Bad_ID", "../x", "-x", "", too_long.as_str(), "a/b", "a b"] {
        let ws = Workspace::new();
        let config = ws.example();
        // `--run-id=<id>` so clap hands `-x` and the empty id to the check.
        let out = ws.run_output(&config, &[&format!("--run-id={id}")]);
        let stderr = assert_usage_error(&out);
        let first_line = stderr.lines().next().unwrap();
        assert!(
            first_line.contains(&format!("`{id}`")),
            "error line does not name {id:?}: {stderr}"
        );
        assert_eq!(
            ws.entries(),
            BTreeSet::from(["project.json".to_string()]),
            "id {id:?} wrote something"
        );
    }
}

#[test]
fn from_stage_out_of_range_is_refused_and_writes_nothing() {
    for n in ["0", "6", "x"] {
        let ws = Workspace::new();
        let config = ws.example();
        let out = ws.run_output(&config, &["--from-stage", n]);
        assert_eq!(out.status.code(), Some(2), "--from-stage {n}");
        assert!(out.stdout.is_empty());
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error:"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(ws.entries(), BTreeSet::from(["project.json".to_string()]));
    }
}

#[test]
fn two_workspaces_produce_byte_identical_artifacts_and_the_same_run_id() {
    let (a, sa) = example_run();
    let (b, sb) = example_run();
    assert_ne!(a.path(), b.path());
    assert_eq!(sa["run_id"], sb["run_id"]);
    assert_eq!(sa["config_hash"], sb["config_hash"]);
    let bytes_a = artifact_bytes(&run_dir(&a, &sa));
    let bytes_b = artifact_bytes(&run_dir(&b, &sb));
    for ty in TYPES {
        assert!(
            bytes_a[ty] == bytes_b[ty],
            "{ty} differs between workspaces"
        );
    }
}

#[test]
fn key_order_and_whitespace_do_not_change_the_run_id() {
    let ws = Workspace::new();
    let base = ws.run_ok(&ws.example(), &[]);
    let config = example_config();

    let reversed = reversed_compact(&config);
    assert!(
        reversed.starts_with("{\"title\""),
        "keys really are reordered: {reversed}"
    );
    let mut tabbed = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t \t");
    let mut ser = serde_json::Serializer::with_formatter(&mut tabbed, formatter);
    serde::Serialize::serialize(&config, &mut ser).unwrap();
    let tabbed = format!("\r\n\n{}\r\n  \n", String::from_utf8(tabbed).unwrap());

    for (name, text) in [("reversed.json", reversed), ("tabbed.json", tabbed)] {
        let other = Workspace::new();
        let summary = run_text(&other, name, &text);
        assert_eq!(summary["run_id"], base["run_id"], "{name}");
        assert_eq!(summary["config_hash"], base["config_hash"], "{name}");
        // The same run in the same registry resumes instead of re-running.
        let same_ws = run_text(&ws, name, &text);
        assert_statuses(&same_ws, ALL_SKIPPED);
    }
}

#[test]
fn any_changed_value_or_unknown_field_changes_the_run_id() {
    let (_, base) = example_run();
    type Edit = fn(&mut Value);
    let edits: [(&str, Edit); 6] = [
        ("seed", |c| c["seed"] = json!(1978)),
        ("title", |c| c["title"] = json!("The Keeper")),
        ("scene_count", |c| c["scene_count"] = json!(4)),
        ("render.fps", |c| c["render"]["fps"] = json!(25)),
        ("character description", |c| {
            c["characters"][0]["description"] = json!("Older.")
        }),
        ("unknown field", |c| {
            c["x_studio_note"] = json!("first draft")
        }),
    ];
    let mut seen = BTreeMap::new();
    seen.insert(str_of(&base, "run_id").to_string(), "base");
    for (what, edit) in edits {
        let (_, summary) = run_variant(edit);
        assert_statuses(&summary, ALL_EXECUTED);
        let id = str_of(&summary, "run_id").to_string();
        if let Some(prev) = seen.insert(id.clone(), what) {
            panic!("changing {what} gives run id {id}, the same as {prev}");
        }
    }
}

#[test]
fn default_run_id_is_the_prefix_of_the_sha256_of_the_rfc8785_config() {
    let (ws, summary) = example_run();
    let config = example_config();
    // For this config (ASCII text, integers only, no escapes) RFC 8785 is
    // exactly serde_json's compact output over sorted keys.
    fn serde_compact_is_jcs(v: &Value) -> bool {
        match v {
            Value::Number(n) => n.is_u64(),
            Value::String(s) => s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'\\'),
            Value::Array(a) => a.iter().all(serde_compact_is_jcs),
            Value::Object(m) => m
                .iter()
                .all(|(k, v)| k.is_ascii() && serde_compact_is_jcs(v)),
            _ => true,
        }
    }
    assert!(serde_compact_is_jcs(&config));
    let jcs = serde_json::to_string(&config).unwrap();
    let expected_hash = {
        use sha2::{Digest, Sha256};
        Sha256::digest(jcs.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let config_hash = str_of(&summary, "config_hash");
    assert_eq!(config_hash, expected_hash);
    assert_eq!(str_of(&summary, "run_id"), &config_hash[..16]);

    let run_id = str_of(&summary, "run_id");
    let select = |column: &str| {
        ws.registry_text(&format!(
            "SELECT {column} FROM runs WHERE run_id = '{run_id}'"
        ))
    };
    assert_eq!(select("config_hash"), expected_hash);
    assert_eq!(select("config_json"), jcs);
}

#[test]
fn integral_float_in_config_reads_as_the_integer_with_the_same_run_id() {
    // Draft-07 counts 1977.0 as an integer and RFC 8785 writes it as 1977,
    // so this is the same config as the example, not an error.
    let (_, base) = example_run();
    let text = std::fs::read_to_string(common::example_config_path())
        .unwrap()
        .replace("\"seed\": 1977", "\"seed\": 1977.0")
        .replace("\"fps\": 24", "\"fps\": 24.0");
    assert!(text.contains("1977.0") && text.contains("24.0"));
    let ws = Workspace::new();
    let summary = run_text(&ws, "project.json", &text);
    assert_eq!(summary["run_id"], base["run_id"]);
    let dir = run_dir(&ws, &summary);
    assert_eq!(artifact(&dir, "Script")["seed"], json!(1977));
    assert_eq!(artifact(&dir, "RenderPlan")["fps"], json!(24));
}

// --------------------------------------------------------------- schemas --

#[test]
fn every_artifact_validates_against_its_schema() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    assert_valid_artifacts(&dir);
    // The example config itself passes the Project schema.
    assert!(validator("Project").is_valid(&example_config()));
}

#[test]
fn schemas_reject_mutated_artifacts() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    // A nested defect per type, each at a known pointer.
    let mutations: [(&str, &str, Value); 10] = [
        (
            "Script",
            "/scenes/0/slugline",
            json!("the lamp room, by day"),
        ),
        ("Script", "/characters/0/character_id", json!("Mara")),
        ("ShotList", "/shots/0/size", json!("huge")),
        ("ShotList", "/shots/0/duration_ms", json!(0)),
        ("AssetManifest", "/assets/0/kind", json!("vehicle")),
        ("AssetManifest", "/assets/0/asset_id", json!("mara")),
        ("RenderPlan", "/jobs/0/frame_count", json!(0)),
        ("RenderPlan", "/jobs/0/seed", json!(9007199254740992u64)),
        ("RenderOutput", "/renders/0/content_sha256", json!("abc123")),
        ("RenderOutput", "/preview/frames", json!(-1)),
    ];
    for (ty, pointer, bad) in mutations {
        let validator = validator(ty);
        let mut value = artifact(&dir, ty);
        *value
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{ty} has no {pointer}")) = bad.clone();
        let errors = schema_errors(&validator, &value);
        assert!(
            errors.iter().any(|e| e.starts_with(pointer)),
            "{ty} with {pointer} = {bad} should fail there; errors: {errors:?}"
        );
    }
    for ty in TYPES {
        let validator = validator(ty);
        let original = artifact(&dir, ty);
        assert!(validator.is_valid(&original), "{ty}");
        // Every required top-level field is really required.
        let schema = schema(ty);
        let required = schema["required"].as_array().unwrap();
        assert!(required.len() >= 5, "{ty} requires too little");
        for field in required {
            let mut value = original.clone();
            value
                .as_object_mut()
                .unwrap()
                .remove(field.as_str().unwrap());
            assert!(!validator.is_valid(&value), "{ty} without {field} passes");
        }
        // An artifact of one type is not an artifact of another.
        let mut wrong = original.clone();
        wrong["artifact_type"] = json!(if ty == "Script" { "ShotList" } else { "Script" });
        assert!(
            !validator.is_valid(&wrong),
            "{ty} accepts a wrong artifact_type"
        );
        assert!(!validator.is_valid(&json!({})), "{ty} accepts {{}}");
    }
    // A shot with an unknown size, as a whole ShotList.
    let mut shots = artifact(&dir, "ShotList");
    shots["shots"][1]["size"] = json!("huge");
    assert!(!validator("ShotList").is_valid(&shots));
}

// -------------------------------------------------------------- registry --

#[test]
fn registry_holds_the_five_hashes_of_the_run() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    let run_id = str_of(&summary, "run_id");
    assert_eq!(registered_hashes(&ws, run_id), meta_hashes(&dir));

    let rows = ws.registry_rows(&format!(
        "SELECT artifact_type, sha256, path, size_bytes, stage, schema_version
         FROM artifacts WHERE project_id = 'lighthouse' AND run_id = '{run_id}' ORDER BY stage"
    ));
    assert_eq!(rows.len(), 5);
    for ((n, _, ty, _), row) in STAGES.iter().zip(&rows) {
        let [rty, sha, path, size, rstage, version] = &row[..] else {
            panic!("{row:?}")
        };
        let file = dir.join(format!("{ty}.json"));
        assert_eq!(rty, ty);
        assert_eq!(*sha, sha256_file(&file));
        assert_eq!(*path, format!("lighthouse/{run_id}/{ty}.json"));
        assert_eq!(*size, std::fs::metadata(&file).unwrap().len().to_string());
        assert_eq!(*rstage, n.to_string());
        assert_eq!(version, "1.0.0");
        let meta_json = ws.registry_text(&format!(
            "SELECT meta_json FROM artifacts
             WHERE project_id = 'lighthouse' AND run_id = '{run_id}' AND stage = {n}"
        ));
        let stored: Value = serde_json::from_str(&meta_json).unwrap();
        assert_eq!(
            stored,
            meta(&dir, ty),
            "{ty} meta_json differs from the file"
        );
    }
}

#[test]
fn registry_holds_exactly_the_seven_parent_edges_of_the_stage_table() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    let got = edges(&ws, str_of(&summary, "run_id"));
    let pairs: BTreeSet<(String, String)> = got
        .iter()
        .map(|(c, p, _, _)| (c.clone(), p.clone()))
        .collect();
    let want: BTreeSet<(String, String)> = common::STAGE_EDGES
        .iter()
        .map(|(c, p)| (c.to_string(), p.to_string()))
        .collect();
    assert_eq!(got.len(), 7, "edges: {got:#?}");
    assert_eq!(pairs, want);
    for (child, parent, edge_sha, parent_sha) in &got {
        assert_eq!(edge_sha, parent_sha, "{child} -> {parent}");
        assert_eq!(
            *parent_sha,
            sha256_file(&dir.join(format!("{parent}.json")))
        );
    }
}

#[test]
fn registry_records_one_execution_per_stage_per_invocation_and_a_complete_run() {
    let (ws, first) = example_run();
    let run_id = str_of(&first, "run_id").to_string();
    let config = ws.path().join("project.json");
    ws.run_ok(&config, &[]);
    let third = ws.run_ok(&config, &["--from-stage", "5"]);

    let rows: Vec<(i64, i64, String, String, String)> = ws
        .registry_rows(&format!(
            "SELECT attempt, stage, status, stage_version, output_sha256 FROM stage_executions
             WHERE project_id = 'lighthouse' AND run_id = '{run_id}' ORDER BY execution_id"
        ))
        .into_iter()
        .map(|r| {
            (
                r[0].parse().unwrap(),
                r[1].parse().unwrap(),
                r[2].clone(),
                r[3].clone(),
                r[4].clone(),
            )
        })
        .collect();
    let shape: Vec<(i64, i64, &str)> = rows
        .iter()
        .map(|(a, s, st, _, _)| (*a, *s, st.as_str()))
        .collect();
    let mut want = Vec::new();
    for (attempt, statuses) in [
        (1, ALL_EXECUTED),
        (2, ALL_SKIPPED),
        (3, ["skipped", "skipped", "skipped", "skipped", "executed"]),
    ] {
        for (i, s) in statuses.iter().enumerate() {
            want.push((attempt, i as i64 + 1, *s));
        }
    }
    assert_eq!(shape, want);
    for (_, stage, _, version, sha) in &rows {
        assert_eq!(version, "1.0.0");
        assert_eq!(
            *sha,
            str_of(&third["stages"][*stage as usize - 1], "sha256")
        );
    }

    assert_eq!(
        ws.registry_rows(&format!(
            "SELECT status, attempts, stages_executed, stages_skipped FROM runs
             WHERE project_id = 'lighthouse' AND run_id = '{run_id}'"
        )),
        [["complete", "3", "1", "4"]]
    );

    let summary_json = ws.registry_text(&format!(
        "SELECT summary_json FROM run_summaries WHERE run_id = '{run_id}'"
    ));
    let summary_sha = ws.registry_text(&format!(
        "SELECT sha256 FROM run_summaries WHERE run_id = '{run_id}'"
    ));
    let file = run_dir(&ws, &third).join("run_summary.json");
    assert_eq!(summary_json.as_bytes(), std::fs::read(&file).unwrap());
    assert_eq!(summary_sha, sha256_file(&file));
}

// ------------------------------------------------- options and locations --

#[test]
fn artifacts_dir_and_db_flags_are_honoured() {
    let ws = Workspace::new();
    let config = ws.example();
    let args = ["--artifacts-dir", "out/arts", "--db", "state/reg.db"];
    let summary = ws.run_ok(&config, &args);
    let dir = ws
        .path()
        .join("out/arts/lighthouse")
        .join(str_of(&summary, "run_id"));
    assert_tree(&dir);
    assert!(ws.path().join("state/reg.db").is_file());
    assert!(
        !ws.artifacts().exists(),
        "default artifacts dir was created"
    );
    assert!(!ws.path().join("out/arts/registry.db").exists());

    let db = rusqlite::Connection::open(ws.path().join("state/reg.db")).unwrap();
    let n: i64 = db
        .query_row("SELECT count(*) FROM artifacts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 5);
    assert_statuses(&ws.run_ok(&config, &args), ALL_SKIPPED);
}

#[test]
fn artifacts_dir_and_db_env_vars_are_honoured_and_flags_override_them() {
    let ws = Workspace::new();
    let config = ws.example();
    let run = |flags: &[&str]| {
        let out = ws
            .cmd()
            .env("ORCHESTRATOR_ARTIFACTS_DIR", "env-arts")
            .env("ORCHESTRATOR_DB", "env-state/reg.db")
            .args(["run", "--json", "--project"])
            .arg(&config)
            .args(flags)
            .output()
            .unwrap();
        summary_of(&out)
    };
    let summary = run(&[]);
    let run_id = str_of(&summary, "run_id").to_string();
    assert_tree(&ws.path().join("env-arts/lighthouse").join(&run_id));
    assert!(ws.path().join("env-state/reg.db").is_file());
    assert!(!ws.artifacts().exists());
    assert_statuses(&run(&[]), ALL_SKIPPED);

    // Flags beat the environment: a fresh registry and tree elsewhere.
    let flagged = run(&["--artifacts-dir", "flag-arts", "--db", "flag.db"]);
    assert_statuses(&flagged, ALL_EXECUTED);
    assert_tree(&ws.path().join("flag-arts/lighthouse").join(&run_id));
    assert!(ws.path().join("flag.db").is_file());
}

// ------------------------------------------------- what the stubs produce --

#[test]
fn shotlist_has_3_to_8_shots_per_scene_featuring_script_characters() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    let script = artifact(&dir, "Script");
    let shots = artifact(&dir, "ShotList");
    let scenes = script["scenes"].as_array().unwrap();
    assert_eq!(scenes.len(), 3, "the example has 3 scenes");
    let characters: BTreeSet<&str> = script["characters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| str_of(c, "character_id"))
        .collect();
    assert_eq!(characters.len(), 3);

    let list = shots["shots"].as_array().unwrap();
    assert_eq!(u64_of(&shots, "shot_count"), list.len() as u64);
    assert_eq!(u64_of(&shots, "scene_count"), scenes.len() as u64);
    assert_eq!(
        u64_of(&shots, "total_duration_ms"),
        list.iter().map(|s| u64_of(s, "duration_ms")).sum::<u64>()
    );
    let mut featured = BTreeSet::new();
    for scene in scenes {
        let id = str_of(scene, "scene_id");
        let of_scene: Vec<&Value> = list.iter().filter(|s| s["scene_id"] == id).collect();
        assert!(
            (3..=8).contains(&of_scene.len()),
            "scene {id} has {} shots",
            of_scene.len()
        );
        let scene_chars: BTreeSet<&str> = scene["character_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        for (i, shot) in of_scene.iter().enumerate() {
            assert_eq!(u64_of(shot, "number"), i as u64 + 1);
            assert_eq!(str_of(shot, "shot_id"), format!("{id}_sh{:02}", i + 1));
            assert_eq!(shot["location_id"], scene["location_id"]);
            for c in shot["characters_in_frame"].as_array().unwrap() {
                let c = c.as_str().unwrap();
                assert!(characters.contains(c), "{c} is not a Script character");
                assert!(scene_chars.contains(c), "{c} is not in scene {id}");
                featured.insert(c);
            }
        }
    }
    assert!(!featured.is_empty(), "no shot shows any character");
    // Shots follow scene order.
    let order: Vec<&str> = list.iter().map(|s| str_of(s, "scene_id")).collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]));
}

fn assert_renderplan_matches_shots(dir: &Path, fps: u64, width: u64, height: u64) {
    let shots = artifact(dir, "ShotList");
    let plan = artifact(dir, "RenderPlan");
    let shots = shots["shots"].as_array().unwrap();
    let jobs = plan["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), shots.len(), "one job per shot");
    assert_eq!(u64_of(&plan, "job_count"), jobs.len() as u64);
    assert_eq!(u64_of(&plan, "fps"), fps);
    assert_eq!(
        plan["resolution"],
        json!({"width": width, "height": height})
    );
    let mut next = 0;
    for (job, shot) in jobs.iter().zip(shots) {
        assert_eq!(job["shot_id"], shot["shot_id"]);
        assert_eq!(job["scene_id"], shot["scene_id"]);
        assert_eq!(
            str_of(job, "job_id"),
            format!("job_{}", str_of(shot, "shot_id"))
        );
        let (start, end, count) = (
            u64_of(job, "frame_start"),
            u64_of(job, "frame_end"),
            u64_of(job, "frame_count"),
        );
        assert_eq!(
            start, next,
            "{}: frame ranges are contiguous",
            job["job_id"]
        );
        assert_eq!(end + 1 - start, count, "{}", job["job_id"]);
        let exact = u64_of(shot, "duration_ms") as f64 * fps as f64 / 1000.0;
        assert!(
            (count as f64 - exact).abs() < 1.0,
            "{}: {count} frames for {exact} at {fps} fps",
            job["job_id"]
        );
        assert_eq!(job["resolution"], plan["resolution"]);
        next = end + 1;
    }
    assert_eq!(u64_of(&plan, "total_frames"), next);
}

#[test]
fn renderplan_has_one_job_per_shot_with_contiguous_frames_at_the_config_fps() {
    let (ws, summary) = example_run();
    assert_renderplan_matches_shots(&run_dir(&ws, &summary), 24, 1280, 720);

    let (ws, summary) = run_variant(|c| c["render"] = json!({"fps": 30, "width": 1920}));
    // Height falls back to its default.
    assert_renderplan_matches_shots(&run_dir(&ws, &summary), 30, 1920, 720);
}

#[test]
fn asset_manifest_is_deduplicated_and_covers_every_shot_and_job() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    let manifest = artifact(&dir, "AssetManifest");
    let assets = manifest["assets"].as_array().unwrap();
    assert_eq!(u64_of(&manifest, "asset_count"), assets.len() as u64);
    let mut by_id: BTreeMap<&str, &Value> = BTreeMap::new();
    for a in assets {
        let id = str_of(a, "asset_id");
        assert!(by_id.insert(id, a).is_none(), "duplicate asset_id {id}");
    }
    let kinds: BTreeSet<&str> = assets.iter().map(|a| str_of(a, "kind")).collect();
    assert_eq!(kinds, BTreeSet::from(["character", "location", "prop"]));

    for shot in artifact(&dir, "ShotList")["shots"].as_array().unwrap() {
        let shot_id = &shot["shot_id"];
        let needed = std::iter::once(&shot["location_id"])
            .chain(shot["characters_in_frame"].as_array().unwrap())
            .chain(shot["props_in_frame"].as_array().unwrap());
        for id in needed {
            let asset = by_id
                .get(id.as_str().unwrap())
                .unwrap_or_else(|| panic!("{id} (shot {shot_id}) is not in the manifest"));
            assert!(
                asset["shot_ids"].as_array().unwrap().contains(shot_id),
                "{id} does not list shot {shot_id}"
            );
        }
    }
    for job in artifact(&dir, "RenderPlan")["jobs"].as_array().unwrap() {
        for id in job["asset_ids"].as_array().unwrap() {
            assert!(by_id.contains_key(id.as_str().unwrap()), "job needs {id}");
        }
    }
}

#[test]
fn render_output_reports_one_render_per_job() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    let plan = artifact(&dir, "RenderPlan");
    let output = artifact(&dir, "RenderOutput");
    let jobs = plan["jobs"].as_array().unwrap();
    let renders = output["renders"].as_array().unwrap();
    assert_eq!(renders.len(), jobs.len());
    let mut hashes = BTreeSet::new();
    for (r, j) in renders.iter().zip(jobs) {
        assert_eq!(r["job_id"], j["job_id"]);
        assert_eq!(r["shot_id"], j["shot_id"]);
        assert_eq!(r["frames"], j["frame_count"]);
        hashes.insert(str_of(r, "content_sha256"));
    }
    assert_eq!(
        hashes.len(),
        renders.len(),
        "every render has its own content hash"
    );
    assert_eq!(output["total_frames"], plan["total_frames"]);
    assert_eq!(output["preview"]["frames"], plan["total_frames"]);
    assert_eq!(output["fps"], plan["fps"]);
    assert_eq!(str_of(&output, "engine"), "local-stub");
}

#[test]
fn two_hundred_scenes_run_validate_and_resume() {
    let (ws, summary) = run_variant(|c| {
        c["project_id"] = json!("epic");
        c["scene_count"] = json!(200);
    });
    assert_statuses(&summary, ALL_EXECUTED);
    let dir = run_dir(&ws, &summary);
    assert_tree(&dir);
    assert_valid_artifacts(&dir);
    assert_eq!(
        artifact(&dir, "Script")["scenes"].as_array().unwrap().len(),
        200
    );
    let shots = artifact(&dir, "ShotList");
    let n = shots["shots"].as_array().unwrap().len();
    assert!((600..=1600).contains(&n), "{n} shots for 200 scenes");
    assert_renderplan_matches_shots(&dir, 24, 1280, 720);
    assert_consistent(&ws, &summary);
    assert_statuses(
        &ws.run_ok(&ws.path().join("project.json"), &[]),
        ALL_SKIPPED,
    );
}

#[test]
fn temp_files_left_by_an_interrupted_write_are_removed_on_the_next_run() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    // What a process killed between creating and renaming its temp file leaves.
    std::fs::write(dir.join(".tmp-AbC123"), b"{\"half\": ").unwrap();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let again = ws.run_ok(&ws.path().join("project.json"), &[]);
    assert_statuses(&again, ["skipped"; 5]);
    assert!(!dir.join(".tmp-AbC123").exists());
    // Only the writer's own temp files go; anything else is the user's.
    assert!(dir.join("notes.txt").exists());
}

#[test]
fn a_meta_record_edited_anywhere_is_rewritten_not_trusted() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    let path = dir.join("ShotList.meta.json");
    let original = std::fs::read(&path).unwrap();
    let mut meta = read_json(&path);
    meta["compute_origin"]["host"] = "somewhere-else".into();
    std::fs::write(&path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();

    let again = ws.run_ok(&ws.path().join("project.json"), &[]);
    assert_statuses(
        &again,
        ["skipped", "executed", "skipped", "skipped", "skipped"],
    );
    assert_eq!(
        stage(&again, 2)["reason"],
        "meta file disagrees with the registry"
    );
    assert_ne!(
        std::fs::read(&path).unwrap(),
        original,
        "rewritten with a new created_at"
    );
    ws.assert_verify_clean();
}

#[test]
fn a_disk_failure_mid_run_is_recorded_as_a_failed_run_and_reported() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    // A directory where stage 4's file goes: the rename cannot succeed.
    std::fs::remove_file(dir.join("RenderPlan.json")).unwrap();
    std::fs::create_dir_all(dir.join("RenderPlan.json").join("x")).unwrap();

    let out = ws.run_output(&ws.path().join("project.json"), &["--force"]);
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("RenderPlan.json"),
        "{err}"
    );
    // --json still prints the report, which says where it stopped.
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "failed");
    assert_statuses(
        &report,
        ["executed", "executed", "executed", "failed", "not_run"],
    );
    let on_disk = read_json(&dir.join("run_summary.json"));
    assert_eq!(on_disk, report);

    let rows = ws.runs_list(&[]);
    assert_eq!(rows[0]["status"], "failed");
    assert!(
        rows[0]["error"]
            .as_str()
            .unwrap()
            .contains("RenderPlan.json")
    );
}

#[test]
fn an_enormous_lock_timeout_is_accepted() {
    let ws = Workspace::new();
    let config = ws.example();
    let summary = ws.run_ok(&config, &["--lock-timeout", "18446744073709551615"]);
    assert_statuses(&summary, ["executed"; 5]);
}

#[test]
fn a_symlinked_run_directory_is_refused_not_written_through() {
    let (ws, summary) = example_run();
    let dir = run_dir(&ws, &summary);
    let elsewhere = ws.path().join("elsewhere");
    std::fs::rename(&dir, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
    let before = std::fs::read(elsewhere.join("Script.json")).unwrap();

    let out = ws.run_output(&ws.path().join("project.json"), &["--force"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("symlink"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(elsewhere.join("Script.json")).unwrap(),
        before
    );
    assert_eq!(ws.runs_list(&[])[0]["status"], "complete");
}
