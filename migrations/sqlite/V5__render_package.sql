-- V5: a run's package (`orchestrator package`) is registered like any
-- artifact, so `lineage RenderPackage` and `verify` cover it: the artifacts
-- table accepts the type `RenderPackage`, made by step 6 (after the five
-- stages).
--
-- Why a rebuild: SQLite cannot alter a CHECK constraint in place. The
-- registry runs migrations with foreign-key enforcement off (and checks
-- every key afterwards), so dropping the old table cascades nothing; the
-- views that read it are dropped and recreated unchanged around it.

DROP VIEW run_overview;
DROP VIEW artifact_overview;
DROP VIEW lineage_edges;

CREATE TABLE artifacts_v5 (
    artifact_id    INTEGER PRIMARY KEY,
    project_id     TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    artifact_type  TEXT NOT NULL
        CHECK (artifact_type IN ('Script', 'ShotList', 'AssetManifest', 'RenderPlan',
                                 'RenderOutput', 'RenderPackage')),
    sha256         TEXT NOT NULL CHECK (length(sha256) = 64),
    schema_id      TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    path           TEXT NOT NULL,
    size_bytes     INTEGER NOT NULL CHECK (size_bytes >= 0),
    -- 1–5: the pipeline's stages; 6: the package.
    stage          INTEGER NOT NULL CHECK (stage BETWEEN 1 AND 6),
    stage_name     TEXT NOT NULL,
    stage_version  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    meta_json      TEXT NOT NULL,
    UNIQUE (project_id, run_id, artifact_type),
    FOREIGN KEY (project_id, run_id) REFERENCES runs (project_id, run_id) ON DELETE CASCADE
) STRICT;

INSERT INTO artifacts_v5 SELECT * FROM artifacts;
DROP TABLE artifacts;
ALTER TABLE artifacts_v5 RENAME TO artifacts;

-- The indexes the table had after V4, unchanged.
CREATE INDEX artifacts_by_sha256_run ON artifacts (sha256, project_id, run_id);
CREATE INDEX artifacts_by_type ON artifacts (artifact_type, created_at DESC);
CREATE INDEX artifacts_by_path ON artifacts (path);

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

-- Every parent edge with both ends named. `parent_unchanged` is 0 when the
-- parent was re-made after this child was (the child may be stale).
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
