//! `orchestrator verify`: print each broken promise, then a summary table.

use std::io::Write;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::GlobalArgs;
use super::table::{new_table, printable};
use orchestrator::clock::SystemClock;
use orchestrator::error::exit;
use orchestrator::registry::RunFilter;
use orchestrator::verify::{TreeScope, VerifyReport, verify};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Only this run (id or unique prefix).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,

    /// Only runs of this project.
    #[arg(long, value_name = "P")]
    pub project: Option<String>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Below this many bytes to hash a progress bar would only flicker.
const PROGRESS_THRESHOLD_BYTES: u64 = 4 << 20;

/// Exit 0 when every promise holds, 1 when any problem was found.
pub fn run(global: &GlobalArgs, args: &VerifyArgs) -> anyhow::Result<u8> {
    let ws = global.workspace()?;
    let mut registry = ws.open_existing()?;
    // The file itself first: a damaged registry is exit 3, not a finding.
    registry.quick_check()?;
    let liveness = ws.liveness(&registry)?;
    let live = |project: &str, run: &str| liveness.is_live(project, run);
    let runs = match &args.run {
        Some(id) => vec![registry.resolve_run(id, args.project.as_deref(), &live)?],
        None => {
            let filter = RunFilter {
                project: args.project.clone(),
                limit: usize::MAX,
                ..RunFilter::default()
            };
            let runs = registry.list_runs(&filter, &live)?.0;
            // A mistyped project must not pass as "nothing to verify";
            // one with a directory in the tree is searched all the same
            // (an interrupted gc, a run the registry lost).
            let in_tree = |p: &str| {
                orchestrator::config::is_valid_id(p)
                    && std::fs::symlink_metadata(global.artifacts_dir.join(p))
                        .is_ok_and(|m| m.is_dir())
            };
            if let (Some(p), true) = (&args.project, runs.is_empty())
                && !in_tree(p)
            {
                return Err(orchestrator::Error::usage_with_hint(
                    format!("no runs are recorded for project `{p}`"),
                    "`orchestrator runs list` shows the recorded runs",
                )
                .into());
            }
            runs
        }
    };

    // Drawn only when stderr is a terminal; piped output stays quiet.
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("verifying {bar:30} {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut progress = |done: u64, total: u64| {
        if total >= PROGRESS_THRESHOLD_BYTES {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    // The tree is searched for what no run accounts for unless one run
    // was asked for.
    let scope = match (&args.run, &args.project) {
        (Some(_), _) => TreeScope::Runs,
        (None, Some(p)) => TreeScope::Project(p),
        (None, None) => TreeScope::All,
    };
    let report = verify(
        &mut registry,
        &global.artifacts_dir,
        &runs,
        scope,
        &live,
        &SystemClock,
        &mut progress,
    )?;
    bar.finish_and_clear();
    if registry.is_read_only() {
        eprintln!(
            "note: `{}` is read-only; these results were not recorded in it",
            registry.path().display()
        );
    } else if report.unrecorded_disk_full {
        eprintln!(
            "note: the disk holding `{}` is full; these results were not recorded in it",
            registry.path().display()
        );
    }

    for r in &report.runs_in_progress {
        eprintln!(
            "note: run {}/{} is being written by another `orchestrator run`; not checked (verify it once it finishes)",
            r.project_id, r.run_id
        );
    }
    for r in &report.runs_removed {
        eprintln!(
            "note: run {}/{} was removed by `orchestrator gc` while verify ran; not checked",
            r.project_id, r.run_id
        );
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &report)?;
    }
    Ok(if report.ok {
        exit::SUCCESS
    } else {
        exit::PROBLEM
    })
}

fn print_text(out: &mut impl Write, report: &VerifyReport) -> std::io::Result<()> {
    for p in &report.problems {
        writeln!(
            out,
            "{}: {}: expected {}, found {}",
            printable(&p.path),
            super::table::paint_problem(p.kind.as_str()),
            printable(&p.expected),
            printable(&p.found)
        )?;
    }
    if report.runs.is_empty() {
        return writeln!(
            out,
            "{}",
            if report.runs_in_progress.is_empty() {
                "no runs to verify"
            } else {
                "no finished runs to verify"
            }
        );
    }
    let mut table = new_table(&["RUN ID", "PROJECT", "ARTIFACTS", "OK", "PROBLEMS"]);
    for r in &report.runs {
        table.add_row(vec![
            r.run_id.clone(),
            r.project_id.clone(),
            r.artifacts.to_string(),
            r.artifacts_ok.to_string(),
            r.problems.to_string(),
        ]);
    }
    writeln!(out, "{table}")?;
    if report.ok {
        writeln!(
            out,
            "ok: {} artifacts in {} match the registry",
            report.artifacts_checked,
            plural(report.runs_checked, "run")
        )
    } else {
        writeln!(
            out,
            "{} found in {}",
            plural(report.problems.len(), "problem"),
            plural(report.runs.iter().filter(|r| r.problems > 0).count(), "run")
        )
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
