//! Bulk inserts for `orchestrator reindex`, which fills a brand-new registry
//! from the artifact tree, and the checkpointing close that must precede
//! renaming that registry into place.
//!
//! Runs are inserted a batch per write transaction, each run under its own
//! savepoint: a run that a table constraint refuses is rolled back alone
//! and reported, instead of aborting the rebuild. Everything else (disk
//! full, I/O) aborts it. The inserts run on either backend; checkpointing,
//! the file header and folding a WAL are SQLite's alone.

use std::path::Path;

use super::db::{Sql, params};
use super::{ExecutionRecord, Registry, RunRow, Tx};
use crate::artifact::MetaRecord;
use crate::error::{Error, Result};

/// One run as rebuilt from its directory.
#[derive(Debug, Clone)]
pub struct RebuiltRun {
    /// The run's row; `title` titles its project.
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
/// span all its runs, whatever order they are inserted in. SQLite's
/// two-argument `min` and `max` are PostgreSQL's `least` and `greatest`
/// (the columns are NOT NULL, where the two would differ).
const MERGE_PROJECT: Sql<'static> = Sql::dialects(
    "
    INSERT INTO projects (project_id, title, first_run_at, last_run_at)
    VALUES (?1, ?2, ?3, ?3)
    ON CONFLICT (project_id) DO UPDATE SET
        title = CASE WHEN excluded.last_run_at >= projects.last_run_at
                     THEN excluded.title ELSE projects.title END,
        first_run_at = min(projects.first_run_at, excluded.first_run_at),
        last_run_at = max(projects.last_run_at, excluded.last_run_at)",
    "
    INSERT INTO projects (project_id, title, first_run_at, last_run_at)
    VALUES (?1, ?2, ?3, ?3)
    ON CONFLICT (project_id) DO UPDATE SET
        title = CASE WHEN excluded.last_run_at >= projects.last_run_at
                     THEN excluded.title ELSE projects.title END,
        first_run_at = least(projects.first_run_at, excluded.first_run_at),
        last_run_at = greatest(projects.last_run_at, excluded.last_run_at)",
);

const INSERT_RUN: &str = "
    INSERT INTO runs (project_id, run_id, config_hash, config_json, run_dir, status, attempts,
        started_at, finished_at, duration_ms, stages_executed, stages_skipped, error,
        orchestrator_version, host, created_at, title, config_path)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

