//! `orchestrator reindex`: rebuild the registry from the artifact tree.
//!
//! The files are the product and the registry their index, so everything
//! the registry holds about the current state is in the files too: runs,
//! projects and stage executions in each `run_summary.json`, artifacts and
//! edges in each `X.meta.json`. Reindex reads them (see [`walk`], [`check`])
//! into a NEW database beside the old one and swaps it in:
//!
//! 1. refuse (exit 4) while a run holds its lock, and hold every run lock
//!    until the swap, so no run writes to the old registry meanwhile;
//! 2. build `<db>.reindex-<pid>` with `Registry::open` (migrations apply),
//!    a batch of runs per transaction;
//! 3. checkpoint and close it, so the file alone holds every commit;
//! 4. take `<db>.users` exclusively, waiting for every process that has the
//!    registry open to close it (each holds it shared: on closing, SQLite
//!    removes `-wal` and `-shm` by name, which must not be the new file's);
//! 5. delete the OLD registry's `-wal`, `-shm` and `-journal` (a stale log
//!    beside the new file would be replayed into it and corrupt it);
//! 6. rename the new file over `<db>` and fsync the directory.
//!
//! The old registry is never opened: it may be corrupt, which is often why
//! reindex is run. What cannot be indexed is reported, never guessed.

mod check;
mod leftovers;
mod read;
mod summary;
mod walk;

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::artifact::TEMP_PREFIX;
use crate::error::{Error, Result};
use crate::registry::{
    ExistingRegistry, Location, RebuiltRun, Registry, existing_registry, lock_for_swap,
};
use leftovers::{LiveMark, remove_if_present, with_suffix};

pub use read::{META_LIMIT, PARSE_LIMIT, SUMMARY_LIMIT};

/// The registry's file name in the artifacts directory when `--db` is not
/// given.
pub const DEFAULT_REGISTRY_FILE: &str = "registry.db";

/// Runs per transaction: few enough commits to be fast under
/// `synchronous = FULL`, few enough rows to bound memory.
const BATCH_RUNS: usize = 256;

/// How long a run lock may look taken before reindex calls the run live: a
/// reader checking liveness (`runs list`) holds it shared for an instant.
const LOCK_PATIENCE: Duration = Duration::from_secs(1);

/// What a finding is about. Serialized in snake_case for `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A symlink in the tree: reported, never followed.
    Symlink,
    /// A FIFO, socket, device or directory where a file belongs: never opened.
    NotRegularFile,
    /// An entry that does not fit `<project>/<run>/<artifact files>`.
    Unexpected,
    Unreadable,
    /// A meta file or run summary over its size limit.
    TooLarge,
    SummaryMissing,
    SummaryInvalid,
    /// A meta file that is not a meta record.
    MetaInvalid,
    /// A meta record that names another type, path, project, run or stage
    /// than where it lies.
    MetaMisplaced,
    MetaMissing,
    ArtifactMissing,
    /// The file's sha256 or size differs from its meta record's.
    HashMismatch,
    SchemaInvalid,
    /// A parent that is not an indexed artifact of the same run.
    ParentNotIndexed,
    /// A meta record whose parents leave out an input its stage reads.
    ParentMissing,
    /// The registry's constraints refused a run's rows.
    Refused,
    /// Note: an edge indexed with a parent hash that is no longer current.
    StaleParent,
    /// Note: a run directory with nothing in it.
    EmptyRun,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Symlink => "symlink",
            FindingKind::NotRegularFile => "not a regular file",
            FindingKind::Unexpected => "unexpected entry",
            FindingKind::Unreadable => "unreadable",
            FindingKind::TooLarge => "too large",
            FindingKind::SummaryMissing => "run summary missing",
            FindingKind::SummaryInvalid => "run summary invalid",
            FindingKind::MetaInvalid => "meta invalid",
            FindingKind::MetaMisplaced => "meta misplaced",
            FindingKind::MetaMissing => "meta missing",
            FindingKind::ArtifactMissing => "artifact missing",
            FindingKind::HashMismatch => "hash mismatch",
            FindingKind::SchemaInvalid => "schema invalid",
            FindingKind::ParentNotIndexed => "parent not indexed",
            FindingKind::ParentMissing => "parent missing",
            FindingKind::Refused => "refused by the registry",
            FindingKind::StaleParent => "stale parent",
            FindingKind::EmptyRun => "empty run directory",
        }
    }
}

