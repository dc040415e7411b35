//! A damaged or foreign registry, and many processes creating one at once:
//! every command refuses a file it must not use with exit 3 (leaving it and
//! the artifacts untouched), a missing registry points at `reindex`, and a
//! read-only location still answers the read commands.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Workspace, example_run, sha256_file, summary_of};
use serde_json::{Value, json};

/// Every command a user might point at the registry, with the arguments it
/// needs against the example run.
fn every_command(ws: &Workspace, run_id: &str) -> Vec<Vec<String>> {
    let config = ws.path().join("project.json");
    [
        vec!["runs", "list"],
        vec!["runs", "show", run_id],
        vec!["lineage", "RenderOutput"],
        vec!["verify"],
        vec!["run", "--force", "--project", config.to_str().unwrap()],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(String::from).collect())
    .collect()
}

/// Path -> sha256 of every file under the artifacts directory except the
/// registry's own files (the database, its WAL files, its lock) and the run
/// locks: the files a damaged registry must never cost the user.
fn artifact_tree(ws: &Workspace) -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let name = rel.to_string_lossy();
            if name.starts_with("registry.db") || name.starts_with(".locks") {
                continue;
            }
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.insert(rel, sha256_file(&path));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&ws.artifacts(), &ws.artifacts(), &mut out);
    assert!(out.len() >= 11, "the example run's files: {out:?}");
    out
}

/// Exit 3, one `error:` line naming the registry (file or URL), a `hint:`
/// line, and no panic or Debug dump. Returns stderr.
fn assert_registry_refused(ws: &Workspace, out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{what}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let registry = ws.pg_url().unwrap_or("registry.db");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(registry),
        "{what}: {stderr}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("error: ")).count(),
        1,
        "{what}: {stderr}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("hint: ")),
        "{what}: {stderr}"
    );
    for needle in ["panicked", "RUST_BACKTRACE", "Error {", "SqliteFailure"] {
        assert!(!stderr.contains(needle), "{what}: `{needle}` in {stderr}");
    }
    stderr
}

/// Run every command against a damaged registry: each exits 3 naming the
/// file and pointing at `reindex`; the artifact files stay as they were.
fn assert_every_command_refuses_a_damaged_registry(ws: &Workspace, run_id: &str) {
    let tree = artifact_tree(ws);
    for args in every_command(ws, run_id) {
        let out = ws.cmd().args(&args).output().unwrap();
        let stderr = assert_registry_refused(ws, &out, &args.join(" "));
        assert!(
            stderr.contains("orchestrator reindex"),
            "{args:?}: {stderr}"
        );
        // SQLite's own words are a cause, not part of the message.
        assert!(stderr.contains("\n  caused by: "), "{args:?}: {stderr}");
        assert_eq!(artifact_tree(ws), tree, "{args:?} changed artifact files");
    }
}

/// What must not change in a registry that is refused: a SQLite file's
/// bytes; a PostgreSQL registry's rows (those a refused command would have
/// written, had it gone on).
fn registry_state(ws: &Workspace) -> Vec<u8> {
    if !common::postgres_pass() {
        return std::fs::read(ws.db()).unwrap();
    }
    [
        "SELECT version, name, checksum FROM refinery_schema_history ORDER BY version",
        "SELECT project_id, run_id, status, attempts, started_at, finished_at FROM runs
         ORDER BY 1, 2",
        "SELECT execution_id, status FROM stage_executions ORDER BY 1",
        "SELECT artifact_id, sha256 FROM artifacts ORDER BY 1",
        "SELECT count(*) FROM artifact_verifications",
    ]
    .iter()
    .map(|sql| format!("{:?}", ws.registry_rows(sql)))
    .collect::<Vec<_>>()
    .join("\n")
    .into_bytes()
}

fn run_id_of(summary: &Value) -> String {
    summary["run_id"].as_str().unwrap().to_string()
}

