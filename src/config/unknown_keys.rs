//! Keys of a config that the Project schema does not know.
//!
//! Unknown keys stay legal: a config written for a newer orchestrator must
//! still run here, and they are part of the config's hash, so of its run id.
//! But a misspelled `"widht"` silently running at the default width is the
//! commonest config mistake there is, so each unknown key is reported (and
//! `--strict` refuses them), with the known key it most likely meant.

use serde_json::Value;

/// A key the schema does not define, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// JSON pointer to the key (`/render/widht`).
    pub pointer: String,
    /// Dotted path (`render.widht`), as `--set` takes it.
    pub dotted: String,
    /// The known key at the same place that it most likely meant.
    pub suggestion: Option<String>,
}

impl UnknownKey {
    /// `unknown key `render.widht` (did you mean `width`?)`.
    pub fn describe(&self) -> String {
        match &self.suggestion {
            Some(s) => format!("unknown key `{}` (did you mean `{s}`?)", self.dotted),
            None => format!("unknown key `{}`", self.dotted),
        }
    }
}

/// Every key of `config` that `schema` (draft-07, `properties` and array
/// `items` followed) does not define, in document order of the schema walk
/// (object keys sorted, as `serde_json::Map` keeps them).
pub fn unknown_keys(schema: &Value, config: &Value) -> Vec<UnknownKey> {
    let mut found = Vec::new();
    walk(schema, config, &mut Vec::new(), &mut found);
    found
}

fn walk(schema: &Value, value: &Value, path: &mut Vec<String>, found: &mut Vec<UnknownKey>) {
    match value {
        Value::Object(map) => {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            for (key, child) in map {
                path.push(key.clone());
                match properties.get(key) {
                    Some(child_schema) => walk(child_schema, child, path, found),
                    // Both are shown on a terminal: a key is text anyone
                    // may write, so its control characters are escaped.
                    None => found.push(UnknownKey {
                        pointer: escaped(&pointer(path)),
                        dotted: escaped(&path.join(".")),
                        suggestion: closest(key, properties.keys().map(String::as_str)),
                    }),
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else {
                return;
            };
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                walk(item_schema, item, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}

/// `text` with its control characters (ESC, BEL…) escaped.
fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn pointer(path: &[String]) -> String {
    path.iter()
        .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// The known key closest to `key`, if it is close enough to be a slip:
/// the same letters in another case, or within a small edit distance
/// (Damerau: a swapped pair counts once) for its length.
pub fn closest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    let lower = key.to_lowercase();
    let limit = match key.chars().count() {
        0..=3 => 1,
        4..=7 => 2,
        _ => 3,
    };
    known
        .map(|k| (strsim::damerau_levenshtein(&lower, &k.to_lowercase()), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, k)| (*d, *k))
        .map(|(_, k)| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        serde_json::from_str(crate::schema::SCHEMA_SOURCES[0].1).unwrap()
    }

    #[test]
    fn misspelled_keys_are_found_with_what_they_meant() {
        let config = json!({
            "project_id": "p", "title": "t", "seed": 1, "scene_count": 1,
            "charcters": [],
            "render": {"widht": 3840, "fps": 24},
            "locations": [{"name": "x", "descripton": "y"}],
            "x_studio_note": "kept for a later version"
        });
        let found: Vec<String> = unknown_keys(&schema(), &config)
            .iter()
            .map(UnknownKey::describe)
            .collect();
        assert_eq!(
            found,
            [
                "unknown key `charcters` (did you mean `characters`?)",
                "unknown key `locations.0.descripton` (did you mean `description`?)",
                "unknown key `render.widht` (did you mean `width`?)",
                "unknown key `x_studio_note`",
            ]
        );
    }

    #[test]
    fn a_known_config_has_no_unknown_keys() {
        let example: Value =
            serde_json::from_str(include_str!("../../examples/phase0/project.json")).unwrap();
        assert_eq!(unknown_keys(&schema(), &example), []);
    }

    #[test]
    fn closest_allows_case_and_short_slips_only() {
        let known = ["width", "height", "fps"];
        assert_eq!(closest("Width", known.into_iter()), Some("width".into()));
        assert_eq!(closest("fsp", known.into_iter()), Some("fps".into()));
        assert_eq!(closest("depth", known.into_iter()), None);
    }
}
