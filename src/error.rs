//! The core's typed errors and the exit code each one maps to.
//!
//! The core never exits and never prints; it returns an [`Error`] whose
//! [`Error::exit_code`] the CLI uses as the process status. The codes are
//! documented in the README and are part of the tool's contract.

use std::path::PathBuf;

/// Process exit codes. Documented in the README; never renumber.
pub mod exit {
    /// Everything worked.
    pub const SUCCESS: u8 = 0;
    /// The command ran and found a problem (verify found drift, a stage
    /// produced an invalid artifact).
    pub const PROBLEM: u8 = 1;
    /// Bad input or usage (clap uses 2 as well).
    pub const USAGE: u8 = 2;
    /// The registry is unusable: corrupt, or written by a newer version.
    pub const REGISTRY: u8 = 3;
    /// Another process holds the run or the registry past the wait.
    pub const BUSY: u8 = 4;
    /// Reading or writing a file failed.
    pub const IO: u8 = 5;
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The project config could not be used. `location` is `line L, column C`
    /// or a JSON pointer.
    #[error("invalid project config `{}` at {location}: {message}", path.display())]
    Config {
        path: PathBuf,
        location: String,
        message: String,
    },

    #[error("cannot read project config `{}`", path.display())]
    ConfigUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A command-line value the core checks (run id, target, prefix…).
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },

    /// A stage produced an artifact its schema rejects. Nothing was written.
    #[error(
        "stage {stage} ({stage_name}) produced an invalid {artifact_type} at `{pointer}`: {message}"
    )]
    InvalidArtifact {
        stage: u8,
        stage_name: String,
        artifact_type: String,
        pointer: String,
        message: String,
    },

    /// A stage failed for a reason of its own (unreadable input, …).
    #[error("stage {stage} ({stage_name}) failed")]
    StageFailed {
        stage: u8,
        stage_name: String,
        #[source]
        source: Box<Error>,
    },

    /// An upstream artifact could not be parsed into its typed shape.
    #[error("`{}` is not a valid {artifact_type}: {message}", path.display())]
    BadInput {
        path: PathBuf,
        artifact_type: String,
        message: String,
    },

    /// Upstream artifacts that parse but contradict each other.
    #[error("{0}")]
    Inconsistent(String),

    #[error("the registry `{}` is unusable: {message}", path.display())]
    RegistryUnusable {
        path: PathBuf,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A SQLite database this build must not use or change: written by a
    /// newer orchestrator, or not an orchestrator registry at all. Detected
    /// before anything is written, so the file is left exactly as it was.
    #[error("the registry `{}` {problem}", path.display())]
    RegistryIncompatible {
        path: PathBuf,
        problem: Incompatibility,
    },

    /// The file at the registry's path is not a SQLite database at all (no
    /// SQLite header), so nothing says it is a registry: `reindex` will not
    /// replace it, and the hint does not send the user there.
    #[error("the registry `{}` is unusable: it is not a SQLite database", path.display())]
    NotARegistry {
        path: PathBuf,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// No registry file, but the artifacts directory holds runs it would
    /// have indexed: an empty answer would be a lie.
    #[error(
        "no registry at `{}`, but `{}` holds {runs} run{}",
        path.display(),
        artifacts_dir.display(),
        if *runs == 1 { "" } else { "s" }
    )]
    RegistryMissing {
        path: PathBuf,
        artifacts_dir: PathBuf,
        runs: usize,
    },

    /// `package` (or another command that needs a finished run) was given
    /// a run whose stages are not all complete.
    #[error(
        "run {project_id}/{run_id} is {status}, not complete{}",
        if missing.is_empty() { String::new() } else { format!(": {} not done", missing.join(", ")) }
    )]
    IncompleteRun {
        project_id: String,
        run_id: String,
        status: String,
        /// Stage names, in pipeline order.
        missing: Vec<String>,
    },

    /// A registered artifact's file no longer has the registered hash.
    #[error("`{}` changed since it was registered: expected sha256 {expected}, found {found}", path.display())]
    ArtifactChanged {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("registry query failed: {0}")]
    Sql(crate::registry::db::DbError),

    /// A PostgreSQL registry that could not be reached (or refused the
    /// login). `location` is the URL with its password redacted.
    #[error("cannot reach the registry `{location}`: {message}")]
    RegistryUnreachable { location: String, message: String },

    #[error("{what} is busy: {message}")]
    Busy { what: String, message: String },

    /// An I/O failure because the disk (or the user's quota) is full: said
    /// plainly, naming the path, so the user knows to free space.
    #[error("the disk is full: {action} `{}` needs space", path.display())]
    DiskFull {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An I/O failure at `path`; [`Error::DiskFull`] when the disk is full.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        if is_disk_full(&source) {
            return Error::DiskFull {
                action,
                path: path.into(),
                source,
            };
        }
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: None,
        }
    }

    pub fn usage_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// The process status this error should end the command with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. } | Error::ConfigUnreadable { .. } | Error::Usage { .. } => {
                exit::USAGE
            }
            Error::InvalidArtifact { .. }
            | Error::BadInput { .. }
            | Error::Inconsistent(_)
            | Error::IncompleteRun { .. }
            | Error::ArtifactChanged { .. } => exit::PROBLEM,
            Error::StageFailed { source, .. } => source.exit_code(),
            Error::RegistryUnusable { .. }
            | Error::NotARegistry { .. }
            | Error::RegistryIncompatible { .. }
            | Error::RegistryMissing { .. } => exit::REGISTRY,
            Error::Sql(e) => sql_exit_code(e),
            Error::RegistryUnreachable { .. } => exit::IO,
            Error::Busy { .. } => exit::BUSY,
            Error::Io { .. } | Error::DiskFull { .. } => exit::IO,
        }
    }

    /// A next step for the user, when there is one worth printing.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. } => hint.clone(),
            Error::Busy { .. } => {
                Some("wait for the process holding it to finish, then retry".into())
            }
            // Reindex replaces only a file it can tell for a registry of
            // this tool: a damaged one from before the mark in its header
            // is refused, so the hint must not send the user straight there.
            Error::RegistryUnusable { path, .. } => Some(
                match crate::registry::existing_registry(path) {
                    Ok(crate::registry::ExistingRegistry::Foreign(_)) => {
                        "`orchestrator reindex` will not replace a file it cannot tell for a \
                         registry: move it away, then run `orchestrator reindex` to rebuild \
                         it from the artifact files, which are untouched"
                    }
                    _ => {
                        "run `orchestrator reindex` to rebuild it from the artifact files, \
                         which are untouched"
                    }
                }
                .into(),
            ),
            Error::RegistryIncompatible { problem, .. } => Some(problem.hint().into()),
            Error::NotARegistry { .. } => Some(Incompatibility::NotSqlite.hint().into()),
            Error::RegistryMissing { .. } => {
                Some("run `orchestrator reindex` to rebuild it from those runs".into())
            }
            Error::InvalidArtifact { .. } => Some(
                "the artifact was not written; the stage's output does not match its schema in `schemas/`"
                    .into(),
            ),
            Error::StageFailed { source, .. } => source.hint(),
            Error::IncompleteRun { .. } => Some(
                "finish it with `orchestrator run --project <its config>`, then package it".into(),
            ),
            Error::DiskFull { .. } => Some(
                "free space on that disk, then retry; the read commands (`runs`, `verify`, \
                 `lineage`, `export`, `diff`) and `gc` still work meanwhile"
                    .into(),
            ),
            Error::ArtifactChanged { .. } => Some(
                "`orchestrator verify` shows what changed; `orchestrator run` restores the artifact".into(),
            ),
            _ => None,
        }
    }
}

