//! The `X.meta.json` record written beside every artifact.
//!
//! The meta record is the artifact's provenance: what it is, what it was made
//! from and how. It is also stored verbatim in the registry's `artifacts`
//! table, so the two can be compared by `verify`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaRecord {
    pub artifact_type: String,
    /// File name relative to the run directory (`ShotList.json`).
    pub path: String,
    /// sha256 of exactly the bytes of `path`, lowercase hex.
    pub sha256: String,
    pub size_bytes: u64,
    pub schema_id: String,
    pub schema_version: String,
    pub project_id: String,
    pub run_id: String,
    pub parents: Vec<ParentRef>,
    pub creation_params: CreationParams,
    pub compute_origin: ComputeOrigin,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// One input artifact, as the child saw it when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    pub artifact_type: String,
    pub sha256: String,
    /// Relative to the child's run directory.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreationParams {
    pub stage: u8,
    pub stage_name: String,
    pub stage_version: String,
    /// sha256 of the RFC 8785 canonical project config.
    pub config_hash: String,
}

/// Where an artifact was computed. Varies by machine, which is why it lives
/// in the meta record and never in the artifact bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeOrigin {
    pub engine: String,
    pub orchestrator_version: String,
    pub host: String,
}

impl ComputeOrigin {
    /// The origin of this process: the local stub engine on this host.
    pub fn local() -> Self {
        ComputeOrigin {
            engine: "local-stub".to_string(),
            orchestrator_version: crate::VERSION.to_string(),
            host: host_name(),
        }
    }
}

/// The host name: `HOSTNAME` when the environment sets it (a container or
/// a render-farm job names its host that way; shells do not export it),
/// else the kernel's. Never fails: a run must not stop because a host has
/// no name.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            ["/proc/sys/kernel/hostname", "/etc/hostname"]
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_string())
}
