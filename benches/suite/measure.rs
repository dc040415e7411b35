//! What every benchmark group shares: timing medians of child processes,
//! their peak memory, floors from the sqlite3 CLI, and the result table.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The release binary under test (cargo builds it for `cargo bench`).
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orchestrator"))
}

/// `orchestrator <args>` run in `dir`, stdout and stderr discarded.
pub fn orchestrator(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.current_dir(dir)
        .args(args)
        .env_remove("ORCHESTRATOR_ARTIFACTS_DIR")
        .env_remove("ORCHESTRATOR_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// What one process cost.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    /// Peak resident set size of the child, in KiB (`ru_maxrss`).
    pub peak_rss_kib: u64,
}

/// Run `cmd` to completion, panicking (with its stderr) if it fails: a
/// benchmark of a failing command measures nothing.
// The child is reaped by wait4 (which also gives its peak RSS), not by
// `Child::wait`, which clippy cannot see.
#[allow(clippy::zombie_processes)]
pub fn sample(cmd: &mut Command) -> Sample {
    let started = Instant::now();
    let child = cmd.spawn().expect("spawning the benchmarked command");
    let (ok, status, peak_rss_kib) = reap(child.id() as libc::pid_t);
    let wall = started.elapsed();
    let stderr = stderr_of(child);
    assert!(ok, "{cmd:?} failed ({status}): {stderr}");
    Sample { wall, peak_rss_kib }
}

/// Run `f` in a forked child and return its wall time and peak RSS. For
/// generating inputs: a command this process starts later inherits its
/// peak RSS at fork (Linux copies the high-water mark with the address
/// space and keeps it across exec), so a generator's heap here would be
/// counted in every measured command's peak RSS. `f` must leave its
/// results on disk; the child leaves with `_exit`, running no destructor
/// of this process's (temp dirs stay).
#[allow(clippy::zombie_processes)]
pub fn in_child(f: impl FnOnce()) -> Sample {
    let started = Instant::now();
    // SAFETY: the suite has one thread, so the child is a complete copy.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = i32::from(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err());
        // SAFETY: ends the child without unwinding into the parent's code.
        unsafe { libc::_exit(code) };
    }
    let (ok, status, peak_rss_kib) = reap(pid);
    assert!(ok, "the forked generator failed ({status})");
    Sample {
        wall: started.elapsed(),
        peak_rss_kib,
    }
}

/// Reap child `pid` with wait4, which also gives its peak RSS: whether it
/// exited 0, its wait status, and its peak RSS in KiB.
pub fn reap(pid: libc::pid_t) -> (bool, i32, u64) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our unwaited child; wait4 reaps it and fills the
    // two out-parameters, which live for the call.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, status, usage.ru_maxrss as u64)
}

/// What a reaped child wrote on its piped stderr (empty if not piped).
pub fn stderr_of(child: std::process::Child) -> String {
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    stderr
}

/// Median of `rounds` samples (each made by `f`), and the largest peak RSS.
pub fn median(rounds: usize, mut f: impl FnMut() -> Sample) -> Sample {
    let mut samples: Vec<Sample> = (0..rounds).map(|_| f()).collect();
    let peak = samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0);
    samples.sort_by_key(|s| s.wall);
    Sample {
        wall: samples[rounds / 2].wall,
        peak_rss_kib: peak,
    }
}

/// Medians of `a` and `b` sampled in turn, `rounds` times each: a change
/// in the machine's load (it is shared) weighs on both sides alike.
pub fn alternate(
    rounds: usize,
    mut a: impl FnMut() -> Sample,
    mut b: impl FnMut() -> Sample,
) -> (Sample, Sample) {
    let (mut xs, mut ys) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        xs.push(a());
        ys.push(b());
    }
    let (mut xs, mut ys) = (xs.into_iter(), ys.into_iter());
    (
        median(rounds, || xs.next().expect("one sample per round")),
        median(rounds, || ys.next().expect("one sample per round")),
    )
}

