//! `orchestrator lineage` (in progress).

use super::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct LineageArgs {
    /// Artifact type name, sha256 (or unique prefix), or path to an artifact file.
    pub target: String,
}

pub fn run(_global: &GlobalArgs, _args: &LineageArgs) -> anyhow::Result<()> {
    anyhow::bail!("lineage is not built yet")
}
