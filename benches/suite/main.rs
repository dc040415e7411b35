//! `make bench`: the benchmark suite. It builds its own inputs in temp
//! directories, drives the release binary the way users do (one process per
//! command) and prints one table: each case's median wall time beside a
//! floor measured in the same run on the same machine (usually the sqlite3
//! CLI answering the equivalent question), the ratio, and the target.
//!
//! Nothing here is asserted: the machines are shared and noisy, so figures
//! are reported and judged in BENCHMARKS.md, never in tests.
//!
//! `cargo bench --bench suite -- [FILTER]` runs the cases whose group name
//! contains FILTER (`pipeline`, `registry`, `verify`, `postgres`). `cargo test
//! --all-targets` builds this binary and runs it without `--bench`, which
//! does nothing.

mod measure;
mod pg_server;
mod pipeline;
mod postgres;
mod registry;
mod verify;

use measure::Table;

/// One group of cases: its name and the function that runs them.
type Group = (&'static str, fn(&mut Table));

const GROUPS: [Group; 4] = [
    ("pipeline", pipeline::run),
    ("registry", registry::run),
    ("verify", verify::run),
    ("postgres", postgres::run),
];

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmarks run with `make bench`");
        return;
    }
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut table = Table::default();
    for (name, run) in GROUPS {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        eprintln!("== {name}");
        run(&mut table);
    }
    println!("{}", measure::machine());
    println!();
    println!("{table}");
}
