//! `orchestrator reindex`: rebuild the registry, then print what it holds
//! and each thing it could not index.

use std::io::Write;
use std::time::Duration;

use super::GlobalArgs;
use super::table::printable;
use orchestrator::error::exit;
use orchestrator::registry::BUSY_TIMEOUT;
use orchestrator::reindex::{ReindexReport, reindex};

#[derive(Debug, clap::Args)]
pub struct ReindexArgs {
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Check everything and report, but keep the current registry.
    #[arg(long)]
    pub dry_run: bool,

    /// Seconds to wait for other processes that have the registry open
    /// (`runs list`, `verify`, a run) to close it before swapping.
    #[arg(long, value_name = "SECS", default_value_t = BUSY_TIMEOUT.as_secs())]
    pub lock_timeout: u64,
}

/// Exit 0 when everything in the tree was indexed, 1 when something was not.
pub fn run(global: &GlobalArgs, args: &ReindexArgs) -> anyhow::Result<u8> {
    let ws = global.workspace()?;
    let wait = Duration::from_secs(args.lock_timeout);
    let report = reindex(ws.artifacts_dir(), ws.location(), args.dry_run, wait)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &report, &ws.location().to_string())?;
    }
    Ok(if report.ok {
        exit::SUCCESS
    } else {
        exit::PROBLEM
    })
}

fn print_text(out: &mut impl Write, r: &ReindexReport, db: &str) -> std::io::Result<()> {
    for p in &r.problems {
        // A path is a file name anyone may have made: no raw ESC or BEL.
        let (path, message) = (printable(&p.path), printable(&p.message));
        writeln!(out, "{path}: {}: {message}", p.kind.as_str())?;
    }
    for n in &r.notes {
        let (path, message) = (printable(&n.path), printable(&n.message));
        writeln!(out, "note: {path}: {}: {message}", n.kind.as_str())?;
    }
    for f in &r.removed_leftovers {
        writeln!(
            out,
            "note: removed `{f}`, left by a reindex that did not finish"
        )?;
    }
    writeln!(
        out,
        "{} `{db}`: {} in {}, {}, {}, {}",
        if r.dry_run {
            "dry run, would rebuild"
        } else {
            "rebuilt"
        },
        plural(r.runs, "run"),
        plural(r.projects, "project"),
        plural(r.artifacts, "artifact"),
        plural(r.edges, "edge"),
        plural(r.stage_executions, "stage execution"),
    )?;
    if !r.ok {
        writeln!(
            out,
            "{} above: {} indexed; `orchestrator run` re-creates a run's missing artifacts",
            plural(r.problems.len(), "problem"),
            if r.dry_run { "would not be" } else { "not" }
        )?;
    }
    Ok(())
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
