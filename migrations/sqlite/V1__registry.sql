-- V1: the registry's first shape.
--
-- Why: every meta record, parent edge, stage execution and run summary that
-- `orchestrator run` writes as files is indexed here too, so resume
-- decisions, run listings and lineage come from SQL instead of directory
-- scans. The files stay the product; this database is their index and must
-- always agree with them.
--
-- Conventions: timestamps are RFC 3339 UTC text; hashes are lowercase hex
-- sha256; paths are relative to the artifacts directory; JSON columns hold
-- exactly what was written to disk. Tables are STRICT so a wrong type is an
-- error, not a silent conversion.

CREATE TABLE projects (
    project_id    TEXT PRIMARY KEY,
    title         TEXT NOT NULL,
    first_run_at  TEXT NOT NULL,
    last_run_at   TEXT NOT NULL
) STRICT;

-- One row per (project, run id). A run id is derived from the config, so
-- re-running the same config updates the same row; `attempts` counts the
-- invocations and the other columns describe the latest one.
CREATE TABLE runs (
    project_id           TEXT NOT NULL REFERENCES projects (project_id),
    run_id               TEXT NOT NULL,
    config_hash          TEXT NOT NULL CHECK (length(config_hash) = 64),
    config_json          TEXT NOT NULL,
    run_dir              TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed')),
    attempts             INTEGER NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    started_at           TEXT NOT NULL,
    finished_at          TEXT,
    duration_ms          INTEGER,
    stages_executed      INTEGER NOT NULL DEFAULT 0,
    stages_skipped       INTEGER NOT NULL DEFAULT 0,
    error                TEXT,
    orchestrator_version TEXT NOT NULL,
    host                 TEXT NOT NULL,
    PRIMARY KEY (project_id, run_id)
) STRICT;

CREATE INDEX runs_by_started_at ON runs (started_at DESC);
CREATE INDEX runs_by_run_id ON runs (run_id);
CREATE INDEX runs_by_status ON runs (status, started_at DESC);

-- The artifact currently on disk for each (run, type). A re-executed stage
-- updates its row in place, so the row always describes the file.
CREATE TABLE artifacts (
    artifact_id    INTEGER PRIMARY KEY,
    project_id     TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    artifact_type  TEXT NOT NULL
        CHECK (artifact_type IN ('Script', 'ShotList', 'AssetManifest', 'RenderPlan', 'RenderOutput')),
    sha256         TEXT NOT NULL CHECK (length(sha256) = 64),
    schema_id      TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    path           TEXT NOT NULL,
    size_bytes     INTEGER NOT NULL CHECK (size_bytes >= 0),
    stage          INTEGER NOT NULL CHECK (stage BETWEEN 1 AND 5),
    stage_name     TEXT NOT NULL,
    stage_version  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    meta_json      TEXT NOT NULL,
    UNIQUE (project_id, run_id, artifact_type),
    FOREIGN KEY (project_id, run_id) REFERENCES runs (project_id, run_id) ON DELETE CASCADE
) STRICT;

CREATE INDEX artifacts_by_sha256 ON artifacts (sha256);
CREATE INDEX artifacts_by_type ON artifacts (artifact_type, created_at DESC);
CREATE INDEX artifacts_by_path ON artifacts (path);

-- child was made from parent. `parent_sha256` is the parent's hash as the
-- child saw it (its meta record's `parents`), so a parent that changed
-- since is detectable.
CREATE TABLE artifact_edges (
    child_id      INTEGER NOT NULL REFERENCES artifacts (artifact_id) ON DELETE CASCADE,
    parent_id     INTEGER NOT NULL REFERENCES artifacts (artifact_id) ON DELETE CASCADE,
    parent_sha256 TEXT NOT NULL CHECK (length(parent_sha256) = 64),
    PRIMARY KEY (child_id, parent_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX artifact_edges_by_parent ON artifact_edges (parent_id, child_id);

-- Every stage decision of every invocation, newest last. Resume reads the
-- newest completed row for (run, stage).
CREATE TABLE stage_executions (
    execution_id   INTEGER PRIMARY KEY,
    project_id     TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    stage          INTEGER NOT NULL CHECK (stage BETWEEN 1 AND 5),
    stage_name     TEXT NOT NULL,
    stage_version  TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('executed', 'skipped', 'failed')),
    reason         TEXT NOT NULL,
    started_at     TEXT NOT NULL,
    finished_at    TEXT NOT NULL,
    duration_ms    INTEGER NOT NULL CHECK (duration_ms >= 0),
    -- JSON object: input name (`config`, `Script`, …) -> sha256.
    input_hashes   TEXT NOT NULL,
    output_sha256  TEXT,
    artifact_id    INTEGER REFERENCES artifacts (artifact_id) ON DELETE SET NULL,
    error          TEXT,
    FOREIGN KEY (project_id, run_id) REFERENCES runs (project_id, run_id) ON DELETE CASCADE
) STRICT;

CREATE INDEX stage_executions_by_run_stage
    ON stage_executions (project_id, run_id, stage, execution_id DESC);
-- For ON DELETE SET NULL when an artifact row goes.
CREATE INDEX stage_executions_by_artifact ON stage_executions (artifact_id);

-- The latest run_summary.json of each run, verbatim.
CREATE TABLE run_summaries (
    project_id   TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    sha256       TEXT NOT NULL CHECK (length(sha256) = 64),
    path         TEXT NOT NULL,
    summary_json TEXT NOT NULL,
    written_at   TEXT NOT NULL,
    PRIMARY KEY (project_id, run_id),
    FOREIGN KEY (project_id, run_id) REFERENCES runs (project_id, run_id) ON DELETE CASCADE
) STRICT;
