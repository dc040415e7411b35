//! `orchestrator package`: the self-contained manifest of a finished run
//! (`RenderPackage.json`), registered like any artifact with the five stage
//! outputs as its parents, and an optional deterministic tar of the run's
//! deliverable: its registered files, nothing else found in its directory.
//!
//! Everything is decided under the run's lock, from what is read after
//! taking it: the run may have finished, been replaced or been removed
//! while `package` waited.
//!
//! Packaging is idempotent: a run whose package is already written and
//! registered with the same bytes is left untouched, so two packagings of
//! one run give byte-identical archives. Nothing in the package depends on
//! when it was made: its `created_at` is its artifacts' time, and archive
//! members carry that time, uid/gid 0 and fixed modes, in name order.
//! (The package's time is when its newest artifact was made, so a no-op
//! resume of the run does not change the package.)

use crate::registry::RunStatus;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::artifact::{
    ArtifactType, ComputeOrigin, CreationParams, MetaRecord, ParentRef, RUN_SUMMARY_FILE,
    SCHEMA_VERSION, TEMP_PREFIX, canonical_bytes, remove_stale_temp_files, sha256_hex,
    write_atomic,
};
use crate::clock::{Clock, rfc3339};
use crate::error::{Error, Result};
use crate::output_path::{OutputPath, write_output_with};
use crate::registry::{Registry, RunRow};
use crate::{lock, path_text, schema};

/// The packaging step's version, recorded as the package's stage version.
pub const PACKAGE_VERSION: &str = "1.0.0";
/// The name the package's meta record gives the step that made it.
pub const PACKAGE_STEP: &str = "package";

/// One artifact listed in the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackagedArtifact {
    pub artifact_type: String,
    pub path: String,
    pub schema_version: String,
    pub size_bytes: u64,
    pub sha256: String,
}

/// What `package` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageReport {
    pub project_id: String,
    pub run_id: String,
    /// `RenderPackage.json`, relative to the artifacts directory.
    pub path: String,
    pub sha256: String,
    pub size_bytes: u64,
    /// False when an identical package was already written and registered.
    pub written: bool,
    pub artifacts: Vec<PackagedArtifact>,
    pub archive: Option<ArchiveReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveReport {
    /// As the user named it.
    pub path: PathBuf,
    pub sha256: String,
    pub size_bytes: u64,
    /// Member names, in archive order.
    pub members: Vec<String>,
    /// Names in the run directory the registry does not know, so not in
    /// the archive (non-UTF-8 bytes escaped as `\xNN`), in name order.
    pub left_out: Vec<String>,
}

/// Take `run`'s lock for packaging it, waiting as `wait` says for a `run`
/// of it to finish. Take it with the registry closed, and open the
/// registry after: `reindex` holds every run lock while it waits for the
/// registry's users to close it (see `pipeline::lock_run`).
pub fn lock_for_packaging(
    artifacts_dir: &Path,
    run: &RunRow,
    clock: &dyn Clock,
    wait: lock::Wait,
) -> Result<lock::RunLock> {
    lock::acquire(
        artifacts_dir,
        &run.project_id,
        &run.run_id,
        &rfc3339(clock.now()),
        wait,
    )
}

