//! Deleting one run so that an interruption at any point is visible and
//! can be finished, and so that nothing gc did not write is removed.
//!
//! The order, under the run's lock:
//!
//! 1. **Mark.** `<project>/<run>` is renamed to `<project>/.deleting-<run>`
//!    and the project directory fsynced. One rename: atomic, needs no free
//!    space (so it works on a full disk), and survives losing the registry.
//!    From here the run's id is free in the tree: a later `run` of the same
//!    id makes a fresh directory and never mixes with the doomed files.
//!    `reindex` never indexes a `.deleting-` directory (not a run id), and
//!    `verify` reports one that no live process holds.
//! 2. **Files.** In the marked directory, only what the tool writes there
//!    goes: the registered files, any artifact or meta file of a known type,
//!    the run summary and `.tmp-*` temp files (stale: the run lock is held).
//!    Deleting before writing anything to SQLite frees space first, which a
//!    full disk needs.
//! 3. **Rows.** The registry's rows go in one transaction.
//! 4. **Directory.** The marked directory is removed if empty. If the user
//!    had put files of their own in it, it is renamed back to
//!    `<project>/<run>` with just those files (when that name is free),
//!    and they are reported; nothing of theirs is deleted or hidden.
//!
//! A later gc finishes a deletion found at step 2–4 ([`Mode::Finish`]),
//! whether or not its rows are still there.

use std::path::{Path, PathBuf};

use crate::artifact::{ArtifactType, RUN_SUMMARY_FILE, TEMP_PREFIX, sync_dir};
use crate::config::is_valid_id;
use crate::error::{Error, Result};
use crate::registry::Registry;

/// Prefix of the name a run directory gets while gc deletes it.
pub const DELETING_PREFIX: &str = ".deleting-";

/// `<run>` → `.deleting-<run>`.
pub fn deleting_name(run_id: &str) -> String {
    format!("{DELETING_PREFIX}{run_id}")
}

/// The run id in a deletion name, if `name` is one.
pub fn run_of_deleting_name(name: &str) -> Option<&str> {
    name.strip_prefix(DELETING_PREFIX)
        .filter(|r| is_valid_id(r))
}

/// A run deletion an earlier gc began and did not finish.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interrupted {
    pub project_id: String,
    pub run_id: String,
    /// `<project>/.deleting-<run>`, relative to the artifacts directory.
    pub rel: String,
}

/// Every `<project>/.deleting-<run>` directory under `artifacts_dir` (only
/// in `project`'s directory when given), in name order. Unreadable or
/// missing directories hold none.
pub fn interrupted(artifacts_dir: &Path, project: Option<&str>) -> Vec<Interrupted> {
    let projects: Vec<String> = match project {
        Some(p) => vec![p.to_string()],
        None => crate::verify::tree::dirs(artifacts_dir)
            .into_iter()
            .filter(|n| is_valid_id(n))
            .collect(),
    };
    let mut out = Vec::new();
    for p in projects {
        for name in crate::verify::tree::dirs(&artifacts_dir.join(&p)) {
            if let Some(run) = run_of_deleting_name(&name) {
                out.push(Interrupted {
                    project_id: p.clone(),
                    run_id: run.to_string(),
                    rel: format!("{p}/{name}"),
                });
            }
        }
    }
    out.sort();
    out
}

/// What deleting is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Delete a run the plan selected: mark it, then go on.
    Remove,
    /// Finish a deletion found marked: never touch `<project>/<run>` (a
    /// later run of the same id may have made it anew), and delete the
    /// rows only when that directory does not exist (else they are the new
    /// run's).
    Finish,
}

/// What one deletion did.
#[derive(Debug, Clone, Default)]
pub struct Deleted {
    pub files: u64,
    pub bytes: u64,
    /// Paths (relative to the artifacts directory) left in place because
    /// gc did not write them.
    pub left: Vec<String>,
    /// The files are gone but the disk was too full to delete the rows:
    /// the run stays marked, for [`Mode::Finish`] once more space is free.
    pub rows_pending: bool,
}

/// Why a run could not be deleted without removing what is not gc's; the
/// run stays as it was.
#[derive(Debug, Clone)]
pub struct Refusal(pub String);

