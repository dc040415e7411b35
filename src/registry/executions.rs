//! Writes and reads of `stage_executions`, and the per-stage transaction
//! that registers an artifact with its edges.
//!
//! An execution that computes is inserted as `running` before its stage
//! starts and completed in the stage's commit transaction (the one that
//! registers its artifact), so a killed process leaves a `running` row; the
//! run's next start marks such rows `interrupted`. The writes are methods
//! of [`Tx`], so the runner decides which of them commit together.
//!
//! Every statement here runs as written on SQLite and PostgreSQL. The
//! backend prepares each once per connection: a run issues each of them
//! once per stage.

use std::collections::BTreeMap;

use super::db::{Db, params};
use super::records::ExecutionStatus;
use super::{Registry, Tx};
use crate::artifact::MetaRecord;
use crate::error::{Error, Result};

/// One stage decision of one invocation, as stored.
#[derive(Debug, Clone)]
pub struct ExecutionRecord {
    /// Set once the row exists (inserted as `running`); completing it then
    /// updates that row instead of inserting another.
    pub execution_id: Option<i64>,
    pub project_id: String,
    pub run_id: String,
    pub attempt: u32,
    pub stage: u8,
    pub stage_name: String,
    pub stage_version: String,
    /// `running`, `executed`, `skipped`, `failed` (or `interrupted`, set
    /// only when the run's next invocation begins: [`Tx::begin_run`]).
    pub status: ExecutionStatus,
    pub reason: String,
    pub started_at: String,
    /// `None` while running.
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// Input name (`config`, `Script`, …) → sha256.
    pub input_hashes: BTreeMap<String, String>,
    pub output_sha256: Option<String>,
    pub error: Option<String>,
}

/// What resume needs from the newest completed execution of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedExecution {
    pub stage_version: String,
    pub input_hashes: BTreeMap<String, String>,
    pub output_sha256: String,
}

const LAST_COMPLETED: &str = "
    SELECT stage_version, input_hashes, output_sha256
    FROM stage_executions
    WHERE project_id = ?1 AND run_id = ?2 AND stage = ?3
      AND status IN ('executed', 'skipped') AND output_sha256 IS NOT NULL
    ORDER BY execution_id DESC
    LIMIT 1";

const INSERT_EXECUTION: &str = "
    INSERT INTO stage_executions (project_id, run_id, attempt, stage, stage_name, stage_version,
        status, reason, started_at, finished_at, duration_ms, input_hashes, output_sha256,
        artifact_id, error)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
        (SELECT artifact_id FROM artifacts
         WHERE project_id = ?1 AND run_id = ?2 AND sha256 = ?13 AND stage = ?4),
        ?14)
    RETURNING execution_id";

/// Complete the row `?1` inserted as `running`.
const COMPLETE_EXECUTION: &str = "
    UPDATE stage_executions SET status = ?2, reason = ?3, finished_at = ?4, duration_ms = ?5,
        output_sha256 = ?6, error = ?7,
        artifact_id = (SELECT artifact_id FROM artifacts
                       WHERE project_id = stage_executions.project_id
                         AND run_id = stage_executions.run_id
                         AND sha256 = ?6 AND stage = stage_executions.stage)
    WHERE execution_id = ?1 AND status = 'running'";

pub(super) const MARK_INTERRUPTED: &str = "
    UPDATE stage_executions
    SET status = 'interrupted',
        error = 'the process running this stage stopped before the stage was committed'
    WHERE project_id = ?1 AND run_id = ?2 AND status = 'running'";

/// `stage IN (…)` and the id bound `?4` let the index seek to the attempt's
/// rows instead of reading every earlier attempt's: a run resumed a
/// thousand times costs no more to summarize than one resumed once.
const WITHDRAW_EXECUTION: &str =
    "DELETE FROM stage_executions WHERE execution_id = ?1 AND status = 'running'";

const EXECUTIONS_OF_ATTEMPT: &str = "
    SELECT execution_id, stage, stage_name, stage_version, status, reason, started_at,
           finished_at, duration_ms, input_hashes, output_sha256, error
    FROM stage_executions
    WHERE project_id = ?1 AND run_id = ?2 AND stage IN (1, 2, 3, 4, 5)
      AND execution_id > ?4 AND attempt = ?3
    ORDER BY stage, execution_id";

const LAST_EXECUTION_ID: &str = "SELECT coalesce(max(execution_id), 0) FROM stage_executions";

