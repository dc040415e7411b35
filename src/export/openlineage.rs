//! A run as OpenLineage run events (<https://openlineage.io/spec/2-0-2/OpenLineage.json>),
//! one JSON object per line, ready to post to an OpenLineage backend.
//!
//! The mapping, documented in the README:
//!
//! - each stage execution of each attempt is one OpenLineage run of the job
//!   `{namespace, name: <stage name>}`: a `START` event at its start, then
//!   `COMPLETE` (executed or skipped), `FAIL` (failed) or `ABORT`
//!   (interrupted; its end is unknown, so the event carries the start time)
//!   at its end. A stage still running has only its `START`;
//! - `run.runId` is derived, not random, so exporting twice gives the same
//!   events: a UUIDv7 whose 48-bit timestamp is the execution's start and
//!   whose other bits are SHA-256 of `project/run/attempt/stage` (see
//!   [`run_uuid`]). The `parent` facet names the attempt's own id, derived
//!   the same way from `project/run/attempt`, under the job `<project id>`;
//! - inputs and outputs are datasets in the same namespace, named by the
//!   artifact's path relative to the artifacts directory, each with the
//!   custom `orchestrator_sha256` facet (the bytes it read or wrote);
//! - run facets: `parent`, `processing_engine` (the orchestrator version
//!   that ran it), the custom `orchestrator_execution` (status, reason,
//!   attempt, stage version, config hash) and, on `FAIL`/`ABORT`,
//!   `errorMessage`.

use chrono::DateTime;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{NAMESPACE_BASE, RunHistory, producer_uri};
use crate::registry::ExecutionRecord;

/// The job and dataset namespace when none is given.
pub const DEFAULT_NAMESPACE: &str = "orchestrator";

/// The core spec version every event claims.
pub const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";

/// Standard facets, at the versions the events follow.
pub const PARENT_FACET_URL: &str =
    "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet";
pub const ERROR_FACET_URL: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
pub const ENGINE_FACET_URL: &str = "https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet";

/// `_schemaURL` of the custom dataset facet `orchestrator_sha256`.
pub fn sha256_facet_url() -> String {
    format!(
        "{NAMESPACE_BASE}schemas/openlineage/facets/1-0-0/OrchestratorSha256DatasetFacet.json#/$defs/OrchestratorSha256DatasetFacet"
    )
}

/// `_schemaURL` of the custom run facet `orchestrator_execution`.
pub fn execution_facet_url() -> String {
    format!(
        "{NAMESPACE_BASE}schemas/openlineage/facets/1-0-0/OrchestratorExecutionRunFacet.json#/$defs/OrchestratorExecutionRunFacet"
    )
}

