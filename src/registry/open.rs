//! Opening the registry: the version check, the migration lock and the
//! read-only fallbacks.
//!
//! A file this build must not use (written by a newer version, or not a
//! registry at all) is left byte-for-byte as it was: its migration history is
//! read with plain `SELECT`s, which write nothing, before any pragma that
//! could write (the journal mode) and before migrating.
//!
//! Creating and migrating happen only while holding an exclusive lock on
//! `<db>.lock`, a separate file beside the database: many processes starting
//! on a registry that does not exist yet take turns instead of racing to
//! create the same tables. The database file itself is never locked this
//! way, because SQLite owns the locks on it (POSIX locks that a second
//! descriptor on the same file could silently release). A registry whose
//! schema is already current takes no lock at all.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, MAIN_DB, OpenFlags, OptionalExtension};

use super::{BUSY_TIMEOUT, Registry, migrations};
use crate::artifact::RUN_SUMMARY_FILE;
use crate::error::{Error, Incompatibility, Result};
use crate::regular_file::{check_regular_if_present, is_refusal, open_lock_file, open_nofollow};

/// How far the file's schema is from this build's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    /// Every migration this build knows is applied.
    Current,
    /// Empty, or missing some of this build's migrations.
    Behind,
}

/// How a connection reaches the file, from most to least capable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Read and write; create the file when missing.
    Create,
    /// Read and write an existing file. SQLite quietly opens a
    /// write-protected file read-only instead.
    ReadWrite,
    /// Read only, with the usual WAL index (`-shm`).
    ReadOnly,
    /// Read only, and SQLite assumes nobody writes the file: no locks, no
    /// `-shm`. The last resort for a WAL database in a directory where the
    /// `-shm` file cannot be created; changes still in `-wal` are not seen.
    Immutable,
}

impl Registry {
    /// Open (creating if needed) the registry at `path` for writing and bring
    /// its schema up to date. Used by `run`.
    ///
    /// A registry that cannot be written (read-only file or location) is an
    /// I/O error naming the path, found before anything is written.
    pub fn open(path: &Path) -> Result<Registry> {
        Registry::open_waiting(path, BUSY_TIMEOUT)
    }

