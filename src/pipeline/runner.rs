//! The runner: for each stage, decide from the registry whether to skip or
//! execute it, then write and register what it produces.
//!
//! Decisions compare hashes, never timestamps. A stage is skipped when the
//! registry holds a completed execution with the current stage version and
//! input hashes and its output file is still exactly what was recorded. So a
//! re-executed stage whose output came out byte-identical does not force its
//! dependants to run (early cut-off), while one whose output changed does.
//!
//! Per stage, files are written first (artifact, then meta record, each
//! atomically) and the registry rows are committed after, in one
//! transaction; a crash in between leaves files the registry does not vouch
//! for, which the next run simply re-executes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::stage::{Stage, StageContext};
use crate::artifact::{
    ArtifactType, ComputeOrigin, CreationParams, MetaRecord, ParentRef, RUN_SUMMARY_FILE,
    SCHEMA_VERSION, TEMP_PREFIX, canonical_bytes, sha256_hex, write_atomic,
};
use crate::clock::{Clock, rfc3339};
use crate::config::{LoadedConfig, check_run_id};
use crate::error::{Error, Result};
use crate::registry::{ExecutionRecord, NewRun, Registry, RunFinish};
use crate::{lock, schema};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Executed,
    Skipped,
    Failed,
    /// Not reached because an earlier stage failed.
    NotRun,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Executed => "executed",
            StageStatus::Skipped => "skipped",
            StageStatus::Failed => "failed",
            StageStatus::NotRun => "not_run",
        }
    }
}

/// One entry of `run_summary.json`'s `stages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageReport {
    pub stage: u8,
    pub name: String,
    pub artifact_type: String,
    pub status: StageStatus,
    pub reason: String,
    pub sha256: Option<String>,
    pub duration_ms: u64,
}

impl StageReport {
    /// A stage that produced nothing this time (aborted, or not reached).
    fn no_output(stage: &dyn Stage, status: StageStatus, reason: &str) -> Self {
        StageReport {
            stage: stage.number(),
            name: stage.name().to_string(),
            artifact_type: stage.output().name().to_string(),
            status,
            reason: reason.to_string(),
            sha256: None,
            duration_ms: 0,
        }
    }
}

/// The content of `run_summary.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub project_id: String,
    pub config_hash: String,
    /// `complete` or `failed`.
    pub status: String,
    pub attempt: u32,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub stages_executed: u32,
    pub stages_skipped: u32,
    pub orchestrator_version: String,
    pub stages: Vec<StageReport>,
    #[serde(skip)]
    pub run_dir: PathBuf,
}

/// Why a stage must execute, or proof that it need not.
enum Decision {
    Skip { sha256: String, bytes: Vec<u8> },
    Execute { reason: String },
}

/// What `execute` wrote for one stage.
struct Written {
    sha256: String,
    bytes: Vec<u8>,
    meta: MetaRecord,
    meta_json: String,
}

/// An artifact produced or verified earlier in this invocation.
struct Current {
    sha256: String,
    path: PathBuf,
    bytes: Vec<u8>,
}

/// What a run produced once it started: the report (also what
/// `run_summary.json` holds) and, when a stage failed, why.
#[derive(Debug)]
pub struct RunOutcome {
    pub report: RunReport,
    /// Set when the run stopped early; `report.status` is then `failed`.
    pub error: Option<Error>,
}

