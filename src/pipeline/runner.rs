//! The runner: for each stage, decide (see `decide`) whether to skip, adopt
//! or execute it, then write and register what it produces.
//!
//! Crash safety rests on one commit point per stage. In order: an execution
//! row is recorded `running`; the stage computes (no transaction open);
//! `X.json` is written atomically (temp file, fsync, rename), then
//! `X.meta.json` the same way, then the directory is synced; then one
//! `BEGIN IMMEDIATE` transaction registers the artifact and its parent
//! edges and completes the execution. That commit is the moment the stage
//! is done. A process killed anywhere before it leaves files the registry
//! does not vouch for, which the next run adopts when they check out and
//! re-executes otherwise; the next run also removes stale temp files and
//! marks the dead process's `running` rows `interrupted`.
//!
//! Nothing else needs a commit of its own, so every other write rides the
//! next one (see `commit`): the run's begin row and a skipped stage's
//! row wait for the first transaction that must happen; the stage after an
//! executed one is decided before that one commits, so its `running` row
//! rides that commit; the summary a run starts with is recorded with the
//! next commit and the final one is written inside the transaction that
//! records it (see `summary`). A no-op resume therefore commits once; a
//! full run of five stages seven times (its start, each stage, its end). A
//! kill before a deferred write loses only the note that nothing changed.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::commit::{Begin, Fixed, Unwritten, commit};
use super::decide::{self, Decision};
use super::execute::{self, Current, Written};
use super::rundir::{make_run_dir, refuse_symlinked_dirs, remove_stale_temp_files};
use super::stage::{Parsed, Stage};
use super::summary::{Durability, RunReport, StageReport, SummaryTarget};
use super::take::refuse_reused_run_id;
use crate::artifact::{ArtifactType, ComputeOrigin, sync_dir};
use crate::clock::{Clock, rfc3339};
use crate::config::{LoadedConfig, check_run_id};
use crate::error::{Error, Result};
use crate::registry::{ArtifactRecord, ExecutionRecord, Registry, RunFinish, Tx};
use crate::registry::{ExecutionStatus, RunStatus};
use crate::{failpoint, lock, schema};

/// What the user asked `run` to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: LoadedConfig,
    /// Overrides the id derived from the config.
    pub run_id: Option<String>,
    pub artifacts_dir: PathBuf,
    /// Execute this stage and every later one regardless of state.
    pub from_stage: Option<u8>,
    /// Execute every stage regardless of state.
    pub force: bool,
    /// How long to wait for another process holding this run; zero
    /// refuses at once.
    pub lock_wait: Duration,
    /// Called once if the run must wait for another process, to say so.
    pub on_lock_wait: Option<fn(&lock::Holder)>,
}

/// What a run produced once it started: the report (also what
/// `run_summary.json` holds) and, when a stage failed, why.
#[derive(Debug)]
pub struct RunOutcome {
    pub report: RunReport,
    /// Set when the run stopped early; `report.status` is then `failed`.
    pub error: Option<Error>,
}

/// A run's lock, held: what [`run_pipeline`] needs first.
pub struct LockedRun {
    project_id: String,
    run_id: String,
    artifacts_dir: PathBuf,
    _lock: lock::RunGuard,
}

