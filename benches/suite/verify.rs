//! The verify group: `orchestrator verify` over large files against
//! `openssl dgst -sha256` hashing the same files, and over 100,000 small
//! artifacts against `sha256sum` reading the same files (see BENCHMARKS.md).
//!
//! The trees are generated here and registered through the library's own
//! `Registry::insert_rebuilt`, with meta records and sha256s consistent with
//! the files, so `verify` finds them intact and does all of its work. Every
//! file is in the page cache when it is timed: each tree is written just
//! before (then `sync`ed, so writeback does not run under the timings), and
//! each command runs once unmeasured before its timed rounds, which
//! alternate between the command and its floor.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orchestrator::artifact::{
    ArtifactType, ComputeOrigin, CreationParams, MetaRecord, ParentRef, SCHEMA_VERSION,
    canonical_bytes, sha256_hex,
};
use orchestrator::registry::{RebuiltArtifact, RebuiltRun, RebuiltSummary, Registry, RunRow};
use sha2::{Digest, Sha256};

use crate::measure::{
    Row, Sample, Table, Workspace, in_child, median, orchestrator, sample, sqlite3_floor,
};

/// The large tree: 4 runs × 5 artifacts × 64 MiB = 1.25 GiB.
const LARGE_RUNS: usize = 4;
const LARGE_FILE_BYTES: u64 = 64 << 20;
const LARGE_ROUNDS: usize = 7;

/// The small tree: 20,000 runs × 5 artifacts of the example's sizes.
const SMALL_RUNS: usize = 20_000;
const SMALL_ROUNDS: usize = 3;

/// `openssl` is single-threaded; the target is throughput ≥ 1.6× its own,
/// i.e. wall time ≤ 1/1.6 of it.
const LARGE_TARGET: f64 = 0.625;

const AT: &str = "2025-01-01T00:00:00Z";
const PROJECT: &str = "bench";

pub fn run(table: &mut Table) {
    large(table);
    small(table);
}

fn large(table: &mut Table) {
    let ws = Workspace::new();
    let tree = Tree::generate(&ws, LARGE_RUNS, &mut |_, path| {
        write_pseudo_random(path, LARGE_FILE_BYTES)
    });
    let files: Vec<&Path> = tree.artifacts.iter().map(PathBuf::as_path).collect();
    let total = tree.artifact_bytes;
    let verify = || orchestrator(ws.path(), &["verify"]);
    let openssl = || {
        let mut cmd = quiet("openssl");
        cmd.args(["dgst", "-sha256"]).args(&files);
        cmd
    };
    let one_core = || {
        let mut cmd = quiet("taskset");
        cmd.args(["-c", "0"])
            .arg(crate::measure::binary())
            .arg("verify")
            .current_dir(ws.path());
        cmd
    };
    let [verify, floor, one_core] = alternate(LARGE_ROUNDS, [&verify, &openssl, &one_core]);

    let gib = total as f64 / f64::from(1 << 30);
    let rate = |s: &Sample| format!("{:.2} GiB/s", gib / s.wall.as_secs_f64());
    let floor_name = format!("openssl dgst -sha256, 1 core ({})", rate(&floor));
    let files = tree.artifacts.len();
    table.push(
        Row::new(
            format!(
                "verify: {files} files x {} MiB = {gib:.2} GiB ({})",
                LARGE_FILE_BYTES >> 20,
                rate(&verify)
            ),
            verify,
        )
        .against(floor_name.clone(), floor.wall, LARGE_TARGET),
    );
    let mut row = Row::new(
        format!("verify on 1 core (taskset -c 0) ({})", rate(&one_core)),
        one_core,
    );
    row.floor = Some((floor_name, floor.wall));
    table.push(row);
}

