//! Reads of the `artifacts` table.

use super::Registry;
use crate::error::Result;
use crate::registry::db::{Row, params};

/// One registered artifact: the file currently on disk for (run, type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRecord {
    pub artifact_id: i64,
    pub project_id: String,
    pub run_id: String,
    pub artifact_type: String,
    pub sha256: String,
    pub schema_id: String,
    pub schema_version: String,
    /// Relative to the artifacts directory.
    pub path: String,
    pub size_bytes: u64,
    pub stage: u8,
    pub stage_name: String,
    pub stage_version: String,
    pub created_at: String,
    pub meta_json: String,
}

pub(crate) const ARTIFACT_COLUMNS: &str = "artifact_id, project_id, run_id, artifact_type, sha256, \
     schema_id, schema_version, path, size_bytes, stage, stage_name, stage_version, created_at, meta_json";

impl ArtifactRecord {
    /// One row of [`ARTIFACT_COLUMNS`], in that order.
    pub(crate) fn read(r: &Row<'_>) -> Result<Self> {
        Ok(ArtifactRecord {
            artifact_id: r.get(0)?,
            project_id: r.get(1)?,
            run_id: r.get(2)?,
            artifact_type: r.get(3)?,
            sha256: r.get(4)?,
            schema_id: r.get(5)?,
            schema_version: r.get(6)?,
            path: r.get(7)?,
            size_bytes: r.get(8)?,
            stage: r.get(9)?,
            stage_name: r.get(10)?,
            stage_version: r.get(11)?,
            created_at: r.get(12)?,
            meta_json: r.get(13)?,
        })
    }
}

impl Registry {
    /// The artifact of type `artifact_type` registered for a run.
    pub fn artifact_in_run(
        &self,
        project_id: &str,
        run_id: &str,
        artifact_type: &str,
    ) -> Result<Option<ArtifactRecord>> {
        let sql = format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts
             WHERE project_id = ?1 AND run_id = ?2 AND artifact_type = ?3"
        );
        self.db().query_opt(
            &sql,
            params![project_id, run_id, artifact_type],
            ArtifactRecord::read,
        )
    }

    /// Every artifact registered for a run, in stage order.
    pub fn artifacts_of_run(&self, project_id: &str, run_id: &str) -> Result<Vec<ArtifactRecord>> {
        let sql = format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts
             WHERE project_id = ?1 AND run_id = ?2 ORDER BY stage"
        );
        self.db()
            .query_map(&sql, params![project_id, run_id], ArtifactRecord::read)
    }
}
