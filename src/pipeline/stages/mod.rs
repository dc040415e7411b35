//! The stub stages: deterministic stand-ins shaped like a real pipeline's
//! output, so they double as fixtures for the generators that replace them.

mod assets;
mod render;
mod renderplan;
mod script;
mod shotlist;
pub mod vocab;

use crate::artifact::ArtifactType;
use crate::artifact::{Header, SCHEMA_VERSION};

pub use assets::ShotListToAssetManifest;
pub use render::RenderPreview;
pub use renderplan::BuildRenderPlan;
pub use script::GenerateScript;
pub use shotlist::ScriptToShotList;

use super::Stage;

/// The stages in pipeline order.
pub fn default_stages() -> Vec<Box<dyn Stage>> {
    vec![
        Box::new(GenerateScript),
        Box::new(ScriptToShotList),
        Box::new(ShotListToAssetManifest),
        Box::new(BuildRenderPlan),
        Box::new(RenderPreview),
    ]
}

fn header(ty: ArtifactType, project_id: &str) -> Header {
    Header {
        artifact_type: ty.name().to_string(),
        schema_version: SCHEMA_VERSION.to_string(),
        project_id: project_id.to_string(),
    }
}

/// `Brass Telescope!` → `brass_telescope`; never empty.
pub(crate) fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c == '\'' || c == '\u{2019}' {
            // Keeper's -> keepers, not keeper_s.
            continue;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() { "x".to_string() } else { out }
}

/// `prefix_slug`, with `_2`, `_3`… appended when the slug is already taken.
fn unique_id(prefix: &str, name: &str, taken: &mut Vec<String>) -> String {
    let base = format!("{prefix}_{}", slug(name));
    let mut id = base.clone();
    let mut n = 2;
    while taken.contains(&id) {
        id = format!("{base}_{n}");
        n += 1;
    }
    taken.push(id.clone());
    id
}

pub(crate) fn prop_id(name: &str) -> String {
    format!("prop_{}", slug(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_is_lowercase_underscored_and_never_empty() {
        assert_eq!(slug("Brass Telescope!"), "brass_telescope");
        assert_eq!(slug("  Ship's -- logbook "), "ships_logbook");
        assert_eq!(slug("Élodie"), "lodie");
        assert_eq!(slug("☂"), "x");
    }

    #[test]
    fn unique_id_suffixes_duplicates() {
        let mut taken = Vec::new();
        assert_eq!(unique_id("char", "Ada", &mut taken), "char_ada");
        assert_eq!(unique_id("char", "ADA", &mut taken), "char_ada_2");
        assert_eq!(unique_id("char", "ada", &mut taken), "char_ada_3");
    }
}
