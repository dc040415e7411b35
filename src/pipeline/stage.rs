//! The stage trait: the seam where a real generator replaces a stub.
//!
//! A stage declares what it reads and writes and turns its inputs into one
//! artifact value. It does no I/O of its own: the runner hands it the config
//! and the parsed upstream artifacts, then validates, writes and registers
//! what it returns. Replacing a stub means implementing this trait and
//! bumping `version`, which makes resume re-execute the stage.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

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
    /// Inputs already parsed by an earlier stage of this run.
    pub(crate) parsed: &'a RefCell<Parsed>,
}

/// Parsed inputs, shared across the stages of one run: the shot list three
/// stages read is parsed once, not three times. Keyed by the Rust type too,
/// so a stage may read an artifact into a shape of its own.
pub(crate) type Parsed = BTreeMap<(ArtifactType, TypeId), Rc<dyn Any>>;

impl StageContext<'_> {
    /// One declared input in its typed shape, parsed on first use in the
    /// run and shared after that.
    pub fn input<T: DeserializeOwned + 'static>(&self, ty: ArtifactType) -> Result<Rc<T>> {
        let key = (ty, TypeId::of::<T>());
        if let Some(Ok(done)) = self.parsed.borrow().get(&key).map(|v| v.clone().downcast()) {
            return Ok(done);
        }
        let (path, bytes) = self
            .inputs
            .get(&ty)
            .ok_or_else(|| Error::Inconsistent(format!("stage input {ty} was not provided")))?;
        let value: Rc<T> = Rc::new(serde_json::from_slice(bytes).map_err(|e| Error::BadInput {
            path: path.to_path_buf(),
            artifact_type: ty.name().to_string(),
            message: e.to_string(),
        })?);
        self.parsed.borrow_mut().insert(key, value.clone());
        Ok(value)
    }
}

/// Serialize a typed artifact into the value a stage returns.
pub fn to_value<T: Serialize>(artifact: &T) -> Result<Value> {
    serde_json::to_value(artifact)
        .map_err(|e| Error::Inconsistent(format!("serializing artifact: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::Header;

    #[test]
    fn an_input_read_by_several_stages_is_parsed_once_and_shared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("project.json");
        std::fs::write(
            &path,
            r#"{"project_id": "p", "title": "t", "seed": 1, "scene_count": 1}"#,
        )
        .unwrap();
        let config = crate::config::load(&path).unwrap().config;
        let bytes = br#"{"artifact_type": "Script", "schema_version": "1.0.0", "project_id": "p"}"#;
        let parsed = RefCell::default();
        let context = || StageContext {
            config: &config,
            inputs: BTreeMap::from([(ArtifactType::Script, (path.as_path(), &bytes[..]))]),
            parsed: &parsed,
        };
        let first = context().input::<Header>(ArtifactType::Script).unwrap();
        let again = context().input::<Header>(ArtifactType::Script).unwrap();
        assert!(Rc::ptr_eq(&first, &again));
        assert_eq!(first.project_id, "p");
        // Another shape of the same artifact is parsed on its own.
        let value = context().input::<Value>(ArtifactType::Script).unwrap();
        assert_eq!(value["artifact_type"], "Script");
        // An input the stage did not declare is a defect, not a panic.
        assert!(context().input::<Header>(ArtifactType::ShotList).is_err());
    }
}
