//! JSON Schema validation for the project config and every artifact type.
//!
//! The schemas in `schemas/` are compiled into the binary (so an installed
//! `orchestrator` needs no checkout) and compiled into validators once per
//! process, each on first use. Validation returns every violation with its
//! JSON pointer; the caller decides how many to show.

use std::sync::{LazyLock, OnceLock};

use serde_json::Value;

use crate::error::{Error, Result};

/// The schema documents, by name, exactly as they are in `schemas/`.
pub const SCHEMA_SOURCES: [(&str, &str); 7] = [
    ("Project", include_str!("../schemas/Project.v1.json")),
    ("Script", include_str!("../schemas/Script.v1.json")),
    ("ShotList", include_str!("../schemas/ShotList.v1.json")),
    (
        "AssetManifest",
        include_str!("../schemas/AssetManifest.v1.json"),
    ),
    ("RenderPlan", include_str!("../schemas/RenderPlan.v1.json")),
    (
        "RenderOutput",
        include_str!("../schemas/RenderOutput.v1.json"),
    ),
    (
        "RenderPackage",
        include_str!("../schemas/RenderPackage.v1.json"),
    ),
];

/// One way an instance breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the instance (`/shots/3/duration_ms`); `/` for the root.
    pub pointer: String,
    pub message: String,
}

/// One schema, compiled on first use: a run that validates nothing but its
/// config (a no-op resume) compiles one schema, not seven.
struct Compiled {
    validator: jsonschema::Validator,
}

/// One slot per entry of [`SCHEMA_SOURCES`], in the same order.
static COMPILED: [OnceLock<std::result::Result<Compiled, String>>; SCHEMA_SOURCES.len()] =
    [const { OnceLock::new() }; SCHEMA_SOURCES.len()];

fn index_of(name: &str) -> Result<usize> {
    SCHEMA_SOURCES
        .iter()
        .position(|(n, _)| *n == name)
        // A defect of this build, not of the user's input.
        .ok_or_else(|| Error::Inconsistent(format!("no schema named `{name}`")))
}

fn compile(name: &str, source: &str) -> std::result::Result<Compiled, String> {
    let doc: Value = serde_json::from_str(source)
        .map_err(|e| format!("schemas/{name}.v1.json is not JSON: {e}"))?;
    // Every pattern in `schemas/` is a plain regular expression (no
    // look-around or back-references), which the `regex` engine compiles
    // faster than `fancy-regex` and matches in linear time.
    // One pattern cache for every schema: the id pattern most of them share
    // is compiled once per process, not once per schema.
    static PATTERNS: LazyLock<jsonschema::PatternCache> =
        LazyLock::new(jsonschema::PatternCache::new);
    let validator = jsonschema::draft7::options()
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .with_pattern_cache(PATTERNS.clone())
        .build(&doc)
        .map_err(|e| format!("schemas/{name}.v1.json does not compile: {e}"))?;
    Ok(Compiled { validator })
}

fn schema_id_of(doc: &Value) -> Option<String> {
    doc.get("$id").and_then(Value::as_str).map(str::to_string)
}

fn compiled(name: &str) -> Result<&'static Compiled> {
    let i = index_of(name)?;
    let (name, source) = SCHEMA_SOURCES[i];
    COMPILED[i]
        .get_or_init(|| compile(name, source))
        .as_ref()
        // A defect of this build, not of the user's input.
        .map_err(|e| Error::Inconsistent(e.clone()))
}

/// Compile the named schemas on a background thread, in order, so that a
/// run about to execute stages finds their validators ready instead of
/// compiling each one (about half a millisecond apiece) between computing
/// and writing. Validating a schema still being compiled waits for it;
/// one that fails to compile reports its error when used, as ever. A
/// thread that cannot be started changes nothing: each schema then compiles
/// on first use.
pub fn prepare(names: Vec<&'static str>) {
    let todo: Vec<usize> = names
        .into_iter()
        .filter_map(|n| index_of(n).ok())
        .filter(|&i| COMPILED[i].get().is_none())
        .collect();
    if todo.is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("compile-schemas".to_string())
        .spawn(move || {
            for i in todo {
                let (name, source) = SCHEMA_SOURCES[i];
                COMPILED[i].get_or_init(|| compile(name, source));
            }
        });
}

/// The `$id` of the named schema. Reads the schema document, but compiles
/// nothing: callers that only stamp meta records pay no validator.
pub fn schema_id(name: &str) -> Result<&'static str> {
    static IDS: [OnceLock<Option<String>>; SCHEMA_SOURCES.len()] =
        [const { OnceLock::new() }; SCHEMA_SOURCES.len()];
    let i = index_of(name)?;
    let (name, source) = SCHEMA_SOURCES[i];
    IDS[i]
        .get_or_init(|| {
            serde_json::from_str::<Value>(source)
                .ok()
                .as_ref()
                .and_then(schema_id_of)
        })
        .as_deref()
        .ok_or_else(|| Error::Inconsistent(format!("schemas/{name}.v1.json has no $id")))
}

/// Every violation of the named schema by `instance`, in the validator's
/// order. Empty means valid.
pub fn validate(name: &str, instance: &Value) -> Result<Vec<Violation>> {
    let schema = compiled(name)?;
    // The common case, a valid instance, takes the validator's fast path,
    // which builds no error values.
    if schema.validator.is_valid(instance) {
        return Ok(Vec::new());
    }
    Ok(schema
        .validator
        .iter_errors(instance)
        .map(|e| {
            let pointer = e.instance_path().as_str();
            // Objects and arrays are masked: a missing-field error on a
            // 10,000-scene script must not print the whole script.
            let message = if e.instance().is_object() || e.instance().is_array() {
                e.masked_with("the value").to_string()
            } else {
                e.to_string()
            };
            Violation {
                pointer: if pointer.is_empty() {
                    "/".to_string()
                } else {
                    pointer.to_string()
                },
                message,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_schema_compiles_and_has_an_id() {
        for (name, _) in SCHEMA_SOURCES {
            compiled(name).unwrap();
            let id = schema_id(name).unwrap();
            assert!(id.ends_with(&format!("{name}.v1.json")), "{name}: {id}");
        }
    }

    #[test]
    fn no_schema_accepts_an_empty_object() {
        for (name, _) in SCHEMA_SOURCES {
            let violations = validate(name, &json!({})).unwrap();
            assert!(!violations.is_empty(), "{name} accepts {{}}");
        }
    }

    #[test]
    fn missing_required_field_is_reported_at_root() {
        let v = validate(
            "Project",
            &json!({"title": "t", "seed": 1, "scene_count": 1}),
        )
        .unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].pointer, "/");
        assert!(v[0].message.contains("project_id"), "{}", v[0].message);
    }

    #[test]
    fn nested_violation_carries_its_pointer() {
        let v = validate(
            "Project",
            &json!({"project_id": "p", "title": "t", "seed": 1, "scene_count": 1,
                    "render": {"fps": "fast"}}),
        )
        .unwrap();
        assert_eq!(v[0].pointer, "/render/fps");
    }
}
