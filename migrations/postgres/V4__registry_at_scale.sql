-- V4: keep `runs list`, `runs show` and `lineage` instant on a registry of
-- hundreds of thousands of runs.
--
-- Why: at 100,000 runs the V1 indexes left two questions without a good
-- path. `runs list --project P` had to sort every run of P, and counting the
-- runs a listing leaves out ("showing the newest 50 of N") walked an index
-- entry per run. The same indexes, table and triggers as
-- migrations/sqlite/V4__registry_at_scale.sql; a SQLite trigger's body is
-- a plpgsql trigger function here, one per trigger, named after it.

-- A project's runs, newest first: `runs list --project P` reads its page of
-- runs straight from here, and `lineage <Type> --project P` its newest run.
CREATE INDEX runs_by_project_started ON runs (project_id, started_at DESC);

-- How many runs each (project, recorded status) has, kept by the triggers
-- below in the same transaction as the change to `runs`, so counting runs
-- costs a row per project instead of a row per run.
CREATE TABLE run_counts (
    project_id TEXT COLLATE "C" NOT NULL,
    status     TEXT COLLATE "C" NOT NULL,
    runs       BIGINT NOT NULL CHECK (runs >= 0),
    PRIMARY KEY (project_id, status)
);

INSERT INTO run_counts (project_id, status, runs)
SELECT project_id, status, count(*) FROM runs GROUP BY project_id, status;

-- INSERT ... ON CONFLICT DO UPDATE is atomic on PostgreSQL too: two hosts
-- inserting the first run of the same (project, status) at once both count.
CREATE FUNCTION run_counts_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_counts (project_id, status, runs) VALUES (NEW.project_id, NEW.status, 1)
    ON CONFLICT (project_id, status) DO UPDATE SET runs = run_counts.runs + 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER run_counts_on_insert AFTER INSERT ON runs
FOR EACH ROW EXECUTE FUNCTION run_counts_on_insert();

CREATE FUNCTION run_counts_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE run_counts SET runs = runs - 1
    WHERE project_id = OLD.project_id AND status = OLD.status;
    RETURN NULL;
END;
$$;

CREATE TRIGGER run_counts_on_delete AFTER DELETE ON runs
FOR EACH ROW EXECUTE FUNCTION run_counts_on_delete();

-- `run` moves a run to `running` and back on every invocation.
CREATE FUNCTION run_counts_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE run_counts SET runs = runs - 1
    WHERE project_id = OLD.project_id AND status = OLD.status;
    INSERT INTO run_counts (project_id, status, runs) VALUES (NEW.project_id, NEW.status, 1)
    ON CONFLICT (project_id, status) DO UPDATE SET runs = run_counts.runs + 1;
    RETURN NULL;
END;
$$;

-- SQLite's `IS NOT` between two values is PostgreSQL's IS DISTINCT FROM.
CREATE TRIGGER run_counts_on_update AFTER UPDATE OF project_id, status ON runs
FOR EACH ROW
WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id OR OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION run_counts_on_update();

-- Every registered copy of some bytes, with its run: a hash target of
-- `lineage` finds its distinct hashes and the copies its walk starts from
-- in the index alone, without reading a row (each carries its meta record)
-- per copy. It replaces the V1 index on sha256 alone, which it covers.
CREATE INDEX artifacts_by_sha256_run ON artifacts (sha256, project_id, run_id);
DROP INDEX artifacts_by_sha256;
