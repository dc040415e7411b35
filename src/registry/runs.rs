//! Writes and reads of the `projects`, `runs` and `run_summaries` tables.

use rusqlite::{OptionalExtension, params};

use super::Registry;
use crate::error::Result;

/// The start of one `orchestrator run` invocation.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub project_id: &'a str,
    pub title: &'a str,
    pub run_id: &'a str,
    pub config_hash: &'a str,
    pub config_json: &'a str,
    pub run_dir: &'a str,
    pub started_at: &'a str,
    pub orchestrator_version: &'a str,
    pub host: &'a str,
}

/// How an invocation ended, with its run summary.
#[derive(Debug, Clone)]
pub struct RunFinish<'a> {
    pub project_id: &'a str,
    pub run_id: &'a str,
    pub status: &'a str,
    pub finished_at: &'a str,
    pub duration_ms: u64,
    pub stages_executed: u32,
    pub stages_skipped: u32,
    pub error: Option<&'a str>,
    pub summary_path: &'a str,
    pub summary_sha256: &'a str,
    pub summary_json: &'a str,
}

const UPSERT_PROJECT: &str = "
    INSERT INTO projects (project_id, title, first_run_at, last_run_at)
    VALUES (?1, ?2, ?3, ?3)
    ON CONFLICT (project_id) DO UPDATE SET title = excluded.title, last_run_at = excluded.last_run_at";

const UPSERT_RUN: &str = "
    INSERT INTO runs (project_id, run_id, config_hash, config_json, run_dir, status, attempts,
                      started_at, orchestrator_version, host)
    VALUES (?1, ?2, ?3, ?4, ?5, 'running', 1, ?6, ?7, ?8)
    ON CONFLICT (project_id, run_id) DO UPDATE SET
        config_hash = excluded.config_hash,
        config_json = excluded.config_json,
        run_dir = excluded.run_dir,
        status = 'running',
        attempts = runs.attempts + 1,
        started_at = excluded.started_at,
        finished_at = NULL,
        duration_ms = NULL,
        stages_executed = 0,
        stages_skipped = 0,
        error = NULL,
        orchestrator_version = excluded.orchestrator_version,
        host = excluded.host
    RETURNING attempts";

const FINISH_RUN: &str = "
    UPDATE runs SET status = ?3, finished_at = ?4, duration_ms = ?5,
                    stages_executed = ?6, stages_skipped = ?7, error = ?8
    WHERE project_id = ?1 AND run_id = ?2";

const UPSERT_SUMMARY: &str = "
    INSERT INTO run_summaries (project_id, run_id, sha256, path, summary_json, written_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (project_id, run_id) DO UPDATE SET
        sha256 = excluded.sha256, path = excluded.path,
        summary_json = excluded.summary_json, written_at = excluded.written_at";

const RUN_STATUS: &str = "SELECT status FROM runs WHERE project_id = ?1 AND run_id = ?2";

impl Registry {
    /// Record that an invocation started; returns its attempt number (1 for
    /// the first invocation of this run id).
    pub fn begin_run(&mut self, run: &NewRun<'_>) -> Result<u32> {
        self.write(|tx| {
            tx.execute(
                UPSERT_PROJECT,
                params![run.project_id, run.title, run.started_at],
            )?;
            let attempt: u32 = tx.query_row(
                UPSERT_RUN,
                params![
                    run.project_id,
                    run.run_id,
                    run.config_hash,
                    run.config_json,
                    run.run_dir,
                    run.started_at,
                    run.orchestrator_version,
                    run.host
                ],
                |r| r.get(0),
            )?;
            Ok(attempt)
        })
    }

    /// Record how an invocation ended, and its summary, in one transaction.
    pub fn finish_run(&mut self, f: &RunFinish<'_>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                FINISH_RUN,
                params![
                    f.project_id,
                    f.run_id,
                    f.status,
                    f.finished_at,
                    f.duration_ms as i64,
                    f.stages_executed,
                    f.stages_skipped,
                    f.error
                ],
            )?;
            tx.execute(
                UPSERT_SUMMARY,
                params![
                    f.project_id,
                    f.run_id,
                    f.summary_sha256,
                    f.summary_path,
                    f.summary_json,
                    f.finished_at
                ],
            )?;
            Ok(())
        })
    }

    /// The recorded status of a run, if the registry knows it.
    pub fn run_status(&self, project_id: &str, run_id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(RUN_STATUS, params![project_id, run_id], |r| r.get(0))
            .optional()?)
    }
}