/// Package `project_id`/`run_id` (which must be complete), optionally
/// writing a tar of it to `archive` (checked beforehand with
/// [`crate::output_path::check_output_path`]), under the run's lock
/// ([`lock_for_packaging`]), so no `run` of it changes the files being
/// packaged.
///
/// Everything is read here, under the lock: what was read while waiting
/// for it (the run row `resolve_run` gave) may describe a run that has
/// since finished, been replaced or been removed.
pub fn package(
    _locked: &lock::RunGuard,
    registry: &mut Registry,
    artifacts_dir: &Path,
    project_id: &str,
    run_id: &str,
    archive: Option<&OutputPath>,
    clock: &dyn Clock,
) -> Result<PackageReport> {
    let run = &run_under_lock(registry, artifacts_dir, project_id, run_id)?;
    let run_dir = artifacts_dir.join(&run.project_id).join(&run.run_id);
    // Under the lock no writer is alive in the run directory: a temp file
    // there was left by one that died (a killed `run` or `package`).
    if std::fs::symlink_metadata(&run_dir).is_ok_and(|m| m.is_dir()) {
        remove_stale_temp_files(&run_dir)?;
    }
    let (listed, created_at) = checked_artifacts(registry, artifacts_dir, run)?;
    let value = json!({
        "artifact_type": ArtifactType::RenderPackage.name(),
        "schema_version": SCHEMA_VERSION,
        "project_id": run.project_id,
        "run_id": run.run_id,
        "config_hash": run.config_hash,
        "created_at": created_at,
        "artifacts": listed,
    });
    let ty = ArtifactType::RenderPackage;
    if let Some(v) = schema::validate(ty.name(), &value)?.into_iter().next() {
        return Err(Error::Inconsistent(format!(
            "the package of {}/{} fails its schema at `{}`: {}",
            run.project_id, run.run_id, v.pointer, v.message
        )));
    }
    let bytes = canonical_bytes(&value)
        .map_err(|e| Error::Inconsistent(format!("encoding the package: {e}")))?;
    let sha256 = sha256_hex(&bytes);
    let rel = format!("{}/{}/{}", run.project_id, run.run_id, ty.file_name());
    let written = if is_current(registry, &run_dir, run, &sha256)? {
        false
    } else {
        let meta = MetaRecord {
            artifact_type: ty.name().to_string(),
            path: ty.file_name(),
            sha256: sha256.clone(),
            size_bytes: bytes.len() as u64,
            schema_id: schema::schema_id(ty.name())?.to_string(),
            schema_version: SCHEMA_VERSION.to_string(),
            project_id: run.project_id.clone(),
            run_id: run.run_id.clone(),
            parents: listed
                .iter()
                .map(|a| ParentRef {
                    artifact_type: a.artifact_type.clone(),
                    sha256: a.sha256.clone(),
                    path: a.path.clone(),
                })
                .collect(),
            creation_params: CreationParams {
                stage: ty.stage(),
                stage_name: PACKAGE_STEP.to_string(),
                stage_version: PACKAGE_VERSION.to_string(),
                config_hash: run.config_hash.clone(),
            },
            compute_origin: ComputeOrigin::local(),
            created_at: rfc3339(clock.now()),
        };
        let meta_bytes = canonical_bytes(&meta)
            .map_err(|e| Error::Inconsistent(format!("encoding the package's meta record: {e}")))?;
        write_atomic(&run_dir.join(ty.file_name()), &bytes)?;
        write_atomic(&run_dir.join(ty.meta_file_name()), &meta_bytes)?;
        registry.record_package(&meta, &rel, &String::from_utf8_lossy(&meta_bytes))?;
        true
    };
    let archive = archive
        .map(|dest| write_archive(registry, &run_dir, run, &created_at, dest))
        .transpose()?;
    Ok(PackageReport {
        project_id: run.project_id.clone(),
        run_id: run.run_id.clone(),
        path: rel,
        sha256,
        size_bytes: bytes.len() as u64,
        written,
        artifacts: listed,
        archive,
    })
}

/// The run's row as it is now, read under its lock. A `running` row then
/// belongs to a process that died (it would hold the lock otherwise): it
/// reads as `interrupted`, as `runs show` says. A run gone meanwhile (a
/// `gc` of it, or a `reindex` that dropped it) is a usage error naming it.
fn run_under_lock(
    registry: &Registry,
    artifacts_dir: &Path,
    project_id: &str,
    run_id: &str,
) -> Result<RunRow> {
    // A gc that stopped after marking the run (its rows are still there)
    // left no run to package: said as such, not as a missing artifact.
    let project_dir = artifacts_dir.join(project_id);
    let marked = project_dir.join(crate::gc::delete::deleting_name(run_id));
    if std::fs::symlink_metadata(project_dir.join(run_id)).is_err()
        && std::fs::symlink_metadata(&marked).is_ok_and(|m| m.is_dir())
    {
        return Err(Error::usage_with_hint(
            format!(
                "run {project_id}/{run_id} is being deleted: a `gc` stopped while deleting it \
                 (`{}`)",
                marked.display()
            ),
            format!(
                "`orchestrator gc --run {run_id} --yes` finishes deleting it; \
                 `orchestrator run --run-id {run_id} --project <its config>` makes it again"
            ),
        ));
    }
    match registry.run_if_recorded(project_id, run_id)? {
        Some(mut row) => {
            if row.status == RunStatus::Running {
                row.status = RunStatus::Interrupted;
            }
            Ok(row)
        }
        None => Err(Error::usage_with_hint(
            format!("run {project_id}/{run_id} was removed while `package` waited for its lock"),
            "`orchestrator runs list` shows the runs that remain",
        )),
    }
}

