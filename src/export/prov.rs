//! A run as a W3C PROV-JSON document
//! (<https://www.w3.org/submissions/prov-json/>).
//!
//! The mapping, documented in the README:
//!
//! - every artifact version the run's history mentions is an **entity**
//!   `orch:artifact/<sha256>` (content-addressed: the same bytes are the same
//!   entity), with `prov:type` `orch:<ArtifactType>` and `orch:artifactType`,
//!   `orch:path`, `orch:sha256`, and — for the file the registry currently
//!   holds (`orch:current` true) — `orch:sizeBytes`, `orch:schemaId`,
//!   `orch:schemaVersion`, `orch:createdAt`. The project config is an entity
//!   `orch:config/<config_hash>`;
//! - every stage execution of every attempt is an **activity**
//!   `orch:execution/<project>/<run>/attempt-<n>/stage-<k>` with
//!   `prov:startTime`, `prov:endTime` (absent while running or interrupted)
//!   and the stage's name, version, status and reason;
//! - the orchestrator build that recorded the run is the **agent**
//!   `orch:orchestrator/<version>`, a `prov:SoftwareAgent`;
//! - `used`: each execution used its recorded inputs (`orch:input` names
//!   them); `wasGeneratedBy`: each artifact version by the execution that
//!   wrote it; `wasDerivedFrom`: the registry's parent edges, child from
//!   parent as the child saw it; `wasAssociatedWith`: every execution with
//!   the agent.
//!
//! Relation ids are blank nodes (`_:used1`, …) numbered in a fixed order,
//! and every map is sorted, so the document is deterministic.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{NAMESPACE_BASE, RunHistory};
use crate::registry::ArtifactRecord;

/// The `orch:` prefix's namespace URI.
pub fn namespace() -> String {
    format!("{NAMESPACE_BASE}ns#")
}

/// Entity id of the artifact bytes with this sha256.
pub fn artifact_id(sha256: &str) -> String {
    format!("orch:artifact/{sha256}")
}

/// Entity id of the project config with this hash.
pub fn config_id(config_hash: &str) -> String {
    format!("orch:config/{config_hash}")
}

/// Activity id of one execution (`key` from [`RunHistory::execution_keys`]).
pub fn execution_id(h: &RunHistory, key: &str) -> String {
    format!("orch:execution/{}/{}/{key}", h.run.project_id, h.run.run_id)
}

/// Agent id of the orchestrator build `version`.
pub fn agent_id(version: &str) -> String {
    format!("orch:orchestrator/{version}")
}

/// A PROV qualified name as a typed literal, as PROV-JSON writes
/// `prov:type` values.
fn qname(name: &str) -> Value {
    json!({"$": name, "type": "prov:QUALIFIED_NAME"})
}

fn date_time(t: &str) -> Value {
    json!({"$": t, "type": "xsd:dateTime"})
}

/// What is known of one artifact version.
struct Version<'a> {
    artifact_type: String,
    /// The registered file when this version is the one on disk now.
    current: Option<&'a ArtifactRecord>,
}

