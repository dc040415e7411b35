//! `make bench`: wall time and peak memory of the pipeline on large projects.
//!
//! A plain `harness = false` benchmark (no extra dependency): each case runs
//! a few times and reports the median. Timings are printed, never asserted —
//! the machine decides them. Peak memory is the process high-water mark
//! (`VmHWM`), so cases run smallest first and each line shows the peak so far.

use std::time::{Duration, Instant};

use orchestrator::clock::SystemClock;
use orchestrator::config;
use orchestrator::pipeline::{RunOptions, default_stages, run_pipeline};
use orchestrator::registry::{Registry, RunFilter};

const ROUNDS: usize = 3;

fn main() {
    // `cargo test --all-targets` runs this binary too, without `--bench`:
    // a benchmark in a debug build measures nothing, so do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmarks run with `make bench`");
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument selects sizes.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!("{:<34} {:>12} {:>14}", "case", "median", "peak RSS");
    for scenes in [100u32, 1_000, 10_000] {
        if filter
            .as_deref()
            .is_some_and(|f| !scenes.to_string().contains(f))
        {
            continue;
        }
        bench_size(scenes);
    }
}

fn bench_size(scenes: u32) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("project.json");
    let config = serde_json::json!({
        "project_id": "bench",
        "title": "Benchmark",
        "seed": 7,
        "scene_count": scenes,
    });
    std::fs::write(&config_path, config.to_string()).expect("write config");
    let loaded = config::load(&config_path).expect("valid config");
    let artifacts = dir.path().join("artifacts");
    let mut registry = Registry::open(&artifacts.join("registry.db")).expect("registry");
    let stages = default_stages();
    let opts = |force| RunOptions {
        config: loaded.clone(),
        run_id: None,
        artifacts_dir: artifacts.clone(),
        from_stage: None,
        force,
        lock_wait: Duration::from_secs(10),
        on_lock_wait: None,
    };

    let execute = median(|| {
        let outcome = run_pipeline(
            &opts(true),
            &mut registry,
            &SystemClock,
            &stages,
            &mut |_| {},
        )
        .expect("run");
        assert!(outcome.error.is_none(), "run failed");
    });
    report(&format!("run, {scenes} scenes, all executed"), execute);

    let resume = median(|| {
        let outcome = run_pipeline(
            &opts(false),
            &mut registry,
            &SystemClock,
            &stages,
            &mut |_| {},
        )
        .expect("resume");
        assert!(outcome.error.is_none(), "resume failed");
    });
    report(&format!("run, {scenes} scenes, all skipped"), resume);

    let filter = RunFilter {
        limit: usize::MAX,
        ..RunFilter::default()
    };
    let (runs, _) = registry.list_runs(&filter, &|_, _| false).expect("runs");
    let verify = median(|| {
        orchestrator::verify::verify(
            &mut registry,
            &artifacts,
            &runs,
            &|_, _| false,
            &SystemClock,
            &mut |_, _| {},
        )
        .expect("verify");
    });
    report(&format!("verify, {scenes} scenes"), verify);

    let bytes: u64 = std::fs::read_dir(artifacts.join("bench").join(loaded.default_run_id()))
        .expect("run dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{:<34} {:>12}",
        format!("  artifact bytes, {scenes} scenes"),
        bytes
    );
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[ROUNDS / 2]
}

fn report(case: &str, t: Duration) {
    println!(
        "{case:<34} {:>9.1} ms {:>11} KiB",
        t.as_secs_f64() * 1000.0,
        peak_rss_kib()
    );
}

/// Peak resident set size of this process so far, from /proc (Linux only).
fn peak_rss_kib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_else(|| "n/a".to_string())
}
