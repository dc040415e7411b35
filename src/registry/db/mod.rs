//! The storage seam: one connection type over SQLite and PostgreSQL.
//!
//! Every query module of the registry talks to a [`Db`], never to rusqlite
//! or the `postgres` crate directly. SQL is written once where both engines
//! run it (numbered `?N` placeholders, which the PostgreSQL side rewrites to
//! `$N`), and per dialect with [`Sql::dialects`] only where it must differ.
//! Parameters are [`Value`]s (built with [`params!`](crate::db_params)), rows
//! are read through [`Row::get`], and errors of either engine arrive as one
//! [`DbError`] whose [`DbError::kind`] is decided here, once per backend.

mod postgres;
mod sqlite;

use std::borrow::Cow;

use crate::error::{Error, Result};

pub use self::postgres::{PgDb, PgTarget};

/// Which engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A statement's text: the same for both engines, or one per dialect.
///
/// A plain `&str` converts into a portable one, so most query constants
/// stay `&'static str`.
#[derive(Debug, Clone, Copy)]
pub struct Sql<'a> {
    sqlite: &'a str,
    postgres: &'a str,
}

impl<'a> Sql<'a> {
    /// Text both engines run as written.
    pub const fn portable(text: &'a str) -> Self {
        Sql {
            sqlite: text,
            postgres: text,
        }
    }

    /// Text that must differ between the engines.
    pub const fn dialects(sqlite: &'a str, postgres: &'a str) -> Self {
        Sql { sqlite, postgres }
    }

    /// The text for `backend`.
    pub fn text(&self, backend: Backend) -> &'a str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }
}

impl<'a> From<&'a str> for Sql<'a> {
    fn from(text: &'a str) -> Self {
        Sql::portable(text)
    }
}

impl<'a> From<&'a String> for Sql<'a> {
    fn from(text: &'a String) -> Self {
        Sql::portable(text)
    }
}

impl<'a> From<&Sql<'a>> for Sql<'a> {
    fn from(sql: &Sql<'a>) -> Self {
        *sql
    }
}

/// One bound parameter. Borrowed: binding copies nothing on SQLite.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'a, str>),
}

/// What can be bound as a parameter.
pub trait ToValue {
    fn to_value(&self) -> Value<'_>;
}

impl ToValue for str {
    fn to_value(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self))
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self))
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value<'_> {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}
impl ToValue for Value<'_> {
    fn to_value(&self) -> Value<'_> {
        match self {
            Value::Text(t) => Value::Text(Cow::Borrowed(t)),
            Value::Null => Value::Null,
            Value::Int(i) => Value::Int(*i),
            Value::Real(r) => Value::Real(*r),
        }
    }
}
macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value<'_> {
                // Every integer the registry stores fits i64 (sizes, counts,
                // durations); one that does not is saturated, never wrapped.
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_to_value!(i64, i32, u8, u16, u32, u64, usize);
impl ToValue for bool {
    fn to_value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for f64 {
    fn to_value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}

/// Bound parameters for a [`Db`] call: `db_params![a, b.c, d as i64]`.
#[macro_export]
macro_rules! db_params {
    () => { &[] as &[$crate::registry::db::Value<'_>] };
    ($($p:expr),+ $(,)?) => {
        &[$($crate::registry::db::ToValue::to_value(&$p)),+] as &[$crate::registry::db::Value<'_>]
    };
}
pub use crate::db_params as params;

/// One result row, read with [`Row::get`].
pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r ::postgres::Row),
}

impl Row<'_> {
    /// Column `idx` (from 0) as `T`.
    pub fn get<T: FromColumn>(&self, idx: usize) -> Result<T> {
        match self {
            Row::Sqlite(r) => T::from_sqlite(r, idx),
            Row::Postgres(r) => T::from_postgres(r, idx),
        }
    }
}

/// A Rust type a column can be read as, on either engine.
pub trait FromColumn: Sized {
    fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self>;
    fn from_postgres(row: &::postgres::Row, idx: usize) -> Result<Self>;
}

/// The error of either engine, and the kind the tool acts on.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres::describe(.0))]
    Postgres(#[source] ::postgres::Error),
    /// A column held something its reader cannot take.
    #[error("column {column} of a registry row: {message}")]
    Column { column: usize, message: String },
    /// A query that must return a row returned none.
    #[error("the registry returned no row where one was expected")]
    NoRow,
}

impl From<::postgres::Error> for DbError {
    fn from(e: ::postgres::Error) -> Self {
        DbError::Postgres(e)
    }
}

/// What a [`DbError`] means for the user, decided once per backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// Another connection holds what this one waited for (exit 4).
    Busy,
    /// The database is damaged or not a registry (exit 3).
    Unusable,
    /// The storage under it failed: disk full, read-only, unreachable
    /// server, lost connection (exit 5).
    Io,
    /// A deadlock or serialization failure: the transaction may simply be
    /// run again.
    Retry,
    /// Anything else: a statement the registry refused (exit 3).
    Refused,
}