const UPSERT_ARTIFACT: &str = "
    INSERT INTO artifacts (project_id, run_id, artifact_type, sha256, schema_id, schema_version,
        path, size_bytes, stage, stage_name, stage_version, created_at, meta_json)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
    ON CONFLICT (project_id, run_id, artifact_type) DO UPDATE SET
        sha256 = excluded.sha256, schema_id = excluded.schema_id,
        schema_version = excluded.schema_version, path = excluded.path,
        size_bytes = excluded.size_bytes, stage = excluded.stage,
        stage_name = excluded.stage_name, stage_version = excluded.stage_version,
        created_at = excluded.created_at, meta_json = excluded.meta_json
    RETURNING artifact_id";

const DELETE_EDGES_OF_CHILD: &str = "DELETE FROM artifact_edges WHERE child_id = ?1";

const INSERT_EDGE: &str = "
    INSERT INTO artifact_edges (child_id, parent_id, parent_sha256)
    SELECT ?1, artifact_id, ?5 FROM artifacts
    WHERE project_id = ?2 AND run_id = ?3 AND artifact_type = ?4";

impl Registry {
    /// The newest completed (executed or skipped) execution of a stage.
    pub fn last_completed_execution(
        &self,
        project_id: &str,
        run_id: &str,
        stage: u8,
    ) -> Result<Option<CompletedExecution>> {
        let row = self
            .db()
            .query_opt(LAST_COMPLETED, params![project_id, run_id, stage], |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<String>(1)?,
                    r.get::<String>(2)?,
                ))
            })?;
        row.map(|(stage_version, inputs, output_sha256)| {
            let input_hashes =
                serde_json::from_str(&inputs).map_err(|e| Error::RegistryUnusable {
                    path: self.path.clone(),
                    message: format!("stage_executions.input_hashes is not a JSON object: {e}"),
                    source: None,
                })?;
            Ok(CompletedExecution {
                stage_version,
                input_hashes,
                output_sha256,
            })
        })
        .transpose()
    }

    /// The largest execution id so far (0 for none). Rows inserted later
    /// get larger ids, so an invocation that reads this before its first
    /// row can find all of its rows, and only them, by id.
    pub fn last_execution_id(&self) -> Result<i64> {
        self.db()
            .query_row(LAST_EXECUTION_ID, params![], |r| r.get(0))
    }

    /// Every execution row of one attempt of a run, in stage order. All of
    /// them have ids above `after` (see [`Registry::last_execution_id`]).
    pub fn executions_of_attempt(
        &self,
        project_id: &str,
        run_id: &str,
        attempt: u32,
        after: i64,
    ) -> Result<Vec<ExecutionRecord>> {
        let rows = self.db().query_map(
            EXECUTIONS_OF_ATTEMPT,
            params![project_id, run_id, attempt, after],
            |r| {
                Ok((
                    ExecutionRecord {
                        execution_id: r.get(0)?,
                        project_id: project_id.to_string(),
                        run_id: run_id.to_string(),
                        attempt,
                        stage: r.get(1)?,
                        stage_name: r.get(2)?,
                        stage_version: r.get(3)?,
                        status: r.get(4)?,
                        reason: r.get(5)?,
                        started_at: r.get(6)?,
                        finished_at: r.get(7)?,
                        duration_ms: r.get(8)?,
                        input_hashes: BTreeMap::new(),
                        output_sha256: r.get(10)?,
                        error: r.get(11)?,
                    },
                    r.get::<String>(9)?,
                ))
            },
        )?;
        rows.into_iter()
            .map(|(mut e, inputs)| {
                e.input_hashes =
                    serde_json::from_str(&inputs).map_err(|err| Error::RegistryUnusable {
                        path: self.path.clone(),
                        message: format!(
                            "stage_executions.input_hashes is not a JSON object: {err}"
                        ),
                        source: None,
                    })?;
                Ok(e)
            })
            .collect()
    }
}

