//! The registry: opening it and typed queries, on SQLite or PostgreSQL.
//!
//! Every query module talks to [`db::Db`], the seam over both engines. The
//! schema lives only in `migrations/sqlite/` and `migrations/postgres/`
//! (the same versions), embedded at build time: a SQLite file is migrated
//! by refinery on open (`open.rs`: the version check and the migration
//! lock), a PostgreSQL database only by `registry migrate`
//! (`open_postgres.rs`). Every query is a named constant or function with
//! bound parameters; a write transaction is `BEGIN IMMEDIATE` on SQLite, so
//! a writer waits for the lock up front instead of failing half-way, and is
//! retried after a deadlock on PostgreSQL. Run locks on PostgreSQL are in
//! `advisory.rs`; the vocabularies both engines store, in `records.rs`.

pub mod advisory;
mod artifacts;
pub mod db;
mod executions;
pub mod export;
mod gc;
mod info;
mod lineage;
mod location;
mod open;
mod open_postgres;
mod package;
#[cfg(test)]
mod query_plans;
mod records;
mod reindex;
mod runs;
mod verification;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::ErrorCode;

pub use db::Db;
pub use info::RegistryInfo;
pub use location::Location;
pub use open_postgres::latest_version as latest_postgres_schema;
pub use records::{ExecutionStatus, RunStatus};

use crate::error::{Error, Result};

pub use artifacts::ArtifactRecord;
pub use executions::{AttemptRow, CompletedExecution, ExecutionRecord, StageRow};
pub use open::{lock_for_swap, migration_lock_path, runs_on_disk, users_lock_path};
pub use reindex::{
    APPLICATION_ID, ExistingRegistry, Inserted, RebuiltArtifact, RebuiltRun, RebuiltSummary,
    existing_registry, fold_wal_into,
};
pub use runs::{LiveCheck, NewRun, RunFilter, RunFinish, RunRow, SummaryFile};
pub use verification::{StaleEdge, Verification};

refinery::embed_migrations!("migrations/sqlite");

/// How long a command waits for another process's write lock before it
/// gives up with exit code 4.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times a write transaction runs before a deadlock or
/// serialization failure counts as contention (PostgreSQL only).
pub const TX_ATTEMPTS: u32 = 5;

pub struct Registry {
    db: Db,
    path: PathBuf,
    /// Opened without write access (a read-only file or directory): reads
    /// work, writes are not attempted.
    read_only: bool,
    /// How long a statement waits for another connection's write lock.
    busy_wait: Duration,
    /// Set while [`Registry::begin_outer`] holds a transaction open: every
    /// [`Registry::transaction`] inside it is a savepoint of it.
    outer: bool,
    /// The shared lock on `<db>.users` ([`users_lock_path`]), released
    /// only after `db` has closed: fields drop in order, and closing is
    /// when SQLite removes `-wal` and `-shm`.
    _users: Option<std::fs::File>,
}

impl Registry {
    /// The connection, for queries of the registry's own modules.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// On PostgreSQL, one round trip proving the connection (and so the
    /// run lock it holds) is still there: a lost one is exit 5, never a
    /// reconnection. A SQLite file's run lock is a lock file the process
    /// holds for as long as it lives: nothing to ask.
    pub fn check_still_connected(&self) -> Result<()> {
        match &self.db {
            Db::Sqlite(_) => Ok(()),
            Db::Postgres(_) => self.db.batch("SELECT 1").map_err(|e| self.busy_or_sql(e)),
        }
    }

