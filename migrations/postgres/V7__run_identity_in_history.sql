-- V7: a run's place in history and its title are its own.
--
-- `started_at` is when the run's latest attempt started, so a no-op re-run
-- of an old take moved it to the top of `runs list`, made it the "newest
-- run" `lineage` resolves to, and made `gc --keep-last` keep it. Listings,
-- newest-run resolution and gc now follow `created_at`: when the run's
-- first attempt started, never changed by a later attempt.
--
-- The title lived only on `projects`, so after running a retitled copy of
-- a config every older run showed the new title. Each run now keeps the
-- title of the config it ran.
--
-- As migrations/sqlite/V7__run_identity_in_history.sql; SQLite's
-- json_extract(config_json, '$.title') is `config_json::json ->> 'title'`.

ALTER TABLE runs ADD COLUMN created_at TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN title TEXT COLLATE "C" NOT NULL DEFAULT '';
-- Where the config came from (`--project`'s path, or `registry:<p>/<r>`
-- for `run --from-run`), for display; unknown for runs recorded before.
ALTER TABLE runs ADD COLUMN config_path TEXT COLLATE "C";

-- What is known of runs recorded before: their latest start (the first is
-- lost), and the title their recorded config gives.
UPDATE runs SET
    created_at = started_at,
    title = coalesce(config_json::json ->> 'title',
                     (SELECT p.title FROM projects p WHERE p.project_id = runs.project_id),
                     '');

-- The listings' indexes, on the new order. The ones on `started_at` are
-- no longer read by any query.
DROP INDEX runs_by_started_at;
DROP INDEX runs_by_project_started;
DROP INDEX runs_by_status;
CREATE INDEX runs_by_created_at ON runs (created_at DESC);
CREATE INDEX runs_by_project_created ON runs (project_id, created_at DESC);
CREATE INDEX runs_by_status_created ON runs (status, created_at DESC);
