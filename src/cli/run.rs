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
    Action, RunOptions, RunOutcome, StageReport, StageStatus, default_stages, plan_run,
    run_pipeline,
};
use orchestrator::registry::{self, BUSY_TIMEOUT, Registry};
use orchestrator::schema;
use orchestrator::workspace::{RunSession, Workspace};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Project config (JSON), validated against schemas/Project.v1.json.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["from_run", "stray"])]
    pub project: Option<PathBuf>,

    /// A config given without `--project` (`run base.json`): refused with
    /// a suggestion rather than clap's bare "unexpected argument".
    #[arg(hide = true, value_name = "FILE")]
    pub stray: Option<PathBuf>,

    /// Re-run a recorded take from the config the registry holds for it
    /// (instead of --project); combine with --set to vary it. `PROJECT/RUN`
    /// picks a run id that several projects share.
    #[arg(long, value_name = "RUN", conflicts_with = "project")]
    pub from_run: Option<String>,

    /// Override a config value by dotted path (repeatable): `--set seed=1978
    /// --set render.width=3840`. VALUE is JSON when it parses, else a string.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = config::overrides::parse)]
    pub set: Vec<config::Override>,

    /// Refuse config keys the schema does not define (exit 2) instead of
    /// warning about them.
    // An empty ORCHESTRATOR_STRICT is unset (as an empty NO_COLOR is), not
    // an "invalid value for --strict" the user never typed.
    #[arg(
        long,
        env = "ORCHESTRATOR_STRICT",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub strict: bool,

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
    if let Some(stray) = &args.stray {
        let shown = stray.display();
        return Err(orchestrator::Error::usage_with_hint(
            format!("`run` takes the config as `--project FILE`, not as `{shown}`"),
            format!("did you mean `orchestrator run --project {shown}`?"),
        )
        .into());
    }
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
    let ws = global.workspace()?;
    let (loaded, recorded_run_id) = load_config(global, args, &ws)?;
    warn_unknown_keys(&loaded);
    if let Some(id) = &args.run_id {
        config::check_run_id(id)?;
    }
    if args.dry_run {
        return dry_run(global, args, loaded, recorded_run_id, &ws);
    }
    // A fresh registry beside older runs would list none of them; say so
    // (the scan is two directory levels, and only when the file is missing).
    if let Some(db) = ws.registry_file()
        && !db.exists()
    {
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
        run_id: args.run_id.clone().or(recorded_run_id),
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
    // `--lock-timeout` bounds every wait: for the run, and for the
    // registry's write lock held by another process.
    let RunSession {
        mut registry,
        locked,
    } = ws.lock_run(&opts, &SystemClock, Duration::from_secs(args.lock_timeout))?;
    let run_id = locked.run_id();
    let run_dir = global
        .artifacts_dir
        .join(&opts.config.config.project_id)
        .join(run_id);
    // Refused before the run's header is printed (the runner checks again).
    orchestrator::pipeline::take::refuse_reused_run_id(
        &registry,
        &run_dir,
        &opts.config.config.project_id,
        run_id,
        &opts.config.config_hash,
    )?;
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

/// The config to run: `--project`'s file, or with `--from-run` the one the
/// registry recorded for that take; `--set` and `--strict` apply to both.
/// With `--from-run` and no override that changes the config, the take is
/// remade under its own run id (returned); a changed config gets its own.
fn load_config(
    _global: &GlobalArgs,
    args: &RunArgs,
    ws: &Workspace,
) -> anyhow::Result<(config::LoadedConfig, Option<String>)> {
    let options = config::LoadOptions {
        overrides: args.set.clone(),
        strict: args.strict,
    };
    let Some(from) = &args.from_run else {
        // clap requires one of --project and --from-run.
        let path = args.project.as_deref().unwrap_or(std::path::Path::new(""));
        return Ok((config::load_with(path, &options)?, None));
    };
    let registry = ws.open_existing()?;
    let liveness = ws.liveness(&registry)?;
    let live = |project: &str, run: &str| liveness.is_live(project, run);
    // `--project` names the config file here, so a run id several projects
    // share is picked as `PROJECT/RUN`, the form `runs show` prints.
    let row = match from.split_once('/') {
        Some((project, run)) => registry.resolve_run(run, Some(project), &live)?,
        None => registry
            .resolve_run(from, None, &live)
            .map_err(|e| match e {
                orchestrator::Error::Usage {
                    message,
                    hint: Some(_),
                } if message.contains("is ambiguous") => orchestrator::Error::usage_with_hint(
                    message,
                    "give more characters of the run id, or `--from-run PROJECT/RUN`",
                ),
                other => other,
            })?,
    };
    let (_, config_json) = registry.run_record(&row.project_id, &row.run_id)?;
    drop(registry);
    let shown = std::path::PathBuf::from(format!("registry:{}/{}", row.project_id, row.run_id));
    let value = serde_json::from_str(&config_json).with_context(|| {
        format!(
            "the config recorded for run {}/{} is not JSON",
            row.project_id, row.run_id
        )
    })?;
    let loaded = config::from_value(&shown, value, &options)?;
    let same_take = loaded.config_hash == row.config_hash;
    Ok((loaded, same_take.then_some(row.run_id)))
}

/// One warning per key the schema does not define: kept (it is part of the
/// run id) but unused, which is most often a typo.
fn warn_unknown_keys(loaded: &config::LoadedConfig) {
    let mut err = std::io::stderr().lock();
    for key in &loaded.unknown_keys {
        let _ = writeln!(
            err,
            "warning: `{}`: {}; it is kept in the config (and its run id) but nothing reads it",
            loaded.path.display(),
            key.describe()
        );
    }
    if !loaded.unknown_keys.is_empty() {
        let _ = writeln!(
            err,
            "hint: `--strict` (or ORCHESTRATOR_STRICT=1) makes unknown keys an error"
        );
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
    recorded_run_id: Option<String>,
    ws: &Workspace,
) -> anyhow::Result<()> {
    let scratch;
    let registry = if ws.registry_file().is_none_or(|db| db.exists()) {
        ws.open_existing()?
    } else {
        scratch = tempfile::tempdir().context("creating a scratch directory")?;
        Registry::open(&scratch.path().join("registry.db"))?
    };
    let opts = RunOptions {
        config: loaded,
        run_id: args.run_id.clone().or(recorded_run_id),
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
        global.artifacts_dir.join(&plan.run_dir).display()
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
        "  {} {} {:<34} {:<14} {:<12}  {}: {} ({} ms)",
        paint_as(marker, r.status.as_str()),
        r.stage,
        r.name,
        r.artifact_type,
        sha,
        super::table::paint(r.status.as_str()),
        r.reason,
        r.duration_ms
    )
}

/// `text` in the colour of the status word `status` (the marker of a stage
/// line takes its status's colour).
fn paint_as(text: &str, status: &str) -> String {
    let painted = super::table::paint(status);
    painted.replace(status, text)
}
