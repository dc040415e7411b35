//! Files the user names for output (`package --archive`, `export --output`,
//! and every later command that writes one): checked before anything is
//! written, then written atomically into the directory that was checked.
//!
//! The invariant: a user-named output never replaces or changes anything
//! the tool keeps. [`check_output_path`] refuses (exit 2, naming the path
//! as the user gave it) an output that
//!
//! - resolves inside the artifacts directory, by any spelling: relative,
//!   with `..`, through a symlinked or bind-mounted parent directory (the
//!   parent is canonicalized, then each of its ancestors is compared with
//!   the artifacts directory by device and inode);
//! - is the registry `--db` names, or one of its side files (`-wal`,
//!   `-shm`, `-journal`, `.lock`, `.users`, a rebuild's `.reindex-*`);
//! - is an existing hard link to any of those (same device and inode);
//! - is a symlink: an output is never written through a link, and a link
//!   is not silently replaced (whoever made it meant something by it).
//!
//! A directory or special file in the output's place is an I/O failure
//! (exit 5), named, and left as it is.
//!
//! [`write_output_atomic`] / [`write_output_with`] then write a temp file
//! beside the target, fsync it, rename it over the target and fsync the
//! directory, all relative to a handle on the directory that was checked
//! (same device and inode), so a directory swapped in after the check is
//! not written into. The rename replaces a name, never writes through it.
//! Messages name the user's path, never the temp file.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::artifact::TEMP_PREFIX;
use crate::error::{Error, Result};

/// Suffixes of the files beside a registry `<db>` that belong to it:
/// SQLite's journals, `registry::migration_lock_path` and
/// `registry::users_lock_path`.
const REGISTRY_SIDE_FILES: [&str; 6] = ["", "-wal", "-shm", "-journal", ".lock", ".users"];

/// A rebuild's temp database `<db>.reindex-<pid>` (and its side files).
const REINDEX_INFIX: &str = ".reindex-";

/// An output path that passed [`check_output_path`].
#[derive(Debug, Clone)]
pub struct OutputPath {
    /// As the user gave it: every message names this.
    shown: PathBuf,
    /// The canonical directory the output goes in.
    dir: PathBuf,
    /// `dir`'s device and inode when it was checked.
    dir_id: FileId,
    file_name: OsString,
}

impl OutputPath {
    /// The path as the user gave it.
    pub fn path(&self) -> &Path {
        &self.shown
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

#[cfg(unix)]
fn id_of(meta: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

#[cfg(not(unix))]
fn id_of(_meta: &std::fs::Metadata) -> FileId {
    FileId { dev: 0, ino: 0 }
}

#[cfg(unix)]
fn link_count(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::nlink(meta)
}

#[cfg(not(unix))]
fn link_count(_meta: &std::fs::Metadata) -> u64 {
    1
}

/// Check `path`, a file the user named for output, against the artifacts
/// directory and the registry at `db` (see the module docs). Nothing is
/// written; the directory the output goes in must exist.
pub fn check_output_path(path: &Path, artifacts_dir: &Path, db: &Path) -> Result<OutputPath> {
    let shown = path.to_path_buf();
    // `None` for `..`, `/`, `.` and `dir/..`: nothing names a file there.
    let Some(file_name) = path.file_name() else {
        return Err(Error::usage(format!(
            "`{}` does not name a file to write",
            path.display()
        )));
    };
    let parent = parent_of(path);
    let dir = parent
        .canonicalize()
        .map_err(|e| Error::io("finding the directory of", &shown, e))?;
    let dir_meta =
        std::fs::metadata(&dir).map_err(|e| Error::io("finding the directory of", &shown, e))?;
    let target = dir.join(file_name);

    let existing = match std::fs::symlink_metadata(&target) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("inspecting", &shown, e)),
    };
    if let Some(meta) = &existing {
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(Error::usage_with_hint(
                format!(
                    "`{}` is a symlink; an output is never written through one, nor put in its place",
                    path.display()
                ),
                "remove the link yourself if it may go, or name another file",
            ));
        }
        // Not a refusal of the path but a file that cannot be replaced: an
        // I/O failure (exit 5), as it always was. Nothing is removed for
        // the user: a directory may hold their files.
        if !kind.is_file() {
            let (kind, why) = if kind.is_dir() {
                (
                    std::io::ErrorKind::IsADirectory,
                    "a directory is in the file's place; move or remove it, or name another file",
                )
            } else {
                (
                    std::io::ErrorKind::InvalidInput,
                    "a special file (FIFO, socket or device) is in the file's place; name another file",
                )
            };
            return Err(Error::io("writing", &shown, std::io::Error::new(kind, why)));
        }
    }

