-- V6: mark the database as an orchestrator registry.
--
-- `reindex` replaces the registry at `--db`, so it must tell a registry of
-- this tool from anyone else's database. SQLite keeps that mark in the
-- file header (PRAGMA application_id = 1330791240, 0x4F524348, "ORCH"), so
-- it can be read even from a damaged file. PostgreSQL has no header a
-- client can write; the mark is a comment on the `runs` table:
--
--   SELECT obj_description('runs'::regclass, 'pg_class');
--
-- A comment rather than a marker table, so the two engines keep the same
-- tables (tests/schema_parity.rs compares them), no query or permission
-- has one more object to care about, and it goes wherever the schema goes
-- (pg_dump carries it with the table, unlike a COMMENT ON DATABASE, which
-- would also need the database's name written into the migration). On the
-- table and not on the schema, because the registry may live in any schema
-- and that schema may hold other things; `runs` is the registry's own.
-- The number is SQLite's application_id, so one constant names both.

COMMENT ON TABLE runs IS
    'orchestrator registry; application_id 1330791240 (0x4F524348, "ORCH")';
