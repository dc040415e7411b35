//! The registry group: a registry of 100,000 runs and 500,000 artifacts,
//! generated through the library's own bulk insert
//! ([`Registry::insert_rebuilt`], one transaction per batch of runs), then
//! `runs list`, `runs show`, `lineage` both ways and a no-op resume against
//! it, each beside the sqlite3 CLI answering the same question on the same
//! file.
//!
//! The registry holds one real run (the example, run once by the binary, so
//! its files exist and a resume can check them), 999 copies of it under
//! other run ids (one config run under many `--run-id`s: all five artifacts
//! have the same bytes, so its Script's sha256 is shared by 1,000 runs), and
//! 99,000 synthetic runs spread over 100 projects and a year of start times.
//! A few synthetic runs failed on a second attempt, and a few were left
//! `running` by a process that died (they list as `interrupted`), so the
//! live-lock check has something to do.

use chrono::{DateTime, Utc};
use orchestrator::artifact::{
    ComputeOrigin, CreationParams, MetaRecord, ParentRef, sha256_hex, short_sha,
};
use orchestrator::clock::rfc3339;
use orchestrator::registry::{
    ExecutionRecord, RebuiltArtifact, RebuiltRun, RebuiltSummary, Registry, RunRow,
};
use serde_json::{Value, json};

use crate::measure::{
    Row, Sample, Table, Workspace, alternate, in_child, orchestrator, sample, sqlite3_floor,
};

const ROUNDS: usize = 9;

/// Runs in the registry, the real one and its copies included.
pub const RUNS: usize = 100_000;
/// Runs of the example config: the real run and its copies.
pub const SHARED: usize = 1_000;
/// Projects the synthetic runs are spread over.
const PROJECTS: usize = 100;
/// Runs per `insert_rebuilt` call, i.e. per transaction.
const BATCH: usize = 10_000;
/// The project whose runs `runs list --project` lists.
pub const LISTED_PROJECT: &str = "proj-042";

/// The five stages: artifact type, stage name, and the types it reads.
const STAGES: [(&str, &str, &[&str]); 5] = [
    ("Script", "stage1_generate_script", &[]),
    ("ShotList", "stage2_script_to_shotlist", &["Script"]),
    (
        "AssetManifest",
        "stage3_shotlist_to_assetmanifest",
        &["Script", "ShotList"],
    ),
    (
        "RenderPlan",
        "stage4_build_renderplan",
        &["ShotList", "AssetManifest"],
    ),
    (
        "RenderOutput",
        "stage5_render_preview",
        &["ShotList", "RenderPlan"],
    ),
];