fn small(table: &mut Table) {
    let example = example_artifacts();
    let ws = Workspace::new();
    // In a child: see `in_child`. 100,000 paths and the generator's heap
    // read as 116 MiB of `verify`'s peak RSS when generated here.
    in_child(|| {
        Tree::generate(&ws, SMALL_RUNS, &mut |ty, path| {
            let bytes = &example[ty as usize];
            std::fs::write(path, bytes).expect("writing an artifact");
            (sha256_hex(bytes), bytes.len() as u64)
        });
    });
    let artifacts = SMALL_RUNS * ArtifactType::ALL.len();
    let files = SMALL_RUNS * FILES_PER_RUN;

    // The floors read every file verify reads (artifacts, meta files, run
    // summaries); `find` walks the run directories as verify lists them.
    let script = |tool: &str| {
        let mut cmd = quiet("sh");
        cmd.arg("-c")
            .arg(format!(
                "find artifacts -name '*.json' -type f -print0 | xargs -0 {tool} > /dev/null"
            ))
            .current_dir(ws.path());
        cmd
    };
    let verify = || orchestrator(ws.path(), &["verify"]);
    let verify_json = || orchestrator(ws.path(), &["verify", "--json"]);
    let sha256sum = || script("sha256sum");
    let cat = || script("cat");
    let [verify, verify_json, floor, cat] =
        alternate(SMALL_ROUNDS, [&verify, &verify_json, &sha256sum, &cat]);

    let per = |s: &Sample| {
        format!(
            "{:.1} us/artifact",
            s.wall.as_secs_f64() * 1e6 / artifacts as f64
        )
    };
    let floor_name = format!("find + xargs sha256sum, {files} files");
    for (what, s) in [("verify", verify), ("verify --json", verify_json)] {
        let mut row = Row::new(
            format!(
                "{what}: {artifacts} small artifacts in {SMALL_RUNS} runs ({})",
                per(&s)
            ),
            s,
        );
        row.floor = Some((floor_name.clone(), floor.wall));
        table.push(row);
    }
    let mut row = Row::new(format!("find + xargs cat, {files} files"), cat);
    row.floor = Some((floor_name, floor.wall));
    table.push(row);

    // What the SQL costs inside verify: the integrity check the CLI runs
    // first (timed as the sqlite3 CLI running it), and verify's queries
    // and its recording transaction, timed in this process.
    let db = ws.db();
    let quick_check = sqlite3_floor(SMALL_ROUNDS, &db, "PRAGMA quick_check");
    let mut registry = Registry::open(&db).expect("opening the registry");
    let run_ids: Vec<String> = (0..SMALL_RUNS).map(run_id).collect();
    let keys: Vec<(&str, &str)> = run_ids.iter().map(|r| (PROJECT, r.as_str())).collect();
    let queried = in_process(SMALL_ROUNDS, || {
        let a = registry.artifacts_of_runs(&keys).expect("artifacts");
        let e = registry.stale_edges_of_runs(&keys, &a).expect("edges");
        let s = registry.run_summaries_of(&keys).expect("summaries");
        assert_eq!((e.len(), s.len()), (SMALL_RUNS, SMALL_RUNS));
    });
    let results: Vec<_> = registry
        .artifacts_of_runs(&keys)
        .expect("artifacts")
        .iter()
        .flatten()
        .map(|a| orchestrator::registry::Verification {
            artifact_id: a.artifact_id,
            sha256: a.sha256.clone(),
            verified_at: AT.to_string(),
            ok: true,
            problems: "[]".to_string(),
        })
        .collect();
    let recorded = in_process(SMALL_ROUNDS, || {
        registry
            .record_verifications(&results)
            .expect("recording verifications")
    });
    let mut row = Row::new(
        "sqlite3 CLI: PRAGMA quick_check (verify runs it first)",
        quick_check,
    );
    row.peak_rss_kib = None;
    table.push(row);
    for (case, wall) in [
        (
            format!("3 batched queries for {SMALL_RUNS} runs at once (verify: per 2000 runs)"),
            queried,
        ),
        (
            format!("recording {artifacts} results in 1 transaction (verify: 1 per 2000 runs)"),
            recorded,
        ),
    ] {
        let mut row = Row::new(
            case,
            Sample {
                wall,
                peak_rss_kib: 0,
            },
        );
        row.peak_rss_kib = None;
        table.push(row);
    }
}

/// Median wall time of `f` run `rounds` times in this process.
fn in_process(rounds: usize, mut f: impl FnMut()) -> Duration {
    let mut walls: Vec<Duration> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    walls.sort();
    walls[rounds / 2]
}

/// Run each command once unmeasured (warming the page cache and the
/// binary), then `rounds` rounds of all of them in turn; the median of each.
fn alternate<const N: usize>(rounds: usize, cmds: [&dyn Fn() -> Command; N]) -> [Sample; N] {
    for cmd in cmds {
        sample(&mut cmd());
    }
    let mut samples: [Vec<Sample>; N] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for _ in 0..rounds {
        for (cmd, out) in cmds.iter().zip(&mut samples) {
            out.push(sample(&mut cmd()));
        }
    }
    samples.map(|s| {
        let mut s = s.into_iter();
        median(rounds, || s.next().expect("one sample per round"))
    })
}

