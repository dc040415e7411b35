//! The run directory before a run writes into it: no symlinks on the way,
//! no temp files left by a writer that died.

use std::path::Path;

use crate::error::{Error, Result};

/// The project and run directories must be real directories: artifacts are
/// never written through a symlink (verify reports one, never follows it).
pub(crate) fn refuse_symlinked_dirs(artifacts_dir: &Path, parts: &[&str]) -> Result<()> {
    let mut dir = artifacts_dir.to_path_buf();
    for part in parts {
        dir.push(part);
        let meta = std::fs::symlink_metadata(&dir)
            .map_err(|e| Error::io("inspecting the run directory", &dir, e))?;
        if !meta.file_type().is_dir() {
            return Err(Error::usage_with_hint(
                format!(
                    "`{}` is a symlink, not a directory; artifacts are never written through one",
                    dir.display()
                ),
                "replace the link with a real directory (or move the target there), then run again",
            ));
        }
    }
    Ok(())
}

/// One rule for which temp files are stale, shared with `package` and
/// `verify`: see its docs.
pub(crate) use crate::artifact::remove_stale_temp_files;
