//! Reading what `verify` checks without trusting it: a symlink is never
//! followed, a special file is never opened (opening a FIFO for reading
//! would block until a writer appears), and no file is held in memory
//! whole unless it is small enough to be a meta record or a JSON artifact.
//!
//! Hashing streams through one fixed buffer per worker, so a 10 GiB render
//! costs that buffer and no more.

use std::fs::Metadata;
use std::io::{self, Read};
use std::path::{Component, Path};

use sha2::{Digest, Sha256};

use super::ProblemKind;

/// The read buffer each worker owns. Large enough that a 1 GiB file costs
/// ~4,000 reads, small enough to stay in a core's L2 cache between the
/// kernel's copy into it and the hash reading it.
pub(super) const BUF_BYTES: usize = 256 << 10;

/// Why a path could not be read as a regular file: the problem kind and
/// what was found there.
pub(super) type Found = (ProblemKind, String);

/// A worker's reusable memory: the hashing buffer and a second one for
/// small files (meta records) that are compared byte for byte.
pub(super) struct Scratch {
    pub(super) buf: Box<[u8]>,
    pub(super) small: Vec<u8>,
}

impl Scratch {
    pub(super) fn new() -> Scratch {
        Scratch {
            buf: vec![0; BUF_BYTES].into_boxed_slice(),
            small: Vec::new(),
        }
    }
}

/// A file's sha256 and length as read.
pub(super) struct Hashed {
    pub(super) sha256: String,
    pub(super) len: u64,
    /// The whole file fitted in the buffer: it is `buf[..len]`, and a
    /// schema check can parse it without reading it again.
    pub(super) in_buf: bool,
}

/// The file's metadata if it is a regular file, without following a
/// symlink; `Err` is the problem.
pub(super) fn lstat_regular(path: &Path) -> Result<Metadata, Found> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err((ProblemKind::Missing, "no file".to_string()))
        }
        Err(e) => Err((ProblemKind::Unreadable, e.to_string())),
        Ok(m) if !m.file_type().is_file() => {
            Err((ProblemKind::NotRegularFile, describe_non_regular(path, &m)))
        }
        Ok(m) => Ok(m),
    }
}

/// Stream `path` through `buf` into sha256, calling `on_read(n)` after each
/// read. `expected` is the size `lstat` gave: a read that comes back short
/// at exactly that size is the end of the file (a regular file reads short
/// only there), which saves the confirming zero-length read, a tenth of
/// the system calls for a small file. Otherwise it reads until end of
/// file, so a file that grew is hashed as it is.
pub(super) fn hash_file(
    path: &Path,
    expected: u64,
    buf: &mut [u8],
    on_read: &mut dyn FnMut(u64),
) -> io::Result<Hashed> {
    let mut file = crate::regular_file::open_nofollow(path)?;
    let mut hasher = Sha256::new();
    // The buffer is filled before it is hashed, so small reads (a pipe, a
    // network file system) still reach the hash in large blocks.
    let mut filled = 0;
    let mut len = 0u64;
    loop {
        if filled == buf.len() {
            hasher.update(&buf[..]);
            filled = 0;
        }
        let asked = buf.len() - filled;
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                len += n as u64;
                on_read(n as u64);
                if n < asked && len == expected {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    hasher.update(&buf[..filled]);
    Ok(Hashed {
        sha256: hex(&hasher.finalize()),
        len,
        // Hashed, but not overwritten: nothing was read after it.
        in_buf: len <= buf.len() as u64,
    })
}

/// Read all of `path` into `out`, failing if it holds more than `limit`
/// bytes: the caller checked the size with `lstat` (`expected`), and this
/// keeps a file that grew since from being read without bound. Ends at a
/// short read at `expected` bytes, as [`hash_file`] does.
pub(super) fn read_small(
    path: &Path,
    expected: u64,
    limit: u64,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut file = crate::regular_file::open_nofollow(path)?;
    // Room for the whole file and one byte more, so one read can come
    // back short and end it.
    let cap = usize::try_from(limit.min(expected) + 1).unwrap_or(usize::MAX);
    out.clear();
    out.resize(cap.max(4096), 0);
    let mut len = 0;
    loop {
        if len == out.len() {
            if len as u64 > limit {
                break;
            }
            out.resize(out.len() * 2, 0);
        }
        let asked = out.len() - len;
        match file.read(&mut out[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if n < asked && len as u64 == expected {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.truncate(len);
    if len as u64 > limit {
        return Err(io::Error::other(format!(
            "grew past {limit} bytes while being read"
        )));
    }
    Ok(())
}

/// Lowercase hex, as the registry records a sha256. By table rather than
/// `write!` per byte: it runs once per file, 100,000 times on a big tree.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Whether a registry path stays inside the directory it is joined to:
/// relative, and made only of plain names (no `..`, no root). `Path::join`
/// with an absolute path would silently replace the base.
pub(super) fn contained(rel: &str) -> bool {
    !rel.is_empty()
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// What a non-regular file is, for the "found" half of a problem.
pub(super) fn describe_non_regular(path: &Path, meta: &Metadata) -> String {
    let ft = meta.file_type();
    if ft.is_symlink() {
        match std::fs::read_link(path) {
            Ok(target) => format!("a symlink to `{}` (not followed)", target.display()),
            Err(_) => "a symlink (not followed)".to_string(),
        }
    } else if ft.is_dir() {
        "a directory".to_string()
    } else {
        special_file_kind(&ft).to_string()
    }
}

/// Which special file it is; it is never opened.
#[cfg(unix)]
fn special_file_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO (named pipe), not opened"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device file, not opened"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_file_kind(_ft: &std::fs::FileType) -> &'static str {
    "a special file"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::sha256_hex;

    #[test]
    fn streaming_hash_equals_one_shot_hash_at_every_buffer_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let mut scratch = Scratch::new();
        for len in [
            0,
            1,
            BUF_BYTES - 1,
            BUF_BYTES,
            BUF_BYTES + 1,
            3 * BUF_BYTES + 7,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &bytes).unwrap();
            let mut seen = 0;
            // Right and wrong expectations alike give the file as it is.
            let h = hash_file(&path, len as u64, &mut scratch.buf, &mut |n| seen += n).unwrap();
            let h2 = hash_file(&path, len as u64 / 2, &mut scratch.buf, &mut |_| {}).unwrap();
            assert_eq!((h2.sha256, h2.len), (h.sha256.clone(), h.len));
            assert_eq!(h.sha256, sha256_hex(&bytes), "{len} bytes");
            assert_eq!((h.len, seen), (len as u64, len as u64));
            assert_eq!(h.in_buf, len <= BUF_BYTES, "{len} bytes");
            if h.in_buf {
                assert_eq!(&scratch.buf[..len], &bytes[..]);
            }
        }
    }

    #[test]
    fn a_small_read_gets_the_whole_file_and_refuses_one_over_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let mut out = Vec::new();
        // What lstat said may be stale: the file is read as it is.
        for expected in [10_000, 0, 5, 20_000] {
            read_small(&path, expected, 10_000, &mut out).unwrap();
            assert_eq!(out, bytes, "expected {expected}");
        }
        assert!(read_small(&path, 10_000, 9_999, &mut out).is_err());
        assert!(read_small(&path, 5, 9_999, &mut out).is_err());
    }

    #[test]
    fn only_plain_relative_paths_are_contained() {
        assert!(contained("p/r/Script.json"));
        for bad in ["", "/etc/hostname", "../x", "p/../../x", "./p"] {
            assert!(!contained(bad), "{bad}");
        }
    }
}