    // Inside the artifacts tree: some ancestor of the real directory is
    // the artifacts directory itself. By device and inode, so that a
    // bind mount or a second spelling of the same directory is caught too.
    if let Ok(artifacts) = std::fs::metadata(artifacts_dir) {
        let artifacts_id = id_of(&artifacts);
        let inside = std::iter::successors(Some(dir.as_path()), |d| d.parent())
            .any(|d| std::fs::metadata(d).is_ok_and(|m| id_of(&m) == artifacts_id));
        // A directory of the tree mounted elsewhere (`mount --bind
        // artifacts/p/r out`) has none of the tree among its ancestors:
        // it is found by its own device and inode.
        if inside || tree_dir_depth(artifacts_dir, &dir).is_some() {
            return Err(inside_artifacts(path, artifacts_dir));
        }
    }

    // The registry and its side files, where `--db` puts them, and beside
    // the file it links to when it is a symlink (where SQLite puts them).
    let registries: Vec<PathBuf> = std::iter::once(db.to_path_buf())
        .chain(db.canonicalize().ok())
        .collect();
    for registry in &registries {
        let db_name = registry.file_name().unwrap_or(registry.as_os_str());
        if std::fs::metadata(parent_of(registry)).is_ok_and(|m| id_of(&m) == id_of(&dir_meta))
            && is_registry_file(file_name, db_name)
        {
            return Err(registry_file(path, db));
        }
    }

    // A hard link shares the inode of what it links to: replacing the name
    // would not touch the artifact, but a user who names it means the
    // artifact, so it is refused as the artifact would be.
    if let Some(meta) = existing.filter(|m| link_count(m) > 1) {
        let id = id_of(&meta);
        let registry_twin = registries
            .iter()
            .flat_map(|r| REGISTRY_SIDE_FILES.iter().map(|s| with_suffix(r, s)))
            .any(|p| std::fs::metadata(&p).is_ok_and(|m| id_of(&m) == id));
        if registry_twin {
            return Err(registry_file(path, db));
        }
        if let Some(twin) = find_inode(artifacts_dir, id) {
            return Err(Error::usage_with_hint(
                format!(
                    "`{}` is a hard link to `{}` in the artifacts directory; outputs never replace what the tool keeps",
                    path.display(),
                    twin.display()
                ),
                "name a file that is not linked to an artifact",
            ));
        }
    }

    Ok(OutputPath {
        shown,
        dir,
        dir_id: id_of(&dir_meta),
        file_name: file_name.to_owned(),
    })
}

fn inside_artifacts(path: &Path, artifacts_dir: &Path) -> Error {
    Error::usage_with_hint(
        format!(
            "`{}` is inside the artifacts directory `{}`, which holds only what the tool writes there",
            path.display(),
            artifacts_dir.display()
        ),
        format!("write the output outside `{}`", artifacts_dir.display()),
    )
}

fn registry_file(path: &Path, db: &Path) -> Error {
    Error::usage_with_hint(
        format!(
            "`{}` is the registry `{}` or one of its files; an output never replaces it",
            path.display(),
            db.display()
        ),
        "name another file for the output",
    )
}

/// Whether `name` is the registry `db_name` or one of its side files.
fn is_registry_file(name: &OsStr, db_name: &OsStr) -> bool {
    let (name, db_name) = (name.as_encoded_bytes(), db_name.as_encoded_bytes());
    let Some(rest) = name.strip_prefix(db_name) else {
        return false;
    };
    REGISTRY_SIDE_FILES.iter().any(|s| rest == s.as_bytes())
        || rest.starts_with(REINDEX_INFIX.as_bytes())
}

/// The path under `root` (not following symlinks) whose device and inode
/// are `id`, if any. Walks the whole tree: only called for a target with
/// more than one link, which is rare.
fn find_inode(root: &Path, id: FileId) -> Option<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if id_of(&meta) == id {
                return Some(entry.path());
            }
        }
    }
    None
}

/// How deep below the artifacts directory the real directory `dir` lies
/// (1 for a project directory, 2 for a run directory, …) when `dir` or one
/// of its ancestors is a directory of the tree seen under another path (a
/// bind mount): the tree's directories are walked, never through a
/// symlink, and compared by device and inode. `None` when it is not.
/// Only project and run directories are walked (the tool makes nothing
/// deeper), so the cost is one listing per project.
fn tree_dir_depth(artifacts_dir: &Path, dir: &Path) -> Option<usize> {
    let ids: Vec<FileId> = std::iter::successors(Some(dir), |d| d.parent())
        .map_while(|d| std::fs::metadata(d).ok().map(|m| id_of(&m)))
        .collect();
    let mut dirs = vec![(artifacts_dir.to_path_buf(), 0)];
    while let Some((parent, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if let Some(up) = ids.iter().position(|id| *id == id_of(&meta)) {
                return Some(depth + 1 + up);
            }
            if depth + 1 < 2 {
                dirs.push((entry.path(), depth + 1));
            }
        }
    }
    None
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
}

