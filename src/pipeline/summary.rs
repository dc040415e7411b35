//! `run_summary.json`: what one invocation of a run did, derived from the
//! registry.
//!
//! The summary is written before the first stage that executes (status
//! `running`, the stages decided so far: read in the transaction that
//! records that stage's `running` row, before the row) and rewritten when
//! the run ends (read, written and recorded in the transaction that marks
//! the run finished). Both come from the registry's rows for the run's
//! current attempt, so the file and the index cannot tell two stories. A
//! run that executes nothing writes it once, at the end: until then the
//! previous summary still describes every file in the directory. It carries
//! everything about a run that lives nowhere else on disk (config,
//! statuses, timings, input hashes), which is what lets `orchestrator
//! reindex` rebuild the registry from the files.

use crate::registry::{ExecutionStatus, RunStatus};
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::stage::Stage;
use crate::artifact::{
    RUN_SUMMARY_FILE, canonical_bytes, sha256_hex, sync_dir, write_atomic_unsynced,
};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::registry::{ExecutionRecord, Registry, SummaryFile, Tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Executed,
    Skipped,
    Failed,
    /// Not reached because an earlier stage failed.
    NotRun,
    /// Still in flight (only in a summary read while a run is live).
    Running,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Executed => "executed",
            StageStatus::Skipped => "skipped",
            StageStatus::Failed => "failed",
            StageStatus::NotRun => "not_run",
            StageStatus::Running => "running",
        }
    }

    fn from_registry(status: ExecutionStatus) -> StageStatus {
        match status {
            ExecutionStatus::Executed => StageStatus::Executed,
            ExecutionStatus::Skipped => StageStatus::Skipped,
            ExecutionStatus::Running => StageStatus::Running,
            ExecutionStatus::Failed | ExecutionStatus::Interrupted => StageStatus::Failed,
        }
    }
}

/// One entry of `run_summary.json`'s `stages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageReport {
    pub stage: u8,
    pub name: String,
    pub artifact_type: String,
    pub stage_version: String,
    pub status: StageStatus,
    pub reason: String,
    pub sha256: Option<String>,
    /// Input name (`config`, `Script`, …) → sha256 the decision saw.
    pub input_hashes: BTreeMap<String, String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

impl StageReport {
    /// A stage with no execution row in this attempt.
    pub(crate) fn not_run(stage: &dyn Stage, reason: &str) -> Self {
        StageReport {
            stage: stage.number(),
            name: stage.name().to_string(),
            artifact_type: stage.output().name().to_string(),
            stage_version: stage.version().to_string(),
            status: StageStatus::NotRun,
            reason: reason.to_string(),
            sha256: None,
            input_hashes: BTreeMap::new(),
            started_at: None,
            finished_at: None,
            duration_ms: 0,
            error: None,
        }
    }

    pub(crate) fn from_execution(stage: &dyn Stage, e: &ExecutionRecord) -> Self {
        StageReport {
            stage: e.stage,
            name: e.stage_name.clone(),
            artifact_type: stage.output().name().to_string(),
            stage_version: e.stage_version.clone(),
            status: StageStatus::from_registry(e.status),
            reason: e.reason.clone(),
            sha256: e.output_sha256.clone(),
            input_hashes: e.input_hashes.clone(),
            started_at: Some(e.started_at.clone()),
            finished_at: e.finished_at.clone(),
            duration_ms: e.duration_ms.unwrap_or(0),
            error: e.error.clone(),
        }
    }
}

/// The content of `run_summary.json`, and what `run --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub project_id: String,
    pub run_id: String,
    pub title: String,
    /// The project config in its canonical form (its sha256 is `config_hash`).
    pub config: serde_json::Value,
    pub config_hash: String,
    /// `running`, `complete` or `failed`.
    pub status: String,
    pub attempt: u32,
    pub started_at: String,
    /// When the run's first attempt started (its place in history).
    pub created_at: String,
    /// Where the config came from, when recorded.
    pub config_path: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub stages_executed: u32,
    pub stages_skipped: u32,
    pub error: Option<String>,
    pub orchestrator_version: String,
    pub host: String,
    pub stages: Vec<StageReport>,
    /// `<project>/<run>`, relative to the artifacts directory (as in
    /// `runs list --json`).
    pub run_dir: String,
    /// The run directory as this process reaches it.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// Build the summary of `(project_id, run_id)` from the registry: the run
