//! Canonical artifact bytes and content hashes.
//!
//! An artifact file is `serde_json`'s pretty printer (two-space indent) over a
//! `Value` whose maps are `BTreeMap`s — so keys are sorted — plus one
//! trailing newline. The same value gives the same bytes on every machine.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Serialize `value` into the bytes written to `X.json`.
///
/// Going through `Value` sorts every object's keys (serde_json's map is a
/// `BTreeMap` unless `preserve_order` is enabled, which a unit test guards).
pub fn canonical_bytes<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    canonical_value_bytes(&serde_json::to_value(value)?)
}

/// [`canonical_bytes`] of a value that is already a `Value`, without the
/// deep copy `to_value` would make: its maps are sorted already. For a
/// 10,000-scene artifact that copy is hundreds of megabytes.
pub fn canonical_value_bytes(value: &Value) -> serde_json::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Lowercase hex sha256, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The first 12 hex characters: the short hash shown in tables, trees and
/// graphs. By characters, so a hand-edited non-ASCII value cannot panic.
pub fn short_sha(sha: &str) -> String {
    sha.chars().take(12).collect()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// RFC 8785 (JCS) canonical JSON of a config value: the form its hash and the
/// default run id are computed over, so key order and whitespace never
/// change a run's identity.
pub fn jcs(value: &Value) -> serde_json::Result<String> {
    // serde_json_canonicalizer implements RFC 8785 number formatting and
    // UTF-16 key ordering, which differ from serde_json's in corner cases.
    serde_json_canonicalizer::to_string(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_and_file_ends_with_newline() {
        let v = json!({"b": 1, "a": {"z": true, "c": [3, 2]}});
        let bytes = canonical_bytes(&v).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            text,
            "{\n  \"a\": {\n    \"c\": [\n      3,\n      2\n    ],\n    \"z\": true\n  },\n  \"b\": 1\n}\n"
        );
    }

    #[test]
    fn struct_field_order_does_not_leak_into_bytes() {
        #[derive(Serialize)]
        struct Later {
            zeta: u8,
            alpha: u8,
        }
        let text =
            String::from_utf8(canonical_bytes(&Later { zeta: 1, alpha: 2 }).unwrap()).unwrap();
        assert!(text.find("alpha").unwrap() < text.find("zeta").unwrap());
    }

    #[test]
    fn a_value_encodes_as_it_would_through_the_generic_path() {
        let v = json!({"b": [1.5, {"z": null, "a": "x"}], "a": -3});
        assert_eq!(
            canonical_value_bytes(&v).unwrap(),
            canonical_bytes(&v).unwrap()
        );
    }

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn jcs_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": [1, 2.50]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "a":[1,2.5],"b":1 }"#).unwrap();
        assert_eq!(jcs(&a).unwrap(), jcs(&b).unwrap());
        assert_eq!(jcs(&a).unwrap(), r#"{"a":[1,2.5],"b":1}"#);
    }
}