/// Run the pipeline. `on_stage` is called as each stage is decided, so the
/// caller can show progress. `Err` means the run could not start (bad run
/// id, lock held, registry unusable); once started, a failure is returned
/// inside the [`RunOutcome`] so its report can still be shown.
pub fn run_pipeline(
    opts: &RunOptions,
    registry: &mut Registry,
    clock: &dyn Clock,
    stages: &[Box<dyn Stage>],
    on_stage: &mut dyn FnMut(&StageReport),
) -> Result<RunOutcome> {
    let cfg = &opts.config.config;
    let run_id = match &opts.run_id {
        Some(id) => {
            check_run_id(id)?;
            id.clone()
        }
        None => opts.config.default_run_id(),
    };
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
    let _lock = lock::acquire(
        &opts.artifacts_dir,
        &cfg.project_id,
        &run_id,
        &rfc3339(clock.now()),
        lock::Wait {
            timeout: opts.lock_wait,
            on_wait: opts.on_lock_wait,
        },
    )?;
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| Error::io("creating the run directory", &run_dir, e))?;
    refuse_symlinked_dirs(&opts.artifacts_dir, &[&cfg.project_id, &run_id])?;
    remove_stale_temp_files(&run_dir)?;

    let origin = ComputeOrigin::local();
    let t_run = Instant::now();
    let started_at = rfc3339(clock.now());
    let attempt = registry.begin_run(&NewRun {
        project_id: &cfg.project_id,
        title: &cfg.title,
        run_id: &run_id,
        config_hash: &opts.config.config_hash,
        config_json: &opts.config.canonical_json,
        run_dir: &run_rel,
        started_at: &started_at,
        orchestrator_version: &origin.orchestrator_version,
        host: &origin.host,
    })?;

    let mut ctx = RunContext {
        opts,
        registry,
        clock,
        origin,
        run_id: run_id.clone(),
        run_rel,
        run_dir: run_dir.clone(),
        attempt,
        current: BTreeMap::new(),
    };

    let mut reports: Vec<StageReport> = Vec::with_capacity(stages.len());
    let mut failure: Option<Error> = None;
    for stage in stages {
        if failure.is_some() {
            let report = StageReport::no_output(
                stage.as_ref(),
                StageStatus::NotRun,
                "an earlier stage failed",
            );
            on_stage(&report);
            reports.push(report);
            continue;
        }
        let (report, error) = match ctx.run_stage(stage.as_ref()) {
            Ok(outcome) => outcome,
            // The machinery failed (disk, registry): record what we can so
            // the run reads as failed, not as a process that died.
            Err(e) => (ctx.record_abort(stage.as_ref(), &e), Some(e)),
        };
        on_stage(&report);
        reports.push(report);
        failure = error;
    }

    let executed = reports
        .iter()
        .filter(|r| r.status == StageStatus::Executed)
        .count() as u32;
    let skipped = reports
        .iter()
        .filter(|r| r.status == StageStatus::Skipped)
        .count() as u32;
    let report = RunReport {
        run_id: run_id.clone(),
        project_id: cfg.project_id.clone(),
        config_hash: opts.config.config_hash.clone(),
        status: if failure.is_some() {
            "failed"
        } else {
            "complete"
        }
        .to_string(),
        attempt,
        started_at,
        finished_at: rfc3339(clock.now()),
        duration_ms: t_run.elapsed().as_millis() as u64,
        stages_executed: executed,
        stages_skipped: skipped,
        orchestrator_version: crate::VERSION.to_string(),
        stages: reports,
        run_dir,
    };
    let finished = finish(&mut ctx, &report, failure.as_ref());
    match (failure, finished) {
        (Some(e), _) => Ok(RunOutcome {
            report,
            error: Some(e),
        }),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Ok(RunOutcome {
            report,
            error: None,
        }),
    }
}

/// Write `run_summary.json` and record how the run ended.
fn finish(ctx: &mut RunContext<'_>, report: &RunReport, failure: Option<&Error>) -> Result<()> {
    let summary_bytes = canonical_bytes(report)
        .map_err(|e| Error::Inconsistent(format!("encoding the run summary: {e}")))?;
    write_atomic(&report.run_dir.join(RUN_SUMMARY_FILE), &summary_bytes)?;
    let summary_json = String::from_utf8_lossy(&summary_bytes);
    let error_text = failure.map(error_chain);
    ctx.registry.finish_run(&RunFinish {
        project_id: &report.project_id,
        run_id: &report.run_id,
        status: &report.status,
        finished_at: &report.finished_at,
        duration_ms: report.duration_ms,
        stages_executed: report.stages_executed,
        stages_skipped: report.stages_skipped,
        error: error_text.as_deref(),
        summary_path: &format!("{}/{RUN_SUMMARY_FILE}", ctx.run_rel),
        summary_sha256: &sha256_hex(&summary_bytes),
        summary_json: &summary_json,
    })
}

