-- V4: keep `runs list`, `runs show` and `lineage` instant on a registry of
-- hundreds of thousands of runs.
--
-- Why: at 100,000 runs the V1 indexes left two questions without a good
-- path. `runs list --project P` had to sort every run of P, and counting the
-- runs a listing leaves out ("showing the newest 50 of N") walked an index
-- entry per run. Every query the tool issues is checked with EXPLAIN QUERY
-- PLAN by a unit test (src/registry/query_plans.rs); these are the indexes
-- that check asks for.

-- A project's runs, newest first: `runs list --project P` reads its page of
-- runs straight from here, and `lineage <Type> --project P` its newest run.
CREATE INDEX runs_by_project_started ON runs (project_id, started_at DESC);

-- How many runs each (project, recorded status) has, kept by the triggers
-- below in the same transaction as the change to `runs`, so counting runs
-- costs a row per project instead of a row per run.
CREATE TABLE run_counts (
    project_id TEXT NOT NULL,
    status     TEXT NOT NULL,
    runs       INTEGER NOT NULL CHECK (runs >= 0),
    PRIMARY KEY (project_id, status)
) STRICT, WITHOUT ROWID;

INSERT INTO run_counts (project_id, status, runs)
SELECT project_id, status, count(*) FROM runs GROUP BY project_id, status;

CREATE TRIGGER run_counts_on_insert AFTER INSERT ON runs
BEGIN
    INSERT INTO run_counts (project_id, status, runs) VALUES (NEW.project_id, NEW.status, 1)
    ON CONFLICT (project_id, status) DO UPDATE SET runs = runs + 1;
END;

CREATE TRIGGER run_counts_on_delete AFTER DELETE ON runs
BEGIN
    UPDATE run_counts SET runs = runs - 1
    WHERE project_id = OLD.project_id AND status = OLD.status;
END;

-- `run` moves a run to `running` and back on every invocation.
CREATE TRIGGER run_counts_on_update AFTER UPDATE OF project_id, status ON runs
WHEN OLD.project_id IS NOT NEW.project_id OR OLD.status IS NOT NEW.status
BEGIN
    UPDATE run_counts SET runs = runs - 1
    WHERE project_id = OLD.project_id AND status = OLD.status;
    INSERT INTO run_counts (project_id, status, runs) VALUES (NEW.project_id, NEW.status, 1)
    ON CONFLICT (project_id, status) DO UPDATE SET runs = runs + 1;
END;

-- Every registered copy of some bytes, with its run: a hash target of
-- `lineage` finds its distinct hashes and the copies its walk starts from
-- in the index alone, without reading a row (each carries its meta record)
-- per copy. It replaces the V1 index on sha256 alone, which it covers.
CREATE INDEX artifacts_by_sha256_run ON artifacts (sha256, project_id, run_id);
DROP INDEX artifacts_by_sha256;