pub fn run(table: &mut Table) {
    let example = std::fs::canonicalize("examples/phase0/project.json")
        .expect("run the suite from the repository root");
    let example = example.to_str().expect("UTF-8 path");
    let ws = Workspace::new();
    let resume = ["run", "--project", example];

    // The real run, and its no-op resume while the registry holds only it.
    sample(&mut orchestrator(ws.path(), &resume));
    let small_sql = resume_sql(&real_run(&ws));
    let (small_resume, small_floor) = alternate(
        ROUNDS,
        || sample(&mut orchestrator(ws.path(), &resume)),
        || sqlite3_floor(1, &ws.db(), &small_sql),
    );
    let small_floor = small_floor.wall;

    eprintln!("  generating {RUNS} runs…");
    let (generated, generation) = generate_in_child(&ws);
    let db_mib = std::fs::metadata(ws.db()).map_or(0, |m| m.len()) / (1 << 20);
    table.push(Row::new(
        format!(
            "registry: generate {RUNS} runs, {} artifacts, {} transactions ({db_mib} MiB)",
            generated.artifacts, generated.transactions
        ),
        generation,
    ));

    let db = ws.db();
    let case = |table: &mut Table, name: &str, args: &[&str], floor_sql: &str| {
        let (cli, floor) = alternate(
            ROUNDS,
            || sample(&mut orchestrator(ws.path(), args)),
            || sqlite3_floor(1, &db, floor_sql),
        );
        table.push(Row::new(format!("100k runs: {name}"), cli).against(
            "sqlite3 same query",
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
    case(
        table,
        "runs show <id>",
        &["runs", "show", &generated.shown_run.1],
        &show_sql(&generated.shown_run.0, &generated.shown_run.1),
    );
    case(
        table,
        "lineage RenderOutput (ancestors, newest run)",
        &["lineage", "RenderOutput"],
        &ancestors_of_newest_sql(),
    );
    let prefix = short_sha(&generated.shared_script);
    case(
        table,
        &format!("lineage <Script shared by {SHARED} runs> --descendants"),
        &["lineage", &prefix, "--descendants"],
        &descendants_sql(&prefix, &generated.shared_script),
    );

    // Last: a resume makes the real run the newest one.
    let real = real_run(&ws);
    let big_sql = resume_sql(&real);
    let (big_resume, big_floor) = alternate(
        ROUNDS,
        || sample(&mut orchestrator(ws.path(), &resume)),
        || sqlite3_floor(1, &db, &big_sql),
    );
    let big_floor = big_floor.wall;
    table.push(
        Row::new("example registry: no-op resume", small_resume).against(
            "sqlite3 resume's SQL",
            small_floor,
            2.0,
        ),
    );
    table.push(Row::new("100k runs: no-op resume", big_resume).against(
        "sqlite3 resume's SQL",
        big_floor,
        2.0,
    ));
    table.push(
        Row::new("100k runs: no-op resume (vs example registry)", big_resume).against(
            "example registry resume",
            small_resume.wall,
            2.0,
        ),
    );
    // For looking at the registry by hand (`sqlite3`, EXPLAIN QUERY PLAN).
    if std::env::var_os("BENCH_KEEP_REGISTRY").is_some() {
        eprintln!("  kept the workspace: {}", ws.dir.keep().display());
    }
}

/// The columns `runs list` and `runs show` read (`RUN_COLUMNS` in
/// `src/registry/runs.rs`).
const RUN_COLUMNS: &str = "r.run_id, r.project_id, r.title, r.status, r.started_at, \
    r.finished_at, r.duration_ms,
    CASE WHEN r.status = 'running' THEN (SELECT count(*) FROM stage_executions e
        WHERE e.project_id = r.project_id AND e.run_id = r.run_id
          AND e.stage IN (1, 2, 3, 4, 5) AND e.attempt = r.attempts AND e.status = 'executed')
        ELSE r.stages_executed END,
    CASE WHEN r.status = 'running' THEN (SELECT count(*) FROM stage_executions e
        WHERE e.project_id = r.project_id AND e.run_id = r.run_id
          AND e.stage IN (1, 2, 3, 4, 5) AND e.attempt = r.attempts AND e.status = 'skipped')
        ELSE r.stages_skipped END,
    r.attempts, r.config_hash, r.run_dir, r.error, r.orchestrator_version, r.host, \
    r.created_at, r.config_path";

// The floors: what the CLI asks the registry (the SQLite texts of
// `src/registry/`), as the sqlite3 CLI would be asked it by hand, on the
// same file with the same indexes (the run counts included: they are part
// of the file).

/// The newest 50 runs (of a project; `LIST_RUNS`, `LIST_RUNS_OF_PROJECT`)
/// and how many there are (`COUNT_RUNS`).
fn list_sql(project: Option<&str>) -> String {
    let page = match project {
        None => format!(
            "SELECT {RUN_COLUMNS} FROM runs r INDEXED BY runs_by_created_at
             CROSS JOIN projects p ON p.project_id = r.project_id
             ORDER BY r.created_at DESC, r.project_id, r.run_id LIMIT 50"
        ),
        Some(p) => format!(
            "SELECT {RUN_COLUMNS} FROM runs r CROSS JOIN projects p ON p.project_id = r.project_id
             WHERE r.project_id = '{p}' AND r.created_at >= ''
             ORDER BY r.created_at DESC, r.run_id LIMIT 50"
        ),
    };
    let count_filter = project.map_or(String::new(), |p| format!("WHERE project_id = '{p}'"));
    format!("{page}; SELECT coalesce(sum(runs), 0) FROM run_counts {count_filter};")
}

/// One run's row (`FIND_RUNS`), the newest execution of each of its
/// stages (`LATEST_STAGES`) and its attempts (`ATTEMPT_HISTORY`).
fn show_sql(project: &str, run: &str) -> String {
    let this = format!("project_id = '{project}' AND run_id = '{run}'");
    format!(
        "SELECT {RUN_COLUMNS} FROM runs r CROSS JOIN projects p ON p.project_id = r.project_id
         WHERE r.run_id GLOB '{run}*'
         ORDER BY r.run_id = '{run}' DESC, r.created_at DESC, r.project_id;
         SELECT stage, stage_name, stage_version, status, reason, output_sha256, duration_ms,
                started_at, finished_at, attempt, error, input_hashes
         FROM latest_stage_executions WHERE {this} ORDER BY stage;
         SELECT attempt, min(started_at),
                count(*) FILTER (WHERE status = 'executed'),
                count(*) FILTER (WHERE status = 'skipped'),
                count(*) FILTER (WHERE status = 'failed'),
                count(*) FILTER (WHERE status IN ('running', 'interrupted'))
         FROM stage_executions WHERE {this} AND stage IN (1, 2, 3, 4, 5)
         GROUP BY attempt ORDER BY attempt;"
    )
}

/// The walk `lineage` makes from the artifacts `seed` selects, following
/// `artifact_edges` from column `from` to column `to`: every artifact
/// reached, at its shortest depth, with the edges walked from it.
fn walk_sql(seed: &str, from: &str, to: &str) -> String {
    format!(
        "WITH RECURSIVE walk (node_id, depth) AS (
             {seed}
             UNION
             SELECT e.{to}, w.depth + 1
             FROM walk w JOIN artifact_edges e ON e.{from} = w.node_id
             WHERE w.depth < 64
         ),
         reached (node_id, depth) AS (SELECT node_id, min(depth) FROM walk GROUP BY node_id)
         SELECT a.artifact_id, a.sha256, a.artifact_type, a.project_id, a.run_id, a.stage,
                a.stage_name, a.path, r.depth, e.{to}
         FROM reached r CROSS JOIN artifacts a ON a.artifact_id = r.node_id
         LEFT JOIN artifact_edges e ON e.{from} = r.node_id
         ORDER BY a.stage, a.artifact_type, a.sha256, a.artifact_id, e.{to};"
    )
}

/// The newest run's RenderOutput and what it was made from.
fn ancestors_of_newest_sql() -> String {
    walk_sql(
        "SELECT a.artifact_id, 0 FROM artifacts a
         WHERE a.artifact_type = 'RenderOutput' AND (a.project_id, a.run_id) =
               (SELECT r.project_id, r.run_id FROM runs r INDEXED BY runs_by_created_at
                WHERE EXISTS (SELECT 1 FROM artifacts x WHERE x.project_id = r.project_id
                              AND x.run_id = r.run_id AND x.artifact_type = 'RenderOutput')
                ORDER BY r.created_at DESC, r.project_id, r.run_id LIMIT 1)",
        "child_id",
        "parent_id",
    )
}

/// The hashes starting with `prefix`, the newest copy of the one found,
/// and everything made from any copy of it.
fn descendants_sql(prefix: &str, sha: &str) -> String {
    format!(
        "SELECT DISTINCT sha256 FROM artifacts WHERE sha256 GLOB '{prefix}*';
         SELECT a.* FROM artifacts a WHERE a.sha256 = '{sha}'
         ORDER BY (SELECT r.created_at FROM runs r
                   WHERE r.project_id = a.project_id AND r.run_id = a.run_id) DESC,
                  a.project_id, a.run_id LIMIT 1;
         {}",
        walk_sql(
            &format!("SELECT artifact_id, 0 FROM artifacts WHERE sha256 = '{sha}'"),
            "parent_id",
            "child_id"
        )
    )
}

/// The registry work of a no-op resume, statement for statement as `run`
/// does it at this commit: the reads that decide (the attempt, the last
/// execution id, the run's artifacts, each stage's newest completed
/// execution), then its one transaction: mark what a dead process left
/// running, begin the attempt, record five skips, finish the run, read
/// back what the summary is derived from and record the summary. What the
/// binary adds on top is its own start, the config and its schema, hashing
/// the five files and their meta records, and writing `run_summary.json`
/// durably.
fn resume_sql((project, run): &(String, String)) -> String {
    let this = format!("project_id = '{project}' AND run_id = '{run}'");
    let now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
    let mut sql = format!(
        "PRAGMA synchronous = FULL;
         SELECT attempts FROM runs WHERE {this};
         SELECT coalesce(max(execution_id), 0) FROM stage_executions;
         SELECT * FROM artifacts WHERE {this};"
    );
    for stage in 1..=STAGES.len() {
        sql.push_str(&format!(
            "SELECT stage_version, input_hashes, output_sha256 FROM stage_executions
             WHERE {this} AND stage = {stage}
               AND status IN ('executed', 'skipped') AND output_sha256 IS NOT NULL
             ORDER BY execution_id DESC LIMIT 1;"
        ));
    }
    sql.push_str(&format!(
        "BEGIN IMMEDIATE;
         UPDATE stage_executions SET status = 'interrupted' WHERE {this} AND status = 'running';
         UPDATE projects SET last_run_at = {now} WHERE project_id = '{project}';
         UPDATE runs SET status = 'running', attempts = attempts + 1, started_at = {now},
             finished_at = NULL, duration_ms = NULL, stages_executed = 0, stages_skipped = 0
         WHERE {this} RETURNING attempts;"
    ));
    for (stage, (ty, name, _)) in STAGES.iter().enumerate() {
        let stage = stage + 1;
        sql.push_str(&format!(
            "INSERT INTO stage_executions (project_id, run_id, attempt, stage, stage_name,
                 stage_version, status, reason, started_at, finished_at, duration_ms,
                 input_hashes, output_sha256, artifact_id)
             SELECT project_id, run_id, (SELECT attempts FROM runs WHERE {this}), stage,
                 '{name}', stage_version, 'skipped', 'up to date', {now}, {now}, 0,
                 input_hashes, output_sha256,
                 (SELECT artifact_id FROM artifacts WHERE {this} AND artifact_type = '{ty}')
             FROM stage_executions WHERE {this} AND stage = {stage}
             ORDER BY execution_id DESC LIMIT 1 RETURNING execution_id;"
        ));
    }
    sql.push_str(&format!(
        "UPDATE runs SET status = 'complete', finished_at = {now}, duration_ms = 1,
             (stages_executed, stages_skipped) = (
                 SELECT count(*) FILTER (WHERE status = 'executed'),
                        count(*) FILTER (WHERE status = 'skipped')
                 FROM stage_executions WHERE {this} AND stage IN (1, 2, 3, 4, 5)
                   AND attempt = runs.attempts)
         WHERE {this};
         SELECT {RUN_COLUMNS} FROM runs r JOIN projects p ON p.project_id = r.project_id
         WHERE r.{this};
         SELECT config_json FROM runs WHERE {this};
         SELECT * FROM stage_executions WHERE {this} AND stage IN (1, 2, 3, 4, 5)
             AND attempt = (SELECT attempts FROM runs WHERE {this}) ORDER BY stage, execution_id;
         UPDATE run_summaries SET summary_json = summary_json, written_at = {now} WHERE {this};
         COMMIT;"
    ));
    sql
}

/// (project, run id) of the example's real run: the only run directory.
fn real_run(ws: &Workspace) -> (String, String) {
    let project = ws.path().join("artifacts").join("lighthouse");
    let run = std::fs::read_dir(&project)
        .expect("the example's project directory")
        .flatten()
        .find(|e| e.path().is_dir())
        .expect("the example's run directory")
        .file_name();
    (
        "lighthouse".to_string(),
        run.to_str().expect("UTF-8 run id").to_string(),
    )
}

/// What [`generate`] made.
pub struct Generated {
    pub artifacts: usize,
    pub transactions: usize,
    /// sha256 of the Script the real run and its copies share.
    pub shared_script: String,
    /// (project, run) of a synthetic run from the middle of the registry.
    pub shown_run: (String, String),
}

/// Fill the workspace's registry up to [`RUNS`] runs.
fn generate(ws: &Workspace) -> Generated {
    let (project, real_id) = real_run(ws);
    let mut registry = Registry::open(&ws.db()).expect("opening the registry");
    let (real, config_json) = registry
        .run_record(&project, &real_id)
        .expect("the real run's row");
    let executions = registry
        .executions_of_attempt(&project, &real_id, real.attempts, 0)
        .expect("the real run's executions");
    let run_dir = ws.path().join("artifacts").join(&real.run_dir);
    let metas: Vec<MetaRecord> = STAGES
        .iter()
        .map(|(ty, _, _)| {
            let text = std::fs::read_to_string(run_dir.join(format!("{ty}.meta.json")))
                .expect("the real run's meta file");
            serde_json::from_str(&text).expect("a meta record")
        })
        .collect();
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("run_summary.json")).expect("the run summary"),
    )
    .expect("a run summary");
    let shared_script = metas[0].sha256.clone();

    let now = chrono::Utc::now();
    let mut rng = SplitMix(0x5eed_2026);
    let mut out = Generated {
        artifacts: 0,
        transactions: 0,
        shared_script,
        shown_run: (String::new(), String::new()),
    };
    let mut batch = Vec::with_capacity(BATCH);
    let synthetic = RUNS - SHARED;
    for i in 0..RUNS - 1 {
        // Newest first, so the newest run of all is a synthetic one (it
        // started "now"); the rest spread over a year.
        let started = if i == 0 {
            now
        } else {
            now - chrono::TimeDelta::milliseconds((rng.next() % (365 * 86_400_000)) as i64)
        };
        let run = if i < synthetic {
            synthetic_run(i, started, &mut rng)
        } else {
            let copy = format!("take-{:04}", i - synthetic + 1);
            copy_of(
                &real,
                &config_json,
                &executions,
                &metas,
                &summary,
                &copy,
                started,
            )
        };
        if i == synthetic / 2 {
            out.shown_run = (run.run.project_id.clone(), run.run.run_id.clone());
        }
        out.artifacts += run.artifacts.len();
        batch.push(run);
        if batch.len() == BATCH || i == RUNS - 2 {
            for result in registry.insert_rebuilt(&batch).expect("a batch insert") {
                result.expect("the registry accepted a generated run");
            }
            out.transactions += 1;
            batch.clear();
        }
    }
    registry.close_checkpointed().expect("checkpointing");
    out.artifacts += STAGES.len();
    out
}

