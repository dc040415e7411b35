//! Executing one stage: run it, validate its output, write the artifact and
//! its meta record. Registering them is the runner's commit, not this.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::stage::{Parsed, Stage, StageContext};
use crate::artifact::{
    ArtifactType, ComputeOrigin, CreationParams, MetaRecord, ParentRef, SCHEMA_VERSION,
    canonical_bytes, canonical_value_bytes, holds_exactly, sha256_hex, sync_dir,
    write_atomic_unsynced,
};
use crate::config::LoadedConfig;
use crate::error::{Error, Result};
use crate::registry::ArtifactRecord;
use crate::{failpoint, schema};

/// An artifact produced or verified earlier in this invocation.
pub(crate) struct Current {
    pub sha256: String,
    pub path: PathBuf,
    /// Empty once no later stage reads it.
    pub bytes: Vec<u8>,
}

/// What [`execute`] wrote for one stage.
pub(crate) struct Written {
    pub sha256: String,
    pub bytes: Vec<u8>,
    pub meta: MetaRecord,
    pub meta_json: String,
}

/// Everything about the run that executing a stage reads.
pub(crate) struct Run<'a> {
    pub config: &'a LoadedConfig,
    pub run_id: &'a str,
    pub origin: &'a ComputeOrigin,
    pub current: &'a BTreeMap<ArtifactType, Current>,
    pub parsed: &'a RefCell<Parsed>,
    /// RFC 3339 now, for the meta record's `created_at`.
    pub now: &'a dyn Fn() -> String,
    /// Whether every name in the run directory is durable: its directory
    /// was synced after the last rename in it.
    pub names_durable: &'a Cell<bool>,
    /// Fails when this process no longer holds the run (its PostgreSQL
    /// connection, which held the lock, is gone): asked right before the
    /// stage's files are written, so a run that lost its lock while its
    /// stage computed writes nothing into a directory another host may
    /// now own.
    pub still_holding: &'a dyn Fn() -> Result<()>,
}

