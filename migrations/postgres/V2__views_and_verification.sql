-- V2: make the registry pleasant to query by hand (with psql here), and
-- remember what `orchestrator verify` last found for each artifact.
--
-- Why views: the tables are normalised for the tool (ids, composite keys,
-- JSON columns); people asking their own questions want names joined in and
-- columns that explain themselves. Views cost nothing to keep in step, since
-- they are computed on read. Same views, same columns, as
-- migrations/sqlite/V2__views_and_verification.sql.

-- The last verification of each artifact. One row per artifact, replaced on
-- every verify; `problems` is a JSON array of {kind, message} objects.
-- artifact_id is a plain key here, not an identity: it is always the id of
-- the artifact verified (in SQLite it is a row id only by declaration).
CREATE TABLE artifact_verifications (
    artifact_id BIGINT PRIMARY KEY REFERENCES artifacts (artifact_id) ON DELETE CASCADE,
    verified_at TEXT COLLATE "C" NOT NULL,
    result      TEXT COLLATE "C" NOT NULL CHECK (result IN ('ok', 'problem')),
    problems    TEXT COLLATE "C" NOT NULL DEFAULT '[]'
);

-- Runs with their project title and artifact count, newest first when
-- ordered by started_at. `status` is what the registry recorded: a run whose
-- process died still says 'running' here (`orchestrator runs list` shows
-- it as 'interrupted' by checking its lock).
CREATE VIEW run_overview AS
SELECT
    r.run_id,
    r.project_id,
    p.title AS project_title,
    r.status,
    r.stages_executed,
    r.stages_skipped,
    r.started_at,
    r.finished_at,
    r.duration_ms,
    r.attempts,
    (SELECT count(*) FROM artifacts a
      WHERE a.project_id = r.project_id AND a.run_id = r.run_id) AS artifact_count,
    r.config_hash,
    r.run_dir,
    r.error
FROM runs r
JOIN projects p ON p.project_id = r.project_id;

-- Artifacts with their run, project and last verification.
CREATE VIEW artifact_overview AS
SELECT
    a.artifact_id,
    a.project_id,
    a.run_id,
    a.stage,
    a.artifact_type,
    a.sha256,
    substr(a.sha256, 1, 12) AS short_sha256,
    a.path,
    a.size_bytes,
    a.schema_version,
    a.stage_name,
    a.stage_version,
    a.created_at,
    v.verified_at AS last_verified_at,
    v.result AS last_verify_result
FROM artifacts a
LEFT JOIN artifact_verifications v ON v.artifact_id = a.artifact_id;

-- Every parent edge with both ends named. `parent_unchanged` is false when
-- the parent was re-made after this child was (the child may be stale).
-- It is a boolean here where SQLite has 0/1: PostgreSQL's comparison is
-- boolean, `WHERE NOT parent_unchanged` reads the same on both engines, and
-- the registry's row reader takes a boolean for an integer.
CREATE VIEW lineage_edges AS
SELECT
    c.project_id,
    c.run_id,
    c.artifact_id AS child_id,
    c.artifact_type AS child_type,
    c.sha256 AS child_sha256,
    p.artifact_id AS parent_id,
    p.artifact_type AS parent_type,
    p.sha256 AS parent_sha256,
    e.parent_sha256 = p.sha256 AS parent_unchanged
FROM artifact_edges e
JOIN artifacts c ON c.artifact_id = e.child_id
JOIN artifacts p ON p.artifact_id = e.parent_id;

-- Every stage decision of every invocation, with what it cost.
CREATE VIEW stage_timings AS
SELECT
    project_id,
    run_id,
    attempt,
    stage,
    stage_name,
    status,
    reason,
    duration_ms,
    started_at,
    finished_at,
    substr(output_sha256, 1, 12) AS short_sha256
FROM stage_executions;

-- The newest decision for each (run, stage): what `runs show` displays.
-- PostgreSQL expands `se.*` when the view is made, SQLite when it is read;
-- the same here, since no later version adds a column to stage_executions.
CREATE VIEW latest_stage_executions AS
SELECT se.*
FROM stage_executions se
WHERE se.execution_id = (
    SELECT max(x.execution_id) FROM stage_executions x
    WHERE x.project_id = se.project_id AND x.run_id = se.run_id AND x.stage = se.stage
);
