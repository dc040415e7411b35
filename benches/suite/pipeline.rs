//! The pipeline group: the example project (first run, forced run, no-op
//! resume) against the sqlite3 CLI opening the same registry, then large
//! projects and concurrent runs.

use crate::measure::{Row, Table, Workspace, median, orchestrator, sample, sqlite3_floor};

const ROUNDS: usize = 7;

/// The floor every example case is compared with: the sqlite3 CLI
/// starting, opening the registry and answering one count.
const FLOOR_SQL: &str = "select count(*) from artifacts";

pub fn run(table: &mut Table) {
    example(table);
    large(table);
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
