-- V5: a run's package (`orchestrator package`) is registered like any
-- artifact, so `lineage RenderPackage` and `verify` cover it: the artifacts
-- table accepts the type `RenderPackage`, made by step 6 (after the five
-- stages).
--
-- SQLite rebuilt the table to change two CHECKs
-- (migrations/sqlite/V5__render_package.sql) and recreated its indexes and
-- the views that read it; PostgreSQL replaces the two constraints in place,
-- and everything else stays as it is.

ALTER TABLE artifacts
    DROP CONSTRAINT artifacts_artifact_type_check,
    ADD CONSTRAINT artifacts_artifact_type_check
        CHECK (artifact_type IN ('Script', 'ShotList', 'AssetManifest', 'RenderPlan',
                                 'RenderOutput', 'RenderPackage')),
    -- 1–5: the pipeline's stages; 6: the package.
    DROP CONSTRAINT artifacts_stage_check,
    ADD CONSTRAINT artifacts_stage_check CHECK (stage BETWEEN 1 AND 6);
