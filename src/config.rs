//! The project config: loading, validation, and the run identity derived
//! from it.
//!
//! A config is checked completely (readable, JSON, schema-valid) before the
//! pipeline writes anything. Its identity is the sha256 of its RFC 8785
//! canonical form, so key order and whitespace never change a run id while
//! any changed value — including unknown, forward-compatible fields — does.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::artifact::canonical::{jcs, sha256_hex};
use crate::error::{Error, Result};
use crate::schema;

/// Allowed shape of project and run ids: safe as a directory name on every
/// filesystem and in a shell, and never mistaken for a path.
pub const ID_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProjectConfig {
    pub project_id: String,
    pub title: String,
    pub seed: u64,
    pub scene_count: u32,
    #[serde(default)]
    pub logline: Option<String>,
    #[serde(default)]
    pub genre: Option<String>,
    #[serde(default)]
    pub characters: Vec<NamedEntry>,
    #[serde(default)]
    pub locations: Vec<NamedEntry>,
    #[serde(default)]
    pub render: RenderSettings,
}

/// A character or location as the user describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NamedEntry {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct RenderSettings {
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
}

fn default_width() -> u32 {
    1280
}
fn default_height() -> u32 {
    720
}
fn default_fps() -> u32 {
    24
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            width: default_width(),
            height: default_height(),
            fps: default_fps(),
        }
    }
}

/// A config that passed every check, with its identity.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub path: PathBuf,
    pub config: ProjectConfig,
    /// RFC 8785 canonical JSON of the file's value, unknown fields included.
    pub canonical_json: String,
    /// sha256 of `canonical_json`.
    pub config_hash: String,
}

impl LoadedConfig {
    /// First 16 hex characters of the config hash.
    pub fn default_run_id(&self) -> String {
        self.config_hash[..16].to_string()
    }
}

/// Read, parse and validate the project config at `path`.
pub fn load(path: &Path) -> Result<LoadedConfig> {
    let bytes = std::fs::read(path).map_err(|source| Error::ConfigUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let config_error = |location: String, message: String| Error::Config {
        path: path.to_path_buf(),
        location,
        message,
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        config_error(
            format!("line {}, column {}", e.line(), e.column()),
            strip_position(&e.to_string()),
        )
    })?;
    let violations = schema::validate("Project", &value)?;
    if let Some(first) = violations.first() {
        let more = match violations.len() - 1 {
            0 => String::new(),
            1 => " (and 1 more problem)".to_string(),
            n => format!(" (and {n} more problems)"),
        };
        return Err(config_error(
            format!("`{}`", first.pointer),
            format!("{}{more}", first.message),
        ));
    }
    let canonical_json = jcs(&value).map_err(|e| config_error("`/`".to_string(), e.to_string()))?;
    // Typed fields are read from the canonical form, not the parsed value:
    // draft-07 counts `24.0` as an integer, and RFC 8785 writes it as `24`,
    // so a schema-valid `"fps": 24.0` is read exactly as `24` (and has the
    // same run id) instead of failing as "expected u32" at `/`.
    let config: ProjectConfig = serde_json::from_str(&canonical_json)
        .map_err(|e| config_error("`/`".to_string(), strip_position(&e.to_string())))?;
    let config_hash = sha256_hex(canonical_json.as_bytes());
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        config,
        canonical_json,
        config_hash,
    })
}

/// serde_json appends " at line L column C"; the location is reported
/// separately, so drop it from the message.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Check a project or run id against [`ID_PATTERN`] without a regex engine.
pub fn is_valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    let ok_first = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok_rest = |b: &u8| ok_first(b) || *b == b'_' || *b == b'-';
    !bytes.is_empty() && bytes.len() <= 64 && ok_first(&bytes[0]) && bytes[1..].iter().all(ok_rest)
}

/// Refuse a `--run-id` that does not match [`ID_PATTERN`].
pub fn check_run_id(id: &str) -> Result<()> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(Error::usage_with_hint(
            format!("invalid run id `{id}`: it must match {ID_PATTERN}"),
            "use lowercase letters, digits, `-` and `_`, starting with a letter or digit (at most 64)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_pattern_accepts_and_refuses() {
        for ok in ["a", "my-run-001", "0_x", &"a".repeat(64)] {
            assert!(is_valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "a/b",
            "..",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn integral_float_reads_as_the_integer_with_the_same_hash() {
        let dir = tempfile::tempdir().unwrap();
        let load_text = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            load(&path).unwrap()
        };
        let a = load_text(
            "a.json",
            r#"{"project_id": "p", "title": "t", "seed": 7, "scene_count": 2}"#,
        );
        let b = load_text(
            "b.json",
            r#"{"project_id": "p", "title": "t", "seed": 7.0, "scene_count": 2.0}"#,
        );
        assert_eq!(b.config, a.config);
        assert_eq!(b.config_hash, a.config_hash);
    }

    #[test]
    fn strip_position_removes_serde_suffix() {
        assert_eq!(
            strip_position("expected `,` or `}` at line 3 column 5"),
            "expected `,` or `}`"
        );
    }
}
