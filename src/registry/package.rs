//! Registering a run's package: an artifact like any other (so lineage and
//! verify cover it), made by no stage execution.

use super::Registry;
use super::executions::upsert_artifact;
use crate::artifact::MetaRecord;
use crate::error::Result;

impl Registry {
    /// Register `RenderPackage.json` (its row and its five parent edges) in
    /// one transaction.
    pub fn record_package(&mut self, meta: &MetaRecord, path: &str, meta_json: &str) -> Result<()> {
        self.write(|tx| upsert_artifact(tx, meta, path, meta_json).map(|_| ()))
    }
}
