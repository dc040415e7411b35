//! Where the registry lives: a SQLite file, or a PostgreSQL database named
//! by a URL. `--db` (or `ORCHESTRATOR_DB`) decides: a `postgresql://` or
//! `postgres://` URL is a server, anything else a path.

use std::path::{Path, PathBuf};

use super::db::PgTarget;
use crate::error::Result;
use crate::reindex::DEFAULT_REGISTRY_FILE;

/// The registry a command uses.
#[derive(Debug, Clone)]
pub enum Location {
    /// A SQLite file (created by `run` when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by every host.
    Postgres(Box<PgTarget>),
}

impl Location {
    /// `--db`'s value (or the default file in `artifacts_dir`).
    pub fn parse(db: Option<&Path>, artifacts_dir: &Path) -> Result<Location> {
        let Some(db) = db else {
            return Ok(Location::Sqlite(artifacts_dir.join(DEFAULT_REGISTRY_FILE)));
        };
        match db.to_str() {
            Some(url) if PgTarget::is_url(url) => {
                Ok(Location::Postgres(Box::new(PgTarget::parse(url)?)))
            }
            _ => Ok(Location::Sqlite(db.to_path_buf())),
        }
    }

    /// The file, for a SQLite registry.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(p) => Some(p),
            Location::Postgres(_) => None,
        }
    }

    /// `sqlite` or `postgresql`, as `registry info` prints it.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Location::Sqlite(_) => "sqlite",
            Location::Postgres(_) => "postgresql",
        }
    }

    /// A name for messages: the path, or the URL without its password.
    /// Also what a [`Registry`](super::Registry) on PostgreSQL reports as
    /// its `path()`, so every message that names the registry names it.
    pub fn name(&self) -> PathBuf {
        match self {
            Location::Sqlite(p) => p.clone(),
            Location::Postgres(t) => PathBuf::from(t.to_string()),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(t) => write!(f, "{t}"),
        }
    }
}