/// One thing reindex could not index (a problem) or wants to say (a note).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// Relative to the artifacts directory.
    pub path: String,
    pub message: String,
}

impl Finding {
    pub fn new(kind: FindingKind, path: &str, message: String) -> Self {
        Finding {
            kind,
            path: path.to_string(),
            message,
        }
    }
}

/// What the rebuilt registry holds, and what it could not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReindexReport {
    /// True when nothing was left out (notes do not count).
    pub ok: bool,
    /// The rebuilt registry was checked and discarded; the old one is untouched.
    pub dry_run: bool,
    pub projects: usize,
    pub runs: usize,
    pub artifacts: usize,
    pub edges: usize,
    pub stage_executions: usize,
    /// Things not indexed, in tree order.
    pub problems: Vec<Finding>,
    /// Indexed, but worth knowing.
    pub notes: Vec<Finding>,
    /// Files of killed reindexes that this one removed (see
    /// [`stale_leftovers`]).
    pub removed_leftovers: Vec<String>,
}

/// Rebuild the registry at `db` from the tree at `artifacts_dir`. With
/// `dry_run`, build and check it all the same, then discard it.
///
/// A file at `db` that is not a registry of this tool is refused with
/// [`Error::RegistryIncompatible`] and left exactly as it was.
pub fn reindex(
    artifacts_dir: &Path,
    location: &Location,
    dry_run: bool,
    wait_for_users: Duration,
) -> Result<ReindexReport> {
    match std::fs::metadata(artifacts_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::usage(format!(
                "`{}` is not a directory",
                artifacts_dir.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::usage_with_hint(
                format!("no artifacts directory at `{}`", artifacts_dir.display()),
                "pass `--artifacts-dir DIR` (the directory that holds `<project>/<run>/`)",
            ));
        }
        Err(e) => return Err(Error::io("inspecting", artifacts_dir, e)),
    }
    match location {
        Location::Sqlite(db) => reindex_file(artifacts_dir, db, dry_run, wait_for_users),
        Location::Postgres(target) => {
            reindex_postgres(artifacts_dir, target, dry_run, wait_for_users)
        }
    }
}

/// Rebuild a PostgreSQL registry in place, in one transaction: every run
/// waits (they hold the registry-wide lock shared; this takes it
/// exclusively, or gives up after `wait` with exit 4), other hosts keep
/// reading the old index until the new one commits, and a failure or a
/// kill leaves the old one whole. How an existing SQLite registry moves to
/// PostgreSQL: `registry migrate --db URL`, then `reindex --db URL`.
fn reindex_postgres(
    artifacts_dir: &Path,
    target: &crate::registry::db::PgTarget,
    dry_run: bool,
    wait: Duration,
) -> Result<ReindexReport> {
    let mut registry = Registry::open_postgres(target, wait)?;
    crate::registry::advisory::lock_registry(registry.db(), true, wait, "reindex")?;
    let mut report = new_report(dry_run, Vec::new());
    registry.begin_outer()?;
    let default_file = artifacts_dir.join(DEFAULT_REGISTRY_FILE);
    let rebuilt = registry.clear_for_rebuild().and_then(|()| {
        rebuild(
            &mut registry,
            artifacts_dir,
            &default_file,
            &mut report,
            |e| e,
        )
    });
    match rebuilt {
        Ok(()) => registry.end_outer(!dry_run)?,
        Err(e) => {
            registry.end_outer(false)?;
            return Err(e);
        }
    }
    Ok(report)
}

fn new_report(dry_run: bool, removed: Vec<PathBuf>) -> ReindexReport {
    ReindexReport {
        ok: true,
        dry_run,
        projects: 0,
        runs: 0,
        artifacts: 0,
        edges: 0,
        stage_executions: 0,
        problems: Vec::new(),
        notes: Vec::new(),
        removed_leftovers: removed.iter().map(|p| p.display().to_string()).collect(),
    }
}

