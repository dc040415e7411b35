//! Reads behind `orchestrator lineage`: finding the artifact a target names
//! (by type, hash prefix or path) and walking `artifact_edges` from it.
//!
//! The walk is one recursive CTE per direction, every step of it an index
//! lookup (the unit test in `query_plans.rs` checks). It is bounded twice over, so
//! that edges inserted by hand (a cycle, a self-loop) can never make it run
//! forever: every row carries its depth and the recursion stops at the
//! caller's bound, and `UNION` (not `UNION ALL`) drops a (node, depth) pair
//! already produced, so the table holds at most nodes × (bound + 1) rows.
//!
//! The scope filters (`?2 IS NULL OR …`) take a project or run, or NULL for
//! any. PostgreSQL cannot tell the type of a parameter it first meets in
//! `IS NULL`, so its texts name it (`CAST(?2 AS TEXT)`); the SQLite texts are
//! the ones the query-plan guard and BENCHMARKS.md explain.

use super::Registry;
use super::artifacts::{ARTIFACT_COLUMNS, ArtifactRecord};
use super::db::{Row, Sql, params};
use crate::error::Result;
use crate::lineage::{Direction, LineageNode, WalkRow};

/// Newest run first; ties (same millisecond) broken by id so the choice is
/// deterministic. Correlated rather than joined so `ARTIFACT_COLUMNS` stays
/// unambiguous.
const BY_NEWEST_RUN: &str = "
    ORDER BY (SELECT r.created_at FROM runs r
               WHERE r.project_id = a.project_id AND r.run_id = a.run_id) DESC,
             a.project_id, a.run_id";

/// The distinct hashes starting with GLOB pattern `?1` (`<prefix>*`), in
/// project `?2` and run `?3` (NULL: any). The pattern is bound whole (not
/// `?1 || '*'`) because SQLite only turns a GLOB into an index range when
/// the right-hand side is a literal or a bound parameter; the scope columns
/// are in the same index, so no row is read.
///
/// PostgreSQL has no GLOB. It takes the prefix back off the pattern and
/// seeks the range [prefix, prefix || 'g'), which holds exactly the
/// lowercase-hex strings that start with it ('g' follows 'f' bytewise, and
/// `sha256` is `COLLATE "C"`). A range of expressions over a parameter is an
/// index bound in a generic plan too; `LIKE ?1` would be one only in a plan
/// made for the value bound.
const SHAS_WITH_PREFIX: Sql<'static> = Sql::dialects(
    "
    SELECT DISTINCT sha256 FROM artifacts
    WHERE sha256 GLOB ?1
      AND (?2 IS NULL OR project_id = ?2)
      AND (?3 IS NULL OR run_id = ?3)
    ORDER BY sha256",
    "
    SELECT DISTINCT sha256 FROM artifacts
    WHERE sha256 >= rtrim(?1, '*') AND sha256 < rtrim(?1, '*') || 'g'
      AND (CAST(?2 AS TEXT) IS NULL OR project_id = ?2)
      AND (CAST(?3 AS TEXT) IS NULL OR run_id = ?3)
    ORDER BY sha256",
);

/// `?1` sha256, `?2` project or NULL, `?3` run or NULL.
const WITH_SHA: Sql<'static> = Sql::dialects(
    "
    FROM artifacts a
    WHERE a.sha256 = ?1
      AND (?2 IS NULL OR a.project_id = ?2)
      AND (?3 IS NULL OR a.run_id = ?3)",
    "
    FROM artifacts a
    WHERE a.sha256 = ?1
      AND (CAST(?2 AS TEXT) IS NULL OR a.project_id = ?2)
      AND (CAST(?3 AS TEXT) IS NULL OR a.run_id = ?3)",
);

/// `?1` path relative to the artifacts directory, `?2` project or NULL,
/// `?3` run or NULL.
const AT_PATH: Sql<'static> = Sql::dialects(
    "
    FROM artifacts a
    WHERE a.path = ?1
      AND (?2 IS NULL OR a.project_id = ?2)
      AND (?3 IS NULL OR a.run_id = ?3)",
    "
    FROM artifacts a
    WHERE a.path = ?1
      AND (CAST(?2 AS TEXT) IS NULL OR a.project_id = ?2)
      AND (CAST(?3 AS TEXT) IS NULL OR a.run_id = ?3)",
);

// The walks. They start from every artifact with the bytes `?1` in project
// `?3` and run `?4` (NULL: any) and go at most `?2` edges. A reached artifact
// yields one row per walked edge (`next_id` is a parent for ancestors, a
// child for descendants), or one row with `next_id` NULL when its edges were
// not walked (none, or at the bound); `depth` is its shortest distance from
// a start. Rows come ordered by stage, type and sha256, and within the
// copies of the same bytes the one in run (`?5`, `?6`) first, then the
// oldest row, so the first row of each hash is the one shown.
//
// Every step is an index lookup: the starts come from
// `artifacts_by_sha256_run`, parents from the edge table's primary key,
// children from `artifact_edges_by_parent`, rows by `artifact_id`.
//
// On SQLite, `CROSS JOIN` keeps `reached` the outer loop (its planner never
// reorders a CROSS JOIN); PostgreSQL allows no `ON` after a CROSS JOIN, and
// its planner orders the join by cost, so its texts say `JOIN`.

