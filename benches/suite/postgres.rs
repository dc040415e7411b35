//! The postgres group: the issue-13 performance targets with the registry
//! on a PostgreSQL server (see `pg_server.rs` for which server, and its
//! settings), beside floors from the server's own `psql` measured in the
//! same run:
//!
//! - the example: first run, forced run and no-op resume against `psql -c
//!   'select count(*) from artifacts'` (no-op: target 3x);
//! - a registry of 100,000 runs: `runs list` (and `--project`), `runs
//!   show`, `lineage RenderOutput` and `lineage <hash> --descendants`, each
//!   against `psql` issuing the SQL the command issues to answer, as one
//!   process over one connection (target 2x), and a no-op resume on it
//!   against one on the example's registry;
//! - 8 concurrent runs of different 2,000-scene projects against the same
//!   one after another (target 0.75x, every run succeeding).
//!
//! The 100,000-run registry is the registry group's: the same generator
//! fills a SQLite file through the library's own bulk insert, and every
//! table is then copied row for row into a migrated PostgreSQL database
//! (`COPY`, ids included), its identity sequences moved past the copied
//! ids, then `VACUUM (ANALYZE)` and a `CHECKPOINT`, so the rows are shaped
//! exactly as the SQLite figures' and no autovacuum or checkpoint of the
//! load runs under the timings. Where a floor needs a row's key (the run
//! shown, the newest run's RenderOutput), it is read once beforehand and
//! written into the SQL as a literal, as a person at `psql` would.

use std::io::Write as _;
use std::path::Path;

use crate::measure::{Row, Sample, Table, Workspace, alternate, in_child, orchestrator, sample};
use crate::pg_server::Server;
use crate::pipeline::{concurrent_cases, median_of};
use crate::registry::{LISTED_PROJECT, RUNS, SHARED, generate_in_child};

/// Rounds of the example's cases, as in the pipeline group.
const EXAMPLE_ROUNDS: usize = 11;

/// Rounds of the 100,000-run registry's cases: more than the registry
/// group's 9, the commands being a few milliseconds each and the machine
/// shared.
const PG_ROUNDS: usize = 15;

pub fn run(table: &mut Table) {
    let Some(server) = Server::start() else {
        return;
    };
    let described = server.describe();
    eprintln!("  {described}");
    table.note(described);
    example(table, &server);
    registry(table, &server);
    concurrent_cases(table, "pg: ", || {
        let url = server.migrated_database("concurrent");
        vec!["--db".to_string(), url]
    });
    // `server` drops here: the cluster stops (or its databases go).
}

fn example_path() -> String {
    let example = std::fs::canonicalize("examples/phase0/project.json")
        .expect("run the suite from the repository root");
    example.to_str().expect("UTF-8 path").to_string()
}

/// The example's cases, round by round as in the pipeline group: a first
/// run against a fresh migrated database, then on one database the floor,
/// a forced run and a no-op resume.
fn example(table: &mut Table, server: &Server) {
    let example = example_path();
    let url = server.migrated_database("example");
    let ws = Workspace::new();
    let run = ["--db", &url, "run", "--project", &example];
    let forced = ["--db", &url, "run", "--project", &example, "--force"];
    sample(&mut orchestrator(ws.path(), &run));
    let (mut first, mut floor, mut force, mut noop) = (vec![], vec![], vec![], vec![]);
    for _ in 0..EXAMPLE_ROUNDS {
        let fresh = Workspace::new();
        let fresh_url = server.migrated_database("first");
        first.push(sample(&mut orchestrator(
            fresh.path(),
            &["--db", &fresh_url, "run", "--project", &example],
        )));
        floor.push(server.psql_floor(1, &url, "select count(*) from artifacts"));
        force.push(sample(&mut orchestrator(ws.path(), &forced)));
        noop.push(sample(&mut orchestrator(ws.path(), &run)));
    }
    let floor = median_of(floor).wall;
    let floor_name = "psql count(*)";
    table.push(
        Row::new(
            "pg example: first run (migrated database)",
            median_of(first),
        )
        .beside(floor_name, floor),
    );
    table.push(
        Row::new("pg example: forced run (--force)", median_of(force)).beside(floor_name, floor),
    );
    table.push(
        Row::new("pg example: no-op resume", median_of(noop)).against(floor_name, floor, 3.0),
    );
}

