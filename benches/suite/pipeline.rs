//! The pipeline group: the example project (first run, forced run, no-op
//! resume) against the sqlite3 CLI opening the same registry, then large
//! projects and concurrent runs.

use std::process::Command;
use std::time::Instant;

use crate::measure::{
    Row, Sample, Table, Workspace, median, orchestrator, reap, sample, sqlite3_floor, stderr_of,
};

const ROUNDS: usize = 11;

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
/// run is compared with the 1,000 one (no quadratic step: within 12x). The
/// two sizes alternate round by round, so a change in the machine's load
/// weighs on both sides of the ratio alike.
fn large(table: &mut Table) {
    const SIZES: [u32; 2] = [1_000, 10_000];
    // Nine: the 1,000-scene median moves by a fifth from run to run with five.
    let rounds = 9;
    let workspaces: Vec<(Workspace, String)> = SIZES
        .iter()
        .map(|&scenes| {
            let ws = Workspace::new();
            let config = ws.config("project.json", "large", scenes);
            let config = config.to_str().expect("UTF-8 path").to_string();
            (ws, config)
        })
        .collect();
    let mut full = vec![Vec::new(); SIZES.len()];
    let mut noop = vec![Vec::new(); SIZES.len()];
    for _ in 0..rounds {
        for (i, (ws, config)) in workspaces.iter().enumerate() {
            full[i].push(sample(&mut orchestrator(
                ws.path(),
                &["run", "--project", config, "--force"],
            )));
            noop[i].push(sample(&mut orchestrator(
                ws.path(),
                &["run", "--project", config],
            )));
        }
    }
    let full: Vec<Sample> = full.into_iter().map(median_of).collect();
    for (i, scenes) in SIZES.iter().enumerate() {
        let mut row = Row::new(format!("{scenes} scenes: full run (--force)"), full[i]);
        if i > 0 {
            row = row.against("1000 scenes: full run", full[0].wall, 12.0);
        }
        table.push(row);
        table.push(Row::new(
            format!("{scenes} scenes: no-op resume"),
            median_of(std::mem::take(&mut noop[i])),
        ));
    }
}

/// The example's cases, round by round: a first run in a fresh workspace,
/// then on one workspace the floor, a forced run and a no-op resume, so
/// that each ratio compares figures taken moments apart.
fn example(table: &mut Table) {
    let example = std::fs::canonicalize("examples/phase0/project.json")
        .expect("run the suite from the repository root");
    let example = example.to_str().expect("UTF-8 path");

    let ws = Workspace::new();
    sample(&mut orchestrator(ws.path(), &["run", "--project", example]));
    let (mut first, mut floor, mut forced, mut noop) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let fresh = Workspace::new();
        first.push(sample(&mut orchestrator(
            fresh.path(),
            &["run", "--project", example],
        )));
        floor.push(sqlite3_floor(1, &ws.db(), FLOOR_SQL));
        forced.push(sample(&mut orchestrator(
            ws.path(),
            &["run", "--project", example, "--force"],
        )));
        noop.push(sample(&mut orchestrator(
            ws.path(),
            &["run", "--project", example],
        )));
    }
    let floor = median_of(floor).wall;
    let floor_name = "sqlite3 count(*)";
    // No target: the issue sets none for a first run, which also creates
    // and migrates the registry (about 5 ms), once in a registry's life.
    table.push(
        Row::new("example: first run (new registry)", median_of(first)).beside(floor_name, floor),
    );
    table.push(
        Row::new("example: forced run (--force)", median_of(forced))
            .against(floor_name, floor, 5.0),
    );
    table.push(Row::new("example: no-op resume", median_of(noop)).against(floor_name, floor, 3.0));
}

/// The median (and largest peak RSS) of samples already taken.
pub fn median_of(samples: Vec<Sample>) -> Sample {
    let n = samples.len();
    let mut it = samples.into_iter();
    median(n, || it.next().expect("one sample per round"))
}

/// Eight first runs of different 2,000-scene projects against one
/// registry: all at once, against the same eight one after another. Both
/// start from a registry that already exists (one small run made it), so
/// neither pays for creating it. Every process must succeed with nothing
/// on stderr about a busy or locked registry.
fn concurrent(table: &mut Table) {
    concurrent_cases(table, "", Vec::new);
}

/// The concurrent cases against the registry `registry()` names for each
/// round (global arguments such as `--db URL`, made fresh per call; none:
/// each workspace's own SQLite file), rows named with `label` first.
pub fn concurrent_cases(table: &mut Table, label: &str, mut registry: impl FnMut() -> Vec<String>) {
    let rounds = 3;
    let (mut one_by_one, mut together) = (vec![], vec![]);
    // Alternating, so that a change in load weighs on both alike.
    for _ in 0..rounds {
        let db = registry();
        let (ws, configs) = concurrent_workspace(&db);
        let started = Instant::now();
        let mut peak = 0;
        for config in &configs {
            let s = sample(&mut run_cmd(&ws, &db, config));
            peak = peak.max(s.peak_rss_kib);
        }
        one_by_one.push(Sample {
            wall: started.elapsed(),
            peak_rss_kib: peak,
        });
        let db = registry();
        let (ws, configs) = concurrent_workspace(&db);
        let mut cmds: Vec<Command> = configs.iter().map(|c| run_cmd(&ws, &db, c)).collect();
        together.push(sample_all(&mut cmds));
    }
    let one_by_one = median_of(one_by_one);
    let n = CONCURRENT_RUNS;
    let scenes = CONCURRENT_SCENES;
    table.push(Row::new(
        format!("{label}{n} x {scenes} scenes, one after another"),
        one_by_one,
    ));
    table.push(
        Row::new(
            format!("{label}{n} x {scenes} scenes, concurrently"),
            median_of(together),
        )
        .against("the same, one after another", one_by_one.wall, 0.75),
    );
}

/// A workspace whose registry (`db`: global arguments naming it) exists,
/// with `CONCURRENT_RUNS` configs of different project ids.
fn concurrent_workspace(db: &[String]) -> (Workspace, Vec<String>) {
    let ws = Workspace::new();
    let seed = ws.config("seed.json", "seed", 1);
    sample(&mut run_cmd(&ws, db, seed.to_str().expect("UTF-8 path")));
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

fn run_cmd(ws: &Workspace, db: &[String], config: &str) -> Command {
    let mut args: Vec<&str> = db.iter().map(String::as_str).collect();
    args.extend(["run", "--project", config]);
    orchestrator(ws.path(), &args)
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
        let (ok, status, rss) = reap(child.id() as libc::pid_t);
        let stderr = stderr_of(child);
        assert!(ok, "a concurrent run failed ({status}): {stderr}");
        let lower = stderr.to_lowercase();
        assert!(
            !lower.contains("busy") && !lower.contains("locked"),
            "a concurrent run met a busy registry: {stderr}"
        );
        peak = peak.max(rss);
    }
    Sample {
        wall: started.elapsed(),
        peak_rss_kib: peak,
    }
}