impl DbError {
    pub fn kind(&self) -> DbErrorKind {
        match self {
            DbError::Sqlite(e) => sqlite::kind(e),
            DbError::Postgres(e) => postgres::kind(e),
            DbError::Column { .. } | DbError::NoRow => DbErrorKind::Refused,
        }
    }

    /// A query that had to return a row returned none.
    pub fn is_no_row(&self) -> bool {
        matches!(
            self,
            DbError::NoRow | DbError::Sqlite(rusqlite::Error::QueryReturnedNoRows)
        )
    }

    /// A row the schema refused (a CHECK, UNIQUE, NOT NULL or foreign key).
    pub fn is_constraint_violation(&self) -> bool {
        match self {
            DbError::Sqlite(e) => {
                e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
            }
            // Class 23: integrity constraint violation.
            DbError::Postgres(e) => e.code().is_some_and(|c| c.code().starts_with("23")),
            _ => false,
        }
    }

    /// The disk under the registry is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            DbError::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            DbError::Postgres(e) => e.code() == Some(&::postgres::error::SqlState::DISK_FULL),
            _ => false,
        }
    }

    /// The SQLite error code, for the checks that only SQLite has.
    pub fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            DbError::Sqlite(e) => e.sqlite_error_code(),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sql(DbError::Sqlite(e))
    }
}

impl From<::postgres::Error> for Error {
    fn from(e: ::postgres::Error) -> Self {
        Error::Sql(DbError::Postgres(e))
    }
}

/// A registry connection: SQLite (a file) or PostgreSQL (a server).
pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PgDb>),
}

