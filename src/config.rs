//! The project config: loading, validation, and the run identity derived
//! from it.
//!
//! A config is checked completely (a regular file within
//! [`MAX_CONFIG_BYTES`], strict JSON as `json` defines it, an object,
//! schema-valid) before the pipeline writes anything. Its identity is the sha256 of its RFC 8785
//! canonical form, so key order and whitespace never change a run id while
//! any changed value — including unknown, forward-compatible fields — does.

pub mod frame_rate;
mod json;
pub mod overrides;
pub mod unknown_keys;

pub use frame_rate::FrameRate;
pub use json::{MAX_NESTING, MAX_SAFE_INTEGER};
pub use overrides::Override;
pub use unknown_keys::UnknownKey;

use std::io::Read;
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
    #[serde(default)]
    pub fps: FrameRate,
}

fn default_width() -> u32 {
    1280
}
fn default_height() -> u32 {
    720
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            width: default_width(),
            height: default_height(),
            fps: FrameRate::default(),
        }
    }
}

/// A config that passed every check, with its identity.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The file it was read from (for a config taken from the registry,
    /// the path recorded for it).
    pub path: PathBuf,
    /// Keys the schema does not define: legal, but most often a typo, so
    /// the caller warns about each one.
    pub unknown_keys: Vec<UnknownKey>,
    /// Where the config came from, as recorded with the run for display:
    /// the file's absolute path (symlinks not resolved), or what the
    /// caller named for a config not read from a file.
    pub source: String,
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

/// Largest config file accepted: 1 MiB. A real config is a few KiB; the
/// cap bounds the memory and time a wrong or hostile file can cost. The file
/// is read through this limit, never whole.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// How to read a config beyond its file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--set KEY=VALUE` overrides, applied in order before validation.
    pub overrides: Vec<Override>,
    /// Refuse unknown keys (exit 2) instead of reporting them.
    pub strict: bool,
}

/// Read, parse and validate the project config at `path`.
///
/// Refused, before anything is written: a path that is not a regular file
/// (a FIFO is never opened, so it cannot hang the command), a file over
/// [`MAX_CONFIG_BYTES`], and every document `json::parse_strict` refuses
/// (BOM, invalid UTF-8, trailing text, duplicate keys, deep nesting,
/// numbers a double cannot hold as written), then anything but an object,
/// then schema violations.
pub fn load(path: &Path) -> Result<LoadedConfig> {
    load_with(path, &LoadOptions::default())
}

/// [`load`], with `--set` overrides and `--strict`.
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<LoadedConfig> {
    let bytes = read_capped(path)?;
    let value = json::parse_strict(&bytes).map_err(|r| Error::Config {
        path: path.to_path_buf(),
        location: r.location,
        message: r.message,
    })?;
    let mut loaded = from_value(path, value, options)?;
    loaded.source = std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned();
    Ok(loaded)
}