/// The 100,000-run registry's cases.
fn registry(table: &mut Table, server: &Server) {
    let example = example_path();
    let ws = Workspace::new();
    // The real run, by the binary, into the workspace's SQLite file: its
    // files are on disk, so a resume against either registry checks them.
    sample(&mut orchestrator(
        ws.path(),
        &["run", "--project", &example],
    ));

    // The example's registry alone, for the resume's comparison.
    let small = server.migrated_database("small");
    copy_in_child(&ws.db(), &small);
    let resume = |url: &str| {
        sample(&mut orchestrator(
            ws.path(),
            &["--db", url, "run", "--project", &example],
        ))
    };

    eprintln!("  generating {RUNS} runs (SQLite, as the registry group)…");
    let (generated, _) = generate_in_child(&ws);
    let url = server.migrated_database("registry");
    eprintln!("  copying them into PostgreSQL…");
    let copy = copy_in_child(&ws.db(), &url);
    // 1.7 GB the PostgreSQL cases never read (they name the server), on a
    // disk the server's 1.6 GB and its WAL share.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", ws.db().display()));
    }
    let size = server.psql(
        &url,
        "SELECT pg_database_size(current_database()) / 1048576",
    );
    let counts = server.psql(
        &url,
        "SELECT (SELECT count(*) FROM runs) || ' runs, ' || (SELECT count(*) FROM artifacts)
                || ' artifacts, ' || (SELECT count(*) FROM artifact_edges) || ' edges, '
                || (SELECT count(*) FROM stage_executions) || ' executions'",
    );
    table.push(Row::new(
        format!("pg registry: copy {counts} ({size} MiB), VACUUM ANALYZE, CHECKPOINT"),
        copy,
    ));

    // The command and its floor alternate round by round, so a change in
    // the machine's load (shared with other work) weighs on both alike.
    let case = |table: &mut Table, name: &str, args: &[&str], floor_sql: &str| {
        let mut full = vec!["--db", url.as_str()];
        full.extend_from_slice(args);
        let (cli, floor) = alternate(
            PG_ROUNDS,
            || sample(&mut orchestrator(ws.path(), &full)),
            || server.psql_floor(1, &url, floor_sql),
        );
        table.push(Row::new(format!("pg 100k runs: {name}"), cli).against(
            "psql same SQL",
            floor.wall,
            2.0,
        ));
    };

    case(table, "runs list", &["runs", "list"], &list_sql(None));
    case(
        table,
        &format!("runs list --project {LISTED_PROJECT}"),
        &["runs", "list", "--project", LISTED_PROJECT],
        &list_sql(Some(LISTED_PROJECT)),
    );
    let (shown_project, shown_run) = &generated.shown_run;
    case(
        table,
        "runs show <id>",
        &["runs", "show", shown_run],
        &show_sql(shown_project, shown_run),
    );
    let newest = server.psql(
        &url,
        "SELECT a.project_id, a.run_id, a.sha256 FROM runs r
         JOIN artifacts a ON a.project_id = r.project_id AND a.run_id = r.run_id
         WHERE a.artifact_type = 'RenderOutput'
         ORDER BY r.created_at DESC, r.project_id, r.run_id LIMIT 1",
    );
    let newest: Vec<&str> = newest.split('|').collect();
    case(
        table,
        "lineage RenderOutput (ancestors, newest run)",
        &["lineage", "RenderOutput"],
        &ancestors_sql(newest[0], newest[1], newest[2]),
    );
    let sha = &generated.shared_script;
    let prefix = &sha[..12];
    let root = server.psql(
        &url,
        &format!(
            "SELECT a.project_id, a.run_id FROM artifacts a
             JOIN runs r ON r.project_id = a.project_id AND r.run_id = a.run_id
             WHERE a.sha256 = '{sha}'
             ORDER BY r.created_at DESC, a.project_id, a.run_id LIMIT 1"
        ),
    );
    let root: Vec<&str> = root.split('|').collect();
    case(
        table,
        &format!("lineage <Script shared by {SHARED} runs> --descendants"),
        &["lineage", prefix, "--descendants"],
        &descendants_sql(prefix, sha, (root[0], root[1])),
    );

    // Last: a resume makes the real run the newest one. The two registries'
    // resumes alternate.
    let (small_resume, big_resume) = alternate(PG_ROUNDS, || resume(&small), || resume(&url));
    table.push(Row::new("pg example registry: no-op resume", small_resume));
    table.push(
        Row::new(
            "pg 100k runs: no-op resume (vs example registry)",
            big_resume,
        )
        .against("pg example registry resume", small_resume.wall, 2.0),
    );
    // For looking at the registry by hand (with a given server).
    if std::env::var_os("BENCH_KEEP_REGISTRY").is_some() {
        eprintln!("  kept the workspace: {}", ws.dir.keep().display());
    }
}