impl LockedRun {
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// Resolve the run id and take the run's lock, waiting as `opts` says.
/// Take it before opening the registry, and close the registry before
/// dropping it: `reindex` holds every run lock while it waits for the
/// registry's users to close it, so a run holding the registry open while
/// it waits for its own lock would hold reindex up until one gave up.
pub fn lock_run(opts: &RunOptions, clock: &dyn Clock) -> Result<LockedRun> {
    let cfg = &opts.config.config;
    let run_id = match &opts.run_id {
        Some(id) => {
            check_run_id(id)?;
            id.clone()
        }
        None => opts.config.default_run_id(),
    };
    let lock = lock::acquire(
        &opts.artifacts_dir,
        &cfg.project_id,
        &run_id,
        &rfc3339(clock.now()),
        lock::Wait {
            timeout: opts.lock_wait,
            on_wait: opts.on_lock_wait,
        },
    )?;
    Ok(LockedRun {
        project_id: cfg.project_id.clone(),
        run_id,
        artifacts_dir: opts.artifacts_dir.clone(),
        _lock: lock::RunGuard::File(lock),
    })
}

/// [`lock_run`] for a PostgreSQL registry: the run's advisory lock on the
/// registry connection `db`, which then does every write of the run (see
/// `registry::advisory`).
pub fn lock_run_in_registry(opts: &RunOptions, db: &crate::registry::Db) -> Result<LockedRun> {
    let cfg = &opts.config.config;
    let run_id = match &opts.run_id {
        Some(id) => {
            check_run_id(id)?;
            id.clone()
        }
        None => opts.config.default_run_id(),
    };
    crate::registry::advisory::lock_run(
        db,
        &cfg.project_id,
        &run_id,
        lock::Wait {
            timeout: opts.lock_wait,
            on_wait: opts.on_lock_wait,
        },
    )?;
    Ok(LockedRun {
        project_id: cfg.project_id.clone(),
        run_id,
        artifacts_dir: opts.artifacts_dir.clone(),
        _lock: lock::RunGuard::Registry,
    })
}

/// Run the pipeline under `locked` (see [`lock_run`]). `on_stage` is
/// called as each stage is decided, so the caller can show progress. `Err`
/// means the run could not start (bad stage number, registry unusable);
/// once started, a failure is returned inside the [`RunOutcome`] so its
/// report can still be shown.
pub fn run_pipeline(
    opts: &RunOptions,
    locked: &LockedRun,
    registry: &mut Registry,
    clock: &dyn Clock,
    stages: &[Box<dyn Stage>],
    on_stage: &mut dyn FnMut(&StageReport),
) -> Result<RunOutcome> {
    let cfg = &opts.config.config;
    let run_id = locked.run_id.clone();
    let locked_for_these = locked.project_id == cfg.project_id
        && locked.artifacts_dir == opts.artifacts_dir
        && opts.run_id.as_ref().is_none_or(|id| *id == run_id);
    if !locked_for_these {
        return Err(Error::Inconsistent(format!(
            "run_pipeline was given the lock of {}/{}, taken for other options",
            locked.project_id, locked.run_id
        )));
    }
    if let Some(n) = opts.from_stage {
        let last = stages.len() as u8;
        if !(1..=last).contains(&n) {
            return Err(Error::usage(format!(
                "--from-stage must be between 1 and {last}, not {n}"
            )));
        }
    }

    let run_rel = format!("{}/{}", cfg.project_id, run_id);
    let run_dir = opts.artifacts_dir.join(&cfg.project_id).join(&run_id);
    // Under the lock, so no other invocation can record the id meanwhile.
    refuse_reused_run_id(
        registry,
        &run_dir,
        &cfg.project_id,
        &run_id,
        &opts.config.config_hash,
    )?;
    let made_dirs = make_run_dir(&opts.artifacts_dir, &cfg.project_id, &run_id)?;
    refuse_symlinked_dirs(&opts.artifacts_dir, &[&cfg.project_id, &run_id])?;
    // Under the lock, whatever a previous process left in flight is dead:
    // its temp files go now, its `running` rows are marked as the run
    // begins.
    remove_stale_temp_files(&run_dir)?;

    let origin = ComputeOrigin::local();
    let t_run = Instant::now();
    let started_at = rfc3339(clock.now());
    // Read before anything is written: the lock keeps every other
    // invocation of this run out, so they hold until the run's first commit.
    let attempt = registry.next_attempt(&cfg.project_id, &run_id)?;
    let executions_after = registry.last_execution_id()?;
    // One query for every stage's decision: under the lock only each
    // stage's own commit changes its row, after its decision.
    let registered = registry
        .artifacts_of_run(&cfg.project_id, &run_id)?
        .into_iter()
        .map(|a| (a.artifact_type.clone(), a))
        .collect();
    let begin = Begin {
        run_dir: run_rel.clone(),
        started_at,
        attempt,
    };
    let mut ctx = RunContext {
        opts,
        registry,
        clock,
        summary: SummaryTarget {
            project_id: cfg.project_id.clone(),
            run_id: run_id.clone(),
            run_rel,
            run_dir,
            stages,
            executions_after,
        },
        origin,
        attempt,
        current: BTreeMap::new(),
        registered,
        parsed: RefCell::default(),
        in_flight: None,
        ahead: None,
        unwritten: Unwritten {
            begin: Some(begin),
            rows: Vec::new(),
            summary: None,
        },
        summary_written: false,
        validators_prepared: false,
        names_durable: Cell::new(false),
        recorded: &made_dirs.recorded,
    };

    let mut failure: Option<Error> = None;
    for (i, stage) in stages.iter().enumerate() {
        if failure.is_some() {
            on_stage(&StageReport::not_run(
                stage.as_ref(),
                "an earlier stage failed",
            ));
            continue;
        }
        let next = stages.get(i + 1).map(AsRef::as_ref);
        let (report, error) = match ctx.run_stage(stage.as_ref(), next) {
            Ok(outcome) => outcome,
            // The machinery failed (disk, registry): record what we can so
            // the run reads as failed, not as a process that died.
            Err(e) => (ctx.record_abort(stage.as_ref(), &e), Some(e)),
        };
        on_stage(&report);
        failure = error;
        ctx.release_inputs(stage.number());
    }
    // The registry stayed locked past `--lock-timeout`: every further
    // write would wait as long again, and the run row (if any) reads as
    // interrupted once this process is gone. The busy error is the answer.
    if let Some(e @ Error::Busy { .. }) = failure {
        return Err(e);
    }

    let finished_at = rfc3339(clock.now());
    let error_text = failure.as_ref().map(error_chain);
    let finish = RunFinish {
        project_id: &cfg.project_id,
        run_id: &run_id,
        attempt,
        executions_after,
        status: if failure.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Complete
        },
        finished_at: &finished_at,
        duration_ms: t_run.elapsed().as_millis() as u64,
        error: error_text.as_deref(),
    };
    let finished = ctx.finish(&finish);
    match (failure, finished) {
        (None, Ok(report)) => Ok(RunOutcome {
            report,
            error: None,
        }),
        (None, Err(e)) => {
            // The summary could not be written: the run did not end well,
            // and the registry says so (best effort: `e` is what matters).
            let error = error_chain(&e);
            let _ = ctx.finish_without_summary(&RunFinish {
                status: RunStatus::Failed,
                error: Some(&error),
                ..finish
            });
            Err(e)
        }
        // The stage's error is what the user needs; the report is the best
        // account available, from the registry if it can still be read.
        (Some(e), finished) => {
            let report = match finished {
                Ok(report) => report,
                Err(_) => {
                    let _ = ctx.finish_without_summary(&finish);
                    // Without a report, the stage's error still is what
                    // the user must see, not this later one.
                    match ctx.summary.report(ctx.registry) {
                        Ok(report) => report,
                        Err(_) => return Err(e),
                    }
                }
            };
            Ok(RunOutcome {
                report,
                error: Some(e),
            })
        }
    }
}

