//! Shared fixtures for the integration tests: a temp workspace and the real
//! `orchestrator` binary run inside it with a clean environment.
#![allow(dead_code)] // each test binary uses a different subset

pub mod pg;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// Parent edges of the stage table, child -> parent.
pub const STAGE_EDGES: [(&str, &str); 7] = [
    ("ShotList", "Script"),
    ("AssetManifest", "ShotList"),
    ("AssetManifest", "Script"),
    ("RenderPlan", "AssetManifest"),
    ("RenderPlan", "ShotList"),
    ("RenderOutput", "RenderPlan"),
    ("RenderOutput", "ShotList"),
];

pub const TYPES: [&str; 5] = [
    "Script",
    "ShotList",
    "AssetManifest",
    "RenderPlan",
    "RenderOutput",
];

/// Whether this pass of the suite runs against PostgreSQL: `make test`
/// runs the integration tests twice, the second time with
/// `ORCHESTRATOR_TEST_BACKEND=postgres`, where every [`Workspace`] gets a
/// fresh, migrated PostgreSQL database as its registry (`ORCHESTRATOR_DB`)
/// instead of `artifacts/registry.db`. Tests of what only a SQLite file has
/// (its bytes, WAL, pragmas, the file swap of reindex) say
/// [`sqlite_only!`] and run in the first pass alone.
pub fn postgres_pass() -> bool {
    std::env::var("ORCHESTRATOR_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// First line of a test about the SQLite file itself: it returns at once
/// (saying so on stderr) in the suite's PostgreSQL pass.
#[macro_export]
macro_rules! sqlite_only {
    () => {
        if $crate::common::postgres_pass() {
            eprintln!("sqlite-only test: runs in the SQLite pass");
            return;
        }
    };
}

/// The repository's example config.
pub fn example_config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/phase0/project.json")
}

pub fn example_config() -> Value {
    serde_json::from_slice(&std::fs::read(example_config_path()).unwrap()).unwrap()
}

/// A temp directory that is the working directory of every command.
pub struct Workspace {
    pub dir: TempDir,
    /// The registry's URL in the suite's PostgreSQL pass ([`postgres_pass`]).
    pg: Option<String>,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pg = postgres_pass().then(|| {
            let url = pg::fresh_database("ws").expect(
                "ORCHESTRATOR_TEST_BACKEND=postgres needs a PostgreSQL server \
                 (tests/with-postgres starts one)",
            );
            let out = Command::new(assert_cmd::cargo::cargo_bin!("orchestrator"))
                .current_dir(dir.path())
                .args(["registry", "migrate", "--db", &url])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "registry migrate: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            url
        });
        Workspace { dir, pg }
    }

    /// The PostgreSQL registry's URL, in the suite's PostgreSQL pass.
    pub fn pg_url(&self) -> Option<&str> {
        self.pg.as_deref()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Default artifacts directory (`./artifacts`).
    pub fn artifacts(&self) -> PathBuf {
        self.path().join("artifacts")
    }

    pub fn db(&self) -> PathBuf {
        self.artifacts().join("registry.db")
    }

    /// The binary, run in the workspace, with no ORCHESTRATOR_* settings
    /// leaking in from the developer's shell.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("orchestrator"));
        cmd.current_dir(self.path())
            .env_remove("ORCHESTRATOR_ARTIFACTS_DIR")
            .env_remove("ORCHESTRATOR_DB")
            .env_remove("ORCHESTRATOR_STRICT")
            .env("NO_COLOR", "1");
        if let Some(url) = &self.pg {
            cmd.env("ORCHESTRATOR_DB", url);
        }
        cmd
    }

    /// Write `value` as a config file named `name` in the workspace.
    pub fn write_config(&self, name: &str, value: &Value) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        path
    }

    /// Copy the example config into the workspace; returns its path.
    pub fn example(&self) -> PathBuf {
        self.write_config("project.json", &example_config())
    }

    /// `orchestrator run --json --project <config> <extra>`; asserts success
    /// and returns the parsed run summary.
    pub fn run_ok(&self, config: &Path, extra: &[&str]) -> Value {
        summary_of(&self.run_output(config, extra))
    }

    pub fn run_dir(&self, project: &str, run: &str) -> PathBuf {
        self.artifacts().join(project).join(run)
    }

    /// `orchestrator runs list --json <args>`, parsed; asserts success.
    pub fn runs_list(&self, args: &[&str]) -> Vec<Value> {
        let out = self
            .cmd()
            .args(["runs", "list", "--json"])
            .args(args)
            .output()
            .unwrap();
        summary_of(&out).as_array().unwrap().clone()
    }

    /// `verify` finds every promise kept (exit 0), or the test fails with
    /// its report.
    pub fn assert_verify_clean(&self) {
        let out = self.cmd().args(["verify", "--json"]).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// The rows `sql` returns from this workspace's registry, on either
    /// backend: each column as text (`NULL` for null). Write the SQL so
    /// both engines give the same text (`CAST(x AS INTEGER)` for a
    /// comparison, which PostgreSQL returns as `t`/`f`).
    pub fn registry_rows(&self, sql: &str) -> Vec<Vec<String>> {
        if let Some(url) = &self.pg {
            return pg::psql(url, sql)
                .lines()
                .map(|l| l.split('|').map(str::to_string).collect())
                .collect();
        }
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => "NULL".to_string(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => v.to_string(),
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                        rusqlite::types::ValueRef::Blob(b) => format!("{b:?}"),
                    })
                })
                .collect()
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    /// The one value `sql` returns from this workspace's registry.
    pub fn registry_value(&self, sql: &str) -> String {
        let rows = self.registry_rows(sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0][0].clone()
    }

    /// The one text value `sql` returns, exactly as stored, on either
    /// backend: unlike [`Self::registry_rows`] it keeps a value that spans
    /// lines or holds `|` (a stored JSON document) whole.
    pub fn registry_text(&self, sql: &str) -> String {
        if let Some(url) = &self.pg {
            // psql ends the one row with a newline of its own.
            let out = pg::psql(url, sql);
            return out
                .strip_suffix('\n')
                .unwrap_or_else(|| panic!("{sql}: not one row: {out:?}"))
                .to_string();
        }
        rusqlite::Connection::open(self.db())
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Run statements that change this workspace's registry (a test's
    /// deliberate damage), on either backend.
    pub fn registry_exec(&self, sql: &str) {
        match &self.pg {
            Some(url) => {
                pg::psql(url, sql);
            }
            None => rusqlite::Connection::open(self.db())
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
        }
    }

    pub fn sqlite(&self) -> rusqlite::Connection {
        assert!(
            self.pg.is_none(),
            "this test reads the SQLite registry file: begin it with `sqlite_only!()`"
        );
        rusqlite::Connection::open(self.db()).unwrap()
    }
}