// The floors: the SQL each command sends to answer, in PostgreSQL's
// dialect (the `…_POSTGRES` texts of `src/registry/`), with the values it
// binds written in. Not included: what every command sends first to open
// the registry (`SET lock_timeout`, the migration history read and
// compared), which the floor has no use for.

/// Which run locks are held: every listing reads it once (`Liveness`).
const HELD_RUN_LOCKS: &str = "
    SELECT CAST(l.classid AS BIGINT), CAST(l.objid AS BIGINT)
    FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// The columns `runs list` and `runs show` read (`RUN_COLUMNS`).
const RUN_COLUMNS: &str = "r.run_id, r.project_id, r.title, r.status, r.started_at, r.finished_at,
    r.duration_ms,
    CASE WHEN r.status = 'running' THEN (SELECT count(*) FROM stage_executions e
        WHERE e.project_id = r.project_id AND e.run_id = r.run_id
          AND e.stage IN (1, 2, 3, 4, 5) AND e.attempt = r.attempts AND e.status = 'executed')
        ELSE r.stages_executed END,
    CASE WHEN r.status = 'running' THEN (SELECT count(*) FROM stage_executions e
        WHERE e.project_id = r.project_id AND e.run_id = r.run_id
          AND e.stage IN (1, 2, 3, 4, 5) AND e.attempt = r.attempts AND e.status = 'skipped')
        ELSE r.stages_skipped END,
    r.attempts, r.config_hash, r.run_dir,
    r.error, r.orchestrator_version, r.host, r.created_at, r.config_path";

/// The page of 50 (`LIST_RUNS_POSTGRES`, `LIST_RUNS_OF_PROJECT_POSTGRES`)
/// and the total from `run_counts` (`COUNT_RUNS_POSTGRES`).
fn list_sql(project: Option<&str>) -> String {
    let page = match project {
        None => format!(
            "SELECT {RUN_COLUMNS}
             FROM runs r JOIN projects p ON p.project_id = r.project_id
             ORDER BY r.created_at DESC, r.project_id, r.run_id
             LIMIT 50"
        ),
        Some(p) => format!(
            "SELECT {RUN_COLUMNS}
             FROM runs r JOIN projects p ON p.project_id = r.project_id
             WHERE r.project_id = '{p}' AND r.created_at >= ''
             ORDER BY r.created_at DESC, r.run_id
             LIMIT 50"
        ),
    };
    let count_filter = project.map_or(String::new(), |p| format!("WHERE project_id = '{p}'"));
    format!(
        "{HELD_RUN_LOCKS};
         {page};
         SELECT CAST(coalesce(sum(runs), 0) AS BIGINT) FROM run_counts {count_filter};"
    )
}

/// The run found by id prefix (`FIND_RUNS_POSTGRES`), its stages' newest
/// executions (`LATEST_STAGES`) and its attempts (`ATTEMPT_HISTORY`).
fn show_sql(project: &str, run: &str) -> String {
    let this = format!("project_id = '{project}' AND run_id = '{run}'");
    format!(
        "{HELD_RUN_LOCKS};
         SELECT {RUN_COLUMNS}
         FROM runs r JOIN projects p ON p.project_id = r.project_id
         WHERE r.run_id LIKE '{run}%'
         ORDER BY r.run_id = '{run}' DESC, r.created_at DESC, r.project_id;
         SELECT stage, stage_name, stage_version, status, reason, output_sha256, duration_ms,
                started_at, finished_at, attempt, error, input_hashes
         FROM latest_stage_executions WHERE {this} ORDER BY stage;
         SELECT attempt, min(started_at),
                count(*) FILTER (WHERE status = 'executed'),
                count(*) FILTER (WHERE status = 'skipped'),
                count(*) FILTER (WHERE status = 'failed'),
                count(*) FILTER (WHERE status IN ('running', 'interrupted'))
         FROM stage_executions
         WHERE {this} AND stage IN (1, 2, 3, 4, 5)
         GROUP BY attempt ORDER BY attempt;"
    )
}

