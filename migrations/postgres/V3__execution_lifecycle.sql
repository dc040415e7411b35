-- V3: a stage execution is recorded as `running` before its stage computes
-- and completed at the stage's commit point, so a killed run leaves a row
-- that says what was in flight; the next run of that run marks such rows
-- `interrupted`.
--
-- A running row has no finish time or duration yet, so both become
-- nullable, and the status CHECK accepts the two new states. SQLite had to
-- rebuild the table for that (migrations/sqlite/V3__execution_lifecycle.sql)
-- and drop and recreate the two views around it; PostgreSQL alters the
-- table in place, so the views, the indexes and the rows stay as they are.

ALTER TABLE stage_executions
    ALTER COLUMN finished_at DROP NOT NULL,
    ALTER COLUMN duration_ms DROP NOT NULL,
    DROP CONSTRAINT stage_executions_status_check,
    ADD CONSTRAINT stage_executions_status_check
        CHECK (status IN ('running', 'executed', 'skipped', 'failed', 'interrupted'));

-- Finding a run's in-flight rows at its next start.
CREATE INDEX stage_executions_running
    ON stage_executions (project_id, run_id) WHERE status = 'running';