/// `status` of each of the five stages of a run summary, in order.
pub fn statuses(summary: &Value) -> Vec<String> {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_string())
        .collect()
}

pub fn reasons(summary: &Value) -> Vec<String> {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap().to_string())
        .collect()
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Run the example in a fresh workspace; returns it and the run summary.
pub fn example_run() -> (Workspace, Value) {
    let ws = Workspace::new();
    let config = ws.example();
    let summary = ws.run_ok(&config, &[]);
    (ws, summary)
}

impl Workspace {
    /// `orchestrator run --json --project <config> <extra>` without judging
    /// the outcome, for tests that expect a failure.
    pub fn run_output(&self, config: &Path, extra: &[&str]) -> std::process::Output {
        self.cmd()
            .arg("run")
            .arg("--json")
            .arg("--project")
            .arg(config)
            .args(extra)
            .output()
            .unwrap()
    }

    /// Names of the entries directly in the workspace directory.
    pub fn entries(&self) -> std::collections::BTreeSet<String> {
        dir_names(self.path())
    }
}

/// Names of the entries directly in `dir`.
pub fn dir_names(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Parse the `--json` output of a finished command, asserting it succeeded.
pub fn summary_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "command failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Assert `out` is a clean usage error: exit code 2, nothing on stdout, and
/// a stderr that is one `error:` line (optionally followed by `hint:`
/// lines) with no panic and no Debug-formatted error. Returns the stderr.
pub fn assert_usage_error(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit status; stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout should be empty, got: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    for needle in [
        "panicked",
        "RUST_BACKTRACE",
        "Error {",
        "Error(",
        "Os {",
        "kind:",
        "Custom {",
    ] {
        assert!(
            !stderr.contains(needle),
            "stderr contains `{needle}`: {stderr}"
        );
    }
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("error:")).count(),
        1,
        "exactly one error line: {stderr}"
    );
    for line in &lines[1..] {
        assert!(
            line.starts_with("hint: ") || line.starts_with("  caused by: "),
            "unexpected stderr line {line:?} in: {stderr}"
        );
    }
    stderr
}