impl Db {
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, WAL
    /// checkpoints, `quick_check`); `None` on PostgreSQL.
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Db::Sqlite(c) => Some(c),
            Db::Postgres(_) => None,
        }
    }

    /// Run one statement; the number of rows it changed.
    pub fn execute<'s>(&self, sql: impl Into<Sql<'s>>, params: &[Value<'_>]) -> Result<usize> {
        let sql = sql.into();
        match self {
            Db::Sqlite(c) => sqlite::execute(c, sql.sqlite, params),
            Db::Postgres(c) => c.execute(sql.postgres, params),
        }
    }

    /// Run statements without parameters, separated by `;`.
    pub fn batch<'s>(&self, sql: impl Into<Sql<'s>>) -> Result<()> {
        let sql = sql.into();
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql.sqlite)?),
            Db::Postgres(c) => c.batch(sql.postgres),
        }
    }

    /// The first row's `f`, or `None` when there is no row.
    pub fn query_opt<'s, T>(
        &self,
        sql: impl Into<Sql<'s>>,
        params: &[Value<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let sql = sql.into();
        match self {
            Db::Sqlite(c) => sqlite::query_opt(c, sql.sqlite, params, f),
            Db::Postgres(c) => c.query_opt(sql.postgres, params, f),
        }
    }

    /// The first row's `f`; an error when there is no row.
    pub fn query_row<'s, T>(
        &self,
        sql: impl Into<Sql<'s>>,
        params: &[Value<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, params, f)?
            .ok_or(Error::Sql(DbError::NoRow))
    }

    /// `f` of every row, in order.
    pub fn query_map<'s, T>(
        &self,
        sql: impl Into<Sql<'s>>,
        params: &[Value<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.for_each(sql, params, |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Call `f` on every row, in order, stopping at its first error. On
    /// SQLite the rows stream; `f` must not query the same `Db` on
    /// PostgreSQL before it returns (the rows are read first there).
    pub fn for_each<'s>(
        &self,
        sql: impl Into<Sql<'s>>,
        params: &[Value<'_>],
        f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let sql = sql.into();
        match self {
            Db::Sqlite(c) => sqlite::for_each(c, sql.sqlite, params, f),
            Db::Postgres(c) => c.for_each(sql.postgres, params, f),
        }
    }

    /// Open a write transaction: `BEGIN IMMEDIATE` on SQLite (the write
    /// lock up front, so a writer waits at the start instead of failing
    /// half-way), `BEGIN` on PostgreSQL (row locks as rows are written).
    /// Ends with [`Db::commit`] or [`Db::rollback`].
    pub fn begin_write(&self) -> Result<()> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch("BEGIN IMMEDIATE")?),
            Db::Postgres(c) => c.batch("BEGIN"),
        }
    }

    pub fn commit(&self) -> Result<()> {
        self.batch("COMMIT")
    }

    /// Roll back the open transaction, if any. Errors are ignored: this
    /// runs on the way out of a failure that is the one worth reporting.
    pub fn rollback(&self) {
        match self {
            Db::Sqlite(c) => {
                if !c.is_autocommit() {
                    let _ = c.execute_batch("ROLLBACK");
                }
            }
            Db::Postgres(c) => c.rollback(),
        }
    }
}

impl ToValue for i8 {
    fn to_value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

/// Turn `?N` (and bare `?`) placeholders into PostgreSQL's `$N`, leaving
/// string literals, quoted identifiers and comments alone.
pub fn postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut next = 1;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    out.push_str(&next.to_string());
                    next += 1;
                } else {
                    next = digits.parse::<usize>().unwrap_or(0) + 1;
                    out.push_str(&digits);
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollar_numbers_outside_literals() {
        assert_eq!(
            postgres_placeholders(
                "SELECT '?1', \"a?\" FROM t WHERE a = ?1 AND b = ?12 -- ?3\n AND c = ?"
            ),
            "SELECT '?1', \"a?\" FROM t WHERE a = $1 AND b = $12 -- ?3\n AND c = $13"
        );
    }
}

fn column_error(column: usize, message: impl Into<String>) -> Error {
    Error::Sql(DbError::Column {
        column,
        message: message.into(),
    })
}

/// Nullable columns: `Option<T>` of any readable `T`.
macro_rules! from_column {
    ($($t:ty => $pg:ident),* $(,)?) => {$(
        impl FromColumn for $t {
            fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self> {
                Ok(row.get::<_, $t>(idx)?)
            }
            fn from_postgres(row: &::postgres::Row, idx: usize) -> Result<Self> {
                postgres::$pg(row, idx)?
                    .ok_or_else(|| column_error(idx, "NULL where a value was expected"))
            }
        }
        impl FromColumn for Option<$t> {
            fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self> {
                Ok(row.get::<_, Option<$t>>(idx)?)
            }
            fn from_postgres(row: &::postgres::Row, idx: usize) -> Result<Self> {
                postgres::$pg(row, idx)
            }
        }
    )*};
}

from_column! {
    String => text,
    i64 => int,
    u64 => int,
    u32 => int,
    u16 => int,
    u8 => int,
    i32 => int,
    usize => int,
    bool => boolean,
    f64 => real,
}
