//! Writes and reads of the `projects`, `runs` and `run_summaries` tables.

use super::executions::MARK_INTERRUPTED;
use super::records::RunStatus;
use super::{Registry, Tx};
use crate::error::{Error, Result};
use crate::registry::db::{Backend, Row, Sql, params};

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
    /// Where the config came from, for display.
    pub config_path: Option<&'a str>,
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
    pub status: RunStatus,
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
                      started_at, orchestrator_version, host, created_at, title, config_path)
    VALUES (?1, ?2, ?3, ?4, ?5, 'running', 1, ?6, ?7, ?8, ?6, ?9, ?10)
    ON CONFLICT (project_id, run_id) DO UPDATE SET
        config_hash = excluded.config_hash,
        title = excluded.title,
        config_path = excluded.config_path,
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

const CONFIG_HASH: &str = "SELECT config_hash FROM runs WHERE project_id = ?1 AND run_id = ?2";

impl Registry {
    /// The attempt number the next invocation of a run gets (1 for a run
    /// never seen): what [`Tx::begin_run`] will return, known before it
    /// commits. Only meaningful under the run's lock.
    pub fn next_attempt(&self, project_id: &str, run_id: &str) -> Result<u32> {
        let attempts: Option<u32> =
            self.db()
                .query_opt(ATTEMPTS, params![project_id, run_id], |r| r.get(0))?;
        // A count edited (or reindexed) to the top of the range must stop
        // the run with a message, never overflow.
        match attempts {
            None => Ok(1),
            Some(a) => a.checked_add(1).ok_or_else(|| {
                Error::Inconsistent(format!(
                    "run {project_id}/{run_id} has {a} recorded attempts, the most this registry can count; \
                     run it under another --run-id"
                ))
            }),
        }
    }

    /// The config hash a run was recorded with, if the run is recorded.
    pub fn recorded_config_hash(&self, project_id: &str, run_id: &str) -> Result<Option<String>> {
        self.db()
            .query_opt(CONFIG_HASH, params![project_id, run_id], |r| r.get(0))
    }
}

impl Tx<'_> {
    /// Record that an invocation started: the project, the run row
    /// (returns its attempt number, 1 for the first invocation of this run
    /// id) and the `interrupted` mark on every execution a dead process
    /// left `running`. Called under the run's lock, when no live process
    /// can own those rows.
    pub fn begin_run(&self, run: &NewRun<'_>) -> Result<u32> {
        let db = self.db();
        db.execute(MARK_INTERRUPTED, params![run.project_id, run.run_id])?;
        db.execute(
            UPSERT_PROJECT,
            params![run.project_id, run.title, run.started_at],
        )?;
        let attempt: u32 = db.query_row(
            UPSERT_RUN,
            params![
                run.project_id,
                run.run_id,
                run.config_hash,
                run.config_json,
                run.run_dir,
                run.started_at,
                run.orchestrator_version,
                run.host,
                run.title,
                run.config_path
            ],
            |r| r.get(0),
        )?;
        Ok(attempt)
    }
}

impl Tx<'_> {
    /// Record how an invocation ended.
    pub fn finish_run(&self, f: &RunFinish<'_>) -> Result<()> {
        self.db().execute(
            FINISH_RUN,
            params![
                f.project_id,
                f.run_id,
                f.attempt,
                f.status,
                f.finished_at,
                f.duration_ms,
                f.error,
                f.executions_after
            ],
        )?;
        Ok(())
    }

    /// Record the `run_summary.json` written for a run.
    pub fn record_summary(&self, f: &SummaryFile<'_>) -> Result<()> {
        self.db().execute(
            UPSERT_SUMMARY,
            params![
                f.project_id,
                f.run_id,
                f.sha256,
                f.path,
                f.json,
                f.written_at
            ],
        )?;
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
            .db()
            .query_row(&sql, params![project_id, run_id], run_row)?;
        let config_json = self
            .db()
            .query_row(CONFIG_JSON, params![project_id, run_id], |r| r.get(0))?;
        Ok((row, config_json))
    }
}