/// A deterministic UUIDv7 (RFC 9562): the first 48 bits are `time`'s Unix
/// milliseconds (0 when it does not parse), so ids sort by start as
/// OpenLineage recommends; the remaining 74 bits that v7 leaves free are
/// taken from SHA-256 of `seed` instead of a random source.
pub fn run_uuid(time: &str, seed: &str) -> String {
    let millis = DateTime::parse_from_rfc3339(time)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .unwrap_or(0);
    let digest = Sha256::digest(seed.as_bytes());
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    b[6..].copy_from_slice(&digest[..10]);
    b[6] = 0x70 | (b[6] & 0x0f); // version 7
    b[8] = 0x80 | (b[8] & 0x3f); // RFC 9562 variant
    let h = crate::artifact::canonical::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The seed of an execution's run id. `key` is its
/// [`RunHistory::execution_keys`] entry (`attempt-<n>/stage-<k>`).
fn execution_seed(h: &RunHistory, key: &str) -> String {
    format!(
        "orchestrator/openlineage/v1/{}/{}/{key}",
        h.run.project_id, h.run.run_id
    )
}

fn attempt_seed(h: &RunHistory, attempt: u32) -> String {
    format!(
        "orchestrator/openlineage/v1/{}/{}/attempt-{attempt}",
        h.run.project_id, h.run.run_id
    )
}

/// Every event of the run, in order: attempt by attempt, stage by stage,
/// each execution's `START` before its end.
pub fn events(h: &RunHistory, namespace: &str) -> Vec<Value> {
    let producer = producer_uri();
    let keys = h.execution_keys();
    let mut out = Vec::new();
    for (e, key) in h.executions.iter().zip(&keys) {
        let run_id = run_uuid(&e.started_at, &execution_seed(h, key));
        let facets = run_facets(h, e, namespace, &producer);
        let job = json!({"namespace": namespace, "name": e.stage_name});
        let inputs = inputs(h, e, namespace, &producer);
        out.push(json!({
            "eventType": "START",
            "eventTime": e.started_at,
            "producer": producer,
            "schemaURL": SCHEMA_URL,
            "run": {"runId": run_id, "facets": facets},
            "job": job,
            "inputs": inputs,
            "outputs": [],
        }));
        let (event_type, time) = match e.status.as_str() {
            "executed" | "skipped" => ("COMPLETE", e.finished_at.as_deref()),
            "failed" => ("FAIL", e.finished_at.as_deref()),
            // The process died; when is unknown, so the start stands in.
            "interrupted" => ("ABORT", e.finished_at.as_deref().or(Some(&e.started_at))),
            _ => continue,
        };
        let Some(time) = time else { continue };
        let mut facets = facets;
        if matches!(event_type, "FAIL" | "ABORT")
            && let (Some(err), Some(map)) = (&e.error, facets.as_object_mut())
        {
            map.insert(
                "errorMessage".into(),
                json!({
                    "_producer": producer,
                    "_schemaURL": ERROR_FACET_URL,
                    "message": err,
                    "programmingLanguage": "RUST",
                }),
            );
        }
        out.push(json!({
            "eventType": event_type,
            "eventTime": time,
            "producer": producer,
            "schemaURL": SCHEMA_URL,
            "run": {"runId": run_id, "facets": facets},
            "job": job,
            "inputs": inputs,
            "outputs": outputs(h, e, namespace, &producer),
        }));
    }
    out
}

fn run_facets(h: &RunHistory, e: &ExecutionRecord, namespace: &str, producer: &str) -> Value {
    // The attempt's id is derived from its earliest start, so all of its
    // stages name the same parent.
    let attempt_start = h
        .executions
        .iter()
        .filter(|x| x.attempt == e.attempt)
        .map(|x| x.started_at.as_str())
        .min()
        .unwrap_or(&e.started_at);
    let mut execution = Map::new();
    execution.insert("_producer".into(), producer.into());
    execution.insert("_schemaURL".into(), execution_facet_url().into());
    execution.insert("projectId".into(), e.project_id.clone().into());
    execution.insert("runId".into(), e.run_id.clone().into());
    execution.insert("attempt".into(), e.attempt.into());
    execution.insert("stage".into(), e.stage.into());
    execution.insert("stageVersion".into(), e.stage_version.clone().into());
    execution.insert("status".into(), e.status.as_str().into());
    execution.insert("reason".into(), e.reason.clone().into());
    if let Some(c) = e.input_hashes.get("config") {
        execution.insert("configHash".into(), c.clone().into());
    }
    if let Some(d) = e.duration_ms {
        execution.insert("durationMs".into(), d.into());
    }
    json!({
        "parent": {
            "_producer": producer,
            "_schemaURL": PARENT_FACET_URL,
            "run": {"runId": run_uuid(attempt_start, &attempt_seed(h, e.attempt))},
            "job": {"namespace": namespace, "name": h.run.project_id},
        },
        "processing_engine": {
            "_producer": producer,
            "_schemaURL": ENGINE_FACET_URL,
            "name": "orchestrator",
            "version": h.run.orchestrator_version,
            "openlineageAdapterVersion": crate::VERSION,
        },
        "orchestrator_execution": Value::Object(execution),
    })
}

/// One dataset: `artifact_type`'s file in this run, at version `sha256`.
fn dataset(
    h: &RunHistory,
    artifact_type: &str,
    sha256: &str,
    namespace: &str,
    producer: &str,
) -> Value {
    let current = h.artifact(artifact_type);
    let name = current
        .map(|a| a.path.clone())
        .unwrap_or_else(|| format!("{}/{}/{artifact_type}.json", h.run.project_id, h.run.run_id));
    let mut facet = Map::new();
    facet.insert("_producer".into(), producer.into());
    facet.insert("_schemaURL".into(), sha256_facet_url().into());
    facet.insert("artifactType".into(), artifact_type.into());
    facet.insert("sha256".into(), sha256.into());
    if let Some(a) = current.filter(|a| a.sha256 == sha256) {
        facet.insert("sizeBytes".into(), a.size_bytes.into());
    }
    json!({
        "namespace": namespace,
        "name": name,
        "facets": {"orchestrator_sha256": Value::Object(facet)},
    })
}

fn inputs(h: &RunHistory, e: &ExecutionRecord, namespace: &str, producer: &str) -> Vec<Value> {
    e.input_hashes
        .iter()
        .filter(|(name, _)| *name != "config")
        .map(|(name, sha)| dataset(h, name, sha, namespace, producer))
        .collect()
}

fn outputs(h: &RunHistory, e: &ExecutionRecord, namespace: &str, producer: &str) -> Vec<Value> {
    match (&e.output_sha256, h.type_of_stage(e.stage)) {
        (Some(sha), Some(t)) => vec![dataset(h, &t, sha, namespace, producer)],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_uuid_is_a_v7_uuid_that_sorts_by_time_and_depends_on_the_seed() {
        let a = run_uuid("2026-11-24T02:28:57.486Z", "x");
        assert_eq!(a, run_uuid("2026-11-24T02:28:57.486Z", "x"));
        assert_ne!(a, run_uuid("2026-11-24T02:28:57.486Z", "y"));
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('7'), "{a}");
        assert!(
            matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{a}"
        );
        let millis = u64::from_str_radix(&format!("{}{}", parts[0], parts[1]), 16).unwrap();
        assert_eq!(
            millis,
            DateTime::parse_from_rfc3339("2026-11-24T02:28:57.486Z")
                .unwrap()
                .timestamp_millis() as u64
        );
        assert!(run_uuid("2026-11-24T02:28:57.485Z", "z") < a);
        // An unreadable time still gives a well-formed id.
        assert!(run_uuid("yesterday", "x").starts_with("00000000-0000-7"));
    }
}
