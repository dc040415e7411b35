//! The stage trait: the seam where a real generator replaces a stub.
//!
//! A stage declares what it reads and writes and turns its inputs into one
//! artifact value. It does no I/O of its own: the runner hands it the config
//! and the parsed upstream artifacts, then validates, writes and registers
//! what it returns. Replacing a stub means implementing this trait and
//! bumping `version`, which makes resume re-execute the stage.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::artifact::ArtifactType;
use crate::config::ProjectConfig;
use crate::error::{Error, Result};

pub trait Stage {
    /// Position in the pipeline, 1..=5.
    fn number(&self) -> u8;
    /// `stage2_script_to_shotlist`
    fn name(&self) -> &'static str;
    /// Implementation version; a change re-executes the stage on resume.
    fn version(&self) -> &'static str;
    /// The upstream artifact types this stage reads, in edge order.
    fn inputs(&self) -> &'static [ArtifactType];
    /// The artifact type this stage writes.
    fn output(&self) -> ArtifactType;
    /// Produce the artifact. Must depend only on `ctx`: no clock, host,
    /// environment or unseeded randomness.
    fn run(&self, ctx: &StageContext<'_>) -> Result<Value>;
}

/// What a stage may read.
pub struct StageContext<'a> {
    pub config: &'a ProjectConfig,
    pub(crate) inputs: BTreeMap<ArtifactType, (&'a std::path::Path, &'a [u8])>,
}

impl StageContext<'_> {
    /// Parse one declared input into its typed shape.
    pub fn input<T: DeserializeOwned>(&self, ty: ArtifactType) -> Result<T> {
        let (path, bytes) = self
            .inputs
            .get(&ty)
            .ok_or_else(|| Error::Inconsistent(format!("stage input {ty} was not provided")))?;
        serde_json::from_slice(bytes).map_err(|e| Error::BadInput {
            path: path.to_path_buf(),
            artifact_type: ty.name().to_string(),
            message: e.to_string(),
        })
    }
}

/// Serialize a typed artifact into the value a stage returns.
pub fn to_value<T: Serialize>(artifact: &T) -> Result<Value> {
    serde_json::to_value(artifact)
        .map_err(|e| Error::Inconsistent(format!("serializing artifact: {e}")))
}
