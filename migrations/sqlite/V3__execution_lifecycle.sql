-- V3: a stage execution is recorded as `running` before its stage computes
-- and completed at the stage's commit point, so a killed run leaves a row
-- that says what was in flight; the next run of that run marks such rows
-- `interrupted`.
--
-- Why a rebuild: SQLite cannot alter a CHECK constraint or a NOT NULL in
-- place. A running row has no finish time or duration yet, so both become
-- nullable. The two views that read the table are dropped and recreated
-- unchanged around the rebuild (a view naming a dropped table would make the
-- rename fail).

DROP VIEW stage_timings;
DROP VIEW latest_stage_executions;

CREATE TABLE stage_executions_v3 (
    execution_id   INTEGER PRIMARY KEY,
    project_id     TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    stage          INTEGER NOT NULL CHECK (stage BETWEEN 1 AND 5),
    stage_name     TEXT NOT NULL,
    stage_version  TEXT NOT NULL,
    status         TEXT NOT NULL
        CHECK (status IN ('running', 'executed', 'skipped', 'failed', 'interrupted')),
    reason         TEXT NOT NULL,
    started_at     TEXT NOT NULL,
    -- NULL while running (and for a row a killed process left running).
    finished_at    TEXT,
    duration_ms    INTEGER CHECK (duration_ms >= 0),
    -- JSON object: input name (`config`, `Script`, …) -> sha256.
    input_hashes   TEXT NOT NULL,
    output_sha256  TEXT,
    artifact_id    INTEGER REFERENCES artifacts (artifact_id) ON DELETE SET NULL,
    error          TEXT,
    FOREIGN KEY (project_id, run_id) REFERENCES runs (project_id, run_id) ON DELETE CASCADE
) STRICT;

INSERT INTO stage_executions_v3
SELECT execution_id, project_id, run_id, attempt, stage, stage_name, stage_version, status,
       reason, started_at, finished_at, duration_ms, input_hashes, output_sha256, artifact_id,
       error
FROM stage_executions;

DROP TABLE stage_executions;
ALTER TABLE stage_executions_v3 RENAME TO stage_executions;

CREATE INDEX stage_executions_by_run_stage
    ON stage_executions (project_id, run_id, stage, execution_id DESC);
CREATE INDEX stage_executions_by_artifact ON stage_executions (artifact_id);
-- Finding a run's in-flight rows at its next start.
CREATE INDEX stage_executions_running
    ON stage_executions (project_id, run_id) WHERE status = 'running';

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
CREATE VIEW latest_stage_executions AS
SELECT se.*
FROM stage_executions se
WHERE se.execution_id = (
    SELECT max(x.execution_id) FROM stage_executions x
    WHERE x.project_id = se.project_id AND x.run_id = se.run_id AND x.stage = se.stage
);
