//! `orchestrator run`: load the config, run the pipeline, show each stage.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::GlobalArgs;
use orchestrator::artifact::{ArtifactType, short_sha};
use orchestrator::clock::SystemClock;
use orchestrator::config;
use orchestrator::lock;
use orchestrator::pipeline::{
    Action, RunOptions, RunOutcome, StageReport, StageStatus, default_stages, lock_run, plan_run,
    run_pipeline,
};
use orchestrator::registry::{self, BUSY_TIMEOUT, Registry};
use orchestrator::schema;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Project config (JSON), validated against schemas/Project.v1.json.
    #[arg(long, value_name = "FILE")]
    pub project: PathBuf,

    /// Use this run id instead of the one derived from the config.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,

    /// Execute stage N and every later stage; earlier ones resume as usual.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=5))]
    pub from_stage: Option<u8>,

    /// Execute all five stages, whatever the registry says.
    #[arg(long)]
    pub force: bool,

    /// Print the run summary as JSON on stdout instead of stage lines.
    #[arg(long)]
    pub json: bool,

    /// Seconds to wait for another process running the same run, or
    /// holding the registry's write lock.
    #[arg(long, value_name = "SECS", default_value_t = BUSY_TIMEOUT.as_secs())]
    pub lock_timeout: u64,

    /// Print what the run would do (execute or skip each stage, and why)
    /// without writing anything.
    #[arg(long)]
    pub dry_run: bool,

    /// Exit 4 at once if another process is running the same run.
    #[arg(long, conflicts_with = "lock_timeout")]
    pub no_wait: bool,
}

pub fn run(global: &GlobalArgs, args: &RunArgs) -> anyhow::Result<()> {
    // Stages that execute whatever the registry says (`--force`,
    // `--from-stage`): have their validators compiled on the other core
    // while the config is read and the registry opened, instead of while
    // the first of them waits.
    let first_forced = if args.force { Some(1) } else { args.from_stage };
    if let (Some(first), false) = (first_forced, args.dry_run) {
        schema::prepare(
            ArtifactType::ALL
                .iter()
                .filter(|t| t.stage() >= first)
                .map(|t| t.name())
                .collect(),
        );
    }
    // Everything about the input is checked before anything is created.
    let loaded = config::load(&args.project)?;
    if let Some(id) = &args.run_id {
        config::check_run_id(id)?;
    }
    let db = global.db_path();
    if args.dry_run {
        return dry_run(global, args, loaded, &db);
    }
    // A fresh registry beside older runs would list none of them; say so
    // (the scan is two directory levels, and only when the file is missing).
    if !db.exists() {
        let older = registry::runs_on_disk(&global.artifacts_dir);
        if older > 0 {
            eprintln!(
                "warning: no registry at `{}`; creating a new one, which will not list the {older} \
                 run{} already in `{}`",
                db.display(),
                if older == 1 { "" } else { "s" },
                global.artifacts_dir.display()
            );
            eprintln!("hint: run `orchestrator reindex` to index them");
        }
    }
    let opts = RunOptions {
        config: loaded,
        run_id: args.run_id.clone(),
        artifacts_dir: global.artifacts_dir.clone(),
        from_stage: args.from_stage,
        force: args.force,
        lock_wait: if args.no_wait {
            Duration::ZERO
        } else {
            Duration::from_secs(args.lock_timeout)
        },
        on_lock_wait: Some(say_waiting),
    };

    // The run lock first, then the registry; the registry is closed before
    // the lock is released (declared after it, so dropped before it).
    Registry::check_writable(&db)?;
    let locked = lock_run(&opts, &SystemClock)?;
    // `--lock-timeout` bounds every wait: for the run, and for the
    // registry's write lock held by another process.
    let mut registry = Registry::open_waiting(&db, Duration::from_secs(args.lock_timeout))?;
    let run_id = locked.run_id();
    let run_dir = global
        .artifacts_dir
        .join(&opts.config.config.project_id)
        .join(run_id);
    let stdout = std::io::stdout();
    if !args.json {
        let mut out = stdout.lock();
        writeln!(
            out,
            "run {run_id} · project {} · {}",
            opts.config.config.project_id,
            run_dir.display()
        )?;
    }
    let mut print_error = None;
    let mut on_stage = |r: &StageReport| {
        if args.json || print_error.is_some() {
            return;
        }
        if let Err(e) = writeln!(stdout.lock(), "{}", stage_line(r)) {
            print_error = Some(e);
        }
    };
    let result = run_pipeline(
        &opts,
        &locked,
        &mut registry,
        &SystemClock,
        &default_stages(),
        &mut on_stage,
    );
    if let Some(e) = print_error {
        return Err(e).context("writing to stdout");
    }
    let RunOutcome { report, error } = result?;

    // The report is shown even when a stage failed: it says which one.
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{}: {} executed, {} skipped in {} ms",
            report.status,
            report.stages_executed,
            report.stages_skipped,
            report.duration_ms.unwrap_or(0)
        )?;
    }
    match error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Said once on stderr, so a run that seems to hang explains itself. A
