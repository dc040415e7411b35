//! Opening a PostgreSQL registry, and `registry migrate` for it.
//!
//! Unlike a SQLite file, a shared database is never migrated as a side
//! effect of some command: many hosts and versions may use it at once, so
//! `orchestrator registry migrate` does it, explicitly, while holding an
//! advisory lock that makes concurrent migrators take turns. Every other
//! command reads the migration history with plain `SELECT`s and refuses,
//! with exit 3 and untouched, a database that is empty, behind this build,
//! ahead of it or different from it.

use std::time::Duration;

use super::advisory;
use super::db::{Db, PgTarget};
use super::{BUSY_TIMEOUT, Registry};
use crate::error::{Error, Incompatibility, Result};

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// One migration as the database's history records it.
#[derive(Debug)]
struct Applied {
    version: i64,
    name: String,
    checksum: String,
}

const HAS_HISTORY: &str = "SELECT to_regclass('refinery_schema_history') IS NOT NULL";
const HAS_TABLES: &str = "
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema())";
const HISTORY: &str = "
    SELECT CAST(version AS BIGINT), CAST(name AS TEXT), CAST(checksum AS TEXT)
    FROM refinery_schema_history ORDER BY version";

/// The database's schema, against this build's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PgSchema {
    Current,
    /// Empty, or behind this build: `registry migrate` brings it up.
    Behind {
        applied: Option<i64>,
    },
}

/// This build's PostgreSQL migrations: (version, name, checksum).
fn known() -> Vec<(i64, String, String)> {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| {
            (
                i64::from(m.version()),
                m.name().to_string(),
                m.checksum().to_string(),
            )
        })
        .collect()
}

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    known().iter().map(|m| m.0).max().unwrap_or(0)
}

/// Read the history (only `SELECT`s) and compare it with this build's.
fn judge(db: &Db, target: &PgTarget) -> Result<PgSchema> {
    let incompatible = |problem| Error::RegistryIncompatible {
        path: target.to_string().into(),
        problem,
    };
    if !db.query_row(HAS_HISTORY, &[], |r| r.get::<bool>(0))? {
        if db.query_row(HAS_TABLES, &[], |r| r.get::<bool>(0))? {
            return Err(incompatible(Incompatibility::Foreign));
        }
        return Ok(PgSchema::Behind { applied: None });
    }
    let applied = db.query_map(HISTORY, &[], |r| {
        Ok(Applied {
            version: r.get(0)?,
            name: r.get::<Option<String>>(1)?.unwrap_or_default(),
            checksum: r.get::<Option<String>>(2)?.unwrap_or_default(),
        })
    })?;
    let known = known();
    for a in &applied {
        let Some(m) = known.iter().find(|m| m.0 == a.version) else {
            return Err(incompatible(Incompatibility::Newer {
                version: a.version,
                name: a.name.clone(),
            }));
        };
        if m.1 != a.name || m.2 != a.checksum {
            return Err(incompatible(Incompatibility::Divergent {
                version: a.version,
                name: a.name.clone(),
            }));
        }
    }
    Ok(if applied.len() == known.len() {
        PgSchema::Current
    } else {
        PgSchema::Behind {
            applied: applied.iter().map(|a| a.version).max(),
        }
    })
}

/// `application_name` for this process: what another host waiting for a
/// lock this process holds prints as the holder.
pub fn application_name() -> String {
    application_name_for(&crate::artifact::meta::host_name(), std::process::id())
}

/// PostgreSQL keeps the first 63 bytes of an `application_name`.
const APPLICATION_NAME_MAX: usize = 63;

/// `orchestrator host=H pid=P`, within [`APPLICATION_NAME_MAX`]: a long
/// host name is shortened, never the pid. Cut at the end instead, a
/// render farm's fully qualified name lost the pid, or kept only its first
/// digits, and waiters named the wrong process.
fn application_name_for(host: &str, pid: u32) -> String {
    const HEAD: &str = "orchestrator host=";
    let tail = format!(" pid={pid}");
    let mut end = host
        .len()
        .min(APPLICATION_NAME_MAX.saturating_sub(HEAD.len() + tail.len()));
    while !host.is_char_boundary(end) {
        end -= 1;
    }
    format!("{HEAD}{}{tail}", &host[..end])
}