/// The five stage outputs of a complete run, each checked on disk against
/// the registry, and when the newest of them was made. A missing or
/// unfinished stage is [`Error::IncompleteRun`]; a file that changed is
/// [`Error::ArtifactChanged`].
fn checked_artifacts(
    registry: &Registry,
    artifacts_dir: &Path,
    run: &RunRow,
) -> Result<(Vec<PackagedArtifact>, String)> {
    let registered = registry.artifacts_of_run(&run.project_id, &run.run_id)?;
    let latest = registry.latest_stages(&run.project_id, &run.run_id)?;
    let mut missing = Vec::new();
    let mut out = Vec::new();
    for ty in ArtifactType::ALL {
        let done = latest
            .iter()
            .any(|s| s.stage == ty.stage() && s.status.is_done());
        let artifact = registered.iter().find(|a| a.artifact_type == ty.name());
        match artifact.filter(|_| done) {
            Some(a) => out.push(a),
            None => missing.push(format!("stage {} ({ty})", ty.stage())),
        }
    }
    if !missing.is_empty() || run.status != RunStatus::Complete {
        return Err(Error::IncompleteRun {
            project_id: run.project_id.clone(),
            run_id: run.run_id.clone(),
            status: run.status.to_string(),
            missing,
        });
    }
    // RFC 3339 UTC with fixed precision: text order is time order.
    let newest = out
        .iter()
        .map(|a| a.created_at.clone())
        .max()
        .unwrap_or_else(|| run.started_at.clone());
    let listed = out
        .into_iter()
        .map(|a| {
            let path = artifacts_dir.join(&a.path);
            let found = hash_regular_file(&path)?;
            if found != a.sha256 {
                return Err(Error::ArtifactChanged {
                    path,
                    expected: a.sha256.clone(),
                    found,
                });
            }
            Ok(PackagedArtifact {
                artifact_type: a.artifact_type.clone(),
                // Relative to the run directory, i.e. to the package.
                path: ArtifactType::ALL
                    .iter()
                    .find(|t| t.name() == a.artifact_type)
                    .map_or_else(|| a.path.clone(), |t| t.file_name()),
                schema_version: a.schema_version.clone(),
                size_bytes: a.size_bytes,
                sha256: a.sha256.clone(),
            })
        })
        .collect::<Result<_>>()?;
    Ok((listed, newest))
}

