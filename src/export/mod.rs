//! Exports of one recorded run to lineage standards other tools read:
//! W3C PROV-JSON ([`prov`]) and OpenLineage run events ([`openlineage`]).
//!
//! Both are built from the registry alone (never from the artifact files):
//! the run row, its artifacts, every stage execution of every attempt and
//! the parent edges, gathered once into a [`RunHistory`]. Both builders are
//! pure functions of that history, so exporting the same registry twice
//! gives the same bytes.

pub mod openlineage;
pub mod prov;

use crate::error::Result;
use crate::registry::export::RunEdge;
use crate::registry::{ArtifactRecord, ExecutionRecord, Registry, RunRow};
use crate::registry::{ExecutionStatus, RunStatus};

/// Where the orchestrator names the things it defines: the PROV `orch:`
/// namespace, producer URIs and custom facet schemas live under it.
pub const NAMESPACE_BASE: &str = "https://orchestrator.local/";

/// The URI naming this build as the producer of exported metadata.
pub fn producer_uri() -> String {
    format!("{NAMESPACE_BASE}orchestrator/{}", crate::VERSION)
}

/// Everything the registry knows about one run, as the exporters need it.
#[derive(Debug, Clone)]
pub struct RunHistory {
    pub run: RunRow,
    /// The artifacts currently registered for the run, in stage order.
    pub artifacts: Vec<ArtifactRecord>,
    /// Every stage execution of every attempt, attempt by attempt, each in
    /// stage order. A `running` row of a run no process holds any more is
    /// reported as `interrupted`, as `runs show` does.
    pub executions: Vec<ExecutionRecord>,
    /// The run's parent edges (child stage order).
    pub edges: Vec<RunEdge>,
}

impl RunHistory {
    /// Read the history of `run` (as resolved by [`Registry::resolve_run`]).
    pub fn load(registry: &Registry, run: RunRow) -> Result<RunHistory> {
        let artifacts = registry.artifacts_of_run(&run.project_id, &run.run_id)?;
        let mut executions = Vec::new();
        for attempt in 1..=run.attempts {
            // From the first row on (ids start at 1): every row of it.
            executions.extend(registry.executions_of_attempt(
                &run.project_id,
                &run.run_id,
                attempt,
                0,
            )?);
        }
        // Only a live process can still be running a stage; without one the
        // row is what a killed run left behind.
        if run.status != RunStatus::Running {
            for e in executions
                .iter_mut()
                .filter(|e| e.status == ExecutionStatus::Running)
            {
                e.status = ExecutionStatus::Interrupted;
            }
        }
        let edges = registry.edges_of_run(&run.project_id, &run.run_id)?;
        Ok(RunHistory {
            run,
            artifacts,
            executions,
            edges,
        })
    }

    /// The registered artifact of `artifact_type`, if any.
    pub fn artifact(&self, artifact_type: &str) -> Option<&ArtifactRecord> {
        self.artifacts
            .iter()
            .find(|a| a.artifact_type == artifact_type)
    }

    /// The artifact type stage `stage` produces, from the registry's rows (a
    /// run whose stage never committed has no row; the pipeline's fixed
    /// order answers then).
    pub fn type_of_stage(&self, stage: u8) -> Option<String> {
        self.artifacts
            .iter()
            .find(|a| a.stage == stage)
            .map(|a| a.artifact_type.clone())
            .or_else(|| {
                crate::artifact::ArtifactType::ALL
                    .get(usize::from(stage).checked_sub(1)?)
                    .map(|t| t.name().to_string())
            })
    }

    /// A stable key for each execution, unique within the run:
    /// `attempt-<n>/stage-<k>`, with `-<i>` appended for the i-th (i ≥ 2) row
    /// of the same stage in one attempt. Same order as `executions`.
    pub fn execution_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::with_capacity(self.executions.len());
        for (i, e) in self.executions.iter().enumerate() {
            let earlier = self.executions[..i]
                .iter()
                .filter(|x| x.attempt == e.attempt && x.stage == e.stage)
                .count();
            let mut key = format!("attempt-{}/stage-{}", e.attempt, e.stage);
            if earlier > 0 {
                key.push_str(&format!("-{}", earlier + 1));
            }
            keys.push(key);
        }
        keys
    }

    /// Index of the execution that generated the bytes `sha256` of stage
    /// `stage`, given `made_at`, the artifact's `created_at` when known:
    ///
    /// 1. the newest that executed, output those bytes and had started by
    ///    `made_at` (a later execution that reproduced the same bytes kept
    ///    the file and its record, so it made nothing);
    /// 2. else the newest execution of the stage that had started by
    ///    `made_at`, whatever became of it: the one a kill interrupted
    ///    after it wrote the file a later run adopted;
    /// 3. else the newest that executed and output them (the registry no
    ///    longer holds the one that made them: `reindex` keeps each run's
    ///    latest attempt only), else the newest that recorded them at all.
    ///
    /// Times are RFC 3339 UTC in one format, so they compare as text.
    pub fn generating_execution(
        &self,
        stage: u8,
        sha256: &str,
        made_at: Option<&str>,
    ) -> Option<usize> {
        let outputs = |i: &usize| {
            let e = &self.executions[*i];
            e.stage == stage && e.output_sha256.as_deref() == Some(sha256)
        };
        let executed = |i: &usize| self.executions[*i].status == ExecutionStatus::Executed;
        let started_by =
            |i: &usize| made_at.is_some_and(|t| self.executions[*i].started_at.as_str() <= t);
        let of_stage = |i: &usize| self.executions[*i].stage == stage;
        let all = 0..self.executions.len();
        all.clone()
            .rev()
            .filter(outputs)
            .filter(executed)
            .find(started_by)
            .or_else(|| all.clone().rev().filter(of_stage).find(started_by))
            .or_else(|| all.clone().rev().filter(outputs).find(executed))
            .or_else(|| all.rev().find(outputs))
    }

    /// Whether `time` falls within execution `i` (its end, when it has one,
    /// included): a generation time outside its activity is not stated.
    pub fn within(&self, i: usize, time: &str) -> bool {
        let e = &self.executions[i];
        e.started_at.as_str() <= time && e.finished_at.as_deref().is_none_or(|end| time <= end)
    }
}