impl Registry {
    /// Open a PostgreSQL registry whose schema is current. An empty or
    /// older one is refused (exit 3) pointing at `registry migrate`; a
    /// newer or different one is refused untouched. `wait` bounds every
    /// lock wait of this connection (`lock_timeout`).
    pub fn open_postgres(target: &PgTarget, wait: Duration) -> Result<Registry> {
        let db = Db::Postgres(Box::new(target.connect(&application_name())?));
        set_lock_timeout(&db, wait)?;
        match judge(&db, target)? {
            PgSchema::Current => {}
            PgSchema::Behind { applied } => {
                return Err(Error::RegistryIncompatible {
                    path: target.to_string().into(),
                    problem: Incompatibility::NeedsMigration {
                        applied,
                        wanted: latest_version(),
                    },
                });
            }
        }
        Ok(Registry {
            db,
            path: target.to_string().into(),
            read_only: false,
            busy_wait: wait,
            outer: false,
            _users: None,
        })
    }

    /// `registry migrate` on PostgreSQL: bring the schema up to this
    /// build's, under the migration advisory lock (concurrent migrators
    /// wait their turn, then find the work done). A newer or different
    /// schema is refused untouched. Returns the versions before and after.
    pub fn migrate_postgres(target: &PgTarget) -> Result<(Option<i64>, i64)> {
        let db = Db::Postgres(Box::new(target.connect(&application_name())?));
        // Migrating a big registry can take a while; the lock wait is
        // bounded like any other.
        set_lock_timeout(&db, BUSY_TIMEOUT)?;
        let busy = |e: Error| match e {
            Error::Sql(e) => super::postgres_error(e, target.to_string().as_ref()),
            e => e,
        };
        advisory::lock_migration(&db).map_err(busy)?;
        let result = (|| {
            let before = match judge(&db, target)? {
                PgSchema::Current => return Ok((Some(latest_version()), latest_version())),
                PgSchema::Behind { applied } => applied,
            };
            let Db::Postgres(pg) = &db else {
                unreachable!("connected to PostgreSQL above")
            };
            // Grouped: every pending migration and its history row commit
            // in one transaction, so a crash leaves the schema as it was.
            pg.with_client(|client| {
                embedded::migrations::runner()
                    .set_grouped(true)
                    .run(client)
                    .map(|_| ())
            })
            .map_err(|e| Error::RegistryUnusable {
                path: target.to_string().into(),
                message: format!("migrating failed: {e}"),
                source: None,
            })?;
            Ok((before, latest_version()))
        })();
        advisory::unlock_migration(&db);
        result
    }
}

/// Every row of a shared registry, children first (foreign keys), in the
/// order a rebuild empties them. `DELETE`, not `TRUNCATE`: other hosts
/// keep reading the old rows until the rebuild commits, where `TRUNCATE`
/// would lock them out of every table meanwhile.
const CLEAR: &str = "
    DELETE FROM artifact_verifications;
    DELETE FROM artifact_edges;
    DELETE FROM stage_executions;
    DELETE FROM run_summaries;
    DELETE FROM artifacts;
    DELETE FROM runs;
    DELETE FROM projects;
    DELETE FROM run_counts;";

impl Registry {
    /// Delete every row, for `reindex` to fill the registry again inside
    /// the same transaction ([`Registry::begin_outer`]). PostgreSQL only: a
    /// SQLite registry is rebuilt as a new file and swapped in.
    pub fn clear_for_rebuild(&self) -> Result<()> {
        match self.db() {
            Db::Postgres(_) => self.db().batch(CLEAR),
            Db::Sqlite(_) => Err(Error::Inconsistent(
                "a SQLite registry is rebuilt as a new file, never emptied in place".into(),
            )),
        }
    }
}

