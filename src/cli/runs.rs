//! `orchestrator runs list` and `orchestrator runs show`: recorded runs,
//! read from the registry (never from the artifact tree).

use std::io::Write;

use chrono::Utc;

use super::GlobalArgs;
use super::table::{duration, new_table, printable};
use super::when::parse_when;
use orchestrator::artifact::short_sha;
use orchestrator::registry::{ExecutionStatus, RunStatus};
use orchestrator::registry::{Registry, RunFilter, RunRow, StageRow};

#[derive(Debug, clap::Subcommand)]
pub enum RunsCommand {
    /// Recorded runs, newest first.
    List(ListArgs),
    /// One run's config hash, timings and the latest decision for each stage.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only runs of this project.
    #[arg(long, value_name = "P")]
    pub project: Option<String>,

    /// Only runs with this status.
    #[arg(long, value_name = "S", value_parser = ["complete", "failed", "running", "interrupted"])]
    pub status: Option<String>,

    /// Only runs started at or after DATE: `2026-11-24`, an RFC 3339 time,
    /// or an age such as `90m`, `12h`, `7d`, `2w`.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,

    /// Show at most N runs.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,

    /// Also show these config values, by dotted path, to compare takes:
    /// `--show seed,scene_count,render.width`.
    #[arg(long, value_name = "KEYS", value_delimiter = ',')]
    pub show: Vec<String>,

    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Run id or a unique prefix of one.
    pub run: String,

    /// Look only in this project (when the same run id exists in several).
    #[arg(long, value_name = "P")]
    pub project: Option<String>,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &GlobalArgs, cmd: &RunsCommand) -> anyhow::Result<()> {
    let ws = global.workspace()?;
    let registry = ws.open_existing()?;
    let liveness = ws.liveness(&registry)?;
    let live = |project: &str, run: &str| liveness.is_live(project, run);
    match cmd {
        RunsCommand::List(args) => list(&registry, &live, args),
        RunsCommand::Show(args) => show(&registry, &live, args),
    }
}