/// A run as `runs list` and `runs show` see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub project_id: String,
    /// The title of the config this run ran (not the project's newest).
    pub title: String,
    /// As recorded, or [`RunStatus::Interrupted`] when the recorded status
    /// is `running` but no process holds the run's lock.
    pub status: RunStatus,
    /// When the latest attempt started.
    pub started_at: String,
    /// When the first attempt started: a run's place in history, which a
    /// later attempt never changes.
    pub created_at: String,
    /// Where the config came from (`--project`'s path, or
    /// `registry:<project>/<run>` for `--from-run`), when recorded.
    pub config_path: Option<String>,
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
    pub status: Option<RunStatus>,
    /// RFC 3339 UTC lower bound on `started_at` (same format as stored).
    pub since: Option<String>,
    pub limit: usize,
}

/// Whether a process currently holds the lock of (project, run).
pub type LiveCheck<'a> = &'a dyn Fn(&str, &str) -> bool;

/// A run that has not finished (`running`, or dead and so `interrupted`)
/// has no counts recorded yet (they are written when it ends), so its
/// counts are those of its current attempt's execution rows so far: the
/// same rows `runs show` lists. Only such rows pay for the lookup.
const RUN_COLUMNS: &str = "r.run_id, r.project_id, r.title, r.status, r.started_at, r.finished_at,
    r.duration_ms,
    CASE WHEN r.status = 'running' THEN (SELECT count(*) FROM stage_executions e
        WHERE e.project_id = r.project_id AND e.run_id = r.run_id
          AND e.stage IN (1, 2, 3, 4, 5) AND e.attempt = r.attempts AND e.status = 'executed')
        ELSE r.stages_executed END,
    CASE WHEN r.status = 'running' THEN (SELECT count(*) FROM stage_executions e
        WHERE e.project_id = r.project_id AND e.run_id = r.run_id
          AND e.stage IN (1, 2, 3, 4, 5) AND e.attempt = r.attempts AND e.status = 'skipped')
        ELSE r.stages_skipped END,
    r.attempts, r.config_hash, r.run_dir,
    r.error, r.orchestrator_version, r.host, r.created_at, r.config_path";

// The listings. Each filter that can lead has its own query, because a
// catch-all `(?1 IS NULL OR r.project_id = ?1)` cannot use an index: SQLite
// plans a statement once, whatever is bound later. The runs come out of an
// index in order and the LIMIT ends the walk. `CROSS JOIN` keeps `runs` the
// outer loop: with a plain join SQLite may start from `projects` and then
// have to sort every run. Where the filter has an equality, `?1` is the
// lower bound on created_at, `''` when there is none (every time is above),
// `?2` the LIMIT (-1: none).
//
// Each has a PostgreSQL text beside it (`…_POSTGRES`, which the SQLite
// query-plan guard leaves out), differing only where PostgreSQL must:
// `CROSS JOIN` takes no `ON` there and its planner needs no hint (nor has
// `INDEXED BY`), and a negative LIMIT is an error there, so -1 becomes
// NULL, which is PostgreSQL's "no limit". The LIMIT's parameter is cast
// because `NULLIF` alone would make it a 32-bit integer. A parameter that
// is first seen by `IS NULL` gets its type from a cast: PostgreSQL types a
// parameter where it first meets it, and `IS NULL` says nothing.

/// The newest `?1` runs, across projects: a walk down `runs_by_created_at`
/// from its newest end that stops after `?1` rows. The one listing that
/// reads an index from its end (`query_plans.rs` names it). The index is
/// named because, with no WHERE to go on, SQLite would rather walk
/// `runs_by_project_created` for the join and then sort every run.
const LIST_RUNS: &str = "
    FROM runs r INDEXED BY runs_by_created_at
    CROSS JOIN projects p ON p.project_id = r.project_id
    ORDER BY r.created_at DESC, r.project_id, r.run_id
    LIMIT ?1";