impl Tx<'_> {
    /// Register an artifact whose files are on disk: its row (meta record
    /// included), its parent edges and the execution that made it. When the
    /// transaction commits, the stage is done.
    pub fn record_artifact(
        &self,
        meta: &MetaRecord,
        path: &str,
        meta_json: &str,
        execution: &ExecutionRecord,
    ) -> Result<()> {
        self.register_artifact(meta, path, meta_json)?;
        crate::failpoint::hit("stage.in_commit")
            .map_err(|e| Error::io("committing the stage to", self.path(), e))?;
        self.record_execution(execution).map(|_| ())
    }

    /// Insert or replace the artifact row of (run, type) and its parent
    /// edges: the registration every artifact gets, whatever made it (a
    /// stage, or `package`). Returns its id.
    pub fn register_artifact(&self, meta: &MetaRecord, path: &str, meta_json: &str) -> Result<i64> {
        let db = self.db();
        let artifact_id: i64 = db.query_row(
            UPSERT_ARTIFACT,
            params![
                meta.project_id,
                meta.run_id,
                meta.artifact_type,
                meta.sha256,
                meta.schema_id,
                meta.schema_version,
                path,
                meta.size_bytes as i64,
                meta.creation_params.stage,
                meta.creation_params.stage_name,
                meta.creation_params.stage_version,
                meta.created_at,
                meta_json
            ],
            |r| r.get(0),
        )?;
        db.execute(DELETE_EDGES_OF_CHILD, params![artifact_id])?;
        for parent in &meta.parents {
            let inserted = db.execute(
                INSERT_EDGE,
                params![
                    artifact_id,
                    meta.project_id,
                    meta.run_id,
                    parent.artifact_type,
                    parent.sha256
                ],
            )?;
            if inserted != 1 {
                return Err(Error::Inconsistent(format!(
                    "{} names parent {} which is not registered for run {}",
                    meta.artifact_type, parent.artifact_type, meta.run_id
                )));
            }
        }
        Ok(artifact_id)
    }

    /// Remove a `running` row whose stage never started (recorded ahead of
    /// time by the previous stage's commit, which the run then aborted).
    pub fn withdraw_execution(&self, execution_id: i64) -> Result<()> {
        self.db()
            .execute(WITHDRAW_EXECUTION, params![execution_id])?;
        Ok(())
    }

    /// Record a stage decision: insert it (a `running` row, whose id is
    /// returned, or a skipped or failed one), or, when it already has an
    /// id, complete the row it names.
    pub fn record_execution(&self, e: &ExecutionRecord) -> Result<i64> {
        if let Some(id) = e.execution_id {
            let updated = self.db().execute(
                COMPLETE_EXECUTION,
                params![
                    id,
                    e.status,
                    e.reason,
                    e.finished_at,
                    e.duration_ms.map(|d| d as i64),
                    e.output_sha256,
                    e.error
                ],
            )?;
            if updated != 1 {
                return Err(Error::Inconsistent(format!(
                    "execution {id} of stage {} is no longer running",
                    e.stage_name
                )));
            }
            return Ok(id);
        }
        insert_execution(self.db(), e)
    }
}

/// Insert one execution row (its artifact linked by output hash); returns
/// its id. Shared by the runner and `reindex`'s bulk path.
pub(super) fn insert_execution(db: &Db, e: &ExecutionRecord) -> Result<i64> {
    let inputs = serde_json::to_string(&e.input_hashes)
        .map_err(|err| Error::Inconsistent(format!("encoding input hashes: {err}")))?;
    db.query_row(
        INSERT_EXECUTION,
        params![
            e.project_id,
            e.run_id,
            e.attempt,
            e.stage,
            e.stage_name,
            e.stage_version,
            e.status,
            e.reason,
            e.started_at,
            e.finished_at,
            e.duration_ms.map(|d| d as i64),
            inputs,
            e.output_sha256,
            e.error
        ],
        |r| r.get(0),
    )
}

/// The newest decision for one stage of a run, as `runs show` displays it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StageRow {
    pub stage: u8,
    pub name: String,
    /// What the stage makes (`ShotList`).
    pub artifact_type: String,
    pub stage_version: String,
    pub status: ExecutionStatus,
    pub reason: String,
    pub sha256: Option<String>,
    pub duration_ms: Option<u64>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub attempt: u32,
    pub error: Option<String>,
    /// Input name (`config`, `Script`, …) → sha256 the decision saw.
    pub input_hashes: std::collections::BTreeMap<String, String>,
}

/// One row per attempt of a run: when it began and what its stages did.
const ATTEMPT_HISTORY: &str = "
    SELECT attempt, min(started_at),
           count(*) FILTER (WHERE status = 'executed'),
           count(*) FILTER (WHERE status = 'skipped'),
           count(*) FILTER (WHERE status = 'failed'),
           count(*) FILTER (WHERE status IN ('running', 'interrupted'))
    FROM stage_executions
    WHERE project_id = ?1 AND run_id = ?2 AND stage IN (1, 2, 3, 4, 5)
    GROUP BY attempt
    ORDER BY attempt";

/// What one attempt of a run did, from its execution rows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttemptRow {
    pub attempt: u32,
    pub started_at: String,
    pub executed: u32,
    pub skipped: u32,
    pub failed: u32,
    /// Stages left `running` by a process that died (or still running).
    pub interrupted: u32,
}

