//! PostgreSQL advisory locks: the run lock, the registry-wide lock and the
//! migration lock of a shared registry.
//!
//! A SQLite registry's locks are files beside the artifacts (`src/lock.rs`);
//! file locks cannot be trusted across hosts on a network filesystem, so
//! when the registry moves into PostgreSQL its locks move with it. They
//! are session-level advisory locks, held on the connection that does the
//! run's writes: the server frees them the moment that connection ends,
//! whether its process exited, was killed, or its host vanished (then when
//! the TCP keepalives give up, within about a minute). A run whose
//! connection is lost has lost its lock and stops; it never reconnects.
//!
//! Keys: the migration and registry-wide locks use the two-key form
//! `(ORCH, n)`; a run's lock the one-key form, a bigint hashed from its
//! project and run ids. `pg_locks` tells them apart by `objsubid` (2 and
//! 1), and liveness (`running` vs `interrupted`) is read from it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::db::Db;
use crate::error::{Error, Result};
use crate::lock::{Holder, Wait};

/// Record on `db` that it now holds an advisory lock (see `PgDb`'s `Drop`).
fn taken(db: &Db) {
    if let Db::Postgres(pg) = db {
        pg.note_lock_taken();
    }
}

/// "ORCH" in ASCII, the first key of the tool's two-key locks (the same
/// mark as a SQLite registry's application id).
const ORCH: i32 = 0x4F52_4348;
const MIGRATION: i32 = 1;
const REGISTRY: i32 = 2;

/// How often a waiter retries a lock.
const POLL: Duration = Duration::from_millis(100);

