//! A workspace: an artifacts directory and the registry that indexes it,
//! with the protocol that ties them together, so that commands do not
//! carry it in their call order.
//!
//! What differs between the backends lives here, once:
//! - **Opening.** A SQLite file is opened (and, for `run`, created and
//!   migrated) in place; a PostgreSQL database must already have this
//!   build's schema (`registry migrate`).
//! - **Liveness.** Whether a run recorded `running` is really running: on
//!   SQLite its flag file under `<artifacts>/.locks` is locked; on
//!   PostgreSQL its advisory lock shows in `pg_locks`.
//! - **Lock, then open.** A SQLite run takes its lock file before it opens
//!   the registry and closes the registry before it lets go (`reindex`
//!   holds every run lock while it waits for the registry's users). A
//!   PostgreSQL run's lock is an advisory lock on its own registry
//!   connection, so it opens first and locks on that connection, holding
//!   the registry-wide lock shared so that `reindex` and `gc` (which take
//!   it exclusively) never overlap it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clock::Clock;
use crate::error::Result;
use crate::lock::{self, RunGuard};
use crate::pipeline::{LockedRun, RunOptions};
use crate::registry::{BUSY_TIMEOUT, Location, Registry, RunRow, advisory};

/// The artifacts directory and the registry of one invocation.
#[derive(Debug, Clone)]
pub struct Workspace {
    artifacts_dir: PathBuf,
    location: Location,
}

/// A run's lock with the registry it was taken with. Fields drop in
/// order: the registry closes before the lock is released.
pub struct HeldRun {
    pub registry: Registry,
    pub guard: RunGuard,
}

/// A [`LockedRun`] with its registry, for `run`.
pub struct RunSession {
    pub registry: Registry,
    pub locked: LockedRun,
}

/// Which recorded runs are live right now; see [`Workspace::liveness`].
pub enum Liveness {
    /// Probe each run's flag file (SQLite registries).
    LockFiles(PathBuf),
    /// The run locks PostgreSQL showed held, read once.
    Held(HashSet<i64>),
}

impl Liveness {
    pub fn is_live(&self, project_id: &str, run_id: &str) -> bool {
        match self {
            Liveness::LockFiles(dir) => lock::is_held(dir, project_id, run_id),
            Liveness::Held(keys) => keys.contains(&advisory::run_key(project_id, run_id)),
        }
    }
}

impl Workspace {
    pub fn new(artifacts_dir: PathBuf, location: Location) -> Workspace {
        Workspace {
            artifacts_dir,
            location,
        }
    }

    pub fn artifacts_dir(&self) -> &Path {
        &self.artifacts_dir
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The registry file, when the registry is one (what output-path
    /// checks must never overwrite).
    pub fn registry_file(&self) -> Option<&Path> {
        self.location.sqlite_path()
    }

    /// Open the registry for the commands that read it (and `verify`,
    /// which records its results).
    pub fn open_existing(&self) -> Result<Registry> {
        match &self.location {
            Location::Sqlite(path) => Registry::open_existing(path, &self.artifacts_dir),
            Location::Postgres(target) => Registry::open_postgres(target, BUSY_TIMEOUT),
        }
    }

    /// Open the registry for `gc`, which must work on a full disk (SQLite)
    /// and, when it deletes, must not overlap a run (PostgreSQL: the
    /// registry-wide lock, exclusively; on SQLite gc takes each run's lock
    /// file as it goes).
    pub fn open_for_gc(&self, deleting: bool, wait: Duration) -> Result<Registry> {
        match &self.location {
            Location::Sqlite(path) => Registry::open_existing_for_gc(path, &self.artifacts_dir),
            Location::Postgres(target) => {
                let registry = Registry::open_postgres(target, wait)?;
                if deleting {
                    advisory::lock_registry(registry.db(), true, wait, "gc")?;
                }
                Ok(registry)
            }
        }
    }

    /// Which runs are live, for listings and checks that must tell a
    /// running run from an interrupted one.
    pub fn liveness(&self, registry: &Registry) -> Result<Liveness> {
        match &self.location {
            Location::Sqlite(_) => Ok(Liveness::LockFiles(self.artifacts_dir.clone())),
            Location::Postgres(_) => Ok(Liveness::Held(advisory::held_run_keys(registry.db())?)),
        }
    }

    /// Take the run's lock and open the registry for writing, in the order
    /// the backend needs (see the module comment). `registry_wait` bounds
    /// the waits for the registry itself (`--lock-timeout`).
    pub fn lock_run(
        &self,
        opts: &RunOptions,
        clock: &dyn Clock,
        registry_wait: Duration,
    ) -> Result<RunSession> {
        match &self.location {
            Location::Sqlite(path) => {
                Registry::check_writable(path)?;
                let locked = crate::pipeline::lock_run(opts, clock)?;
                let registry = Registry::open_waiting(path, registry_wait)?;
                Ok(RunSession { registry, locked })
            }
            Location::Postgres(target) => {
                let registry = Registry::open_postgres(target, registry_wait)?;
                advisory::lock_registry(registry.db(), false, registry_wait, "this run")?;
                let locked = crate::pipeline::lock_run_in_registry(opts, registry.db())?;
                Ok(RunSession { registry, locked })
            }
        }
    }

    /// Take a recorded run's lock for `package`, and open the registry to
    /// read it again under the lock.
    pub fn lock_recorded_run(
        &self,
        run: &RunRow,
        clock: &dyn Clock,
        wait: lock::Wait,
    ) -> Result<HeldRun> {
        match &self.location {
            Location::Sqlite(path) => {
                let guard = RunGuard::File(crate::package::lock_for_packaging(
                    &self.artifacts_dir,
                    run,
                    clock,
                    wait,
                )?);
                let registry = Registry::open_existing(path, &self.artifacts_dir)?;
                Ok(HeldRun { registry, guard })
            }
            Location::Postgres(target) => {
                let registry = Registry::open_postgres(target, wait.timeout)?;
                advisory::lock_registry(registry.db(), false, wait.timeout, "package")?;
                advisory::lock_run(registry.db(), &run.project_id, &run.run_id, wait)?;
                Ok(HeldRun {
                    registry,
                    guard: RunGuard::Registry,
                })
            }
        }
    }
}