    /// [`Registry::open`], waiting at most `wait` for any one lock another
    /// process holds (the registry's write lock, its migration or users
    /// lock) before giving up with exit 4: `run --lock-timeout`.
    pub fn open_waiting(path: &Path, wait: Duration) -> Result<Registry> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io("creating the registry directory", dir, e))?;
        }
        check_regular(path)?;
        Registry::check_writable(path)?;
        // Before connecting: a connection made during a reindex's swap
        // could reach the file being replaced.
        let users = lock_as_user(path, wait)?;
        if path.exists() {
            let conn = connect(path, Access::ReadWrite, wait).map_err(|e| unusable(path, e))?;
            if check_schema(&conn, path)? == Schema::Current {
                return Registry::ready(conn, path, false, users, wait);
            }
        }
        let conn = migrate_locked(path, Access::Create, wait)?;
        Registry::ready(conn, path, false, users, wait)
    }

    /// Whether an existing registry file can be opened for writing: SQLite
    /// would open a write-protected file read-only without a word and fail
    /// at the first write; this asks the OS, which says why. A missing file
    /// passes (it will be created). `run` asks before taking its run lock,
    /// so a read-only registry is named as the problem.
    ///
    /// Something other than a regular file at `path` (a FIFO, a directory,
    /// a device) is refused with exit 5 before anything opens it: opening a
    /// FIFO would wait for ever.
    pub fn check_writable(path: &Path) -> Result<()> {
        check_regular(path)?;
        if path.exists() {
            let mut options = OpenOptions::new();
            options.write(true);
            #[cfg(unix)]
            {
                // Never wait on whatever is swapped in after the check.
                use std::os::unix::fs::OpenOptionsExt;
                options.custom_flags(libc::O_NONBLOCK);
            }
            options
                .open(path)
                .map_err(|e| Error::io("opening the registry for writing", path, e))?;
        }
        Ok(())
    }

    /// Open an existing registry for the commands that read (and `verify`,
    /// which records its results when it can). Never creates a file. A
    /// registry that cannot be written is opened read-only; see
    /// [`Registry::is_read_only`].
    ///
    /// A missing file is a usage error, unless `artifacts_dir` holds runs
    /// that a registry should have indexed: then it is
    /// [`Error::RegistryMissing`], pointing at `reindex`.
    pub fn open_existing(path: &Path, artifacts_dir: &Path) -> Result<Registry> {
        check_regular(path)?;
        if !path.exists() {
            let runs = runs_on_disk(artifacts_dir);
            if runs > 0 {
                return Err(Error::RegistryMissing {
                    path: path.to_path_buf(),
                    artifacts_dir: artifacts_dir.to_path_buf(),
                    runs,
                });
            }
            // A mistyped `--artifacts-dir` is the likelier story when the
            // directory itself is missing.
            if !artifacts_dir.exists() && path.starts_with(artifacts_dir) {
                return Err(Error::usage_with_hint(
                    format!(
                        "no registry at `{}`: the artifacts directory `{}` does not exist",
                        path.display(),
                        artifacts_dir.display()
                    ),
                    "check `--artifacts-dir` (or ORCHESTRATOR_ARTIFACTS_DIR); \
                     `orchestrator run --project <config>` creates it",
                ));
            }
            return Err(Error::usage_with_hint(
                format!("no registry at `{}`", path.display()),
                "run `orchestrator run --project <config>` first, or pass `--db <file>`",
            ));
        }
        let wait = BUSY_TIMEOUT;
        let users = lock_as_user(path, wait)?;
        let mut last_error = None;
        for access in [Access::ReadWrite, Access::ReadOnly, Access::Immutable] {
            let opened = connect(path, access, wait).and_then(|conn| {
                let found = read_history(&conn)?;
                Ok((conn, found))
            });
            let (conn, found) = match opened {
                Ok(ok) => ok,
                // A read-only directory: the `-shm` file cannot be created.
                // A full disk: it cannot be grown. Try the next, less
                // demanding way in; the last needs no `-shm` at all, so the
                // read commands work while the user frees space.
                Err(e) if cannot_open(&e) || cannot_grow(&e) => {
                    last_error = Some(e);
                    continue;
                }
                Err(e) => return Err(unusable(path, e)),
            };
            let read_only =
                access != Access::ReadWrite || conn.is_readonly(MAIN_DB).unwrap_or(true);
            return match (judge(path, found)?, read_only) {
                (Schema::Current, _) => Registry::ready(conn, path, read_only, users, wait),
                (Schema::Behind, false) => {
                    drop(conn);
                    let conn = migrate_locked(path, Access::ReadWrite, wait)?;
                    Registry::ready(conn, path, false, users, wait)
                }
                (Schema::Behind, true) => Err(Error::io(
                    "upgrading the schema of the registry",
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        "it can only be opened read-only",
                    ),
                )),
            };
        }
        Err(match last_error {
            Some(e) => unusable(path, e),
            None => Error::io(
                "opening the registry",
                path,
                std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            ),
        })
    }

    /// [`Registry::open_existing`] for `gc`, which must work on a full disk
    /// so that the user can free space. Where the usual open fails with an
    /// I/O error (SQLite cannot create or grow `-shm`, its shared WAL
    /// index), the file is opened with `locking_mode = EXCLUSIVE`, which
    /// keeps that index in this process's memory: reading needs no new
    /// space, and gc deletes files before it writes a row. Other processes
    /// wait for this one meanwhile. If that fails too, the first error is
    /// the one reported.
    pub fn open_existing_for_gc(path: &Path, artifacts_dir: &Path) -> Result<Registry> {
        // On a full disk the usual open may also succeed, by falling back
        // to a read-only (or immutable) connection: fine for reading, but
        // gc must write its rows. Try the exclusive writable open then, and
        // keep the read-only one if that fails too (a dry run still works).
        let first = match Registry::open_existing(path, artifacts_dir) {
            Err(e @ Error::Io { .. }) => Err(e),
            Ok(registry) if registry.read_only => Ok(registry),
            other => return other,
        };
        let users = lock_as_user(path, BUSY_TIMEOUT)?;
        let opened = connect(path, Access::ReadWrite, BUSY_TIMEOUT).and_then(|conn| {
            conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE;")?;
            let found = read_history(&conn)?;
            Ok((conn, found))
        });
        let Ok((conn, found)) = opened else {
            return first;
        };
        match judge(path, found) {
            Ok(Schema::Current) => Registry::ready(conn, path, false, users, BUSY_TIMEOUT),
            _ => first,
        }
    }

    /// Set the connection-level promises and wrap the connection. Runs only
    /// after the schema check, so a refused file was never written.
    fn ready(
        conn: Connection,
        path: &Path,
        read_only: bool,
        users: Option<File>,
        busy_wait: Duration,
    ) -> Result<Registry> {
        if !read_only {
            // FULL sync because the registry is what resume trusts.
            conn.execute_batch("PRAGMA synchronous = FULL;")
                .map_err(|e| unusable(path, e))?;
            use_wal(&conn, path)?;
        }
        Ok(Registry {
            db: super::Db::Sqlite(conn),
            path: path.to_path_buf(),
            read_only,
            busy_wait,
            outer: false,
            _users: users,
        })
    }
}

