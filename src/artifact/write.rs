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
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
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
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("writing", tmp.path().to_path_buf(), e))?;
    crate::failpoint::hit("write.before_rename").map_err(|e| Error::io("replacing", path, e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("replacing", path, e.error))?;
    sync_dir(dir)
}

#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}

#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> Result<()> {
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
