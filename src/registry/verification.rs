//! Queries `verify` needs: the file's own integrity, recording results,
//! stale edges, run summaries.
//!
//! `verify` asks about many runs at once. Each question is one query over
//! all of them, not one per run: the runs go in as a single bound
//! parameter, a JSON array of `[project_id, run_id]` pairs, which
//! `json_each` turns into rows joined to each table by its primary key or
//! unique index. Results come back grouped by the pair's position.
//!
//! PostgreSQL has no `json_each` over an array's elements with their index:
//! there the array is `json_array_elements(…) WITH ORDINALITY`, whose
//! ordinal counts from 1 where `json_each`'s `key` counts from 0, so its
//! texts select `ord - 1`.

use super::Registry;
use super::artifacts::ArtifactRecord;
use super::db::{Row, Sql, params};

use super::open::unusable;
use crate::error::{Error, Result};

/// One artifact's verification result, as recorded.
#[derive(Debug, Clone)]
pub struct Verification {
    pub artifact_id: i64,
    /// The hash the artifact was registered with when it was read: the
    /// result is recorded only for that same row (see
    /// [`Registry::record_verifications`]).
    pub sha256: String,
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
/// SQLite only: a PostgreSQL server checks its own pages.
const QUICK_CHECK: &str = "PRAGMA quick_check";

/// Only while the artifact is still the one that was checked: a `gc`
/// running beside `verify` may have deleted it (and a new artifact taken
/// its id) since it was read.
const UPSERT_VERIFICATION: &str = "
    INSERT INTO artifact_verifications (artifact_id, verified_at, result, problems)
    SELECT ?1, ?2, ?3, ?4
    WHERE EXISTS (SELECT 1 FROM artifacts WHERE artifact_id = ?1 AND sha256 = ?5)
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

/// `ArtifactRecord::from_row`'s columns, then the run's position in ?1.
/// Qualified: `json_each` has columns of its own (`path`, `key`, …).
const ARTIFACTS_OF_RUNS: Sql<'static> = Sql::dialects(
    "
    SELECT a.artifact_id, a.project_id, a.run_id, a.artifact_type, a.sha256, a.schema_id,
        a.schema_version, a.path, a.size_bytes, a.stage, a.stage_name, a.stage_version,
        a.created_at, a.meta_json, j.key
    FROM json_each(?1) j
    JOIN artifacts a ON a.project_id = j.value ->> 0 AND a.run_id = j.value ->> 1",
    "
    SELECT a.artifact_id, a.project_id, a.run_id, a.artifact_type, a.sha256, a.schema_id,
        a.schema_version, a.path, a.size_bytes, a.stage, a.stage_name, a.stage_version,
        a.created_at, a.meta_json, j.ord - 1
    FROM json_array_elements(CAST(?1 AS json)) WITH ORDINALITY AS j (value, ord)
    JOIN artifacts a ON a.project_id = j.value ->> 0 AND a.run_id = j.value ->> 1",
);

/// The bytes registered for `?1`'s runs: `verify`'s progress total.
/// PostgreSQL's `sum` of a bigint is a numeric, cast back.
const ARTIFACT_BYTES_OF_RUNS: Sql<'static> = Sql::dialects(
    "
    SELECT coalesce(sum(a.size_bytes), 0)
    FROM json_each(?1) j
    JOIN artifacts a ON a.project_id = j.value ->> 0 AND a.run_id = j.value ->> 1",
    "
    SELECT CAST(coalesce(sum(a.size_bytes), 0) AS BIGINT)
    FROM json_array_elements(CAST(?1 AS json)) WITH ORDINALITY AS j (value, ord)
    JOIN artifacts a ON a.project_id = j.value ->> 0 AND a.run_id = j.value ->> 1",
);