/// The project and run directories must be real directories: artifacts are
/// never written through a symlink (verify reports one, never follows it).
fn refuse_symlinked_dirs(artifacts_dir: &Path, parts: &[&str]) -> Result<()> {
    let mut dir = artifacts_dir.to_path_buf();
    for part in parts {
        dir.push(part);
        let meta = std::fs::symlink_metadata(&dir)
            .map_err(|e| Error::io("inspecting the run directory", &dir, e))?;
        if !meta.file_type().is_dir() {
            return Err(Error::usage_with_hint(
                format!(
                    "`{}` is a symlink, not a directory; artifacts are never written through one",
                    dir.display()
                ),
                "replace the link with a real directory (or move the target there), then run again",
            ));
        }
    }
    Ok(())
}

/// Delete `.tmp-*` files an interrupted writer left in the run directory.
/// Safe only under the run lock: then no live writer can own them.
fn remove_stale_temp_files(run_dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(run_dir)
        .map_err(|e| Error::io("listing the run directory", run_dir, e))?;
    for entry in entries.flatten() {
        let is_temp = entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX);
        if is_temp && entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::io("removing a stale temporary file", entry.path(), e))?;
        }
    }
    Ok(())
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

struct RunContext<'a> {
    opts: &'a RunOptions,
    registry: &'a mut Registry,
    clock: &'a dyn Clock,
    origin: ComputeOrigin,
    run_id: String,
    /// `<project>/<run>`, relative to the artifacts directory.
    run_rel: String,
    run_dir: PathBuf,
    attempt: u32,
    current: BTreeMap<ArtifactType, Current>,
}