const LATEST_STAGES: &str = "
    SELECT stage, stage_name, stage_version, status, reason, output_sha256, duration_ms,
           started_at, finished_at, attempt, error, input_hashes
    FROM latest_stage_executions
    WHERE project_id = ?1 AND run_id = ?2
    ORDER BY stage";

impl Registry {
    /// Every attempt of a run, oldest first, with what its stages did. An
    /// attempt that recorded no stage (it failed before the first) has no
    /// row.
    pub fn attempt_history(&self, project_id: &str, run_id: &str) -> Result<Vec<AttemptRow>> {
        self.db()
            .query_map(ATTEMPT_HISTORY, params![project_id, run_id], |r| {
                Ok(AttemptRow {
                    attempt: r.get(0)?,
                    started_at: r.get(1)?,
                    executed: r.get(2)?,
                    skipped: r.get(3)?,
                    failed: r.get(4)?,
                    interrupted: r.get(5)?,
                })
            })
    }

    /// The newest execution row of each stage of a run, in stage order.
    pub fn latest_stages(&self, project_id: &str, run_id: &str) -> Result<Vec<StageRow>> {
        self.db()
            .query_map(LATEST_STAGES, params![project_id, run_id], |r| {
                let stage: u8 = r.get(0)?;
                Ok(StageRow {
                    stage,
                    name: r.get(1)?,
                    stage_version: r.get(2)?,
                    status: r.get(3)?,
                    reason: r.get(4)?,
                    sha256: r.get(5)?,
                    duration_ms: r.get(6)?,
                    started_at: r.get(7)?,
                    finished_at: r.get(8)?,
                    attempt: r.get(9)?,
                    error: r.get(10)?,
                    artifact_type: crate::artifact::ArtifactType::EVERY
                        .iter()
                        .find(|t| t.stage() == stage)
                        .map_or_else(String::new, |t| t.name().to_string()),
                    // Written by this tool as a JSON object; anything else
                    // (a hand edit) shows as none rather than failing.
                    input_hashes: serde_json::from_str(&r.get::<String>(11)?).unwrap_or_default(),
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{NewRun, RunFinish};

    fn execution(attempt: u32, stage: u8) -> ExecutionRecord {
        ExecutionRecord {
            execution_id: None,
            project_id: "p".to_string(),
            run_id: "r".to_string(),
            attempt,
            stage,
            stage_name: format!("stage{stage}"),
            stage_version: "1.0.0".to_string(),
            status: ExecutionStatus::Skipped,
            reason: "up to date".to_string(),
            started_at: "2026-01-01T00:00:00Z".to_string(),
            finished_at: Some("2026-01-01T00:00:01Z".to_string()),
            duration_ms: Some(1),
            input_hashes: BTreeMap::from([("config".to_string(), "0".repeat(64))]),
            output_sha256: Some("1".repeat(64)),
            error: None,
        }
    }

    #[test]
    fn an_attempt_reads_and_counts_only_its_own_rows_however_many_came_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::open(&dir.path().join("registry.db")).unwrap();
        let new_run = NewRun {
            config_path: None,
            project_id: "p",
            title: "t",
            run_id: "r",
            config_hash: &"0".repeat(64),
            config_json: "{}",
            run_dir: "p/r",
            started_at: "2026-01-01T00:00:00Z",
            orchestrator_version: "0",
            host: "h",
        };
        let mut after = 0;
        for attempt in 1..=3 {
            assert_eq!(registry.next_attempt("p", "r").unwrap(), attempt);
            after = registry.last_execution_id().unwrap();
            registry
                .transaction(|tx| {
                    assert_eq!(tx.begin_run(&new_run)?, attempt);
                    // The last attempt executes nothing but stage 1 twice.
                    let stages: &[u8] = if attempt == 3 {
                        &[1, 1]
                    } else {
                        &[1, 2, 3, 4, 5]
                    };
                    for &stage in stages {
                        tx.record_execution(&execution(attempt, stage))?;
                    }
                    tx.finish_run(&RunFinish {
                        project_id: "p",
                        run_id: "r",
                        attempt,
                        executions_after: after,
                        status: crate::registry::RunStatus::Complete,
                        finished_at: "2026-01-01T00:00:02Z",
                        duration_ms: 2,
                        error: None,
                    })
                })
                .unwrap();
        }
        let rows = registry.executions_of_attempt("p", "r", 3, after).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|e| e.attempt == 3 && e.stage == 1));
        let (run, _) = registry.run_record("p", "r").unwrap();
        assert_eq!((run.attempts, run.stages_skipped), (3, 2));
    }
}