/// Only ids and the recorded hash: the child comes from the artifacts
/// index alone, and the parent's current hash from the artifacts already
/// read (a row lookup per edge was half this query's cost).
const EDGES_OF_RUNS: Sql<'static> = Sql::dialects(
    "
    SELECT j.key, e.child_id, e.parent_id, e.parent_sha256
    FROM json_each(?1) j
    JOIN artifacts c ON c.project_id = j.value ->> 0 AND c.run_id = j.value ->> 1
    JOIN artifact_edges e ON e.child_id = c.artifact_id",
    "
    SELECT j.ord - 1, e.child_id, e.parent_id, e.parent_sha256
    FROM json_array_elements(CAST(?1 AS json)) WITH ORDINALITY AS j (value, ord)
    JOIN artifacts c ON c.project_id = j.value ->> 0 AND c.run_id = j.value ->> 1
    JOIN artifact_edges e ON e.child_id = c.artifact_id",
);

const PARENT: &str = "SELECT artifact_type, sha256, stage FROM artifacts WHERE artifact_id = ?1";

/// The position in ?1 of each run the registry still records.
const RUNS_PRESENT: Sql<'static> = Sql::dialects(
    "
    SELECT j.key
    FROM json_each(?1) j
    JOIN runs r ON r.project_id = j.value ->> 0 AND r.run_id = j.value ->> 1",
    "
    SELECT j.ord - 1
    FROM json_array_elements(CAST(?1 AS json)) WITH ORDINALITY AS j (value, ord)
    JOIN runs r ON r.project_id = j.value ->> 0 AND r.run_id = j.value ->> 1",
);

const RUN_SUMMARIES_OF_RUNS: Sql<'static> = Sql::dialects(
    "
    SELECT s.path, s.sha256, j.key
    FROM json_each(?1) j
    JOIN run_summaries s ON s.project_id = j.value ->> 0 AND s.run_id = j.value ->> 1",
    "
    SELECT s.path, s.sha256, j.ord - 1
    FROM json_array_elements(CAST(?1 AS json)) WITH ORDINALITY AS j (value, ord)
    JOIN run_summaries s ON s.project_id = j.value ->> 0 AND s.run_id = j.value ->> 1",
);

/// `runs` as the JSON array the batched queries bind.
fn runs_param(runs: &[(&str, &str)]) -> String {
    // Strings only: serializing them cannot fail.
    serde_json::to_string(runs).unwrap_or_else(|_| "[]".to_string())
}

/// The run's position in the array, as `json_each` numbers it (from 0).
fn position(r: &Row<'_>, idx: usize, runs: usize) -> Result<usize> {
    let key: i64 = r.get(idx)?;
    usize::try_from(key)
        .ok()
        .filter(|k| *k < runs)
        .ok_or_else(|| {
            Error::Sql(super::db::DbError::Column {
                column: idx,
                message: format!("run position {key} is not one of the {runs} asked"),
            })
        })
}

