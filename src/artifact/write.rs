//! Atomic file writes: a reader sees the old file or the new one, never half.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Name prefix of the temporary files `write_atomic` creates; a crash can
/// leave one behind, which the next run under the same lock removes.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Write `bytes` to `path` atomically: a temp file in the same directory,
/// fsync, rename over the target, then fsync the directory so the rename
/// itself survives a crash.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_unsynced(path, bytes)?;
    sync_dir(parent(path))
}

/// [`write_atomic`] without the directory fsync: readers see the new file
/// whole or not at all and its bytes are durable, but its name survives a
/// power cut only once the caller runs [`sync_dir`] on its directory. For
/// several files in one directory that must be durable together (an
/// artifact and its meta record), one `sync_dir` serves them all.
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path);
    // The final rename cannot replace a directory; say so, and what to do,
    // before writing anything rather than after as "Is a directory". A
    // directory is never removed for the user: it may hold their files.
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(Error::io(
            "writing",
            path,
            std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "a directory is in the file's place; move or remove it, then run again",
            ),
        ));
    }
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    // tempfile creates 0600 files; artifacts are ordinary readable files
    // (the process umask still applies).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temporary file in", dir, e))?;
    // Through the plain file: the temp file's own writer adds its internal
    // name to errors, and a message names the file the user knows.
    tmp.as_file_mut()
        .write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("writing", path, e))?;
    crate::failpoint::hit("write.before_rename").map_err(|e| Error::io("replacing", path, e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("replacing", path, e.error))?;
    Ok(())
}

/// Delete the `.tmp-*` files in the run directory `run_dir`: what writers
/// that died left there (a killed `run` or `package`). Returns how many.
///
/// A temp file is stale exactly when no process can still be writing it.
/// Every writer of a run directory holds the run's lock while it writes,
/// so this may be called only by a process that holds that lock
/// ([`crate::lock::acquire`]) or has found the run idle
/// ([`remove_stale_temp_files_if_idle`]); then every temp file there is a
/// dead writer's.
pub fn remove_stale_temp_files(run_dir: &Path) -> Result<usize> {
    let entries = std::fs::read_dir(run_dir)
        .map_err(|e| Error::io("listing the run directory", run_dir, e))?;
    let mut removed = 0;
    for entry in entries.flatten() {
        // By bytes: a name that is not UTF-8 is still compared exactly.
        let is_temp = entry
            .file_name()
            .as_encoded_bytes()
            .starts_with(TEMP_PREFIX.as_bytes());
        if is_temp && entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::io("removing a stale temporary file", entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Whether `run_dir` holds a temp file of an interrupted write.
pub fn has_temp_files(run_dir: &Path) -> bool {
    std::fs::read_dir(run_dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .as_encoded_bytes()
                .starts_with(TEMP_PREFIX.as_bytes())
        })
    })
}

/// [`remove_stale_temp_files`] for a process that does not hold the run
/// (`verify`): only while the run is idle, which it holds for the time it
/// takes ([`crate::lock::hold_if_idle`]), and best effort: a run in
/// progress or a directory this process may not change is left as it is,
/// and its temp files are what a listing of it shows. Returns how many
/// were removed.
pub fn remove_stale_temp_files_if_idle(
    artifacts_dir: &Path,
    project_id: &str,
    run_id: &str,
) -> usize {
    let run_dir = artifacts_dir.join(project_id).join(run_id);
    // Holding the run idle makes it read as live to every other reader's
    // probe for that moment (`runs list`, `gc`, another `verify`): do it
    // only when there is something to remove, which is rare.
    if !has_temp_files(&run_dir) {
        return 0;
    }
    let Some(_idle) = crate::lock::hold_if_idle(artifacts_dir, project_id, run_id) else {
        return 0;
    };
    remove_stale_temp_files(&run_dir).unwrap_or(0)
}

/// Whether `path` is a regular file (not a symlink) holding exactly
/// `bytes`.
///
/// Nothing is fsynced: bytes this tool put at an artifact's name were
/// synced before the rename that gave them the name ([`write_atomic`]), so
/// only the name may still need its directory synced, which the caller
/// does. (Bytes put there some other way and lost to a power cut are what
/// the next run's hash check finds: the stage re-executes.) An fsync, even
/// of clean pages, is a cache flush the disk must answer: milliseconds
/// apiece while other processes write.
///
/// This is what lets a stage that re-executes (`--force`) and reproduces
/// the bytes already there leave the file alone instead of paying for a
/// temp file, an fsync of new data and a rename. Any doubt (no file, a
/// symlink, another length, a read error) answers `false`, and the caller
/// writes as usual, which reports real errors with their context.
pub fn holds_exactly(path: &Path, bytes: &[u8]) -> bool {
    let Ok(before) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !before.is_file() || before.len() != bytes.len() as u64 {
        return false;
    }
    // A symlink or FIFO swapped in since the check is refused, not followed
    // or waited on.
    let Ok(file) = crate::regular_file::open_nofollow(path) else {
        return false;
    };
    same_bytes(&file, bytes)
}

/// Whether `file` (read from its start) holds exactly `bytes`, compared
/// through a fixed buffer: a 26 MB artifact is not read into a second copy
/// beside the one just made. A read error answers `false`.
fn same_bytes(mut file: &std::fs::File, bytes: &[u8]) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 64 << 10];
    let mut rest = bytes;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return rest.is_empty(),
            Ok(n) if n <= rest.len() && buf[..n] == rest[..n] => rest = &rest[n..],
            Ok(_) => return false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// The directory `path` is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
}

/// Make the renames in `dir` durable.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> Result<()> {
    crate::failpoint::hit("dir.sync").map_err(|e| Error::io("syncing directory", dir, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}

#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_existing_file_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("X.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("X.json")]);
    }

    #[test]
    fn a_directory_in_the_way_is_left_alone_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("X.json");
        std::fs::create_dir(&path).unwrap();
        let err = write_atomic(&path, b"new").unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::IO);
        assert!(err.to_string().contains("X.json"), "{err}");
        assert!(path.is_dir());
        // No temp file was left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn holds_exactly_only_the_same_bytes_in_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("X.json");
        assert!(!holds_exactly(&path, b"abc"), "no file");
        std::fs::write(&path, b"abc").unwrap();
        assert!(holds_exactly(&path, b"abc"));
        assert!(!holds_exactly(&path, b"abd"), "same length");
        assert!(!holds_exactly(&path, b"abcd"), "longer");
        assert!(!holds_exactly(&path, b"ab"), "shorter");
        assert!(!holds_exactly(&path, b""), "empty");
        // Over several reads of the comparison buffer.
        let big: Vec<u8> = (0..200_007u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &big).unwrap();
        assert!(holds_exactly(&path, &big));
        let mut last_differs = big.clone();
        *last_differs.last_mut().unwrap() ^= 1;
        assert!(!holds_exactly(&path, &last_differs), "last byte");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(!holds_exactly(&path, b""), "a directory");
    }

    #[cfg(unix)]
    #[test]
    fn holds_exactly_does_not_follow_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.json");
        std::fs::write(&target, b"abc").unwrap();
        let path = dir.path().join("X.json");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(!holds_exactly(&path, b"abc"));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.txt");
        std::fs::write(&target, b"keep").unwrap();
        let path = dir.path().join("X.json");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }
}
