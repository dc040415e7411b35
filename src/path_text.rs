//! File names as text for messages and reports: a name that is not UTF-8
//! is shown with each byte that is not as `\xNN`, never lossily (two
//! different names must not show as the same text, and the text must say
//! which file it is).

use std::ffi::OsStr;

/// `name` as text: itself when it is UTF-8, else its UTF-8 runs as they
/// are and every other byte as `\xNN`.
pub fn escaped(name: &OsStr) -> String {
    if let Some(text) = name.to_str() {
        return text.to_string();
    }
    let mut out = String::new();
    for chunk in name.as_encoded_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn invalid_bytes_are_escaped_and_the_rest_kept() {
        assert_eq!(escaped(OsStr::new("Script.json")), "Script.json");
        assert_eq!(
            escaped(OsStr::from_bytes(b"caf\xe9-\xc3\xa9.png")),
            "caf\\xE9-é.png"
        );
    }
}
