-- V6: mark the file as an orchestrator registry in its header.
--
-- `reindex` replaces the file at `--db`, so it must tell a registry of this
-- tool (even a damaged one: replacing it is the point) from anyone else's
-- file. SQLite's application_id (header offset 68) is readable without
-- SQLite, from the first 100 bytes, even when the rest of the file is
-- corrupt. 1330791240 is 0x4F524348, "ORCH" in ASCII.

PRAGMA application_id = 1330791240;