/// Delete run `project`/`run` as the module comment says. The caller holds
/// the run's lock.
pub fn delete_run(
    registry: &mut Registry,
    artifacts_dir: &Path,
    project: &str,
    run: &str,
    mode: Mode,
) -> Result<std::result::Result<Deleted, Refusal>> {
    let project_dir = artifacts_dir.join(project);
    let run_dir = project_dir.join(run);
    let marked = project_dir.join(deleting_name(run));
    let mut done = Deleted::default();
    let registered = registry.registered_files(project, run)?;
    let ours = |name: &str| is_ours(name, project, run, &registered);

    if mode == Mode::Remove {
        match std::fs::symlink_metadata(&run_dir) {
            Ok(m) if m.is_dir() => {
                if let Some(db) = registry_inside(registry.path(), &run_dir) {
                    return Ok(Err(Refusal(format!(
                        "the registry `{}` lies inside its directory; gc never moves or removes \
                         it (move the registry out, then run gc again)",
                        db.display()
                    ))));
                }
                if is_dir(&marked)? {
                    // An earlier deletion of this id, interrupted: its
                    // files go first, so the name is free for this one.
                    clear(&marked, &ours, &mut done)?;
                    if !remove_empty_dir(&marked)? {
                        return Ok(Err(Refusal(format!(
                            "`{}` (left by an interrupted gc) holds files gc did not write; \
                             move them away, then run gc again",
                            rel(artifacts_dir, &marked)
                        ))));
                    }
                }
                std::fs::rename(&run_dir, &marked)
                    .map_err(|e| Error::io("marking for deletion", &run_dir, e))?;
                sync_dir(&project_dir)?;
                point("gc.after_mark", &marked)?;
            }
            // A symlink or file where the run directory belongs was not
            // made by this tool: it stays (verify reports it).
            Ok(_) => done.left.push(rel(artifacts_dir, &run_dir)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("inspecting", &run_dir, e)),
        }
    }

    if is_dir(&marked)? {
        clear(&marked, &ours, &mut done)?;
    }
    point("gc.before_rows", &marked)?;
    let rows_go = match mode {
        Mode::Remove => true,
        Mode::Finish => !exists(&run_dir)? && registry.run_exists(project, run)?,
    };
    if rows_go {
        match registry.delete_run(project, run) {
            // What this run's files freed was not enough for SQLite's log;
            // the caller frees more (other runs) and comes back.
            Err(e) if is_disk_full(&e) => {
                done.rows_pending = true;
                return Ok(Ok(done));
            }
            deleted => deleted?,
        }
    }
    point("gc.after_rows", &marked)?;

    if is_dir(&marked)? && !remove_empty_dir(&marked)? {
        // The user's own files: back under the run's name when it is free,
        // so nothing of theirs sits under a name that means "deleting".
        let home = if exists(&run_dir)? {
            &marked
        } else {
            std::fs::rename(&marked, &run_dir)
                .map_err(|e| Error::io("moving back files gc did not write", &marked, e))?;
            &run_dir
        };
        for name in names(home)? {
            done.left
                .push(format!("{}/{name}", rel(artifacts_dir, home)));
        }
    }
    if exists(&project_dir)? {
        sync_dir(&project_dir)?;
    }
    // An empty project directory goes too; a non-empty one (other runs,
    // the user's files) stays, which `remove_dir` guarantees.
    if std::fs::remove_dir(&project_dir).is_ok() {
        sync_dir(artifacts_dir)?;
    }
    Ok(Ok(done))
}

/// Whether `e` says the disk is full: the registry reports a full disk as
/// [`Error::DiskFull`] (see `Error::io`), raw SQLite errors and I/O errors
/// may still carry it.
pub fn is_disk_full(e: &Error) -> bool {
    match e {
        Error::DiskFull { .. } => true,
        Error::Sql(e) => e.is_disk_full(),
        Error::Io { source, .. } => crate::error::is_disk_full(source),
        _ => false,
    }
}

/// Whether gc may delete `name` in the run's directory: a file the tool
/// writes there (registered or not) or a temp file of an interrupted write.
fn is_ours(name: &str, project: &str, run: &str, registered: &[String]) -> bool {
    let prefix = format!("{project}/{run}/");
    let registered_here = registered.iter().any(|path| {
        path.strip_prefix(&prefix).is_some_and(|file| {
            file == name
                || name.strip_suffix(".meta.json")
                    == Some(file.strip_suffix(".json").unwrap_or(file))
        })
    });
    registered_here
        || name == RUN_SUMMARY_FILE
        || name.starts_with(TEMP_PREFIX)
        || ArtifactType::EVERY
            .iter()
            .any(|t| name == t.file_name() || name == t.meta_file_name())
}

/// Delete the regular files in `dir` that `ours` accepts; anything else
/// (the user's files, symlinks, directories) stays.
fn clear(dir: &Path, ours: &dyn Fn(&str) -> bool, done: &mut Deleted) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("inspecting", &path, e)),
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !meta.is_file() || !ours(name) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                done.files += 1;
                done.bytes += meta.len();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("removing", &path, e)),
        }
        point("gc.file_removed", &path)?;
    }
    Ok(())
}

/// Remove `dir` if it is empty; `false` if it holds anything.
fn remove_empty_dir(dir: &Path) -> Result<bool> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io("removing", dir, e)),
    }
}

/// The registry file (or its directory's view of it) when it lies inside
/// `run_dir`: renaming the directory would move it from under SQLite.
fn registry_inside(db: &Path, run_dir: &Path) -> Option<PathBuf> {
    let run_dir = std::fs::canonicalize(run_dir).ok()?;
    let parent = db.parent().filter(|p| !p.as_os_str().is_empty())?;
    let db_dir = std::fs::canonicalize(parent).ok()?;
    db_dir.starts_with(&run_dir).then(|| db.to_path_buf())
}

fn names(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    let mut out: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    Ok(out)
}

fn is_dir(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(m.is_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("inspecting", path, e)),
    }
}

fn exists(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("inspecting", path, e)),
    }
}

fn rel(artifacts_dir: &Path, path: &Path) -> String {
    path.strip_prefix(artifacts_dir)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn point(name: &'static str, path: &Path) -> Result<()> {
    crate::failpoint::hit(name).map_err(|e| Error::io("deleting", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tools_own_names_are_ours() {
        let registered = vec!["p/r/Script.json".to_string(), "p/r/odd.bin".to_string()];
        for name in [
            "Script.json",
            "Script.meta.json",
            "odd.bin",
            "odd.bin.meta.json",
            "RenderPackage.json",
            "RenderPackage.meta.json",
            "run_summary.json",
            ".tmp-abc123",
        ] {
            assert!(is_ours(name, "p", "r", &registered), "{name}");
        }
        for name in ["notes.txt", "registry.db", "Script.json.bak", "other.json"] {
            assert!(!is_ours(name, "p", "r", &registered), "{name}");
        }
    }

    #[test]
    fn deletion_names_round_trip() {
        assert_eq!(
            run_of_deleting_name(&deleting_name("take-2")),
            Some("take-2")
        );
        assert_eq!(run_of_deleting_name(".deleting-"), None);
        assert_eq!(run_of_deleting_name("take-2"), None);
    }
}
