//! The PostgreSQL server the postgres group measures against: the one
//! `ORCHESTRATOR_BENCH_PG` (or `ORCHESTRATOR_TEST_PG`) names, a superuser's
//! `postgresql://` URL, else a throwaway cluster started here and stopped
//! when the group ends (or, if the suite dies first, by the next suite run:
//! its directory names the pid that owns it). A fresh database per case,
//! dropped at the end on a server that was given.
//!
//! The throwaway cluster is started as `tests/with-postgres` starts the
//! tests' (initdb as the `postgres` user when run as root, 127.0.0.1 on a
//! free port) but with the settings of a real server, since it is measured:
//! fsync, synchronous_commit and full_page_writes on (PostgreSQL's
//! defaults), shared_buffers a modest 128 MB, everything else default.
//!
//! `BENCH_KEEP_REGISTRY` keeps the databases made on a given server, for
//! EXPLAIN by hand; a throwaway cluster is always stopped.
//!
//! Floors run the server's own `psql` binary from its bindir, never
//! Debian's `/usr/bin/psql`, a Perl wrapper that adds ~20 ms per call.

use std::cell::RefCell;
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::measure::{Sample, median, orchestrator, sample};

/// The line a run without PostgreSQL prints, instead of the group.
pub const SKIPPED: &str = "postgres benchmarks skipped: no PostgreSQL server binaries \
    (install postgresql, or set ORCHESTRATOR_BENCH_PG to a superuser's postgresql:// URL)";

/// A throwaway cluster's directory starts so, then the owning pid.
const CLUSTER_PREFIX: &str = "orchestrator-bench-pg-";

/// The server settings a throwaway cluster is started with: a real
/// server's durability (they are PostgreSQL's defaults, spelled out so the
/// table's header can say so), a modest buffer cache, room for the
/// concurrent runs' connections.
const SETTINGS: [&str; 5] = [
    "fsync=on",
    "synchronous_commit=on",
    "full_page_writes=on",
    "shared_buffers=128MB",
    "max_connections=100",
];

pub struct Server {
    /// A superuser's URL, connected to the `postgres` database.
    admin_url: String,
    psql: PathBuf,
    /// Databases made here: dropped at the end on a server that was given.
    created: RefCell<Vec<String>>,
    cluster: Option<Cluster>,
}

struct Cluster {
    dir: PathBuf,
    bindir: PathBuf,
    as_postgres: bool,
}

