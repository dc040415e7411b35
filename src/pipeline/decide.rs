//! Whether a stage must execute, may be skipped, or may adopt files an
//! interrupted run left behind.
//!
//! Decisions compare hashes, never timestamps. A stage is skipped when the
//! registry holds a completed execution with the current stage version and
//! input hashes and its output file is still exactly what was recorded. So a
//! re-executed stage whose output came out byte-identical does not force its
//! dependants to run (early cut-off), while one whose output changed does.
//!
//! When the registry cannot vouch for a stage, the files may: a run killed
//! after writing `X.json` and `X.meta.json` but before its commit leaves a
//! complete artifact the registry never heard of. It is adopted (registered
//! without recomputing) only if its meta record is not the one already
//! registered (committed files get the registry's verdict), names exactly
//! the current inputs, stage version, config and compute origin, and its
//! bytes hash to the recorded sha256, are canonical and pass the schema.
//! Anything less and the stage executes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::stage::Stage;
use crate::artifact::{
    ComputeOrigin, MetaRecord, SCHEMA_VERSION, canonical_value_bytes, sha256_hex,
};
use crate::error::Result;
use crate::registry::{ArtifactRecord, Registry};
use crate::schema;

/// Meta records are a few hundred bytes; anything much larger is not one.
const MAX_META_BYTES: u64 = 1 << 20;

/// What the runner does with a stage.
pub(crate) enum Decision {
    /// The registry and the file agree: nothing to do.
    Skip {
        sha256: String,
        bytes: Vec<u8>,
    },
    /// Files from an interrupted run check out: register them as they are.
    Adopt {
        sha256: String,
        bytes: Vec<u8>,
        meta: Box<MetaRecord>,
        meta_json: String,
    },
    Execute {
        reason: String,
    },
}

/// Everything a decision depends on besides the registry.
pub(crate) struct Inputs<'a> {
    pub stage: &'a dyn Stage,
    pub project_id: &'a str,
    pub run_id: &'a str,
    pub config_hash: &'a str,
    /// `config` and each upstream type → the sha256 this run uses.
    pub input_hashes: &'a BTreeMap<String, String>,
    pub out_path: &'a Path,
    pub meta_path: &'a Path,
    /// Where executing now would say the artifact was computed.
    pub origin: &'a ComputeOrigin,
    /// `--force` or `--from-stage` applies to this stage: the reason.
    pub forced: Option<String>,
    /// The artifact the registry has for this stage's output, as read when
    /// the run began (only this stage's own commit changes it).
    pub registered: Option<&'a ArtifactRecord>,
}

pub(crate) fn decide(registry: &Registry, i: &Inputs<'_>) -> Result<Decision> {
    if let Some(reason) = &i.forced {
        return Ok(Decision::Execute {
            reason: reason.clone(),
        });
    }
    match from_registry(registry, i)? {
        Decision::Execute { reason } => Ok(adopt(i)?.unwrap_or(Decision::Execute { reason })),
        other => Ok(other),
    }
}

/// The decision the registry's last completed execution supports.
fn from_registry(registry: &Registry, i: &Inputs<'_>) -> Result<Decision> {
    let execute = |reason: String| Ok(Decision::Execute { reason });
    let stage = i.stage;
    let Some(prev) = registry.last_completed_execution(i.project_id, i.run_id, stage.number())?
    else {
        return execute("not run before".to_string());
    };
    if prev.stage_version != stage.version() {
        return execute(format!(
            "stage version changed ({} -> {})",
            prev.stage_version,
            stage.version()
        ));
    }
    let changed: Vec<&str> = i
        .input_hashes
        .iter()
        .filter(|(name, sha)| prev.input_hashes.get(*name) != Some(*sha))
        .map(|(name, _)| name.as_str())
        .chain(
            prev.input_hashes
                .keys()
                .filter(|name| !i.input_hashes.contains_key(*name))
                .map(String::as_str),
        )
        .collect();
    if !changed.is_empty() {
        return execute(format!("input changed ({})", changed.join(", ")));
    }
    let registered = match i.registered {
        None => return execute("artifact not registered".to_string()),
        Some(a) if a.sha256 != prev.output_sha256 => {
            return execute("registry disagrees with its last execution".to_string());
        }
        // A hash match only proves validity against the schema version
        // the artifact was validated under.
        Some(a) if a.schema_version != SCHEMA_VERSION => {
            return execute(format!(
                "schema version changed ({} -> {SCHEMA_VERSION})",
                a.schema_version
            ));
        }
        Some(a) => a,
    };
    let bytes = match read_regular(i.out_path, None) {
        Ok(b) => b,
        Err(reason) => return execute(reason),
    };
    let sha256 = sha256_hex(&bytes);
    if sha256 != prev.output_sha256 {
        return execute("hash mismatch".to_string());
    }
    // The whole meta record must be the one registered, not just its hash:
    // a meta file from an interrupted write, or edited by hand, is rewritten
    // rather than trusted.
    // The registry keeps the exact bytes written, so equal bytes settle it
    // without parsing; otherwise the file must hold the same JSON value.
    let on_disk = read_regular(i.meta_path, Some(MAX_META_BYTES)).ok();
    if on_disk.as_deref() == Some(registered.meta_json.as_bytes()) {
        return Ok(Decision::Skip { sha256, bytes });
    }
    let on_disk = on_disk.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let recorded = serde_json::from_str::<serde_json::Value>(&registered.meta_json).ok();
    match on_disk {
        None => execute("meta file missing or unreadable".to_string()),
        Some(m) if Some(&m) != recorded.as_ref() => {
            execute("meta file disagrees with the registry".to_string())
        }
        Some(_) => Ok(Decision::Skip { sha256, bytes }),
    }
}