/// The key of a run's lock.
pub fn run_key(project_id: &str, run_id: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(b"orchestrator run lock\0");
    h.update(project_id.as_bytes());
    h.update(b"\0");
    h.update(run_id.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Wait (within the connection's `lock_timeout`) for the migration lock.
pub(super) fn lock_migration(db: &Db) -> Result<()> {
    db.query_row(
        "SELECT pg_advisory_lock(CAST(?1 AS INTEGER), CAST(?2 AS INTEGER))",
        crate::db_params![ORCH, MIGRATION],
        |_| Ok(()),
    )?;
    taken(db);
    Ok(())
}

pub(super) fn unlock_migration(db: &Db) {
    let _ = db.query_row(
        "SELECT pg_advisory_unlock(CAST(?1 AS INTEGER), CAST(?2 AS INTEGER))",
        crate::db_params![ORCH, MIGRATION],
        |_| Ok(()),
    );
}

/// Take the registry-wide lock, shared (every run holds it so) or
/// exclusive (`reindex` and `gc`, which must not overlap a run), waiting
/// up to `wait`.
pub fn lock_registry(db: &Db, exclusive: bool, wait: Duration, what: &str) -> Result<()> {
    let sql = if exclusive {
        "SELECT pg_try_advisory_lock(CAST(?1 AS INTEGER), CAST(?2 AS INTEGER))"
    } else {
        "SELECT pg_try_advisory_lock_shared(CAST(?1 AS INTEGER), CAST(?2 AS INTEGER))"
    };
    let deadline = Instant::now().checked_add(wait);
    loop {
        if db.query_row(sql, crate::db_params![ORCH, REGISTRY], |r| r.get::<bool>(0))? {
            taken(db);
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let holders = registry_lock_holders(db)?;
            return Err(Error::Busy {
                what: "the registry".into(),
                message: format!(
                    "{what} waited {}s for {}",
                    wait.as_secs(),
                    if holders.is_empty() {
                        "another process".to_string()
                    } else {
                        holders.join(", ")
                    }
                ),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Who holds the registry-wide lock (their `application_name`s).
///
/// `pg_locks` shows keys as `oid`s; they are compared as `bigint` here and
/// in [`run_holder`], since a parameter the server types as `oid` cannot be
/// bound from an integer (a waiter failed with exit 5 instead of naming
/// the holder).
fn registry_lock_holders(db: &Db) -> Result<Vec<String>> {
    db.query_map(
        "SELECT coalesce(a.application_name, 'pid ' || CAST(l.pid AS TEXT))
         FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
           AND CAST(l.classid AS BIGINT) = ?1 AND CAST(l.objid AS BIGINT) = ?2
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.pid <> pg_backend_pid()",
        crate::db_params![ORCH, REGISTRY],
        |r| r.get::<String>(0),
    )
}

/// Take a run's lock on this connection, polling until `wait.timeout`
/// (at once with `--no-wait`), telling `wait.on_wait` once whom it waits
/// for.
pub fn lock_run(db: &Db, project_id: &str, run_id: &str, wait: Wait) -> Result<()> {
    let key = run_key(project_id, run_id);
    let run = format!("{project_id}/{run_id}");
    let deadline = Instant::now().checked_add(wait.timeout);
    let mut announced = wait.on_wait.is_none();
    loop {
        let got = db.query_row(
            "SELECT pg_try_advisory_lock(?1)",
            crate::db_params![key],
            |r| r.get::<bool>(0),
        )?;
        if got {
            taken(db);
            return Ok(());
        }
        let holder = run_holder(db, key, &run)?;
        if deadline.is_none_or(|d| Instant::now() < d) {
            if !announced {
                if let Some(f) = wait.on_wait {
                    f(&holder);
                }
                announced = true;
            }
            std::thread::sleep(POLL);
            continue;
        }
        let waited = if wait.timeout.is_zero() {
            String::new()
        } else {
            let secs = wait.timeout.as_secs_f64().ceil() as u64;
            format!("; still held after waiting {secs}s")
        };
        return Err(Error::Busy {
            what: format!("run {run}"),
            message: format!("held by {}{waited}", holder.describe()),
        });
    }
}

/// Take a run's lock on this connection if nobody holds it, without
/// waiting: `verify` holding a run idle for a moment.
pub fn try_lock_run(db: &Db, project_id: &str, run_id: &str) -> Result<bool> {
    let got = db.query_row(
        "SELECT pg_try_advisory_lock(?1)",
        crate::db_params![run_key(project_id, run_id)],
        |r| r.get::<bool>(0),
    )?;
    if got {
        taken(db);
    }
    Ok(got)
}

/// Release a run's lock held by this connection.
pub fn unlock_run(db: &Db, project_id: &str, run_id: &str) {
    let _ = db.query_row(
        "SELECT pg_advisory_unlock(?1)",
        crate::db_params![run_key(project_id, run_id)],
        |_| Ok(()),
    );
}

/// `classid`/`objid` of a one-key advisory lock, as `pg_locks` shows it
/// (each an `oid`, which the queries compare as `bigint`: an integer
/// parameter cannot be bound as an `oid`).
fn key_parts(key: i64) -> (i64, i64) {
    let k = key as u64;
    ((k >> 32) as i64, (k & 0xFFFF_FFFF) as i64)
}

/// Who holds a run's lock, from `pg_stat_activity` (the holder set its
/// `application_name` to name its host and pid).
fn run_holder(db: &Db, key: i64, run: &str) -> Result<Holder> {
    let (hi, lo) = key_parts(key);
    let found = db.query_opt(
        "SELECT a.application_name, CAST(l.pid AS BIGINT),
                to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
         FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
           AND CAST(l.classid AS BIGINT) = ?1 AND CAST(l.objid AS BIGINT) = ?2
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        crate::db_params![hi, lo],
        |r| {
            Ok((
                r.get::<Option<String>>(0)?,
                r.get::<i64>(1)?,
                r.get::<Option<String>>(2)?,
            ))
        },
    )?;
    let Some((app, server_pid, since)) = found else {
        return Ok(Holder {
            run: run.to_string(),
            pid: None,
            host: None,
            since: None,
        });
    };
    let field = |name: &str| {
        app.as_deref().and_then(|a| {
            a.split_whitespace()
                .find_map(|w| w.strip_prefix(name).map(str::to_string))
        })
    };
    Ok(Holder {
        run: run.to_string(),
        pid: field("pid=").and_then(|p| p.parse().ok()),
        host: field("host=").or_else(|| Some(format!("server pid {server_pid}"))),
        since,
    })
}

/// The keys of every run lock held right now: one query, so a listing of
/// many runs checks each against a set.
pub fn held_run_keys(db: &Db) -> Result<HashSet<i64>> {
    let rows = db.query_map(
        "SELECT CAST(l.classid AS BIGINT), CAST(l.objid AS BIGINT)
         FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        &[],
        |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
    )?;
    Ok(rows
        .into_iter()
        .map(|(hi, lo)| (((hi as u64) << 32) | (lo as u64 & 0xFFFF_FFFF)) as i64)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_key_splits_into_the_parts_pg_locks_shows() {
        let key = run_key("p", "r");
        let (hi, lo) = key_parts(key);
        assert_eq!((((hi as u64) << 32) | lo as u64) as i64, key);
        assert_ne!(run_key("p", "r"), run_key("p\0r", ""));
    }
}