/// closed stderr must not stop the run, so a failed write is ignored.
pub(super) fn say_waiting(holder: &lock::Holder) {
    let _ = writeln!(
        std::io::stderr(),
        "waiting for run {} held by {}",
        holder.run,
        holder.describe()
    );
}

/// `run --dry-run`: the plan, from the registry as it is (a missing one is
/// an empty one, made in a temp directory so nothing is created here).
fn dry_run(
    global: &GlobalArgs,
    args: &RunArgs,
    loaded: config::LoadedConfig,
    db: &std::path::Path,
) -> anyhow::Result<()> {
    let scratch;
    let registry = if db.exists() {
        Registry::open_existing(db, &global.artifacts_dir)?
    } else {
        scratch = tempfile::tempdir().context("creating a scratch directory")?;
        Registry::open(&scratch.path().join("registry.db"))?
    };
    let opts = RunOptions {
        config: loaded,
        run_id: args.run_id.clone(),
        artifacts_dir: global.artifacts_dir.clone(),
        from_stage: args.from_stage,
        force: args.force,
        lock_wait: Duration::ZERO,
        on_lock_wait: None,
    };
    let plan = plan_run(&opts, &registry, &default_stages())?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &plan)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "dry run {} · project {} · {}",
        plan.run_id,
        plan.project_id,
        plan.run_dir.display()
    )?;
    for s in &plan.stages {
        let sha = s
            .sha256
            .as_deref()
            .map_or_else(|| "-".to_string(), short_sha);
        writeln!(
            out,
            "  {} {:<34} {:<14} {:<12}  would {}: {}",
            s.stage,
            s.name,
            s.artifact_type,
            sha,
            s.action.as_str().replace('_', " "),
            s.reason
        )?;
    }
    let executes = plan
        .stages
        .iter()
        .filter(|s| s.action == Action::Execute)
        .count();
    writeln!(
        out,
        "{executes} of {} stages would execute; nothing was written",
        plan.stages.len()
    )?;
    Ok(())
}

/// `  ✓ 2 stage2_script_to_shotlist  ShotList  3f9a2c1b7d0e  executed (not run before)  4 ms`
fn stage_line(r: &StageReport) -> String {
    let marker = match r.status {
        StageStatus::Executed => "✓",
        StageStatus::Skipped => "↩",
        StageStatus::Failed => "✗",
        StageStatus::NotRun => "·",
        StageStatus::Running => "…",
    };
    let sha = r
        .sha256
        .as_deref()
        .map_or_else(|| "-".to_string(), short_sha);
    format!(
        "  {marker} {} {:<34} {:<14} {:<12}  {}: {} ({} ms)",
        r.stage,
        r.name,
        r.artifact_type,
        sha,
        r.status.as_str(),
        r.reason,
        r.duration_ms
    )
}