/// Adopt the files on disk if they were never committed and are exactly
/// what executing the stage now would register, up to the meta record's
/// timestamp. `Ok(None)` means execute.
fn adopt(i: &Inputs<'_>) -> Result<Option<Decision>> {
    let Some(meta_json) = read_regular(i.meta_path, Some(MAX_META_BYTES))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return Ok(None);
    };
    // Files the registry already vouched for are not an interrupted run's
    // leftovers: whatever made the registry say "execute" still holds.
    if let Some(registered) = i.registered {
        let on_disk = serde_json::from_str::<serde_json::Value>(&meta_json).ok();
        let recorded = serde_json::from_str::<serde_json::Value>(&registered.meta_json).ok();
        if on_disk.is_some() && on_disk == recorded {
            return Ok(None);
        }
    }
    Ok(check_leftovers(i, meta_json))
}

/// The checks that make files written by an interrupted run safe to adopt.
fn check_leftovers(i: &Inputs<'_>, meta_json: String) -> Option<Decision> {
    let stage = i.stage;
    let ty = stage.output();
    let meta: MetaRecord = serde_json::from_str(&meta_json).ok()?;
    let params = &meta.creation_params;
    let describes_this_stage = meta.artifact_type == ty.name()
        && meta.path == ty.file_name()
        && meta.project_id == i.project_id
        && meta.run_id == i.run_id
        && meta.schema_version == SCHEMA_VERSION
        && schema::schema_id(ty.name()).is_ok_and(|id| id == meta.schema_id)
        && params.stage == stage.number()
        && params.stage_name == stage.name()
        && params.stage_version == stage.version()
        && params.config_hash == i.config_hash
        && &meta.compute_origin == i.origin;
    if !describes_this_stage {
        return None;
    }
    // Parents: exactly the declared inputs, in order, at this run's hashes.
    let parents_match = meta.parents.len() == stage.inputs().len()
        && stage.inputs().iter().zip(&meta.parents).all(|(t, p)| {
            p.artifact_type == t.name()
                && p.path == t.file_name()
                && i.input_hashes.get(t.name()) == Some(&p.sha256)
        });
    if !parents_match {
        return None;
    }
    let bytes = read_regular(i.out_path, None).ok()?;
    if bytes.len() as u64 != meta.size_bytes || sha256_hex(&bytes) != meta.sha256 {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    if !schema::validate(ty.name(), &value).ok()?.is_empty() {
        return None;
    }
    // Executing would write canonical bytes; anything else was not written
    // by this tool.
    if canonical_value_bytes(&value).ok()? != bytes {
        return None;
    }
    Some(Decision::Adopt {
        sha256: meta.sha256.clone(),
        bytes,
        meta: Box::new(meta),
        meta_json,
    })
}

/// Read a regular file (never through a symlink, never a FIFO or device,
/// which could block forever), at most `cap` bytes. `Err` is the reason, as
/// a decision states it.
fn read_regular(path: &Path, cap: Option<u64>) -> std::result::Result<Vec<u8>, String> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("artifact missing".to_string());
        }
        Err(e) => return Err(format!("artifact unreadable ({e})")),
        Ok(m) if !m.file_type().is_file() => {
            return Err("artifact is not a regular file".to_string());
        }
        Ok(m) if cap.is_some_and(|c| m.len() > c) => {
            return Err("file too large".to_string());
        }
        Ok(_) => {}
    }
    let file = crate::regular_file::open_nofollow(path)
        .map_err(|e| format!("artifact unreadable ({e})"))?;
    // Sized from the open file, so a large artifact is read in one pass
    // rather than through a ladder of growing buffers.
    let len = file.metadata().map_or(0, |m| m.len());
    let mut bytes = Vec::with_capacity(cap.map_or(len, |c| len.min(c)) as usize + 1);
    file.take(cap.unwrap_or(u64::MAX))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("artifact unreadable ({e})"))?;
    Ok(bytes)
}