/// Index every run of the tree into `registry`, a batch of runs per
/// transaction, filling `report`. `db` is the registry file whose names
/// the walk must skip; `rebuilding` renames errors for the user.
fn rebuild(
    registry: &mut Registry,
    artifacts_dir: &Path,
    db: &Path,
    report: &mut ReindexReport,
    rebuilding: impl Fn(Error) -> Error,
) -> Result<()> {
    let is_registry_file = registry_file_filter(artifacts_dir, db);
    let runs = walk::run_dirs(artifacts_dir, &is_registry_file, &mut report.problems)?;
    let mut projects = std::collections::BTreeSet::new();
    let mut batch: Vec<RebuiltRun> = Vec::with_capacity(BATCH_RUNS);
    for run in &runs {
        let result = check::index_run(run)?;
        report.problems.extend(result.problems);
        report.notes.extend(result.notes);
        if let Some(rebuilt) = result.rebuilt {
            batch.push(rebuilt);
        }
        if batch.len() >= BATCH_RUNS {
            flush(registry, &mut batch, report, &mut projects).map_err(&rebuilding)?;
        }
    }
    flush(registry, &mut batch, report, &mut projects).map_err(&rebuilding)?;
    report.projects = projects.len();
    report.ok = report.problems.is_empty();
    Ok(())
}

/// Rebuild a SQLite registry as a new file and swap it in (the module
/// comment's steps).
fn reindex_file(
    artifacts_dir: &Path,
    db: &Path,
    dry_run: bool,
    wait_for_users: Duration,
) -> Result<ReindexReport> {
    refuse_foreign(db)?;
    let removed = leftovers::remove_stale(db)?;
    let held = hold_run_locks(artifacts_dir)?;

    let tmp = TempDb::new(db)?;
    // The rebuilt file's name is this process's own: a full disk while
    // building it is told as rebuilding the registry the user named.
    let rebuilding = |e: Error| match e {
        Error::DiskFull { source, .. } => Error::DiskFull {
            action: "rebuilding the registry",
            path: db.to_path_buf(),
            source,
        },
        other => other,
    };
    let mut registry = Registry::open(&tmp.path).map_err(rebuilding)?;
    let mut report = new_report(dry_run, removed);
    rebuild(&mut registry, artifacts_dir, db, &mut report, rebuilding)?;
    registry.close_checkpointed().map_err(rebuilding)?;
    if dry_run {
        return Ok(report);
    }

    // A run begun during the rebuild is refused now rather than after the
    // wait below, which it would otherwise fill (it holds the registry).
    refuse_new_runs(artifacts_dir, &held)?;
    // No process may still have the old file open when it is replaced:
    // closing it would remove `-wal` and `-shm` by name, the new file's by
    // then. Processes that open the registry meanwhile wait for this.
    let _swapping = lock_for_swap(db, wait_for_users)?;
    // And again: a run may have begun, written to the old registry and
    // ended while this waited.
    refuse_new_runs(artifacts_dir, &held)?;
    swap(&tmp.path, db, wait_for_users)?;
    tmp.disarm();
    drop(held);
    Ok(report)
}