/// Median wall time of `sqlite3 <db> <sql>`: the floor for "open the
/// registry and answer one question".
pub fn sqlite3_floor(rounds: usize, db: &Path, sql: &str) -> Sample {
    median(rounds, || {
        let mut cmd = Command::new("sqlite3");
        cmd.arg(db)
            .arg(sql)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        sample(&mut cmd)
    })
}

/// One line of the result table.
pub struct Row {
    pub case: String,
    pub median: Duration,
    pub peak_rss_kib: Option<u64>,
    /// What the case is compared with, and that measurement.
    pub floor: Option<(String, Duration)>,
    /// The target, as text (`<= 3x`), with the largest ratio it allows.
    pub target: Option<(String, f64)>,
}

impl Row {
    pub fn new(case: impl Into<String>, sample: Sample) -> Row {
        Row {
            case: case.into(),
            median: sample.wall,
            peak_rss_kib: Some(sample.peak_rss_kib),
            floor: None,
            target: None,
        }
    }

    /// Show the ratio to `floor` (named `what`), with no target.
    pub fn beside(mut self, what: impl Into<String>, floor: Duration) -> Row {
        self.floor = Some((what.into(), floor));
        self
    }

    /// Compare with `floor` (named `what`); the target is `ratio <= max`.
    pub fn against(self, what: impl Into<String>, floor: Duration, max: f64) -> Row {
        let mut row = self.beside(what, floor);
        row.target = Some((format!("<= {max}x"), max));
        row
    }

    pub fn ratio(&self) -> Option<f64> {
        self.floor
            .as_ref()
            .map(|(_, f)| self.median.as_secs_f64() / f.as_secs_f64().max(1e-9))
    }
}

/// The suite's output: a Markdown table, ready to paste into BENCHMARKS.md.
#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
    /// Lines printed above the table: what the figures depend on beyond
    /// the machine (a server's settings).
    notes: Vec<String>,
}

impl Table {
    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    pub fn push(&mut self, row: Row) {
        eprintln!("  {:<56} {:>10}", row.case, ms(row.median));
        self.rows.push(row);
    }
}

pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for note in &self.notes {
            writeln!(f, "{note}")?;
            writeln!(f)?;
        }
        writeln!(
            f,
            "| case | median | peak RSS | floor | floor median | ratio | target | met |"
        )?;
        writeln!(f, "|---|---:|---:|---|---:|---:|---|---|")?;
        for r in &self.rows {
            let rss = r
                .peak_rss_kib
                .map_or("-".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
            let (floor, floor_ms) = r
                .floor
                .as_ref()
                .map_or(("-".to_string(), "-".to_string()), |(w, d)| {
                    (w.clone(), ms(*d))
                });
            let ratio = r.ratio().map_or("-".to_string(), |x| format!("{x:.2}x"));
            let (target, met) = match (&r.target, r.ratio()) {
                (Some((t, max)), Some(x)) => (
                    t.clone(),
                    if x <= *max { "yes" } else { "**no**" }.to_string(),
                ),
                _ => ("-".to_string(), "-".to_string()),
            };
            writeln!(
                f,
                "| {} | {} | {rss} | {floor} | {floor_ms} | {ratio} | {target} | {met} |",
                r.case,
                ms(r.median)
            )?;
        }
        Ok(())
    }
}

/// Date, CPU, cores, memory and kernel, for the record.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |k| k / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    format!(
        "{} · {cpu} · {cores} cores · {mem_gib:.0} GiB · Linux {kernel} · orchestrator {}",
        chrono::Utc::now().format("%Y-%m-%d"),
        env!("CARGO_PKG_VERSION")
    )
}

/// A temp workspace with a config file in it.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a project config and return its path.
    pub fn config(&self, name: &str, project_id: &str, scene_count: u32) -> PathBuf {
        let path = self.path().join(name);
        let config = serde_json::json!({
            "project_id": project_id,
            "title": format!("Benchmark {project_id}"),
            "seed": 7,
            "scene_count": scene_count,
        });
        std::fs::write(&path, config.to_string()).expect("writing a config");
        path
    }

    pub fn db(&self) -> PathBuf {
        self.path().join("artifacts").join("registry.db")
    }
}
