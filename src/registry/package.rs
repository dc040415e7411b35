//! Registering a run's package: an artifact like any other (so lineage and
//! verify cover it), made by no stage execution.

use super::{Registry, RunRow};
use crate::artifact::MetaRecord;
use crate::error::{Error, Result};

impl Registry {
    /// Register `RenderPackage.json` (its row and its five parent edges) in
    /// one transaction.
    pub fn record_package(&mut self, meta: &MetaRecord, path: &str, meta_json: &str) -> Result<()> {
        self.transaction(|tx| tx.register_artifact(meta, path, meta_json).map(|_| ()))
    }
}

impl Registry {
    /// One run's row as recorded, or `None` if the registry has no such
    /// run. No liveness check: the caller holds the run's lock.
    pub fn run_if_recorded(&self, project_id: &str, run_id: &str) -> Result<Option<RunRow>> {
        match self.run_record(project_id, run_id) {
            Ok((row, _config_json)) => Ok(Some(row)),
            Err(Error::Sql(e)) if e.is_no_row() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