/// Put the rebuilt file at `tmp` in place of `db`. After a kill at any
/// point, `db` is either the old registry with every commit it had or the
/// rebuilt one:
///
/// 1. the old registry's `-wal` is checkpointed into its database file
///    (a run killed before this reindex may have left commits only there),
///    and SQLite removes the emptied log on closing; another program
///    holding it (waited for up to `wait`) makes reindex give up (exit 4);
/// 2. any `-wal`, `-shm` or `-journal` still there is removed: a stale log
///    beside the new file would be replayed into it and corrupt it;
/// 3. the rename, which is atomic, then the directory's fsync.
///
/// A registry SQLite cannot read cannot be checkpointed: its log, which
/// cannot be read either, is removed in step 2 as before.
fn swap(tmp: &Path, db: &Path, wait: Duration) -> Result<()> {
    let step = |point: &'static str| {
        crate::failpoint::hit(point)
            .map_err(|e| Error::io("swapping the rebuilt registry into place at", db, e))
    };
    step("reindex.before_swap")?;
    // Checked again: the file may have been replaced while this rebuilt.
    if refuse_foreign(db)? == ExistingRegistry::Replaceable {
        // A program that takes no users lock (a `sqlite3` shell) is writing
        // or reading it: what it writes would be lost with the old file, so
        // the old file stays. Any other failure comes only from a damaged
        // registry, whose log cannot be read either: nothing is lost that
        // was not already.
        if let Err(Error::Busy { what, message }) = crate::registry::fold_wal_into(db, wait) {
            return Err(Error::Busy {
                what,
                message: format!(
                    "{message}; it is open in another program, whose changes a rebuilt \
                     registry would lose. The current registry was left as it was: close \
                     that program, then run `orchestrator reindex` again"
                ),
            });
        }
    }
    step("reindex.after_fold")?;
    for suffix in ["-wal", "-shm", "-journal"] {
        remove_if_present(&with_suffix(db, suffix))?;
    }
    step("reindex.after_side_files")?;
    std::fs::rename(tmp, db)
        .map_err(|e| Error::io("moving the rebuilt registry into place at", db, e))?;
    step("reindex.after_rename")?;
    sync_parent(db)
}

/// Refuse (exit 3, untouched) a file at `db` that is not a registry of
/// this tool; see [`crate::registry::existing_registry`].
fn refuse_foreign(db: &Path) -> Result<ExistingRegistry> {
    match existing_registry(db)? {
        ExistingRegistry::Foreign(problem) => Err(Error::RegistryIncompatible {
            path: db.to_path_buf(),
            problem,
        }),
        other => Ok(other),
    }
}

/// Every file a reindex that is no longer running left beside `db`: its
/// rebuilt database, that database's SQLite and lock files, and its
/// `.live` mark. Nothing is removed (the next `reindex` removes them).
///
/// A leftover is a file named `<db name>.reindex-<pid>` followed by
/// nothing, `-wal`, `-shm`, `-journal`, `.lock`, `.users` or `.live`, in
/// `db`'s directory. Its reindex is alive while it holds an exclusive
/// `flock` on `<db>.reindex-<pid>.live` (which the OS releases however the
/// process ends), so a reused pid cannot make a dead reindex look alive;
/// only a group without a `.live` file (from a build before it) is judged
/// by whether a process has that pid.
pub fn stale_leftovers(db: &Path) -> Vec<PathBuf> {
    leftovers::stale_leftovers(db)
}

fn flush(
    registry: &mut Registry,
    batch: &mut Vec<RebuiltRun>,
    report: &mut ReindexReport,
    projects: &mut std::collections::BTreeSet<String>,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let outcomes = registry.insert_rebuilt(batch)?;
    for (run, outcome) in batch.iter().zip(outcomes) {
        match outcome {
            Ok(n) => {
                projects.insert(run.run.project_id.clone());
                report.runs += 1;
                report.artifacts += n.artifacts;
                report.edges += n.edges;
                report.stage_executions += n.executions;
            }
            Err(why) => report.problems.push(Finding::new(
                FindingKind::Refused,
                &run.run.run_dir,
                format!("{why}; the run was not indexed"),
            )),
        }
    }
    batch.clear();
    Ok(())
}

/// Which top-level names are registry files, skipped by the walk: the
/// default registry's (`registry.db`, its `-wal`/`-shm`/`.lock`/`.users`,
/// a reindex's `registry.db.reindex-*`) wherever `--db` points, since the
/// tree may hold one from before; and `db`'s own when it lives directly in
/// the artifacts directory. None of these names is a valid project id, so
/// nothing that could be indexed is skipped.
fn registry_file_filter(artifacts_dir: &Path, db: &Path) -> impl Fn(&str) -> bool + use<> {
    let db_dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let same_dir = match (db_dir.canonicalize(), artifacts_dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|_| same_dir);
    move |entry: &str| {
        entry.starts_with(DEFAULT_REGISTRY_FILE)
            || name.as_deref().is_some_and(|n| entry.starts_with(n))
    }
}