/// What the start was made from.
const ANCESTORS: Sql<'static> = Sql::dialects(
    "
    WITH RECURSIVE walk (node_id, depth) AS (
        SELECT artifact_id, 0 FROM artifacts
        WHERE sha256 = ?1 AND (?3 IS NULL OR project_id = ?3) AND (?4 IS NULL OR run_id = ?4)
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
    CROSS JOIN artifacts a ON a.artifact_id = r.node_id
    LEFT JOIN artifact_edges e ON e.child_id = r.node_id AND r.depth < ?2
    ORDER BY a.stage, a.artifact_type, a.sha256, (a.project_id = ?5 AND a.run_id = ?6) DESC,
             a.artifact_id, e.parent_id",
    "
    WITH RECURSIVE walk (node_id, depth) AS (
        SELECT artifact_id, 0 FROM artifacts
        WHERE sha256 = ?1 AND (CAST(?3 AS TEXT) IS NULL OR project_id = ?3)
          AND (CAST(?4 AS TEXT) IS NULL OR run_id = ?4)
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
    ORDER BY a.stage, a.artifact_type, a.sha256, (a.project_id = ?5 AND a.run_id = ?6) DESC,
             a.artifact_id, e.parent_id",
);

/// What was made from the start: as [`ANCESTORS`], the edges followed the
/// other way.
const DESCENDANTS: Sql<'static> = Sql::dialects(
    "
    WITH RECURSIVE walk (node_id, depth) AS (
        SELECT artifact_id, 0 FROM artifacts
        WHERE sha256 = ?1 AND (?3 IS NULL OR project_id = ?3) AND (?4 IS NULL OR run_id = ?4)
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
    CROSS JOIN artifacts a ON a.artifact_id = r.node_id
    LEFT JOIN artifact_edges e ON e.parent_id = r.node_id AND r.depth < ?2
    ORDER BY a.stage, a.artifact_type, a.sha256, (a.project_id = ?5 AND a.run_id = ?6) DESC,
             a.artifact_id, e.child_id",
    "
    WITH RECURSIVE walk (node_id, depth) AS (
        SELECT artifact_id, 0 FROM artifacts
        WHERE sha256 = ?1 AND (CAST(?3 AS TEXT) IS NULL OR project_id = ?3)
          AND (CAST(?4 AS TEXT) IS NULL OR run_id = ?4)
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
    ORDER BY a.stage, a.artifact_type, a.sha256, (a.project_id = ?5 AND a.run_id = ?6) DESC,
             a.artifact_id, e.child_id",
);

fn walk_row(r: &Row<'_>) -> Result<WalkRow> {
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
    /// The distinct hashes that start with `prefix`, optionally only in
    /// `project` and/or `run`, in order. A prefix that is not lowercase hex
    /// matches nothing (hashes are stored lowercase, and this keeps GLOB
    /// wildcards out of the pattern).
    pub fn shas_with_prefix(
        &self,
        prefix: &str,
        project: Option<&str>,
        run: Option<&str>,
    ) -> Result<Vec<String>> {
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Ok(Vec::new());
        }
        self.db().query_map(
            SHAS_WITH_PREFIX,
            params![format!("{prefix}*"), project, run],
            |r| r.get(0),
        )
    }

    /// The artifact with bytes `sha256` in the newest run, optionally only
    /// in `project` and/or `run`.
    pub fn newest_copy(
        &self,
        sha256: &str,
        project: Option<&str>,
        run: Option<&str>,
    ) -> Result<Option<ArtifactRecord>> {
        // `WITH_SHA` named in the template, so the query-plan guard reads it.
        let sql = format!(
            "SELECT {ARTIFACT_COLUMNS} {WITH_SHA} {BY_NEWEST_RUN} LIMIT 1",
            WITH_SHA = WITH_SHA.text(self.db().backend())
        );
        self.db()
            .query_opt(&sql, params![sha256, project, run], ArtifactRecord::read)
    }

    /// The artifact registered at `path` (relative to the artifacts
    /// directory, `/`-separated), optionally only in `project` and/or `run`.
    pub fn artifact_at_path(
        &self,
        path: &str,
        project: Option<&str>,
        run: Option<&str>,
    ) -> Result<Option<ArtifactRecord>> {
        let sql = format!(
            "SELECT {ARTIFACT_COLUMNS} {AT_PATH} {BY_NEWEST_RUN} LIMIT 1",
            AT_PATH = AT_PATH.text(self.db().backend())
        );
        self.db()
            .query_opt(&sql, params![path, project, run], ArtifactRecord::read)
    }

    /// Every artifact within `max_depth` edges, in `direction`, of the
    /// artifacts with bytes `sha256` in `project` and `run` (`None`: any),
    /// with the edges walked to reach them (see [`ANCESTORS`]). Of several
    /// copies of the same bytes, the one in run `prefer` (project, run)
    /// comes first.
    pub fn lineage_walk(
        &self,
        sha256: &str,
        (project, run): (Option<&str>, Option<&str>),
        prefer: (&str, &str),
        direction: Direction,
        max_depth: u32,
    ) -> Result<Vec<WalkRow>> {
        let sql = match direction {
            Direction::Ancestors => ANCESTORS,
            Direction::Descendants => DESCENDANTS,
        };
        self.db().query_map(
            sql,
            params![sha256, max_depth, project, run, prefer.0, prefer.1],
            walk_row,
        )
    }
}
