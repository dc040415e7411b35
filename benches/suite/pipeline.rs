//! The pipeline group: the example project (first run, forced run, no-op
//! resume) against the sqlite3 CLI opening the same registry, then large
//! projects and concurrent runs.

use std::process::Command;
use std::time::Instant;

use crate::measure::{Row, Sample, Table, Workspace, median, orchestrator, sample, sqlite3_floor};

const ROUNDS: usize = 7;

/// The floor every example case is compared with: the sqlite3 CLI
/// starting, opening the registry and answering one count.
const FLOOR_SQL: &str = "select count(*) from artifacts";

/// Concurrent runs: how many, and how large each project is.
const CONCURRENT_RUNS: usize = 8;
const CONCURRENT_SCENES: u32 = 2_000;

pub fn run(table: &mut Table) {
    example(table);
    large(table);
    concurrent(table);
}

/// Full run and no-op resume at 1,000 and 10,000 scenes; the 10,000 full
/// run is compared with the 1,000 one (no quadratic step: within 12x).
fn large(table: &mut Table) {
    let mut full_1k = None;
    for scenes in [1_000u32, 10_000] {
        let rounds = if scenes >= 10_000 { 3 } else { 5 };
        let ws = Workspace::new();
        let config = ws.config("project.json", "large", scenes);
        let config = config.to_str().expect("UTF-8 path");
        let full = median(rounds, || {
            sample(&mut orchestrator(
                ws.path(),
                &["run", "--project", config, "--force"],
            ))
        });
        let noop = median(rounds, || {
            sample(&mut orchestrator(ws.path(), &["run", "--project", config]))
        });
        let mut row = Row::new(format!("{scenes} scenes: full run (--force)"), full);
        if let Some(base) = full_1k {
            row = row.against("1000 scenes: full run", base, 12.0);
        }
        table.push(row);
        table.push(Row::new(format!("{scenes} scenes: no-op resume"), noop));
        full_1k.get_or_insert(full.wall);
    }
}

fn example(table: &mut Table) {
    let example = std::fs::canonicalize("examples/phase0/project.json")
        .expect("run the suite from the repository root");
    let example = example.to_str().expect("UTF-8 path");

    // First run: a fresh workspace each round.
    let first = median(ROUNDS, || {
        let ws = Workspace::new();
        sample(&mut orchestrator(ws.path(), &["run", "--project", example]))
    });
    let ws = Workspace::new();
    sample(&mut orchestrator(ws.path(), &["run", "--project", example]));
    let floor = sqlite3_floor(ROUNDS, &ws.db(), FLOOR_SQL).wall;
    let forced = median(ROUNDS, || {
        sample(&mut orchestrator(
            ws.path(),
            &["run", "--project", example, "--force"],
        ))
    });
    let noop = median(ROUNDS, || {
        sample(&mut orchestrator(ws.path(), &["run", "--project", example]))
    });
    let floor_name = "sqlite3 count(*)";
    table
        .push(Row::new("example: first run (new registry)", first).against(floor_name, floor, 5.0));
    table.push(Row::new("example: forced run (--force)", forced).against(floor_name, floor, 5.0));
    table.push(Row::new("example: no-op resume", noop).against(floor_name, floor, 3.0));
}

/// Eight first runs of different 2,000-scene projects against one
/// registry: all at once, against the same eight one after another. Both
/// start from a registry that already exists (one small run made it), so
/// neither pays for creating it. Every process must succeed with nothing
/// on stderr about a busy or locked registry.
fn concurrent(table: &mut Table) {
    let rounds = 3;
    let one_by_one = median(rounds, || {
        let (ws, configs) = concurrent_workspace();
        let started = Instant::now();
        let mut peak = 0;
        for config in &configs {
            let s = sample(&mut run_cmd(&ws, config));
            peak = peak.max(s.peak_rss_kib);
        }
        Sample {
            wall: started.elapsed(),
            peak_rss_kib: peak,
        }
    });
    let together = median(rounds, || {
        let (ws, configs) = concurrent_workspace();
        let mut cmds: Vec<Command> = configs.iter().map(|c| run_cmd(&ws, c)).collect();
        sample_all(&mut cmds)
    });
    let n = CONCURRENT_RUNS;
    let scenes = CONCURRENT_SCENES;
    table.push(Row::new(
        format!("{n} x {scenes} scenes, one after another"),
        one_by_one,
    ));
    table.push(
        Row::new(format!("{n} x {scenes} scenes, concurrently"), together).against(
            "the same, one after another",
            one_by_one.wall,
            0.75,
        ),
    );
}

/// A workspace whose registry exists, with `CONCURRENT_RUNS` configs of
/// different project ids.
fn concurrent_workspace() -> (Workspace, Vec<String>) {
    let ws = Workspace::new();
    let seed = ws.config("seed.json", "seed", 1);
    sample(&mut run_cmd(&ws, seed.to_str().expect("UTF-8 path")));
    let configs = (0..CONCURRENT_RUNS)
        .map(|i| {
            let path = ws.config(
                &format!("p{i}.json"),
                &format!("concurrent-{i}"),
                CONCURRENT_SCENES,
            );
            path.to_str().expect("UTF-8 path").to_string()
        })
        .collect();
    (ws, configs)
}

fn run_cmd(ws: &Workspace, config: &str) -> Command {
    orchestrator(ws.path(), &["run", "--project", config])
}

/// Start every command at once and wait for all: the wall time from the
/// first start to the last exit, and the largest peak RSS. Panics (with
/// its stderr) if any fails or says anything about a busy or locked
/// registry.
// Each child is reaped by wait4 (which also gives its peak RSS).
#[allow(clippy::zombie_processes)]
fn sample_all(cmds: &mut [Command]) -> Sample {
    let started = Instant::now();
    let children: Vec<_> = cmds
        .iter_mut()
        .map(|c| c.spawn().expect("spawning a benchmarked command"))
        .collect();
    let mut peak = 0;
    for child in children {
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our unwaited child; wait4 reaps it and fills the
        // two out-parameters, which live for the call.
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(waited, pid, "wait4 failed");
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "a concurrent run failed ({status}): {stderr}"
        );
        let lower = stderr.to_lowercase();
        assert!(
            !lower.contains("busy") && !lower.contains("locked"),
            "a concurrent run met a busy registry: {stderr}"
        );
        peak = peak.max(usage.ru_maxrss as u64);
    }
    Sample {
        wall: started.elapsed(),
        peak_rss_kib: peak,
    }
}
