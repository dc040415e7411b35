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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use common::{example_config, pg};

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

    fn json(&self, args: &[&str]) -> Value {
        json_ok(&self.output(args))
    }

    fn runs_list(&self) -> Vec<Value> {
        self.json(&["runs", "list", "--json"])
            .as_array()
            .unwrap()
            .clone()
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

// ---------------------------------------------------------------------------
// Locks and liveness across hosts

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
