//! Strict reading of a config's bytes into a `serde_json::Value`.
//!
//! A config is identified by the hash of its RFC 8785 canonical form, so
//! anything that two readers (or two tools) could take to mean different
//! values is refused rather than guessed: a byte order mark or invalid
//! UTF-8, text after the value, a key that appears twice in one object
//! (serde_json's `Value` would silently keep the last), nesting past
//! [`MAX_NESTING`], and numbers that an IEEE 754 double (the only number
//! RFC 8785 knows) cannot hold as written. Every refusal carries a
//! `line L, column C` location (1-based, columns counted in bytes, as
//! serde_json counts them).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Deepest nesting of arrays and objects accepted. Half serde_json's own
/// recursion limit (127): the canonical config is embedded in
/// `run_summary.json` two levels down, and that file must stay readable by
/// every JSON parser that `reindex` or a user points at it.
pub const MAX_NESTING: usize = 64;

/// Largest integer magnitude kept exactly: 2^53 − 1, the I-JSON (RFC 7493)
/// interoperable range. RFC 8785 writes every number as a double, so larger
/// integers could collapse into their neighbours' run id.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a document was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `line L, column C`.
    pub location: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

/// Parse `bytes` as exactly one JSON value under the rules in the module
/// doc.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, Rejection> {
    check_encoding(bytes)?;
    // Cannot fail after `check_encoding`; keeps this function panic-free.
    let text = std::str::from_utf8(bytes).map_err(|e| invalid_utf8(bytes, e))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Seed(Pointer::Root)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| Rejection {
            location: format!("line {}, column {}", e.line(), e.column()),
            message: if comment_at(text, e.line(), e.column()) {
                "JSON has no comments: remove the `//` or `/* */` comment".to_string()
            } else {
                describe(&e)
            },
        })?;
    check_numbers(text)?;
    Ok(value)
}

fn check_encoding(bytes: &[u8]) -> Result<(), Rejection> {
    let at_start = |message: &str| Rejection {
        location: "line 1, column 1".to_string(),
        message: message.to_string(),
    };
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(at_start(
            "the file starts with a UTF-8 byte order mark (BOM); save it as UTF-8 without a BOM",
        ));
    }
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(at_start(
            "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8 without a BOM",
        ));
    }
    std::str::from_utf8(bytes)
        .map(|_| ())
        .map_err(|e| invalid_utf8(bytes, e))
}

fn invalid_utf8(bytes: &[u8], e: std::str::Utf8Error) -> Rejection {
    let at = e.valid_up_to();
    Rejection {
        location: position(bytes, at),
        message: format!(
            "not valid UTF-8 (byte 0x{:02x}); save the file as UTF-8",
            bytes.get(at).copied().unwrap_or(0)
        ),
    }
}

/// `line L, column C` of byte `offset`, both 1-based.
fn position(bytes: &[u8], offset: usize) -> String {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    format!("line {line}, column {}", before.len() - line_start + 1)
}

/// serde_json's message without its " at line L column C" suffix (the
/// location is reported separately), reworded where serde_json's words do
/// not say what to do.
fn describe(e: &serde_json::Error) -> String {
    let message = super::strip_position(&e.to_string());
    match message.as_str() {
        "recursion limit exceeded" | TOO_DEEP => format!(
            "nested deeper than {MAX_NESTING} levels of arrays and objects; a project config needs a handful"
        ),
        "trailing characters" => {
            "unexpected text after the end of the JSON value; a config is exactly one JSON object"
                .to_string()
        }
        "number out of range" => {
            "number out of range: larger than a JSON number (an IEEE 754 double, at most about 1.8e308) can hold"
                .to_string()
        }
        _ => message,
    }
}

/// Whether the parser stopped at a `//` or `/*` comment: serde_json's
/// column (1-based, in bytes) points at the character it could not take.
fn comment_at(text: &str, line: usize, column: usize) -> bool {
    let Some(source_line) = text.lines().nth(line.saturating_sub(1)) else {
        return false;
    };
    let at = column.saturating_sub(1);
    source_line
        .get(at..)
        .or_else(|| source_line.get(at.saturating_sub(1)..))
        .is_some_and(|rest| rest.starts_with("//") || rest.starts_with("/*"))
}

/// The visitor's own depth refusal, reworded by [`describe`] like
/// serde_json's.
const TOO_DEEP: &str = "too deep";

/// Where a value sits in the document, for messages. Built on the stack as
/// the parser descends, so an accepted document costs no allocation here.
#[derive(Clone, Copy)]
enum Pointer<'a> {
    Root,
    Key(&'a Pointer<'a>, &'a str),
    Index(&'a Pointer<'a>, usize),
}

