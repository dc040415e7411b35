//! A PostgreSQL server for the tests, and a fresh empty database on it for
//! each test that asks.
//!
//! The server is the one `ORCHESTRATOR_TEST_PG` names (a `postgresql://`
//! URL of a superuser, who may `CREATE DATABASE`; `tests/with-postgres`
//! sets it so one `make test` shares one server), else a throwaway cluster
//! this test process starts on first use and stops when it exits. Without
//! either (no server binaries installed) the PostgreSQL tests skip with one
//! line, or fail where `ORCHESTRATOR_REQUIRE_PG` says they must run (CI).
//!
//! ```ignore
//! let Some(url) = pg::fresh_database("lineage") else { return };
//! let out = pg::psql(&url, "SELECT count(*) FROM runs");
//! ```

use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The line a run without PostgreSQL prints (once: `tests/with-postgres`
/// prints it and tells the test binaries it has).
pub const SKIPPED: &str = "postgres tests skipped: no PostgreSQL server binaries \
                           (install postgresql or set ORCHESTRATOR_TEST_PG)";

/// Set by `tests/with-postgres` when it has printed [`SKIPPED`] itself.
const SKIP_REPORTED: &str = "ORCHESTRATOR_TEST_PG_SKIP_REPORTED";

/// Every throwaway cluster's directory starts so, then the pid of the
/// process that owns it: a cluster whose owner died unannounced (SIGKILL)
/// is found by the next test process and stopped.
const CLUSTER_PREFIX: &str = "orchestrator-test-pg-";

/// A fresh, empty database for one test, as a `postgresql://` URL the
/// binary's `--db` takes; `None` (after one line on stderr per process)
/// where there is no PostgreSQL to test against. `name_hint` (the test's
/// name, say) goes into the database's name, which is unique per test
/// process and call.
///
/// Panics instead of returning `None` where `ORCHESTRATOR_REQUIRE_PG` is
/// set (to anything but empty or `0`), and when a server exists but cannot
/// be started or used.
pub fn fresh_database(name_hint: &str) -> Option<String> {
    let server = server().as_ref()?;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let hint: String = name_hint
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut name = format!("ot_{}_{n}_{hint}", std::process::id());
    // PostgreSQL's identifiers are at most 63 bytes; the prefix keeps it
    // unique, the hint only says whose it is.
    name.truncate(63);
    let create = format!("CREATE DATABASE \"{name}\"");
    if let Err(e) = try_psql(&server.admin_url, &create, false) {
        panic!("cannot create a test database: {e}");
    }
    server.created.lock().unwrap().push(name.clone());
    Some(with_database(&server.admin_url, &name))
}

/// Run `sql` (any number of statements, each in its own transaction)
/// against the database at `url` with psql, stopping at the first error;
/// returns what it printed: one row a line, columns separated by `|`, no
/// headers. Panics with psql's message when a statement fails.
pub fn psql(url: &str, sql: &str) -> String {
    try_psql(url, sql, false).unwrap_or_else(|e| panic!("{e}\nSQL:\n{sql}"))
}

/// Run the SQL file at `path` against `url` in one transaction, as a
/// migration runs; panics naming the file when a statement fails.
pub fn psql_file(url: &str, path: &Path) -> String {
    let sql = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    try_psql(url, &sql, true).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `url` with its database replaced by `database` (user, password, host,
/// port and query parameters kept).
pub fn with_database(url: &str, database: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let after = &rest[authority_end..];
    let query = after.find('?').map_or("", |i| &after[i..]);
    format!(
        "{}{}/{database}{query}",
        &url[..scheme_end],
        &rest[..authority_end]
    )
}

struct Server {
    /// A superuser's URL, connected to a database that always exists.
    admin_url: String,
    /// psql: beside the server binaries when there are some, else PATH's.
    psql: PathBuf,
    /// Databases this process made on a server it did not start, dropped
    /// when it exits.
    created: Mutex<Vec<String>>,
}

/// The cluster this process started, for the exit handler.
struct Cluster {
    dir: PathBuf,
    bindir: PathBuf,
    as_postgres: bool,
}

static SERVER: OnceLock<Option<Server>> = OnceLock::new();
static CLUSTER: OnceLock<Cluster> = OnceLock::new();

fn server() -> &'static Option<Server> {
    SERVER.get_or_init(|| {
        let given = std::env::var("ORCHESTRATOR_TEST_PG").unwrap_or_default();
        let bindir = server_bindir();
        if !given.is_empty() {
            let psql = bindir
                .map(|b| b.join("psql"))
                .unwrap_or_else(|| PathBuf::from("psql"));
            register_exit_handler();
            return Some(Server {
                admin_url: given,
                psql,
                created: Mutex::new(Vec::new()),
            });
        }
        let Some(bindir) = bindir else {
            let required =
                std::env::var("ORCHESTRATOR_REQUIRE_PG").is_ok_and(|v| !v.is_empty() && v != "0");
            assert!(!required, "{SKIPPED}; ORCHESTRATOR_REQUIRE_PG is set");
            if std::env::var_os(SKIP_REPORTED).is_none() {
                // Past the test harness's output capture: the one line a
                // run without PostgreSQL should show.
                let _ = writeln!(std::io::stderr(), "{SKIPPED}");
            }
            return None;
        };
        let admin_url = start_cluster(&bindir);
        Some(Server {
            admin_url,
            psql: bindir.join("psql"),
            created: Mutex::new(Vec::new()),
        })
    })
}

/// Where `initdb`, `pg_ctl` and `postgres` are: `ORCHESTRATOR_TEST_PG_BINDIR`
/// when set (another version; or nowhere, to see the tests skip), else
/// `pg_config --bindir`, else the newest Debian
/// `/usr/lib/postgresql/<version>/bin`. `tests/with-postgres` looks alike.
pub fn server_bindir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("ORCHESTRATOR_TEST_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return has_server(&dir).then_some(dir);
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|d| has_server(d)) {
        return Some(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    debian.sort();
    debian.pop().map(|(_, bin)| bin)
}

/// initdb, then start on a free port; returns the superuser's URL.
fn start_cluster(bindir: &Path) -> String {
    let as_postgres = unsafe { libc::geteuid() } == 0;
    sweep_orphans(bindir, as_postgres);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{CLUSTER_PREFIX}{}-", std::process::id()))
        .tempdir()
        .expect("a temp dir for the test cluster")
        .keep();
    if as_postgres {
        // The server refuses to run as root; it runs as `postgres`, who
        // must own the directory.
        let owner = postgres_user().unwrap_or_else(|| {
            let _ = std::fs::remove_dir_all(&dir);
            panic!("running as root, and there is no `postgres` user to run a test cluster as")
        });
        chown(&dir, owner);
    }
    // Registered before anything starts, so a failure below still cleans up.
    CLUSTER
        .set(Cluster {
            dir: dir.clone(),
            bindir: bindir.to_path_buf(),
            as_postgres,
        })
        .unwrap_or_else(|_| unreachable!("one cluster per process"));
    register_exit_handler();

    let data = dir.join("data");
    let initdb = as_user(as_postgres, &bindir.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale"])
        .arg("--no-sync")
        .output()
        .expect("initdb runs");
    check(&initdb, "initdb");

    let socket_dir = dir.display().to_string();
    let mut last = None;
    for _ in 0..5 {
        let port = free_port();
        let options = [
            "-c listen_addresses=127.0.0.1".to_string(),
            format!("-c port={port}"),
            format!("-c unix_socket_directories='{socket_dir}'"),
            // Speed over durability: the cluster dies with the run.
            "-c fsync=off".into(),
            "-c synchronous_commit=off".into(),
            "-c full_page_writes=off".into(),
            // Concurrency tests open a connection per process.
            "-c max_connections=200".into(),
        ]
        .join(" ");
        let start = as_user(as_postgres, &bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .output()
            .expect("pg_ctl runs");
        if start.status.success() {
            return format!("postgresql://postgres@127.0.0.1:{port}/postgres");
        }
        // Most likely someone took the port between our probe and the
        // server's bind: try another.
        last = Some(start);
    }
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    check(
        &last.unwrap(),
        &format!("pg_ctl start (server log:\n{log})"),
    );
    unreachable!()
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// `program`, run as `postgres` when this process is root.
fn as_user(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut cmd = Command::new(runuser());
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn runuser() -> PathBuf {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("runuser"))
}

fn postgres_user() -> Option<(libc::uid_t, libc::gid_t)> {
    // SAFETY: getpwnam's result is read at once, before any other call
    // could reuse its static buffer; the tests call it from one thread
    // (inside the OnceLock's initialiser or the sweep it runs).
    unsafe {
        let pw = libc::getpwnam(c"postgres".as_ptr());
        (!pw.is_null()).then(|| ((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn chown(path: &Path, (uid, gid): (libc::uid_t, libc::gid_t)) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown postgres {}: {e}", path.display()));
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stop and remove clusters whose owning process is gone: one killed
/// before its exit handler could run would otherwise keep running.
fn sweep_orphans(bindir: &Path, as_postgres: bool) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(CLUSTER_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            stop_and_remove(&entry.path(), bindir, as_postgres);
        }
    }
}

fn stop_and_remove(dir: &Path, bindir: &Path, as_postgres: bool) {
    let data = dir.join("data");
    if data.join("postmaster.pid").exists() {
        let _ = as_user(as_postgres, &bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn register_exit_handler() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // SAFETY: registers a plain function; it runs once, at exit.
        let rc = unsafe { libc::atexit(at_exit) };
        assert_eq!(rc, 0, "atexit");
    });
}

/// At process exit: stop and remove the cluster this process started, or
/// drop the databases it made on a server it was given.
extern "C" fn at_exit() {
    if let Some(cluster) = CLUSTER.get() {
        stop_and_remove(&cluster.dir, &cluster.bindir, cluster.as_postgres);
        return;
    }
    let Some(Some(server)) = SERVER.get() else {
        return;
    };
    let created = std::mem::take(&mut *server.created.lock().unwrap_or_else(|e| e.into_inner()));
    if created.is_empty() {
        return;
    }
    let drops: String = created
        .iter()
        .map(|db| format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE);\n"))
        .collect();
    let _ = psql_command(&server.psql, &server.admin_url, false)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(drops.as_bytes())?;
            child.wait()
        });
}

fn psql_command(psql: &Path, url: &str, single_transaction: bool) -> Command {
    let mut cmd = Command::new(psql);
    cmd.args([
        "-X",
        "-q",
        "-A",
        "-t",
        "-P",
        "null=NULL",
        "-v",
        "ON_ERROR_STOP=1",
        "-f",
        "-",
    ])
    .arg("-d")
    .arg(url)
    .env("PGCONNECT_TIMEOUT", "10")
    // NOTICEs (`... does not exist, skipping`) are not output.
    .env("PGOPTIONS", "-c client_min_messages=warning");
    if single_transaction {
        cmd.arg("--single-transaction");
    }
    cmd
}

/// psql's output, or what it said when a statement failed.
fn try_psql(url: &str, sql: &str, single_transaction: bool) -> Result<String, String> {
    let psql = server()
        .as_ref()
        .map_or_else(|| PathBuf::from("psql"), |s| s.psql.clone());
    let mut child = psql_command(&psql, url, single_transaction)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", psql.display()))?;
    // A writer thread, so a large script cannot deadlock against a full
    // stdout pipe.
    let mut stdin = child.stdin.take().unwrap();
    let script = sql.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
    let out = child.wait_with_output().expect("psql finishes");
    let written = writer.join().unwrap();
    if !out.status.success() {
        return Err(format!(
            "psql failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    written.map_err(|e| format!("psql did not read its script: {e}"))?;
    Ok(String::from_utf8(out.stdout).expect("psql prints UTF-8"))
}