/// Why a registry file is refused untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incompatibility {
    /// It records a migration this build does not know.
    Newer { version: i64, name: String },
    /// It records one of this build's migrations with other contents.
    Divergent { version: i64, name: String },
    /// A SQLite database with tables but no migration history.
    Foreign,
    /// Not a SQLite database (no SQLite header).
    NotSqlite,
    /// A PostgreSQL database that is empty (`applied: None`) or behind
    /// this build: only `registry migrate` changes a shared schema.
    NeedsMigration { applied: Option<i64>, wanted: i64 },
    /// A symlink, directory or special file where a registry file belongs.
    NotRegularFile { what: String },
    /// A SQLite file SQLite cannot read, without this tool's application id
    /// in its header: a damaged registry from before the mark, or anyone
    /// else's damaged database. Reindex cannot tell, so it does not guess.
    Unrecognised,
}

impl std::fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Incompatibility::Newer { version, name } => write!(
                f,
                "was written by a newer orchestrator: it has migration V{version} `{name}`, which this version does not know"
            ),
            Incompatibility::Divergent { version, name } => write!(
                f,
                "has a migration V{version} `{name}` that differs from this version's"
            ),
            Incompatibility::Foreign => {
                f.write_str("is a SQLite database but not an orchestrator registry")
            }
            Incompatibility::NotSqlite => {
                f.write_str("is not a SQLite database, so not an orchestrator registry")
            }
            Incompatibility::NotRegularFile { what } => {
                write!(f, "is {what}, not a registry file")
            }
            Incompatibility::NeedsMigration {
                applied: None,
                wanted,
            } => write!(
                f,
                "has no registry schema yet (this orchestrator needs V{wanted})"
            ),
            Incompatibility::NeedsMigration {
                applied: Some(v),
                wanted,
            } => write!(
                f,
                "has schema V{v}, older than the V{wanted} this orchestrator needs"
            ),
            Incompatibility::Unrecognised => f.write_str(
                "cannot be read, and nothing in its header marks it as an orchestrator registry",
            ),
        }
    }
}

