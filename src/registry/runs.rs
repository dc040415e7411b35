//! Writes and reads of the `projects`, `runs` and `run_summaries` tables.

use rusqlite::{OptionalExtension, params};

use super::executions::MARK_INTERRUPTED;
use super::{Registry, Tx};
use crate::error::{Error, Result};

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

/// How an invocation ended. The stage counts are taken from the
/// attempt's execution rows, so they cannot disagree with them.
#[derive(Debug, Clone)]
pub struct RunFinish<'a> {
    pub project_id: &'a str,
    pub run_id: &'a str,
    pub attempt: u32,
    /// Every execution row of the attempt has a larger id (see
    /// [`Registry::last_execution_id`]): the counts read only those rows,
    /// not every attempt's.
    pub executions_after: i64,
    pub status: &'a str,
    pub finished_at: &'a str,
    pub duration_ms: u64,
    pub error: Option<&'a str>,
}

/// The `run_summary.json` just written for a run.
#[derive(Debug, Clone)]
pub struct SummaryFile<'a> {
    pub project_id: &'a str,
    pub run_id: &'a str,
    pub path: &'a str,
    pub sha256: &'a str,
    pub json: &'a str,
    pub written_at: &'a str,
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

/// `stage IN (…)` with the id bound `?8` lets the index seek straight to the
/// attempt's rows of each stage instead of reading every attempt's.
const FINISH_RUN: &str = "
    UPDATE runs SET status = ?4, finished_at = ?5, duration_ms = ?6, error = ?7,
        (stages_executed, stages_skipped) = (
            SELECT count(*) FILTER (WHERE status = 'executed'),
                   count(*) FILTER (WHERE status = 'skipped')
            FROM stage_executions
            WHERE project_id = ?1 AND run_id = ?2 AND stage IN (1, 2, 3, 4, 5)
              AND execution_id > ?8 AND attempt = ?3)
    WHERE project_id = ?1 AND run_id = ?2";

const CONFIG_JSON: &str = "SELECT config_json FROM runs WHERE project_id = ?1 AND run_id = ?2";

const UPSERT_SUMMARY: &str = "
    INSERT INTO run_summaries (project_id, run_id, sha256, path, summary_json, written_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (project_id, run_id) DO UPDATE SET
        sha256 = excluded.sha256, path = excluded.path,
        summary_json = excluded.summary_json, written_at = excluded.written_at";

const ATTEMPTS: &str = "SELECT attempts FROM runs WHERE project_id = ?1 AND run_id = ?2";

impl Registry {
    /// The attempt number the next invocation of a run gets (1 for a run
    /// never seen): what [`Tx::begin_run`] will return, known before it
    /// commits. Only meaningful under the run's lock.
    pub fn next_attempt(&self, project_id: &str, run_id: &str) -> Result<u32> {
        let attempts: Option<u32> = self
            .conn
            .prepare_cached(ATTEMPTS)?
            .query_row(params![project_id, run_id], |r| r.get(0))
            .optional()?;
        Ok(attempts.map_or(1, |a| a + 1))
    }
}

impl Tx<'_> {
    /// Record that an invocation started: the project, the run row
    /// (returns its attempt number, 1 for the first invocation of this run
    /// id) and the `interrupted` mark on every execution a dead process
    /// left `running`. Called under the run's lock, when no live process
    /// can own those rows.
    pub fn begin_run(&self, run: &NewRun<'_>) -> Result<u32> {
        let conn = self.conn();
        conn.prepare_cached(MARK_INTERRUPTED)?
            .execute(params![run.project_id, run.run_id])?;
        conn.prepare_cached(UPSERT_PROJECT)?.execute(params![
            run.project_id,
            run.title,
            run.started_at
        ])?;
        let attempt: u32 = conn.prepare_cached(UPSERT_RUN)?.query_row(
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
    }
}

impl Tx<'_> {
    /// Record how an invocation ended.
    pub fn finish_run(&self, f: &RunFinish<'_>) -> Result<()> {
        self.conn().prepare_cached(FINISH_RUN)?.execute(params![
            f.project_id,
            f.run_id,
            f.attempt,
            f.status,
            f.finished_at,
            f.duration_ms as i64,
            f.error,
            f.executions_after
        ])?;
        Ok(())
    }

    /// Record the `run_summary.json` written for a run.
    pub fn record_summary(&self, f: &SummaryFile<'_>) -> Result<()> {
        self.conn()
            .prepare_cached(UPSERT_SUMMARY)?
            .execute(params![
                f.project_id,
                f.run_id,
                f.sha256,
                f.path,
                f.json,
                f.written_at
            ])?;
        Ok(())
    }
}

impl Registry {
    /// One run's row as recorded (no lock check: the caller holds the run)
    /// and its canonical config JSON: what `run_summary.json` is made from.
    pub fn run_record(&self, project_id: &str, run_id: &str) -> Result<(RunRow, String)> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN projects p ON p.project_id = r.project_id
             WHERE r.project_id = ?1 AND r.run_id = ?2"
        );
        let row = self
            .conn
            .query_row(&sql, params![project_id, run_id], run_row)?;
        let config_json = self
            .conn
            .query_row(CONFIG_JSON, params![project_id, run_id], |r| r.get(0))?;
        Ok((row, config_json))
    }
}

/// A run as `runs list` and `runs show` see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub project_id: String,
    pub project_title: String,
    /// `complete`, `failed`, `running`, or — when the recorded status is
    /// `running` but no process holds the run's lock — `interrupted`.
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub stages_executed: u32,
    pub stages_skipped: u32,
    pub attempts: u32,
    pub config_hash: String,
    pub run_dir: String,
    pub error: Option<String>,
    pub orchestrator_version: String,
    pub host: String,
}

