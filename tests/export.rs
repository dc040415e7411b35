//! `orchestrator export`, driven through the binary: PROV-JSON and
//! OpenLineage output checked against their published JSON schemas
//! (vendored in `tests/schemas/`, see its README) and against what the
//! registry and the files say about the run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{STAGE_EDGES, TYPES, Workspace, assert_usage_error, example_run, sha256_file};
use serde_json::{Value, json};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn schema_file(rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schemas")
        .join(rel);
    serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every violation, one per line with its instance path, or empty.
fn violations(validator: &jsonschema::Validator, instance: &Value) -> String {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}\n", e.instance_path()))
        .collect()
}

fn export(ws: &Workspace, args: &[&str]) -> std::process::Output {
    ws.cmd().arg("export").args(args).output().unwrap()
}

fn export_ok(ws: &Workspace, args: &[&str]) -> Vec<u8> {
    let out = export(ws, args);
    assert!(
        out.status.success(),
        "export {args:?} failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn prov(ws: &Workspace, run: &str) -> Value {
    serde_json::from_slice(&export_ok(ws, &["--format", "prov", run])).unwrap()
}

fn events(ws: &Workspace, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--format", "openlineage"];
    all.extend_from_slice(args);
    String::from_utf8(export_ok(ws, &all))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn run_id(summary: &Value) -> String {
    summary["run_id"].as_str().unwrap().to_string()
}

/// The file of `artifact_type` in the example run's directory.
fn artifact_file(ws: &Workspace, run: &str, artifact_type: &str) -> PathBuf {
    ws.run_dir("lighthouse", run)
        .join(format!("{artifact_type}.json"))
}

// ---------------------------------------------------------------- PROV-JSON

/// The PROV-JSON schema (draft-04), with `format` checked.
fn prov_validator() -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema_file("prov-json.schema.json"))
        .unwrap()
}