/// A deterministic generator (SplitMix64): the same registry every time.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn at(t: DateTime<Utc>, ms: u64) -> String {
    rfc3339(t + chrono::TimeDelta::milliseconds(ms as i64))
}

/// Synthetic run `i`: its own config (so its own run id and hashes) in
/// one of [`PROJECTS`] projects. About 1% failed on a second attempt and
/// 0.1% were left `running` by a process that died.
fn synthetic_run(i: usize, started: DateTime<Utc>, rng: &mut SplitMix) -> RebuiltRun {
    let project_id = format!("proj-{:03}", i % PROJECTS);
    let title = format!("Benchmark feature {}", i % PROJECTS);
    let config = json!({
        "project_id": project_id,
        "title": title,
        "logline": "A keeper, a storm and a light that must not go out, told again with a new seed.",
        "genre": "drama",
        "seed": i,
        "scene_count": 3 + (i % 40),
        "characters": [
            {"name": "Mara", "description": "The keeper, sixty, precise, unwilling to be the last of anything."},
            {"name": "Tomas", "description": "Her brother, an engineer sent to switch the light to automatic."},
            {"name": "Ines", "description": "A ferry captain caught in the storm, twice saved by the light."}
        ],
        "locations": [
            {"name": "Lamp Room", "description": "The glass crown of the tower: brass and salt-fogged panes."},
            {"name": "Sea Wall", "description": "The breakwater below the point, where the storm arrives first."}
        ],
        "render": {"width": 1280, "height": 720, "fps": 24}
    });
    let config_json = config.to_string();
    let config_hash = sha256_hex(config_json.as_bytes());
    let run_id = config_hash[..16].to_string();
    let (status, attempts, error) = match i % 1000 {
        7 => ("running", 2, None),
        100..=109 => (
            "failed",
            2,
            Some(
                "stage3_shotlist_to_assetmanifest: AssetManifest failed validation at /assets/0/kind",
            ),
        ),
        _ => ("complete", 1, None),
    };
    let origin = ComputeOrigin {
        engine: "local-stub".to_string(),
        orchestrator_version: "0.1.0".to_string(),
        host: format!("render-{:02}", i % 12),
    };
    let mut t = 5 + rng.next() % 20;
    let mut shas: Vec<(&str, String)> = Vec::new();
    let mut artifacts = Vec::new();
    let mut executions = Vec::new();
    let mut stages_json = Vec::new();
    for (n, (ty, stage_name, inputs)) in STAGES.iter().enumerate() {
        let stage = n as u8 + 1;
        let sha = sha256_hex(format!("{project_id}/{run_id}/{ty}").as_bytes());
        let parents: Vec<ParentRef> = inputs
            .iter()
            .map(|p| ParentRef {
                artifact_type: p.to_string(),
                sha256: shas.iter().find(|(t, _)| t == p).expect("parent").1.clone(),
                path: format!("{p}.json"),
            })
            .collect();
        let mut input_hashes = std::collections::BTreeMap::new();
        input_hashes.insert("config".to_string(), config_hash.clone());
        for p in &parents {
            input_hashes.insert(p.artifact_type.clone(), p.sha256.clone());
        }
        let took = 10 + rng.next() % 40;
        let meta = MetaRecord {
            artifact_type: ty.to_string(),
            path: format!("{ty}.json"),
            sha256: sha.clone(),
            size_bytes: 2_000 + rng.next() % 200_000,
            schema_id: format!("https://orchestrator.local/schemas/{ty}.v1.json"),
            schema_version: "1.0.0".to_string(),
            project_id: project_id.clone(),
            run_id: run_id.clone(),
            parents,
            creation_params: CreationParams {
                stage,
                stage_name: stage_name.to_string(),
                stage_version: "1.0.0".to_string(),
                config_hash: config_hash.clone(),
            },
            compute_origin: origin.clone(),
            created_at: at(started, t + took),
        };
        let execution = ExecutionRecord {
            execution_id: None,
            project_id: project_id.clone(),
            run_id: run_id.clone(),
            attempt: 1,
            stage,
            stage_name: stage_name.to_string(),
            stage_version: "1.0.0".to_string(),
            status: orchestrator::registry::ExecutionStatus::Executed,
            reason: "not run before".to_string(),
            started_at: at(started, t),
            finished_at: Some(at(started, t + took)),
            duration_ms: Some(took),
            input_hashes,
            output_sha256: Some(sha.clone()),
            error: None,
        };
        stages_json.push(json!({
            "artifact_type": ty,
            "duration_ms": took,
            "error": null,
            "finished_at": execution.finished_at,
            "input_hashes": execution.input_hashes,
            "name": stage_name,
            "reason": execution.reason,
            "sha256": sha,
            "stage": stage,
            "stage_version": "1.0.0",
            "started_at": execution.started_at,
            "status": "executed",
        }));
        t += took + 2;
        artifacts.push(RebuiltArtifact {
            path: format!("{project_id}/{run_id}/{ty}.json"),
            meta_json: serde_json::to_string_pretty(&meta).expect("a meta record"),
            meta,
        });
        executions.push(execution);
        shas.push((ty, sha));
    }
    // The second attempt of a failed or interrupted run: two stages skipped,
    // the third failed (or still running when its process died).
    let mut finished_at = Some(at(started, t));
    let mut duration_ms = Some(t);
    let (mut executed, mut skipped) = (5, 0);
    if attempts == 2 {
        let again = started + chrono::TimeDelta::hours(1);
        for n in 0..3 {
            let (_, stage_name, _) = STAGES[n];
            let last = n == 2;
            let status = match (last, status) {
                (false, _) => "skipped",
                (true, "running") => "running",
                (true, _) => "failed",
            };
            executions.push(ExecutionRecord {
                execution_id: None,
                project_id: project_id.clone(),
                run_id: run_id.clone(),
                attempt: 2,
                stage: n as u8 + 1,
                stage_name: stage_name.to_string(),
                stage_version: "1.0.0".to_string(),
                status: status.parse().expect("a status"),
                reason: if last {
                    "input changed (config)"
                } else {
                    "up to date"
                }
                .to_string(),
                started_at: at(again, 10 * n as u64),
                finished_at: (status != "running").then(|| at(again, 10 * n as u64 + 5)),
                duration_ms: (status != "running").then_some(5),
                input_hashes: executions[n].input_hashes.clone(),
                output_sha256: (!last).then(|| shas[n].1.clone()),
                error: (status == "failed").then(|| error.unwrap_or_default().to_string()),
            });
        }
        (executed, skipped) = (0, 2);
        if status == "running" {
            finished_at = None;
            duration_ms = None;
        } else {
            finished_at = Some(at(again, 30));
            duration_ms = Some(30);
        }
    }
    let started_at = rfc3339(started);
    let summary = json!({
        "attempt": attempts,
        "config": config,
        "config_hash": config_hash,
        "duration_ms": duration_ms,
        "error": error,
        "finished_at": finished_at,
        "host": origin.host,
        "orchestrator_version": origin.orchestrator_version,
        "project_id": project_id,
        "run_id": run_id,
        "stages": stages_json,
        "stages_executed": executed,
        "stages_skipped": skipped,
        "started_at": started_at,
        "status": status,
        "title": title,
    });
    let summary_json = serde_json::to_string_pretty(&summary).expect("a summary");
    RebuiltRun {
        run: RunRow {
            run_id: run_id.clone(),
            project_id: project_id.clone(),
            title,
            status: status.parse().expect("a status"),
            created_at: started_at.clone(),
            config_path: None,
            started_at: started_at.clone(),
            finished_at: finished_at.clone(),
            duration_ms,
            stages_executed: executed,
            stages_skipped: skipped,
            attempts,
            config_hash,
            run_dir: format!("{project_id}/{run_id}"),
            error: error.map(str::to_string),
            orchestrator_version: origin.orchestrator_version.clone(),
            host: origin.host.clone(),
        },
        config_json,
        summary: RebuiltSummary {
            path: format!("{project_id}/{run_id}/run_summary.json"),
            sha256: sha256_hex(summary_json.as_bytes()),
            json: summary_json,
            written_at: finished_at.unwrap_or(started_at),
        },
        artifacts,
        executions,
    }
}

