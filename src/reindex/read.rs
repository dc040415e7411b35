//! Reading the files of an artifact tree that may have been edited, damaged
//! or booby-trapped by hand.
//!
//! Invariants: a path is opened only after `lstat` says it is a regular
//! file, so a symlink is never followed and a FIFO is never opened (opening
//! one blocks until a writer appears); the opened handle is then checked to
//! be that same file. JSON records are read through a size cap
//! ([`Read::take`]) and parsed with serde_json's default nesting limit (128),
//! so neither a huge nor a deeply nested file can exhaust memory or stack.
//! Artifacts, which have no size cap, are hashed while they stream, and
//! parsed only up to [`PARSE_LIMIT`] (what `verify` parses): a parsed
//! `Value` takes many times the file's bytes, so a 300 MB file in place of
//! an artifact would otherwise take gigabytes.

use std::fs::{File, Metadata};
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::artifact::canonical::hex;

/// Largest `X.meta.json` read: real ones are about a kilobyte.
pub const META_LIMIT: u64 = 1 << 20;
/// Largest `run_summary.json` read: real ones are a few kilobytes.
pub const SUMMARY_LIMIT: u64 = 64 << 20;
/// Largest artifact parsed (larger ones are hashed, not parsed): the cap
/// `verify` uses.
pub const PARSE_LIMIT: u64 = crate::verify::MAX_PARSED_BYTES;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    Missing,
    /// A symlink, directory, FIFO, socket or device; says which.
    NotRegular {
        symlink: bool,
        what: String,
    },
    TooLarge {
        limit: u64,
    },
    Io(io::Error),
}

impl ReadError {
    pub fn describe(&self) -> String {
        match self {
            ReadError::Missing => "no such file".to_string(),
            ReadError::NotRegular { what, .. } => what.clone(),
            ReadError::TooLarge { limit } => format!("larger than the {} limit", bytes(*limit)),
            ReadError::Io(e) => e.to_string(),
        }
    }
}

/// `1048576` → `1 MiB`.
pub fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// What a non-regular entry is, for a report line.
pub fn describe_non_regular(path: &Path, meta: &Metadata) -> String {
    let ft = meta.file_type();
    if ft.is_symlink() {
        match std::fs::read_link(path) {
            Ok(target) => format!("a symlink to `{}` (not followed)", target.display()),
            Err(_) => "a symlink (not followed)".to_string(),
        }
    } else if ft.is_dir() {
        "a directory".to_string()
    } else {
        special_kind(meta).to_string()
    }
}

#[cfg(unix)]
fn special_kind(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let ft = meta.file_type();
    if ft.is_fifo() {
        "a FIFO (not opened)"
    } else if ft.is_socket() {
        "a socket (not opened)"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device (not opened)"
    } else {
        "a special file (not opened)"
    }
}

#[cfg(not(unix))]
fn special_kind(_meta: &Metadata) -> &'static str {
    "a special file (not opened)"
}

/// Open `path` only if it is a regular file, and only if the handle opened
/// is the file that was checked (not something swapped in between).
fn open_regular(path: &Path) -> Result<(File, Metadata), ReadError> {
    let before = std::fs::symlink_metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ReadError::Missing,
        _ => ReadError::Io(e),
    })?;
    if !before.file_type().is_file() {
        return Err(ReadError::NotRegular {
            symlink: before.file_type().is_symlink(),
            what: describe_non_regular(path, &before),
        });
    }
    let file = crate::regular_file::open_nofollow(path).map_err(ReadError::Io)?;
    let after = file.metadata().map_err(ReadError::Io)?;
    if !after.is_file() || !same_file(&before, &after) {
        return Err(ReadError::NotRegular {
            symlink: false,
            what: "a file replaced while it was being read".to_string(),
        });
    }
    Ok((file, after))
}

/// Whether two metadata describe the same file (device and inode).
#[cfg(unix)]
pub(super) fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
pub(super) fn same_file(_a: &Metadata, _b: &Metadata) -> bool {
    true
}

/// The bytes of a regular file of at most `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let (file, meta) = open_regular(path)?;
    if meta.len() > limit {
        return Err(ReadError::TooLarge { limit });
    }
    // The length can grow after the check; the cap is what holds.
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(buf)
}

/// An artifact as read: its hash and size, and its JSON (or why it is not).
#[derive(Debug)]
pub struct Streamed {
    pub sha256: String,
    pub size: u64,
    pub json: Result<Value, Unparsed>,
}

/// Why an artifact's JSON is not at hand.
#[derive(Debug, PartialEq, Eq)]
pub enum Unparsed {
    /// Not parsed: larger than the parse limit, or not the size expected.
    Skipped,
    /// Parsed, and not JSON.
    Invalid(String),
}

