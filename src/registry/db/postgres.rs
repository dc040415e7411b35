//! The PostgreSQL side of [`Db`](super::Db): a synchronous `postgres`
//! client (its small internal runtime stays inside the crate; the rest of
//! the tool has no async code), statements prepared once per connection,
//! and the URL a user gives turned into a connection whose password never
//! reaches output.
//!
//! The client methods take `&mut self`; the registry reads through `&Db`
//! inside its own transactions, so the client sits in a `RefCell`, borrowed
//! for one statement at a time (rows are read before any callback runs).

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::path::PathBuf;
use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use ::postgres::{Client, Config, NoTls, Statement};
use bytes::BytesMut;

use super::{DbErrorKind, Row, Value, column_error, postgres_placeholders};
use crate::error::{Error, Result};

/// A PostgreSQL registry named by a URL (`postgresql://…`, `postgres://…`),
/// parsed, with the password kept out of every way of printing it.
#[derive(Clone)]
pub struct PgTarget {
    config: Config,
    /// `postgresql://user@host:port/dbname`: never the password.
    shown: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgTarget({})", self.shown)
    }
}

impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// How long a connection attempt may take before the server counts as
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A host cut off from the network must lose its locks within about a
/// minute, and notice it has lost them: TCP keepalives probe an idle
/// connection after 15 s, every 5 s, 4 times; unacknowledged data gives up
/// after 40 s. The server side frees a session's advisory locks when the
/// connection ends.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 4;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(40);

/// [`KEEPALIVE_IDLE`] and the rest, for the server's end of the
/// connection (each session may set its own).
///
/// Also `jit = off`: the tool's queries are index lookups that finish in
/// well under a millisecond, but a few (a lineage walk from an artifact
/// thousands of runs share, `registry info`'s counts) are estimated above
/// `jit_above_cost`, and compiling them would cost more than running them.
const SESSION_SETTINGS: &str = "SET tcp_keepalives_idle = 15; SET tcp_keepalives_interval = 5; \
     SET tcp_keepalives_count = 4; SET tcp_user_timeout = 40000; SET jit = off";

impl PgTarget {
    /// Whether `--db` names a PostgreSQL server rather than a file.
    pub fn is_url(db: &str) -> bool {
        db.starts_with("postgresql://") || db.starts_with("postgres://")
    }

    /// Parse a URL; the environment (`PGUSER`, `PGPASSWORD`, `PGHOST`,
    /// `PGPORT`, `PGDATABASE`, `~/.pgpass` or `PGPASSFILE`) fills in what
    /// the URL leaves out, as libpq does.
    pub fn parse(url: &str) -> Result<PgTarget> {
        let redacted = redact_url(url);
        let mut config: Config = url.parse().map_err(|e: ::postgres::Error| {
            Error::usage_with_hint(
                format!("`--db {redacted}` is not a PostgreSQL URL this tool can use: {e}"),
                "write it as postgresql://USER@HOST:PORT/DBNAME (a password belongs in \
                 PGPASSWORD or ~/.pgpass, not on the command line)",
            )
        })?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if config.get_hosts().is_empty() {
            match env("PGHOST") {
                Some(h) if h.starts_with('/') => config.host_path(h),
                Some(h) => config.host(&h),
                None if std::path::Path::new("/var/run/postgresql").is_dir() => {
                    config.host_path("/var/run/postgresql")
                }
                None => config.host("localhost"),
            };
        }
        if config.get_ports().is_empty()
            && let Some(p) = env("PGPORT").and_then(|p| p.parse().ok())
        {
            config.port(p);
        }
        if config.get_user().is_none() {
            let user = env("PGUSER")
                .or_else(os_user)
                .unwrap_or_else(|| "postgres".into());
            config.user(&user);
        }
        if config.get_dbname().is_none() {
            let db = env("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap_or("").into());
            config.dbname(&db);
        }
        if config.get_password().is_none()
            && let Some(p) = env("PGPASSWORD").or_else(|| pgpass_lookup(&config))
        {
            config.password(p);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES)
            .tcp_user_timeout(TCP_USER_TIMEOUT);
        let shown = shown(&config);
        Ok(PgTarget { config, shown })
    }

    /// Connect, naming this process in `application_name` (what another
    /// host's waiting message prints as the lock holder).
    pub fn connect(&self, application_name: &str) -> Result<PgDb> {
        let mut config = self.config.clone();
        config.application_name(&combined_application_name(
            self.config.get_application_name(),
            application_name,
        ));
        let mut client = config.connect(NoTls).map_err(|e| self.unreachable(e))?;
        // The same probing on the server's side of the connection: it is
        // the server that frees a vanished host's locks, and only once its
        // backend sees the connection is dead. (Ignored over a Unix socket.)
        client
            .batch_execute(SESSION_SETTINGS)
            .map_err(|e| self.unreachable(e))?;
        Ok(PgDb {
            client: RefCell::new(client),
            holds_locks: std::cell::Cell::new(false),
            statements: RefCell::new(HashMap::new()),
            target: self.clone(),
        })
    }

    fn unreachable(&self, e: ::postgres::Error) -> Error {
        Error::RegistryUnreachable {
            location: self.shown.clone(),
            message: describe(&e),
        }
    }
}

/// A live connection to a PostgreSQL registry.
pub struct PgDb {
    client: RefCell<Client>,
    /// Set once this connection has taken an advisory lock; see `Drop`.
    holds_locks: std::cell::Cell<bool>,
    /// Prepared statements by their text as the caller wrote it.
    statements: RefCell<HashMap<String, Statement>>,
    target: PgTarget,
}

impl PgDb {
    /// The server this is connected to, password redacted.
    pub fn target(&self) -> &PgTarget {
        &self.target
    }

