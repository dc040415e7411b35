//! What `registry info` and `registry migrate` report about the registry
//! itself: its schema version and how much it holds.

use std::path::Path;

use serde::Serialize;

use super::{Location, Registry};
use crate::error::Result;

/// The registry at a glance (`registry info`).
#[derive(Debug, Serialize)]
pub struct RegistryInfo {
    pub backend: &'static str,
    /// The path, or the URL with its password redacted.
    pub location: String,
    pub schema_version: i64,
    pub projects: i64,
    pub runs: i64,
    pub artifacts: i64,
    pub executions: i64,
}

const SCHEMA_VERSION: &str = "SELECT CAST(max(version) AS BIGINT) FROM refinery_schema_history";

/// Runs are counted from `run_counts` (a row per project and status);
/// the other tables are counted whole, which only `registry info` does.
const COUNTS: &str = "
    SELECT (SELECT count(*) FROM projects),
           (SELECT CAST(coalesce(sum(runs), 0) AS BIGINT) FROM run_counts),
           (SELECT count(*) FROM artifacts), (SELECT count(*) FROM stage_executions)";

impl Registry {
    /// The newest migration applied.
    pub fn schema_version(&self) -> Result<Option<i64>> {
        self.db().query_row(SCHEMA_VERSION, &[], |r| r.get(0))
    }

    /// The schema version of a SQLite file as it is, without creating or
    /// changing it: `None` when it is missing or empty.
    pub fn sqlite_schema_version(path: &Path) -> Result<Option<i64>> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| super::open::unusable(path, e))?;
        let has_history: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema
                 WHERE type = 'table' AND name = 'refinery_schema_history')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| super::open::unusable(path, e))?;
        if !has_history {
            return Ok(None);
        }
        conn.query_row(SCHEMA_VERSION, [], |r| r.get(0))
            .map_err(|e| super::open::unusable(path, e))
    }

    /// `registry info`.
    pub fn info(&self, location: &Location) -> Result<RegistryInfo> {
        let (projects, runs, artifacts, executions) = self.db().query_row(COUNTS, &[], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(RegistryInfo {
            backend: location.backend_name(),
            location: location.to_string(),
            schema_version: self.schema_version()?.unwrap_or(0),
            projects,
            runs,
            artifacts,
            executions,
        })
    }
}
