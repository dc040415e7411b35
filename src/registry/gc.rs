//! What `orchestrator gc` asks of the registry: which runs use a run's
//! artifacts as parents, which files it registered for a run, and removing
//! a run's rows in one transaction.

use super::Registry;
use crate::error::Result;
use crate::registry::db::params;

/// Runs other than (`?1`, `?2`) with an artifact made from one of its
/// artifacts.
const RUNS_USING: &str = "
    SELECT DISTINCT c.project_id, c.run_id
    FROM artifacts p
    JOIN artifact_edges e ON e.parent_id = p.artifact_id
    JOIN artifacts c ON c.artifact_id = e.child_id
    WHERE p.project_id = ?1 AND p.run_id = ?2
      AND NOT (c.project_id = ?1 AND c.run_id = ?2)
    ORDER BY 1, 2";

/// Artifacts, their edges and verifications, executions and the summary
/// row all go with the run (ON DELETE CASCADE).
const DELETE_RUN: &str = "DELETE FROM runs WHERE project_id = ?1 AND run_id = ?2";

/// Whether the registry has a row for the run.
const RUN_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM runs WHERE project_id = ?1 AND run_id = ?2)";

/// Every file registered for the run: its artifacts and its run summary.
const RUN_FILES: &str = "
    SELECT path FROM artifacts WHERE project_id = ?1 AND run_id = ?2
    UNION ALL
    SELECT path FROM run_summaries WHERE project_id = ?1 AND run_id = ?2";

const DELETE_PROJECT_IF_EMPTY: &str = "
    DELETE FROM projects WHERE project_id = ?1
      AND NOT EXISTS (SELECT 1 FROM runs WHERE project_id = ?1)";

impl Registry {
    /// The runs (other than this one) that use this run's artifacts.
    pub fn runs_using(&self, project_id: &str, run_id: &str) -> Result<Vec<(String, String)>> {
        self.db()
            .query_map(RUNS_USING, params![project_id, run_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
    }

    /// Whether the registry records the run.
    pub fn run_exists(&self, project_id: &str, run_id: &str) -> Result<bool> {
        self.db()
            .query_row(RUN_EXISTS, params![project_id, run_id], |r| r.get(0))
    }

    /// The paths (relative to the artifacts directory) of every file
    /// registered for the run: artifacts and the run summary.
    pub fn registered_files(&self, project_id: &str, run_id: &str) -> Result<Vec<String>> {
        self.db()
            .query_map(RUN_FILES, params![project_id, run_id], |r| r.get(0))
    }

    /// Remove a run and everything registered for it, and its project when
    /// no run is left, in one transaction.
    pub fn delete_run(&mut self, project_id: &str, run_id: &str) -> Result<()> {
        self.write(|tx| {
            tx.db().execute(DELETE_RUN, params![project_id, run_id])?;
            tx.db()
                .execute(DELETE_PROJECT_IF_EMPTY, params![project_id])?;
            Ok(())
        })
    }
}