    /// Note that this connection holds an advisory lock (a run's, the
    /// registry-wide one), to be let go of explicitly when it closes.
    pub fn note_lock_taken(&self) {
        self.holds_locks.set(true);
    }

    /// The client itself, for what needs it whole (refinery's runner).
    pub fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> T) -> T {
        f(&mut self.client.borrow_mut())
    }

    /// Whether the connection to the server is gone (a run that has lost
    /// it has lost its lock, and must stop).
    pub fn is_closed(&self) -> bool {
        self.client.borrow().is_closed()
    }

    fn statement(&self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let stmt = self
            .client
            .borrow_mut()
            .prepare(&postgres_placeholders(sql))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }

    pub(super) fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<usize> {
        let stmt = self.statement(sql)?;
        let params = bind(params);
        let n = self.client.borrow_mut().execute(&stmt, &params)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(super) fn batch(&self, sql: &str) -> Result<()> {
        Ok(self.client.borrow_mut().batch_execute(sql)?)
    }

    fn rows(&self, sql: &str, params: &[Value<'_>]) -> Result<Vec<::postgres::Row>> {
        let stmt = self.statement(sql)?;
        let params = bind(params);
        Ok(self.client.borrow_mut().query(&stmt, &params)?)
    }

    pub(super) fn query_opt<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        match self.rows(sql, params)?.first() {
            Some(r) => Ok(Some(f(&Row::Postgres(r))?)),
            None => Ok(None),
        }
    }

    pub(super) fn for_each(
        &self,
        sql: &str,
        params: &[Value<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        for r in &self.rows(sql, params)? {
            f(&Row::Postgres(r))?;
        }
        Ok(())
    }

    pub(super) fn rollback(&self) {
        if let Ok(mut c) = self.client.try_borrow_mut() {
            let _ = c.batch_execute("ROLLBACK");
        }
    }
}

impl Drop for PgDb {
    /// Let go of every advisory lock before the connection closes. The
    /// server would free them anyway, but only once its backend has seen
    /// the connection end, which can be a moment after this process has
    /// exited: a `verify` started right after a run would still see that
    /// run as live (and skip it). Unlocking is a round trip the server
    /// answers only once the locks are gone.
    fn drop(&mut self) {
        if self.holds_locks.get()
            && let Ok(mut client) = self.client.try_borrow_mut()
            && !client.is_closed()
        {
            let _ = client.batch_execute("SELECT pg_advisory_unlock_all()");
        }
    }
}

fn bind<'v>(params: &'v [Value<'_>]) -> Vec<&'v (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl ToSql for Value<'_> {
    /// Converted to the type the server inferred for the parameter, so
    /// one `Value::Int` binds to `bigint`, `integer` or `boolean` alike.
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                // `CAST(?1 AS OID)`: the halves of an advisory lock's key
                // as `pg_locks` shows them (registry::advisory).
                Type::OID => u32::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound as {ty}").into()),
            },
            Value::Real(r) => match *ty {
                Type::FLOAT8 => r.to_sql(ty, out),
                Type::FLOAT4 => (*r as f32).to_sql(ty, out),
                _ => Err(format!("a real cannot be bound as {ty}").into()),
            },
            Value::Text(t) => match *ty {
                Type::JSON => t.as_ref().as_bytes().to_sql(&Type::BYTEA, out),
                Type::JSONB => {
                    out.extend_from_slice(&[1]);
                    t.as_ref().as_bytes().to_sql(&Type::BYTEA, out)
                }
                _ => t.as_ref().to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

pub(super) fn int<T: TryFrom<i64>>(row: &::postgres::Row, idx: usize) -> Result<Option<T>> {
    let ty = column_type(row, idx)?;
    let value: Option<i64> = match ty {
        Type::INT8 => row.try_get(idx)?,
        Type::INT4 => row.try_get::<_, Option<i32>>(idx)?.map(i64::from),
        Type::INT2 => row.try_get::<_, Option<i16>>(idx)?.map(i64::from),
        Type::BOOL => row.try_get::<_, Option<bool>>(idx)?.map(i64::from),
        ty => {
            return Err(column_error(
                idx,
                format!("{ty} where an integer was expected"),
            ));
        }
    };
    value
        .map(|v| T::try_from(v).map_err(|_| column_error(idx, format!("{v} is out of range"))))
        .transpose()
}

pub(super) fn boolean(row: &::postgres::Row, idx: usize) -> Result<Option<bool>> {
    Ok(int::<i64>(row, idx)?.map(|v| v != 0))
}

pub(super) fn real(row: &::postgres::Row, idx: usize) -> Result<Option<f64>> {
    match column_type(row, idx)? {
        Type::FLOAT8 => Ok(row.try_get(idx)?),
        Type::FLOAT4 => Ok(row.try_get::<_, Option<f32>>(idx)?.map(f64::from)),
        _ => Ok(int::<i64>(row, idx)?.map(|v| v as f64)),
    }
}

pub(super) fn text(row: &::postgres::Row, idx: usize) -> Result<Option<String>> {
    column_type(row, idx)?;
    Ok(row.try_get(idx)?)
}

fn column_type(row: &::postgres::Row, idx: usize) -> Result<Type> {
    row.columns()
        .get(idx)
        .map(|c| c.type_().clone())
        .ok_or_else(|| column_error(idx, "no such column"))
}

/// What a PostgreSQL error means for the user.
pub(super) fn kind(e: &::postgres::Error) -> DbErrorKind {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection failed or was lost.
        return DbErrorKind::Io;
    };
    match code {
        c if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE => {
            DbErrorKind::Retry
        }
        c if *c == SqlState::LOCK_NOT_AVAILABLE || *c == SqlState::QUERY_CANCELED => {
            DbErrorKind::Busy
        }
        c if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED => {
            DbErrorKind::Unusable
        }
        c if c.code().starts_with("08") // connection exception
            || c.code().starts_with("53") // insufficient resources (disk full)
            || c.code().starts_with("57") // operator intervention (shutdown)
            || c.code().starts_with("58") =>
        {
            DbErrorKind::Io
        }
        _ => DbErrorKind::Refused,
    }
}

/// One line for a PostgreSQL error: the server's message (and detail) for
/// an error it reported, the client's otherwise. Never a password: neither
/// the server nor the client puts one in an error.
pub(super) fn describe(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            let mut s = e.to_string();
            let mut source = e.source();
            while let Some(inner) = source {
                s = format!("{s}: {inner}");
                source = inner.source();
            }
            s
        }
    }
}

/// `postgresql://user@host:port/dbname`, as the user would recognise it.
fn shown(config: &Config) -> String {
    use ::postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) if h.contains(':') => format!("[{h}]"),
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = config
        .get_ports()
        .first()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    format!(
        "postgresql://{}@{host}{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// `url` with any password between `://user:` and `@` replaced by `***`,
/// and any `password=` parameter's value likewise: for messages about a URL
/// that did not parse.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    // `?password=…` or `&password=…`
    let mut search = 0;
    while let Some(i) = out[search..].find("password=") {
        let start = search + i + "password=".len();
        let before = out[..search + i].chars().last();
        if matches!(before, Some('?' | '&' | ' ') | None) {
            let end = out[start..]
                .find(['&', ' '])
                .map_or(out.len(), |j| start + j);
            out.replace_range(start..end, "***");
            search = start + 3;
        } else {
            search = start;
        }
    }
    out
}

fn os_user() -> Option<String> {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            // SAFETY: getpwuid returns a pointer into static storage or NULL;
            // it is read at once, on the one thread that parses the URL.
            unsafe {
                let pw = libc::getpwuid(libc::geteuid());
                if pw.is_null() || (*pw).pw_name.is_null() {
                    return None;
                }
                std::ffi::CStr::from_ptr((*pw).pw_name)
                    .to_str()
                    .ok()
                    .map(str::to_string)
            }
        })
}

