//! What only a PostgreSQL registry does (issue #13): explicit migrations,
//! passwords that never leak, run locks and liveness across hosts, fencing
//! of a run that lost its connection, and `reindex` into PostgreSQL.
//!
//! Each test makes a fresh database on the test server
//! (`tests/common/pg.rs`) and skips with the harness's one line where there
//! is none. A "host" is a process that shares nothing with the others but
//! the database URL and the artifacts directory: each has a working
//! directory, a `HOME` and a `HOSTNAME` of its own. The suite's PostgreSQL
//! pass does not run these again: they choose their backends themselves.
//!
//! Tests that stop a run half-way use the failpoints of `src/failpoint.rs`
//! (`make test` builds with `--features failpoints`); without the feature
//! they are ignored, saying so.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use common::{TYPES, example_config, pg, sha256_file, statuses};

/// The bound on any one command: generous, for a loaded two-core machine.
/// Nothing here asserts on timing; a command past this is hung.
const WAIT: Duration = Duration::from_secs(180);

/// A fresh database for `test`, or `None` where these tests do not run.
fn database(test: &str) -> Option<String> {
    if common::postgres_pass() {
        eprintln!("{test}: PostgreSQL-only test, runs in the first pass");
        return None;
    }
    pg::fresh_database(test)
}

/// What a developer's shell may set that would change what the binary
/// does: each host sets what it means to, nothing else.
const CLEARED_ENV: &[&str] = &[
    "ORCHESTRATOR_ARTIFACTS_DIR",
    "ORCHESTRATOR_DB",
    "ORCHESTRATOR_STRICT",
    "ORCHESTRATOR_FAILPOINTS",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGUSER",
    "PGHOST",
    "PGPORT",
    "PGDATABASE",
    "PGAPPNAME",
    "RUST_BACKTRACE",
];

/// One machine of a studio: its own working directory (also its `HOME`)
/// and `HOSTNAME`; the artifacts directory and the registry it is given.
struct Host {
    name: String,
    dir: TempDir,
    artifacts: PathBuf,
    /// `--db`: a URL, or `None` for the SQLite file in the artifacts dir.
    db: Option<String>,
}