#[test]
fn sixteen_runs_starting_on_no_registry_all_succeed() {
    let ws = Workspace::new();
    let configs: Vec<PathBuf> = (0..16)
        .map(|i| {
            let mut config = common::example_config();
            config["project_id"] = json!(format!("film-{i:02}"));
            config["scene_count"] = json!(2);
            ws.write_config(&format!("film-{i:02}.json"), &config)
        })
        .collect();
    assert!(!ws.db().exists());

    let outputs: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = configs
            .iter()
            .map(|config| s.spawn(|| ws.run_output(config, &[])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outputs {
        assert_eq!(summary_of(out)["status"], "complete");
    }

    let mut projects: Vec<String> = ws
        .runs_list(&["--limit", "100"])
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "complete", "{r}");
            r["project_id"].as_str().unwrap().to_string()
        })
        .collect();
    projects.sort();
    let expected: Vec<String> = (0..16).map(|i| format!("film-{i:02}")).collect();
    assert_eq!(projects, expected);

    // Each migration applied exactly once, whoever won the race (on
    // PostgreSQL, `registry migrate` before the runs).
    let dialect = if common::postgres_pass() {
        "postgres"
    } else {
        "sqlite"
    };
    let migrations = std::fs::read_dir(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dialect),
    )
    .unwrap()
    .count();
    assert_eq!(
        ws.registry_value("SELECT count(*) FROM refinery_schema_history"),
        migrations.to_string()
    );
    if common::postgres_pass() {
        assert!(!ws.db().exists(), "a run made a SQLite registry");
    } else {
        let check: String = ws
            .sqlite()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        // The lock is a separate file beside the database.
        assert!(ws.artifacts().join("registry.db.lock").is_file());
    }

    let out = ws.cmd().args(["verify", "--json"]).output().unwrap();
    assert_eq!(summary_of(&out)["ok"], true);
}

#[test]
fn a_held_migration_lock_makes_run_wait_then_exit_4_without_creating_the_registry() {
    // The lock file beside a SQLite registry; PostgreSQL's is an advisory
    // lock that only `registry migrate` takes.
    sqlite_only!();
    let ws = Workspace::new();
    let config = ws.example();
    std::fs::create_dir_all(ws.artifacts()).unwrap();
    let lock = std::fs::File::create(ws.artifacts().join("registry.db.lock")).unwrap();
    lock.lock().unwrap();

    // The wait is the registry's busy timeout; this process never lets go.
    let out = ws.run_output(&config, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("registry.db.lock"),
        "{stderr}"
    );
    assert!(!ws.db().exists(), "created the registry without the lock");
    assert!(!ws.artifacts().join("lighthouse").exists());
}

#[test]
fn a_registry_from_a_newer_version_is_refused_by_every_command_and_left_unchanged() {
    let (ws, summary) = example_run();
    ws.registry_exec(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
         VALUES (99, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
    );
    let before = registry_state(&ws);
    let tree = artifact_tree(&ws);

    for args in every_command(&ws, &run_id_of(&summary)) {
        let out = ws.cmd().args(&args).output().unwrap();
        let stderr = assert_registry_refused(&ws, &out, &args.join(" "));
        assert!(
            stderr.contains("newer") && stderr.contains("V99"),
            "{args:?}: {stderr}"
        );
        assert!(
            registry_state(&ws) == before,
            "{args:?} modified the registry"
        );
        assert_eq!(artifact_tree(&ws), tree, "{args:?}");
    }
}

#[test]
fn a_sqlite_database_that_is_not_a_registry_is_refused_and_left_unchanged() {
    sqlite_only!();
    let (ws, summary) = example_run();
    std::fs::remove_file(ws.db()).unwrap();
    rusqlite::Connection::open(ws.db())
        .unwrap()
        .execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY, caption TEXT)")
        .unwrap();
    let before = std::fs::read(ws.db()).unwrap();

    for args in every_command(&ws, &run_id_of(&summary)) {
        let out = ws.cmd().args(&args).output().unwrap();
        let stderr = assert_registry_refused(&ws, &out, &args.join(" "));
        assert!(
            stderr.contains("not an orchestrator registry"),
            "{args:?}: {stderr}"
        );
        assert!(std::fs::read(ws.db()).unwrap() == before, "{args:?}");
    }
}

#[test]
fn a_registry_that_is_not_a_database_is_refused_by_every_command() {
    sqlite_only!();
    let (ws, summary) = example_run();
    std::fs::write(ws.db(), "lighthouse,a099,complete\n".repeat(200)).unwrap();
    assert_every_command_refuses_a_damaged_registry(&ws, &run_id_of(&summary));
}