/// `registry.db` + `-wal` → `registry.db-wal`, without going through UTF-8.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Refuse (exit 2) a registry `db` inside a run directory of the artifacts
/// directory (`<artifacts>/<project>/<run>/…`, at any depth): a run
/// directory holds only the run's files, `gc` removes it whole and
/// `reindex` reads it as artifacts. Resolved as outputs are (relative
/// paths, `..`, symlinked and bind-mounted directories), except that
/// neither the registry nor its directories need exist yet.
///
/// A `--db` that is a symlink is checked where it leads too, link by link
/// (dangling or not): SQLite follows it, and keeps the database and its
/// `-wal` and `-shm` where the last link points.
pub fn check_registry_location(db: &Path, artifacts_dir: &Path) -> Result<()> {
    let artifacts = resolve_lexically(artifacts_dir);
    let artifacts_id = std::fs::metadata(artifacts_dir).ok().map(|m| id_of(&m));
    let in_run_dir = |path: &Path| {
        let dir = resolve_lexically(parent_of(path));
        let depth = match dir.strip_prefix(&artifacts) {
            Ok(rel) => Some(rel.components().count()),
            Err(_) => artifacts_id
                .and_then(|id| {
                    dir.ancestors()
                        .position(|d| std::fs::metadata(d).is_ok_and(|m| id_of(&m) == id))
                })
                .or_else(|| {
                    // A directory of the tree mounted elsewhere; the part
                    // of `dir` that does not exist yet adds its depth.
                    let existing = dir.ancestors().find(|d| d.exists())?;
                    let below = dir.strip_prefix(existing).ok()?.components().count();
                    tree_dir_depth(artifacts_dir, existing).map(|d| d + below)
                }),
        };
        depth.is_some_and(|d| d >= 2)
    };
    let links = link_chain(db);
    if in_run_dir(db) || links.iter().any(|hop| in_run_dir(hop)) {
        let through = match links.last() {
            Some(target) => format!(" (a symlink to `{}`)", target.display()),
            None => String::new(),
        };
        return Err(Error::usage_with_hint(
            format!(
                "the registry `{}`{through} would be inside a run directory of the artifacts \
                 directory `{}`; a run directory holds only its run's files, and `gc` removes it whole",
                db.display(),
                artifacts_dir.display()
            ),
            format!(
                "leave `--db` out (the registry is then `{}`), or give a path outside the run directories",
                artifacts_dir.join("registry.db").display()
            ),
        ));
    }
    Ok(())
}

/// Where the symlink `path` leads, one entry per link followed (empty when
/// `path` is not a symlink), whether or not the last one exists. Stops
/// after 40 links, as the kernel does.
fn link_chain(path: &Path) -> Vec<PathBuf> {
    let mut hops = Vec::new();
    let mut current = path.to_path_buf();
    while hops.len() < 40 {
        let is_link = std::fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_symlink());
        let Some(target) = is_link.then(|| std::fs::read_link(&current).ok()).flatten() else {
            break;
        };
        // Relative to the link's directory (`""` for a bare name: no `./`).
        current = match current.parent() {
            Some(dir) if !target.is_absolute() => dir.join(target),
            _ => target,
        };
        hops.push(current.clone());
    }
    hops
}

/// `path` made absolute, with its longest existing ancestor canonicalized
/// and the rest (which does not exist, so holds no symlink) appended with
/// `.` and `..` applied as text.
fn resolve_lexically(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    let base = loop {
        if let Ok(real) = existing.canonicalize() {
            break real;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            // `..` at the end of what does not exist, or the root.
            _ => match existing.parent() {
                Some(parent) => {
                    rest.push(OsString::from(".."));
                    existing = parent;
                }
                None => break existing.to_path_buf(),
            },
        }
    };
    let mut out = base;
    for part in rest.iter().rev() {
        if part == ".." {
            out.pop();
        } else if part != "." {
            out.push(part);
        }
    }
    out
}

/// Write `bytes` to the checked output atomically (see the module docs).
pub fn write_output_atomic(out: &OutputPath, bytes: &[u8]) -> Result<()> {
    write_output_with(out, |w| {
        w.write_all(bytes)
            .map_err(|e| Error::io("writing", out.path(), e))
    })
}

