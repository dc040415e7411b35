//! Stage 1: the project config becomes a screenplay.

use serde_json::Value;

use super::vocab::{
    ACTIONS, DEFAULT_CHARACTERS, DEFAULT_LOCATIONS, EXTERIOR_WORDS, LINES, PARENTHETICALS, PROPS,
    SUMMARY_VERBS, TIMES_OF_DAY,
};
use super::{header, unique_id};
use crate::artifact::ArtifactType;
use crate::artifact::types::{Character, Location, Scene, SceneElement, Script};
use crate::error::Result;
use crate::pipeline::rng::Rng;
use crate::pipeline::stage::{Stage, StageContext, to_value};

pub struct GenerateScript;

impl Stage for GenerateScript {
    fn number(&self) -> u8 {
        1
    }
    fn name(&self) -> &'static str {
        "stage1_generate_script"
    }
    fn version(&self) -> &'static str {
        "1.0.0"
    }
    fn inputs(&self) -> &'static [ArtifactType] {
        &[]
    }
    fn output(&self) -> ArtifactType {
        ArtifactType::Script
    }

    fn run(&self, ctx: &StageContext<'_>) -> Result<Value> {
        let cfg = ctx.config;
        let characters = cast(cfg);
        let locations = places(cfg);
        let scenes = (1..=cfg.scene_count)
            .map(|n| scene(cfg.seed, n, &characters, &locations))
            .collect();
        to_value(&Script {
            header: header(ArtifactType::Script, &cfg.project_id),
            title: cfg.title.clone(),
            logline: cfg.logline.clone().unwrap_or_else(|| {
                format!(
                    "A {}-scene story, told one tide at a time.",
                    cfg.scene_count
                )
            }),
            genre: cfg.genre.clone().unwrap_or_else(|| "drama".to_string()),
            seed: cfg.seed,
            characters,
            locations,
            scenes,
        })
    }
}

/// The configured characters, or a small default cast when none are given.
fn cast(cfg: &crate::config::ProjectConfig) -> Vec<Character> {
    let entries: Vec<(String, String)> = if cfg.characters.is_empty() {
        DEFAULT_CHARACTERS[..2]
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_string()))
            .collect()
    } else {
        cfg.characters
            .iter()
            .map(|c| {
                let description = c
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("{}, as the story finds them.", c.name));
                (c.name.clone(), description)
            })
            .collect()
    };
    let mut taken = Vec::new();
    entries
        .into_iter()
        .map(|(name, description)| Character {
            character_id: unique_id("char", &name, &mut taken),
            name: name.to_uppercase(),
            description,
        })
        .collect()
}

/// The configured locations, or defaults; `INT`/`EXT` from the name.
fn places(cfg: &crate::config::ProjectConfig) -> Vec<Location> {
    let entries: Vec<(String, String)> = if cfg.locations.is_empty() {
        DEFAULT_LOCATIONS
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_string()))
            .collect()
    } else {
        cfg.locations
            .iter()
            .map(|l| {
                let description = l
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("{}.", l.name));
                (l.name.clone(), description)
            })
            .collect()
    };
    let mut taken = Vec::new();
    entries
        .into_iter()
        .map(|(name, description)| {
            let lower = name.to_lowercase();
            let exterior = lower
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| EXTERIOR_WORDS.contains(&w));
            Location {
                location_id: unique_id("loc", &name, &mut taken),
                setting: if exterior { "EXT" } else { "INT" }.to_string(),
                name,
                description,
            }
        })
        .collect()
}

fn scene(seed: u64, number: u32, cast: &[Character], places: &[Location]) -> Scene {
    let scene_id = format!("sc{number:04}");
    let mut rng = Rng::derive(seed, &format!("script/{scene_id}"));
    let place = rng.pick(places);
    let time = *rng.pick(&TIMES_OF_DAY);
    let in_scene: Vec<&Character> = {
        let want = rng.range(1, cast.len().min(3) as u64) as usize;
        rng.sample(cast.len(), want)
            .into_iter()
            .map(|i| &cast[i])
            .collect()
    };
    let props: Vec<String> = {
        let want = rng.range(1, 3) as usize;
        rng.sample(PROPS.len(), want)
            .into_iter()
            .map(|i| PROPS[i].to_string())
            .collect()
    };

    let a = in_scene[0];
    let b = in_scene.get(1).copied().unwrap_or(a);
    let fill = |template: &str, prop: &str| {
        template
            .replace("{a}", &a.name)
            .replace("{b}", &b.name)
            .replace("{loc}", &place.name.to_lowercase())
            .replace("{prop}", prop)
    };

    let mut elements = vec![SceneElement::Action {
        text: fill(rng.pick::<&str>(&ACTIONS), &props[0]),
    }];
    let exchanges = rng.range(1, 3);
    for _ in 0..exchanges {
        // Lines come in call-and-answer pairs from the bank, spoken in turn.
        let pair = rng.below(LINES.len() as u64 / 2) as usize * 2;
        for (k, line) in LINES[pair..pair + 2].iter().enumerate() {
            let speaker = in_scene[k % in_scene.len()];
            let parenthetical = rng
                .chance(25)
                .then(|| rng.pick(&PARENTHETICALS).to_string());
            elements.push(SceneElement::Dialogue {
                character_id: speaker.character_id.clone(),
                character: speaker.name.clone(),
                parenthetical,
                line: line.to_string(),
            });
        }
        if rng.chance(60) {
            let prop = rng.pick(&props).clone();
            elements.push(SceneElement::Action {
                text: fill(rng.pick::<&str>(&ACTIONS), &prop),
            });
        }
    }

    let summary = if in_scene.len() > 1 {
        format!(
            "At the {}, {} {} {}.",
            place.name.to_lowercase(),
            title_case(&a.name),
            rng.pick(&SUMMARY_VERBS),
            title_case(&b.name)
        )
    } else {
        format!(
            "Alone at the {}, {} makes a decision.",
            place.name.to_lowercase(),
            title_case(&a.name)
        )
    };

    Scene {
        slugline: format!(
            "{}. {} - {}",
            place.setting,
            place.name.to_uppercase(),
            time
        ),
        scene_id,
        number,
        location_id: place.location_id.clone(),
        time_of_day: time.to_string(),
        summary,
        character_ids: in_scene.iter().map(|c| c.character_id.clone()).collect(),
        props,
        elements,
    }
}

/// `MARA` → `Mara` for prose; cue names stay upper case.
fn title_case(name: &str) -> String {
    name.split(' ')
        .map(|w| {
            let mut cs = w.chars();
            match cs.next() {
                Some(first) => first
                    .to_uppercase()
                    .chain(cs.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