impl Host {
    fn new(name: &str, artifacts: &Path, db: Option<&str>) -> Host {
        Host {
            name: name.to_string(),
            dir: tempfile::tempdir().unwrap(),
            artifacts: artifacts.to_path_buf(),
            db: db.map(str::to_string),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `orchestrator <args> --artifacts-dir <shared> [--db <url>]`, run on
    /// this host.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("orchestrator"));
        for var in CLEARED_ENV {
            cmd.env_remove(var);
        }
        cmd.current_dir(self.path())
            .env("HOSTNAME", &self.name)
            .env("HOME", self.path())
            .env("NO_COLOR", "1")
            .args(args)
            .arg("--artifacts-dir")
            .arg(&self.artifacts);
        if let Some(db) = &self.db {
            cmd.arg("--db").arg(db);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn output(&self, args: &[&str]) -> Output {
        output_within(self.command(args), &format!("{} {args:?}", self.name))
    }

    /// Started in the background, `ORCHESTRATOR_FAILPOINTS` set when given.
    fn spawn(&self, args: &[&str], failpoints: Option<&str>) -> Proc {
        let mut cmd = self.command(args);
        if let Some(f) = failpoints {
            cmd.env("ORCHESTRATOR_FAILPOINTS", f);
        }
        Proc::spawn(cmd, format!("{} {args:?}", self.name))
    }

    /// `value` written as `<name>.json` in this host's directory; returns
    /// the file name, which `--project` takes relative to the directory.
    fn config(&self, name: &str, value: &Value) -> String {
        let file = format!("{name}.json");
        std::fs::write(
            self.path().join(&file),
            serde_json::to_vec_pretty(value).unwrap(),
        )
        .unwrap();
        file
    }

    /// `run --json --project <config> <extra>`, which must succeed.
    fn run_ok(&self, config: &str, extra: &[&str]) -> Value {
        let mut args = vec!["run", "--json", "--project", config];
        args.extend_from_slice(extra);
        json_ok(&self.output(&args))
    }

    fn json(&self, args: &[&str]) -> Value {
        json_ok(&self.output(args))
    }

    fn runs_list(&self) -> Vec<Value> {
        self.json(&["runs", "list", "--json"])
            .as_array()
            .unwrap()
            .clone()
    }

    fn assert_verify_clean(&self) {
        let out = self.output(&["verify", "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "verify on {}: {}{}",
            self.name,
            text(&out.stdout),
            text(&out.stderr)
        );
    }

    /// Let a run paused at failpoint `point` on this host go on.
    fn resume(&self, point: &str) {
        std::fs::write(self.path().join(format!("failpoint-{point}.resume")), b"").unwrap();
    }

    /// Wait until a run on this host pauses at failpoint `point`.
    fn wait_paused(&self, point: &str, proc: &mut Proc) {
        let paused = self.path().join(format!("failpoint-{point}.paused"));
        let deadline = Instant::now() + WAIT;
        while !paused.exists() {
            if let Some(status) = proc.exited() {
                let out = proc.take_output();
                panic!(
                    "{} exited ({status}) before pausing at {point}: {}{}",
                    proc.what,
                    text(&out.stdout),
                    text(&out.stderr)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} never paused at {point}",
                proc.what
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The parsed stdout of a command that must have succeeded.
fn json_ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "command failed ({}): {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&out.stdout)))
}

fn output_within(cmd: Command, what: &str) -> Output {
    Proc::spawn(cmd, what.to_string()).finish()
}

/// A child process of this test, killed (by its pid) if the test ends
/// before it does.
struct Proc {
    child: Option<Child>,
    what: String,
}

impl Proc {
    fn spawn(mut cmd: Command, what: String) -> Proc {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Proc {
            child: Some(child),
            what,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().unwrap().try_wait().unwrap()
    }

    /// Its output, once it has exited.
    fn take_output(&mut self) -> Output {
        self.child.take().unwrap().wait_with_output().unwrap()
    }

    /// Wait for it to exit (within [`WAIT`], else kill it and fail).
    fn finish(mut self) -> Output {
        let child = self.child.take().unwrap();
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(WAIT) {
            Ok(out) => out.unwrap(),
            Err(_) => {
                // SAFETY: kill(2) on our own child, which has not been
                // reaped (its waiter has not returned).
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                let out = rx.recv().unwrap().unwrap();
                panic!(
                    "{} did not finish within {}s: {}{}",
                    self.what,
                    WAIT.as_secs(),
                    text(&out.stdout),
                    text(&out.stderr)
                );
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One `error:` line (and nothing else but `hint:`/`caused by:` lines),
/// no panic, no raw SQLSTATE or Debug form; returns the error line.
fn assert_one_clean_error(out: &Output) -> String {
    let stderr = text(&out.stderr);
    for needle in [
        "panicked",
        "RUST_BACKTRACE",
        "SQLSTATE",
        "db error",
        "Error {",
        "Error(",
        "kind:",
    ] {
        assert!(
            !stderr.contains(needle),
            "stderr contains `{needle}`: {stderr}"
        );
    }
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "exactly one error line: {stderr}");
    for line in stderr.lines() {
        assert!(
            line.starts_with("error: ")
                || line.starts_with("hint: ")
                || line.starts_with("  caused by: ")
                || line.starts_with("waiting for run "),
            "unexpected stderr line {line:?} in: {stderr}"
        );
    }
    errors[0].to_string()
}

/// The versions of this build's PostgreSQL migrations, ascending.
fn migration_versions() -> Vec<i64> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut versions: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_prefix('V')?.split_once("__")?.0.parse().ok())
        .collect();
    versions.sort();
    versions
}

fn latest_version() -> i64 {
    *migration_versions().last().unwrap()
}

/// Everything the database holds in its schema, as text: each relation
/// with its columns, indexes, views, triggers and functions, each
/// sequence's position, and every row of every table.
fn dump(url: &str) -> String {
    pg::psql(url, DUMP)
}

const DUMP: &str = r#"
SELECT 'schema ' || nspname FROM pg_namespace ORDER BY 1;
SELECT CAST(c.relkind AS TEXT) || ' ' || c.relname || '(' || coalesce((
         SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                           || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                           ', ' ORDER BY a.attnum)
         FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') || ')'
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() ORDER BY c.relname;
SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
  JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() ORDER BY 1;
SELECT viewname || ': ' || definition FROM pg_views
WHERE schemaname = current_schema() ORDER BY 1;
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1;
SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = current_schema() AND p.prokind = 'f' ORDER BY 1;
SELECT 'sequence ' || sequencename || ' ' || coalesce(last_value, 0) FROM pg_sequences
WHERE schemaname = current_schema() ORDER BY 1;
SELECT c.relname || ': ' || query_to_xml(
         format('SELECT * FROM %I.%I AS t ORDER BY t::text', n.nspname, c.relname),
         true, false, '')::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname;
"#;

/// [`dump`] less the sequences' positions. `reindex --dry-run` on
/// PostgreSQL rebuilds the index inside a transaction it rolls back; the
/// ids it drew meanwhile are not given back (sequences are not
/// transactional), but every row and the schema are as they were.
fn dump_but_sequences(url: &str) -> String {
    let all = dump(url);
    let kept: Vec<&str> = all
        .lines()
        .filter(|l| !l.starts_with("sequence "))
        .collect();
    kept.join("\n")
}

/// Every command that opens the registry, as a user would type it.
fn every_command(config: &str) -> Vec<Vec<&str>> {
    vec![
        vec!["run", "--project", config],
        vec!["run", "--project", config, "--dry-run"],
        vec!["run", "--from-run", "abc"],
        vec!["runs", "list"],
        vec!["runs", "list", "--json"],
        vec!["runs", "show", "abc"],
        vec!["lineage", "RenderOutput"],
        vec!["verify"],
        vec!["verify", "--json"],
        vec!["registry", "info"],
        vec!["registry", "info", "--json"],
        vec!["gc", "--keep-last", "1", "--yes"],
        vec!["reindex"],
        vec!["reindex", "--dry-run"],
        vec!["export", "--format", "prov", "abc"],
        vec!["diff", "abc", "def"],
        vec!["package", "abc"],
    ]
}

/// Each of `commands` exits 3 with exactly `stderr` and nothing on stdout.
fn assert_each_refused(host: &Host, commands: &[Vec<&str>], stderr: &str) {
    for args in commands {
        let out = host.output(args);
        assert_eq!(
            (
                out.status.code(),
                text(&out.stderr).as_str(),
                text(&out.stdout).as_str()
            ),
            (Some(3), stderr, ""),
            "{args:?}"
        );
    }
}

#[test]
fn sixteen_concurrent_migrates_of_an_empty_database_all_succeed_and_apply_each_version_once() {
    let Some(url) = database("concurrent_migrate") else {
        return;
    };
    let artifacts = tempfile::tempdir().unwrap();
    let hosts: Vec<Host> = (0..16)
        .map(|i| Host::new(&format!("migrator{i}"), artifacts.path(), Some(&url)))
        .collect();
    let procs: Vec<Proc> = hosts
        .iter()
        .map(|h| h.spawn(&["registry", "migrate", "--json"], None))
        .collect();
    let reports: Vec<Value> = procs.into_iter().map(|p| json_ok(&p.finish())).collect();

    let latest = latest_version();
    // One migrated from nothing; the others waited their turn and found
    // the work done.
    let mut from: Vec<Value> = reports.iter().map(|r| r["from_version"].clone()).collect();
    from.sort_by_key(|v| v.as_i64().unwrap_or(-1));
    let mut expected = vec![json!(latest); 16];
    expected[0] = Value::Null;
    assert_eq!(from, expected, "{reports:#?}");
    for r in &reports {
        assert_eq!(
            (&r["backend"], &r["location"], &r["version"]),
            (&json!("postgresql"), &json!(url), &json!(latest)),
            "{r}"
        );
    }
    let history = pg::psql(
        &url,
        "SELECT version, count(*) FROM refinery_schema_history GROUP BY version ORDER BY version",
    );
    let expected: String = migration_versions()
        .iter()
        .map(|v| format!("{v}|1\n"))
        .collect();
    assert_eq!(history, expected);
}

#[test]
fn a_second_migrate_says_already_current_and_info_reports_the_schema() {
    let Some(url) = database("migrate_again") else {
        return;
    };
    let artifacts = tempfile::tempdir().unwrap();
    let host = Host::new("admin", artifacts.path(), Some(&url));
    let latest = latest_version();

    let first = host.output(&["registry", "migrate"]);
    assert_eq!(
        (
            first.status.code(),
            text(&first.stdout),
            text(&first.stderr)
        ),
        (
            Some(0),
            format!("{url}: schema migrated from empty to V{latest}\n"),
            String::new()
        )
    );
    let history = dump(&url);

    let again = host.output(&["registry", "migrate"]);
    assert_eq!(
        (
            again.status.code(),
            text(&again.stdout),
            text(&again.stderr)
        ),
        (
            Some(0),
            format!("{url}: schema V{latest}, already current\n"),
            String::new()
        )
    );
    assert_eq!(
        host.json(&["registry", "migrate", "--json"]),
        json!({"backend": "postgresql", "location": url, "from_version": latest, "version": latest})
    );
    assert_eq!(
        dump(&url),
        history,
        "a migrate with nothing to do changed the database"
    );

    assert_eq!(
        host.json(&["registry", "info", "--json"]),
        json!({
            "backend": "postgresql",
            "location": url,
            "schema_version": latest,
            "projects": 0,
            "runs": 0,
            "artifacts": 0,
            "executions": 0,
        })
    );
}

#[test]
fn every_command_refuses_an_empty_database_untouched_naming_registry_migrate() {
    let Some(url) = database("empty_refused") else {
        return;
    };
    let artifacts = tempfile::tempdir().unwrap();
    let host = Host::new("empty", artifacts.path(), Some(&url));
    let config = host.config("project", &example_config());
    let before = dump(&url);

    let latest = latest_version();
    assert_each_refused(
        &host,
        &every_command(&config),
        &format!(
            "error: the registry `{url}` has no registry schema yet (this orchestrator needs V{latest})\n\
             hint: the database was left untouched; run `orchestrator registry migrate --db <url>` \
             (once, from any host) to create or upgrade its schema\n"
        ),
    );
    assert_eq!(dump(&url), before, "a refused command changed the database");
    assert_eq!(
        common::dir_names(artifacts.path()),
        Default::default(),
        "a refused command wrote into the artifacts directory"
    );
}

/// A database as an orchestrator one version behind this one left it:
/// every migration but the last applied, with the history refinery writes.
fn database_one_version_behind(url: &str, current: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name[1..name.find("__").unwrap()].parse::<i64>().unwrap()
    });
    files.pop();
    for file in &files {
        pg::psql_file(url, file);
    }
    // The history rows, checksums and all, as a real migrate wrote them.
    let rows = pg::psql(
        current,
        &format!(
            "SELECT format('(%s, %L, %L, %L)', version, name, applied_on, checksum)
             FROM refinery_schema_history WHERE version < {} ORDER BY version",
            latest_version()
        ),
    );
    let values: Vec<&str> = rows.lines().collect();
    assert_eq!(values.len(), files.len());
    pg::psql(
        url,
        &format!(
            "CREATE TABLE refinery_schema_history (
                 version int4 PRIMARY KEY, name varchar(255),
                 applied_on varchar(255), checksum varchar(255));
             INSERT INTO refinery_schema_history VALUES {};",
            values.join(", ")
        ),
    );
}

#[test]
fn every_command_refuses_a_database_one_version_behind_untouched_and_migrate_brings_it_up() {
    let (Some(url), Some(current)) = (database("behind"), database("behind_current")) else {
        return;
    };
    let artifacts = tempfile::tempdir().unwrap();
    let host = Host::new("behind", artifacts.path(), Some(&url));
    let config = host.config("project", &example_config());
    json_ok(
        &Host::new("admin", artifacts.path(), Some(&current))
            .output(&["registry", "migrate", "--json"]),
    );
    database_one_version_behind(&url, &current);
    let before = dump(&url);

    let latest = latest_version();
    let previous = latest - 1;
    assert_each_refused(
        &host,
        &every_command(&config),
        &format!(
            "error: the registry `{url}` has schema V{previous}, older than the V{latest} this \
             orchestrator needs\n\
             hint: the database was left untouched; run `orchestrator registry migrate --db <url>` \
             (once, from any host) to create or upgrade its schema\n"
        ),
    );
    assert_eq!(dump(&url), before, "a refused command changed the database");
    assert_eq!(common::dir_names(artifacts.path()), Default::default());

    // Then `registry migrate` applies the one missing migration, and the
    // schema is the one a fresh migrate builds.
    assert_eq!(
        host.json(&["registry", "migrate", "--json"]),
        json!({"backend": "postgresql", "location": url, "from_version": previous, "version": latest})
    );
    let schema_only = |dump: String| -> String {
        dump.lines()
            .filter(|l| !l.contains("<applied_on>") && !l.contains("refinery_schema_history: "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(schema_only(dump(&url)), schema_only(dump(&current)));
    assert_eq!(
        host.json(&["registry", "info", "--json"])["schema_version"],
        latest
    );
}

#[test]
fn every_command_and_migrate_refuse_a_database_from_a_newer_orchestrator_untouched() {
    let Some(url) = database("newer") else {
        return;
    };
    let artifacts = tempfile::tempdir().unwrap();
    let host = Host::new("newer", artifacts.path(), Some(&url));
    let config = host.config("project", &example_config());
    json_ok(&host.output(&["registry", "migrate", "--json"]));
    pg::psql(
        &url,
        "INSERT INTO refinery_schema_history VALUES (99, 'from_the_future', '2030-01-01T00:00:00Z', '42')",
    );
    let before = dump(&url);

    let mut commands = every_command(&config);
    commands.push(vec!["registry", "migrate"]);
    commands.push(vec!["registry", "migrate", "--json"]);
    assert_each_refused(
        &host,
        &commands,
        &format!(
            "error: the registry `{url}` was written by a newer orchestrator: it has migration \
             V99 `from_the_future`, which this version does not know\n\
             hint: the registry was left untouched; use the orchestrator that wrote it, or pass \
             `--db` to use another registry\n"
        ),
    );
    assert_eq!(dump(&url), before, "a refused command changed the database");
    assert_eq!(common::dir_names(artifacts.path()), Default::default());
}

// ---------------------------------------------------------------------------
// Credentials

/// The password the credential tests give; it must appear nowhere.
const SECRET: &str = "Zebra-7731-Orchestrator-Secret";

/// `url` (`postgresql://USER[:PW]@HOST:PORT/DB`) with `user` and
/// `password` in place of its own.
fn with_login(url: &str, user: &str, password: Option<&str>) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match password {
        Some(p) => format!("{scheme}://{user}:{p}@{host}/{path}"),
        None => format!("{scheme}://{user}@{host}/{path}"),
    }
}

/// (host, port, database, user) of a test URL.
fn url_parts(url: &str) -> (String, u16, String, String) {
    let (_, rest) = url.split_once("://").unwrap();
    let (authority, db) = rest.split_once('/').unwrap();
    let (user, hostport) = authority.rsplit_once('@').unwrap();
    let user = user.split(':').next().unwrap();
    let (host, port) = hostport.rsplit_once(':').unwrap();
    (
        host.to_string(),
        port.parse().unwrap(),
        db.split('?').next().unwrap().to_string(),
        user.to_string(),
    )
}

/// psql without panicking: for cleanup.
fn try_psql(url: &str, sql: &str) -> Result<String, String> {
    let psql = pg::server_bindir()
        .map(|b| b.join("psql"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("psql"));
    let mut child = Command::new(psql)
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            "-",
            "-d",
            url,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// A login role whose password the server checks (scram-sha-256 over
/// TCP), owning the test database. The test server trusts every local
/// connection, so this prepends a `pg_hba.conf` line for this role alone;
/// it does so only on a throwaway cluster of the test harness (its data
/// directory says so), never on a server someone else runs. Dropping it
/// takes the line out again.
struct PasswordRole {
    admin: String,
    role: String,
    line: String,
}

impl PasswordRole {
    fn create(admin: &str) -> Option<PasswordRole> {
        let data_dir = pg::psql(admin, "SHOW data_directory");
        let ours = Path::new(data_dir.trim())
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|n| n.to_string_lossy().starts_with("orchestrator-test-pg-"));
        let (host, ..) = url_parts(admin);
        if !ours || host != "127.0.0.1" {
            eprintln!(
                "password checks skipped: the test server is not a throwaway cluster of the \
                 harness, so its pg_hba.conf stays as it is (it trusts every login)"
            );
            return None;
        }
        let role = format!("orch_pw_{}", std::process::id());
        let line = format!("host all {role} 127.0.0.1/32 scram-sha-256");
        let (.., db, _) = url_parts(admin);
        pg::psql(
            admin,
            &format!(
                "SET password_encryption = 'scram-sha-256';
                 CREATE ROLE {role} LOGIN PASSWORD '{SECRET}';
                 ALTER DATABASE \"{db}\" OWNER TO {role};"
            ),
        );
        let guard = PasswordRole {
            admin: admin.to_string(),
            role,
            line,
        };
        guard.write_hba(true).expect("rewriting pg_hba.conf");
        // The reload is asynchronous: wait until a wrong password is refused.
        let wrong = with_login(admin, &guard.role, Some("not-the-password"));
        let deadline = Instant::now() + WAIT;
        while try_psql(&wrong, "SELECT 1").is_ok() {
            assert!(Instant::now() < deadline, "pg_hba.conf was never reloaded");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(guard)
    }

    /// Rewrite `pg_hba.conf` with this role's line first (`add`) or
    /// without it. COPY truncates its file before it runs its query, so
    /// the lines are read into a table first; CSV with quote and delimiter
    /// characters no line has writes each line as it is.
    fn write_hba(&self, add: bool) -> Result<String, String> {
        let line = &self.line;
        let insert = if add {
            format!("INSERT INTO hba VALUES ('{line}', 0);")
        } else {
            String::new()
        };
        try_psql(
            &self.admin,
            &format!(
                "CREATE TEMP TABLE hba AS
                   SELECT l, n FROM regexp_split_to_table(
                     rtrim(pg_read_file(current_setting('hba_file')), E'\\n'), E'\\n') WITH ORDINALITY AS t(l, n)
                   WHERE l <> '{line}';
                 {insert}
                 DO $$ BEGIN
                   EXECUTE format('COPY (SELECT NULLIF(l, %L) FROM hba ORDER BY n) TO %L
                                   WITH (FORMAT csv, DELIMITER E''\\x02'', QUOTE E''\\x01'')',
                                  '', current_setting('hba_file'));
                 END $$;
                 SELECT pg_reload_conf();"
            ),
        )
    }
}

impl Drop for PasswordRole {
    fn drop(&mut self) {
        let _ = self.write_hba(false);
        let role = &self.role;
        let _ = try_psql(
            &self.admin,
            &format!("REASSIGN OWNED BY {role} TO CURRENT_USER; DROP OWNED BY {role};"),
        );
        let _ = try_psql(&self.admin, &format!("DROP ROLE IF EXISTS {role}"));
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                stack.push(entry.path());
            } else if ty.is_file() {
                out.push(entry.path());
            }
        }
    }
    out
}

/// Fails naming the place if `haystack` holds the password.
fn assert_no_secret(haystack: &str, place: &str) {
    assert!(
        !haystack.contains(SECRET),
        "the password appears in {place}:\n{haystack}"
    );
}

/// Runs `args` on `host`, asserting the password is in neither stream;
/// returns the output.
fn checked(host: &Host, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = host.command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = output_within(cmd, &format!("{args:?}"));
    assert_no_secret(&text(&out.stdout), &format!("the stdout of {args:?}"));
    assert_no_secret(&text(&out.stderr), &format!("the stderr of {args:?}"));
    out
}

#[test]
fn connection_errors_name_the_registry_without_its_password() {
    let Some(url) = database("connection_errors") else {
        return;
    };
    let (_, port, db, user) = url_parts(&url);
    let artifacts = tempfile::tempdir().unwrap();
    // A port nobody listens on: bound, then closed.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        (
            // A host that does not exist: a socket directory that is not
            // there (no name lookup leaves the machine).
            format!("postgresql://{user}:{SECRET}@%2Fnonexistent%2Forchestrator-test/{db}"),
            format!("postgresql://{user}@/nonexistent/orchestrator-test:5432/{db}"),
        ),
        (
            format!("postgresql://{user}:{SECRET}@127.0.0.1:{closed_port}/{db}"),
            format!("postgresql://{user}@127.0.0.1:{closed_port}/{db}"),
        ),
        (
            format!("postgresql://{user}:{SECRET}@127.0.0.1:{port}/{db}_missing"),
            format!("postgresql://{user}@127.0.0.1:{port}/{db}_missing"),
        ),
        (
            format!("postgresql://{user}@127.0.0.1:{closed_port}/{db}?password={SECRET}"),
            format!("postgresql://{user}@127.0.0.1:{closed_port}/{db}"),
        ),
    ];
    for (given, shown) in &cases {
        let host = Host::new("errors", artifacts.path(), Some(given));
        for args in [
            &["runs", "list"][..],
            &["registry", "info", "--json"],
            &["registry", "migrate"],
        ] {
            let out = checked(&host, args, &[]);
            assert_eq!(
                out.status.code(),
                Some(5),
                "{args:?} on {shown}: {}",
                text(&out.stderr)
            );
            let line = assert_one_clean_error(&out);
            assert!(
                line.starts_with(&format!("error: cannot reach the registry `{shown}`: ")),
                "{line}"
            );
            assert!(out.stdout.is_empty());
        }
    }
    // A URL the client cannot parse is shown with the password masked.
    let bad = format!("postgresql://{user}:{SECRET}@127.0.0.1:notaport/{db}");
    let host = Host::new("errors", artifacts.path(), Some(&bad));
    let out = checked(&host, &["runs", "list"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        assert_one_clean_error(&out).starts_with(&format!(
            "error: `--db postgresql://{user}:***@127.0.0.1:notaport/{db}` is not a PostgreSQL URL"
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_password_from_the_url_pgpassword_or_pgpass_appears_in_no_output_file_or_row() {
    let Some(admin) = database("password_nowhere") else {
        return;
    };
    let role = PasswordRole::create(&admin);
    let (host_name, port, db, admin_user) = url_parts(&admin);
    // With a role the server checks, every way of giving the password is
    // seen to work; on a trusting server, only that it is never shown.
    let user = role.as_ref().map_or(admin_user, |r| r.role.clone());
    let with_password = with_login(&admin, &user, Some(SECRET));
    let without = with_login(&admin, &user, None);

    let artifacts = tempfile::tempdir().unwrap();
    let by_url = Host::new("cred-url", artifacts.path(), Some(&with_password));
    json_ok(&checked(&by_url, &["registry", "migrate", "--json"], &[]));
    let mut config = example_config();
    let first = by_url.config("project", &config);
    let summary = json_ok(&checked(
        &by_url,
        &["run", "--json", "--project", &first],
        &[],
    ));
    let run_id = summary["run_id"].as_str().unwrap().to_string();
    assert_eq!(summary["status"], "complete");
    for args in [
        &["runs", "list", "--json"][..],
        &["runs", "list"],
        &["runs", "show", &run_id, "--json"],
        &["runs", "show", &run_id],
        &["lineage", "RenderOutput", "--format", "json"],
        &["verify", "--json"],
        &["verify"],
        &["export", "--format", "prov", &run_id],
        &["registry", "info"],
    ] {
        let out = checked(&by_url, args, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let info = json_ok(&checked(&by_url, &["registry", "info", "--json"], &[]));
    assert_eq!(info["location"], json!(without));

    // PGPASSWORD, with a URL that has none.
    let by_env = Host::new("cred-env", artifacts.path(), Some(&without));
    config["seed"] = json!(2);
    let second = by_env.config("project", &config);
    let env = [("PGPASSWORD", SECRET)];
    let summary = json_ok(&checked(
        &by_env,
        &["run", "--json", "--project", &second],
        &env,
    ));
    assert_eq!(summary["status"], "complete");
    json_ok(&checked(&by_env, &["runs", "list", "--json"], &env));
    json_ok(&checked(&by_env, &["verify", "--json"], &env));

    // ~/.pgpass (this host's HOME), which libpq reads only when no one
    // else may.
    let by_file = Host::new("cred-file", artifacts.path(), Some(&without));
    let pgpass = by_file.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!("{host_name}:{port}:{db}:{user}:{SECRET}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    config["seed"] = json!(3);
    let third = by_file.config("project", &config);
    let summary = json_ok(&checked(
        &by_file,
        &["run", "--json", "--project", &third],
        &[],
    ));
    assert_eq!(summary["status"], "complete");
    let runs = json_ok(&checked(&by_file, &["runs", "list", "--json"], &[]));
    assert_eq!(runs.as_array().unwrap().len(), 3, "{runs:#}");
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = checked(&by_file, &["runs", "list", "--json"], &[]);
    if role.is_some() {
        assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
        let line = assert_one_clean_error(&out);
        assert!(
            line.starts_with(&format!("error: cannot reach the registry `{without}`: ")),
            "{line}"
        );
    }

    if let Some(role) = &role {
        // A wrong password: exit 5, shown neither.
        let wrong = "Not-The-Password-4411";
        let host = Host::new(
            "cred-wrong",
            artifacts.path(),
            Some(&with_login(&admin, &role.role, Some(wrong))),
        );
        let out = checked(&host, &["runs", "list"], &[]);
        assert_eq!(
            (out.status.code(), text(&out.stderr)),
            (
                Some(5),
                format!(
                    "error: cannot reach the registry `{without}`: password authentication failed \
                     for user \"{}\"\n",
                    role.role
                )
            )
        );
        assert!(!text(&out.stderr).contains(wrong));
    }

    for file in files_under(artifacts.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert_no_secret(
            &String::from_utf8_lossy(&bytes),
            &file.display().to_string(),
        );
    }
    assert_no_secret(&dump(&admin), "the registry's rows");
    drop(role);
}

// ---------------------------------------------------------------------------
// Locks and liveness across hosts

/// The example with another project id and seed (so another run id).
fn variant(project: &str, seed: i64) -> Value {
    let mut config = example_config();
    config["project_id"] = json!(project);
    config["seed"] = json!(seed);
    config
}

/// Hosts `names` sharing `artifacts` and the registry at `url`, which the
/// first migrates.
fn studio(names: &[&str], artifacts: &Path, url: &str) -> Vec<Host> {
    let hosts: Vec<Host> = names
        .iter()
        .map(|n| Host::new(n, artifacts, Some(url)))
        .collect();
    json_ok(&hosts[0].output(&["registry", "migrate", "--json"]));
    hosts
}

/// Every artifact of every listed run hashes, on disk, to what the
/// registry says.
fn assert_hashes_true(host: &Host, runs: &[Value]) {
    for run in runs {
        let lineage = host.json(&[
            "lineage",
            "RenderOutput",
            "--project",
            run["project_id"].as_str().unwrap(),
            "--run",
            run["run_id"].as_str().unwrap(),
            "--format",
            "json",
        ]);
        let nodes = lineage["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), TYPES.len(), "{lineage:#}");
        for node in nodes {
            let file = host.artifacts.join(node["path"].as_str().unwrap());
            assert_eq!(
                node["sha256"],
                json!(sha256_file(&file)),
                "{}",
                file.display()
            );
        }
    }
}

#[test]
fn three_hosts_running_four_runs_each_at_once_record_every_run_once_with_true_hashes() {
    let Some(url) = database("three_hosts") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let hosts = studio(&["host-a", "host-b", "host-c"], shared.path(), &url);

    // On every host: the same two runs (one per project), and two of its own.
    let mut procs = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let i = i as i64;
        let configs = [
            ("same-lighthouse", example_config()),
            ("same-harbour", variant("harbour", 11)),
            ("own-lighthouse", variant("lighthouse", 100 + i)),
            ("own-film", variant(&format!("film-{i}"), 200 + i)),
        ];
        for (name, config) in configs {
            let file = host.config(name, &config);
            let args = ["run", "--json", "--project", &file, "--lock-timeout", "150"];
            procs.push((name, host.spawn(&args, None)));
        }
    }
    let mut by_config: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (name, proc) in procs {
        let summary = json_ok(&proc.finish());
        assert_eq!(summary["status"], "complete", "{summary:#}");
        by_config.entry(name).or_default().push(summary);
    }
    let executed = vec!["executed"; 5];
    let skipped = vec!["skipped"; 5];
    for name in ["same-lighthouse", "same-harbour"] {
        // One host ran it; the others waited for it, then had nothing to do.
        let mut seen: Vec<Vec<String>> = by_config[name].iter().map(statuses).collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![executed.clone(), skipped.clone(), skipped.clone()],
            "{name}"
        );
        let ids: Vec<&Value> = by_config[name].iter().map(|s| &s["run_id"]).collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{name}: {ids:?}");
    }
    for name in ["own-lighthouse", "own-film"] {
        for summary in &by_config[name] {
            assert_eq!(statuses(summary), executed, "{name}");
        }
    }

    let mut expected: Vec<(String, String)> = by_config
        .values()
        .flatten()
        .map(|s| {
            (
                s["project_id"].as_str().unwrap().to_string(),
                s["run_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    expected.sort();
    expected.dedup();
    assert_eq!(expected.len(), 8);

    let runs = hosts[2].runs_list();
    let mut listed: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "complete", "{r:#}");
            (
                r["project_id"].as_str().unwrap().to_string(),
                r["run_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed, expected,
        "runs list must name each run exactly once"
    );
    hosts[1].assert_verify_clean();
    assert_hashes_true(&hosts[0], &runs);

    let info = hosts[1].json(&["registry", "info", "--json"]);
    let counted = pg::psql(
        &url,
        "SELECT (SELECT count(*) FROM projects) || ' ' || (SELECT count(*) FROM runs) || ' '
             || (SELECT count(*) FROM artifacts) || ' ' || (SELECT count(*) FROM stage_executions)",
    );
    assert_eq!(
        format!(
            "{} {} {} {}\n",
            info["projects"], info["runs"], info["artifacts"], info["executions"]
        ),
        counted
    );
    assert_eq!(
        (&info["projects"], &info["runs"], &info["artifacts"]),
        (&json!(5), &json!(8), &json!(40))
    );
}

/// Whether `s` is a recorded time (`2026-01-02T03:04:05[.678]Z`).
fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s.ends_with('Z')
        && s[..19]
            .bytes()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16) || c.is_ascii_digit())
}

/// `error: run P/R is busy: held by pid N since T on host H<rest>`: the
/// holder's pid and host as the waiting host sees them.
fn assert_names_holder(line: &str, run: &str, pid: u32, host: &str, rest: &str) {
    let prefix = format!("error: run {run} is busy: held by pid {pid} since ");
    let suffix = format!(" on host {host}{rest}");
    assert!(
        line.starts_with(&prefix) && line.ends_with(&suffix),
        "expected `{prefix}<time>{suffix}`, got `{line}`"
    );
    let since = &line[prefix.len()..line.len() - suffix.len()];
    assert!(is_time(since), "`{since}` is not a time, in `{line}`");
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (make test)"
)]
fn a_run_held_on_one_host_is_busy_on_another_naming_its_host_and_pid_and_running_on_a_third() {
    let Some(url) = database("held_across_hosts") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let hosts = studio(&["holder-a", "waiter-b", "reader-c"], shared.path(), &url);
    let [a, b, c] = &hosts[..] else {
        unreachable!()
    };
    let config = example_config();
    let file_a = a.config("project", &config);
    let file_b = b.config("project", &config);

    let point = "stage.after_commit";
    let mut held = a.spawn(
        &["run", "--json", "--project", &file_a],
        Some(&format!("{point}=pause@2")),
    );
    a.wait_paused(point, &mut held);
    let pid = held.pid();
    let listed = c.runs_list();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["status"], "running");
    let run = format!("lighthouse/{}", listed[0]["run_id"].as_str().unwrap());

    let out = b.output(&["run", "--json", "--project", &file_b, "--no-wait"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let line = assert_one_clean_error(&out);
    assert_names_holder(&line, &run, pid, &a.name, "");
    assert!(
        text(&out.stderr)
            .ends_with("\nhint: wait for the process holding it to finish, then retry\n"),
        "{}",
        text(&out.stderr)
    );

    let out = b.output(&["run", "--json", "--project", &file_b, "--lock-timeout", "1"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let line = assert_one_clean_error(&out);
    assert_names_holder(&line, &run, pid, &a.name, "; still held after waiting 1s");
    let waiting = text(&out.stderr);
    let waiting = waiting.lines().next().unwrap();
    assert!(
        waiting.starts_with(&format!("waiting for run {run} held by pid {pid} since "))
            && waiting.ends_with(&format!(" on host {}", a.name)),
        "{waiting}"
    );

    let listed = c.runs_list();
    assert_eq!(listed[0]["status"], "running", "{listed:#?}");

    a.resume(point);
    let summary = json_ok(&held.finish());
    assert_eq!(summary["status"], "complete");
    assert_eq!(
        summary["attempt"], 1,
        "the refused runs must not count as attempts"
    );
    assert_eq!(c.runs_list()[0]["status"], "complete");
    c.assert_verify_clean();
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (make test)"
)]
fn a_holder_with_a_long_host_name_is_named_with_its_whole_pid() {
    let Some(url) = database("long_host_name") else {
        return;
    };
    // A fully qualified name like a render farm's: with `orchestrator
    // host=` and ` pid=N` it passes the 63 bytes PostgreSQL keeps of an
    // application_name, which cut the pid to its first digits.
    let long = "render-node-0042.farm.studio.example.com";
    let shared = tempfile::tempdir().unwrap();
    let hosts = studio(&[long, "waiter"], shared.path(), &url);
    let [a, b] = &hosts[..] else { unreachable!() };
    let file_a = a.config("project", &example_config());
    let file_b = b.config("project", &example_config());
    let point = "stage.after_commit";
    let mut held = a.spawn(
        &["run", "--json", "--project", &file_a, "--run-id", "long"],
        Some(&format!("{point}=pause@2")),
    );
    a.wait_paused(point, &mut held);

    let out = b.output(&[
        "run",
        "--json",
        "--project",
        &file_b,
        "--run-id",
        "long",
        "--no-wait",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let line = assert_one_clean_error(&out);
    let prefix = format!(
        "error: run lighthouse/long is busy: held by pid {} since ",
        held.pid()
    );
    assert!(
        line.starts_with(&prefix),
        "expected `{prefix}…`, got `{line}`"
    );
    let (_, host) = line
        .rsplit_once(" on host ")
        .unwrap_or_else(|| panic!("no host in `{line}`"));
    assert!(
        !host.is_empty() && long.starts_with(host),
        "`{host}` is not (the start of) `{long}`"
    );
    a.resume(point);
    assert_eq!(json_ok(&held.finish())["status"], "complete");
}

/// A session of the test's own holding an advisory lock, named as another
/// host's orchestrator names its connections.
fn hold_as(url: &str, host: &str, pid: u32, lock: &str) -> postgres::Client {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!(
            "SET application_name = 'orchestrator host={host} pid={pid}'; {lock}"
        ))
        .unwrap();
    client
}

#[test]
fn a_run_held_elsewhere_names_its_holder_instead_of_failing_to_bind_the_lock_key() {
    let Some(url) = database("holder_named") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let host = &studio(&["waiter"], shared.path(), &url)[0];
    let file = host.config("project", &example_config());
    let key = orchestrator::registry::advisory::run_key("lighthouse", "held");
    let holder = hold_as(
        &url,
        "far-away",
        4242,
        &format!("SELECT pg_advisory_lock({key})"),
    );

    let run = ["run", "--json", "--project", &file, "--run-id", "held"];
    let out = host.output(&[&run[..], &["--no-wait"]].concat());
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let line = assert_one_clean_error(&out);
    assert_names_holder(&line, "lighthouse/held", 4242, "far-away", "");

    let out = host.output(&[&run[..], &["--lock-timeout", "1"]].concat());
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let line = assert_one_clean_error(&out);
    assert_names_holder(
        &line,
        "lighthouse/held",
        4242,
        "far-away",
        "; still held after waiting 1s",
    );
    drop(holder);
}

#[test]
fn a_run_kept_out_of_the_registry_names_who_holds_it_instead_of_failing_to_bind_the_lock_key() {
    let Some(url) = database("registry_holder_named") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let host = &studio(&["waiter"], shared.path(), &url)[0];
    let file = host.config("project", &example_config());
    // The registry-wide lock, `("ORCH", 2)`, as `reindex` or `gc --yes` holds it.
    let holder = hold_as(
        &url,
        "rebuilder",
        4343,
        "SELECT pg_advisory_lock(1330791240, 2)",
    );

    let out = host.output(&["run", "--json", "--project", &file, "--lock-timeout", "1"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(
        assert_one_clean_error(&out),
        "error: the registry is busy: this run waited 1s for orchestrator host=rebuilder pid=4343"
    );
    assert_eq!(
        host.runs_list(),
        Vec::<Value>::new(),
        "a run that never started left a row"
    );
    drop(holder);
}

/// An artifact's bytes and its meta record less what differs by design
/// between two hosts' runs (when, and on which host).
fn artifacts_of(artifacts: &Path, summary: &Value) -> BTreeMap<String, Vec<u8>> {
    let dir = artifacts
        .join(summary["project_id"].as_str().unwrap())
        .join(summary["run_id"].as_str().unwrap());
    let mut out = BTreeMap::new();
    for ty in TYPES {
        out.insert(
            format!("{ty}.json"),
            std::fs::read(dir.join(format!("{ty}.json"))).unwrap(),
        );
        let mut meta: Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{ty}.meta.json"))).unwrap())
                .unwrap();
        meta.as_object_mut().unwrap().remove("created_at");
        meta["compute_origin"]
            .as_object_mut()
            .unwrap()
            .remove("host");
        out.insert(
            format!("{ty}.meta.json"),
            serde_json::to_vec(&meta).unwrap(),
        );
    }
    out
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (make test)"
)]
fn a_killed_holder_reads_interrupted_elsewhere_at_once_and_another_host_resumes_it_to_identical_bytes()
 {
    let (Some(url), Some(clean_url)) = (database("killed_holder"), database("killed_clean")) else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let hosts = studio(&["doomed-a", "rescuer-b", "reader-c"], shared.path(), &url);
    let [a, b, c] = &hosts[..] else {
        unreachable!()
    };
    let config = example_config();
    let file_a = a.config("project", &config);
    let file_b = b.config("project", &config);

    // Killed right after stage 2 committed, locks held.
    let out = a
        .spawn(
            &["run", "--json", "--project", &file_a],
            Some("stage.after_commit=kill@2"),
        )
        .finish();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "{}",
        text(&out.stderr)
    );

    // No keepalive to wait for: the server ended the dead process's
    // session, and its locks with it, when its socket closed.
    let listed = c.runs_list();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["status"], "interrupted", "{listed:#?}");

    let resumed = b.run_ok(&file_b, &[]);
    assert_eq!(resumed["status"], "complete");
    assert_eq!(resumed["run_id"], listed[0]["run_id"]);
    assert_eq!(
        statuses(&resumed),
        ["skipped", "skipped", "executed", "executed", "executed"]
    );
    c.assert_verify_clean();
    assert_eq!(c.runs_list()[0]["status"], "complete");

    // The same config, uninterrupted, in a registry and tree of its own.
    let clean_dir = tempfile::tempdir().unwrap();
    let clean = &studio(&["clean-d"], clean_dir.path(), &clean_url)[0];
    let file = clean.config("project", &config);
    let reference = clean.run_ok(&file, &[]);
    assert_eq!(statuses(&reference), vec!["executed"; 5]);
    assert_eq!(resumed["run_id"], reference["run_id"]);
    assert!(
        artifacts_of(shared.path(), &resumed) == artifacts_of(clean_dir.path(), &reference),
        "the resumed run's artifacts differ from an uninterrupted run's"
    );
}

// ---------------------------------------------------------------------------
// Fencing

/// The server's sessions of `host`'s orchestrator processes on the test
/// database: `pid application_name` each.
fn backends(url: &str, host: &str) -> Vec<String> {
    pg::psql(
        url,
        &format!(
            "SELECT pid || ' ' || application_name FROM pg_stat_activity
             WHERE datname = current_database()
               AND application_name LIKE 'orchestrator host={host} %'"
        ),
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Run `config` on `host`, pause it after stage 2's commit, end its
/// connections from the server's side, call `meanwhile`, let the run go
/// on, and watch it until it exits; returns its output and any connection
/// seen from it after the cut.
fn cut_off_mid_run(
    url: &str,
    host: &Host,
    config: &str,
    meanwhile: &mut dyn FnMut(),
) -> (Output, Vec<String>) {
    let point = "stage.after_commit";
    let mut run = host.spawn(
        &["run", "--json", "--project", config],
        Some(&format!("{point}=pause@2")),
    );
    host.wait_paused(point, &mut run);
    assert!(
        !backends(url, &host.name).is_empty(),
        "the paused run has no connection"
    );
    let terminated = pg::psql(
        url,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database()
               AND application_name LIKE 'orchestrator host={} %'",
            host.name
        ),
    );
    assert!(
        !terminated.is_empty() && terminated.lines().all(|l| l == "t"),
        "{terminated}"
    );
    let deadline = Instant::now() + WAIT;
    while !backends(url, &host.name).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the terminated backends never went"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    meanwhile();

    host.resume(point);
    let mut reconnected = Vec::new();
    let deadline = Instant::now() + WAIT;
    while run.exited().is_none() {
        assert!(Instant::now() < deadline, "the cut-off run never exited");
        reconnected.extend(backends(url, &host.name));
        std::thread::sleep(Duration::from_millis(10));
    }
    reconnected.extend(backends(url, &host.name));
    (run.take_output(), reconnected)
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (make test)"
)]
fn a_run_whose_connection_is_terminated_stops_without_reconnecting_and_leaves_nothing_half_registered()
 {
    let Some(url) = database("fenced") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let hosts = studio(&["fenced-f", "other-g"], shared.path(), &url);
    let [f, g] = &hosts[..] else { unreachable!() };
    let config = example_config();
    let file_f = f.config("project", &config);
    let file_g = g.config("project", &config);

    let (out, reconnected) = cut_off_mid_run(&url, f, &file_f, &mut || {});
    assert!(
        matches!(out.status.code(), Some(4 | 5)),
        "exit {:?}: {}",
        out.status,
        text(&out.stderr)
    );
    assert_one_clean_error(&out);
    assert_eq!(
        reconnected,
        Vec::<String>::new(),
        "the fenced run connected again"
    );

    // Nothing half-registered: what committed is whole (verify may only
    // find the files of the stage in flight, written and never committed,
    // as after a crash), and another host carries on from it.
    let out = g.output(&["verify", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{report:#}");
    for problem in report["problems"].as_array().unwrap() {
        assert_eq!(problem["kind"], "unregistered", "{report:#}");
    }
    let listed = g.runs_list();
    assert_eq!(listed[0]["status"], "interrupted", "{listed:#?}");
    let resumed = g.run_ok(&file_g, &[]);
    assert_eq!(resumed["status"], "complete");
    let seen = statuses(&resumed);
    assert_eq!(
        [&seen[..2], &seen[3..]].concat(),
        ["skipped", "skipped", "executed", "executed"],
        "{resumed:#}"
    );
    g.assert_verify_clean();
}

/// Names and bytes of every file under `dir`.
fn files_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Fencing all the way: once its lock is gone, a run writes nothing more
/// into a run directory that another host may own by then. The stage in
/// flight used to write its two files before its commit failed (no round
/// trip to the server between computing and writing); the runner now asks
/// the connection right before it writes.
#[test]
fn a_run_that_lost_its_connection_writes_no_more_files() {
    let Some(url) = database("fenced_files") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let f = &studio(&["fenced-files"], shared.path(), &url)[0];
    let file = f.config("project", &example_config());
    let runs = shared.path().join("lighthouse");
    let mut before = BTreeMap::new();
    let (out, _) = cut_off_mid_run(&url, f, &file, &mut || before = files_of(&runs));
    assert!(
        matches!(out.status.code(), Some(4 | 5)),
        "{}",
        text(&out.stderr)
    );
    let after = files_of(&runs);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "files written after the run's lock was lost"
    );
    assert!(
        after == before,
        "files changed after the run's lock was lost"
    );
}

// ---------------------------------------------------------------------------
// The same runs on both backends

/// `value` with what may differ between two registries of the same runs
/// made apart replaced: recorded times, durations, the host, and the
/// directories (`dirs`: each path and its stand-in).
fn normalised(value: &Value, dirs: &[(&Path, &str)]) -> Value {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let v = if k.ends_with("duration_ms") && v.is_number() {
                    json!("<duration>")
                } else if k == "host" && v.is_string() {
                    json!("<host>")
                } else {
                    normalised(v, dirs)
                };
                (k.clone(), v)
            })
            .collect(),
        Value::Array(items) => items.iter().map(|v| normalised(v, dirs)).collect(),
        Value::String(s) if is_time(s) => json!("<time>"),
        Value::String(s) => {
            let mut s = s.clone();
            for (dir, name) in dirs {
                s = s.replace(dir.to_str().unwrap(), name);
            }
            json!(s)
        }
        v => v.clone(),
    }
}

/// What the read commands answer about every run: `runs list`, `runs
/// show` of each, lineage both ways, `verify`.
fn answers(host: &Host, dirs: &[(&Path, &str)]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let runs = host.runs_list();
    for run in &runs {
        let (p, r) = (
            run["project_id"].as_str().unwrap(),
            run["run_id"].as_str().unwrap(),
        );
        for (what, args) in [
            ("show", vec!["runs", "show", r, "--project", p, "--json"]),
            (
                "lineage",
                vec![
                    "lineage",
                    "RenderOutput",
                    "--project",
                    p,
                    "--run",
                    r,
                    "--format",
                    "json",
                ],
            ),
            (
                "descendants",
                vec![
                    "lineage",
                    "Script",
                    "--descendants",
                    "--project",
                    p,
                    "--run",
                    r,
                    "--format",
                    "json",
                ],
            ),
        ] {
            out.insert(
                format!("{what} {p}/{r}"),
                normalised(&host.json(&args), dirs),
            );
        }
    }
    out.insert("runs list".into(), normalised(&json!(runs), dirs));
    out.insert(
        "lineage RenderOutput".into(),
        normalised(
            &host.json(&["lineage", "RenderOutput", "--format", "json"]),
            dirs,
        ),
    );
    out.insert(
        "verify".into(),
        normalised(&host.json(&["verify", "--json"]), dirs),
    );
    out
}

#[test]
fn reindex_into_postgresql_from_a_sqlite_tree_answers_as_sqlite_did_and_dry_run_changes_nothing() {
    let Some(url) = database("reindex_from_sqlite") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let lite = Host::new("lite", shared.path(), None);
    let configs = [
        ("lighthouse", example_config()),
        ("lighthouse-7", variant("lighthouse", 7)),
        ("harbour", variant("harbour", 11)),
    ];
    for (name, config) in &configs {
        let file = lite.config(name, config);
        assert_eq!(lite.run_ok(&file, &[])["status"], "complete");
    }

    let server = &studio(&["server"], shared.path(), &url)[0];
    let empty = dump_but_sequences(&url);
    let dry = server.output(&["reindex", "--dry-run", "--json"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert_eq!(
        dump_but_sequences(&url),
        empty,
        "reindex --dry-run changed the database"
    );

    let out = server.output(&["reindex", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let dirs = [
        (lite.path(), "<host-dir>"),
        (server.path(), "<host-dir>"),
        (shared.path(), "<artifacts>"),
    ];
    let on_sqlite = answers(&lite, &dirs);
    let on_postgres = answers(server, &dirs);
    assert_eq!(on_postgres.len(), 3 * 3 + 3);
    for (what, answer) in &on_sqlite {
        assert_eq!(Some(answer), on_postgres.get(what), "{what}");
    }

    let full = dump_but_sequences(&url);
    let dry = server.output(&["reindex", "--dry-run", "--json"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert_eq!(
        dump_but_sequences(&url),
        full,
        "reindex --dry-run changed the database"
    );

    // The rebuilt index is one a run trusts.
    let file = server.config("lighthouse", &example_config());
    assert_eq!(statuses(&server.run_ok(&file, &[])), vec!["skipped"; 5]);
}

#[test]
fn the_same_runs_read_the_same_from_sqlite_and_postgresql() {
    let Some(url) = database("same_answers") else {
        return;
    };
    let (lite_dir, pg_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let lite = Host::new("workstation", lite_dir.path(), None);
    let server = &studio(&["workstation"], pg_dir.path(), &url)[0];
    for host in [&lite, server] {
        let lighthouse = host.config("lighthouse", &example_config());
        let harbour = host.config("harbour", &variant("harbour", 11));
        host.run_ok(&lighthouse, &[]);
        host.run_ok(&lighthouse, &["--set", "seed=7"]);
        host.run_ok(&harbour, &[]);
        // A no-op resume, then a partial re-run: three attempts.
        host.run_ok(&lighthouse, &[]);
        host.run_ok(&lighthouse, &["--from-stage", "4"]);
    }
    let dirs = [
        (lite.path(), "<host-dir>"),
        (server.path(), "<host-dir>"),
        (lite_dir.path(), "<artifacts>"),
        (pg_dir.path(), "<artifacts>"),
    ];
    let on_sqlite = answers(&lite, &dirs);
    let on_postgres = answers(server, &dirs);
    assert_eq!(on_sqlite.len(), 3 * 3 + 3);
    for (what, answer) in &on_sqlite {
        assert_eq!(Some(answer), on_postgres.get(what), "{what}");
    }
}

/// A run lets go of its advisory locks before its process exits. Left to
/// the server, they went only once its backend noticed the connection
/// had closed, a moment after the process was gone: a `verify` started
/// right after a run then saw the finished run as live and skipped it
/// (seen as `runs_checked: 0` in the suite's PostgreSQL pass). The race
/// needs a server slow to notice (a loaded machine), so without the fix
/// this fails only sometimes; with it, never.
#[test]
fn a_finished_run_has_let_go_of_its_locks_when_its_process_exits() {
    let Some(url) = database("finished_run_locks") else {
        return;
    };
    let artifacts = tempfile::tempdir().unwrap();
    let host = Host::new("quick", artifacts.path(), Some(&url));
    let migrated = host.output(&["registry", "migrate"]);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let config = host.config("project", &example_config());
    let held_now = || {
        pg::psql(
            &url,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = \
             (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .trim()
        .to_string()
    };
    for attempt in 0..8 {
        host.run_ok(&config, &["--force"]);
        assert_eq!(
            held_now(),
            "0",
            "locks still held after run {attempt} exited"
        );
        let verified = host.json(&["verify", "--json"]);
        assert_eq!(verified["runs_checked"], 1, "{verified:#}");
    }
}