/// The artifact columns `lineage` reads (`ARTIFACT_COLUMNS`).
const ARTIFACT_COLUMNS: &str = "artifact_id, project_id, run_id, artifact_type, sha256, \
    schema_id, schema_version, path, size_bytes, stage, stage_name, stage_version, created_at, \
    meta_json";

/// The walk from the artifacts with bytes `sha` (in `scope`, an SQL
/// condition on `artifacts`), following `artifact_edges` from column
/// `from` to column `to`, at most 64 edges, the copy in (`project`, `run`)
/// first (`ANCESTORS`, `DESCENDANTS`).
fn walk_sql(
    sha: &str,
    scope: &str,
    (from, to): (&str, &str),
    (project, run): (&str, &str),
) -> String {
    format!(
        "WITH RECURSIVE walk (node_id, depth) AS (
             SELECT artifact_id, 0 FROM artifacts WHERE sha256 = '{sha}' {scope}
             UNION
             SELECT e.{to}, w.depth + 1
             FROM walk w JOIN artifact_edges e ON e.{from} = w.node_id
             WHERE w.depth < 64
         ),
         reached (node_id, depth) AS (SELECT node_id, min(depth) FROM walk GROUP BY node_id)
         SELECT a.artifact_id, a.sha256, a.artifact_type, a.project_id, a.run_id, a.stage,
                a.stage_name, a.path, r.depth, e.{to}
         FROM reached r JOIN artifacts a ON a.artifact_id = r.node_id
         LEFT JOIN artifact_edges e ON e.{from} = r.node_id AND r.depth < 64
         ORDER BY a.stage, a.artifact_type, a.sha256,
                  (a.project_id = '{project}' AND a.run_id = '{run}') DESC,
                  a.artifact_id, e.{to};"
    )
}

/// `lineage RenderOutput`: the newest run with one (`NEWEST_WITH_TYPE_POSTGRES`),
/// its RenderOutput (`artifact_in_run`), and the walk to its ancestors.
fn ancestors_sql(project: &str, run: &str, sha: &str) -> String {
    format!(
        "{HELD_RUN_LOCKS};
         SELECT {RUN_COLUMNS}
         FROM runs r JOIN projects p ON p.project_id = r.project_id
         WHERE EXISTS (SELECT 1 FROM artifacts a
             WHERE a.project_id = r.project_id AND a.run_id = r.run_id
               AND a.artifact_type = 'RenderOutput')
         ORDER BY r.created_at DESC, r.project_id, r.run_id
         LIMIT 1;
         SELECT {ARTIFACT_COLUMNS} FROM artifacts
         WHERE project_id = '{project}' AND run_id = '{run}' AND artifact_type = 'RenderOutput';
         {}",
        walk_sql(
            sha,
            &format!("AND project_id = '{project}' AND run_id = '{run}'"),
            ("child_id", "parent_id"),
            (project, run)
        )
    )
}

/// `lineage <prefix> --descendants`: the distinct hashes with the prefix
/// (`SHAS_WITH_PREFIX`: a range, PostgreSQL having no GLOB), the newest
/// copy of the one found (`WITH_SHA`, `BY_NEWEST_RUN`), and the walk from
/// every copy, the newest copy's run first.
fn descendants_sql(prefix: &str, sha: &str, (project, run): (&str, &str)) -> String {
    format!(
        "{HELD_RUN_LOCKS};
         SELECT DISTINCT sha256 FROM artifacts
         WHERE sha256 >= '{prefix}' AND sha256 < '{prefix}g' ORDER BY sha256;
         SELECT {ARTIFACT_COLUMNS} FROM artifacts a WHERE a.sha256 = '{sha}'
         ORDER BY (SELECT r.created_at FROM runs r
                   WHERE r.project_id = a.project_id AND r.run_id = a.run_id) DESC,
                  a.project_id, a.run_id
         LIMIT 1;
         {}",
        walk_sql(sha, "", ("parent_id", "child_id"), (project, run))
    )
}