/// Write the checked output atomically with what `write` puts into the
/// writer it is given; its errors are returned as they are (they should
/// name [`OutputPath::path`] for a failed write). Nothing replaces the
/// target unless `write` and the flush and fsync after it succeed; the
/// temp file is removed on every failure.
pub fn write_output_with<T>(
    out: &OutputPath,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T>,
) -> Result<T> {
    let dir = sys::open_dir(&out.dir)
        .map_err(|e| Error::io("opening the directory of", out.path(), e))?;
    let found = dir
        .metadata()
        .map_err(|e| Error::io("opening the directory of", out.path(), e))?;
    if id_of(&found) != out.dir_id {
        return Err(Error::io(
            "writing",
            out.path(),
            std::io::Error::other("its directory was replaced after it was checked"),
        ));
    }
    let (tmp_name, file) =
        sys::create_temp(&dir).map_err(|e| Error::io("writing", out.path(), e))?;
    let mut tmp = TempGuard {
        dir: &dir,
        name: Some(tmp_name),
    };
    let mut writer = BufWriter::new(file);
    let value = write(&mut writer)?;
    writer
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("writing", out.path(), e))?;
    crate::failpoint::hit("write.before_rename")
        .map_err(|e| Error::io("writing", out.path(), e))?;
    let name = tmp.name.take().unwrap_or_default();
    if let Err(e) = sys::rename(&dir, &name, &out.file_name) {
        tmp.name = Some(name);
        return Err(Error::io("replacing", out.path(), e));
    }
    dir.sync_all()
        .map_err(|e| Error::io("syncing the directory of", out.path(), e))?;
    Ok(value)
}

/// Removes the temp file unless it was renamed into place.
struct TempGuard<'a> {
    dir: &'a File,
    name: Option<OsString>,
}

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            let _ = sys::remove(self.dir, name);
        }
    }
}