const LIST_RUNS_POSTGRES: &str = "
    FROM runs r JOIN projects p ON p.project_id = r.project_id
    ORDER BY r.created_at DESC, r.project_id, r.run_id
    LIMIT NULLIF(CAST(?1 AS BIGINT), -1)";

/// Newest first since `?1` (a range of `runs_by_created_at`).
const LIST_RUNS_SINCE: &str = "
    FROM runs r CROSS JOIN projects p ON p.project_id = r.project_id
    WHERE r.created_at >= ?1
    ORDER BY r.created_at DESC, r.project_id, r.run_id
    LIMIT ?2";

const LIST_RUNS_SINCE_POSTGRES: &str = "
    FROM runs r JOIN projects p ON p.project_id = r.project_id
    WHERE r.created_at >= ?1
    ORDER BY r.created_at DESC, r.project_id, r.run_id
    LIMIT NULLIF(CAST(?2 AS BIGINT), -1)";

/// Newest first in project `?3`, recorded status `?4` or NULL for any
/// (`runs_by_project_created`).
const LIST_RUNS_OF_PROJECT: &str = "
    FROM runs r CROSS JOIN projects p ON p.project_id = r.project_id
    WHERE r.project_id = ?3 AND r.created_at >= ?1 AND (?4 IS NULL OR r.status = ?4)
    ORDER BY r.created_at DESC, r.run_id
    LIMIT ?2";

const LIST_RUNS_OF_PROJECT_POSTGRES: &str = "
    FROM runs r JOIN projects p ON p.project_id = r.project_id
    WHERE r.project_id = ?3 AND r.created_at >= ?1
      AND (CAST(?4 AS TEXT) IS NULL OR r.status = ?4)
    ORDER BY r.created_at DESC, r.run_id
    LIMIT NULLIF(CAST(?2 AS BIGINT), -1)";

/// The newest run of project `?2` that has an artifact of type `?1`.
const NEWEST_OF_PROJECT_WITH_TYPE: &str = "
    FROM runs r CROSS JOIN projects p ON p.project_id = r.project_id
    WHERE r.project_id = ?2 AND EXISTS (SELECT 1 FROM artifacts a
        WHERE a.project_id = r.project_id AND a.run_id = r.run_id AND a.artifact_type = ?1)
    ORDER BY r.created_at DESC, r.run_id
    LIMIT 1";

const NEWEST_OF_PROJECT_WITH_TYPE_POSTGRES: &str = "
    FROM runs r JOIN projects p ON p.project_id = r.project_id
    WHERE r.project_id = ?2 AND EXISTS (SELECT 1 FROM artifacts a
        WHERE a.project_id = r.project_id AND a.run_id = r.run_id AND a.artifact_type = ?1)
    ORDER BY r.created_at DESC, r.run_id
    LIMIT 1";

/// The newest run of any project that has an artifact of type `?1`
/// (`?2` is 1: a bound LIMIT is what marks an ordered walk as bounded).
const NEWEST_WITH_TYPE: &str = "
    FROM runs r INDEXED BY runs_by_created_at
    CROSS JOIN projects p ON p.project_id = r.project_id
    WHERE EXISTS (SELECT 1 FROM artifacts a
        WHERE a.project_id = r.project_id AND a.run_id = r.run_id AND a.artifact_type = ?1)
    ORDER BY r.created_at DESC, r.project_id, r.run_id
    LIMIT ?2";

const NEWEST_WITH_TYPE_POSTGRES: &str = "
    FROM runs r JOIN projects p ON p.project_id = r.project_id
    WHERE EXISTS (SELECT 1 FROM artifacts a
        WHERE a.project_id = r.project_id AND a.run_id = r.run_id AND a.artifact_type = ?1)
    ORDER BY r.created_at DESC, r.project_id, r.run_id
    LIMIT ?2";

/// Newest first with recorded status `?3` (`runs_by_status_created`).
const LIST_RUNS_WITH_STATUS: &str = "
    FROM runs r CROSS JOIN projects p ON p.project_id = r.project_id
    WHERE r.status = ?3 AND r.created_at >= ?1
    ORDER BY r.created_at DESC, r.project_id, r.run_id
    LIMIT ?2";