impl Pointer<'_> {
    /// How many arrays and objects enclose the value at this pointer.
    fn depth(&self) -> usize {
        match self {
            Pointer::Root => 0,
            Pointer::Key(parent, _) | Pointer::Index(parent, _) => parent.depth() + 1,
        }
    }

    fn too_deep<E: de::Error>(&self) -> Result<(), E> {
        if self.depth() >= MAX_NESTING {
            return Err(E::custom(TOO_DEEP));
        }
        Ok(())
    }

    fn write_tokens(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pointer::Root => Ok(()),
            Pointer::Key(parent, key) => {
                parent.write_tokens(f)?;
                // RFC 6901 escaping; control characters shown escaped so the
                // message stays one line.
                let key = key.replace('~', "~0").replace('/', "~1");
                write!(f, "/{}", shorten(&key))
            }
            Pointer::Index(parent, i) => {
                parent.write_tokens(f)?;
                write!(f, "/{i}")
            }
        }
    }
}

/// The root is shown as `/`, as the schema messages show it.
impl fmt::Display for Pointer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pointer::Root => f.write_str("/"),
            _ => self.write_tokens(f),
        }
    }
}

/// `text` with control characters escaped and cut to a readable length, for
/// quoting user input inside a one-line message.
pub(super) fn shorten(text: &str) -> String {
    shorten_to(text, 64)
}

/// [`shorten`] with a length of the caller's choosing.
pub(super) fn shorten_to(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for c in text.chars().take(max_chars) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if text.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// Builds the same `Value` serde_json would, but refuses duplicate keys.
struct Seed<'a>(Pointer<'a>);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // What serde_json's own `Value` does; its parser never yields a
        // non-finite number (it reports "number out of range" instead).
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.too_deep()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Seed(Pointer::Index(&self.0, out.len())))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.too_deep()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                // Raised right after the second key is read, so serde_json
                // attaches that key's position.
                return Err(de::Error::custom(format!(
                    "duplicate key `{}` in the object at `{}`; keep one of them",
                    shorten(&key),
                    self.0
                )));
            }
            let value = map.next_value_seed(Seed(Pointer::Key(&self.0, &key)))?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Refuse numbers the document's identity would not keep as written.
