//! Bulk inserts for `orchestrator reindex`, which fills a brand-new registry
//! from the artifact tree, and the checkpointing close that must precede
//! renaming that registry into place.
//!
//! Runs are inserted a batch per `BEGIN IMMEDIATE` transaction, each run
//! under its own savepoint: a run that a table constraint refuses is rolled
//! back alone and reported, instead of aborting the rebuild. Everything
//! else (disk full, I/O) aborts it.

use rusqlite::{ErrorCode, params};

use super::{ExecutionRecord, Registry, RunRow};
use crate::artifact::MetaRecord;
use crate::error::{Error, Result};

/// One run as rebuilt from its directory.
#[derive(Debug, Clone)]
pub struct RebuiltRun {
    /// The run's row; `project_title` titles its project.
    pub run: RunRow,
    /// RFC 8785 canonical JSON of the run's config.
    pub config_json: String,
    pub summary: RebuiltSummary,
    /// In stage order: each artifact's parents come before it.
    pub artifacts: Vec<RebuiltArtifact>,
    pub executions: Vec<ExecutionRecord>,
}

/// The run's `run_summary.json`, verbatim.
#[derive(Debug, Clone)]
pub struct RebuiltSummary {
    /// Relative to the artifacts directory.
    pub path: String,
    pub sha256: String,
    pub json: String,
    pub written_at: String,
}

/// An artifact whose file, meta record and parents were checked. Its edges
/// are its meta record's `parents`, each of which names an artifact of the
/// same run listed earlier.
#[derive(Debug, Clone)]
pub struct RebuiltArtifact {
    pub meta: MetaRecord,
    /// Relative to the artifacts directory.
    pub path: String,
    /// The meta file's text, verbatim.
    pub meta_json: String,
}

/// What one run added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inserted {
    pub artifacts: usize,
    pub edges: usize,
    pub executions: usize,
}

/// A project's title is its newest run's; its first and last run times
/// span all its runs, whatever order they are inserted in.
const MERGE_PROJECT: &str = "
    INSERT INTO projects (project_id, title, first_run_at, last_run_at)
    VALUES (?1, ?2, ?3, ?3)
    ON CONFLICT (project_id) DO UPDATE SET
        title = CASE WHEN excluded.last_run_at >= projects.last_run_at
                     THEN excluded.title ELSE projects.title END,
        first_run_at = min(projects.first_run_at, excluded.first_run_at),
        last_run_at = max(projects.last_run_at, excluded.last_run_at)";

const INSERT_RUN: &str = "
    INSERT INTO runs (project_id, run_id, config_hash, config_json, run_dir, status, attempts,
        started_at, finished_at, duration_ms, stages_executed, stages_skipped, error,
        orchestrator_version, host)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";

const INSERT_SUMMARY: &str = "
    INSERT INTO run_summaries (project_id, run_id, sha256, path, summary_json, written_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const INSERT_ARTIFACT: &str = "
    INSERT INTO artifacts (project_id, run_id, artifact_type, sha256, schema_id, schema_version,
        path, size_bytes, stage, stage_name, stage_version, created_at, meta_json)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// The parent is looked up by type within the child's run, as `run` does.
const INSERT_EDGE: &str = "
    INSERT INTO artifact_edges (child_id, parent_id, parent_sha256)
    SELECT ?1, artifact_id, ?5 FROM artifacts
    WHERE project_id = ?2 AND run_id = ?3 AND artifact_type = ?4";

/// As `run` records an execution: linked to the run's artifact of that
/// stage with that hash, if it is registered.
impl Registry {
    /// Insert `runs` in one transaction, each under its own savepoint.
    /// Returns, per run, what it added, or why the registry refused it
    /// (that run alone was rolled back).
    pub fn insert_rebuilt(
        &mut self,
        runs: &[RebuiltRun],
    ) -> Result<Vec<std::result::Result<Inserted, String>>> {
        self.write(|tx| {
            let mut out = Vec::with_capacity(runs.len());
            for run in runs {
                tx.execute_batch("SAVEPOINT rebuilt_run")?;
                match insert_run(tx, run) {
                    Ok(inserted) => {
                        tx.execute_batch("RELEASE rebuilt_run")?;
                        out.push(Ok(inserted));
                    }
                    Err(e) if refused(&e) => {
                        tx.execute_batch("ROLLBACK TO rebuilt_run; RELEASE rebuilt_run")?;
                        out.push(Err(error_text(&e)));
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
    }

    /// Checkpoint the WAL into the database file and close the connection,
    /// so the file alone holds every commit and can be renamed.
    pub fn close_checkpointed(self) -> Result<()> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err(Error::Busy {
                what: format!("the registry `{}`", self.path.display()),
                message: "another connection kept its WAL from being checkpointed".to_string(),
            });
        }
        self.conn.close().map_err(|(_, e)| Error::Sql(e))
    }
}

/// Errors that say "this run's data does not fit the schema", as opposed to
/// "the database or disk failed".
fn refused(e: &Error) -> bool {
    match e {
        Error::Inconsistent(_) => true,
        Error::Sql(e) => e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation),
        _ => false,
    }
}

fn error_text(e: &Error) -> String {
    match e {
        // The message of a constraint error names the failed check.
        Error::Sql(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

fn insert_run(tx: &rusqlite::Transaction<'_>, b: &RebuiltRun) -> Result<Inserted> {
    let r = &b.run;
    // Cached statements: a bulk insert runs these six statements for every
    // run, and preparing each anew would cost more than executing it.
    tx.prepare_cached(MERGE_PROJECT)?.execute(params![
        r.project_id,
        r.project_title,
        r.started_at
    ])?;
    tx.prepare_cached(INSERT_RUN)?.execute(params![
        r.project_id,
        r.run_id,
        r.config_hash,
        b.config_json,
        r.run_dir,
        r.status,
        r.attempts,
        r.started_at,
        r.finished_at,
        r.duration_ms.map(|ms| ms as i64),
        r.stages_executed,
        r.stages_skipped,
        r.error,
        r.orchestrator_version,
        r.host
    ])?;
    let s = &b.summary;
    tx.prepare_cached(INSERT_SUMMARY)?.execute(params![
        r.project_id,
        r.run_id,
        s.sha256,
        s.path,
        s.json,
        s.written_at
    ])?;
    let mut inserted = Inserted::default();
    for a in &b.artifacts {
        let m = &a.meta;
        tx.prepare_cached(INSERT_ARTIFACT)?.execute(params![
            m.project_id,
            m.run_id,
            m.artifact_type,
            m.sha256,
            m.schema_id,
            m.schema_version,
            a.path,
            m.size_bytes as i64,
            m.creation_params.stage,
            m.creation_params.stage_name,
            m.creation_params.stage_version,
            m.created_at,
            a.meta_json
        ])?;
        let child_id = tx.last_insert_rowid();
        inserted.artifacts += 1;
        for parent in &m.parents {
            let n = tx.prepare_cached(INSERT_EDGE)?.execute(params![
                child_id,
                m.project_id,
                m.run_id,
                parent.artifact_type,
                parent.sha256
            ])?;
            if n != 1 {
                return Err(Error::Inconsistent(format!(
                    "{} names parent {}, which is not indexed in run {}",
                    m.artifact_type, parent.artifact_type, m.run_id
                )));
            }
            inserted.edges += 1;
        }
    }
    for e in &b.executions {
        super::executions::insert_execution(tx, e)?;
        inserted.executions += 1;
    }
    Ok(inserted)
}
