//! Opening a file that must be a regular file, so that whatever is swapped
//! into its place after it was checked can neither make the process hang
//! (opening a FIFO for reading waits for a writer) nor be followed (a
//! symlink pointing out of the artifacts directory).
//!
//! Callers check the path with `lstat` first, to say precisely what is
//! wrong; these are the last line, for the moment between that check and
//! the open.
//!
//! [`open_lock_file`] is the one way the tool opens a file it locks (run
//! locks, liveness flags, the registry's migration and users locks): made
//! if missing, never through a symlink, never a FIFO, device, socket or
//! directory. A lock file with other hard links is opened all the same (a
//! lock changes no byte; `cp -al` and `rsync --link-dest` snapshots make
//! such links innocently), but [`is_sole_link`] tells the run lock not to
//! write its holder record into it, so no other name's bytes change.

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

/// Open (creating if missing) a lock file for reading and writing, on the
/// terms of [`open_nofollow`]: never through a symlink at its last
/// component, never waiting on a FIFO, only a regular file. Nothing is
/// truncated. A refusal says what the path is instead ("a symbolic link,
/// not a regular file").
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    open_checked(path, options, true)
}

/// Whether `file` has no other name than the one it was opened by, so that
/// writing into it changes no other path's bytes.
pub fn is_sole_link(file: &File) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        file.metadata().is_ok_and(|m| m.nlink() <= 1)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        true
    }
}

/// Whether `e` is one of this module's refusals (a symlink or a special
/// file at the path), as opposed to the OS failing to open a file that is
/// fine (permissions, a full disk).
pub fn is_refusal(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidInput
}

fn open_with(path: &Path, nofollow: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    open_checked(path, options, nofollow)
}

fn open_checked(path: &Path, mut options: OpenOptions, nofollow: bool) -> io::Result<File> {
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
    let file = match options.open(path) {
        Ok(file) => file,
        // ELOOP (a symlink under O_NOFOLLOW) and EISDIR say it obscurely.
        Err(e) => {
            return Err(match std::fs::symlink_metadata(path) {
                Ok(meta) if !meta.is_file() => not_regular(&meta.file_type()),
                _ => e,
            });
        }
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta.file_type()));
    }
    Ok(file)
}

/// "a FIFO, not a regular file", and so on: what the user will find there.
fn not_regular(ty: &std::fs::FileType) -> io::Error {
    let what = if ty.is_symlink() {
        "a symbolic link"
    } else if ty.is_dir() {
        "a directory"
    } else {
        special_kind(ty)
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what}, not a regular file"),
    )
}

#[cfg(unix)]
fn special_kind(ty: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ty.is_fifo() {
        "a FIFO"
    } else if ty.is_socket() {
        "a socket"
    } else if ty.is_block_device() || ty.is_char_device() {
        "a device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_ty: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// Refuse a path that exists and is not a regular file once symlinks are
/// followed (a FIFO, a directory, a device), without opening it: for files
/// another library opens (SQLite opens the registry itself, and a FIFO
/// would block it for ever). A missing path passes.
pub fn check_regular_if_present(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(not_regular(&meta.file_type())),
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
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

    #[test]
    fn a_lock_file_is_made_once_and_never_opened_through_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("r.lock");
        let file = open_lock_file(&lock).unwrap();
        assert!(is_sole_link(&file));
        std::fs::write(&lock, b"kept").unwrap();
        drop(open_lock_file(&lock).unwrap());
        assert_eq!(std::fs::read(&lock).unwrap(), b"kept");

        let target = dir.path().join("important.txt");
        std::fs::write(&target, b"precious").unwrap();
        let link = dir.path().join("link.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = open_lock_file(&link).unwrap_err();
        assert!(is_refusal(&err));
        assert_eq!(err.to_string(), "a symbolic link, not a regular file");
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");

        let fifo = dir.path().join("f.live");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert_eq!(
            open_lock_file(&fifo).unwrap_err().to_string(),
            "a FIFO, not a regular file"
        );
        assert!(check_regular_if_present(&fifo).is_err());

        let sub = dir.path().join("d.lock");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(
            open_lock_file(&sub).unwrap_err().to_string(),
            "a directory, not a regular file"
        );

        let linked = dir.path().join("hard.lock");
        std::fs::hard_link(&target, &linked).unwrap();
        assert!(!is_sole_link(&open_lock_file(&linked).unwrap()));
        assert!(check_regular_if_present(&dir.path().join("absent")).is_ok());
    }
}