impl RunContext<'_> {
    /// Decide and carry out one stage. An error the stage itself caused is
    /// returned beside its report (the run records it and stops); an error
    /// of the machinery (registry, disk) aborts the run at once.
    fn run_stage(&mut self, stage: &dyn Stage) -> Result<(StageReport, Option<Error>)> {
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

        let mut execution = self.execution(stage, started_at, input_hashes);
        let out_path = self.run_dir.join(ty.file_name());

        let outcome = match self.decide(stage, &execution.input_hashes, &out_path)? {
            Decision::Skip { sha256, bytes } => {
                execution.status = "skipped".to_string();
                execution.reason = "up to date".to_string();
                execution.output_sha256 = Some(sha256.clone());
                self.finish(&mut execution, t0);
                self.registry.record_execution(&execution)?;
                self.current.insert(
                    ty,
                    Current {
                        sha256,
                        path: out_path,
                        bytes,
                    },
                );
                None
            }
            Decision::Execute { reason } => {
                execution.reason = reason;
                match self.execute(stage, &out_path) {
                    Ok(Written {
                        sha256,
                        bytes,
                        meta,
                        meta_json,
                    }) => {
                        execution.status = "executed".to_string();
                        execution.output_sha256 = Some(sha256.clone());
                        self.finish(&mut execution, t0);
                        let rel = format!("{}/{}", self.run_rel, ty.file_name());
                        self.registry
                            .record_artifact(&meta, &rel, &meta_json, &execution)?;
                        self.current.insert(
                            ty,
                            Current {
                                sha256,
                                path: out_path,
                                bytes,
                            },
                        );
                        None
                    }
                    // Disk failures are not the stage's fault: stop now.
                    Err(e @ Error::Io { .. }) => return Err(e),
                    Err(e) => {
                        execution.status = "failed".to_string();
                        execution.error = Some(error_chain(&e));
                        self.finish(&mut execution, t0);
                        self.registry.record_execution(&execution)?;
                        Some(e)
                    }
                }
            }
        };

        let report = StageReport {
            stage: stage.number(),
            name: stage.name().to_string(),
            artifact_type: ty.name().to_string(),
            status: match execution.status.as_str() {
                "skipped" => StageStatus::Skipped,
                "executed" => StageStatus::Executed,
                _ => StageStatus::Failed,
            },
            reason: execution.reason.clone(),
            sha256: execution.output_sha256.clone(),
            duration_ms: execution.duration_ms,
        };
        Ok((report, outcome))
    }

    /// Best-effort record of a stage the machinery aborted; the original
    /// error is what the user sees, so a second failure here is dropped.
    fn record_abort(&mut self, stage: &dyn Stage, error: &Error) -> StageReport {
        let now = rfc3339(self.clock.now());
        let mut execution = self.execution(stage, now.clone(), BTreeMap::new());
        execution.status = "failed".to_string();
        execution.reason = "aborted".to_string();
        execution.finished_at = now;
        execution.error = Some(error_chain(error));
        let _ = self.registry.record_execution(&execution);
        StageReport::no_output(stage, StageStatus::Failed, "aborted")
    }

    /// An execution row for `stage` in this run, to be completed by the caller.
    fn execution(
        &self,
        stage: &dyn Stage,
        started_at: String,
        input_hashes: BTreeMap<String, String>,
    ) -> ExecutionRecord {
        ExecutionRecord {
            project_id: self.opts.config.config.project_id.clone(),
            run_id: self.run_id.clone(),
            attempt: self.attempt,
            stage: stage.number(),
            stage_name: stage.name().to_string(),
            stage_version: stage.version().to_string(),
            status: String::new(),
            reason: String::new(),
            started_at,
            finished_at: String::new(),
            duration_ms: 0,
            input_hashes,
            output_sha256: None,
            error: None,
        }
    }

    fn finish(&self, execution: &mut ExecutionRecord, t0: Instant) {
        execution.finished_at = rfc3339(self.clock.now());
        execution.duration_ms = t0.elapsed().as_millis() as u64;
    }

    fn decide(
        &self,
        stage: &dyn Stage,
        input_hashes: &BTreeMap<String, String>,
        out_path: &Path,
    ) -> Result<Decision> {
        let execute = |reason: String| Ok(Decision::Execute { reason });
        if self.opts.force {
            return execute("forced (--force)".to_string());
        }
        if let Some(n) = self.opts.from_stage.filter(|&n| stage.number() >= n) {
            return execute(format!("forced (--from-stage {n})"));
        }
        let project_id = &self.opts.config.config.project_id;
        let Some(prev) =
            self.registry
                .last_completed_execution(project_id, &self.run_id, stage.number())?
        else {
            return execute("not run before".to_string());
        };
        if prev.stage_version != stage.version() {
            return execute(format!(
                "stage version changed ({} -> {})",
                prev.stage_version,
                stage.version()
            ));
        }
        let changed: Vec<&str> = input_hashes
            .iter()
            .filter(|(name, sha)| prev.input_hashes.get(*name) != Some(*sha))
            .map(|(name, _)| name.as_str())
            .chain(
                prev.input_hashes
                    .keys()
                    .filter(|name| !input_hashes.contains_key(*name))
                    .map(String::as_str),
            )
            .collect();
        if !changed.is_empty() {
            return execute(format!("input changed ({})", changed.join(", ")));
        }
        let ty = stage.output();
        let registered = match self
            .registry
            .artifact_in_run(project_id, &self.run_id, ty.name())?
        {
            None => return execute("artifact not registered".to_string()),
            Some(a) if a.sha256 != prev.output_sha256 => {
                return execute("registry disagrees with its last execution".to_string());
            }
            // A hash match only proves validity against the schema version
            // the artifact was validated under.
            Some(a) if a.schema_version != SCHEMA_VERSION => {
                return execute(format!(
                    "schema version changed ({} -> {SCHEMA_VERSION})",
                    a.schema_version
                ));
            }
            Some(a) => a,
        };
        match std::fs::symlink_metadata(out_path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return execute("artifact missing".to_string());
            }
            Err(e) => return execute(format!("artifact unreadable ({e})")),
            Ok(m) if !m.file_type().is_file() => {
                return execute("artifact is not a regular file".to_string());
            }
            Ok(_) => {}
        }
        let bytes = match std::fs::read(out_path) {
            Ok(b) => b,
            Err(e) => return execute(format!("artifact unreadable ({e})")),
        };
        let sha256 = sha256_hex(&bytes);
        if sha256 != prev.output_sha256 {
            return execute("hash mismatch".to_string());
        }
        // The whole meta record must be the one registered, not just its
        // hash: a meta file from an interrupted write, or edited by hand,
        // is rewritten rather than trusted.
        let meta_path = self.run_dir.join(ty.meta_file_name());
        let on_disk = std::fs::symlink_metadata(&meta_path)
            .ok()
            .filter(|m| m.file_type().is_file())
            .and_then(|_| std::fs::read(&meta_path).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        let recorded = serde_json::from_str::<serde_json::Value>(&registered.meta_json).ok();
        match on_disk {
            None => execute("meta file missing or unreadable".to_string()),
            Some(m) if Some(&m) != recorded.as_ref() => {
                execute("meta file disagrees with the registry".to_string())
            }
            Some(_) => Ok(Decision::Skip { sha256, bytes }),
        }
    }

    /// Run the stage, validate its output, write the artifact and its meta
    /// record.
    fn execute(&self, stage: &dyn Stage, out_path: &Path) -> Result<Written> {
        let ty = stage.output();
        let ctx = StageContext {
            config: &self.opts.config.config,
            inputs: stage
                .inputs()
                .iter()
                .filter_map(|t| {
                    self.current
                        .get(t)
                        .map(|c| (*t, (c.path.as_path(), c.bytes.as_slice())))
                })
                .collect(),
        };
        let value = stage.run(&ctx).map_err(|source| Error::StageFailed {
            stage: stage.number(),
            stage_name: stage.name().to_string(),
            source: Box::new(source),
        })?;
        if let Some(v) = schema::validate(ty.name(), &value)?.into_iter().next() {
            return Err(Error::InvalidArtifact {
                stage: stage.number(),
                stage_name: stage.name().to_string(),
                artifact_type: ty.name().to_string(),
                pointer: v.pointer,
                message: v.message,
            });
        }
        let bytes = canonical_bytes(&value)
            .map_err(|e| Error::Inconsistent(format!("encoding {ty}: {e}")))?;
        let sha256 = sha256_hex(&bytes);
        write_atomic(out_path, &bytes)?;

        let meta = MetaRecord {
            artifact_type: ty.name().to_string(),
            path: ty.file_name(),
            sha256: sha256.clone(),
            size_bytes: bytes.len() as u64,
            schema_id: schema::schema_id(ty.name())?.to_string(),
            schema_version: SCHEMA_VERSION.to_string(),
            project_id: self.opts.config.config.project_id.clone(),
            run_id: self.run_id.clone(),
            parents: stage
                .inputs()
                .iter()
                .filter_map(|t| {
                    self.current.get(t).map(|c| ParentRef {
                        artifact_type: t.name().to_string(),
                        sha256: c.sha256.clone(),
                        path: t.file_name(),
                    })
                })
                .collect(),
            creation_params: CreationParams {
                stage: stage.number(),
                stage_name: stage.name().to_string(),
                stage_version: stage.version().to_string(),
                config_hash: self.opts.config.config_hash.clone(),
            },
            compute_origin: self.origin.clone(),
            created_at: rfc3339(self.clock.now()),
        };
        let meta_bytes = canonical_bytes(&meta)
            .map_err(|e| Error::Inconsistent(format!("encoding the meta record of {ty}: {e}")))?;
        write_atomic(&self.run_dir.join(ty.meta_file_name()), &meta_bytes)?;
        Ok(Written {
            sha256,
            bytes,
            meta,
            // Canonical bytes are serde_json output, hence UTF-8.
            meta_json: String::from_utf8_lossy(&meta_bytes).into_owned(),
        })
    }
}