const INSERT_SUMMARY: &str = "
    INSERT INTO run_summaries (project_id, run_id, sha256, path, summary_json, written_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Returns the new row's id, which the edges of the artifact name.
const INSERT_ARTIFACT: &str = "
    INSERT INTO artifacts (project_id, run_id, artifact_type, sha256, schema_id, schema_version,
        path, size_bytes, stage, stage_name, stage_version, created_at, meta_json)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
    RETURNING artifact_id";

/// The parent is looked up by type within the child's run, as `run` does.
const INSERT_EDGE: &str = "
    INSERT INTO artifact_edges (child_id, parent_id, parent_sha256)
    SELECT ?1, artifact_id, ?5 FROM artifacts
    WHERE project_id = ?2 AND run_id = ?3 AND artifact_type = ?4";

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
                tx.db().batch("SAVEPOINT rebuilt_run")?;
                match insert_run(tx, run) {
                    Ok(inserted) => {
                        tx.db().batch("RELEASE rebuilt_run")?;
                        out.push(Ok(inserted));
                    }
                    Err(e) if refused(&e) => {
                        tx.db()
                            .batch("ROLLBACK TO rebuilt_run; RELEASE rebuilt_run")?;
                        out.push(Err(error_text(&e)));
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
    }

    /// Checkpoint the WAL into the database file and close the connection,
    /// so the file alone holds every commit and can be renamed. A
    /// PostgreSQL registry has neither WAL file nor file to rename: it is
    /// only closed.
    pub fn close_checkpointed(self) -> Result<()> {
        let busy: i64 = match self.db().sqlite() {
            Some(conn) => conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?,
            None => 0,
        };
        if busy != 0 {
            return Err(Error::Busy {
                what: format!("the registry `{}`", self.path.display()),
                message: "another connection kept its WAL from being checkpointed".to_string(),
            });
        }
        let Registry { db, _users, .. } = self;
        let closed = match db {
            super::Db::Sqlite(c) => c.close().map_err(|(_, e)| Error::from(e)),
            super::Db::Postgres(_) => Ok(()),
        };
        // The users lock goes only after the connection has closed.
        drop(_users);
        closed
    }
}

/// Errors that say "this run's data does not fit the schema", as opposed to
/// "the database or disk failed".
fn refused(e: &Error) -> bool {
    match e {
        Error::Inconsistent(_) => true,
        Error::Sql(e) => e.is_constraint_violation(),
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

fn insert_run(tx: &Tx<'_>, b: &RebuiltRun) -> Result<Inserted> {
    let r = &b.run;
    // A bulk insert runs these six statements for every run; the backend
    // prepares each once per connection, as preparing each anew would cost
    // more than executing it.
    let db = tx.db();
    db.execute(MERGE_PROJECT, params![r.project_id, r.title, r.started_at])?;
    db.execute(
        INSERT_RUN,
        params![
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
            r.host,
            r.created_at,
            r.title,
            r.config_path
        ],
    )?;
    let s = &b.summary;
    db.execute(
        INSERT_SUMMARY,
        params![
            r.project_id,
            r.run_id,
            s.sha256,
            s.path,
            s.json,
            s.written_at
        ],
    )?;
    let mut inserted = Inserted::default();
    for a in &b.artifacts {
        let m = &a.meta;
        let child_id: i64 = db.query_row(
            INSERT_ARTIFACT,
            params![
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
            ],
            |row| row.get(0),
        )?;
        inserted.artifacts += 1;
        for parent in &m.parents {
            let n = db.execute(
                INSERT_EDGE,
                params![
                    child_id,
                    m.project_id,
                    m.run_id,
                    parent.artifact_type,
                    parent.sha256
                ],
            )?;
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
        super::executions::insert_execution(db, e)?;
        inserted.executions += 1;
    }
    Ok(inserted)
}

/// This tool's mark in a registry file's header, set by migration V6:
/// `0x4F524348`, "ORCH" in ASCII.
pub const APPLICATION_ID: u32 = 0x4F52_4348;

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// What lies at the path a rebuilt registry would be renamed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExistingRegistry {
    Absent,
    /// A registry of this tool, readable or not, or an empty file: nothing
    /// that the artifact tree does not hold is lost by replacing it.
    Replaceable,
    /// Anyone else's file, which must be left exactly as it is.
    Foreign(crate::error::Incompatibility),
}

/// Tell a registry of this tool (which reindex may replace, damaged or
/// not: that is what reindex is for) from anything else. Reads the header
/// without SQLite first, so a file with no SQLite header is never handed to
/// SQLite, and a damaged registry is still recognised by the application id
/// in its first 100 bytes. A registry from before that mark (or whose mark
/// is still only in its `-wal`) is recognised by its migration history,
/// read through a read-only connection that writes nothing.
pub fn existing_registry(path: &Path) -> Result<ExistingRegistry> {
    use crate::error::Incompatibility;
    use std::io::Read;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ExistingRegistry::Absent);
        }
        Err(e) => return Err(Error::io("inspecting the registry", path, e)),
    };
    if !meta.file_type().is_file() {
        let what = if meta.file_type().is_symlink() {
            "a symlink"
        } else if meta.is_dir() {
            "a directory"
        } else {
            "a special file"
        };
        return Ok(ExistingRegistry::Foreign(Incompatibility::NotRegularFile {
            what: what.to_string(),
        }));
    }
    if meta.len() == 0 {
        // What SQLite makes of a new database before its first write.
        return Ok(ExistingRegistry::Replaceable);
    }
    let mut header = Vec::with_capacity(100);
    crate::regular_file::open_nofollow(path)
        .and_then(|f| f.take(100).read_to_end(&mut header))
        .map_err(|e| Error::io("reading the header of the registry", path, e))?;
    if !header.starts_with(SQLITE_MAGIC) {
        return Ok(ExistingRegistry::Foreign(Incompatibility::NotSqlite));
    }
    let app_id = header
        .get(68..72)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    match app_id {
        Some(APPLICATION_ID) => return Ok(ExistingRegistry::Replaceable),
        Some(0) => {}
        // Too short to hold a header: SQLite never wrote a page of it.
        None => return Ok(ExistingRegistry::Replaceable),
        Some(_) => return Ok(ExistingRegistry::Foreign(Incompatibility::Foreign)),
    }
    Ok(match marks_of_a_registry(path) {
        Ok(true) => ExistingRegistry::Replaceable,
        Ok(false) => ExistingRegistry::Foreign(Incompatibility::Foreign),
        Err(_) => ExistingRegistry::Foreign(Incompatibility::Unrecognised),
    })
}

