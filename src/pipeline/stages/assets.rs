//! Stage 3: the shot list and script become a deduplicated asset manifest —
//! every character, location and prop, with the scenes and shots that need it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{header, prop_id};
use crate::artifact::ArtifactType;
use crate::artifact::types::{Asset, AssetManifest, Script, ShotList};
use crate::error::Result;
use crate::pipeline::stage::{Stage, StageContext, to_value};

pub struct ShotListToAssetManifest;

impl Stage for ShotListToAssetManifest {
    fn number(&self) -> u8 {
        3
    }
    fn name(&self) -> &'static str {
        "stage3_shotlist_to_assetmanifest"
    }
    fn version(&self) -> &'static str {
        "1.0.0"
    }
    fn inputs(&self) -> &'static [ArtifactType] {
        &[ArtifactType::ShotList, ArtifactType::Script]
    }
    fn output(&self) -> ArtifactType {
        ArtifactType::AssetManifest
    }

    fn run(&self, ctx: &StageContext<'_>) -> Result<Value> {
        let shots = ctx.input::<ShotList>(ArtifactType::ShotList)?;
        let script = ctx.input::<Script>(ArtifactType::Script)?;

        let mut assets: Vec<Asset> = Vec::new();
        for c in &script.characters {
            assets.push(asset(&c.character_id, "character", &c.name, &c.description));
        }
        for l in &script.locations {
            assets.push(asset(&l.location_id, "location", &l.name, &l.description));
        }
        // Props in first-use order; a prop named in several scenes is one asset.
        for scene in &script.scenes {
            for name in &scene.props {
                let id = prop_id(name);
                if !assets.iter().any(|a| a.asset_id == id) {
                    let description = format!("Practical prop: {name}.");
                    assets.push(asset(&id, "prop", name, &description));
                }
            }
        }

        let position: BTreeMap<String, usize> = assets
            .iter()
            .enumerate()
            .map(|(i, a)| (a.asset_id.clone(), i))
            .collect();
        for scene in &script.scenes {
            let ids = std::iter::once(scene.location_id.clone())
                .chain(scene.character_ids.iter().cloned())
                .chain(scene.props.iter().map(|p| prop_id(p)));
            for id in ids {
                if let Some(&i) = position.get(&id) {
                    push_unique(&mut assets[i].scene_ids, &scene.scene_id);
                }
            }
        }
        for shot in &shots.shots {
            let ids = std::iter::once(&shot.location_id)
                .chain(&shot.characters_in_frame)
                .chain(&shot.props_in_frame);
            for id in ids {
                if let Some(&i) = position.get(id) {
                    push_unique(&mut assets[i].shot_ids, &shot.shot_id);
                }
            }
        }

        to_value(&AssetManifest {
            header: header(ArtifactType::AssetManifest, &script.header.project_id),
            asset_count: assets.len() as u32,
            assets,
        })
    }
}

fn asset(id: &str, kind: &str, name: &str, description: &str) -> Asset {
    Asset {
        asset_id: id.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        description: description.to_string(),
        scene_ids: Vec::new(),
        shot_ids: Vec::new(),
    }
}

/// Shots and scenes arrive in order, so a repeat is always the last entry.
fn push_unique(list: &mut Vec<String>, id: &str) {
    if list.last().map(String::as_str) != Some(id) {
        list.push(id.to_string());
    }
}