/// The registry path, once symlinks are followed (a user may keep the
/// registry elsewhere and link it), must be a regular file or absent:
/// SQLite would block for ever on a FIFO. Exit 5 naming the path, like
/// every special file where the tool expects one of its files.
fn check_regular(path: &Path) -> Result<()> {
    check_regular_if_present(path).map_err(|e| Error::io("opening the registry", path, e))
}

/// Create and migrate the registry while holding the migration lock, and
/// return the migrated connection.
fn migrate_locked(path: &Path, access: Access, wait: Duration) -> Result<Connection> {
    let _lock = lock_for_migration(path, wait)?;
    let mut conn = connect(path, access, wait).map_err(|e| unusable(path, e))?;
    // Read again: whoever held the lock before us may have done the work.
    let schema = check_schema(&conn, path)?;
    use_wal(&conn, path)?;
    if schema == Schema::Behind {
        // Foreign keys off while migrating, as SQLite's documented table
        // rebuild requires (a DROP TABLE would otherwise cascade), and every
        // key checked before they go back on. The pragma cannot change
        // inside the migrations' transaction, hence here.
        conn.execute_batch("PRAGMA foreign_keys = OFF;")
            .map_err(|e| unusable(path, e))?;
        // Grouped: every pending migration and its history row commit in
        // one transaction, so a crash cannot leave a table without its row.
        let migrated = migrations::runner()
            .set_grouped(true)
            .run(&mut conn)
            .map_err(|e| migration_error(path, e));
        conn.execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(|e| unusable(path, e))?;
        migrated?;
        let broken: Option<String> = conn
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()
            .map_err(|e| unusable(path, e))?;
        if let Some(table) = broken {
            return Err(Error::RegistryUnusable {
                path: path.to_path_buf(),
                message: format!("after migrating, table `{table}` has a broken foreign key"),
                source: None,
            });
        }
    }
    Ok(conn)
}

/// WAL lets readers (`runs list`, `sqlite3`) proceed while a run writes.
fn use_wal(conn: &Connection, path: &Path) -> Result<()> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| unusable(path, e))?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    Err(Error::RegistryUnusable {
        path: path.to_path_buf(),
        message: format!("cannot switch to WAL journaling (got `{mode}`)"),
        source: None,
    })
}

fn connect(path: &Path, access: Access, wait: Duration) -> rusqlite::Result<Connection> {
    let base = OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match access {
        Access::Create => Connection::open_with_flags(
            path,
            base | OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?,
        Access::ReadWrite => {
            Connection::open_with_flags(path, base | OpenFlags::SQLITE_OPEN_READ_WRITE)?
        }
        Access::ReadOnly => {
            Connection::open_with_flags(path, base | OpenFlags::SQLITE_OPEN_READ_ONLY)?
        }
        Access::Immutable => {
            let uri = immutable_uri(path).ok_or_else(|| {
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some("the path is not valid UTF-8".to_string()),
                )
            })?;
            Connection::open_with_flags(
                uri,
                base | OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
            )?
        }
    };
    conn.busy_timeout(sqlite_wait(wait))?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    Ok(conn)
}

/// `wait`, within what SQLite's busy handler takes (an `int` of
/// milliseconds, about 24 days): `--lock-timeout 18446744073709551615`
/// means "wait for ever", and 24 days is as good as that.
pub(super) fn sqlite_wait(wait: Duration) -> Duration {
    wait.min(Duration::from_millis(i32::MAX as u64))
}

/// `file:<path>?immutable=1`, with every byte outside the URI's plain set
/// percent-encoded (a `?` or `#` in a directory name must not end the path).
fn immutable_uri(path: &Path) -> Option<String> {
    let mut uri = String::from("file:");
    for b in path.to_str()?.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    Some(uri)
}

fn cannot_open(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly)
    )
}