/// `message: cause: cause`, for storing an error in one registry column.
fn error_chain(e: &Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A stage decided, not yet carried out.
struct Planned {
    stage: u8,
    t0: Instant,
    /// Its row: `running` with the reason when it executes (and an id once
    /// recorded); completed by whoever carries it out.
    execution: ExecutionRecord,
    decision: Decision,
    out_path: PathBuf,
    meta_path: PathBuf,
}

struct RunContext<'a> {
    opts: &'a RunOptions,
    registry: &'a mut Registry,
    clock: &'a dyn Clock,
    summary: SummaryTarget<'a>,
    origin: ComputeOrigin,
    attempt: u32,
    current: BTreeMap<ArtifactType, Current>,
    /// What the registry had for each artifact type of the run when it
    /// began, by type name.
    registered: BTreeMap<String, ArtifactRecord>,
    /// Upstream artifacts as stages parsed them.
    parsed: RefCell<Parsed>,
    /// The execution recorded `running` and not yet completed, if any.
    in_flight: Option<ExecutionRecord>,
    /// The next stage, decided while the previous one committed.
    ahead: Option<Result<Planned>>,
    unwritten: Unwritten,
    /// Whether this invocation has written `run_summary.json` yet.
    summary_written: bool,
    /// Whether validators are being compiled ahead of use.
    validators_prepared: bool,
    /// Whether every name in the run directory is durable (see
    /// [`execute::Run::names_durable`]): false until a directory sync in
    /// this invocation, and again after each rename not yet synced.
    names_durable: Cell<bool>,
    /// Set once a commit succeeded: the run directory is the run's now.
    recorded: &'a Cell<bool>,
}

