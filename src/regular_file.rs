//! Opening a file that must be a regular file, so that whatever is swapped
//! into its place after it was checked can neither make the process hang
//! (opening a FIFO for reading waits for a writer) nor be followed (a
//! symlink pointing out of the artifacts directory).
//!
//! Callers check the path with `lstat` first, to say precisely what is
//! wrong; these are the last line, for the moment between that check and
//! the open.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Open `path` for reading, never following a symlink at its last
/// component and never waiting on a FIFO or device; a handle that turns
/// out not to be a regular file is refused ("not a regular file").
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    open_with(path, true)
}

/// [`open_nofollow`] for a path the user names, which may be a symlink to
/// the file (a config kept elsewhere): follows it, still never waits.
pub fn open_following(path: &Path) -> io::Result<File> {
    open_with(path, false)
}

fn open_with(path: &Path, nofollow: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK changes nothing for a regular file's reads on a local
        // file system. (Where a lease is held on the file, Samba's or an
        // NFS server's, the open fails at once instead of waiting for the
        // lease to be broken: an "unreadable" file, not a hang.)
        let mut flags = libc::O_NONBLOCK;
        if nofollow {
            flags |= libc::O_NOFOLLOW;
        }
        options.custom_flags(flags);
    }
    #[cfg(not(unix))]
    let _ = nofollow;
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_waiting_and_a_symlink_only_when_followed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("X.json");
        std::fs::write(&file, b"{}").unwrap();
        assert!(open_nofollow(&file).is_ok());

        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(open_nofollow(&link).is_err());
        assert!(open_following(&link).is_ok());

        let fifo = dir.path().join("fifo.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // Would block for ever without O_NONBLOCK: no writer ever comes.
        let err = open_nofollow(&fifo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(open_following(&fifo).is_err());

        let sub = dir.path().join("dir");
        std::fs::create_dir(&sub).unwrap();
        assert!(open_nofollow(&sub).is_err());
    }
}