/// `program` with no input and its output discarded.
fn quiet(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// What a generated tree holds, beside its registry.
struct Tree {
    /// Every artifact file.
    artifacts: Vec<PathBuf>,
    artifact_bytes: u64,
}

/// Files per run that verify reads: each artifact, its meta file, and the
/// run summary.
const FILES_PER_RUN: usize = 2 * ArtifactType::ALL.len() + 1;

/// The id of the tree's `i`-th run.
fn run_id(i: usize) -> String {
    format!("{:016x}", 0xbe00_0000_0000_0000u64 + i as u64)
}

impl Tree {
    /// `runs` complete runs of one project in `ws`; `write(type, path)`
    /// writes an artifact file and returns its sha256 and size.
    fn generate(
        ws: &Workspace,
        runs: usize,
        write: &mut dyn FnMut(ArtifactType, &Path) -> (String, u64),
    ) -> Tree {
        let artifacts_dir = ws.path().join("artifacts");
        let mut registry = Registry::open(&ws.db()).expect("creating the registry");
        let mut tree = Tree {
            artifacts: Vec::new(),
            artifact_bytes: 0,
        };
        let mut batch = Vec::new();
        for i in 0..runs {
            let run_id = run_id(i);
            let run_dir = format!("{PROJECT}/{run_id}");
            std::fs::create_dir_all(artifacts_dir.join(&run_dir)).expect("creating a run dir");
            let mut rebuilt_artifacts: Vec<RebuiltArtifact> = Vec::new();
            for ty in ArtifactType::ALL {
                let rel = format!("{run_dir}/{}", ty.file_name());
                let path = artifacts_dir.join(&rel);
                let (sha256, size_bytes) = write(ty, &path);
                let parents = rebuilt_artifacts
                    .last()
                    .map(|p| ParentRef {
                        artifact_type: p.meta.artifact_type.clone(),
                        sha256: p.meta.sha256.clone(),
                        path: p.meta.path.clone(),
                    })
                    .into_iter()
                    .collect();
                let meta = MetaRecord {
                    artifact_type: ty.name().to_string(),
                    path: ty.file_name(),
                    sha256,
                    size_bytes,
                    schema_id: orchestrator::schema::schema_id(ty.name())
                        .expect("a schema id")
                        .to_string(),
                    schema_version: SCHEMA_VERSION.to_string(),
                    project_id: PROJECT.to_string(),
                    run_id: run_id.clone(),
                    parents,
                    creation_params: CreationParams {
                        stage: ty as u8 + 1,
                        stage_name: ty.name().to_lowercase(),
                        stage_version: "1".to_string(),
                        config_hash: "c".repeat(64),
                    },
                    compute_origin: ComputeOrigin {
                        engine: "local-stub".to_string(),
                        orchestrator_version: env!("CARGO_PKG_VERSION").to_string(),
                        host: "bench".to_string(),
                    },
                    created_at: AT.to_string(),
                };
                let meta_bytes = canonical_bytes(&meta).expect("encoding a meta record");
                let meta_path = artifacts_dir.join(format!("{run_dir}/{}", ty.meta_file_name()));
                std::fs::write(&meta_path, &meta_bytes).expect("writing a meta file");
                tree.artifact_bytes += size_bytes;
                tree.artifacts.push(path);
                rebuilt_artifacts.push(RebuiltArtifact {
                    meta,
                    path: rel,
                    meta_json: String::from_utf8(meta_bytes).expect("UTF-8"),
                });
            }
            let summary_rel = format!("{run_dir}/run_summary.json");
            let summary = format!("{{\"run_id\": \"{run_id}\"}}\n");
            let summary_path = artifacts_dir.join(&summary_rel);
            std::fs::write(&summary_path, &summary).expect("writing a run summary");
            batch.push(RebuiltRun {
                run: RunRow {
                    run_id: run_id.clone(),
                    project_id: PROJECT.to_string(),
                    title: "Benchmark".to_string(),
                    status: orchestrator::registry::RunStatus::Complete,
                    started_at: AT.to_string(),
                    created_at: AT.to_string(),
                    config_path: None,
                    finished_at: Some(AT.to_string()),
                    duration_ms: Some(1),
                    stages_executed: 5,
                    stages_skipped: 0,
                    attempts: 1,
                    config_hash: "c".repeat(64),
                    run_dir,
                    error: None,
                    orchestrator_version: env!("CARGO_PKG_VERSION").to_string(),
                    host: "bench".to_string(),
                },
                config_json: "{}".to_string(),
                summary: RebuiltSummary {
                    path: summary_rel,
                    sha256: sha256_hex(summary.as_bytes()),
                    json: summary,
                    written_at: AT.to_string(),
                },
                artifacts: rebuilt_artifacts,
                executions: Vec::new(),
            });
            if batch.len() == 5_000 || i + 1 == runs {
                for outcome in registry.insert_rebuilt(&batch).expect("inserting runs") {
                    outcome.expect("a generated run the registry refused");
                }
                batch.clear();
            }
        }
        drop(registry);
        // Written back now, not under the timings.
        sample(&mut quiet("sync"));
        tree
    }
}

/// Write `len` bytes of xorshift noise to `path`, returning their sha256.
fn write_pseudo_random(path: &Path, len: u64) -> (String, u64) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("creating a file"));
    let mut hasher = Sha256::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ len ^ path.as_os_str().len() as u64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        hasher.update(&chunk[..n]);
        file.write_all(&chunk[..n]).expect("writing a file");
        left -= n as u64;
    }
    file.flush().expect("writing a file");
    let sha: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (sha, len)
}

/// The five artifacts of a real run of the example, by type.
fn example_artifacts() -> Vec<Vec<u8>> {
    let example = std::fs::canonicalize("examples/phase0/project.json")
        .expect("run the suite from the repository root");
    let ws = Workspace::new();
    sample(&mut orchestrator(
        ws.path(),
        &["run", "--project", example.to_str().expect("UTF-8 path")],
    ));
    let project = std::fs::read_dir(ws.path().join("artifacts/lighthouse"))
        .expect("the example's project directory")
        .next()
        .expect("the example's run directory")
        .expect("listing the example")
        .path();
    ArtifactType::ALL
        .iter()
        .map(|ty| std::fs::read(project.join(ty.file_name())).expect("an example artifact"))
        .collect()
}