/// Creating, renaming and removing names relative to a directory handle
/// (`openat`, `renameat`, `unlinkat`): the standard library has no
/// directory-relative calls.
#[cfg(unix)]
mod sys {
    use std::ffi::{CString, OsStr, OsString};
    use std::fs::File;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    pub fn open_dir(dir: &Path) -> io::Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(dir)
    }

    fn c_name(name: &OsStr) -> io::Result<CString> {
        CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    }

    /// A new file `.tmp-<pid>-<n>` in `dir`, mode 0644 (less the umask),
    /// created exclusively and never through a symlink.
    pub fn create_temp(dir: &File) -> io::Result<(OsString, File)> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = OsString::from(format!(
                "{}{}-{nanos:x}{n}",
                super::TEMP_PREFIX,
                std::process::id()
            ));
            let c = c_name(&name)?;
            // SAFETY: a valid directory fd and a NUL-terminated name; the
            // returned fd, if any, is owned by the File made from it.
            let fd = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    c.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o644 as libc::c_uint,
                )
            };
            if fd >= 0 {
                // SAFETY: `fd` was just opened and nothing else owns it.
                return Ok((name, unsafe { File::from_raw_fd(fd) }));
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::AlreadyExists {
                return Err(err);
            }
        }
    }

    pub fn rename(dir: &File, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (from, to) = (c_name(from)?, c_name(to)?);
        // SAFETY: valid fds and NUL-terminated names.
        let rc =
            unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub fn remove(dir: &File, name: &OsStr) -> io::Result<()> {
        let name = c_name(name)?;
        // SAFETY: a valid fd and a NUL-terminated name.
        let rc = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// Elsewhere: by path, in the checked directory.
#[cfg(not(unix))]
mod sys {
    use std::ffi::{OsStr, OsString};
    use std::fs::File;
    use std::io;
    use std::path::Path;

    pub fn open_dir(dir: &Path) -> io::Result<File> {
        File::open(dir)
    }
    pub fn create_temp(_dir: &File) -> io::Result<(OsString, File)> {
        Err(io::Error::other("outputs are written on Unix only"))
    }
    pub fn rename(_dir: &File, _from: &OsStr, _to: &OsStr) -> io::Result<()> {
        Err(io::Error::other("outputs are written on Unix only"))
    }
    pub fn remove(_dir: &File, _name: &OsStr) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    struct Tree {
        _dir: tempfile::TempDir,
        root: PathBuf,
        artifacts: PathBuf,
        db: PathBuf,
    }

    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let artifacts = root.join("artifacts");
        std::fs::create_dir_all(artifacts.join("p/r")).unwrap();
        std::fs::write(artifacts.join("p/r/X.json"), b"artifact").unwrap();
        let db = artifacts.join("registry.db");
        std::fs::write(&db, b"db").unwrap();
        Tree {
            _dir: dir,
            root,
            artifacts,
            db,
        }
    }

    fn refused(t: &Tree, path: &Path) -> String {
        let err = check_output_path(path, &t.artifacts, &t.db).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::USAGE, "{err}");
        err.to_string()
    }

    #[test]
    fn every_spelling_of_the_artifacts_tree_is_refused() {
        let t = tree();
        refused(&t, &t.artifacts.join("p/r/X.json"));
        refused(&t, &t.artifacts.join("p/r/new.tar"));
        refused(&t, &t.artifacts.join("p/../p/r/X.json"));
        refused(&t, &t.artifacts.join("out.tar"));
        let link = t.root.join("link");
        std::os::unix::fs::symlink(t.artifacts.join("p"), &link).unwrap();
        let msg = refused(&t, &link.join("r/X.json"));
        assert!(
            msg.contains("link/r/X.json"),
            "names the user's path: {msg}"
        );
        assert!(check_output_path(&t.root.join("out.tar"), &t.artifacts, &t.db).is_ok());
    }

    #[test]
    fn the_registry_and_its_side_files_are_refused_wherever_db_is() {
        let t = tree();
        let elsewhere = t.root.join("reg").join("my.db");
        std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
        for name in [
            "my.db",
            "my.db-wal",
            "my.db-shm",
            "my.db.lock",
            "my.db.users",
            "my.db.reindex-42-wal",
        ] {
            let err = check_output_path(&t.root.join("reg").join(name), &t.artifacts, &elsewhere)
                .unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::USAGE, "{name}: {err}");
        }
        assert!(check_output_path(&t.root.join("reg/my.dbx"), &t.artifacts, &elsewhere).is_ok());
        // `--db` a symlink: SQLite keeps the side files beside its target.
        std::fs::write(&elsewhere, b"db").unwrap();
        let link = t.root.join("link.db");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let err =
            check_output_path(&t.root.join("reg/my.db-wal"), &t.artifacts, &link).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::USAGE, "{err}");
    }

    #[test]
    fn links_and_special_files_at_the_target_are_refused() {
        let t = tree();
        let keep = t.root.join("keep.txt");
        std::fs::write(&keep, b"keep").unwrap();
        let link = t.root.join("out.tar");
        std::os::unix::fs::symlink(&keep, &link).unwrap();
        refused(&t, &link);
        let dir = check_output_path(&t.root, &t.artifacts, &t.db).unwrap_err();
        assert_eq!(dir.exit_code(), crate::error::exit::IO, "{dir}");
        refused(&t, &t.root.join(".."));
        let hard = t.root.join("hard.json");
        std::fs::hard_link(t.artifacts.join("p/r/X.json"), &hard).unwrap();
        assert!(refused(&t, &hard).contains("hard link"));
        let hard_db = t.root.join("hard.db");
        std::fs::hard_link(&t.db, &hard_db).unwrap();
        refused(&t, &hard_db);
    }

    #[test]
    fn a_registry_in_a_run_directory_is_refused_even_before_it_exists() {
        let t = tree();
        let a = &t.artifacts;
        for bad in [
            "p/r/registry.db",
            "p/r/deeper/x/registry.db",
            "p/new/registry.db",
            "p/r/../r/registry.db",
        ] {
            let err = check_registry_location(&a.join(bad), a).unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::USAGE, "{bad}");
        }
        for ok in [
            "registry.db",
            "p/registry.db",
            "p/r/../../other.db",
            "../elsewhere.db",
        ] {
            check_registry_location(&a.join(ok), a).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let link = t.root.join("runlink");
        std::os::unix::fs::symlink(a.join("p/r"), &link).unwrap();
        assert!(check_registry_location(&link.join("registry.db"), a).is_err());
        // An artifacts directory that does not exist yet is compared as text.
        let fresh = t.root.join("fresh");
        assert!(check_registry_location(&fresh.join("p/r/registry.db"), &fresh).is_err());
        assert!(check_registry_location(&fresh.join("registry.db"), &fresh).is_ok());
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temp_file() {
        let t = tree();
        let path = t.root.join("out.txt");
        std::fs::write(&path, b"old").unwrap();
        let out = check_output_path(&path, &t.artifacts, &t.db).unwrap();
        write_output_atomic(&out, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let failed = write_output_with(&out, |w| {
            w.write_all(b"half").unwrap();
            Err::<(), _>(Error::usage("stop"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(&t.root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(TEMP_PREFIX))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }
}