#[test]
fn a_truncated_registry_is_refused_by_every_command() {
    sqlite_only!();
    let (ws, summary) = example_run();
    let bytes = std::fs::read(ws.db()).unwrap();
    std::fs::write(ws.db(), &bytes[..bytes.len() / 2]).unwrap();
    assert_every_command_refuses_a_damaged_registry(&ws, &run_id_of(&summary));
}

/// Overwrite page `page` (1-based) of the registry with a byte pattern that
/// is no valid b-tree page.
fn clobber_page(ws: &Workspace, page: i64) {
    let page_size: i64 = ws
        .sqlite()
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    let mut bytes = std::fs::read(ws.db()).unwrap();
    let start = usize::try_from((page - 1) * page_size).unwrap();
    let end = start + usize::try_from(page_size).unwrap();
    bytes[start..end].fill(0xA5);
    std::fs::write(ws.db(), bytes).unwrap();
}

fn root_page(ws: &Workspace, name: &str) -> i64 {
    ws.sqlite()
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn a_registry_with_the_runs_table_overwritten_is_refused_by_every_command() {
    // Overwrites a page of the SQLite file.
    sqlite_only!();
    let (ws, summary) = example_run();
    let page = root_page(&ws, "runs");
    clobber_page(&ws, page);
    // SQLite only notices when a query reaches the page, after the open
    // succeeded: the error is still named and mapped to exit 3.
    assert_every_command_refuses_a_damaged_registry(&ws, &run_id_of(&summary));
}

#[test]
fn verify_runs_quick_check_and_catches_damage_the_listing_never_reads() {
    // A damaged page of the SQLite file and its `PRAGMA quick_check`.
    sqlite_only!();
    let (ws, summary) = example_run();
    // An index no listing query uses: `runs list` does not notice.
    let page = root_page(&ws, "artifacts_by_sha256_run");
    clobber_page(&ws, page);
    let tree = artifact_tree(&ws);
    let rows = ws.runs_list(&[]);
    assert_eq!(rows[0]["run_id"], run_id_of(&summary));

    let out = ws.cmd().args(["verify", "--json"]).output().unwrap();
    let stderr = assert_registry_refused(&ws, &out, "verify");
    assert!(out.stdout.is_empty(), "no report from a damaged registry");
    assert!(stderr.contains("quick_check"), "{stderr}");
    assert!(stderr.contains("orchestrator reindex"), "{stderr}");
    assert_eq!(artifact_tree(&ws), tree);
}

#[test]
fn a_missing_registry_beside_runs_points_at_reindex_and_run_warns() {
    // A missing registry is a missing file; a PostgreSQL one is there.
    sqlite_only!();
    let (ws, summary) = example_run();
    std::fs::remove_file(ws.db()).unwrap();
    let tree = artifact_tree(&ws);

    for args in &every_command(&ws, &run_id_of(&summary))[..4] {
        let out = ws.cmd().args(args).output().unwrap();
        let stderr = assert_registry_refused(&ws, &out, &args.join(" "));
        assert!(
            stderr.contains("no registry at") && stderr.contains("holds 1 run"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("orchestrator reindex"),
            "{args:?}: {stderr}"
        );
        assert!(!ws.db().exists(), "{args:?} created a registry");
    }
    assert_eq!(artifact_tree(&ws), tree);

    // `run` may start a fresh registry, but says the older run is not in it.
    let out = ws.run_output(&ws.path().join("project.json"), &["--run-id", "fresh"]);
    assert_eq!(summary_of(&out)["status"], "complete");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("warning: ")
            && stderr.contains("1 run already in")
            && stderr.contains("orchestrator reindex"),
        "{stderr}"
    );
    let ids: Vec<Value> = ws
        .runs_list(&[])
        .iter()
        .map(|r| r["run_id"].clone())
        .collect();
    assert_eq!(ids, [json!("fresh")]);
}

/// Whether this test process runs as root, whom file modes do not stop.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The binary, run in the workspace as a user the file modes apply to:
/// `nobody` via `setpriv` when the tests run as root, else ourselves.
fn unprivileged(ws: &Workspace, args: &[&str]) -> Output {
    let bin = assert_cmd::cargo::cargo_bin!("orchestrator");
    let mut cmd = if running_as_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin);
        c
    } else {
        std::process::Command::new(bin)
    };
    cmd.args(args)
        .current_dir(ws.path())
        .env_remove("ORCHESTRATOR_ARTIFACTS_DIR")
        .env_remove("ORCHESTRATOR_DB")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Set `mode` on every directory and `file_mode` on every file under `dir`.