/// Hash a regular file by streaming it, and parse it as JSON in the same
/// pass when it is `expected_size` bytes (a file of another size fails its
/// hash check anyway) and at most [`PARSE_LIMIT`]. Memory stays bounded
/// whatever the file holds.
pub fn hash_and_parse(path: &Path, expected_size: u64) -> Result<Streamed, ReadError> {
    hash_and_parse_limited(path, expected_size, PARSE_LIMIT)
}

fn hash_and_parse_limited(
    path: &Path,
    expected_size: u64,
    limit: u64,
) -> Result<Streamed, ReadError> {
    let (file, meta) = open_regular(path)?;
    let parse = meta.len() == expected_size && meta.len() <= limit;
    // The tee sits under the buffer so the hasher sees large reads, while
    // serde_json reads byte by byte from the buffer.
    let mut reader = BufReader::with_capacity(
        1 << 16,
        Tee {
            inner: file,
            hasher: Sha256::new(),
            size: 0,
        },
    );
    let json = if parse {
        // The cap holds even if the file grows while it is read.
        match serde_json::from_reader::<_, Value>((&mut reader).take(limit)) {
            Ok(v) => Ok(v),
            Err(e) if e.is_io() => return Err(ReadError::Io(io::Error::other(e))),
            Err(e) => Err(Unparsed::Invalid(e.to_string())),
        }
    } else {
        Err(Unparsed::Skipped)
    };
    // After a parse error (or none) the rest of the file still counts for
    // the hash.
    io::copy(&mut reader, &mut io::sink()).map_err(ReadError::Io)?;
    let tee = reader.into_inner();
    let json = match json {
        Ok(_) if tee.size != meta.len() => Err(Unparsed::Skipped),
        other => other,
    };
    Ok(Streamed {
        sha256: hex(&tee.hasher.finalize()),
        size: tee.size,
        json,
    })
}

struct Tee<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::sha256_hex;

    #[test]
    fn limited_read_refuses_one_byte_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        std::fs::write(&path, vec![b' '; 11]).unwrap();
        assert_eq!(read_limited(&path, 11).unwrap().len(), 11);
        assert!(matches!(
            read_limited(&path, 10),
            Err(ReadError::TooLarge { limit: 10 })
        ));
    }

    #[test]
    fn hash_covers_every_byte_even_when_the_json_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        for content in [
            &b"{\"a\": [1, 2]}\n"[..],
            b"{\"a\": 1} trailing",
            b"\xff\xfe",
        ] {
            std::fs::write(&path, content).unwrap();
            let s = hash_and_parse(&path, content.len() as u64).unwrap();
            assert_eq!(s.sha256, sha256_hex(content));
            assert_eq!(s.size, content.len() as u64);
            assert_eq!(s.json.is_ok(), content.ends_with(b"\n"), "{content:?}");
        }
    }

    #[test]
    fn nesting_past_serde_jsons_limit_is_an_error_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep.json");
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        std::fs::write(&path, &deep).unwrap();
        let s = hash_and_parse(&path, deep.len() as u64).unwrap();
        match s.json {
            Err(Unparsed::Invalid(e)) => assert!(e.contains("recursion limit"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_over_the_parse_limit_or_of_another_size_is_hashed_not_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        let content = b"[1, 2, 3]";
        std::fs::write(&path, content).unwrap();
        let n = content.len() as u64;
        let s = hash_and_parse_limited(&path, n, n - 1).unwrap();
        assert_eq!(s.json, Err(Unparsed::Skipped));
        assert_eq!(s.sha256, sha256_hex(content));
        let s = hash_and_parse_limited(&path, n + 1, n).unwrap();
        assert_eq!(s.json, Err(Unparsed::Skipped));
        assert_eq!(s.size, n);
        assert!(hash_and_parse_limited(&path, n, n).unwrap().json.is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_and_fifos_are_described_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        std::fs::write(&target, b"{}").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        match read_limited(&link, 100) {
            Err(ReadError::NotRegular {
                symlink: true,
                what,
            }) => {
                assert!(what.contains("real.json"), "{what}")
            }
            other => panic!("{other:?}"),
        }
        let fifo = dir.path().join("fifo.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        match hash_and_parse(&fifo, 0) {
            Err(ReadError::NotRegular {
                symlink: false,
                what,
            }) => {
                assert!(what.contains("FIFO"), "{what}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_limited(&dir.path().join("none"), 1),
            Err(ReadError::Missing)
        ));
    }
}