/// The password `~/.pgpass` (or `PGPASSFILE`) gives for this connection,
/// as libpq reads it: `host:port:database:user:password` lines, `*`
/// matching anything, `\:` and `\\` escaped; a file that others can read
/// is ignored, as libpq ignores it.
fn pgpass_lookup(config: &Config) -> Option<String> {
    use ::postgres::config::Host;
    let path = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(&path).ok()?;
        if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        // libpq matches a socket connection as `localhost`.
        Some(Host::Unix(_)) | None => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let want = [
        host.as_str(),
        port.as_str(),
        config.get_dbname().unwrap_or(""),
        config.get_user().unwrap_or(""),
    ];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(pgpass_fields)
        .find(|f| f.len() == 5 && (0..4).all(|i| f[i] == "*" || f[i] == want[i]))
        .map(|f| f[4].clone())
}

fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().unwrap().push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// The URL's own `application_name` (if any) before this process's, within
/// the 63 bytes PostgreSQL keeps: the user's part is what gets shortened,
/// since waiters on other hosts read the host and pid from ours.
fn combined_application_name(user: Option<&str>, ours: &str) -> String {
    const MAX: usize = 63;
    let user = user.map_or(String::new(), |u| {
        truncate_utf8(u, MAX.saturating_sub(ours.len() + 1))
    });
    let name = if user.is_empty() {
        ours.to_string()
    } else {
        format!("{user} {ours}")
    };
    truncate_utf8(&name, MAX)
}

