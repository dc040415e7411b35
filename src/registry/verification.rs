//! Queries `verify` needs: the file's own integrity, recording results,
//! stale edges, run summaries.

use rusqlite::{OptionalExtension, params};

use super::Registry;
use super::open::unusable;
use crate::error::{Error, Result};

/// One artifact's verification result, as recorded.
#[derive(Debug, Clone)]
pub struct Verification {
    pub artifact_id: i64,
    pub verified_at: String,
    pub ok: bool,
    /// JSON array of the problems found.
    pub problems: String,
}

/// A parent edge whose parent was re-made after the child was made from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleEdge {
    pub child_type: String,
    pub child_path: String,
    pub parent_type: String,
    /// The parent's hash as the child recorded it.
    pub recorded_parent_sha256: String,
    /// The parent's hash now.
    pub parent_sha256: String,
}

/// Checks every page and b-tree of the file; unlike `integrity_check` it
/// does not cross-check indexes against tables, so it stays linear in size.
const QUICK_CHECK: &str = "PRAGMA quick_check";

const UPSERT_VERIFICATION: &str = "
    INSERT INTO artifact_verifications (artifact_id, verified_at, result, problems)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (artifact_id) DO UPDATE SET
        verified_at = excluded.verified_at, result = excluded.result, problems = excluded.problems";

const STALE_EDGES: &str = "
    SELECT c.artifact_type, c.path, p.artifact_type, e.parent_sha256, p.sha256
    FROM artifact_edges e
    JOIN artifacts c ON c.artifact_id = e.child_id
    JOIN artifacts p ON p.artifact_id = e.parent_id
    WHERE c.project_id = ?1 AND c.run_id = ?2 AND e.parent_sha256 <> p.sha256
    ORDER BY c.stage, p.stage";

const RUN_SUMMARY: &str = "
    SELECT path, sha256 FROM run_summaries WHERE project_id = ?1 AND run_id = ?2";

impl Registry {
    /// Run `PRAGMA quick_check`. A damaged file is an error naming it (exit
    /// 3), not a verification finding: nothing it says can be trusted.
    pub fn quick_check(&self) -> Result<()> {
        let unusable = |e| unusable(&self.path, e);
        let mut stmt = self.conn.prepare(QUICK_CHECK).map_err(unusable)?;
        let lines = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(unusable)?;
        if lines.len() == 1 && lines[0] == "ok" {
            return Ok(());
        }
        let first = lines.first().map_or("no answer", String::as_str);
        Err(Error::RegistryUnusable {
            path: self.path.clone(),
            message: match lines.len() {
                0 | 1 => format!("`PRAGMA quick_check` failed: {first}"),
                n => format!("`PRAGMA quick_check` found {n} problems, the first: {first}"),
            },
            source: None,
        })
    }

    /// Record each artifact's latest verification, in one transaction.
    pub fn record_verifications(&mut self, results: &[Verification]) -> Result<()> {
        self.write(|tx| {
            let mut stmt = tx.prepare(UPSERT_VERIFICATION)?;
            for v in results {
                stmt.execute(params![
                    v.artifact_id,
                    v.verified_at,
                    if v.ok { "ok" } else { "problem" },
                    v.problems
                ])?;
            }
            Ok(())
        })
    }

    pub fn stale_edges(&self, project_id: &str, run_id: &str) -> Result<Vec<StaleEdge>> {
        let mut stmt = self.conn.prepare(STALE_EDGES)?;
        let rows = stmt
            .query_map(params![project_id, run_id], |r| {
                Ok(StaleEdge {
                    child_type: r.get(0)?,
                    child_path: r.get(1)?,
                    parent_type: r.get(2)?,
                    recorded_parent_sha256: r.get(3)?,
                    parent_sha256: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The registered run summary's path (relative to the artifacts
    /// directory) and sha256.
    pub fn run_summary_of(
        &self,
        project_id: &str,
        run_id: &str,
    ) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .query_row(RUN_SUMMARY, params![project_id, run_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }
}
