//! `orchestrator runs list` and `orchestrator runs show`: recorded runs,
//! read from the registry (never from the artifact tree).

use std::io::Write;

use chrono::{DateTime, NaiveDate, Utc};

use super::GlobalArgs;
use super::table::{duration, new_table};
use orchestrator::artifact::short_sha;
use orchestrator::clock::rfc3339;
use orchestrator::registry::{Registry, RunFilter, RunRow, StageRow};
use orchestrator::{Error, lock};

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
    let registry = Registry::open_existing(&global.db_path(), &global.artifacts_dir)?;
    let live = |project: &str, run: &str| lock::is_held(&global.artifacts_dir, project, run);
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
        .map(|s| parse_since(s, Utc::now()))
        .transpose()?;
    let filter = RunFilter {
        project: args.project.clone(),
        status: args.status.clone(),
        since,
        limit: args.limit as usize,
    };
    let (runs, total) = registry.list_runs(&filter, live)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<serde_json::Value> = runs.iter().map(run_json).collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else if runs.is_empty() {
        writeln!(out, "no runs recorded{}", describe_filter(args))?;
    } else {
        let mut table = new_table(&[
            "RUN ID",
            "PROJECT",
            "STATUS",
            "EXEC/SKIP",
            "STARTED",
            "DURATION",
        ]);
        for r in &runs {
            table.add_row(vec![
                r.run_id.clone(),
                r.project_id.clone(),
                r.status.clone(),
                format!("{}/{}", r.stages_executed, r.stages_skipped),
                r.started_at.clone(),
                duration(r.duration_ms),
            ]);
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
        "project_title": r.project_title,
        "status": r.status,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration_ms": r.duration_ms,
        "stages_executed": r.stages_executed,
        "stages_skipped": r.stages_skipped,
        "attempts": r.attempts,
        "config_hash": r.config_hash,
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
    if run.status == "interrupted" {
        for s in stages.iter_mut().filter(|s| s.status == "running") {
            s.status = "interrupted".to_string();
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = run_json(&run);
        value["orchestrator_version"] = run.orchestrator_version.clone().into();
        value["host"] = run.host.clone().into();
        value["stages"] = serde_json::to_value(&stages)?;
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "run {}  ({}: {})",
        run.run_id, run.project_id, run.project_title
    )?;
    writeln!(
        out,
        "  status       {} (attempt {})",
        run.status, run.attempts
    )?;
    writeln!(out, "  config hash  {}", run.config_hash)?;
    writeln!(out, "  started      {}", run.started_at)?;
    writeln!(
        out,
        "  finished     {}",
        run.finished_at.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "  duration     {}", duration(run.duration_ms))?;
    writeln!(out, "  directory    {}", run.run_dir)?;
    if let Some(e) = &run.error {
        writeln!(out, "  error        {e}")?;
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
    Ok(())
}

fn stage_cells(s: &StageRow) -> Vec<String> {
    vec![
        s.stage.to_string(),
        s.name.clone(),
        s.status.clone(),
        s.reason.clone(),
        s.sha256
            .as_deref()
            .map_or_else(|| "-".to_string(), short_sha),
        duration(s.duration_ms),
        s.attempt.to_string(),
    ]
}

/// `--since` in the registry's timestamp format, so SQL compares text.
fn parse_since(s: &str, now: DateTime<Utc>) -> anyhow::Result<String> {
    let bad = || {
        Error::usage_with_hint(
            format!("cannot read `--since {s}` as a date"),
            "use 2026-11-24, 2026-11-24T08:00:00Z, or an age like 90m, 12h, 7d, 2w",
        )
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(rfc3339(t.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let t = d.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc();
        return Ok(rfc3339(t));
    }
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let minutes = match unit {
        "m" | "min" => n,
        "h" => n.checked_mul(60).ok_or_else(bad)?,
        "d" => n.checked_mul(24 * 60).ok_or_else(bad)?,
        "w" => n.checked_mul(7 * 24 * 60).ok_or_else(bad)?,
        _ => return Err(bad().into()),
    };
    let delta = chrono::TimeDelta::try_minutes(minutes).ok_or_else(bad)?;
    Ok(rfc3339(now.checked_sub_signed(delta).ok_or_else(bad)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_dates_times_and_ages() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_since("2026-11-20", now).unwrap(),
            "2026-11-20T00:00:00.000Z"
        );
        assert_eq!(
            parse_since("2026-11-20T08:30:00+01:00", now).unwrap(),
            "2026-11-20T07:30:00.000Z"
        );
        assert_eq!(parse_since("90m", now).unwrap(), "2026-11-24T10:30:00.000Z");
        assert_eq!(parse_since("2d", now).unwrap(), "2026-11-22T12:00:00.000Z");
        for bad in ["", "yesterday", "12", "5y", "2026-13-01", "99999999999999w"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }
}