/// `since` the test process writes into a run lock it takes, so a waiting
/// `run` can be seen to name it.
pub const TEST_HOLDER_SINCE: &str = "2000-01-01T00:00:00.000Z";

impl Workspace {
    /// `orchestrator <args>` started in the background, stdout and stderr
    /// piped, stdin closed; against the same registry as [`Self::cmd`].
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        use std::process::Stdio;
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("orchestrator"));
        cmd.current_dir(self.path())
            .env_remove("ORCHESTRATOR_ARTIFACTS_DIR")
            .env_remove("ORCHESTRATOR_DB")
            .env_remove("ORCHESTRATOR_STRICT")
            .env("NO_COLOR", "1");
        if let Some(url) = &self.pg {
            cmd.env("ORCHESTRATOR_DB", url);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Take a run's lock (`.locks/<project>.<run>.lock`) from the test
    /// process and record this process as its holder, as `orchestrator run`
    /// does. Released when the file is dropped.
    pub fn hold_run_lock(&self, project: &str, run: &str) -> std::fs::File {
        use std::io::Write;
        let dir = self.artifacts().join(".locks");
        std::fs::create_dir_all(&dir).unwrap();
        let mut file = std::fs::File::create(dir.join(format!("{project}.{run}.lock"))).unwrap();
        file.lock().unwrap();
        let holder = serde_json::json!({"pid": std::process::id(), "since": TEST_HOLDER_SINCE});
        file.write_all(holder.to_string().as_bytes()).unwrap();
        file
    }

    /// Take both of a run's locks, the run lock and the liveness flag
    /// (`.locks/<project>.<run>.live`) that readers probe: to every other
    /// process the run is being run right now.
    pub fn hold_live_run(&self, project: &str, run: &str) -> (std::fs::File, std::fs::File) {
        let lock = self.hold_run_lock(project, run);
        let path = self
            .artifacts()
            .join(".locks")
            .join(format!("{project}.{run}.live"));
        let live = std::fs::File::create(path).unwrap();
        live.lock().unwrap();
        (lock, live)
    }
}

/// The host a run held by the test process names on PostgreSQL (the
/// `host=` of its `application_name`).
pub const TEST_HOLDER_HOST: &str = "test-holder";

/// A run held by the test process, on the pass's backend, as
/// [`Workspace::hold_run`] or [`Workspace::hold_live`] took it; released
/// when dropped.
pub struct HeldRun {
    _files: Vec<std::fs::File>,
    _pg: Option<postgres::Client>,
    /// The holder as a run that meets it names it, after `held by `.
    pub holder: String,
}

impl Workspace {
    /// Hold a run's lock from the test process: on SQLite its lock file
    /// ([`Self::hold_run_lock`]); on PostgreSQL its advisory lock, which is
    /// also what makes it live there.
    pub fn hold_run(&self, project: &str, run: &str) -> HeldRun {
        self.hold(project, run, false)
    }

    /// Hold a run as a live `orchestrator run` holds it: on SQLite its
    /// lock file and liveness flag ([`Self::hold_live_run`]); on
    /// PostgreSQL its advisory lock (src/registry/advisory.rs).
    pub fn hold_live(&self, project: &str, run: &str) -> HeldRun {
        self.hold(project, run, true)
    }

