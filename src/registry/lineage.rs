//! Reads behind `orchestrator lineage`: finding the artifact a target names
//! (by type, hash prefix or path) and walking `artifact_edges` from it.
//!
//! The walk is one recursive CTE per direction. It is bounded twice over, so
//! that edges inserted by hand (a cycle, a self-loop) can never make it run
//! forever: every row carries its depth and the recursion stops at the
//! caller's bound, and `UNION` (not `UNION ALL`) drops a (node, depth) pair
//! already produced, so the table holds at most nodes × (bound + 1) rows.

use rusqlite::{OptionalExtension, Row, params};

use super::Registry;
use super::artifacts::{ARTIFACT_COLUMNS, ArtifactRecord};
use crate::error::Result;
use crate::lineage::{Direction, LineageNode, WalkRow};

/// Newest run first; ties (same millisecond) broken by id so the choice is
/// deterministic. Correlated rather than joined so `ARTIFACT_COLUMNS` stays
/// unambiguous.
const BY_NEWEST_RUN: &str = "
    ORDER BY (SELECT r.started_at FROM runs r
               WHERE r.project_id = a.project_id AND r.run_id = a.run_id) DESC,
             a.project_id, a.run_id";

/// `?1` GLOB pattern `<prefix>*`, `?2` project or NULL, `?3` run or NULL.
/// The pattern is bound whole (not `?1 || '*'`) because SQLite only turns a
/// GLOB into an index range when the right-hand side is a literal or a
/// bound parameter.
const WITH_SHA_PREFIX: &str = "
    FROM artifacts a
    WHERE a.sha256 GLOB ?1
      AND (?2 IS NULL OR a.project_id = ?2)
      AND (?3 IS NULL OR a.run_id = ?3)";

/// `?1` path relative to the artifacts directory, `?2` project or NULL,
/// `?3` run or NULL.
const AT_PATH: &str = "
    FROM artifacts a
    WHERE a.path = ?1
      AND (?2 IS NULL OR a.project_id = ?2)
      AND (?3 IS NULL OR a.run_id = ?3)";

/// Ancestors of artifact `?1` up to depth `?2`: one row per reached artifact
/// and walked edge (`next_id` is a parent), or one row with `next_id` NULL
/// for an artifact whose parents were not walked (none, or at the bound).
/// `depth` is the shortest distance from the root.
const ANCESTORS: &str = "
    WITH RECURSIVE walk (node_id, depth) AS (
        SELECT ?1, 0
        UNION
        SELECT e.parent_id, w.depth + 1
        FROM walk w JOIN artifact_edges e ON e.child_id = w.node_id
        WHERE w.depth < ?2
    ),
    reached (node_id, depth) AS (
        SELECT node_id, min(depth) FROM walk GROUP BY node_id
    )
    SELECT a.artifact_id, a.sha256, a.artifact_type, a.project_id, a.run_id,
           a.stage, a.stage_name, a.path, r.depth, e.parent_id
    FROM reached r
    JOIN artifacts a ON a.artifact_id = r.node_id
    LEFT JOIN artifact_edges e ON e.child_id = r.node_id AND r.depth < ?2
    ORDER BY a.stage, a.artifact_type, a.sha256, a.artifact_id, e.parent_id";

/// Descendants of artifact `?1` up to depth `?2`: as [`ANCESTORS`] with the
/// edges followed the other way (`next_id` is a child).
const DESCENDANTS: &str = "
    WITH RECURSIVE walk (node_id, depth) AS (
        SELECT ?1, 0
        UNION
        SELECT e.child_id, w.depth + 1
        FROM walk w JOIN artifact_edges e ON e.parent_id = w.node_id
        WHERE w.depth < ?2
    ),
    reached (node_id, depth) AS (
        SELECT node_id, min(depth) FROM walk GROUP BY node_id
    )
    SELECT a.artifact_id, a.sha256, a.artifact_type, a.project_id, a.run_id,
           a.stage, a.stage_name, a.path, r.depth, e.child_id
    FROM reached r
    JOIN artifacts a ON a.artifact_id = r.node_id
    LEFT JOIN artifact_edges e ON e.parent_id = r.node_id AND r.depth < ?2
    ORDER BY a.stage, a.artifact_type, a.sha256, a.artifact_id, e.child_id";

fn walk_row(r: &Row<'_>) -> rusqlite::Result<WalkRow> {
    Ok(WalkRow {
        artifact_id: r.get(0)?,
        node: LineageNode {
            sha256: r.get(1)?,
            artifact_type: r.get(2)?,
            project_id: r.get(3)?,
            run_id: r.get(4)?,
            stage: r.get(5)?,
            stage_name: r.get(6)?,
            path: r.get(7)?,
            depth: r.get(8)?,
        },
        next_id: r.get(9)?,
    })
}

impl Registry {
    /// Artifacts whose sha256 starts with `prefix`, newest run first,
    /// optionally only in `project` and/or `run`. A prefix that is not
    /// lowercase hex matches nothing (hashes are stored lowercase, and this
    /// keeps GLOB wildcards out of the pattern).
    pub fn artifacts_with_sha_prefix(
        &self,
        prefix: &str,
        project: Option<&str>,
        run: Option<&str>,
    ) -> Result<Vec<ArtifactRecord>> {
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Ok(Vec::new());
        }
        let pattern = format!("{prefix}*");
        let sql = format!("SELECT {ARTIFACT_COLUMNS} {WITH_SHA_PREFIX} {BY_NEWEST_RUN}");
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt
            .query_map(params![pattern, project, run], ArtifactRecord::from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The artifact registered at `path` (relative to the artifacts
    /// directory, `/`-separated), optionally only in `project` and/or `run`.
    pub fn artifact_at_path(
        &self,
        path: &str,
        project: Option<&str>,
        run: Option<&str>,
    ) -> Result<Option<ArtifactRecord>> {
        let sql = format!("SELECT {ARTIFACT_COLUMNS} {AT_PATH} {BY_NEWEST_RUN} LIMIT 1");
        Ok(self
            .conn()
            .query_row(&sql, params![path, project, run], ArtifactRecord::from_row)
            .optional()?)
    }

    /// Every artifact within `max_depth` edges of `root_id` in `direction`,
    /// with the edges walked to reach them (see [`ANCESTORS`]).
    pub fn lineage_walk(
        &self,
        root_id: i64,
        direction: Direction,
        max_depth: u32,
    ) -> Result<Vec<WalkRow>> {
        let sql = match direction {
            Direction::Ancestors => ANCESTORS,
            Direction::Descendants => DESCENDANTS,
        };
        let mut stmt = self.conn().prepare(sql)?;
        let rows = stmt
            .query_map(params![root_id, max_depth], walk_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