/// row and the newest execution of each stage in its current attempt. Once
/// the run has ended, a stage with no row in the attempt is `not_run`.
pub(crate) fn from_registry(
    registry: &Registry,
    project_id: &str,
    run_id: &str,
    executions_after: i64,
    stages: &[Box<dyn Stage>],
    run_dir: PathBuf,
) -> Result<RunReport> {
    let (run, config_json) = registry.run_record(project_id, run_id)?;
    let config = serde_json::from_str(&config_json).map_err(|e| {
        Error::Inconsistent(format!("runs.config_json of {project_id}/{run_id}: {e}"))
    })?;
    let executions =
        registry.executions_of_attempt(project_id, run_id, run.attempts, executions_after)?;
    let ended = run.status != RunStatus::Running;
    let reports = stages
        .iter()
        .filter_map(|stage| {
            // Rows come in execution order; the last one per stage is current.
            match executions.iter().rfind(|e| e.stage == stage.number()) {
                Some(e) => Some(StageReport::from_execution(stage.as_ref(), e)),
                None if ended => Some(StageReport::not_run(
                    stage.as_ref(),
                    "an earlier stage failed",
                )),
                None => None,
            }
        })
        .collect();
    Ok(RunReport {
        project_id: run.project_id,
        run_id: run.run_id,
        title: run.title,
        config,
        config_hash: run.config_hash,
        status: run.status.to_string(),
        attempt: run.attempts,
        started_at: run.started_at,
        created_at: run.created_at,
        config_path: run.config_path,
        finished_at: run.finished_at,
        duration_ms: run.duration_ms,
        stages_executed: run.stages_executed,
        stages_skipped: run.stages_skipped,
        error: run.error,
        orchestrator_version: run.orchestrator_version,
        host: run.host,
        stages: reports,
        run_dir: run.run_dir,
        dir: run_dir,
    })
}

/// Where a run's summary comes from and goes to.
pub(crate) struct SummaryTarget<'a> {
    pub project_id: String,
    pub run_id: String,
    /// `<project>/<run>`, relative to the artifacts directory.
    pub run_rel: String,
    pub run_dir: PathBuf,
    pub stages: &'a [Box<dyn Stage>],
    /// Every execution row of this invocation has a larger id.
    pub executions_after: i64,
}

/// Whether a summary's new name must be durable before it is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// The run's last word: sync the directory.
    Final,
    /// The summary a run starts with: the first stage's directory sync,
    /// moments later, makes its name durable (a power cut before then
    /// leaves the previous summary, which `verify` reports and the next
    /// run rewrites).
    Provisional,
}

impl SummaryTarget<'_> {
    /// The run's summary as `registry` has it now (inside a transaction:
    /// with its uncommitted rows).
    pub fn report(&self, registry: &Registry) -> Result<RunReport> {
        from_registry(
            registry,
            &self.project_id,
            &self.run_id,
            self.executions_after,
            self.stages,
            self.run_dir.clone(),
        )
    }

    /// Write `report` as `run_summary.json`; what to record comes back.
    pub fn write(&self, report: &RunReport, durability: Durability) -> Result<SummaryRecord> {
        let path = self.run_dir.join(RUN_SUMMARY_FILE);
        let bytes = canonical_bytes(report)
            .map_err(|e| Error::Inconsistent(format!("encoding the run summary: {e}")))?;
        failpoint::hit("summary.before_write")
            .map_err(|e| Error::io("writing the run summary", &path, e))?;
        write_atomic_unsynced(&path, &bytes)?;
        if durability == Durability::Final {
            sync_dir(&self.run_dir)?;
        }
        failpoint::hit("summary.after_write")
            .map_err(|e| Error::io("recording the run summary", &path, e))?;
        Ok(SummaryRecord {
            sha256: sha256_hex(&bytes),
            // Canonical bytes are serde_json output, hence UTF-8.
            json: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// Record a summary [`SummaryTarget::write`] wrote.
    pub fn record(&self, tx: &Tx<'_>, written: &SummaryRecord, written_at: &str) -> Result<()> {
        tx.record_summary(&SummaryFile {
            project_id: &self.project_id,
            run_id: &self.run_id,
            path: &format!("{}/{RUN_SUMMARY_FILE}", self.run_rel),
            sha256: &written.sha256,
            json: &written.json,
            written_at,
        })
    }
}

/// A summary written to disk, for the registry.
pub(crate) struct SummaryRecord {
    pub sha256: String,
    pub json: String,
}