impl RunContext<'_> {
    fn project_id(&self) -> &str {
        &self.opts.config.config.project_id
    }

    /// One transaction: whatever is unwritten, then `f`'s writes.
    fn commit<T>(&mut self, mut f: impl FnMut(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.commit_with(|tx, _| f(tx))
    }

    /// [`RunContext::commit`], for writes that involve the run's summary.
    fn commit_with<T>(
        &mut self,
        mut f: impl FnMut(&Tx<'_>, &SummaryTarget<'_>) -> Result<T>,
    ) -> Result<T> {
        let fixed = Fixed {
            config: &self.opts.config,
            origin: &self.origin,
            summary: &self.summary,
        };
        let out = commit(self.registry, &mut self.unwritten, &fixed, |tx| {
            f(tx, fixed.summary)
        })?;
        self.recorded.set(true);
        Ok(out)
    }

    /// Record a `running` row for a stage about to compute; it becomes the
    /// in-flight execution. The first time in this invocation, also write
    /// the summary the run starts with: the stages decided so far, read in
    /// the same transaction, before the row (a summary lists no stage in
    /// flight). It is recorded with the next commit.
    fn start_execution(&mut self, execution: &mut ExecutionRecord) -> Result<()> {
        let first = !self.summary_written;
        let (report, id) = self.commit_with(|tx, summary| {
            let report = first.then(|| summary.report(tx)).transpose()?;
            Ok((report, tx.record_execution(execution)?))
        })?;
        execution.execution_id = Some(id);
        self.in_flight = Some(execution.clone());
        if let Some(report) = report {
            let written = self.summary.write(&report, Durability::Provisional)?;
            // Renamed into place; the first stage's directory sync covers it.
            self.names_durable.set(false);
            self.unwritten.summary = Some((written, report.started_at));
            self.summary_written = true;
        }
        Ok(())
    }

    /// End the run: whatever is unwritten, the run's final row and its
    /// summary, derived from those rows and written before they commit.
    fn finish(&mut self, finish: &RunFinish<'_>) -> Result<RunReport> {
        self.commit_with(|tx, summary| {
            tx.finish_run(finish)?;
            let report = summary.report(tx)?;
            let written = summary.write(&report, Durability::Final)?;
            summary.record(tx, &written, finish.finished_at)?;
            Ok(report)
        })
    }

    /// End the run without a summary, when writing one failed.
    fn finish_without_summary(&mut self, finish: &RunFinish<'_>) -> Result<()> {
        self.commit(|tx| tx.finish_run(finish))
    }

    /// Drop the bytes and parsed forms of artifacts no stage after `done`
    /// reads.
    fn release_inputs(&mut self, done: u8) {
        let stages = self.summary.stages;
        let still_read = |ty: &ArtifactType| {
            stages
                .iter()
                .any(|s| s.number() > done && s.inputs().contains(ty))
        };
        for (ty, c) in &mut self.current {
            if !still_read(ty) {
                c.bytes = Vec::new();
            }
        }
        self.parsed.get_mut().retain(|(ty, _), _| still_read(ty));
    }

    /// Decide a stage: what to do, with the execution row that will say so.
    fn plan(&self, stage: &dyn Stage) -> Result<Planned> {
        let t0 = Instant::now();
        let started_at = rfc3339(self.clock.now());
        let ty = stage.output();
        let mut input_hashes = BTreeMap::new();
        input_hashes.insert("config".to_string(), self.opts.config.config_hash.clone());
        for input in stage.inputs() {
            let sha = self
                .current
                .get(input)
                .map(|c| c.sha256.clone())
                .ok_or_else(|| {
                    Error::Inconsistent(format!(
                        "stage {} reads {input}, which no earlier stage produced",
                        stage.name()
                    ))
                })?;
            input_hashes.insert(input.name().to_string(), sha);
        }
        let out_path = self.summary.run_dir.join(ty.file_name());
        let meta_path = self.summary.run_dir.join(ty.meta_file_name());
        let forced = if self.opts.force {
            Some("forced (--force)".to_string())
        } else {
            self.opts
                .from_stage
                .filter(|&n| stage.number() >= n)
                .map(|n| format!("forced (--from-stage {n})"))
        };
        let decision = decide::decide(
            self.registry,
            &decide::Inputs {
                stage,
                project_id: self.project_id(),
                run_id: &self.summary.run_id,
                config_hash: &self.opts.config.config_hash,
                input_hashes: &input_hashes,
                out_path: &out_path,
                meta_path: &meta_path,
                origin: &self.origin,
                forced,
                registered: self.registered.get(ty.name()),
            },
        )?;
        let mut execution = self.execution(stage, started_at, input_hashes);
        if let Decision::Execute { reason } = &decision {
            execution.status = ExecutionStatus::Running;
            execution.reason = reason.clone();
        }
        Ok(Planned {
            stage: stage.number(),
            t0,
            execution,
            decision,
            out_path,
            meta_path,
        })
    }

    /// Decide and carry out one stage; `next` is the stage after it. An
    /// error the stage itself caused is returned beside its report (the run
    /// records it and stops); an error of the machinery (registry, disk)
    /// aborts the run at once.
    fn run_stage(
        &mut self,
        stage: &dyn Stage,
        next: Option<&dyn Stage>,
    ) -> Result<(StageReport, Option<Error>)> {
        let planned = match self.ahead.take() {
            Some(ahead) if !matches!(&ahead, Ok(p) if p.stage != stage.number()) => ahead?,
            _ => self.plan(stage)?,
        };
        let Planned {
            t0,
            mut execution,
            decision,
            out_path,
            meta_path,
            ..
        } = planned;
        let ty = stage.output();
        let rel = format!("{}/{}", self.summary.run_rel, ty.file_name());

        let outcome = match decision {
            Decision::Skip { sha256, bytes } => {
                execution.status = ExecutionStatus::Skipped;
                execution.reason = "up to date".to_string();
                execution.output_sha256 = Some(sha256.clone());
                self.complete(&mut execution, t0);
                // Nothing changed: the row can wait for the next commit.
                self.unwritten.rows.push(execution.clone());
                self.keep(ty, sha256, out_path, bytes);
                None
            }
            Decision::Adopt {
                sha256,
                bytes,
                meta,
                meta_json,
            } => {
                execution.status = ExecutionStatus::Skipped;
                execution.reason =
                    "adopted (files an interrupted run wrote check out: hash, schema, parents)"
                        .to_string();
                execution.output_sha256 = Some(sha256.clone());
                self.complete(&mut execution, t0);
                // The process that left these files may have been killed
                // before it made their names durable.
                if !self.names_durable.get() {
                    sync_dir(&self.summary.run_dir)?;
                    self.names_durable.set(true);
                }
                self.commit(|tx| tx.record_artifact(&meta, &rel, &meta_json, &execution))?;
                self.keep(ty, sha256, out_path, bytes);
                None
            }
            Decision::Execute { .. } => {
                if !self.validators_prepared {
                    // This stage and those after it may execute: have their
                    // validators compiled while this one computes.
                    let from = stage.number();
                    let later = self.summary.stages.iter().filter(|s| s.number() >= from);
                    schema::prepare(later.map(|s| s.output().name()).collect());
                    self.validators_prepared = true;
                }
                if execution.execution_id.is_none() {
                    self.start_execution(&mut execution)?;
                } else {
                    // Recorded `running` by the previous stage's commit.
                    self.in_flight = Some(execution.clone());
                }
                let now = || rfc3339(self.clock.now());
                let registry: &Registry = self.registry;
                let still_holding = || registry.check_still_connected();
                let run = execute::Run {
                    config: &self.opts.config,
                    run_id: &self.summary.run_id,
                    origin: &self.origin,
                    current: &self.current,
                    parsed: &self.parsed,
                    now: &now,
                    names_durable: &self.names_durable,
                    still_holding: &still_holding,
                };
                let registered = self.registered.get(ty.name());
                match execute::execute(stage, &run, &out_path, &meta_path, registered) {
                    Ok(Written {
                        sha256,
                        bytes,
                        meta,
                        meta_json,
                    }) => {
                        execution.status = ExecutionStatus::Executed;
                        execution.output_sha256 = Some(sha256.clone());
                        self.complete(&mut execution, t0);
                        self.keep(ty, sha256, out_path.clone(), bytes);
                        // Decide the next stage now, so that if it executes
                        // its `running` row rides this stage's commit.
                        let mut ahead = next.map(|n| self.plan(n));
                        let next_running = match &ahead {
                            Some(Ok(p)) if matches!(p.decision, Decision::Execute { .. }) => {
                                Some(&p.execution)
                            }
                            _ => None,
                        };
                        let next_id = self.commit(|tx| {
                            tx.record_artifact(&meta, &rel, &meta_json, &execution)?;
                            next_running.map(|e| tx.record_execution(e)).transpose()
                        })?;
                        if let (Some(Ok(p)), Some(id)) = (&mut ahead, next_id) {
                            p.execution.execution_id = Some(id);
                        }
                        self.in_flight = None;
                        self.ahead = ahead;
                        failpoint::hit("stage.after_commit")
                            .map_err(|e| Error::io("continuing after", &out_path, e))?;
                        None
                    }
                    // Disk failures are not the stage's fault: stop now.
                    Err(e @ (Error::Io { .. } | Error::DiskFull { .. })) => return Err(e),
                    Err(e) => {
                        execution.status = ExecutionStatus::Failed;
                        execution.error = Some(error_chain(&e));
                        self.complete(&mut execution, t0);
                        self.commit(|tx| tx.record_execution(&execution))?;
                        self.in_flight = None;
                        Some(e)
                    }
                }
            }
        };
        Ok((StageReport::from_execution(stage, &execution), outcome))
    }

    fn keep(&mut self, ty: ArtifactType, sha256: String, path: PathBuf, bytes: Vec<u8>) {
        self.current.insert(
            ty,
            Current {
                sha256,
                path,
                bytes,
            },
        );
    }

    /// Best-effort record of a stage the machinery aborted: its `running`
    /// row (or a new row) becomes `failed`. The original error is what the
    /// user sees, so a second failure here is dropped.
    fn record_abort(&mut self, stage: &dyn Stage, error: &Error) -> StageReport {
        let now = rfc3339(self.clock.now());
        let mut execution = match self.in_flight.take() {
            Some(e) if e.stage == stage.number() => e,
            _ => self.execution(stage, now.clone(), BTreeMap::new()),
        };
        execution.status = ExecutionStatus::Failed;
        execution.reason = if execution.reason.is_empty() {
            "aborted".to_string()
        } else {
            format!("aborted ({})", execution.reason)
        };
        execution.finished_at = Some(now);
        execution.duration_ms = Some(execution.duration_ms.unwrap_or(0));
        execution.error = Some(error_chain(error));
        // A later stage recorded `running` ahead of time never started: its
        // row goes, and it reads as not run like every stage after this.
        let never_started = match self.ahead.take() {
            Some(Ok(p)) => p.execution.execution_id,
            _ => None,
        };
        // A busy registry would only keep this process waiting again.
        if matches!(error, Error::Busy { .. }) {
            return StageReport::from_execution(stage, &execution);
        }
        let _ = self.commit(|tx| {
            tx.record_execution(&execution)?;
            never_started.map_or(Ok(()), |id| tx.withdraw_execution(id))
        });
        StageReport::from_execution(stage, &execution)
    }

    /// An execution row for `stage` in this run, to be completed by the caller.
    fn execution(
        &self,
        stage: &dyn Stage,
        started_at: String,
        input_hashes: BTreeMap<String, String>,
    ) -> ExecutionRecord {
        ExecutionRecord {
            execution_id: None,
            project_id: self.project_id().to_string(),
            run_id: self.summary.run_id.clone(),
            attempt: self.attempt,
            stage: stage.number(),
            stage_name: stage.name().to_string(),
            stage_version: stage.version().to_string(),
            status: ExecutionStatus::Running,
            reason: String::new(),
            started_at,
            finished_at: None,
            duration_ms: None,
            input_hashes,
            output_sha256: None,
            error: None,
        }
    }

    fn complete(&self, execution: &mut ExecutionRecord, t0: Instant) {
        execution.finished_at = Some(rfc3339(self.clock.now()));
        execution.duration_ms = Some(t0.elapsed().as_millis() as u64);
    }
}