/// Run the stage, validate its output, write the artifact and then its
/// meta record, and make both names durable with one directory sync (a
/// meta record found without its artifact after a power cut describes bytes
/// that are not there, which adoption checks, so it is re-executed).
pub(crate) fn execute(
    stage: &dyn Stage,
    run: &Run<'_>,
    out_path: &Path,
    meta_path: &Path,
    registered: Option<&ArtifactRecord>,
) -> Result<Written> {
    let ty = stage.output();
    let ctx = StageContext {
        config: &run.config.config,
        inputs: stage
            .inputs()
            .iter()
            .filter_map(|t| {
                run.current
                    .get(t)
                    .map(|c| (*t, (c.path.as_path(), c.bytes.as_slice())))
            })
            .collect(),
        parsed: run.parsed,
    };
    let value = stage.run(&ctx).map_err(|source| Error::StageFailed {
        stage: stage.number(),
        stage_name: stage.name().to_string(),
        source: Box::new(source),
    })?;
    if let Some(v) = schema::validate(ty.name(), &value)?.into_iter().next() {
        return Err(Error::InvalidArtifact {
            stage: stage.number(),
            stage_name: stage.name().to_string(),
            artifact_type: ty.name().to_string(),
            pointer: v.pointer,
            message: v.message,
        });
    }
    let bytes = canonical_value_bytes(&value)
        .map_err(|e| Error::Inconsistent(format!("encoding {ty}: {e}")))?;
    // From here on the bytes are the artifact; the tree is dead weight.
    // Freeing it is a fifth of a large stage's time: do it on another core
    // while the bytes are hashed, written and synced.
    let freeing = drop_elsewhere(value);
    let sha256 = sha256_hex(&bytes);
    failpoint::hit("stage.before_data_write").map_err(|e| Error::io("writing", out_path, e))?;
    (run.still_holding)()?;
    // A re-execution (`--force`) that reproduces the bytes already there
    // leaves the file alone: rewriting identical bytes would cost a temp
    // file, an fsync of new data and a rename, and change nothing.
    let data_kept = holds_exactly(out_path, &bytes);
    if !data_kept {
        write_atomic_unsynced(out_path, &bytes)?;
    }
    failpoint::hit("stage.after_data_write").map_err(|e| Error::io("writing", meta_path, e))?;

    let meta = MetaRecord {
        artifact_type: ty.name().to_string(),
        path: ty.file_name(),
        sha256: sha256.clone(),
        size_bytes: bytes.len() as u64,
        schema_id: schema::schema_id(ty.name())?.to_string(),
        schema_version: SCHEMA_VERSION.to_string(),
        project_id: run.config.config.project_id.clone(),
        run_id: run.run_id.to_string(),
        parents: stage
            .inputs()
            .iter()
            .filter_map(|t| {
                run.current.get(t).map(|c| ParentRef {
                    artifact_type: t.name().to_string(),
                    sha256: c.sha256.clone(),
                    path: t.file_name(),
                })
            })
            .collect(),
        creation_params: CreationParams {
            stage: stage.number(),
            stage_name: stage.name().to_string(),
            stage_version: stage.version().to_string(),
            config_hash: run.config.config_hash.clone(),
        },
        compute_origin: run.origin.clone(),
        created_at: (run.now)(),
    };
    // Kept bytes keep their record too, when it says everything the new
    // one says: it then keeps the time those bytes were first made, and
    // this execution's own times are in the registry.
    let kept = if data_kept {
        kept_meta(meta_path, &meta, registered)?
    } else {
        None
    };
    let kept_meta_file = kept.is_some();
    let (meta, meta_bytes) = match kept {
        Some(earlier) => earlier,
        None => {
            let bytes = encode_meta(&meta)?;
            write_atomic_unsynced(meta_path, &bytes)?;
            (meta, bytes)
        }
    };
    // Kept files need it too unless a sync since this run began has
    // covered them: the process that wrote them may have been killed
    // before it made their names durable.
    let nothing_renamed = data_kept && kept_meta_file;
    if !(nothing_renamed && run.names_durable.get()) {
        if let Some(dir) = meta_path.parent() {
            sync_dir(dir)?;
        }
        run.names_durable.set(true);
    }
    failpoint::hit("stage.after_meta_write").map_err(|e| Error::io("registering", out_path, e))?;
    // Before the next stage allocates its own tree.
    if let Some(freeing) = freeing {
        let _ = freeing.join();
    }
    Ok(Written {
        sha256,
        bytes,
        meta,
        // Canonical bytes are serde_json output, hence UTF-8.
        meta_json: String::from_utf8_lossy(&meta_bytes).into_owned(),
    })
}

fn encode_meta(meta: &MetaRecord) -> Result<Vec<u8>> {
    canonical_bytes(meta).map_err(|e| {
        Error::Inconsistent(format!(
            "encoding the meta record of {}: {e}",
            meta.artifact_type
        ))
    })
}

/// The registered record of this artifact, if it is `meta` made earlier
/// (byte for byte what `meta` encodes to with the registered `created_at`)
/// and the file at `path` still holds exactly it. Only the registry's copy
/// is trusted for the earlier time: a hand-edited record is rewritten.
fn kept_meta(
    path: &Path,
    meta: &MetaRecord,
    registered: Option<&ArtifactRecord>,
) -> Result<Option<(MetaRecord, Vec<u8>)>> {
    let Some(registered) = registered else {
        return Ok(None);
    };
    let earlier = MetaRecord {
        created_at: registered.created_at.clone(),
        ..meta.clone()
    };
    let bytes = encode_meta(&earlier)?;
    if bytes != registered.meta_json.as_bytes() {
        return Ok(None);
    }
    Ok(holds_exactly(path, &bytes).then_some((earlier, bytes)))
}

/// Drop `value` on a new thread, returned to be joined. Small values are
/// not worth a thread; if none can be started, the failed spawn drops the
/// value here.
fn drop_elsewhere(value: Value) -> Option<std::thread::JoinHandle<()>> {
    let large = match &value {
        Value::Object(m) => m
            .values()
            .any(|v| matches!(v, Value::Array(a) if a.len() > 1_000)),
        _ => false,
    };
    if !large {
        return None;
    }
    std::thread::Builder::new()
        .name("free-artifact".to_string())
        .spawn(move || drop(value))
        .ok()
}
