//! Reads behind `orchestrator export`: the parent edges of one run, with
//! both ends named, in the order the graph is drawn (child stage, then
//! parent stage).
//!
//! `parent_sha256` is the parent's hash as the child saw it when it was made
//! (its meta record's `parents`); `parent_current_sha256` is the parent row's
//! hash now. They differ only when the parent was re-made after the child.

use super::Registry;
use crate::error::Result;
use crate::registry::db::params;

/// One `artifact_edges` row of a run: `child` was made from `parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEdge {
    pub child_type: String,
    pub child_sha256: String,
    pub parent_type: String,
    /// The parent's hash as the child recorded it.
    pub parent_sha256: String,
    /// The parent artifact's hash in the registry now.
    pub parent_current_sha256: String,
}

const EDGES_OF_RUN: &str = "
    SELECT c.artifact_type, c.sha256, p.artifact_type, e.parent_sha256, p.sha256
    FROM artifact_edges e
    JOIN artifacts c ON c.artifact_id = e.child_id
    JOIN artifacts p ON p.artifact_id = e.parent_id
    WHERE c.project_id = ?1 AND c.run_id = ?2
    ORDER BY c.stage, p.stage, p.artifact_type";

impl Registry {
    /// Every parent edge whose child belongs to the run.
    pub fn edges_of_run(&self, project_id: &str, run_id: &str) -> Result<Vec<RunEdge>> {
        self.db()
            .query_map(EDGES_OF_RUN, params![project_id, run_id], |r| {
                Ok(RunEdge {
                    child_type: r.get(0)?,
                    child_sha256: r.get(1)?,
                    parent_type: r.get(2)?,
                    parent_sha256: r.get(3)?,
                    parent_current_sha256: r.get(4)?,
                })
            })
    }
}