/// SQLite could not write a byte it needed: `SQLITE_FULL`, or an I/O
/// error sizing or mapping `-shm` (on a full disk that is how ENOSPC
/// arrives; SQLite keeps the errno to itself).
fn cannot_grow(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi;
    match e {
        rusqlite::Error::SqliteFailure(err, _) => {
            err.code == ErrorCode::DiskFull
                || matches!(
                    err.extended_code,
                    ffi::SQLITE_IOERR_SHMSIZE
                        | ffi::SQLITE_IOERR_SHMOPEN
                        | ffi::SQLITE_IOERR_SHMMAP
                        | ffi::SQLITE_IOERR_WRITE
                        | ffi::SQLITE_IOERR_TRUNCATE
                )
        }
        _ => false,
    }
}

/// Whether the file system holding `path` has no space left for this
/// user: how an I/O error from SQLite is told to be a full disk.
pub(super) fn disk_is_full(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: `c` is a valid NUL-terminated path and `stats` a valid,
        // writable statvfs that the call fills in.
        let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut stats) } != 0 {
            return false;
        }
        stats.f_bavail == 0
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// SQLite's error on the registry as an `io::Error`: of kind `StorageFull`
/// when it is a full disk, so that [`Error::io`] says so plainly.
pub(super) fn sqlite_io_error(path: &Path, e: rusqlite::Error) -> std::io::Error {
    let full = e.sqlite_error_code() == Some(ErrorCode::DiskFull)
        || (e.sqlite_error_code() == Some(ErrorCode::SystemIoFailure) && disk_is_full(path));
    if full {
        std::io::Error::new(std::io::ErrorKind::StorageFull, e)
    } else {
        std::io::Error::other(e)
    }
}

/// One row of `refinery_schema_history`, read as text so that a row this
/// build did not write cannot fail to parse.
struct Applied {
    version: i64,
    name: Option<String>,
    checksum: Option<String>,
}

/// What the file holds, as far as the schema check cares.
enum Found {
    /// No tables at all: a new (or brand-new, still empty) registry.
    Empty,
    /// Tables, but no migration history.
    Foreign,
    History(Vec<Applied>),
}

/// Whether the history table exists, and how many schema objects there
/// are, read in ONE statement: read apart, another process's migration
/// could create every table between the two reads, and a registry being
/// created would look like someone else's database.
const HISTORY_AND_OBJECTS: &str = "
    SELECT EXISTS (SELECT 1 FROM sqlite_schema
                   WHERE type = 'table' AND name = 'refinery_schema_history'),
           (SELECT count(*) FROM sqlite_schema)";
const HISTORY: &str = "
    SELECT CAST(version AS INTEGER), CAST(name AS TEXT), CAST(checksum AS TEXT)
    FROM refinery_schema_history ORDER BY version";