/// Check a config already parsed (the file's, or one the registry
/// recorded for `run --from-run`) and derive its identity. `path` is only
/// shown in messages and recorded.
pub fn from_value(path: &Path, mut value: Value, options: &LoadOptions) -> Result<LoadedConfig> {
    let config_error = |location: String, message: String| Error::Config {
        path: path.to_path_buf(),
        location,
        message,
    };
    if !value.is_object() {
        return Err(config_error(
            "`/`".to_string(),
            format!(
                "expected a JSON object `{{ \"project_id\": …, … }}`, found {}",
                kind_of(&value)
            ),
        ));
    }
    overrides::apply(&mut value, &options.overrides)
        .map_err(|message| config_error("`/`".to_string(), message))?;
    let unknown_keys = unknown_keys::unknown_keys(&project_schema()?, &value);
    if options.strict
        && let Some(first) = unknown_keys.first()
    {
        let more = match unknown_keys.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more)"),
        };
        return Err(config_error(
            format!("`{}`", first.pointer),
            format!(
                "{}{more}; --strict refuses keys the schema does not define",
                first.describe()
            ),
        ));
    }
    let violations = schema::validate("Project", &value)?;
    if let Some(first) = violations.first() {
        let more = match violations.len() - 1 {
            0 => String::new(),
            1 => " (and 1 more problem)".to_string(),
            n => format!(" (and {n} more problems)"),
        };
        let message = if first.pointer == "/render/fps" {
            format!("fps must be {}", frame_rate::ACCEPTED)
        } else {
            shorten_message(&first.message, &value, &first.pointer)
        };
        return Err(config_error(
            format!("`{}`", first.pointer),
            format!("{message}{more}"),
        ));
    }
    refuse_duplicate_names(&value)
        .map_err(|(location, message)| config_error(location, message))?;
    if let Some(fps) = value.pointer("/render/fps") {
        // The schema admits any "N/D"; whether it is a rate at all (not
        // zero, at most 240) is the typed reading's to say, at this place.
        FrameRate::deserialize(fps)
            .map_err(|e| config_error("`/render/fps`".to_string(), e.to_string()))?;
    }
    let canonical_json = jcs(&value).map_err(|e| config_error("`/`".to_string(), e.to_string()))?;
    // Typed fields are read from the canonical form, not the parsed value:
    // draft-07 counts `24.0` as an integer, and RFC 8785 writes it as `24`,
    // so a schema-valid `"fps": 24.0` is read exactly as `24` (and has the
    // same run id) instead of failing as "expected u32" at `/`.
    let config: ProjectConfig = serde_json::from_str(&canonical_json)
        .map_err(|e| config_error("`/`".to_string(), strip_position(&e.to_string())))?;
    let config_hash = sha256_hex(canonical_json.as_bytes());
    let source = path.to_string_lossy().into_owned();
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        source,
        unknown_keys,
        config,
        canonical_json,
        config_hash,
    })
}

/// The Project schema as a document, for the unknown-key walk.
fn project_schema() -> Result<Value> {
    let (_, source) = schema::SCHEMA_SOURCES[0];
    serde_json::from_str(source)
        .map_err(|e| Error::Inconsistent(format!("schemas/Project.v1.json is not JSON: {e}")))
}

/// Two characters (or two locations) with one name would be one person in
/// the screenplay and two in the asset manifest; refuse, naming both places.
fn refuse_duplicate_names(config: &Value) -> std::result::Result<(), (String, String)> {
    for list in ["characters", "locations"] {
        let Some(entries) = config.get(list).and_then(Value::as_array) else {
            continue;
        };
        let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
        for (i, entry) in entries.iter().enumerate() {
            let Some(name) = entry.get("name").and_then(Value::as_str) else {
                continue;
            };
            let key = name.trim().to_lowercase();
            if let Some(first) = seen.get(&key) {
                return Err((
                    format!("`/{list}/{i}/name`"),
                    format!(
                        "\"{}\" is also the name of `/{list}/{first}/name`; give each of the \
                         {list} a distinct name",
                        json::shorten_to(name, 80)
                    ),
                ));
            }
            seen.insert(key, i);
        }
    }
    Ok(())
}

/// The file's bytes, at most [`MAX_CONFIG_BYTES`] of them. The type is
/// checked before opening (opening a FIFO for reading blocks until a writer
/// appears) and again on the opened file, in case the path was swapped in
/// between; the read goes through a limit in case the size lied (`/proc`
/// files report 0) or the file grows.
fn read_capped(path: &Path) -> Result<Vec<u8>> {
    let unreadable = |source| Error::ConfigUnreadable {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    refuse_non_regular(path, &meta)?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large(path, Some(meta.len())));
    }
    // Never waits on a FIFO swapped in since the check above.
    let file = crate::regular_file::open_following(path).map_err(unreadable)?;
    refuse_non_regular(path, &file.metadata().map_err(unreadable)?)?;
    match read_limited(file, MAX_CONFIG_BYTES).map_err(unreadable)? {
        Some(bytes) => Ok(bytes),
        None => Err(too_large(path, None)),
    }
}

/// Read `reader` to its end if that is at most `cap` bytes; `None` if it
/// goes past (after reading `cap + 1` bytes, never more).
fn read_limited(reader: impl Read, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= cap).then_some(bytes))
}

fn refuse_non_regular(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(());
    }
    let (what, hint) = if ft.is_dir() {
        (
            "a directory",
            "pass the project's JSON file, e.g. `--project <dir>/project.json`",
        )
    } else {
        (
            special_file_kind(&ft),
            "save the config to a regular file and pass its path",
        )
    };
    Err(Error::usage_with_hint(
        format!(
            "project config `{}` is {what}, not a regular file; it was not read",
            path.display()
        ),
        hint,
    ))
}