    /// The registry file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the registry was opened read-only, so writes would fail.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Run `f` in one write transaction ([`Db::begin_write`]), committed
    /// if it returns Ok. `f` can also read through the registry's own
    /// queries (a [`Tx`] derefs to the registry), and they see the
    /// transaction's uncommitted rows: how a run's summary is built from,
    /// and recorded with, the rows that finish it.
    ///
    /// On PostgreSQL a deadlock or serialization failure rolls the whole
    /// transaction back, and it is simply run again (so `f` may run more
    /// than once, and must only write through the transaction); what still
    /// fails after [`TX_ATTEMPTS`] is contention, exit 4.
    pub fn transaction<T>(&mut self, mut f: impl FnMut(&Tx<'_>) -> Result<T>) -> Result<T> {
        if self.outer {
            return self.savepoint(&mut f);
        }
        let mut attempt = 1;
        loop {
            match self.transaction_once(&mut f) {
                Err(Error::Sql(e))
                    if e.kind() == db::DbErrorKind::Retry && attempt < TX_ATTEMPTS =>
                {
                    // Back off a little, longer each time, so the
                    // transactions that collided do not collide again.
                    std::thread::sleep(Duration::from_millis(5 << attempt));
                    attempt += 1;
                }
                other => return other.map_err(|e| self.busy_or_sql(e)),
            }
        }
    }

    fn transaction_once<T>(&self, f: &mut impl FnMut(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.db.begin_write()?;
        match f(&Tx { registry: self }) {
            Ok(out) => {
                if let Err(e) = self.db.commit() {
                    self.db.rollback();
                    return Err(e);
                }
                Ok(out)
            }
            Err(e) => {
                self.db.rollback();
                Err(e)
            }
        }
    }

    /// `f` as a savepoint of the outer transaction: undone alone if it
    /// fails; kept, or not, with the outer transaction.
    fn savepoint<T>(&self, f: &mut impl FnMut(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.db.batch("SAVEPOINT nested")?;
        match f(&Tx { registry: self }) {
            Ok(out) => {
                self.db.batch("RELEASE nested")?;
                Ok(out)
            }
            Err(e) => {
                let _ = self.db.batch("ROLLBACK TO nested; RELEASE nested");
                Err(e)
            }
        }
    }

    /// Open a transaction that lasts until [`Registry::end_outer`]; every
    /// [`Registry::transaction`] meanwhile is part of it. How `reindex`
    /// replaces a shared registry's contents in one commit, so that other
    /// hosts see the old index or the new one, never half of it.
    pub fn begin_outer(&mut self) -> Result<()> {
        self.db.begin_write().map_err(|e| self.busy_or_sql(e))?;
        self.outer = true;
        Ok(())
    }

    /// End the transaction [`Registry::begin_outer`] opened: commit it, or
    /// roll everything in it back.
    pub fn end_outer(&mut self, commit: bool) -> Result<()> {
        self.outer = false;
        if !commit {
            self.db.rollback();
            return Ok(());
        }
        if let Err(e) = self.db.commit() {
            self.db.rollback();
            return Err(self.busy_or_sql(e));
        }
        Ok(())
    }

    /// Run `f` in one write transaction, committed if it returns Ok.
    pub(crate) fn write<T>(&mut self, f: impl FnMut(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.transaction(f)
    }

    fn busy_or_sql(&self, e: Error) -> Error {
        busy_or_sql(e, &self.path, self.busy_wait)
    }
}

/// A write transaction in progress (see [`Registry::transaction`]). The
/// registry's writes are its methods; reads go through `Deref`.
pub struct Tx<'a> {
    registry: &'a Registry,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Registry;

    fn deref(&self) -> &Registry {
        self.registry
    }
}

/// Name lock contention for what it is, so the user gets exit 4 and a hint,
/// and who holds the lock when the OS can tell (see
/// [`open::write_lock_holder`]).
fn busy_or_sql(e: Error, path: &Path, waited: Duration) -> Error {
    let Error::Sql(e) = e else { return e };
    if let db::DbError::Postgres(_) = e {
        return postgres_error(e, path);
    }
    match e.sqlite_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            let holder = open::write_lock_holder(path).unwrap_or_else(|| {
                "another connection (an `orchestrator` process, or a `sqlite3` shell \
                 with a transaction open)"
                    .to_string()
            });
            Error::Busy {
                what: format!("the registry `{}`", path.display()),
                message: format!(
                    "{holder} has held its write lock for over {}s",
                    waited.as_secs()
                ),
            }
        }
        Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure) => {
            let db::DbError::Sqlite(e) = e else {
                unreachable!()
            };
            Error::io("writing the registry", path, open::sqlite_io_error(path, e))
        }
        _ => Error::Sql(e),
    }
}

/// A PostgreSQL error, by what it means: contention is exit 4 (never a raw
/// SQLSTATE), a lost server exit 5.
pub(super) fn postgres_error(e: db::DbError, path: &Path) -> Error {
    match e.kind() {
        db::DbErrorKind::Busy | db::DbErrorKind::Retry => Error::Busy {
            what: format!("the registry `{}`", path.display()),
            message: e.to_string(),
        },
        db::DbErrorKind::Io => Error::RegistryUnreachable {
            location: path.display().to_string(),
            message: e.to_string(),
        },
        _ => Error::Sql(e),
    }
}