impl Incompatibility {
    fn hint(&self) -> &'static str {
        match self {
            // Said of a SQLite file and a PostgreSQL database alike.
            Incompatibility::Newer { .. } | Incompatibility::Divergent { .. } => {
                "the registry was left untouched; use the orchestrator that wrote it, or pass `--db` to use another registry"
            }
            Incompatibility::Foreign | Incompatibility::NotRegularFile { .. } => {
                "the file was left untouched; pass `--db` with the path of an orchestrator registry"
            }
            Incompatibility::NotSqlite => {
                "the file was left untouched, and `orchestrator reindex` will not replace it: pass \
                 `--db` with the path of an orchestrator registry (or, if this file took the \
                 registry's place, move it away; `orchestrator reindex` then rebuilds the registry)"
            }
            Incompatibility::NeedsMigration { .. } => {
                "the database was left untouched; run `orchestrator registry migrate --db <url>` \
                 (once, from any host) to create or upgrade its schema"
            }
            Incompatibility::Unrecognised => {
                "the file was left untouched; if it is a damaged orchestrator registry, move it \
                 away and run `orchestrator reindex` again"
            }
        }
    }
}

/// Each backend reports lock contention and damage through the same error
/// type as a bad query; [`DbError::kind`](crate::registry::db::DbError::kind)
/// tells them apart so each gets its documented code.
fn sql_exit_code(e: &crate::registry::db::DbError) -> u8 {
    use crate::registry::db::DbErrorKind;
    match e.kind() {
        // A deadlock that outlived its retries is contention too.
        DbErrorKind::Busy | DbErrorKind::Retry => exit::BUSY,
        DbErrorKind::Unusable | DbErrorKind::Refused => exit::REGISTRY,
        DbErrorKind::Io => exit::IO,
    }
}

/// ENOSPC or EDQUOT, however it was wrapped (SQLite's "database or disk is
/// full" arrives as an `io::Error` of kind `StorageFull` from the registry).
pub fn is_disk_full(e: &std::io::Error) -> bool {
    if e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded
    {
        return true;
    }
    #[cfg(unix)]
    if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
        return true;
    }
    false
}