/// Whether SQLite reads `path` as a registry of this tool: its application
/// id, or the tables of one (the migration history and `runs`), or no
/// tables at all (an empty database holds nothing to lose).
fn marks_of_a_registry(path: &Path) -> rusqlite::Result<bool> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    if app_id == i64::from(APPLICATION_ID) {
        return Ok(true);
    }
    let (tables, ours): (i64, i64) = conn.query_row(
        "SELECT count(*), count(*) FILTER (WHERE name IN ('refinery_schema_history', 'runs'))
         FROM sqlite_schema WHERE type = 'table'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(app_id == 0 && (tables == 0 || ours == 2))
}

/// Whether `path` starts with SQLite's header: a file without one is not a
/// damaged registry but someone else's file.
pub(super) fn has_sqlite_header(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 16];
    crate::regular_file::open_nofollow(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == SQLITE_MAGIC)
}

/// Fold the old registry's `-wal` into its database file, so that no commit
/// lives only in a file that the swap deletes: after this, the database
/// file alone holds every commit (a kill from here on leaves it complete).
/// The caller holds the users lock exclusively, so no orchestrator
/// connection is open; another program's may be (a `sqlite3` shell takes
/// no users lock), and is waited for at most `wait`.
///
/// [`Error::Busy`] when another connection holds the registry's lock or a
/// read transaction that keeps the log from being folded in: that program
/// is using the file, and what it writes would be lost with it. Any other
/// error means SQLite cannot use the file (a damaged registry: what its
/// log holds cannot be read either).
pub fn fold_wal_into(path: &Path, wait: std::time::Duration) -> Result<()> {
    use rusqlite::OpenFlags;
    let sql = |e: rusqlite::Error| super::busy_or_sql(e.into(), path, wait);
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    conn.busy_timeout(super::open::sqlite_wait(wait))
        .map_err(sql)?;
    // Reading the schema replays a hot `-journal` and recovers the WAL index.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(sql)?;
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .map_err(sql)?;
    if busy != 0 {
        return Err(sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("the WAL could not be checkpointed completely".to_string()),
        )));
    }
    conn.close().map_err(|(_, e)| sql(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Incompatibility;

    #[test]
    fn only_a_registry_of_this_tool_or_nothing_is_replaceable() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        assert_eq!(
            existing_registry(&at("none")).unwrap(),
            ExistingRegistry::Absent
        );
        std::fs::write(at("empty"), b"").unwrap();
        assert_eq!(
            existing_registry(&at("empty")).unwrap(),
            ExistingRegistry::Replaceable
        );
        std::fs::write(at("project.json"), b"{\"a\": 1}").unwrap();
        assert_eq!(
            existing_registry(&at("project.json")).unwrap(),
            ExistingRegistry::Foreign(Incompatibility::NotSqlite)
        );
        rusqlite::Connection::open(at("photos.db"))
            .unwrap()
            .execute_batch("CREATE TABLE photos (id INTEGER)")
            .unwrap();
        assert_eq!(
            existing_registry(&at("photos.db")).unwrap(),
            ExistingRegistry::Foreign(Incompatibility::Foreign)
        );
        rusqlite::Connection::open(at("other.db"))
            .unwrap()
            .execute_batch("PRAGMA application_id = 7; CREATE TABLE runs (id INTEGER)")
            .unwrap();
        assert_eq!(
            existing_registry(&at("other.db")).unwrap(),
            ExistingRegistry::Foreign(Incompatibility::Foreign)
        );

        let db = at("registry.db");
        drop(Registry::open(&db).unwrap());
        assert_eq!(
            existing_registry(&db).unwrap(),
            ExistingRegistry::Replaceable
        );
        // Half of it: the mark in the header is still there.
        let bytes = std::fs::read(&db).unwrap();
        std::fs::write(at("half.db"), &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(
            existing_registry(&at("half.db")).unwrap(),
            ExistingRegistry::Replaceable
        );
        // A registry from before the mark is known by its tables...
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("PRAGMA application_id = 0")
            .unwrap();
        assert_eq!(
            existing_registry(&db).unwrap(),
            ExistingRegistry::Replaceable
        );
        // ...and when those cannot be read, it is not guessed at.
        let mut bytes = std::fs::read(&db).unwrap();
        bytes[100..4096].fill(0xA5);
        std::fs::write(&db, bytes).unwrap();
        assert_eq!(
            existing_registry(&db).unwrap(),
            ExistingRegistry::Foreign(Incompatibility::Unrecognised)
        );
    }
}
