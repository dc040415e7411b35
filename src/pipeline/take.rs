//! A run id names one take: the run of one config. Reusing an id with a
//! different config would re-execute every stage over the earlier take's
//! files and replace its registry rows, so the earlier take would be gone
//! without anyone having asked for that. This module refuses it, before
//! anything is written.
//!
//! The registry is asked first. A run directory whose `run_summary.json`
//! names another config counts too: the registry may have been lost or
//! replaced (`run` against a new `--db`), and the files are the product.

use std::io::Read;
use std::path::Path;

use crate::artifact::RUN_SUMMARY_FILE;
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::regular_file;

/// Largest `run_summary.json` read here (the same cap `reindex` uses).
const SUMMARY_LIMIT: u64 = crate::reindex::SUMMARY_LIMIT;

/// Where an earlier take's config hash was found.
enum Recorded {
    Registry(String),
    Summary(String),
}

/// Refuse to run `project_id/run_id` with `config_hash` when that run id is
/// already recorded with another config: exit 2, naming both hashes and
/// the ways forward. Called under the run's lock (and by `--dry-run`, which
/// takes none and may race a concurrent run; the real run checks again).
pub fn refuse_reused_run_id(
    registry: &Registry,
    run_dir: &Path,
    project_id: &str,
    run_id: &str,
    config_hash: &str,
) -> Result<()> {
    let recorded = match registry.recorded_config_hash(project_id, run_id)? {
        Some(hash) => Some(Recorded::Registry(hash)),
        None => summary_config_hash(run_dir).map(Recorded::Summary),
    };
    let (existing, where_, discard) = match recorded {
        Some(Recorded::Registry(h)) if h != config_hash => (
            h,
            "the registry records",
            format!("`orchestrator gc --project {project_id} --run {run_id} --yes`"),
        ),
        Some(Recorded::Summary(h)) if h != config_hash => (
            h,
            "its run_summary.json (not in this registry) records",
            "`orchestrator reindex`, then `orchestrator gc` it".to_string(),
        ),
        _ => return Ok(()),
    };
    Err(Error::usage_with_hint(
        format!(
            "run id `{run_id}` of project `{project_id}` is already taken by another config: \
             {where_} config hash {}, this config hashes to {}",
            short(&existing),
            short(config_hash)
        ),
        format!(
            "pick another `--run-id` (or none, to use the id derived from this config); to \
             discard the earlier take first: {discard}"
        ),
    ))
}

/// The config hash `run_summary.json` in `run_dir` records, when there is
/// a readable one. A missing, special, oversized or unparsable file says
/// nothing: the registry (or the resume checks, which compare every input
/// hash) decide then.
fn summary_config_hash(run_dir: &Path) -> Option<String> {
    let file = regular_file::open_nofollow(&run_dir.join(RUN_SUMMARY_FILE)).ok()?;
    let mut bytes = Vec::new();
    file.take(SUMMARY_LIMIT + 1).read_to_end(&mut bytes).ok()?;
    if bytes.len() as u64 > SUMMARY_LIMIT {
        return None;
    }
    let summary: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    summary
        .get("config_hash")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