fn list(
    registry: &Registry,
    live: &dyn Fn(&str, &str) -> bool,
    args: &ListArgs,
) -> anyhow::Result<()> {
    let since = args
        .since
        .as_deref()
        .map(|s| parse_when("--since", s, Utc::now()))
        .transpose()?;
    let filter = RunFilter {
        project: args.project.clone(),
        // clap admits only the four words a status is.
        status: args.status.as_deref().map(str::parse).transpose()?,
        since,
        limit: args.limit as usize,
    };
    let (runs, total) = registry.list_runs(&filter, live)?;
    let shown = shown_config_values(registry, &runs, &args.show)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<serde_json::Value> = runs
            .iter()
            .zip(&shown)
            .map(|(r, values)| {
                let mut row = run_json(r);
                if !args.show.is_empty() {
                    let config: serde_json::Map<String, serde_json::Value> = args
                        .show
                        .iter()
                        .cloned()
                        .zip(values.iter().map(|v| v.clone().unwrap_or_default()))
                        .collect();
                    row["config"] = config.into();
                }
                row
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else if runs.is_empty() {
        writeln!(out, "no runs recorded{}", describe_filter(args))?;
    } else {
        let mut headers = vec![
            "RUN ID",
            "PROJECT",
            "STATUS",
            "EXEC/SKIP",
            "CREATED",
            "DURATION",
        ];
        let upper: Vec<String> = args.show.iter().map(|k| k.to_uppercase()).collect();
        headers.extend(upper.iter().map(String::as_str));
        let mut table = new_table(&headers);
        for (r, values) in runs.iter().zip(&shown) {
            let mut row = vec![
                r.run_id.clone(),
                r.project_id.clone(),
                r.status.to_string(),
                format!("{}/{}", r.stages_executed, r.stages_skipped),
                r.created_at.clone(),
                duration(r.duration_ms),
            ];
            row.extend(values.iter().map(|v| match v {
                None => "-".to_string(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            }));
            table.add_row(row);
        }
        writeln!(out, "{table}")?;
    }
    if total > runs.len() {
        eprintln!(
            "note: showing the newest {} of {total} matching runs; use --limit {total} to see all",
            runs.len()
        );
    }
    Ok(())
}

/// For each run, the config value at each dotted path of `keys` (`None`
/// where the config has none). Read only when asked: one lookup per run
/// shown, which `--limit` bounds.
fn shown_config_values(
    registry: &Registry,
    runs: &[RunRow],
    keys: &[String],
) -> anyhow::Result<Vec<Vec<Option<serde_json::Value>>>> {
    if keys.is_empty() {
        return Ok(vec![Vec::new(); runs.len()]);
    }
    let pointers: Vec<String> = keys
        .iter()
        .map(|k| {
            k.split('.')
                .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
                .collect()
        })
        .collect();
    runs.iter()
        .map(|r| {
            let (_, config_json) = registry.run_record(&r.project_id, &r.run_id)?;
            let config: serde_json::Value = serde_json::from_str(&config_json)?;
            Ok(pointers
                .iter()
                .map(|p| config.pointer(p).cloned())
                .collect())
        })
        .collect()
}

fn describe_filter(args: &ListArgs) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &args.project {
        parts.push(format!("project {p}"));
    }
    if let Some(s) = &args.status {
        parts.push(format!("status {s}"));
    }
    if let Some(s) = &args.since {
        parts.push(format!("since {s}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" matching {}", parts.join(", "))
    }
}

/// The stable `--json` shape of a run (documented in the README).
fn run_json(r: &RunRow) -> serde_json::Value {
    serde_json::json!({
        "run_id": r.run_id,
        "project_id": r.project_id,
        "title": r.title,
        "status": r.status,
        "created_at": r.created_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration_ms": r.duration_ms,
        "stages_executed": r.stages_executed,
        "stages_skipped": r.stages_skipped,
        "attempt": r.attempts,
        "config_hash": r.config_hash,
        "config_path": r.config_path,
        "run_dir": r.run_dir,
        "error": r.error,
    })
}

fn show(
    registry: &Registry,
    live: &dyn Fn(&str, &str) -> bool,
    args: &ShowArgs,
) -> anyhow::Result<()> {
    let run = registry.resolve_run(&args.run, args.project.as_deref(), live)?;
    let mut stages = registry.latest_stages(&run.project_id, &run.run_id)?;
    // A stage left `running` by a process that died is interrupted, just
    // as its run is.
    if run.status == RunStatus::Interrupted {
        for s in stages
            .iter_mut()
            .filter(|s| s.status == ExecutionStatus::Running)
        {
            s.status = ExecutionStatus::Interrupted;
        }
    }
    let history = registry.attempt_history(&run.project_id, &run.run_id)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = run_json(&run);
        value["orchestrator_version"] = run.orchestrator_version.clone().into();
        value["host"] = run.host.clone().into();
        value["stages"] = serde_json::to_value(&stages)?;
        value["attempts"] = serde_json::to_value(&history)?;
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "run {}  ({}: {})",
        run.run_id,
        run.project_id,
        printable(&run.title)
    )?;
    writeln!(
        out,
        "  status       {} (attempt {})",
        run.status, run.attempts
    )?;
    writeln!(out, "  config hash  {}", run.config_hash)?;
    if let Some(path) = &run.config_path {
        writeln!(out, "  config from  {}", printable(path))?;
    }
    writeln!(out, "  created      {}", run.created_at)?;
    writeln!(
        out,
        "  started      {}  (attempt {})",
        run.started_at, run.attempts
    )?;
    writeln!(
        out,
        "  finished     {}",
        run.finished_at.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "  duration     {}", duration(run.duration_ms))?;
    writeln!(out, "  directory    {}", run.run_dir)?;
    if let Some(e) = &run.error {
        writeln!(out, "  error        {}", printable(e))?;
    }
    // Each row is the stage's newest decision; after a failed attempt,
    // later stages still show the attempt that last reached them.
    let mut table = new_table(&[
        "STAGE", "NAME", "STATUS", "REASON", "SHA256", "DURATION", "ATTEMPT",
    ]);
    for s in &stages {
        table.add_row(stage_cells(s));
    }
    writeln!(out, "{table}")?;
    // Every attempt stays visible: a no-op re-run is one more line here,
    // never a new place in history.
    if history.len() > 1 {
        writeln!(out)?;
        let mut table = new_table(&[
            "ATTEMPT",
            "STARTED",
            "EXECUTED",
            "SKIPPED",
            "FAILED",
            "INTERRUPTED",
        ]);
        for a in &history {
            table.add_row(vec![
                a.attempt.to_string(),
                a.started_at.clone(),
                a.executed.to_string(),
                a.skipped.to_string(),
                a.failed.to_string(),
                a.interrupted.to_string(),
            ]);
        }
        writeln!(out, "{table}")?;
    }
    Ok(())
}

fn stage_cells(s: &StageRow) -> Vec<String> {
    vec![
        s.stage.to_string(),
        s.name.clone(),
        s.status.to_string(),
        s.reason.clone(),
        s.sha256
            .as_deref()
            .map_or_else(|| "-".to_string(), short_sha),
        duration(s.duration_ms),
        s.attempt.to_string(),
    ]
}
