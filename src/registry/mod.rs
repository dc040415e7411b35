//! The SQLite registry: opening it (pragmas, migrations) and typed queries.
//!
//! The schema lives only in `migrations/`, embedded at build time and applied
//! by refinery on open. Every query is a named constant or function with
//! bound parameters; every write transaction is `BEGIN IMMEDIATE`, so a
//! writer waits for the lock up front instead of failing half-way.

mod artifacts;
mod executions;
mod lineage;
mod reindex;
mod runs;
mod verification;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use crate::error::{Error, Result};

pub use artifacts::ArtifactRecord;
pub use executions::{CompletedExecution, ExecutionRecord, StageRow};
pub use reindex::{Inserted, RebuiltArtifact, RebuiltRun, RebuiltSummary};
pub use runs::{LiveCheck, NewRun, RunFilter, RunFinish, RunRow};
pub use verification::{StaleEdge, Verification};

refinery::embed_migrations!("migrations");

/// How long a command waits for another process's write lock before it
/// gives up with exit code 4.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Registry {
    conn: Connection,
    path: PathBuf,
}

impl Registry {
    /// Open (creating if needed) the registry at `path` and bring its schema
    /// up to date. Used by commands that write.
    pub fn open(path: &Path) -> Result<Registry> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io("creating the registry directory", dir, e))?;
        }
        let conn = Connection::open(path).map_err(|e| unusable(path, e))?;
        Self::prepare(conn, path)
    }

    /// Open an existing registry; a missing file is a usage error with a hint
    /// rather than a new empty database. Used by commands that only read.
    pub fn open_existing(path: &Path) -> Result<Registry> {
        if !path.exists() {
            return Err(Error::usage_with_hint(
                format!("no registry at `{}`", path.display()),
                "run `orchestrator run --project <config>` first, or pass `--db <file>`",
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| unusable(path, e))?;
        Self::prepare(conn, path)
    }

    fn prepare(mut conn: Connection, path: &Path) -> Result<Registry> {
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| unusable(path, e))?;
        // WAL lets readers (`runs list`, `sqlite3`) proceed while a run
        // writes; FULL sync because the registry is what resume trusts.
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             PRAGMA synchronous = FULL;",
        )
        .map_err(|e| unusable(path, e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| unusable(path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::RegistryUnusable {
                path: path.to_path_buf(),
                message: format!("cannot switch to WAL journaling (got `{mode}`)"),
                source: None,
            });
        }
        // Two processes opening a brand-new registry at once can race to
        // apply the same migration; the loser sees "already exists". The
        // retry re-reads the applied set and finds nothing left to do.
        let mut tries = 0;
        loop {
            match migrations::runner().run(&mut conn) {
                Ok(_) => break,
                Err(e)
                    if tries < 2 && matches!(e.kind(), refinery::error::Kind::Connection(..)) =>
                {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(migration_error(path, e)),
            }
        }
        Ok(Registry {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Read-only access for ad-hoc queries (lineage, listings).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Run `f` in one `BEGIN IMMEDIATE` transaction, committed if it returns Ok.
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(busy_or_sql)?;
        let out = f(&tx)?;
        tx.commit().map_err(busy_or_sql)?;
        Ok(out)
    }
}

/// Name lock contention for what it is, so the user gets exit 4 and a hint.
fn busy_or_sql(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Busy {
            what: "the registry".to_string(),
            message: format!(
                "another process held its write lock for over {}s",
                BUSY_TIMEOUT.as_secs()
            ),
        },
        _ => Error::Sql(e),
    }
}

fn unusable(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => busy_or_sql(e),
        Some(ErrorCode::CannotOpen) => Error::io(
            "opening the registry",
            path,
            std::io::Error::other(e.to_string()),
        ),
        _ => Error::RegistryUnusable {
            path: path.to_path_buf(),
            message: e.to_string(),
            source: None,
        },
    }
}

fn migration_error(path: &Path, e: refinery::Error) -> Error {
    let message = match e.kind() {
        refinery::error::Kind::MissingVersion(m) => format!(
            "it was written by a newer orchestrator (it has migration {m}, which this version does not know)"
        ),
        refinery::error::Kind::DivergentVersion(m, _) => {
            format!("its migration {m} differs from this version's")
        }
        refinery::error::Kind::Connection(_, source) => {
            let busy = source
                .downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code)
                .is_some_and(|c| matches!(c, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked));
            if busy {
                return Error::Busy {
                    what: "the registry".to_string(),
                    message: "another process is migrating it".to_string(),
                };
            }
            format!("migrating its schema failed: {source}")
        }
        _ => format!("migrating its schema failed: {e}"),
    };
    Error::RegistryUnusable {
        path: path.to_path_buf(),
        message,
        source: None,
    }
}