/// Read the migration history. Only `SELECT`s: nothing here writes.
fn read_history(conn: &Connection) -> rusqlite::Result<Found> {
    let (has_history, objects): (bool, i64) =
        conn.query_row(HISTORY_AND_OBJECTS, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if !has_history {
        return Ok(if objects == 0 {
            Found::Empty
        } else {
            Found::Foreign
        });
    }
    let mut stmt = conn.prepare(HISTORY)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Applied {
                version: r.get::<_, Option<i64>>(0)?.unwrap_or(-1),
                name: r.get(1)?,
                checksum: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Found::History(rows))
}

/// One of this build's migrations, as its history row records it.
#[derive(Debug, PartialEq, Eq)]
struct KnownMigration {
    version: i64,
    name: &'static str,
    /// refinery's checksum (SipHash-1-3 of name, version and SQL), in the
    /// decimal form its history table stores.
    checksum: &'static str,
}

/// This build's migrations, which [`judge`] compares every registry's
/// history with. Written out rather than asked of `migrations::runner()`
/// because building the runner compiles refinery's file-name regex, about a
/// millisecond on every command, the largest part of opening a registry. A
/// unit test checks this list against the runner, and prints the list to
/// paste here when a migration is added.
const KNOWN_MIGRATIONS: [KnownMigration; 7] = [
    KnownMigration {
        version: 1,
        name: "registry",
        checksum: "16767920084182079018",
    },
    KnownMigration {
        version: 2,
        name: "views_and_verification",
        checksum: "1533924924074075668",
    },
    KnownMigration {
        version: 3,
        name: "execution_lifecycle",
        checksum: "15040674098512884785",
    },
    KnownMigration {
        version: 4,
        name: "registry_at_scale",
        checksum: "1312994936399081020",
    },
    KnownMigration {
        version: 5,
        name: "render_package",
        checksum: "10374052891821076515",
    },
    KnownMigration {
        version: 6,
        name: "application_id",
        checksum: "7356562232780389291",
    },
    KnownMigration {
        version: 7,
        name: "run_identity_in_history",
        checksum: "3122641516267947794",
    },
];

/// Compare the history with this build's migrations.
fn judge(path: &Path, found: Found) -> Result<Schema> {
    let incompatible = |problem| Error::RegistryIncompatible {
        path: path.to_path_buf(),
        problem,
    };
    let applied = match found {
        Found::Empty => return Ok(Schema::Behind),
        Found::Foreign => return Err(incompatible(Incompatibility::Foreign)),
        Found::History(applied) => applied,
    };
    let known = &KNOWN_MIGRATIONS;
    for a in &applied {
        let name = a.name.clone().unwrap_or_default();
        let Some(m) = known.iter().find(|m| m.version == a.version) else {
            return Err(incompatible(Incompatibility::Newer {
                version: a.version,
                name,
            }));
        };
        let same = a.name.as_deref() == Some(m.name) && a.checksum.as_deref() == Some(m.checksum);
        if !same {
            return Err(incompatible(Incompatibility::Divergent {
                version: a.version,
                name,
            }));
        }
    }
    Ok(if applied.len() == known.len() {
        Schema::Current
    } else {
        Schema::Behind
    })
}

fn check_schema(conn: &Connection, path: &Path) -> Result<Schema> {
    let found = read_history(conn).map_err(|e| unusable(path, e))?;
    judge(path, found)
}

/// `<db>.lock`: the file whose lock serialises creating and migrating the
/// registry at `db`. It stays in place; deleting a lock file races with
/// the next process opening it. Beside the file a symlinked `db` leads to
/// (see [`lock_base`]).
pub fn migration_lock_path(db: &Path) -> PathBuf {
    let mut name = lock_base(db).into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// The path the registry's lock files are named after: `db`, or where it
/// leads when it is a symlink. SQLite follows the link and keeps `-wal`
/// and `-shm` beside its target; every process using that file, whichever
/// name it was given, must take the same locks (a process holding the
/// users lock of the link's name only would be invisible to a reindex
/// swapping the target).
fn lock_base(db: &Path) -> PathBuf {
    let is_link = std::fs::symlink_metadata(db).is_ok_and(|m| m.file_type().is_symlink());
    match is_link.then(|| std::fs::canonicalize(db).ok()).flatten() {
        Some(target) => target,
        None => db.to_path_buf(),
    }
}

/// Take the migration lock, waiting up to `wait`: a process stuck while
/// holding it gets exit 4, not a hang.
fn lock_for_migration(db: &Path, wait: Duration) -> Result<File> {
    let path = migration_lock_path(db);
    let file = open_lock_file(&path)
        .map_err(|e| Error::io("opening the registry's migration lock", &path, e))?;
    match wait_for_lock(&file, Lock::Exclusive, Instant::now().checked_add(wait)) {
        Ok(true) => Ok(file),
        Ok(false) => Err(Error::Busy {
            what: "the registry".to_string(),
            message: format!(
                "another process has been creating or migrating it for over {}s (it holds `{}`)",
                wait.as_secs(),
                path.display()
            ),
        }),
        Err(e) => Err(Error::io("locking the registry for migration", &path, e)),
    }
}

/// `<db>.users`: every process that has the registry open holds a shared
/// lock on it for as long as it does, and `reindex` holds it exclusively
/// while it swaps a rebuilt file in. Without it, a process still holding
/// the old file open would, on closing, checkpoint it and remove `-wal`
/// and `-shm` by name: by then the new file's, which other processes may be
/// using. A separate file from the migration lock, which is held only
/// while migrating: a process waiting to migrate must not wait for every
/// run in progress to end.
pub fn users_lock_path(db: &Path) -> PathBuf {
    let mut name = lock_base(db).into_os_string();
    name.push(".users");
    PathBuf::from(name)
}

/// Take a shared lock on [`users_lock_path`], waiting up to `wait` while
/// `reindex` swaps. `None` where the lock file can
/// be neither created nor opened (a read-only location, where nothing can
/// be swapped either; a full disk, where no reindex can build a registry
/// to swap in). A symlink or special file there is refused (exit 5).
fn lock_as_user(db: &Path, wait: Duration) -> Result<Option<File>> {
    let path = users_lock_path(db);
    let opened = open_lock_file(&path).or_else(|e| {
        if is_refusal(&e) {
            Err(e)
        } else {
            open_nofollow(&path)
        }
    });
    let file = match opened {
        Ok(file) => file,
        Err(e) if is_refusal(&e) => {
            return Err(Error::io("opening the registry's users lock", &path, e));
        }
        Err(_) => return Ok(None),
    };
    match wait_for_lock(&file, Lock::Shared, Instant::now().checked_add(wait)) {
        Ok(true) => Ok(Some(file)),
        Ok(false) => Err(Error::Busy {
            what: "the registry".to_string(),
            message: format!(
                "`orchestrator reindex` has been swapping in a rebuilt registry for over {}s \
                 (it holds `{}`)",
                wait.as_secs(),
                path.display()
            ),
        }),
        Err(e) => Err(Error::io("locking the registry", &path, e)),
    }
}

/// Take [`users_lock_path`] exclusively, for swapping a rebuilt registry
/// in: waits up to `wait` for every process that has the registry open to
/// close it.
pub fn lock_for_swap(db: &Path, wait: Duration) -> Result<File> {
    let path = users_lock_path(db);
    let file = open_lock_file(&path)
        .map_err(|e| Error::io("opening the registry's users lock", &path, e))?;
    // An enormous wait is "wait for ever", not an overflow.
    match wait_for_lock(&file, Lock::Exclusive, Instant::now().checked_add(wait)) {
        Ok(true) => Ok(file),
        Ok(false) => Err(Error::Busy {
            what: "the registry".to_string(),
            message: format!(
                "another process has had it open for over {}s (each holds `{}` shared); \
                 close it (`runs list`, `verify`, a run, …), then reindex again. The \
                 current registry was left as it was",
                wait.as_secs(),
                path.display()
            ),
        }),
        Err(e) => Err(Error::io("locking the registry's users lock", &path, e)),
    }
}

#[derive(Clone, Copy)]
enum Lock {
    Shared,
    Exclusive,
}

/// Try to take `kind` of lock on `file` every 20 ms until `deadline`
/// (`None`: no deadline). `Ok(false)`: still held elsewhere at the deadline.
fn wait_for_lock(file: &File, kind: Lock, deadline: Option<Instant>) -> std::io::Result<bool> {
    loop {
        let tried = match kind {
            Lock::Shared => file.try_lock_shared(),
            Lock::Exclusive => file.try_lock(),
        };
        match tried {
            Ok(()) => return Ok(true),
            Err(TryLockError::WouldBlock) if deadline.is_none_or(|d| Instant::now() < d) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// How many runs the artifacts directory holds: `<project>/<run>/` with a
/// `run_summary.json`, two directory levels down, skipping dot-entries
/// (`.locks`) and never following a symlink. Cheap enough to run whenever
/// the registry file is missing, and it runs only then.
pub fn runs_on_disk(artifacts_dir: &Path) -> usize {
    fn subdirs(dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect()
    }
    subdirs(artifacts_dir)
        .iter()
        .flat_map(|project| subdirs(project))
        .filter(|run| {
            std::fs::symlink_metadata(run.join(RUN_SUMMARY_FILE)).is_ok_and(|m| m.is_file())
        })
        .count()
}

/// Who holds the registry's write lock, as the OS tells: `pid 1234
/// (sqlite3)`. SQLite itself cannot say. In WAL mode a writer holds a POSIX
/// write lock on byte 120 of `<db>-shm` (`WAL_WRITE_LOCK`), which Linux
/// lists with the holder's pid in `/proc/locks`. Read by `stat` and that
/// listing only: opening `-shm` and closing it again would drop this
/// process's own POSIX locks on it. `None` where the OS does not say.
pub(super) fn write_lock_holder(db: &Path) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        const WAL_WRITE_LOCK_BYTE: u64 = 120;
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        let meta = std::fs::metadata(PathBuf::from(shm)).ok()?;
        let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        let pid = locks.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // `1: POSIX ADVISORY WRITE <pid> <maj>:<min>:<ino> <start> <end>`;
            // a waiter's line has `->` after the number and is skipped.
            let [_, "POSIX", _, "WRITE", pid, id, start, end] = fields[..] else {
                return None;
            };
            let mut id = id.split(':');
            let same_file = u32::from_str_radix(id.next()?, 16).ok()? == major
                && u32::from_str_radix(id.next()?, 16).ok()? == minor
                && id.next()?.parse::<u64>().ok()? == meta.ino();
            let start: u64 = start.parse().ok()?;
            let covers = start <= WAL_WRITE_LOCK_BYTE
                && (end == "EOF" || end.parse::<u64>().ok()? >= WAL_WRITE_LOCK_BYTE);
            (same_file && covers)
                .then(|| pid.parse::<u32>().ok())
                .flatten()
        })?;
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok();
        Some(match name {
            Some(name) => format!("pid {pid} ({})", name.trim()),
            None => format!("pid {pid}"),
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = db;
        None
    }
}

/// Name what SQLite said about the file, keeping its error as the cause.
pub(crate) fn unusable(path: &Path, e: rusqlite::Error) -> Error {
    let message = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            return super::busy_or_sql(e.into(), path, BUSY_TIMEOUT);
        }
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure,
        ) => return Error::io("opening the registry", path, sqlite_io_error(path, e)),
        // No SQLite header: someone else's file, which `reindex` must not
        // be suggested for (it would not replace it).
        Some(ErrorCode::NotADatabase) if !super::reindex::has_sqlite_header(path) => {
            return Error::NotARegistry {
                path: path.to_path_buf(),
                source: Some(Box::new(e)),
            };
        }
        Some(ErrorCode::NotADatabase) => "it is not a SQLite database",
        Some(ErrorCode::DatabaseCorrupt) => "it is corrupt",
        _ => "SQLite cannot use it",
    };
    Error::RegistryUnusable {
        path: path.to_path_buf(),
        message: message.to_string(),
        source: Some(Box::new(e)),
    }
}

