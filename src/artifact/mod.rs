//! Artifacts on disk: their types, their canonical bytes, their meta records
//! and how they are written.
//!
//! Invariant: the sha256 recorded anywhere (meta file, registry, run
//! summary) is the sha256 of exactly the bytes in `X.json`, so
//! `sha256sum X.json` always agrees with it.

pub mod canonical;
pub mod meta;
pub mod types;
pub mod write;

use std::fmt;
use std::str::FromStr;

pub use canonical::{canonical_bytes, canonical_value_bytes, sha256_hex, short_sha};
pub use meta::{ComputeOrigin, CreationParams, MetaRecord, ParentRef};
pub use types::Header;
pub use write::{
    TEMP_PREFIX, has_temp_files, holds_exactly, remove_stale_temp_files,
    remove_stale_temp_files_if_idle, sync_dir, write_atomic, write_atomic_unsynced,
};

/// Every schema's version; bumped per type when a schema changes shape.
pub const SCHEMA_VERSION: &str = "1.0.0";

/// The artifact types: the five the pipeline's stages write, in pipeline
/// order, then the package `orchestrator package` makes of a finished run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArtifactType {
    Script,
    ShotList,
    AssetManifest,
    RenderPlan,
    RenderOutput,
    RenderPackage,
}

impl ArtifactType {
    /// The five stage outputs, in pipeline order.
    pub const ALL: [ArtifactType; 5] = [
        ArtifactType::Script,
        ArtifactType::ShotList,
        ArtifactType::AssetManifest,
        ArtifactType::RenderPlan,
        ArtifactType::RenderOutput,
    ];

    /// Every type a run directory can hold, in the order they are made: the
    /// five stage outputs, then the package.
    pub const EVERY: [ArtifactType; 6] = [
        ArtifactType::Script,
        ArtifactType::ShotList,
        ArtifactType::AssetManifest,
        ArtifactType::RenderPlan,
        ArtifactType::RenderOutput,
        ArtifactType::RenderPackage,
    ];

    /// The step that makes it: stages 1–5, and 6 for the package.
    pub fn stage(self) -> u8 {
        match self {
            ArtifactType::Script => 1,
            ArtifactType::ShotList => 2,
            ArtifactType::AssetManifest => 3,
            ArtifactType::RenderPlan => 4,
            ArtifactType::RenderOutput => 5,
            ArtifactType::RenderPackage => 6,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ArtifactType::Script => "Script",
            ArtifactType::ShotList => "ShotList",
            ArtifactType::AssetManifest => "AssetManifest",
            ArtifactType::RenderPlan => "RenderPlan",
            ArtifactType::RenderOutput => "RenderOutput",
            ArtifactType::RenderPackage => "RenderPackage",
        }
    }

    /// `Script.json`, relative to the run directory.
    pub fn file_name(self) -> String {
        format!("{}.json", self.name())
    }

    /// `Script.meta.json`, relative to the run directory.
    pub fn meta_file_name(self) -> String {
        format!("{}.meta.json", self.name())
    }
}

impl fmt::Display for ArtifactType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ArtifactType {
    type Err = ();

    /// Exact type names only: `RenderOutput`, not `renderoutput`, so a
    /// hex prefix like `add` is never mistaken for a type.
    fn from_str(s: &str) -> Result<Self, ()> {
        ArtifactType::EVERY
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or(())
    }
}

/// Name of the per-run summary file written beside the artifacts.
pub const RUN_SUMMARY_FILE: &str = "run_summary.json";