impl Registry {
    /// Run `PRAGMA quick_check`. A damaged file is an error naming it (exit
    /// 3), not a verification finding: nothing it says can be trusted. A
    /// PostgreSQL registry has no file of its own to check this way (the
    /// server checksums and recovers its pages), so it passes.
    pub fn quick_check(&self) -> Result<()> {
        let Some(conn) = self.db().sqlite() else {
            return Ok(());
        };
        let unusable = |e| unusable(&self.path, e);
        let mut stmt = conn.prepare(QUICK_CHECK).map_err(unusable)?;
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

    /// Record each artifact's latest verification, in one transaction. A
    /// result whose artifact is gone, or is no longer the row that was
    /// checked (same id and sha256), is dropped, not an error.
    pub fn record_verifications(&mut self, results: &[Verification]) -> Result<()> {
        self.write(|tx| {
            for v in results {
                tx.db().execute(
                    UPSERT_VERIFICATION,
                    params![
                        v.artifact_id,
                        v.verified_at,
                        if v.ok { "ok" } else { "problem" },
                        v.problems,
                        v.sha256
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// The size of every artifact registered for `runs`, summed: one query
    /// for all of them.
    pub fn artifact_bytes_of_runs(&self, runs: &[(&str, &str)]) -> Result<u64> {
        let total: i64 =
            self.db()
                .query_row(ARTIFACT_BYTES_OF_RUNS, params![runs_param(runs)], |r| {
                    r.get(0)
                })?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Every artifact registered for each of `runs`, in stage order: one
    /// query for all of them.
    pub fn artifacts_of_runs(&self, runs: &[(&str, &str)]) -> Result<Vec<Vec<ArtifactRecord>>> {
        let mut out: Vec<Vec<ArtifactRecord>> = vec![Vec::new(); runs.len()];
        self.db()
            .for_each(ARTIFACTS_OF_RUNS, params![runs_param(runs)], |r| {
                out[position(r, 14, runs.len())?].push(ArtifactRecord::read(r)?);
                Ok(())
            })?;
        // Sorted here rather than by SQL, which would sort all rows at once.
        for artifacts in &mut out {
            artifacts.sort_by_key(|a| a.stage);
        }
        Ok(out)
    }

    /// The stale edges of each of `runs` (see [`Registry::stale_edges`]),
    /// by child stage then parent stage: one query for all of them.
    /// `artifacts` is what [`Registry::artifacts_of_runs`] returned for
    /// `runs`; parents' current hashes are taken from it rather than read
    /// again (a parent outside its child's run is looked up).
    pub fn stale_edges_of_runs(
        &self,
        runs: &[(&str, &str)],
        artifacts: &[Vec<ArtifactRecord>],
    ) -> Result<Vec<Vec<StaleEdge>>> {
        let mut out: Vec<Vec<(u8, u8, StaleEdge)>> = vec![Vec::new(); runs.len()];
        // Read whole before any parent is looked up: the rows of one query
        // are not read while another runs on the same connection.
        let edges = self
            .db()
            .query_map(EDGES_OF_RUNS, params![runs_param(runs)], |r| {
                let i = position(r, 0, runs.len())?;
                Ok((i, r.get::<i64>(1)?, r.get::<i64>(2)?, r.get::<String>(3)?))
            })?;
        for (i, child_id, parent_id, recorded) in edges {
            let in_run = |id| artifacts[i].iter().find(|a| a.artifact_id == id);
            let Some(child) = in_run(child_id) else {
                continue; // Inserted since `artifacts` was read.
            };
            let (parent_type, parent_sha256, parent_stage) = match in_run(parent_id) {
                Some(p) => (p.artifact_type.clone(), p.sha256.clone(), p.stage),
                None => match self.db().query_opt(PARENT, params![parent_id], |p| {
                    Ok((p.get(0)?, p.get(1)?, p.get(2)?))
                })? {
                    Some(parent) => parent,
                    None => continue,
                },
            };
            if parent_sha256 != recorded {
                out[i].push((
                    child.stage,
                    parent_stage,
                    StaleEdge {
                        child_type: child.artifact_type.clone(),
                        child_path: child.path.clone(),
                        parent_type,
                        recorded_parent_sha256: recorded,
                        parent_sha256,
                    },
                ));
            }
        }
        Ok(out
            .into_iter()
            .map(|mut edges| {
                edges.sort_by_key(|(child, parent, _)| (*child, *parent));
                edges.into_iter().map(|(_, _, e)| e).collect()
            })
            .collect())
    }

    /// Each of `runs`' registered run summary (see
    /// [`Registry::run_summary_of`]): one query for all of them.
    pub fn run_summaries_of(&self, runs: &[(&str, &str)]) -> Result<Vec<Option<(String, String)>>> {
        let mut out = vec![None; runs.len()];
        self.db()
            .for_each(RUN_SUMMARIES_OF_RUNS, params![runs_param(runs)], |r| {
                out[position(r, 2, runs.len())?] = Some((r.get(0)?, r.get(1)?));
                Ok(())
            })?;
        Ok(out)
    }

    /// Whether the registry still records each of `runs` (a `gc` may have
    /// removed some since they were listed): one query for all of them.
    pub fn runs_present(&self, runs: &[(&str, &str)]) -> Result<Vec<bool>> {
        let mut out = vec![false; runs.len()];
        self.db()
            .for_each(RUNS_PRESENT, params![runs_param(runs)], |r| {
                out[position(r, 0, runs.len())?] = true;
                Ok(())
            })?;
        Ok(out)
    }

    /// Edges of one run whose parent changed after the child was made.
    pub fn stale_edges(&self, project_id: &str, run_id: &str) -> Result<Vec<StaleEdge>> {
        self.db()
            .query_map(STALE_EDGES, params![project_id, run_id], stale_edge)
    }

    /// The registered run summary's path (relative to the artifacts
    /// directory) and sha256.
    pub fn run_summary_of(
        &self,
        project_id: &str,
        run_id: &str,
    ) -> Result<Option<(String, String)>> {
        self.db()
            .query_opt(RUN_SUMMARY, params![project_id, run_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
    }
}

fn stale_edge(r: &Row<'_>) -> Result<StaleEdge> {
    Ok(StaleEdge {
        child_type: r.get(0)?,
        child_path: r.get(1)?,
        parent_type: r.get(2)?,
        recorded_parent_sha256: r.get(3)?,
        parent_sha256: r.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{ComputeOrigin, CreationParams, MetaRecord, ParentRef};
    use crate::registry::db::Backend;
    use crate::registry::{RebuiltArtifact, RebuiltRun, RebuiltSummary, RunRow};

    const AT: &str = "2025-01-01T00:00:00Z";

    fn sha(c: char) -> String {
        c.to_string().repeat(64)
    }

    /// A run with a Script and a ShotList made from it.
    fn rebuilt(project: &str, run: &str) -> RebuiltRun {
        let dir = format!("{project}/{run}");
        let meta = |ty: &str, stage: u8, sha256: String, parents: Vec<ParentRef>| MetaRecord {
            artifact_type: ty.to_string(),
            path: format!("{ty}.json"),
            sha256,
            size_bytes: 10,
            schema_id: format!("urn:{ty}"),
            schema_version: "1.0.0".to_string(),
            project_id: project.to_string(),
            run_id: run.to_string(),
            parents,
            creation_params: CreationParams {
                stage,
                stage_name: ty.to_lowercase(),
                stage_version: "1".to_string(),
                config_hash: sha('c'),
            },
            compute_origin: ComputeOrigin {
                engine: "test".to_string(),
                orchestrator_version: "0".to_string(),
                host: "h".to_string(),
            },
            created_at: AT.to_string(),
        };
        let script = meta("Script", 1, sha('1'), vec![]);
        let shots = meta(
            "ShotList",
            2,
            sha('2'),
            vec![ParentRef {
                artifact_type: "Script".to_string(),
                sha256: sha('1'),
                path: "Script.json".to_string(),
            }],
        );
        RebuiltRun {
            run: RunRow {
                run_id: run.to_string(),
                project_id: project.to_string(),
                title: project.to_string(),
                status: crate::registry::RunStatus::Complete,
                started_at: AT.to_string(),
                created_at: AT.to_string(),
                config_path: None,
                finished_at: Some(AT.to_string()),
                duration_ms: Some(1),
                stages_executed: 2,
                stages_skipped: 0,
                attempts: 1,
                config_hash: sha('c'),
                run_dir: dir.clone(),
                error: None,
                orchestrator_version: "0".to_string(),
                host: "h".to_string(),
            },
            config_json: "{}".to_string(),
            summary: RebuiltSummary {
                path: format!("{dir}/run_summary.json"),
                sha256: sha('s'),
                json: "{}".to_string(),
                written_at: AT.to_string(),
            },
            artifacts: [script, shots]
                .into_iter()
                .map(|m| RebuiltArtifact {
                    path: format!("{dir}/{}", m.path),
                    meta_json: serde_json::to_string(&m).unwrap(),
                    meta: m,
                })
                .collect(),
            executions: vec![],
        }
    }

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::open(&dir.path().join("registry.db")).unwrap();
        let runs = [rebuilt("p", "a"), rebuilt("p", "b"), rebuilt("q", "c")];
        for outcome in registry.insert_rebuilt(&runs).unwrap() {
            outcome.unwrap();
        }
        (dir, registry)
    }

    #[test]
    fn batched_queries_answer_per_run_in_the_order_asked() {
        let (_dir, registry) = registry();
        // Make the Script of q/c stale for its ShotList.
        registry
            .db()
            .execute(
                "UPDATE artifact_edges SET parent_sha256 = ?1 WHERE child_id =
                 (SELECT artifact_id FROM artifacts WHERE project_id = 'q' AND artifact_type = 'ShotList')",
                params![sha('f')],
            )
            .unwrap();
        let asked = [("q", "c"), ("p", "nosuch"), ("p", "a")];

        let artifacts = registry.artifacts_of_runs(&asked).unwrap();
        let names: Vec<Vec<String>> = artifacts
            .iter()
            .map(|run| {
                run.iter()
                    .map(|a| format!("{}/{}:{}", a.project_id, a.run_id, a.artifact_type))
                    .collect()
            })
            .collect();
        assert_eq!(
            names,
            [
                vec!["q/c:Script", "q/c:ShotList"],
                vec![],
                vec!["p/a:Script", "p/a:ShotList"]
            ]
        );
        for (key, run) in asked.iter().zip(&artifacts) {
            for a in run {
                assert_eq!(
                    Some(a),
                    registry
                        .artifact_in_run(key.0, key.1, &a.artifact_type)
                        .unwrap()
                        .as_ref()
                );
            }
        }

        // An edge to a parent in another run: looked up, not in `artifacts`.
        registry
            .db()
            .execute(
                "INSERT INTO artifact_edges (child_id, parent_id, parent_sha256)
                 SELECT c.artifact_id, p.artifact_id, ?1 FROM artifacts c, artifacts p
                 WHERE c.project_id = 'q' AND c.artifact_type = 'ShotList'
                   AND p.project_id = 'p' AND p.run_id = 'b' AND p.artifact_type = 'Script'",
                params![sha('e')],
            )
            .unwrap();
        let stale = registry.stale_edges_of_runs(&asked, &artifacts).unwrap();
        let by_parent_hash = |mut edges: Vec<StaleEdge>| {
            edges.sort_by(|a, b| a.recorded_parent_sha256.cmp(&b.recorded_parent_sha256));
            edges
        };
        assert_eq!(
            by_parent_hash(stale[0].clone()),
            by_parent_hash(registry.stale_edges("q", "c").unwrap())
        );
        assert_eq!(stale[0].len(), 2);
        assert!(stale[1].is_empty() && stale[2].is_empty());

        let summaries = registry.run_summaries_of(&asked).unwrap();
        assert_eq!(
            summaries,
            [
                Some(("q/c/run_summary.json".to_string(), sha('s'))),
                None,
                Some(("p/a/run_summary.json".to_string(), sha('s'))),
            ]
        );
        assert!(registry.artifacts_of_runs(&[]).unwrap().is_empty());
    }

    #[test]
    fn batched_queries_search_by_index_never_scanning_a_table() {
        let (_dir, registry) = registry();
        for sql in [
            ARTIFACTS_OF_RUNS,
            EDGES_OF_RUNS,
            RUN_SUMMARIES_OF_RUNS,
            ARTIFACT_BYTES_OF_RUNS,
        ] {
            let sql = sql.text(Backend::Sqlite);
            let mut stmt = registry
                .db()
                .sqlite()
                .unwrap()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let plan: Vec<String> = stmt
                .query_map([r#"[["p","a"]]"#], |r| r.get(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let scans: Vec<&String> = plan
                .iter()
                .filter(|d| d.starts_with("SCAN") && !d.contains("VIRTUAL TABLE"))
                .collect();
            assert!(scans.is_empty(), "{sql}\n{plan:#?}");
            assert!(plan.iter().any(|d| d.starts_with("SEARCH")), "{plan:#?}");
        }
    }
}