/// Which runs `runs list` shows.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub project: Option<String>,
    /// `complete`, `failed`, `running` or `interrupted`.
    pub status: Option<String>,
    /// RFC 3339 UTC lower bound on `started_at` (same format as stored).
    pub since: Option<String>,
    pub limit: usize,
}

/// Whether a process currently holds the lock of (project, run).
pub type LiveCheck<'a> = &'a dyn Fn(&str, &str) -> bool;

const RUN_COLUMNS: &str = "r.run_id, r.project_id, p.title, r.status, r.started_at, r.finished_at,
    r.duration_ms, r.stages_executed, r.stages_skipped, r.attempts, r.config_hash, r.run_dir,
    r.error, r.orchestrator_version, r.host";

/// `?1` project, `?2` recorded status, `?3` since; NULL means no filter.
const LIST_RUNS: &str = "
    FROM runs r JOIN projects p ON p.project_id = r.project_id
    WHERE (?1 IS NULL OR r.project_id = ?1)
      AND (?2 IS NULL OR r.status = ?2)
      AND (?3 IS NULL OR r.started_at >= ?3)
    ORDER BY r.started_at DESC, r.project_id, r.run_id";

/// Exact id `?1`, or ids matching the GLOB pattern `?3` (`<prefix>*`).
/// GLOB is case-sensitive and, with the pattern bound whole rather than
/// built in SQL, can use `runs_by_run_id`; callers only pass `[a-z0-9_-]`
/// prefixes, so the pattern holds no other wildcard.
const FIND_RUNS: &str = "
    FROM runs r JOIN projects p ON p.project_id = r.project_id
    WHERE (r.run_id = ?1 OR r.run_id GLOB ?3)
      AND (?2 IS NULL OR r.project_id = ?2)
    ORDER BY (r.run_id = ?1) DESC, r.started_at DESC";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        run_id: r.get(0)?,
        project_id: r.get(1)?,
        project_title: r.get(2)?,
        status: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        duration_ms: r.get(6)?,
        stages_executed: r.get(7)?,
        stages_skipped: r.get(8)?,
        attempts: r.get(9)?,
        config_hash: r.get(10)?,
        run_dir: r.get(11)?,
        error: r.get(12)?,
        orchestrator_version: r.get(13)?,
        host: r.get(14)?,
    })
}

impl Registry {
    /// Runs matching `filter`, newest first, at most `filter.limit`, and how
    /// many matched in all.
    pub fn list_runs(
        &self,
        filter: &RunFilter,
        live: LiveCheck<'_>,
    ) -> Result<(Vec<RunRow>, usize)> {
        // `interrupted` is `running` in the table; the lock tells them apart.
        let recorded = filter.status.as_deref().map(|s| match s {
            "interrupted" => "running",
            other => other,
        });
        let sql = format!("SELECT {RUN_COLUMNS} {LIST_RUNS}");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt
            .query_map(params![filter.project, recorded, filter.since], run_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut matching: Vec<RunRow> = rows
            .into_iter()
            .map(|row| with_live_status(row, live))
            .filter(|row| filter.status.as_deref().is_none_or(|s| row.status == s))
            .collect();
        let total = matching.len();
        matching.truncate(filter.limit);
        Ok((matching, total))
    }

    /// Runs whose id is `id` or starts with it, exact match first. Private:
    /// `id` must already be checked to hold no GLOB wildcard.
    fn find_runs(
        &self,
        id: &str,
        project: Option<&str>,
        live: LiveCheck<'_>,
    ) -> Result<Vec<RunRow>> {
        let sql = format!("SELECT {RUN_COLUMNS} {FIND_RUNS}");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt
            .query_map(params![id, project, format!("{id}*")], run_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .map(|r| with_live_status(r, live))
            .collect())
    }

    /// The one run `id` names: an exact id, or a prefix of exactly one id.
    pub fn resolve_run(
        &self,
        id: &str,
        project: Option<&str>,
        live: LiveCheck<'_>,
    ) -> Result<RunRow> {
        if !crate::config::is_valid_id(id) {
            return Err(Error::usage(format!(
                "`{id}` is not a run id or prefix (ids use a-z, 0-9, `-` and `_`)"
            )));
        }
        let mut runs = self.find_runs(id, project, live)?;
        let exact = runs.iter().filter(|r| r.run_id == id).count();
        match (runs.len(), exact) {
            (0, _) => Err(Error::usage_with_hint(
                format!(
                    "no run matches `{id}`{}",
                    project
                        .map(|p| format!(" in project `{p}`"))
                        .unwrap_or_default()
                ),
                "`orchestrator runs list` shows the recorded runs",
            )),
            (1, _) | (_, 1) => Ok(runs.swap_remove(0)),
            _ => {
                let candidates: Vec<String> = runs
                    .iter()
                    .map(|r| format!("{} ({})", r.run_id, r.project_id))
                    .collect();
                Err(Error::usage_with_hint(
                    format!(
                        "run `{id}` is ambiguous: it matches {}",
                        candidates.join(", ")
                    ),
                    "give more characters of the run id, or `--project`",
                ))
            }
        }
    }
}

fn with_live_status(mut row: RunRow, live: LiveCheck<'_>) -> RunRow {
    if row.status == "running" && !live(&row.project_id, &row.run_id) {
        row.status = "interrupted".to_string();
    }
    row
}