impl Server {
    /// The server to measure against, or `None` (after printing
    /// [`SKIPPED`]) where there is none.
    pub fn start() -> Option<Server> {
        let bindir = server_bindir();
        let given = ["ORCHESTRATOR_BENCH_PG", "ORCHESTRATOR_TEST_PG"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        if let Some(admin_url) = given {
            let psql = bindir
                .map(|b| b.join("psql"))
                .unwrap_or_else(|| PathBuf::from("psql"));
            return Some(Server {
                admin_url,
                psql,
                created: RefCell::new(Vec::new()),
                cluster: None,
            });
        }
        let Some(bindir) = bindir else {
            eprintln!("{SKIPPED}");
            return None;
        };
        Some(start_cluster(&bindir))
    }

    /// A new empty database, migrated by `orchestrator registry migrate`
    /// as a user would; its URL.
    pub fn migrated_database(&self, hint: &str) -> String {
        let url = self.empty_database(hint);
        sample(&mut orchestrator(
            Path::new("."),
            &["registry", "migrate", "--db", &url],
        ));
        url
    }

    /// A new empty database; its URL.
    pub fn empty_database(&self, hint: &str) -> String {
        let n = self.created.borrow().len();
        let name = format!("bench_{}_{n}_{hint}", std::process::id());
        self.psql(&self.admin_url, &format!("CREATE DATABASE \"{name}\""));
        self.created.borrow_mut().push(name.clone());
        with_database(&self.admin_url, &name)
    }

    /// Run `sql` with psql, stopping at the first error; its output, one
    /// row a line, `|` between columns. Panics with psql's message.
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let out = self
            .psql_command(url)
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .stdout(Stdio::piped())
            .output()
            .expect("running psql");
        check(&out, &format!("psql -c {sql:?}"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Median wall time of `psql -c <sql>`: one process, one connection,
    /// the statements sent as one simple query, output discarded. The
    /// floor for "connect and answer".
    pub fn psql_floor(&self, rounds: usize, url: &str, sql: &str) -> Sample {
        median(rounds, || {
            let mut cmd = self.psql_command(url);
            cmd.args(["-c", sql])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            sample(&mut cmd)
        })
    }

    fn psql_command(&self, url: &str) -> Command {
        let mut cmd = Command::new(&self.psql);
        cmd.args(["-X", "-q", "-A", "-t", "-d", url])
            // NOTICEs (`... skipping`) are not output; and the floors run
            // with the session settings the tool's connections set
            // (`PgTarget::connect`): no JIT.
            .env("PGOPTIONS", "-c client_min_messages=warning -c jit=off");
        cmd
    }

    /// Version and the settings that matter to the figures, as the
    /// server reports them.
    pub fn describe(&self) -> String {
        let row = self.psql(
            &self.admin_url,
            "SELECT current_setting('server_version'), current_setting('fsync'),
                    current_setting('synchronous_commit'), current_setting('full_page_writes'),
                    current_setting('shared_buffers')",
        );
        let v: Vec<&str> = row.split('|').collect();
        let whose = if self.cluster.is_some() {
            "throwaway cluster"
        } else {
            "given server"
        };
        format!(
            "PostgreSQL {} ({whose}, 127.0.0.1 TCP): fsync={} synchronous_commit={} \
             full_page_writes={} shared_buffers={}",
            v[0],
            v.get(1).unwrap_or(&"?"),
            v.get(2).unwrap_or(&"?"),
            v.get(3).unwrap_or(&"?"),
            v.get(4).unwrap_or(&"?")
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(cluster) = &self.cluster {
            stop_and_remove(&cluster.dir, &cluster.bindir, cluster.as_postgres);
            return;
        }
        if std::env::var_os("BENCH_KEEP_REGISTRY").is_some() {
            eprintln!(
                "  kept the databases on {}: {}",
                self.admin_url,
                self.created.borrow().join(", ")
            );
            return;
        }
        for name in self.created.borrow().iter() {
            let _ = self
                .psql_command(&self.admin_url)
                .args([
                    "-c",
                    &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `url` with its database replaced by `database`.
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

/// Where `initdb` and `pg_ctl` are, looked for as `tests/with-postgres`
/// does: `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
fn server_bindir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
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

fn start_cluster(bindir: &Path) -> Server {
    // SAFETY: geteuid has no preconditions.
    let as_postgres = unsafe { libc::geteuid() } == 0;
    sweep_orphans(bindir, as_postgres);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{CLUSTER_PREFIX}{}-", std::process::id()))
        .tempdir()
        .expect("a temp dir for the cluster")
        .keep();
    if as_postgres {
        // The server refuses to run as root: it runs as `postgres`, who
        // must own its directory.
        let status = Command::new(runuser())
            .args(["-u", "postgres", "--", "true"])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "running as root, and cannot run a cluster as the `postgres` user"
        );
        let out = Command::new("chown")
            .arg("postgres:")
            .arg(&dir)
            .output()
            .expect("chown");
        check(&out, "chown postgres");
    }
    // From here on, dropping it stops and removes the cluster.
    let mut server = Server {
        admin_url: String::new(),
        psql: bindir.join("psql"),
        created: RefCell::new(Vec::new()),
        cluster: Some(Cluster {
            dir: dir.clone(),
            bindir: bindir.to_path_buf(),
            as_postgres,
        }),
    };
    let data = dir.join("data");
    // --no-sync: initdb's own flush is not measured, and the cluster dies
    // with the run; the server itself runs with fsync on.
    let out = as_user(as_postgres, &bindir.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale"])
        .arg("--no-sync")
        .output()
        .expect("initdb runs");
    check(&out, "initdb");
    let mut last = None;
    for _ in 0..5 {
        let port = free_port();
        let mut options = vec![
            "-c listen_addresses=127.0.0.1".to_string(),
            format!("-c port={port}"),
            format!("-c unix_socket_directories='{}'", dir.display()),
        ];
        options.extend(SETTINGS.iter().map(|s| format!("-c {s}")));
        let out = as_user(as_postgres, &bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-o", &options.join(" "), "-w", "-t", "60", "start"])
            .output()
            .expect("pg_ctl runs");
        if out.status.success() {
            server.admin_url = format!("postgresql://postgres@127.0.0.1:{port}/postgres");
            return server;
        }
        // Most likely the port was taken between the probe and the bind.
        last = Some(out);
    }
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    check(
        &last.expect("five tries"),
        &format!("pg_ctl start (server log:\n{log})"),
    );
    unreachable!("check panics on a failed start")
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

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

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stop and remove clusters whose suite process is gone (killed before it
/// could stop them).
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
            let _ = writeln!(
                std::io::stderr(),
                "  stopping an orphaned bench cluster: {}",
                entry.path().display()
            );
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
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = std::fs::remove_dir_all(dir);
}