fn chmod_tree(dir: &Path, mode: u32, file_mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            chmod_tree(&path, mode, file_mode);
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file_mode)).unwrap();
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_read_only_location_refuses_run_with_exit_5_and_still_answers_reads() {
    // The file modes of the SQLite file and its directory.
    sqlite_only!();
    use std::os::unix::fs::PermissionsExt;
    let (ws, summary) = example_run();
    let run_id = run_id_of(&summary);
    let tree = artifact_tree(&ws);
    // `nobody` must reach the workspace and read the config.
    std::fs::set_permissions(ws.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chmod_tree(&ws.artifacts(), 0o555, 0o444);

    let out = unprivileged(&ws, &["run", "--force", "--project", "project.json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("registry.db"),
        "{stderr}"
    );

    let out = unprivileged(&ws, &["runs", "list", "--json"]);
    let rows = summary_of(&out);
    assert_eq!(rows[0]["run_id"], run_id.as_str());
    let out = unprivileged(&ws, &["runs", "show", &run_id]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&run_id),
        "{out:?}"
    );
    assert_eq!(out.status.code(), Some(0));
    let out = unprivileged(&ws, &["lineage", "RenderOutput", "--format", "json"]);
    assert_eq!(summary_of(&out)["nodes"].as_array().unwrap().len(), 5);

    let out = unprivileged(&ws, &["verify", "--json"]);
    let report = summary_of(&out);
    assert_eq!(report["ok"], true);
    assert_eq!(report["artifacts_checked"], 5);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("read-only") && stderr.contains("not recorded"),
        "{stderr}"
    );

    // And verify still finds drift read-only: exit 1, not a crash.
    chmod_tree(&ws.artifacts(), 0o755, 0o644);
    let script = ws.run_dir("lighthouse", &run_id).join("Script.json");
    let original = std::fs::read(&script).unwrap();
    std::fs::write(&script, b"{}\n").unwrap();
    chmod_tree(&ws.artifacts(), 0o555, 0o444);
    let out = unprivileged(&ws, &["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(summary_of_any(&out)["ok"], false);

    chmod_tree(&ws.artifacts(), 0o755, 0o644);
    std::fs::write(&script, original).unwrap();
    assert_eq!(artifact_tree(&ws), tree, "nothing was lost");
    let recorded: i64 = ws
        .sqlite()
        .query_row("SELECT count(*) FROM artifact_verifications", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(recorded, 0, "a read-only verify records nothing");
}

/// Parse stdout as JSON whatever the exit status.
fn summary_of_any(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

/// A registry made before the mark in its header (no application id),
/// then damaged past its header: reindex cannot tell it for a registry
/// and refuses it, so the read commands' hint must not send the user
/// there as the one step, and following the hint must work.
#[test]
fn the_hint_on_a_damaged_registry_from_before_the_mark_leads_to_a_reindex_that_works() {
    // The SQLite file's header (application id) and damaged bytes.
    sqlite_only!();
    let (ws, _) = example_run();
    {
        let conn = ws.sqlite();
        conn.execute_batch(
            "PRAGMA application_id = 0;
             DELETE FROM refinery_schema_history WHERE version = 6;",
        )
        .unwrap();
    }
    let mut bytes = std::fs::read(ws.db()).unwrap();
    for b in &mut bytes[100..4096] {
        *b = 0xA5;
    }
    std::fs::write(ws.db(), &bytes).unwrap();

    let listed = ws.cmd().args(["runs", "list"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&listed.stderr).into_owned();
    assert_eq!(listed.status.code(), Some(3), "{stderr}");
    let refused = ws.cmd().arg("reindex").output().unwrap();
    assert_eq!(refused.status.code(), Some(3), "reindex refuses it");
    assert!(
        stderr.contains("hint: ") && stderr.contains("move it away"),
        "{stderr}"
    );

    std::fs::rename(ws.db(), ws.path().join("registry.db.damaged")).unwrap();
    let out = ws.cmd().arg("reindex").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ws.runs_list(&[]).len(), 1);
}
