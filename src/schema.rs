//! JSON Schema validation for the project config and every artifact type.
//!
//! The schemas in `schemas/` are compiled into the binary (so an installed
//! `orchestrator` needs no checkout) and compiled into validators once per
//! process. Validation returns every violation with its JSON pointer; the
//! caller decides how many to show.

use std::collections::BTreeMap;
use std::sync::LazyLock;

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

struct Compiled {
    id: String,
    validator: jsonschema::Validator,
}

static COMPILED: LazyLock<std::result::Result<BTreeMap<&'static str, Compiled>, String>> =
    LazyLock::new(compile_all);

fn compile_all() -> std::result::Result<BTreeMap<&'static str, Compiled>, String> {
    let mut out = BTreeMap::new();
    for (name, source) in SCHEMA_SOURCES {
        let doc: Value = serde_json::from_str(source)
            .map_err(|e| format!("schemas/{name}.v1.json is not JSON: {e}"))?;
        let id = doc
            .get("$id")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("schemas/{name}.v1.json has no $id"))?
            .to_string();
        let validator = jsonschema::draft7::new(&doc)
            .map_err(|e| format!("schemas/{name}.v1.json does not compile: {e}"))?;
        out.insert(name, Compiled { id, validator });
    }
    Ok(out)
}

fn compiled(name: &str) -> Result<&'static Compiled> {
    // Both are defects of this build, not of the user's input.
    let all = COMPILED
        .as_ref()
        .map_err(|e| Error::Inconsistent(e.clone()))?;
    all.get(name)
        .ok_or_else(|| Error::Inconsistent(format!("no schema named `{name}`")))
}

/// The `$id` of the named schema.
pub fn schema_id(name: &str) -> Result<&'static str> {
    Ok(compiled(name)?.id.as_str())
}

/// Every violation of the named schema by `instance`, in the validator's
/// order. Empty means valid.
pub fn validate(name: &str, instance: &Value) -> Result<Vec<Violation>> {
    let schema = compiled(name)?;
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
