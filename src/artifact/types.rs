//! The typed shapes of the five pipeline artifacts.
//!
//! These structs are the contract between stages: a stage deserializes its
//! inputs into them and serializes its output from them. They mirror
//! `schemas/<Type>.v1.json`, which stays the authority a file is checked
//! against. Every collection is a `Vec` in a deliberate order, never a hash
//! map, so serialization order can never depend on the process.

use serde::{Deserialize, Serialize};

use crate::config::FrameRate;

/// Fields every artifact starts with, so a file is self-describing when read
/// on its own (`jq .artifact_type ShotList.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub artifact_type: String,
    pub schema_version: String,
    pub project_id: String,
}

// ---------------------------------------------------------------- Script --

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    #[serde(flatten)]
    pub header: Header,
    pub title: String,
    pub logline: String,
    pub genre: String,
    pub seed: u64,
    pub characters: Vec<Character>,
    pub locations: Vec<Location>,
    pub scenes: Vec<Scene>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Character {
    /// `char_<slug>`; stable across stages and used as an asset id.
    pub character_id: String,
    /// Screenplay cue name, upper case (`MARA`).
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// `loc_<slug>`; stable across stages and used as an asset id.
    pub location_id: String,
    pub name: String,
    pub description: String,
    /// `INT` or `EXT`, as it appears in sluglines.
    pub setting: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scene {
    /// `sc0001`, numbered from 1.
    pub scene_id: String,
    pub number: u32,
    /// `INT. LAMP ROOM - NIGHT`
    pub slugline: String,
    pub location_id: String,
    pub time_of_day: String,
    pub summary: String,
    pub character_ids: Vec<String>,
    pub props: Vec<String>,
    pub elements: Vec<SceneElement>,
}

/// One block of screenplay text, in reading order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SceneElement {
    Action {
        text: String,
    },
    Dialogue {
        character_id: String,
        character: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parenthetical: Option<String>,
        line: String,
    },
}

// -------------------------------------------------------------- ShotList --

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShotList {
    #[serde(flatten)]
    pub header: Header,
    pub scene_count: u32,
    pub shot_count: u32,
    pub total_duration_ms: u64,
    pub shots: Vec<Shot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shot {
    /// `sc0001_sh01`
    pub shot_id: String,
    pub scene_id: String,
    /// Position within its scene, from 1.
    pub number: u32,
    pub size: String,
    pub angle: String,
    pub camera_move: String,
    pub lens_mm: u32,
    pub duration_ms: u64,
    pub location_id: String,
    pub characters_in_frame: Vec<String>,
    pub props_in_frame: Vec<String>,
    pub description: String,
}

// --------------------------------------------------------- AssetManifest --

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetManifest {
    #[serde(flatten)]
    pub header: Header,
    pub asset_count: u32,
    /// Characters, then locations, then props; each group in first-use order.
    pub assets: Vec<Asset>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// `char_…`, `loc_…` or `prop_…`.
    pub asset_id: String,
    /// `character`, `location` or `prop`.
    pub kind: String,
    pub name: String,
    pub description: String,
    pub scene_ids: Vec<String>,
    /// Every shot that needs this asset in frame, in shot-list order.
    pub shot_ids: Vec<String>,
}

// ------------------------------------------------------------ RenderPlan --

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
}

/// A cost in exact decimal units: derived from integers, so the JSON
/// number is the same on every machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    pub gpu_seconds: f64,
    pub usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderPlan {
    #[serde(flatten)]
    pub header: Header,
    /// The nominal (whole) rate; exact in `frame_rate` when it is not whole.
    pub fps: u32,
    /// The exact rate (`"24000/1001"`), present only when it is not whole,
    /// so integer-rate artifacts are byte-identical to earlier ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<FrameRate>,
    pub resolution: Resolution,
    pub total_frames: u64,
    pub job_count: u32,
    pub estimated_cost: CostEstimate,
    pub jobs: Vec<RenderJob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderJob {
    /// `job_sc0001_sh01`
    pub job_id: String,
    pub shot_id: String,
    pub scene_id: String,
    /// First frame of the shot on the film's timeline, from 0.
    pub frame_start: u64,
    /// Last frame, inclusive.
    pub frame_end: u64,
    pub frame_count: u64,
    pub resolution: Resolution,
    pub seed: u64,
    pub asset_ids: Vec<String>,
    pub cost_estimate: CostEstimate,
}

// ---------------------------------------------------------- RenderOutput --

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderOutput {
    #[serde(flatten)]
    pub header: Header,
    pub engine: String,
    /// As in [`RenderPlan`]: nominal, with the exact rate when not whole.
    pub fps: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<FrameRate>,
    pub resolution: Resolution,
    pub total_frames: u64,
    pub duration_ms: u64,
    pub preview: Preview,
    pub renders: Vec<RenderResult>,
}

/// The whole-film preview assembled from the per-shot renders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    pub output: String,
    pub frames: u64,
    pub content_sha256: String,
    pub estimated_render_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderResult {
    pub job_id: String,
    pub shot_id: String,
    pub frames: u64,
    pub output: String,
    /// sha256 of the bytes the stub renderer would have written.
    pub content_sha256: String,
    pub timings: RenderTimings,
}

/// Deterministic estimates, not measurements: artifact bytes never hold a
/// clock reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderTimings {
    pub queue_ms: u64,
    pub render_ms: u64,
    pub encode_ms: u64,
}

impl RenderPlan {
    /// The exact frame rate.
    pub fn rate(&self) -> FrameRate {
        self.frame_rate.unwrap_or(FrameRate::integer(self.fps))
    }
}