    fn hold(&self, project: &str, run: &str, live: bool) -> HeldRun {
        let pid = std::process::id();
        let Some(url) = &self.pg else {
            let files = if live {
                let (lock, flag) = self.hold_live_run(project, run);
                vec![lock, flag]
            } else {
                vec![self.hold_run_lock(project, run)]
            };
            return HeldRun {
                _files: files,
                _pg: None,
                holder: format!("pid {pid} since {TEST_HOLDER_SINCE}"),
            };
        };
        let mut config: postgres::Config = url.parse().unwrap();
        config.application_name(&format!("test host={TEST_HOLDER_HOST} pid={pid}"));
        let mut client = config.connect(postgres::NoTls).unwrap();
        let key = orchestrator::registry::advisory::run_key(project, run);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .unwrap();
        if live {
            // A live run also holds the registry-wide lock (ORCH, 2)
            // shared, which keeps reindex and gc --yes out.
            client
                .execute("SELECT pg_advisory_lock_shared($1, 2)", &[&0x4F52_4348_i32])
                .unwrap();
        }
        // What a waiting run reads as the holder's `since`.
        let since: String = client
            .query_one(
                "SELECT to_char(backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                 FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0);
        HeldRun {
            _files: Vec::new(),
            _pg: Some(client),
            holder: format!("pid {pid} since {since} on host {TEST_HOLDER_HOST}"),
        }
    }
}

/// Stage 2 replaced by one whose output breaks the ShotList schema (a shot
/// size no schema allows), so a run that uses it fails at stage 2 with
/// nothing written for it.
pub struct BrokenShotList;

impl orchestrator::pipeline::Stage for BrokenShotList {
    fn number(&self) -> u8 {
        2
    }
    fn name(&self) -> &'static str {
        "stage2_script_to_shotlist"
    }
    fn version(&self) -> &'static str {
        "9.9.9-broken"
    }
    fn inputs(&self) -> &'static [orchestrator::artifact::ArtifactType] {
        &[orchestrator::artifact::ArtifactType::Script]
    }
    fn output(&self) -> orchestrator::artifact::ArtifactType {
        orchestrator::artifact::ArtifactType::ShotList
    }
    fn run(&self, ctx: &orchestrator::pipeline::StageContext<'_>) -> orchestrator::Result<Value> {
        Ok(serde_json::json!({
            "artifact_type": "ShotList",
            "schema_version": "1.0.0",
            "project_id": ctx.config.project_id,
            "scene_count": 1,
            "shot_count": 1,
            "total_duration_ms": 1000,
            "shots": [{
                "shot_id": "sc0001_sh01", "scene_id": "sc0001", "number": 1,
                "size": "gigantic", "angle": "eye level", "camera_move": "static",
                "lens_mm": 35, "duration_ms": 1000, "location_id": "loc_x",
                "characters_in_frame": [], "props_in_frame": [], "description": "x"
            }]
        }))
    }
}

/// A mount (a small tmpfs, or a bind mount) for the life of the value:
/// tests that need a real full disk, or a run directory reached through a
/// bind mount. Mounting needs root: where it is not permitted the caller
/// gets `None` after one line saying the test is skipped, except under
/// `CI=true`, where that is a failure.
pub struct Mount(PathBuf);

impl Mount {
    /// A tmpfs of `size` (`2m`) at `dir`.
    pub fn tmpfs(dir: &Path, size: &str, test: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let args = ["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"];
        Mount::run(&args, &[], dir, test)
    }

    /// `mount --bind from to`.
    pub fn bind(from: &Path, to: &Path, test: &str) -> Option<Mount> {
        std::fs::create_dir_all(to).unwrap();
        Mount::run(&["--bind"], &[from], to, test)
    }

    fn run(args: &[&str], paths: &[&Path], at: &Path, test: &str) -> Option<Mount> {
        let ok = std::process::Command::new("mount")
            .args(args)
            .args(paths)
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(Mount(at.to_path_buf()));
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: cannot mount at {} (needs root); CI=true requires it",
            at.display()
        );
        eprintln!("skipped {test}: cannot mount here (needs root)");
        None
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let done = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !done {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

/// Write zeros to `path` until its file system is full.
pub fn fill_disk(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    while file.write_all(&block).is_ok() {}
    // Whatever a smaller write can still take.
    while file.write_all(&[0u8]).is_ok() {}
}