fn migration_error(path: &Path, e: refinery::Error) -> Error {
    let code = match e.kind() {
        refinery::error::Kind::Connection(_, source) => source
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code),
        _ => None,
    };
    match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Busy {
            what: "the registry".to_string(),
            message: "another process is writing it while it is migrated".to_string(),
        },
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure,
        ) => {
            let full = code == Some(ErrorCode::DiskFull) || disk_is_full(path);
            let kind = if full {
                std::io::ErrorKind::StorageFull
            } else {
                std::io::ErrorKind::Other
            };
            Error::io("migrating the registry", path, std::io::Error::new(kind, e))
        }
        _ => Error::RegistryUnusable {
            path: path.to_path_buf(),
            message: "migrating its schema failed".to_string(),
            source: Some(Box::new(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_uri_escapes_what_would_end_the_path() {
        assert_eq!(
            immutable_uri(Path::new("/tmp/a b?#%/registry.db")).unwrap(),
            "file:/tmp/a%20b%3F%23%25/registry.db?immutable=1"
        );
    }

    fn judged(history_rows: &str) -> Result<Schema> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE refinery_schema_history (
                 version INT4 PRIMARY KEY, name VARCHAR(255),
                 applied_on VARCHAR(255), checksum VARCHAR(255));
             {history_rows}"
        ))
        .unwrap();
        judge(Path::new("r.db"), read_history(&conn).unwrap())
    }

    /// One entry of [`KNOWN_MIGRATIONS`] as it is written in the source.
    fn entry(
        version: impl std::fmt::Display,
        name: &str,
        checksum: impl std::fmt::Display,
    ) -> String {
        format!(
            "    KnownMigration {{\n        version: {version},\n        name: \"{name}\",\n        \
             checksum: \"{checksum}\",\n    }},"
        )
    }

    #[test]
    fn the_known_migrations_are_refinerys() {
        let runner = migrations::runner();
        let from_refinery: Vec<String> = runner
            .get_migrations()
            .iter()
            .map(|m| entry(m.version(), m.name(), m.checksum()))
            .collect();
        let here: Vec<String> = KNOWN_MIGRATIONS
            .iter()
            .map(|m| entry(m.version, m.name, m.checksum))
            .collect();
        assert!(
            here == from_refinery,
            "KNOWN_MIGRATIONS in src/registry/open.rs is out of date; make it \
             `[KnownMigration; {}]` with these entries:\n{}",
            from_refinery.len(),
            from_refinery.join("\n")
        );
    }

    #[test]
    fn history_is_judged_against_this_builds_migrations() {
        let known = migrations::runner().get_migrations().clone();
        let row = |m: &refinery::Migration, checksum: String| {
            format!(
                "INSERT INTO refinery_schema_history VALUES ({}, '{}', 'x', '{checksum}');",
                m.version(),
                m.name()
            )
        };
        let all: String = known
            .iter()
            .map(|m| row(m, m.checksum().to_string()))
            .collect();
        assert_eq!(judged(&all).unwrap(), Schema::Current);
        assert_eq!(
            judged(&row(&known[0], known[0].checksum().to_string())).unwrap(),
            Schema::Behind
        );
        assert_eq!(judged("").unwrap(), Schema::Behind);

        let altered = row(&known[0], "12345".to_string());
        assert!(matches!(
            judged(&altered),
            Err(Error::RegistryIncompatible {
                problem: Incompatibility::Divergent { version: 1, .. },
                ..
            })
        ));
        // A hand-written row (NULL name, a checksum that is no number) is
        // judged, where refinery itself would panic parsing it.
        let newer =
            format!("{all} INSERT INTO refinery_schema_history VALUES (99, NULL, NULL, 'x');");
        assert!(matches!(
            judged(&newer),
            Err(Error::RegistryIncompatible {
                problem: Incompatibility::Newer { version: 99, .. },
                ..
            })
        ));
    }

    #[test]
    fn the_migration_lock_sits_beside_the_database() {
        assert_eq!(
            migration_lock_path(Path::new("artifacts/registry.db")),
            Path::new("artifacts/registry.db.lock")
        );
    }
}

