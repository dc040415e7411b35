//! The SQLite side of [`Db`](super::Db): statements are prepared once per
//! connection (`prepare_cached`) and parameters bound without copying.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, params_from_iter};

use super::{DbErrorKind, Row, Value};
use crate::error::Result;

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
        }))
    }
}

pub(super) fn execute(conn: &Connection, sql: &str, params: &[Value<'_>]) -> Result<usize> {
    Ok(conn
        .prepare_cached(sql)?
        .execute(params_from_iter(params.iter()))?)
}

pub(super) fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: &[Value<'_>],
    f: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    match rows.next()? {
        Some(r) => Ok(Some(f(&Row::Sqlite(r))?)),
        None => Ok(None),
    }
}

pub(super) fn for_each(
    conn: &Connection,
    sql: &str,
    params: &[Value<'_>],
    mut f: impl FnMut(&Row<'_>) -> Result<()>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        f(&Row::Sqlite(r))?;
    }
    Ok(())
}

/// SQLite reports lock contention and corruption through the same error
/// type as a bad query; tell them apart so each gets its documented code.
pub(super) fn kind(e: &rusqlite::Error) -> DbErrorKind {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => DbErrorKind::Busy,
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => DbErrorKind::Unusable,
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure,
        ) => DbErrorKind::Io,
        _ => DbErrorKind::Refused,
    }
}