fn truncate_utf8(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        let t = PgTarget::parse("postgresql://ana:s3cret@db.example:6543/films?sslmode=disable")
            .unwrap();
        assert_eq!(t.to_string(), "postgresql://ana@db.example:6543/films");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(
            redact_url("postgres://ana:s3cret@h/db?password=other&x=1"),
            "postgres://ana:***@h/db?password=***&x=1"
        );
    }

    /// The server frees a vanished host's locks only when its side of the
    /// connection gives up: every connection sets the server's keepalives.
    /// Runs where `make test` provides a server (`ORCHESTRATOR_TEST_PG`).
    #[test]
    fn a_connection_sets_the_servers_keepalives_so_a_vanished_host_frees_its_locks() {
        let Some(url) = std::env::var("ORCHESTRATOR_TEST_PG")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("postgres test skipped: ORCHESTRATOR_TEST_PG is not set");
            return;
        };
        let db = PgTarget::parse(&url)
            .unwrap()
            .connect("keepalive test")
            .unwrap();
        let setting = |name: &str| {
            let mut out = None;
            db.for_each(&format!("SHOW {name}"), &[], |r| {
                out = r.get::<String>(0).ok();
                Ok(())
            })
            .unwrap();
            out.unwrap()
        };
        // Over a Unix socket the server ignores them and shows 0.
        if setting("tcp_keepalives_idle") != "0" {
            assert_eq!(setting("tcp_keepalives_idle"), "15");
            assert_eq!(setting("tcp_keepalives_count"), "4");
            assert_eq!(setting("tcp_user_timeout"), "40000");
        }
    }

    #[test]
    fn an_integer_binds_as_an_oid_when_it_fits_one() {
        // The holder queries of registry::advisory compare pg_locks'
        // oid columns with `CAST(?1 AS OID)`: a run that found its lock
        // taken failed with "an integer cannot be bound as oid".
        let mut out = BytesMut::new();
        assert!(Value::Int(0xFFFF_FFFF).to_sql(&Type::OID, &mut out).is_ok());
        assert_eq!(&out[..], &[0xFF; 4]);
        assert!(Value::Int(-1).to_sql(&Type::OID, &mut out).is_err());
        assert!(Value::Int(1 << 32).to_sql(&Type::OID, &mut out).is_err());
    }

    #[test]
    fn a_long_application_name_in_the_url_is_shortened_before_ours_is() {
        let ours = "orchestrator host=render-node-0042.farm.stu pid=4194304";
        let name = combined_application_name(Some("nightly render of reel seven"), ours);
        assert!(name.len() <= 63 && name.ends_with(ours), "{name}");
        assert_eq!(combined_application_name(Some("ci"), "o"), "ci o");
        assert_eq!(combined_application_name(None, ours), ours);
    }

    #[test]
    fn pgpass_lines_unescape_and_match_wildcards() {
        assert_eq!(
            pgpass_fields(r"h\:x:5432:*:ana:pa\:ss:word"),
            vec!["h:x", "5432", "*", "ana", "pa:ss:word"]
        );
    }
}