#[cfg(test)]
mod rebuild_tests {
    use super::*;

    /// A registry migrated up to (not including) the package migration,
    /// with one run's artifacts, edges, executions and verifications, must
    /// come through the rebuild of `artifacts` whole: with foreign keys on,
    /// dropping the old table would have cascaded into edges.
    #[test]
    fn rebuilding_a_table_in_a_migration_loses_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let before_v5 = migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| m.version())
            .filter(|v| *v < 5)
            .max()
            .unwrap();
        {
            let mut conn = Connection::open(&path).unwrap();
            conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
            migrations::runner()
                .set_target(refinery::Target::Version(before_v5))
                .run(&mut conn)
                .unwrap();
            conn.execute_batch(
                "INSERT INTO projects VALUES ('p', 't', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');
                 INSERT INTO runs (project_id, run_id, config_hash, config_json, run_dir, status,
                                   started_at, orchestrator_version, host)
                 VALUES ('p', 'r', printf('%064d', 0), '{}', 'p/r', 'complete',
                         '2026-01-01T00:00:00.000Z', '0.1.0', 'h');
                 INSERT INTO artifacts (artifact_id, project_id, run_id, artifact_type, sha256,
                                        schema_id, schema_version, path, size_bytes, stage,
                                        stage_name, stage_version, created_at, meta_json)
                 VALUES (1, 'p', 'r', 'Script', printf('%064d', 1), 's', '1.0.0', 'p/r/Script.json',
                         1, 1, 's1', '1', '2026-01-01T00:00:00.000Z', '{}'),
                        (2, 'p', 'r', 'ShotList', printf('%064d', 2), 's', '1.0.0', 'p/r/ShotList.json',
                         1, 2, 's2', '1', '2026-01-01T00:00:00.000Z', '{}');
                 INSERT INTO artifact_edges VALUES (2, 1, printf('%064d', 1));
                 INSERT INTO stage_executions (project_id, run_id, attempt, stage, stage_name,
                     stage_version, status, reason, started_at, input_hashes, output_sha256, artifact_id)
                 VALUES ('p', 'r', 1, 2, 's2', '1', 'executed', 'x', '2026-01-01T00:00:00.000Z',
                         '{}', printf('%064d', 2), 2);
                 INSERT INTO artifact_verifications VALUES (2, '2026-01-01T00:00:00.000Z', 'ok', '[]');",
            )
            .unwrap();
        }
        let registry = Registry::open(&path).unwrap();
        let count = |sql: &str| -> i64 {
            registry
                .db()
                .sqlite()
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count("SELECT count(*) FROM artifacts"), 2);
        assert_eq!(count("SELECT count(*) FROM artifact_edges"), 1);
        assert_eq!(count("SELECT count(*) FROM artifact_verifications"), 1);
        assert_eq!(
            count("SELECT count(*) FROM stage_executions WHERE artifact_id = 2"),
            1
        );
        assert_eq!(count("SELECT count(*) FROM lineage_edges"), 1);
        // Enforcement is back on after migrating.
        assert_eq!(count("PRAGMA foreign_keys"), 1);
    }
}
