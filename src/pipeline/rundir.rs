//! The run directory before a run writes into it: no symlinks on the way,
//! no temp files left by a writer that died, and none left behind by a run
//! that never got to record itself.

use std::cell::Cell;
use std::path::{Path, PathBuf};

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

/// The project and run directories a run made, removed again (if still
/// empty) when it is dropped before the run's first registry write
/// succeeded: a run that could not record itself (a busy registry, a full
/// disk) leaves no unregistered directory behind.
pub(crate) struct MadeDirs {
    /// Directories this invocation created, innermost first.
    made: Vec<PathBuf>,
    /// Set once a registry write of the run committed.
    pub(crate) recorded: Cell<bool>,
}

/// `create_dir_all` of `<artifacts>/<project>/<run>`, remembering which
/// of the two it made.
pub(crate) fn make_run_dir(artifacts_dir: &Path, project: &str, run: &str) -> Result<MadeDirs> {
    let project_dir = artifacts_dir.join(project);
    let run_dir = project_dir.join(run);
    let made = [run_dir.clone(), project_dir]
        .into_iter()
        .filter(|d| std::fs::symlink_metadata(d).is_err())
        .collect();
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| Error::io("creating the run directory", &run_dir, e))?;
    Ok(MadeDirs {
        made,
        recorded: Cell::new(false),
    })
}

impl Drop for MadeDirs {
    fn drop(&mut self) {
        if !self.recorded.get() {
            // `remove_dir` removes only an empty directory: never a file.
            for dir in &self.made {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}
