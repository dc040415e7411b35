//! Stage 4: one render job per shot, laid out on the film's frame timeline.

use std::collections::BTreeSet;

use serde_json::Value;

use super::header;
use crate::artifact::ArtifactType;
use crate::artifact::types::{
    AssetManifest, CostEstimate, RenderJob, RenderPlan, Resolution, ShotList,
};
use crate::error::{Error, Result};
use crate::pipeline::rng::Rng;
use crate::pipeline::stage::{Stage, StageContext, to_value};

pub struct BuildRenderPlan;

/// GPU time to render one 1280x720 frame on the reference card, in ms.
const GPU_MS_PER_720P_FRAME: u64 = 350;
const PIXELS_720P: u64 = 1280 * 720;
/// Reference price: $2.50 per GPU-hour, in micro-dollars per hour.
const MICRO_USD_PER_GPU_HOUR: u64 = 2_500_000;
const MS_PER_HOUR: u64 = 3_600_000;

/// GPU time for `frames` frames at `res`, in whole milliseconds.
pub(crate) fn gpu_ms(frames: u64, res: Resolution) -> u64 {
    frames * GPU_MS_PER_720P_FRAME * u64::from(res.width) * u64::from(res.height) / PIXELS_720P
}

/// Costs are computed in integers and converted once, so the JSON numbers
/// are identical on every machine.
fn cost(gpu_ms: u64) -> CostEstimate {
    let micro_usd = gpu_ms * MICRO_USD_PER_GPU_HOUR / MS_PER_HOUR;
    CostEstimate {
        gpu_seconds: gpu_ms as f64 / 1000.0,
        usd: micro_usd as f64 / 1_000_000.0,
    }
}

impl Stage for BuildRenderPlan {
    fn number(&self) -> u8 {
        4
    }
    fn name(&self) -> &'static str {
        "stage4_build_renderplan"
    }
    fn version(&self) -> &'static str {
        "1.0.0"
    }
    fn inputs(&self) -> &'static [ArtifactType] {
        &[ArtifactType::AssetManifest, ArtifactType::ShotList]
    }
    fn output(&self) -> ArtifactType {
        ArtifactType::RenderPlan
    }

    fn run(&self, ctx: &StageContext<'_>) -> Result<Value> {
        let manifest = ctx.input::<AssetManifest>(ArtifactType::AssetManifest)?;
        let shots = ctx.input::<ShotList>(ArtifactType::ShotList)?;
        let known: BTreeSet<&str> = manifest
            .assets
            .iter()
            .map(|a| a.asset_id.as_str())
            .collect();
        let fps = ctx.config.render.fps;
        let resolution = Resolution {
            width: ctx.config.render.width,
            height: ctx.config.render.height,
        };

        let mut jobs = Vec::with_capacity(shots.shots.len());
        let mut next_frame = 0u64;
        let mut total_gpu_ms = 0u64;
        for shot in &shots.shots {
            // Round up: a shot never renders shorter than it was boarded.
            let frame_count = fps.frames_for_ms(shot.duration_ms).max(1);
            let asset_ids: Vec<String> = std::iter::once(&shot.location_id)
                .chain(&shot.characters_in_frame)
                .chain(&shot.props_in_frame)
                .cloned()
                .collect();
            if let Some(missing) = asset_ids.iter().find(|id| !known.contains(id.as_str())) {
                return Err(Error::Inconsistent(format!(
                    "shot {} needs asset `{missing}`, which the AssetManifest does not list",
                    shot.shot_id
                )));
            }
            let job_gpu_ms = gpu_ms(frame_count, resolution);
            total_gpu_ms += job_gpu_ms;
            jobs.push(RenderJob {
                job_id: format!("job_{}", shot.shot_id),
                shot_id: shot.shot_id.clone(),
                scene_id: shot.scene_id.clone(),
                frame_start: next_frame,
                frame_end: next_frame + frame_count - 1,
                frame_count,
                resolution,
                seed: Rng::derive(ctx.config.seed, &format!("render/{}", shot.shot_id))
                    .json_safe_seed(),
                asset_ids,
                cost_estimate: cost(job_gpu_ms),
            });
            next_frame += frame_count;
        }

        to_value(&RenderPlan {
            header: header(ArtifactType::RenderPlan, &shots.header.project_id),
            fps: fps.nominal(),
            frame_rate: (!fps.is_integer()).then_some(fps),
            resolution,
            total_frames: next_frame,
            job_count: jobs.len() as u32,
            estimated_cost: cost(total_gpu_ms),
            jobs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_exact_decimal() {
        let c = cost(3_600_000);
        assert_eq!(c.gpu_seconds, 3600.0);
        assert_eq!(c.usd, 2.5);
        assert_eq!(
            gpu_ms(
                24,
                Resolution {
                    width: 1280,
                    height: 720
                }
            ),
            8400
        );
        assert_eq!(
            gpu_ms(
                1,
                Resolution {
                    width: 1920,
                    height: 1080
                }
            ),
            787
        );
    }
}