/// Every wait on a row or advisory lock of this connection gives up after
/// `wait` with SQLSTATE 55P03, which the tool reports as busy (exit 4).
fn set_lock_timeout(db: &Db, wait: Duration) -> Result<()> {
    let ms = wait.as_millis().clamp(1, i32::MAX as u128);
    db.batch(format!("SET lock_timeout = {ms}").as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_host_name_is_shortened_so_the_pid_survives_whole() {
        let host = "render-node-0042.farm.studio.example.com";
        let name = application_name_for(host, 4_194_304);
        assert!(name.len() <= APPLICATION_NAME_MAX, "{name}");
        assert!(name.ends_with(" pid=4194304"), "{name}");
        let shown = name
            .strip_prefix("orchestrator host=")
            .and_then(|n| n.strip_suffix(" pid=4194304"))
            .unwrap();
        assert!(!shown.is_empty() && host.starts_with(shown), "{name}");
        // A short one is kept whole; a multi-byte one is cut between
        // characters.
        assert_eq!(
            application_name_for("ws1", 7),
            "orchestrator host=ws1 pid=7"
        );
        let wide = application_name_for(&"é".repeat(40), 4_194_304);
        assert!(wide.len() <= APPLICATION_NAME_MAX && wide.ends_with(" pid=4194304"));
    }
}

#[cfg(test)]
mod transaction_tests {
    use std::cell::Cell;

    use super::*;
    use crate::error::exit;

    /// A migrated registry in a database of its own on the server `make
    /// test` provides (`ORCHESTRATOR_TEST_PG`), or `None` (one line) where
    /// there is none.
    fn registry(name: &str) -> Option<(Registry, PgTarget)> {
        let Some(admin) = std::env::var("ORCHESTRATOR_TEST_PG")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("postgres test skipped: ORCHESTRATOR_TEST_PG is not set");
            return None;
        };
        let db_name = format!("unit_{name}_{}", std::process::id());
        let admin_target = PgTarget::parse(&admin).unwrap();
        let admin_db = Db::Postgres(Box::new(admin_target.connect("unit test").unwrap()));
        // One statement per call: a multi-statement batch is a transaction,
        // which neither may run in.
        for sql in [
            format!("DROP DATABASE IF EXISTS {db_name}"),
            format!("CREATE DATABASE {db_name}"),
        ] {
            admin_db.batch(sql.as_str()).unwrap();
        }
        let (base, _) = admin.rsplit_once('/').unwrap();
        let target = PgTarget::parse(&format!("{base}/{db_name}")).unwrap();
        Registry::migrate_postgres(&target).unwrap();
        Some((
            Registry::open_postgres(&target, BUSY_TIMEOUT).unwrap(),
            target,
        ))
    }

    const DEADLOCK: &str =
        "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$";

    #[test]
    fn a_deadlocked_transaction_is_run_again_and_one_that_keeps_failing_is_busy() {
        let Some((mut registry, _target)) = registry("deadlock_retry") else {
            return;
        };
        // Fails twice as PostgreSQL fails a deadlock's victim, then commits.
        let attempts = Cell::new(0);
        registry
            .transaction(|tx| {
                attempts.set(attempts.get() + 1);
                tx.db().execute(
                    "INSERT INTO projects (project_id, title, first_run_at, last_run_at) \
                     VALUES (?1, 't', 'a', 'a')",
                    crate::db_params![format!("p{}", attempts.get())],
                )?;
                if attempts.get() < 3 {
                    tx.db().batch(DEADLOCK)?;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(attempts.get(), 3);
        // Only the committed attempt's row is there: the others rolled back.
        let projects: Vec<String> = registry
            .db()
            .query_map(
                "SELECT project_id FROM projects ORDER BY project_id",
                &[],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(projects, ["p3"]);

        // A deadlock every time is contention: exit 4, never a SQLSTATE.
        attempts.set(0);
        let err = registry
            .transaction(|tx| {
                attempts.set(attempts.get() + 1);
                tx.db().batch(DEADLOCK)
            })
            .unwrap_err();
        assert_eq!(attempts.get(), super::super::TX_ATTEMPTS);
        assert_eq!(err.exit_code(), exit::BUSY, "{err}");
        assert!(!err.to_string().contains("40P01"), "{err}");
    }
}