const LIST_RUNS_WITH_STATUS_POSTGRES: &str = "
    FROM runs r JOIN projects p ON p.project_id = r.project_id
    WHERE r.status = ?3 AND r.created_at >= ?1
    ORDER BY r.created_at DESC, r.project_id, r.run_id
    LIMIT NULLIF(CAST(?2 AS BIGINT), -1)";

/// How many runs there are in project `?1` (NULL: all) with recorded status
/// `?2` (NULL: any), from the per-project counts (a row per project and
/// status, not per run).
const COUNT_RUNS: &str = "
    SELECT coalesce(sum(runs), 0) FROM run_counts
    WHERE (?1 IS NULL OR project_id = ?1) AND (?2 IS NULL OR status = ?2)";

/// PostgreSQL's `sum` of a BIGINT is NUMERIC, and the count is read as a
/// BIGINT.
const COUNT_RUNS_POSTGRES: &str = "
    SELECT CAST(coalesce(sum(runs), 0) AS BIGINT) FROM run_counts
    WHERE (CAST(?1 AS TEXT) IS NULL OR project_id = ?1)
      AND (CAST(?2 AS TEXT) IS NULL OR status = ?2)";

/// With `--since`, the count walks the same index range the listing does.
const COUNT_RUNS_SINCE: &str = "SELECT count(*) FROM runs WHERE created_at >= ?1";

const COUNT_RUNS_OF_PROJECT_SINCE: &str = "
    SELECT count(*) FROM runs
    WHERE project_id = ?2 AND created_at >= ?1 AND (?3 IS NULL OR status = ?3)";

const COUNT_RUNS_OF_PROJECT_SINCE_POSTGRES: &str = "
    SELECT count(*) FROM runs
    WHERE project_id = ?2 AND created_at >= ?1
      AND (CAST(?3 AS TEXT) IS NULL OR status = ?3)";

const COUNT_RUNS_WITH_STATUS_SINCE: &str =
    "SELECT count(*) FROM runs WHERE status = ?2 AND created_at >= ?1";

/// Ids matching the GLOB pattern `?1` (`<prefix>*`, which an exact id also
/// matches), in project `?2` or NULL for any, the exact id `?3` first.
/// GLOB is case-sensitive and, with the pattern bound whole rather than
/// built in SQL, becomes a range of `runs_by_run_id`; callers only pass
/// `[a-z0-9_-]` prefixes, so the pattern holds no other wildcard.
const FIND_RUNS: &str = "
    FROM runs r CROSS JOIN projects p ON p.project_id = r.project_id
    WHERE r.run_id GLOB ?1 AND (?2 IS NULL OR r.project_id = ?2)
    ORDER BY r.run_id = ?3 DESC, r.created_at DESC, r.project_id";

/// PostgreSQL has no GLOB: `?1` is a LIKE pattern (`<prefix>%`, its `_`
/// escaped with `\`, LIKE's default escape, see [`like_prefix`]; no
/// `ESCAPE '\'`, which a server with `standard_conforming_strings` off would
/// read as an unterminated string). LIKE is case-sensitive there, and on
/// the `COLLATE "C"` column its fixed prefix becomes a range of
/// `runs_by_run_id` once the pattern is known, as GLOB's does on SQLite.
const FIND_RUNS_POSTGRES: &str = "
    FROM runs r JOIN projects p ON p.project_id = r.project_id
    WHERE r.run_id LIKE ?1 AND (CAST(?2 AS TEXT) IS NULL OR r.project_id = ?2)
    ORDER BY r.run_id = ?3 DESC, r.created_at DESC, r.project_id";

/// At most this many candidates are named in an "ambiguous" error.
const MAX_CANDIDATES_SHOWN: usize = 10;

