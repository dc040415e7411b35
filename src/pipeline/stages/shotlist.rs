//! Stage 2: each scene of the script is broken into 3–8 shots.

use serde_json::Value;

use super::vocab::{ANGLES, CAMERA_MOVES, SHOT_SIZES};
use super::{header, prop_id};
use crate::artifact::ArtifactType;
use crate::artifact::types::{Scene, Script, Shot, ShotList};
use crate::error::Result;
use crate::pipeline::rng::Rng;
use crate::pipeline::stage::{Stage, StageContext, to_value};

pub struct ScriptToShotList;

impl Stage for ScriptToShotList {
    fn number(&self) -> u8 {
        2
    }
    fn name(&self) -> &'static str {
        "stage2_script_to_shotlist"
    }
    fn version(&self) -> &'static str {
        "1.0.0"
    }
    fn inputs(&self) -> &'static [ArtifactType] {
        &[ArtifactType::Script]
    }
    fn output(&self) -> ArtifactType {
        ArtifactType::ShotList
    }

    fn run(&self, ctx: &StageContext<'_>) -> Result<Value> {
        let script = ctx.input::<Script>(ArtifactType::Script)?;
        let mut shots = Vec::new();
        for scene in &script.scenes {
            shots.extend(scene_shots(&script, scene));
        }
        to_value(&ShotList {
            header: header(ArtifactType::ShotList, &script.header.project_id),
            scene_count: script.scenes.len() as u32,
            shot_count: shots.len() as u32,
            total_duration_ms: shots.iter().map(|s| s.duration_ms).sum(),
            shots,
        })
    }
}

fn scene_shots(script: &Script, scene: &Scene) -> Vec<Shot> {
    let mut rng = Rng::derive(script.seed, &format!("shotlist/{}", scene.scene_id));
    let count = rng.range(3, 8) as u32;
    let location = script
        .locations
        .iter()
        .find(|l| l.location_id == scene.location_id)
        .map_or_else(|| scene.location_id.clone(), |l| l.name.to_lowercase());
    let name_of = |id: &String| {
        script
            .characters
            .iter()
            .find(|c| &c.character_id == id)
            .map_or_else(|| id.clone(), |c| c.name.clone())
    };

    (1..=count)
        .map(|number| {
            // Every scene opens on an establishing shot, as a script
            // supervisor would lay it out; the rest cover the action.
            let establishing = number == 1;
            let size = if establishing {
                SHOT_SIZES[rng.below(2) as usize]
            } else {
                SHOT_SIZES[rng.range(2, 7) as usize]
            };
            let angle = if establishing {
                *rng.pick(&["eye level", "high", "overhead"])
            } else {
                *rng.pick(&ANGLES)
            };
            let camera_move = if establishing {
                *rng.pick(&["static", "crane", "pan"])
            } else {
                *rng.pick(&CAMERA_MOVES)
            };
            let n = scene.character_ids.len();
            let characters_in_frame: Vec<String> = if establishing || size == "insert" || n == 0 {
                Vec::new()
            } else {
                let want = rng.range(1, n.min(2) as u64) as usize;
                rng.sample(n, want)
                    .into_iter()
                    .map(|i| scene.character_ids[i].clone())
                    .collect()
            };
            let props_in_frame: Vec<String> = if scene.props.is_empty() {
                Vec::new()
            } else if size == "insert" || rng.chance(35) {
                vec![prop_id(rng.pick::<String>(&scene.props))]
            } else {
                Vec::new()
            };
            let lens_mm = match size {
                "extreme wide" | "wide" => *rng.pick(&[18, 24, 28]),
                "full" | "medium" => *rng.pick(&[35, 40, 50]),
                _ => *rng.pick(&[65, 85, 100]),
            };
            let subject = if !characters_in_frame.is_empty() {
                characters_in_frame
                    .iter()
                    .map(name_of)
                    .collect::<Vec<_>>()
                    .join(" and ")
            } else if let Some(prop) = props_in_frame.first() {
                format!("the {}", prop.trim_start_matches("prop_").replace('_', " "))
            } else {
                format!("the {location}")
            };
            Shot {
                shot_id: format!("{}_sh{number:02}", scene.scene_id),
                scene_id: scene.scene_id.clone(),
                number,
                size: size.to_string(),
                angle: angle.to_string(),
                camera_move: camera_move.to_string(),
                lens_mm,
                duration_ms: rng.range(15, 80) * 100,
                location_id: scene.location_id.clone(),
                description: format!(
                    "{} {} shot, {}, on {subject} ({location}).",
                    capitalize(size),
                    angle,
                    camera_move
                ),
                characters_in_frame,
                props_in_frame,
            }
        })
        .collect()
}

fn capitalize(s: &str) -> String {
    let mut cs = s.chars();
    match cs.next() {
        Some(c) => c.to_uppercase().chain(cs).collect(),
        None => String::new(),
    }
}
