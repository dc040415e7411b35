//! `run --set KEY=VALUE`: config values overridden by dotted path without
//! editing the file (`--set seed=1978 --set render.width=3840`).
//!
//! The value is JSON when it parses as JSON (under the same strict rules as
//! the file: no duplicate keys, no unsafe integers, bounded nesting) and a
//! string otherwise, so `--set title=Storm` needs no quotes while
//! `--set render.fps=24` is the number 24. The config after every override
//! is what is validated, hashed and recorded: a run with `--set seed=1978`
//! is exactly the run of a file that says `"seed": 1978`.

use serde_json::{Map, Value};

use super::json;

/// One `--set KEY=VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// What the user typed, for messages.
    pub text: String,
    /// The dotted path split at dots: object keys, or array indexes where
    /// the config has an array.
    pub path: Vec<String>,
    pub value: Value,
}

/// Parse `KEY=VALUE` (the clap value parser for `--set`).
pub fn parse(text: &str) -> Result<Override, String> {
    let (key, raw) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE (e.g. `--set seed=1978`)"))?;
    let path: Vec<String> = key.split('.').map(str::to_string).collect();
    // A file cannot nest deeper than this, and neither may a path: every
    // level is a recursion in applying, hashing and freeing the config, and
    // a path of tens of thousands of dots overflowed the stack.
    if path.len() > json::MAX_NESTING {
        return Err(format!(
            "`{}` is nested deeper than {} levels; a project config needs a handful",
            json::shorten(key),
            json::MAX_NESTING
        ));
    }
    if path.iter().any(String::is_empty) {
        return Err(format!(
            "`{key}` is not a dotted path of config keys (e.g. `render.width`)"
        ));
    }
    let value = match json::parse_strict(raw.as_bytes()) {
        Ok(v) => v,
        // Not JSON (or JSON this tool refuses, such as a huge integer):
        // the text itself, as a string.
        Err(_) => Value::String(raw.to_string()),
    };
    Ok(Override {
        text: text.to_string(),
        path,
        value,
    })
}

/// Apply `overrides` to `config` in order. Objects missing on the way are
/// created (`--set render.width=3840` on a config without `render`); a
/// path through a value that is neither an object nor an array, or past
/// the end of an array, is an error naming the override.
pub fn apply(config: &mut Value, overrides: &[Override]) -> Result<(), String> {
    for o in overrides {
        set(config, &o.path, o.value.clone()).map_err(|why| format!("--set {}: {why}", o.text))?;
    }
    Ok(())
}

fn set(node: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return Ok(());
    };
    match node {
        Value::Object(map) => {
            let child = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            set(child, rest, value)
        }
        Value::Array(items) => {
            let len = items.len();
            let i: usize = first
                .parse()
                .map_err(|_| format!("`{first}` is not an index into an array"))?;
            let child = items
                .get_mut(i)
                .ok_or_else(|| format!("index {i} is past the end of an array of {len}"))?;
            set(child, rest, value)
        }
        other => Err(format!(
            "`{first}` cannot be set inside {}",
            super::kind_of(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_json_when_they_parse_and_strings_otherwise() {
        let mut config = json!({"seed": 1, "title": "t", "characters": [{"name": "A"}]});
        let overrides = [
            "seed=1978",
            "title=Director's Cut",
            "render.width=3840",
            "characters.0.name=\"Mara\"",
            "logline=null",
        ]
        .map(|t| parse(t).unwrap());
        apply(&mut config, &overrides).unwrap();
        assert_eq!(
            config,
            json!({
                "seed": 1978, "title": "Director's Cut", "render": {"width": 3840},
                "characters": [{"name": "Mara"}], "logline": null
            })
        );
    }

    #[test]
    fn bad_overrides_are_refused_with_the_reason() {
        assert!(parse("seed").unwrap_err().contains("KEY=VALUE"));
        let deep = vec!["a"; json::MAX_NESTING + 1].join(".");
        assert!(
            parse(&format!("{deep}=1"))
                .unwrap_err()
                .contains("nested deeper than")
        );
        let deepest = vec!["a"; json::MAX_NESTING].join(".");
        assert!(parse(&format!("{deepest}=1")).is_ok());
        assert!(
            parse("render..width=1")
                .unwrap_err()
                .contains("dotted path")
        );
        let mut config = json!({"seed": 1, "characters": []});
        let err = apply(&mut config, &[parse("seed.x=1").unwrap()]).unwrap_err();
        assert_eq!(err, "--set seed.x=1: `x` cannot be set inside a number");
        let err = apply(&mut config, &[parse("characters.0.name=A").unwrap()]).unwrap_err();
        assert!(err.contains("past the end of an array of 0"), "{err}");
    }
}