/// Build the PROV-JSON document of a run.
pub fn document(h: &RunHistory) -> Value {
    let keys = h.execution_keys();
    let activity_ids: Vec<String> = keys.iter().map(|k| execution_id(h, k)).collect();
    let agent = agent_id(&h.run.orchestrator_version);

    // Every artifact version mentioned anywhere, so that every relation
    // names a declared entity. The current files first: they know most.
    let mut versions: BTreeMap<String, Version<'_>> = BTreeMap::new();
    for a in &h.artifacts {
        versions.insert(
            a.sha256.clone(),
            Version {
                artifact_type: a.artifact_type.clone(),
                current: Some(a),
            },
        );
    }
    let mut mention = |sha: &str, artifact_type: String| {
        versions.entry(sha.to_string()).or_insert(Version {
            artifact_type,
            current: None,
        });
    };
    for e in &h.executions {
        if let (Some(sha), Some(t)) = (&e.output_sha256, h.type_of_stage(e.stage)) {
            mention(sha, t);
        }
        for (name, sha) in e.input_hashes.iter().filter(|(n, _)| *n != "config") {
            mention(sha, name.clone());
        }
    }
    for edge in &h.edges {
        mention(&edge.parent_sha256, edge.parent_type.clone());
    }
    let mut configs: BTreeMap<String, bool> = BTreeMap::new();
    configs.insert(h.run.config_hash.clone(), true);
    for e in &h.executions {
        if let Some(c) = e.input_hashes.get("config") {
            configs.entry(c.clone()).or_insert(false);
        }
    }

    let mut entity = Map::new();
    for (sha, v) in &versions {
        entity.insert(artifact_id(sha), artifact_entity(h, sha, v));
    }
    for (hash, current) in &configs {
        entity.insert(
            config_id(hash),
            json!({
                "prov:type": qname("orch:ProjectConfig"),
                "prov:label": format!("config of {}", h.run.project_id),
                "orch:projectId": h.run.project_id,
                "orch:sha256": hash,
                "orch:current": current,
            }),
        );
    }

    let mut activity = Map::new();
    for (e, id) in h.executions.iter().zip(&activity_ids) {
        let mut a = Map::new();
        a.insert("prov:type".into(), qname("orch:StageExecution"));
        a.insert("prov:label".into(), e.stage_name.clone().into());
        a.insert("prov:startTime".into(), e.started_at.clone().into());
        if let Some(t) = &e.finished_at {
            a.insert("prov:endTime".into(), t.clone().into());
        }
        a.insert("orch:projectId".into(), e.project_id.clone().into());
        a.insert("orch:runId".into(), e.run_id.clone().into());
        a.insert("orch:attempt".into(), e.attempt.into());
        a.insert("orch:stage".into(), e.stage.into());
        a.insert("orch:stageName".into(), e.stage_name.clone().into());
        a.insert("orch:stageVersion".into(), e.stage_version.clone().into());
        a.insert("orch:status".into(), e.status.as_str().into());
        a.insert("orch:reason".into(), e.reason.clone().into());
        if let Some(d) = e.duration_ms {
            a.insert("orch:durationMs".into(), d.into());
        }
        if let Some(err) = &e.error {
            a.insert("orch:error".into(), err.clone().into());
        }
        activity.insert(id.clone(), Value::Object(a));
    }

    let mut agents = Map::new();
    agents.insert(
        agent.clone(),
        json!({
            "prov:type": qname("prov:SoftwareAgent"),
            "prov:label": format!("orchestrator {}", h.run.orchestrator_version),
            "orch:version": h.run.orchestrator_version,
        }),
    );

    let mut used = Map::new();
    for (e, id) in h.executions.iter().zip(&activity_ids) {
        for (name, sha) in &e.input_hashes {
            let entity = if name == "config" {
                config_id(sha)
            } else {
                artifact_id(sha)
            };
            used.insert(
                format!("_:used{}", used.len() + 1),
                json!({
                    "prov:activity": id,
                    "prov:entity": entity,
                    "prov:time": e.started_at,
                    "orch:input": name,
                }),
            );
        }
    }

    let mut generated = Map::new();
    for (sha, v) in &versions {
        let stage = v
            .current
            .map(|a| a.stage)
            .or_else(|| stage_of_type(h, &v.artifact_type));
        let made_at = v.current.map(|a| a.created_at.as_str());
        let Some(i) = stage.and_then(|s| h.generating_execution(s, sha, made_at)) else {
            continue;
        };
        let time = v
            .current
            .map(|a| a.created_at.clone())
            .or_else(|| h.executions[i].finished_at.clone());
        let mut g = Map::new();
        g.insert("prov:entity".into(), artifact_id(sha).into());
        g.insert("prov:activity".into(), activity_ids[i].clone().into());
        if let Some(t) = time.filter(|t| h.within(i, t)) {
            g.insert("prov:time".into(), t.into());
        }
        generated.insert(format!("_:gen{}", generated.len() + 1), Value::Object(g));
    }

    let mut derived = Map::new();
    for edge in &h.edges {
        let mut d = Map::new();
        d.insert(
            "prov:generatedEntity".into(),
            artifact_id(&edge.child_sha256).into(),
        );
        d.insert(
            "prov:usedEntity".into(),
            artifact_id(&edge.parent_sha256).into(),
        );
        let child = h.artifact(&edge.child_type);
        let child_stage = child
            .map(|a| a.stage)
            .or_else(|| stage_of_type(h, &edge.child_type));
        let made_at = child
            .filter(|a| a.sha256 == edge.child_sha256)
            .map(|a| a.created_at.as_str());
        if let Some(i) =
            child_stage.and_then(|s| h.generating_execution(s, &edge.child_sha256, made_at))
        {
            d.insert("prov:activity".into(), activity_ids[i].clone().into());
        }
        derived.insert(format!("_:der{}", derived.len() + 1), Value::Object(d));
    }

    let mut associated = Map::new();
    for id in &activity_ids {
        associated.insert(
            format!("_:assoc{}", associated.len() + 1),
            json!({"prov:activity": id, "prov:agent": agent}),
        );
    }

    let mut doc = Map::new();
    doc.insert("prefix".into(), json!({"orch": namespace()}));
    doc.insert("entity".into(), Value::Object(entity));
    doc.insert("agent".into(), Value::Object(agents));
    // A section with nothing in it is left out, as PROV-JSON writers do.
    for (name, section) in [
        ("activity", activity),
        ("used", used),
        ("wasGeneratedBy", generated),
        ("wasDerivedFrom", derived),
        ("wasAssociatedWith", associated),
    ] {
        if !section.is_empty() {
            doc.insert(name.into(), Value::Object(section));
        }
    }
    Value::Object(doc)
}

/// The stage that makes `artifact_type`, from the pipeline's fixed order.
fn stage_of_type(h: &RunHistory, artifact_type: &str) -> Option<u8> {
    (1..=5).find(|s| h.type_of_stage(*s).as_deref() == Some(artifact_type))
}

fn artifact_entity(h: &RunHistory, sha: &str, v: &Version<'_>) -> Value {
    let mut e = Map::new();
    e.insert(
        "prov:type".into(),
        qname(&format!("orch:{}", v.artifact_type)),
    );
    e.insert(
        "prov:label".into(),
        format!("{} {}", v.artifact_type, crate::artifact::short_sha(sha)).into(),
    );
    e.insert("orch:artifactType".into(), v.artifact_type.clone().into());
    e.insert("orch:sha256".into(), sha.into());
    e.insert("orch:current".into(), v.current.is_some().into());
    // An older version lived at the same place as the current file of its
    // type: paths are fixed per type within a run.
    let path = v
        .current
        .or_else(|| h.artifact(&v.artifact_type))
        .map(|a| a.path.clone());
    if let Some(p) = path {
        e.insert("orch:path".into(), p.into());
    }
    if let Some(a) = v.current {
        e.insert("orch:sizeBytes".into(), a.size_bytes.into());
        e.insert("orch:schemaId".into(), a.schema_id.clone().into());
        e.insert("orch:schemaVersion".into(), a.schema_version.clone().into());
        e.insert("orch:stage".into(), a.stage.into());
        e.insert("orch:createdAt".into(), date_time(&a.created_at));
    }
    Value::Object(e)
}