fn ids_in(doc: &Value, section: &str) -> BTreeSet<String> {
    doc[section]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn prov_export_passes_the_prov_json_schema() {
    let (ws, summary) = example_run();
    let doc = prov(&ws, &run_id(&summary));
    let v = prov_validator();
    assert_eq!(violations(&v, &doc), "", "{doc:#}");

    // The schema bites: each of these breaks it.
    let mut missing_entity = doc.clone();
    let generation = missing_entity["wasGeneratedBy"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    generation.as_object_mut().unwrap().remove("prov:entity");
    assert!(!v.is_valid(&missing_entity));
    let mut bad_time = doc.clone();
    bad_time["wasGeneratedBy"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap()["prov:time"] = "yesterday".into();
    assert!(
        violations(&v, &bad_time).contains("date-time"),
        "{}",
        violations(&v, &bad_time)
    );
    let mut unknown_section = doc.clone();
    unknown_section["wasMadeBy"] = json!({});
    assert!(!v.is_valid(&unknown_section));
    let mut bad_literal = doc.clone();
    bad_literal["agent"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap()["prov:type"] = json!({"type": "prov:QUALIFIED_NAME"});
    assert!(!v.is_valid(&bad_literal));
}

#[test]
fn prov_export_maps_artifacts_executions_and_the_orchestrator() {
    let (ws, summary) = example_run();
    let run = run_id(&summary);
    let doc = prov(&ws, &run);
    assert_eq!(doc["prefix"]["orch"], "https://orchestrator.local/ns#");

    // Entities: the five artifacts, with the registry's (and the files')
    // facts, plus the config.
    let mut artifact_ids = BTreeMap::new();
    for (i, t) in TYPES.iter().enumerate() {
        let file = artifact_file(&ws, &run, t);
        let sha = sha256_file(&file);
        let id = format!("orch:artifact/{sha}");
        let e = &doc["entity"][&id];
        assert_eq!(
            e["prov:type"],
            json!({"$": format!("orch:{t}"), "type": "prov:QUALIFIED_NAME"})
        );
        assert_eq!(e["orch:artifactType"], *t);
        assert_eq!(e["orch:sha256"], sha);
        assert_eq!(e["orch:path"], format!("lighthouse/{run}/{t}.json"));
        assert_eq!(e["orch:sizeBytes"], std::fs::metadata(&file).unwrap().len());
        assert_eq!(e["orch:schemaVersion"], "1.0.0");
        assert_eq!(e["orch:stage"], i + 1);
        assert_eq!(e["orch:current"], true);
        artifact_ids.insert(t.to_string(), id);
    }
    let config_id = format!("orch:config/{}", summary["config_hash"].as_str().unwrap());
    assert_eq!(
        ids_in(&doc, "entity"),
        artifact_ids
            .values()
            .cloned()
            .chain([config_id.clone()])
            .collect()
    );

    // Activities: one per stage execution, with its times and stage.
    let activity_of =
        |stage: usize| format!("orch:execution/lighthouse/{run}/attempt-1/stage-{stage}");
    assert_eq!(ids_in(&doc, "activity"), (1..=5).map(activity_of).collect());
    for (i, s) in summary["stages"].as_array().unwrap().iter().enumerate() {
        let a = &doc["activity"][activity_of(i + 1)];
        assert_eq!(a["prov:startTime"], s["started_at"]);
        assert_eq!(a["prov:endTime"], s["finished_at"]);
        assert_eq!(a["orch:stageName"], s["name"]);
        assert_eq!(a["orch:stageVersion"], s["stage_version"]);
        assert_eq!(a["orch:status"], "executed");
    }

    // The agent: this orchestrator, a software agent with its version.
    let agent_id = format!("orch:orchestrator/{VERSION}");
    assert_eq!(ids_in(&doc, "agent"), BTreeSet::from([agent_id.clone()]));
    assert_eq!(
        doc["agent"][&agent_id]["prov:type"],
        json!({"$": "prov:SoftwareAgent", "type": "prov:QUALIFIED_NAME"})
    );
    assert_eq!(doc["agent"][&agent_id]["orch:version"], VERSION);

    let relation = |section: &str, a: &str, b: &str| -> BTreeSet<(String, String)> {
        doc[section]
            .as_object()
            .unwrap()
            .values()
            .map(|r| {
                (
                    r[a].as_str().unwrap().to_string(),
                    r[b].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // wasGeneratedBy: each artifact by its stage's execution.
    assert_eq!(
        relation("wasGeneratedBy", "prov:entity", "prov:activity"),
        TYPES
            .iter()
            .enumerate()
            .map(|(i, t)| (artifact_ids[*t].clone(), activity_of(i + 1)))
            .collect()
    );
    // wasDerivedFrom: exactly the pipeline's parent edges.
    assert_eq!(
        relation("wasDerivedFrom", "prov:generatedEntity", "prov:usedEntity"),
        STAGE_EDGES
            .iter()
            .map(|(c, p)| (artifact_ids[*c].clone(), artifact_ids[*p].clone()))
            .collect()
    );
    // used: every execution read the config, and each its parents.
    let stage_of = |t: &str| TYPES.iter().position(|x| *x == t).unwrap() + 1;
    let mut expected_used: BTreeSet<(String, String)> = (1..=5)
        .map(|s| (activity_of(s), config_id.clone()))
        .collect();
    for (child, parent) in STAGE_EDGES {
        expected_used.insert((activity_of(stage_of(child)), artifact_ids[parent].clone()));
    }
    assert_eq!(
        relation("used", "prov:activity", "prov:entity"),
        expected_used
    );
    // wasAssociatedWith: every execution with the orchestrator.
    assert_eq!(
        relation("wasAssociatedWith", "prov:activity", "prov:agent"),
        (1..=5)
            .map(|s| (activity_of(s), agent_id.clone()))
            .collect()
    );
}

#[test]
fn prov_export_of_a_resumed_and_a_failed_attempt_names_only_declared_things() {
    let (ws, summary) = example_run();
    let run = run_id(&summary);
    let config = ws.path().join("project.json");
    // Attempt 2 skips everything; attempt 3 is forced and fails at stage 4
    // (a directory where RenderPlan.json goes).
    ws.run_ok(&config, &[]);
    let plan = artifact_file(&ws, &run, "RenderPlan");
    std::fs::remove_file(&plan).unwrap();
    std::fs::create_dir_all(plan.join("x")).unwrap();
    assert_eq!(ws.run_output(&config, &["--force"]).status.code(), Some(5));

    let doc = prov(&ws, &run);
    assert_eq!(violations(&prov_validator(), &doc), "", "{doc:#}");
    let activities = ids_in(&doc, "activity");
    assert_eq!(activities.len(), 5 + 5 + 4, "{activities:?}");
    let failed = &doc["activity"][format!("orch:execution/lighthouse/{run}/attempt-3/stage-4")];
    assert_eq!(failed["orch:status"], "failed");
    assert!(
        failed["orch:error"]
            .as_str()
            .unwrap()
            .contains("RenderPlan.json")
    );
    let skipped = &doc["activity"][format!("orch:execution/lighthouse/{run}/attempt-2/stage-5")];
    assert_eq!(skipped["orch:status"], "skipped");

    // Every relation names a declared entity, activity or agent.
    let declared: BTreeSet<String> = ["entity", "activity", "agent"]
        .iter()
        .flat_map(|s| ids_in(&doc, s))
        .collect();
    for section in [
        "used",
        "wasGeneratedBy",
        "wasDerivedFrom",
        "wasAssociatedWith",
    ] {
        for r in doc[section].as_object().unwrap().values() {
            for (k, v) in r.as_object().unwrap() {
                if [
                    "prov:entity",
                    "prov:activity",
                    "prov:agent",
                    "prov:generatedEntity",
                    "prov:usedEntity",
                ]
                .contains(&k.as_str())
                {
                    assert!(
                        declared.contains(v.as_str().unwrap()),
                        "{section}: {v} undeclared"
                    );
                }
            }
        }
    }
    // An artifact is generated by the execution that wrote it: attempt 3
    // executed Script again but reproduced its bytes, so it kept attempt
    // 1's file and record (attempt 2 only skipped).
    let generated_by: BTreeMap<String, String> = doc["wasGeneratedBy"]
        .as_object()
        .unwrap()
        .values()
        .map(|r| {
            (
                r["prov:entity"].as_str().unwrap().to_string(),
                r["prov:activity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let script = format!(
        "orch:artifact/{}",
        sha256_file(&artifact_file(&ws, &run, "Script"))
    );
    assert_eq!(
        generated_by[&script],
        format!("orch:execution/lighthouse/{run}/attempt-1/stage-1")
    );
}

// -------------------------------------------------------------- OpenLineage

const CORE_ID: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json";

/// Facet key -> the vendored schema file that defines it.
const RUN_FACETS: [(&str, &str); 4] = [
    ("parent", "openlineage/facets/ParentRunFacet.json"),
    (
        "processing_engine",
        "openlineage/facets/ProcessingEngineRunFacet.json",
    ),
    (
        "errorMessage",
        "openlineage/facets/ErrorMessageRunFacet.json",
    ),
    (
        "orchestrator_execution",
        "openlineage/orchestrator/OrchestratorExecutionRunFacet.json",
    ),
];
const DATASET_FACETS: [(&str, &str); 1] = [(
    "orchestrator_sha256",
    "openlineage/orchestrator/OrchestratorSha256DatasetFacet.json",
)];

/// Validators for the core spec and each facet, resolving every `$ref`
/// from the vendored files (nothing is fetched), with `format` checked.
struct OpenLineage {
    /// The whole core document (`oneOf` RunEvent/DatasetEvent/JobEvent).
    core: jsonschema::Validator,
    run_event: jsonschema::Validator,
    /// Facet key -> (validator of `{key: facet}`, the `_schemaURL` the facet
    /// must carry).
    facets: BTreeMap<&'static str, (jsonschema::Validator, String)>,
}

impl OpenLineage {
    fn load() -> OpenLineage {
        let mut docs = vec![(
            CORE_ID.to_string(),
            schema_file("openlineage/OpenLineage.json"),
        )];
        for (_, file) in RUN_FACETS.iter().chain(&DATASET_FACETS) {
            let doc = schema_file(file);
            docs.push((doc["$id"].as_str().unwrap().to_string(), doc));
        }
        let registry = jsonschema::Registry::new()
            .extend(docs.clone())
            .unwrap()
            .prepare()
            .unwrap();
        let build = |schema: Value| {
            jsonschema::options()
                .with_registry(&registry)
                .should_validate_formats(true)
                .build(&schema)
                .unwrap()
        };
        let mut facets = BTreeMap::new();
        for (key, file) in RUN_FACETS.iter().chain(&DATASET_FACETS) {
            let doc = schema_file(file);
            let id = doc["$id"].as_str().unwrap().to_string();
            // The facet's definition, as the file's top level names it.
            let def = doc["properties"][key]["$ref"].as_str().unwrap();
            facets.insert(*key, (build(json!({"$ref": id})), format!("{id}{def}")));
        }
        OpenLineage {
            core: build(json!({"$ref": CORE_ID})),
            run_event: build(json!({"$ref": format!("{CORE_ID}#/$defs/RunEvent")})),
            facets,
        }
    }

    /// Every violation of the core schema and of each facet's own schema.
    /// A facet no vendored schema covers is itself a violation.
    fn check(&self, event: &Value) -> String {
        let mut out = violations(&self.core, event) + &violations(&self.run_event, event);
        let mut facet_maps = vec![&event["run"]["facets"]];
        for side in ["inputs", "outputs"] {
            for d in event[side].as_array().into_iter().flatten() {
                facet_maps.push(&d["facets"]);
            }
        }
        for map in facet_maps {
            for (key, facet) in map.as_object().into_iter().flatten() {
                let Some((validator, url)) = self.facets.get(key.as_str()) else {
                    out.push_str(&format!("facet `{key}` has no vendored schema\n"));
                    continue;
                };
                out.push_str(&violations(validator, &json!({ key: facet })));
                if facet["_schemaURL"] != *url {
                    out.push_str(&format!("facet `{key}`: _schemaURL is not {url}\n"));
                }
            }
        }
        out
    }
}

#[test]
fn openlineage_events_pass_the_published_schemas() {
    let (ws, summary) = example_run();
    let ol = OpenLineage::load();
    let events = events(&ws, &[&run_id(&summary)]);
    assert_eq!(events.len(), 10);
    for e in &events {
        assert_eq!(ol.check(e), "", "{e:#}");
    }

    // The checks bite: each of these breaks an event.
    let e = &events[1];
    let mut bad_id = e.clone();
    bad_id["run"]["runId"] = "run-1".into();
    assert!(ol.check(&bad_id).contains("uuid"), "{}", ol.check(&bad_id));
    let mut no_schema_url = e.clone();
    no_schema_url.as_object_mut().unwrap().remove("schemaURL");
    assert_ne!(ol.check(&no_schema_url), "");
    let mut no_producer = e.clone();
    no_producer["outputs"][0]["facets"]["orchestrator_sha256"]
        .as_object_mut()
        .unwrap()
        .remove("_producer");
    assert_ne!(ol.check(&no_producer), "");
    let mut bad_sha = e.clone();
    bad_sha["outputs"][0]["facets"]["orchestrator_sha256"]["sha256"] = "XYZ".into();
    assert_ne!(ol.check(&bad_sha), "");
    let mut unknown_facet = e.clone();
    unknown_facet["run"]["facets"]["mine"] =
        json!({"_producer": "https://x", "_schemaURL": "https://x"});
    assert_ne!(ol.check(&unknown_facet), "");
}

#[test]
fn openlineage_events_describe_each_stage_execution() {
    let (ws, summary) = example_run();
    let run = run_id(&summary);
    let events = events(&ws, &[&run]);
    let stages = summary["stages"].as_array().unwrap();
    let mut run_ids = BTreeSet::new();
    for (i, pair) in events.chunks(2).enumerate() {
        let (start, end) = (&pair[0], &pair[1]);
        let s = &stages[i];
        assert_eq!(start["eventType"], "START");
        assert_eq!(end["eventType"], "COMPLETE");
        assert_eq!(start["eventTime"], s["started_at"]);
        assert_eq!(end["eventTime"], s["finished_at"]);
        for e in [start, end] {
            assert_eq!(
                e["job"],
                json!({"namespace": "orchestrator", "name": s["name"]})
            );
            assert_eq!(
                e["producer"],
                format!("https://orchestrator.local/orchestrator/{VERSION}")
            );
            assert_eq!(
                e["schemaURL"],
                "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
            );
            assert_eq!(e["run"]["facets"]["processing_engine"]["version"], VERSION);
            assert_eq!(e["run"]["facets"]["parent"]["job"]["name"], "lighthouse");
        }
        assert_eq!(start["run"]["runId"], end["run"]["runId"]);
        run_ids.insert(start["run"]["runId"].as_str().unwrap().to_string());

        // Outputs: the stage's artifact, named by path, with the file's hash.
        let t = TYPES[i];
        let file = artifact_file(&ws, &run, t);
        assert_eq!(
            end["outputs"],
            json!([{
                "namespace": "orchestrator",
                "name": format!("lighthouse/{run}/{t}.json"),
                "facets": {"orchestrator_sha256": {
                    "_producer": format!("https://orchestrator.local/orchestrator/{VERSION}"),
                    "_schemaURL": "https://orchestrator.local/schemas/openlineage/facets/1-0-0/OrchestratorSha256DatasetFacet.json#/$defs/OrchestratorSha256DatasetFacet",
                    "artifactType": t,
                    "sha256": sha256_file(&file),
                    "sizeBytes": std::fs::metadata(&file).unwrap().len(),
                }},
            }])
        );
        // Inputs: the stage's parents, by path and hash.
        let inputs: BTreeSet<(String, String)> = end["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["name"].as_str().unwrap().to_string(),
                    d["facets"]["orchestrator_sha256"]["sha256"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        let parents: BTreeSet<(String, String)> = STAGE_EDGES
            .iter()
            .filter(|(c, _)| *c == t)
            .map(|(_, p)| {
                (
                    format!("lighthouse/{run}/{p}.json"),
                    sha256_file(&artifact_file(&ws, &run, p)),
                )
            })
            .collect();
        assert_eq!(inputs, parents, "{t}");
    }
    // One run per execution, all under the same parent (the attempt).
    assert_eq!(run_ids.len(), 5);
    let parents: BTreeSet<String> = events
        .iter()
        .map(|e| {
            e["run"]["facets"]["parent"]["run"]["runId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(parents.len(), 1);
    assert!(run_ids.is_disjoint(&parents));
}

#[test]
fn openlineage_export_is_stable_and_marks_skips_and_failures() {
    let (ws, summary) = example_run();
    let run = run_id(&summary);
    let first = export_ok(&ws, &["--format", "openlineage", &run]);
    assert_eq!(first, export_ok(&ws, &["--format", "openlineage", &run]));

    let config = ws.path().join("project.json");
    ws.run_ok(&config, &[]);
    let plan = artifact_file(&ws, &run, "RenderPlan");
    std::fs::remove_file(&plan).unwrap();
    std::fs::create_dir_all(plan.join("x")).unwrap();
    assert_eq!(ws.run_output(&config, &["--force"]).status.code(), Some(5));

    let ol = OpenLineage::load();
    let events = events(&ws, &["--namespace", "studio.films", &run]);
    for e in &events {
        assert_eq!(ol.check(e), "", "{e:#}");
        assert_eq!(e["job"]["namespace"], "studio.films");
    }
    // Attempt 1's events are unchanged by the later attempts.
    let again: Vec<Value> = String::from_utf8(first)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events[..10]
            .iter()
            .map(|e| &e["run"]["runId"])
            .collect::<Vec<_>>(),
        again.iter().map(|e| &e["run"]["runId"]).collect::<Vec<_>>()
    );
    let kinds: Vec<(u64, u64, &str, &str)> = events
        .iter()
        .map(|e| {
            let x = &e["run"]["facets"]["orchestrator_execution"];
            (
                x["attempt"].as_u64().unwrap(),
                x["stage"].as_u64().unwrap(),
                x["status"].as_str().unwrap(),
                e["eventType"].as_str().unwrap(),
            )
        })
        .collect();
    let mut expected = Vec::new();
    for (attempt, statuses) in [
        (1, vec!["executed"; 5]),
        (2, vec!["skipped"; 5]),
        (3, vec!["executed", "executed", "executed", "failed"]),
    ] {
        for (i, status) in statuses.into_iter().enumerate() {
            let end = if status == "failed" {
                "FAIL"
            } else {
                "COMPLETE"
            };
            expected.push((attempt, i as u64 + 1, status, "START"));
            expected.push((attempt, i as u64 + 1, status, end));
        }
    }
    assert_eq!(kinds, expected);
    let fail = events.last().unwrap();
    let error = &fail["run"]["facets"]["errorMessage"];
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("RenderPlan.json"),
        "{error}"
    );
    assert_eq!(error["programmingLanguage"], "RUST");
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| e["run"]["facets"].get("errorMessage").is_none())
    );
    // A failed stage wrote nothing.
    assert_eq!(fail["outputs"], json!([]));
    // Three attempts, three parents.
    let parents: BTreeSet<String> = events
        .iter()
        .map(|e| {
            e["run"]["facets"]["parent"]["run"]["runId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(parents.len(), 3);
}

// ------------------------------------------------------ output and errors

#[test]
fn output_file_is_written_whole_and_stdout_stays_empty() {
    let (ws, summary) = example_run();
    let run = run_id(&summary);
    let stdout = export_ok(&ws, &["--format", "prov", &run]);
    let out = export(&ws, &["--format", "prov", &run, "--output", "prov.json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read(ws.path().join("prov.json")).unwrap(), stdout);
    // Overwriting replaces it, leaving no temporary file beside it.
    let out = export(&ws, &["--format", "openlineage", &run, "-o", "prov.json"]);
    assert!(out.status.success());
    let text = std::fs::read_to_string(ws.path().join("prov.json")).unwrap();
    assert_eq!(text.lines().count(), 10);
    assert!(
        !ws.entries().iter().any(|n| n.starts_with(".tmp-")),
        "{:?}",
        ws.entries()
    );

    // A directory in the way: exit 5, one error line naming it.
    std::fs::create_dir(ws.path().join("taken")).unwrap();
    let out = export(&ws, &["--format", "prov", &run, "-o", "taken"]);
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.contains("taken"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_run_prefix_resolves_and_bad_input_is_a_usage_error() {
    let (ws, summary) = example_run();
    let run = run_id(&summary);
    let by_prefix: Value =
        serde_json::from_slice(&export_ok(&ws, &["--format", "prov", &run[..4]])).unwrap();
    assert_eq!(by_prefix, prov(&ws, &run));

    let err = assert_usage_error(&export(&ws, &["--format", "prov", "nosuchrun"]));
    assert!(err.contains("nosuchrun") && err.contains("hint: "), "{err}");
    let err = assert_usage_error(&export(
        &ws,
        &["--format", "prov", "--namespace", "x", &run],
    ));
    assert!(err.contains("--namespace"), "{err}");
    assert_usage_error(&export(
        &ws,
        &["--format", "openlineage", "--namespace", " ", &run],
    ));
    assert_eq!(
        export(&ws, &["--format", "xml", &run]).status.code(),
        Some(2)
    );
    let empty = Workspace::new();
    let err = assert_usage_error(&export(&empty, &["--format", "prov", "abc"]));
    // A SQLite registry is made by the first run; a PostgreSQL one is
    // there, migrated and empty.
    let missing = if common::postgres_pass() {
        "no run matches `abc`"
    } else {
        "no registry"
    };
    assert!(err.contains(missing), "{err}");
}

/// Make stage 5 of the run look like a process was killed while running
/// it: the row `running` with no end, the run `running`.
fn leave_stage_5_running(ws: &Workspace, run: &str) {
    ws.registry_exec(&format!(
        "UPDATE stage_executions SET status = 'running', finished_at = NULL,
             duration_ms = NULL, output_sha256 = NULL, error = NULL
         WHERE run_id = '{run}' AND stage = 5;
         UPDATE runs SET status = 'running', finished_at = NULL WHERE run_id = '{run}';"
    ));
}

#[test]
fn an_interrupted_stage_aborts_and_a_live_one_has_only_its_start() {
    let (ws, summary) = example_run();
    let run = run_id(&summary);
    leave_stage_5_running(&ws, &run);
    let stage_5 = &summary["stages"][4];

    // No process holds the run: stage 5 was interrupted.
    let ol = OpenLineage::load();
    let events = events(&ws, &[&run]);
    assert_eq!(events.len(), 10);
    for e in &events {
        assert_eq!(ol.check(e), "", "{e:#}");
    }
    let abort = &events[9];
    assert_eq!(abort["eventType"], "ABORT");
    assert_eq!(abort["eventTime"], stage_5["started_at"]);
    assert_eq!(abort["outputs"], json!([]));
    assert_eq!(
        abort["run"]["facets"]["orchestrator_execution"]["status"],
        "interrupted"
    );
    let doc = prov(&ws, &run);
    assert_eq!(violations(&prov_validator(), &doc), "");
    let activity = &doc["activity"][format!("orch:execution/lighthouse/{run}/attempt-1/stage-5")];
    assert_eq!(activity["orch:status"], "interrupted");
    assert_eq!(activity["prov:startTime"], stage_5["started_at"]);
    assert!(activity.get("prov:endTime").is_none(), "{activity}");

    // A live process holds it: stage 5 is running, with only its START, and
    // stderr says the export is partial.
    let _held = ws.hold_live("lighthouse", &run);
    let out = export(&ws, &["--format", "openlineage", &run]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in progress"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 9);
    assert_eq!(events[8]["eventType"], "START");
    assert_eq!(events[8]["job"]["name"], stage_5["name"]);
    assert_eq!(
        events[8]["run"]["facets"]["orchestrator_execution"]["status"],
        "running"
    );
}

/// Every `wasGeneratedBy` of `doc`: (activity id, time if stated); each
/// stated time falls within its activity.
fn generations_within_their_activities(doc: &Value) -> Vec<(String, Option<String>)> {
    doc["wasGeneratedBy"]
        .as_object()
        .unwrap()
        .values()
        .map(|g| {
            let activity = g["prov:activity"].as_str().unwrap().to_string();
            let time = g["prov:time"].as_str().map(str::to_string);
            if let Some(t) = &time {
                let a = &doc["activity"][&activity];
                let start = a["prov:startTime"].as_str().unwrap();
                assert!(
                    start <= t.as_str(),
                    "{activity}: made at {t}, started {start}"
                );
                if let Some(end) = a["prov:endTime"].as_str() {
                    assert!(t.as_str() <= end, "{activity}: made at {t}, ended {end}");
                }
            }
            (activity, time)
        })
        .collect()
}

#[test]
fn prov_after_reindexing_a_reproducing_force_states_no_time_outside_an_activity() {
    let (ws, summary) = example_run();
    let run = run_id(&summary);
    std::thread::sleep(std::time::Duration::from_millis(20));
    ws.run_ok(&ws.path().join("project.json"), &["--force"]);
    // Reindex keeps each run's latest attempt only: the executions that
    // made the kept bytes are gone, and the forced ones started after.
    let out = ws.cmd().args(["reindex"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = prov(&ws, &run);
    assert_eq!(violations(&prov_validator(), &doc), "", "{doc:#}");
    let generations = generations_within_their_activities(&doc);
    assert_eq!(generations.len(), 5);
    for (activity, time) in generations {
        assert!(activity.contains("/attempt-2/"), "{activity}");
        assert_eq!(time, None, "{activity}");
    }
}

#[test]
fn prov_after_a_reproducing_force_credits_the_execution_that_wrote_the_bytes() {
    let (ws, summary) = example_run();
    let run = run_id(&summary);
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Every stage executes again and reproduces its bytes: the files, and
    // their records' created_at, stay as attempt 1 made them.
    ws.run_ok(&ws.path().join("project.json"), &["--force"]);

    let doc = prov(&ws, &run);
    assert_eq!(violations(&prov_validator(), &doc), "", "{doc:#}");
    let generations = doc["wasGeneratedBy"].as_object().unwrap();
    assert_eq!(generations.len(), 5);
    for g in generations.values() {
        let activity = g["prov:activity"].as_str().unwrap();
        assert!(activity.contains("/attempt-1/"), "{activity}");
        let a = &doc["activity"][activity];
        let time = g["prov:time"].as_str().unwrap();
        let (start, end) = (
            a["prov:startTime"].as_str().unwrap(),
            a["prov:endTime"].as_str().unwrap(),
        );
        assert!(start <= time && time <= end, "{start} <= {time} <= {end}");
    }
}

#[test]
fn an_export_over_an_artifact_or_the_registry_is_refused_and_nothing_is_written() {
    let (ws, summary) = example_run();
    let run = run_id(&summary);
    let script = ws.run_dir("lighthouse", &run).join("Script.json");
    let script_sha = common::sha256_file(&script);
    // The registry file, where there is one.
    let db_sha = (!common::postgres_pass()).then(|| common::sha256_file(&ws.db()));
    for dest in [
        format!("artifacts/lighthouse/{run}/Script.json"),
        "artifacts/registry.db".to_string(),
        "artifacts/registry.db.lock".to_string(),
        "./artifacts/../artifacts/prov.json".to_string(),
    ] {
        let out = export(&ws, &["--format", "prov", &run, "--output", &dest]);
        let err = assert_usage_error(&out);
        assert!(err.contains(&format!("`{dest}`")), "{err}");
    }
    assert_eq!(common::sha256_file(&script), script_sha);
    if let Some(db_sha) = db_sha {
        assert_eq!(common::sha256_file(&ws.db()), db_sha);
    }
    assert!(!ws.artifacts().join("prov.json").exists());
    // A symlink at the output is neither followed nor replaced.
    std::fs::write(ws.path().join("keep.txt"), b"keep").unwrap();
    std::os::unix::fs::symlink("keep.txt", ws.path().join("prov.json")).unwrap();
    let out = export(&ws, &["--format", "prov", &run, "--output", "prov.json"]);
    let err = assert_usage_error(&out);
    assert!(err.contains("symlink"), "{err}");
    assert_eq!(std::fs::read(ws.path().join("keep.txt")).unwrap(), b"keep");
}