/// [`copy_registry`] in a forked child (see [`in_child`]), timed.
fn copy_in_child(sqlite: &Path, url: &str) -> Sample {
    in_child(|| copy_registry(sqlite, url))
}

/// Copy every table of the SQLite registry at `sqlite` (but the migration
/// history, which `registry migrate` wrote) into the migrated, empty
/// PostgreSQL registry at `url`, in one transaction: rows as they are, ids
/// included, with triggers and foreign-key checks off for the load
/// (`session_replication_role = replica`; `run_counts` is copied rather
/// than recounted). Then the identity sequences are moved past the copied
/// ids, and `VACUUM (ANALYZE)` and `CHECKPOINT` leave nothing of the load
/// for the server to do while commands are measured.
fn copy_registry(sqlite: &Path, url: &str) {
    let src = rusqlite::Connection::open(sqlite).expect("opening the SQLite registry");
    let mut pg = postgres::Client::connect(url, postgres::NoTls).expect("connecting");
    let tables: Vec<String> = src
        .prepare(
            "SELECT name FROM sqlite_master
             WHERE type = 'table' AND name NOT LIKE 'sqlite%'
               AND name <> 'refinery_schema_history'
             ORDER BY name",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("the registry's tables");
    let mut tx = pg.transaction().expect("BEGIN");
    tx.batch_execute("SET LOCAL session_replication_role = replica")
        .expect("a superuser's connection (session_replication_role)");
    for table in &tables {
        let columns: Vec<String> = src
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
            ))
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("the table's columns");
        let list = columns
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut writer = tx
            .copy_in(&format!("COPY \"{table}\" ({list}) FROM STDIN"))
            .unwrap_or_else(|e| panic!("COPY {table}: {}", pg_error(&e)));
        let mut stmt = src
            .prepare(&format!("SELECT {list} FROM \"{table}\""))
            .expect("reading the table");
        let mut rows = stmt.query([]).expect("reading the table");
        let mut buf = Vec::with_capacity(1 << 20);
        while let Some(row) = rows.next().expect("a row") {
            for i in 0..columns.len() {
                if i > 0 {
                    buf.push(b'\t');
                }
                copy_value(&mut buf, row.get_ref(i).expect("a column"));
            }
            buf.push(b'\n');
            if buf.len() >= 1 << 20 {
                writer.write_all(&buf).expect("COPY data");
                buf.clear();
            }
        }
        writer.write_all(&buf).expect("COPY data");
        writer
            .finish()
            .unwrap_or_else(|e| panic!("COPY {table}: {}", pg_error(&e)));
    }
    let identities = tx
        .query(
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT)
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
            &[],
        )
        .expect("the identity columns");
    for row in identities {
        let (table, column): (String, String) = (row.get(0), row.get(1));
        tx.batch_execute(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                           coalesce(max(\"{column}\"), 0) + 1, false) FROM \"{table}\""
        ))
        .expect("moving an identity sequence");
    }
    tx.commit().expect("COMMIT");
    pg.batch_execute("VACUUM (ANALYZE)").expect("VACUUM");
    pg.batch_execute("CHECKPOINT").expect("CHECKPOINT");
}

/// The server's message, where `Display` says only "db error".
fn pg_error(e: &postgres::Error) -> String {
    e.as_db_error().map_or_else(
        || e.to_string(),
        |db| format!("{}: {}", db.code().code(), db.message()),
    )
}

/// One value in COPY's text format.
fn copy_value(buf: &mut Vec<u8>, value: rusqlite::types::ValueRef<'_>) {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => buf.extend_from_slice(b"\\N"),
        ValueRef::Integer(i) => buf.extend_from_slice(i.to_string().as_bytes()),
        ValueRef::Real(r) => buf.extend_from_slice(r.to_string().as_bytes()),
        ValueRef::Text(t) => {
            for &b in t {
                match b {
                    b'\\' => buf.extend_from_slice(b"\\\\"),
                    b'\n' => buf.extend_from_slice(b"\\n"),
                    b'\r' => buf.extend_from_slice(b"\\r"),
                    b'\t' => buf.extend_from_slice(b"\\t"),
                    b => buf.push(b),
                }
            }
        }
        ValueRef::Blob(_) => panic!("the registry holds no blobs"),
    }
}