/// `text` is valid JSON (it has been parsed), so a number is any token
/// outside a string that starts with `-` or a digit.
fn check_numbers(text: &str) -> Result<(), Rejection> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                if let Some(message) = number_problem(&text[start..i]) {
                    return Err(Rejection {
                        location: position(bytes, start),
                        message,
                    });
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Why the number token `token` is refused, if it is.
fn number_problem(token: &str) -> Option<String> {
    let is_integer = !token.contains(['.', 'e', 'E']);
    if is_integer {
        // Valid JSON has no leading zeros, so 16 digits bound 2^53 − 1.
        let digits = token.trim_start_matches('-');
        let fits = digits.len() <= 16 && digits.parse::<u64>().is_ok_and(|n| n <= MAX_SAFE_INTEGER);
        return (!fits).then(|| {
            format!(
                "the integer {} is outside ±(2^53−1), the range a JSON number keeps exactly; write a smaller number, or a string if it is an identifier",
                shorten(token)
            )
        });
    }
    let mantissa = token.split(['e', 'E']).next().unwrap_or(token);
    let nonzero = mantissa.bytes().any(|d| matches!(d, b'1'..=b'9'));
    match token.parse::<f64>() {
        Ok(v) if v.is_finite() && (v != 0.0 || !nonzero) => None,
        // Also matches -0.0: float patterns compare with `==`.
        Ok(0.0) => Some(format!(
            "the number {} is too small for a JSON number (an IEEE 754 double) and would be read as 0; write 0 if that is meant",
            shorten(token)
        )),
        _ => Some(format!(
            "the number {} is out of range for a JSON number (an IEEE 754 double)",
            shorten(token)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &[u8]) -> Rejection {
        parse_strict(text).expect_err(&String::from_utf8_lossy(text))
    }

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn nesting_limit_is_enforced_at_its_documented_depth_and_named() {
        parse_strict(nested(MAX_NESTING).as_bytes()).unwrap();
        let r = refused(nested(MAX_NESTING + 1).as_bytes());
        // serde_json places a visitor's error just past the opening bracket.
        assert_eq!(r.location, format!("line 1, column {}", MAX_NESTING + 2));
        assert!(
            r.message
                .contains(&format!("nested deeper than {MAX_NESTING} levels")),
            "{}",
            r.message
        );
    }

    #[test]
    fn the_limit_leaves_room_for_the_config_inside_a_run_summary() {
        // run_summary.json embeds the config two levels down; serde_json
        // must still read the deepest accepted config there.
        let summary = format!("{{\"config\": {{\"deep\": {}}}}}", nested(MAX_NESTING - 1));
        serde_json::from_str::<Value>(&summary).unwrap();
        // And past serde_json's own limit the message is the same.
        assert!(
            refused(nested(200).as_bytes())
                .message
                .contains("nested deeper than")
        );
    }

    #[test]
    fn builds_the_value_serde_json_builds() {
        let text = r#"{"a": [1, -2, 3.5, -0, 1e2, true, null, "s\u00e9"], "b": {"c": {}}, "d": 9007199254740991}"#;
        let ours = parse_strict(text.as_bytes()).unwrap();
        let theirs: Value = serde_json::from_str(text).unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(
            crate::artifact::canonical::jcs(&ours).unwrap(),
            crate::artifact::canonical::jcs(&theirs).unwrap()
        );
    }

    #[test]
    fn duplicate_key_names_the_object_pointer_and_the_key() {
        let r = refused(b"{\"a\": [{}, {\"x/y~\": {\"k\": 1,\n \"k\": 1}}]}");
        // serde_json points at the last byte it read: the second key's quote.
        assert_eq!(r.location, "line 2, column 4");
        assert_eq!(
            r.message,
            "duplicate key `k` in the object at `/a/1/x~1y~0`; keep one of them"
        );
        let r = refused(br#"{"a": 1, "a": 2}"#);
        assert!(
            r.message.contains("`a` in the object at `/`"),
            "{}",
            r.message
        );
    }

    #[test]
    fn keys_equal_only_after_escapes_are_duplicates() {
        let r = refused(br#"{"ab": 1, "a\u0062": 2}"#);
        assert!(r.message.contains("duplicate key `ab`"), "{}", r.message);
    }

    #[test]
    fn encoding_problems_say_where_and_what_to_do() {
        let r = refused(b"\xEF\xBB\xBF{}");
        assert_eq!(r.location, "line 1, column 1");
        assert!(r.message.contains("without a BOM"), "{}", r.message);
        let r = refused(b"\xFF\xFE{\x00}\x00");
        assert!(r.message.contains("UTF-16"), "{}", r.message);
        let r = refused(b"{\n  \"t\": \"ab\xC3(\"}");
        assert_eq!(r.location, "line 2, column 11");
        assert!(r.message.contains("0xc3"), "{}", r.message);
    }

    #[test]
    fn text_after_the_value_is_refused_where_it_starts() {
        let r = refused(b"{}\n  x");
        assert_eq!(r.location, "line 2, column 3");
        assert!(r.message.contains("after the end"), "{}", r.message);
        assert!(refused(b"{} {}").message.contains("after the end"));
        parse_strict(b" {} \n\t ").unwrap();
    }

    #[test]
    fn numbers_that_a_double_cannot_hold_as_written_are_refused() {
        // serde_json refuses overflow itself, pointing at the number's end.
        for text in ["[1e400]", "[-1e400]", &format!("[1{}]", "0".repeat(400))] {
            let r = refused(text.as_bytes());
            assert!(r.message.contains("out of range"), "{text}: {}", r.message);
            assert!(r.location.starts_with("line 1, column "), "{text}");
        }
        for (text, needle) in [
            ("[1e-400]", "too small"),
            ("[-0.0000001e-400]", "too small"),
            ("[9007199254740992]", "outside ±(2^53−1)"),
            ("[-9007199254740992]", "outside ±(2^53−1)"),
            ("[18446744073709551616]", "outside ±(2^53−1)"),
            ("[123456789012345678901234567890]", "outside ±(2^53−1)"),
        ] {
            let r = refused(text.as_bytes());
            assert!(r.message.contains(needle), "{text}: {}", r.message);
            assert_eq!(r.location, "line 1, column 2", "{text}");
        }
        parse_strict(
            b"[9007199254740991, -9007199254740991, 0, -0, 0.0, 0e400, 1e308, 5e-324, 1.5E+3]",
        )
        .unwrap();
    }

    #[test]
    fn digits_inside_strings_are_not_numbers() {
        parse_strict(br#"{"1e-400": "99999999999999999999", "q\"1e-400": "\\", "n": 1}"#).unwrap();
    }

    #[test]
    fn shorten_escapes_control_characters_and_cuts() {
        assert_eq!(shorten("a\nb\u{1b}"), "a\\nb\\u{1b}");
        assert_eq!(shorten("a\\b"), "a\\b");
        let long = "x".repeat(100);
        assert_eq!(shorten(&long), format!("{}…", "x".repeat(64)));
    }
}