fn run_row(r: &Row<'_>) -> Result<RunRow> {
    Ok(RunRow {
        run_id: r.get(0)?,
        project_id: r.get(1)?,
        title: r.get(2)?,
        status: r.get(3)?,
        started_at: r.get(4)?,
        created_at: r.get(15)?,
        config_path: r.get(16)?,
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

/// A LIMIT for SQL: -1 is none.
fn sql_limit(limit: Option<usize>) -> i64 {
    limit.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1)
}

/// The LIKE pattern of the ids that start with `prefix`: its wildcards and
/// LIKE's escape character `\` escaped. Of those a valid id holds only `_`,
/// but `_` is a valid id character.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 4);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Registry {
    /// Runs matching `filter`, newest first, at most `filter.limit`, and how
    /// many matched in all.
    ///
    /// Only the page shown is read. The lock is checked only for runs whose
    /// recorded status is `running` (the rest cannot be live), and the total
    /// comes from the per-project counts, so neither grows with the
    /// registry. Asking for `running` or `interrupted` is the exception: the
    /// two differ only by the lock, so every recorded `running` run (a
    /// handful: the live ones and those a crash left) is read and checked.
    pub fn list_runs(
        &self,
        filter: &RunFilter,
        live: LiveCheck<'_>,
    ) -> Result<(Vec<RunRow>, usize)> {
        let project = filter.project.as_deref();
        let since = filter.since.as_deref();
        if let Some(wanted @ (RunStatus::Running | RunStatus::Interrupted)) = filter.status {
            let mut matching: Vec<RunRow> = self
                .select_runs(project, Some(RunStatus::Running.as_str()), since, None)?
                .into_iter()
                .map(|row| with_live_status(row, live))
                .filter(|row| row.status == wanted)
                .collect();
            let total = matching.len();
            matching.truncate(filter.limit);
            return Ok((matching, total));
        }
        let recorded = filter.status.map(RunStatus::as_str);
        let page: Vec<RunRow> = self
            .select_runs(project, recorded, since, Some(filter.limit))?
            .into_iter()
            .map(|row| with_live_status(row, live))
            .collect();
        let total = if page.len() < filter.limit {
            page.len()
        } else {
            // Read after the page: runs added in between only raise it.
            self.count_runs(project, recorded, since)?.max(page.len())
        };
        Ok((page, total))
    }

    /// The newest run (of `project`), as `lineage <Type>` resolves it.
    pub fn newest_run(&self, project: Option<&str>, live: LiveCheck<'_>) -> Result<Option<RunRow>> {
        Ok(self
            .select_runs(project, None, None, Some(1))?
            .into_iter()
            .next()
            .map(|row| with_live_status(row, live)))
    }

    /// The newest run (of `project`, or of any) that has an artifact of
    /// `artifact_type`: what `lineage TYPE` looks in without `--run`.
    pub fn newest_run_with(
        &self,
        artifact_type: &str,
        project: Option<&str>,
        live: LiveCheck<'_>,
    ) -> Result<Option<RunRow>> {
        let row = match project {
            Some(p) => self.db().query_opt(
                Sql::dialects(
                    &format!("SELECT {RUN_COLUMNS} {NEWEST_OF_PROJECT_WITH_TYPE}"),
                    &format!("SELECT {RUN_COLUMNS} {NEWEST_OF_PROJECT_WITH_TYPE_POSTGRES}"),
                ),
                params![artifact_type, p],
                run_row,
            )?,
            None => self.db().query_opt(
                Sql::dialects(
                    &format!("SELECT {RUN_COLUMNS} {NEWEST_WITH_TYPE}"),
                    &format!("SELECT {RUN_COLUMNS} {NEWEST_WITH_TYPE_POSTGRES}"),
                ),
                params![artifact_type, 1],
                run_row,
            )?,
        };
        Ok(row.map(|r| with_live_status(r, live)))
    }

    /// Runs by recorded status, newest first, through the query whose index
    /// fits the filter.
    fn select_runs(
        &self,
        project: Option<&str>,
        recorded: Option<&str>,
        since: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<RunRow>> {
        let since = since.unwrap_or("");
        let limit = sql_limit(limit);
        let db = self.db();
        match (project, recorded) {
            (Some(project), status) => db.query_map(
                Sql::dialects(
                    &format!("SELECT {RUN_COLUMNS} {LIST_RUNS_OF_PROJECT}"),
                    &format!("SELECT {RUN_COLUMNS} {LIST_RUNS_OF_PROJECT_POSTGRES}"),
                ),
                params![since, limit, project, status],
                run_row,
            ),
            (None, Some(status)) => db.query_map(
                Sql::dialects(
                    &format!("SELECT {RUN_COLUMNS} {LIST_RUNS_WITH_STATUS}"),
                    &format!("SELECT {RUN_COLUMNS} {LIST_RUNS_WITH_STATUS_POSTGRES}"),
                ),
                params![since, limit, status],
                run_row,
            ),
            (None, None) if since.is_empty() => db.query_map(
                Sql::dialects(
                    &format!("SELECT {RUN_COLUMNS} {LIST_RUNS}"),
                    &format!("SELECT {RUN_COLUMNS} {LIST_RUNS_POSTGRES}"),
                ),
                params![limit],
                run_row,
            ),
            (None, None) => db.query_map(
                Sql::dialects(
                    &format!("SELECT {RUN_COLUMNS} {LIST_RUNS_SINCE}"),
                    &format!("SELECT {RUN_COLUMNS} {LIST_RUNS_SINCE_POSTGRES}"),
                ),
                params![since, limit],
                run_row,
            ),
        }
    }

    /// How many runs match, by recorded status.
    fn count_runs(
        &self,
        project: Option<&str>,
        recorded: Option<&str>,
        since: Option<&str>,
    ) -> Result<usize> {
        let db = self.db();
        let count: i64 = match (since, project, recorded) {
            (None, project, status) => db.query_row(
                Sql::dialects(COUNT_RUNS, COUNT_RUNS_POSTGRES),
                params![project, status],
                |r| r.get(0),
            )?,
            (Some(since), Some(project), status) => db.query_row(
                Sql::dialects(
                    COUNT_RUNS_OF_PROJECT_SINCE,
                    COUNT_RUNS_OF_PROJECT_SINCE_POSTGRES,
                ),
                params![since, project, status],
                |r| r.get(0),
            )?,
            (Some(since), None, Some(status)) => {
                db.query_row(COUNT_RUNS_WITH_STATUS_SINCE, params![since, status], |r| {
                    r.get(0)
                })?
            }
            (Some(since), None, None) => {
                db.query_row(COUNT_RUNS_SINCE, params![since], |r| r.get(0))?
            }
        };
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Runs whose id is `id` or starts with it, exact match first. Private:
    /// `id` must already be checked to hold no GLOB wildcard (LIKE's are
    /// escaped).
    fn find_runs(
        &self,
        id: &str,
        project: Option<&str>,
        live: LiveCheck<'_>,
    ) -> Result<Vec<RunRow>> {
        let pattern = match self.db().backend() {
            Backend::Sqlite => format!("{id}*"),
            Backend::Postgres => like_prefix(id),
        };
        let rows = self.db().query_map(
            Sql::dialects(
                &format!("SELECT {RUN_COLUMNS} {FIND_RUNS}"),
                &format!("SELECT {RUN_COLUMNS} {FIND_RUNS_POSTGRES}"),
            ),
            params![pattern, project, id],
            run_row,
        )?;
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
            (n, _) => {
                let mut candidates: Vec<String> = runs
                    .iter()
                    .take(MAX_CANDIDATES_SHOWN)
                    .map(|r| format!("{} ({})", r.run_id, r.project_id))
                    .collect();
                if n > MAX_CANDIDATES_SHOWN {
                    candidates.push(format!("and {} more", n - MAX_CANDIDATES_SHOWN));
                }
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
    if row.status == RunStatus::Running && !live(&row.project_id, &row.run_id) {
        row.status = RunStatus::Interrupted;
    }
    row
}