/// Take every run lock under `.locks/` (each a `<project>.<run>.lock` file
/// that `run` holds while it runs), or refuse with exit 4 naming the run
/// that holds one. Held until the swap, so that no run starts writing to
/// the registry being replaced.
fn hold_run_locks(artifacts_dir: &Path) -> Result<Vec<(PathBuf, File)>> {
    let mut held = Vec::new();
    for path in lock_files(artifacts_dir)? {
        let file = crate::regular_file::open_nofollow(&path)
            .map_err(|e| Error::io("opening the run lock", &path, e))?;
        let deadline = Instant::now() + LOCK_PATIENCE;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => return Err(busy(&path)),
                Err(TryLockError::Error(e)) => return Err(Error::io("locking", &path, e)),
            }
        }
        held.push((path, file));
    }
    Ok(held)
}

/// A run whose lock file is new began after the rebuild did: whether it is
/// still going or already done, it may have written to the old registry,
/// and swapping now would lose what it wrote. (One still waiting to open
/// the registry wrote nothing yet, but cannot be told apart from one that
/// did and is about to drop its lock; the user is told to reindex again.)
///
/// "New" is by file, not name: a lock file deleted while reindex held it
/// and made again by a run is that run's, not the one reindex holds.
fn refuse_new_runs(artifacts_dir: &Path, held: &[(PathBuf, File)]) -> Result<()> {
    let is_held = |path: &Path| {
        held.iter()
            .any(|(p, file)| p == path && same_file_as(file, path))
    };
    match lock_files(artifacts_dir)?
        .into_iter()
        .find(|path| !is_held(path))
    {
        Some(path) => Err(started_meanwhile(&path)),
        None => Ok(()),
    }
}

/// Whether `path` still names the file `file` has open.
fn same_file_as(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => read::same_file(&a, &b),
        _ => false,
    }
}

/// `project/run` of a run lock file's name.
fn run_of_lock(lock: &Path) -> String {
    let name = lock
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix(".lock")
        .unwrap_or(&name)
        .replacen('.', "/", 1)
}

fn busy(lock: &Path) -> Error {
    Error::Busy {
        what: format!("run {}", run_of_lock(lock)),
        message: format!(
            "it is running (`{}` is locked), and a rebuilt registry would miss what it records",
            lock.display()
        ),
    }
}

fn started_meanwhile(lock: &Path) -> Error {
    Error::Busy {
        what: format!("run {}", run_of_lock(lock)),
        message: format!(
            "it began while the registry was being rebuilt (`{}` is new), so the rebuilt \
             registry may miss what it recorded; the current registry was left as it was. \
             Run `orchestrator reindex` again",
            lock.display()
        ),
    }
}

/// Regular `*.lock` files in `<artifacts>/.locks/`, by name.
fn lock_files(artifacts_dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = artifacts_dir.join(walk::LOCKS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing the lock directory", &dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing the lock directory", &dir, e))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_file && name.ends_with(".lock") && !name.starts_with(TEMP_PREFIX) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// `<db>.reindex-<pid>` and its `-wal`/`-shm` (and the lock files opening
/// it created), removed on drop unless the rebuild got as far as
/// renaming it into place; the [`LiveMark`] that says this process is
/// using them goes last.
struct TempDb {
    path: PathBuf,
    armed: bool,
    _live: LiveMark,
}

impl TempDb {
    fn new(db: &Path) -> Result<TempDb> {
        let live = LiveMark::take(db)?;
        let path = leftovers::temp_db_path(db, std::process::id());
        Ok(TempDb {
            path,
            armed: true,
            _live: live,
        })
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        // The database file itself is gone once renamed into place.
        let first = if self.armed { 0 } else { 1 };
        for suffix in &["", "-wal", "-shm", "-journal", ".lock", ".users"][first..] {
            let _ = remove_if_present(&with_suffix(&self.path, suffix));
        }
    }
}

/// Make the rename durable.
#[cfg(unix)]
fn sync_parent(db: &Path) -> Result<()> {
    let dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}

#[cfg(not(unix))]
fn sync_parent(_db: &Path) -> Result<()> {
    Ok(())
}