/// The real run as if run again under `--run-id <run_id>` at `started`:
/// the same artifact bytes, its own rows.
fn copy_of(
    real: &RunRow,
    config_json: &str,
    executions: &[ExecutionRecord],
    metas: &[MetaRecord],
    summary: &Value,
    run_id: &str,
    started: DateTime<Utc>,
) -> RebuiltRun {
    let moved = |t: &str| -> String {
        let real_start = DateTime::parse_from_rfc3339(&real.started_at).expect("a time");
        let offset = DateTime::parse_from_rfc3339(t).expect("a time") - real_start;
        rfc3339(started + offset)
    };
    let run_dir = format!("{}/{run_id}", real.project_id);
    let artifacts = metas
        .iter()
        .map(|m| {
            let mut meta = m.clone();
            meta.run_id = run_id.to_string();
            meta.created_at = moved(&m.created_at);
            RebuiltArtifact {
                path: format!("{run_dir}/{}", meta.path),
                meta_json: serde_json::to_string_pretty(&meta).expect("a meta record"),
                meta,
            }
        })
        .collect();
    let executions = executions
        .iter()
        .map(|e| ExecutionRecord {
            execution_id: None,
            run_id: run_id.to_string(),
            started_at: moved(&e.started_at),
            finished_at: e.finished_at.as_deref().map(moved),
            ..e.clone()
        })
        .collect();
    let mut summary = summary.clone();
    summary["run_id"] = run_id.into();
    summary["started_at"] = rfc3339(started).into();
    let summary_json = serde_json::to_string_pretty(&summary).expect("a summary");
    let finished_at = real.finished_at.as_deref().map(moved);
    RebuiltRun {
        run: RunRow {
            run_id: run_id.to_string(),
            // Its own first start: the real run's would give all 1,000
            // copies one created_at, a tie every listing must sort.
            created_at: rfc3339(started),
            started_at: rfc3339(started),
            finished_at: finished_at.clone(),
            run_dir: run_dir.clone(),
            ..real.clone()
        },
        config_json: config_json.to_string(),
        summary: RebuiltSummary {
            path: format!("{run_dir}/run_summary.json"),
            sha256: sha256_hex(summary_json.as_bytes()),
            json: summary_json,
            written_at: finished_at.unwrap_or_else(|| rfc3339(started)),
        },
        artifacts,
        executions,
    }
}

/// [`generate`] in a forked child (see [`in_child`]), timed, with its
/// peak RSS.
pub fn generate_in_child(ws: &Workspace) -> (Generated, Sample) {
    let result = ws.path().join("generated.txt");
    let sample = in_child(|| {
        let g = generate(ws);
        let text = format!(
            "{}\n{}\n{}\n{}\n{}\n",
            g.artifacts, g.transactions, g.shared_script, g.shown_run.0, g.shown_run.1
        );
        std::fs::write(&result, text).expect("writing the generator's result");
    });
    let text = std::fs::read_to_string(&result).expect("the generator's result");
    let lines: Vec<&str> = text.lines().collect();
    let generated = Generated {
        artifacts: lines[0].parse().expect("a count"),
        transactions: lines[1].parse().expect("a count"),
        shared_script: lines[2].to_string(),
        shown_run: (lines[3].to_string(), lines[4].to_string()),
    };
    (generated, sample)
}