/// Whether the package with hash `sha256` is already registered and on
/// disk, with the meta record the registry holds.
fn is_current(registry: &Registry, run_dir: &Path, run: &RunRow, sha256: &str) -> Result<bool> {
    let ty = ArtifactType::RenderPackage;
    let Some(registered) = registry.artifact_in_run(&run.project_id, &run.run_id, ty.name())?
    else {
        return Ok(false);
    };
    if registered.sha256 != sha256
        || hash_regular_file(&run_dir.join(ty.file_name()))
            .ok()
            .as_deref()
            != Some(sha256)
    {
        return Ok(false);
    }
    let meta = crate::regular_file::open_nofollow(&run_dir.join(ty.meta_file_name()))
        .ok()
        .and_then(|mut f| {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut b).ok().map(|_| b)
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let recorded = serde_json::from_str::<serde_json::Value>(&registered.meta_json).ok();
    Ok(meta.is_some() && meta == recorded)
}

/// sha256 of a regular file, streamed; never follows a symlink or opens a
/// FIFO.
fn hash_regular_file(path: &Path) -> Result<String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io("reading", path, e))?;
    if !meta.file_type().is_file() {
        return Err(Error::io(
            "reading",
            path,
            std::io::Error::other("not a regular file"),
        ));
    }
    let mut file =
        crate::regular_file::open_nofollow(path).map_err(|e| Error::io("reading", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// One file of the archive: its name in the run directory and, for a
/// file the registry holds a hash of, that hash.
struct Member {
    name: String,
    sha256: Option<String>,
}

/// What goes into the archive: the run's registered artifacts (the five
/// stage outputs and the package), the meta file of each, and the
/// registered run summary. Nothing else in the run directory is a
/// deliverable (a stray file, a temp file of a writer that died), so
/// nothing else is archived; those names are reported as left out.
fn archive_members(registry: &Registry, run: &RunRow) -> Result<Vec<Member>> {
    let prefix = format!("{}/{}/", run.project_id, run.run_id);
    let mut members = Vec::new();
    for a in registry.artifacts_of_run(&run.project_id, &run.run_id)? {
        let Some(ty) = ArtifactType::EVERY
            .into_iter()
            .find(|t| t.name() == a.artifact_type)
        else {
            continue;
        };
        // Registered paths are `<project>/<run>/<file>`; anything else is
        // not this run's file to ship (verify reports it).
        if a.path.strip_prefix(&prefix) != Some(ty.file_name().as_str()) {
            continue;
        }
        members.push(Member {
            name: ty.file_name(),
            sha256: Some(a.sha256),
        });
        members.push(Member {
            name: ty.meta_file_name(),
            sha256: None,
        });
    }
    if let Some((path, sha256)) = registry.run_summary_of(&run.project_id, &run.run_id)?
        && path.strip_prefix(&prefix) == Some(RUN_SUMMARY_FILE)
    {
        members.push(Member {
            name: RUN_SUMMARY_FILE.to_string(),
            sha256: Some(sha256),
        });
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(members)
}

/// Write a tar of the run's deliverable ([`archive_members`]) to `dest`
/// (atomically): each file as `<project>/<run>/<name>`, in name order,
/// with mode 0644, uid/gid 0, no owner names and the run's finish time as
/// mtime. The same registered files give the same bytes. Each file with a
/// registered hash is hashed as it is archived: one that changed is
/// [`Error::ArtifactChanged`] and no archive is left.
fn write_archive(
    registry: &Registry,
    run_dir: &Path,
    run: &RunRow,
    finished_at: &str,
    dest: &OutputPath,
) -> Result<ArchiveReport> {
    let mtime = chrono::DateTime::parse_from_rfc3339(finished_at)
        .map(|t| t.timestamp().max(0) as u64)
        .unwrap_or(0);
    let members = archive_members(registry, run)?;
    let left_out = left_out(run_dir, &members)?;
    let (sha256, size_bytes, names) = write_output_with(dest, |file| {
        let mut out = HashingWriter {
            inner: file,
            hasher: Sha256::new(),
            len: 0,
            failed: false,
        };
        let mut names = Vec::with_capacity(members.len());
        {
            let mut tar = tar::Builder::new(&mut out);
            for m in &members {
                let path = run_dir.join(&m.name);
                let member = format!("{}/{}/{}", run.project_id, run.run_id, m.name);
                append_member(&mut tar, &path, &member, m.sha256.as_deref(), mtime, dest)?;
                names.push(member);
            }
            tar.finish()
                .map_err(|e| Error::io("writing", dest.path(), e))?;
        }
        let sha256 = out
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        Ok((sha256, out.len, names))
    })?;
    Ok(ArchiveReport {
        path: dest.path().to_path_buf(),
        sha256,
        size_bytes,
        members: names,
        left_out,
    })
}

/// Append the file at `path` as `member`, checking it against `expected`
/// when the registry holds its hash. An error names the archive when
/// writing it failed (a full disk) and the file when reading it did.
fn append_member<W: Write>(
    tar: &mut tar::Builder<&mut HashingWriter<W>>,
    path: &Path,
    member: &str,
    expected: Option<&str>,
    mtime: u64,
    dest: &OutputPath,
) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io("reading", path, e))?;
    if !meta.file_type().is_file() {
        return Err(Error::io(
            "reading",
            path,
            std::io::Error::other("not a regular file"),
        ));
    }
    let file =
        crate::regular_file::open_nofollow(path).map_err(|e| Error::io("reading", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading", path, e))?
        .len();
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(len);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    // `take` keeps the member exactly `len` long even if the file grew;
    // the run lock means a `run` cannot change it under us.
    let mut source = HashingReader {
        inner: file.take(len),
        hasher: Sha256::new(),
    };
    if let Err(e) = tar.append_data(&mut header, member, &mut source) {
        return Err(if tar.get_ref().failed {
            Error::io("writing", dest.path(), e)
        } else {
            Error::io("reading", path, e)
        });
    }
    let found: String = source
        .hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match expected {
        Some(expected) if expected != found => Err(Error::ArtifactChanged {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            found,
        }),
        _ => Ok(()),
    }
}

/// The names in `run_dir` that are not archive members, escaped for
/// showing, in name order; temp files of a dead writer are not listed
/// (they were removed, or are going).
fn left_out(run_dir: &Path, members: &[Member]) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(run_dir).map_err(|e| Error::io("listing", run_dir, e))?;
    let mut names: Vec<OsString> = Vec::new();
    for entry in entries {
        let name = entry
            .map_err(|e| Error::io("listing", run_dir, e))?
            .file_name();
        let temp = name.as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes());
        let member = members
            .iter()
            .any(|m| name.to_str() == Some(m.name.as_str()));
        if !temp && !member {
            names.push(name);
        }
    }
    names.sort();
    Ok(names.iter().map(|n| path_text::escaped(n)).collect())
}

/// Hashes what is read through it.
struct HashingReader<R: Read> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Hashes and counts what passes through, so the archive is hashed as it
/// is written rather than read back; remembers whether a write failed, so
/// an error out of `tar` can be blamed on the archive or on the file read.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    len: u64,
    failed: bool,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = crate::failpoint::hit("archive.write").and_then(|()| self.inner.write(buf));
        let n = written.inspect_err(|_| self.failed = true)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}