#[cfg(unix)]
fn special_file_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_file_kind(_ft: &std::fs::FileType) -> &'static str {
    "a special file"
}

fn too_large(path: &Path, size: Option<u64>) -> Error {
    let size = size.map_or_else(String::new, |n| format!(" ({n} bytes)"));
    Error::usage_with_hint(
        format!(
            "project config `{}` is larger than the 1 MiB ({MAX_CONFIG_BYTES} bytes) limit{size}; it was not read",
            path.display()
        ),
        "a project config is a few KiB of JSON; check that --project names the right file",
    )
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Schema messages quote the offending value; a long string is shown
/// shortened (with its length) so the error stays one readable line, and
/// any message is capped in case the quote is not found.
fn shorten_message(message: &str, value: &Value, pointer: &str) -> String {
    const MAX_CHARS: usize = 200;
    let instance = if pointer == "/" {
        Some(value)
    } else {
        value.pointer(pointer)
    };
    let mut message = message.to_string();
    if let Some(Value::String(s)) = instance {
        let n = s.chars().count();
        if n > 64
            && let Ok(quoted) = serde_json::to_string(s)
        {
            message = message.replace(
                &quoted,
                &format!("\"{}\" ({n} characters)", json::shorten(s)),
            );
        }
    }
    if message.chars().nth(MAX_CHARS).is_none() {
        return message;
    }
    let mut out: String = message.chars().take(MAX_CHARS).collect();
    out.push('…');
    out
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
        return Ok(());
    }
    // Control characters are shown escaped (a newline would break the
    // one-line error, an escape sequence would drive the terminal), and an
    // id of megabytes is cut; anything near the 64-character limit is
    // shown whole.
    let shown = format!("invalid run id `{}`", json::shorten_to(id, 100));
    Err(Error::usage_with_hint(
        format!("{shown}: it must match {ID_PATTERN}"),
        "use lowercase letters, digits, `-` and `_`, starting with a letter or digit (at most 64)",
    ))
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

    /// Write `text` as `name` in `dir` and load it as a config.
    fn load_text(dir: &Path, name: &str, text: &str) -> LoadedConfig {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        load(&path).unwrap()
    }

    #[test]
    fn integral_float_reads_as_the_integer_with_the_same_hash() {
        let dir = tempfile::tempdir().unwrap();
        let load_text = |name: &str, text: &str| load_text(dir.path(), name, text);
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
    fn read_limited_stops_after_cap_plus_one_byte() {
        // An endless reader: reading it whole would never return.
        let mut endless = std::io::repeat(b' ');
        assert_eq!(read_limited(&mut endless, 10).unwrap(), None);
        let exact = read_limited(&b"0123456789"[..], 10).unwrap();
        assert_eq!(exact.as_deref(), Some(&b"0123456789"[..]));
        assert_eq!(read_limited(&b"0123456789!"[..], 10).unwrap(), None);
    }

    #[test]
    fn negative_zero_reads_as_zero_with_the_same_hash() {
        let dir = tempfile::tempdir().unwrap();
        let load_text = |name: &str, text: &str| load_text(dir.path(), name, text);
        let a = load_text(
            "a.json",
            r#"{"project_id": "p", "title": "t", "seed": 0, "scene_count": 2}"#,
        );
        let b = load_text(
            "b.json",
            r#"{"project_id": "p", "title": "t", "seed": -0, "scene_count": 2}"#,
        );
        assert_eq!(b.config.seed, 0);
        assert_eq!(b.config_hash, a.config_hash);
    }

    #[test]
    fn a_long_string_is_shortened_in_a_schema_message() {
        let value = serde_json::json!({"project_id": "a".repeat(5000)});
        let message = format!("{:?} does not match \"^x$\"", "a".repeat(5000));
        let shown = shorten_message(&message, &value, "/project_id");
        assert!(
            shown.contains("(5000 characters) does not match"),
            "{shown}"
        );
        assert!(shown.chars().count() < 120, "{shown}");
    }

    #[test]
    fn strip_position_removes_serde_suffix() {
        assert_eq!(
            strip_position("expected `,` or `}` at line 3 column 5"),
            "expected `,` or `}`"
        );
    }
}
