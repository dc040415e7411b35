//! Stage 5: the stub preview render. No pixels are produced; each job gets
//! the content hash of the bytes a stub renderer would write and
//! deterministic timing estimates, so downstream tooling sees the shape of a
//! real render report.

use serde_json::Value;

use super::header;
use super::renderplan::gpu_ms;
use crate::artifact::ArtifactType;
use crate::artifact::canonical::sha256_hex;
use crate::artifact::types::{
    Preview, RenderOutput, RenderPlan, RenderResult, RenderTimings, ShotList,
};
use crate::error::{Error, Result};
use crate::pipeline::rng::Rng;
use crate::pipeline::stage::{Stage, StageContext, to_value};

pub struct RenderPreview;

/// Encoding cost per frame for the preview codec, in ms.
const ENCODE_MS_PER_FRAME: u64 = 12;

impl Stage for RenderPreview {
    fn number(&self) -> u8 {
        5
    }
    fn name(&self) -> &'static str {
        "stage5_render_preview"
    }
    fn version(&self) -> &'static str {
        "1.0.0"
    }
    fn inputs(&self) -> &'static [ArtifactType] {
        &[ArtifactType::RenderPlan, ArtifactType::ShotList]
    }
    fn output(&self) -> ArtifactType {
        ArtifactType::RenderOutput
    }

    fn run(&self, ctx: &StageContext<'_>) -> Result<Value> {
        let plan = ctx.input::<RenderPlan>(ArtifactType::RenderPlan)?;
        let shots = ctx.input::<ShotList>(ArtifactType::ShotList)?;
        if plan.jobs.len() != shots.shots.len() {
            return Err(Error::Inconsistent(format!(
                "the RenderPlan has {} jobs but the ShotList has {} shots",
                plan.jobs.len(),
                shots.shots.len()
            )));
        }

        let mut renders = Vec::with_capacity(plan.jobs.len());
        let mut preview_hash_input = String::new();
        let mut total_ms = 0u64;
        for (job, shot) in plan.jobs.iter().zip(&shots.shots) {
            // What the stub "renders": everything that would determine the
            // pixels, so the hash changes exactly when the render would.
            let stub_bytes = format!(
                "local-stub-render\n{}\n{}x{}@{}\nseed={}\nframes={}..={}\n{}\n",
                job.job_id,
                job.resolution.width,
                job.resolution.height,
                plan.rate(),
                job.seed,
                job.frame_start,
                job.frame_end,
                shot.description
            );
            let content_sha256 = sha256_hex(stub_bytes.as_bytes());
            preview_hash_input.push_str(&content_sha256);
            preview_hash_input.push('\n');
            let mut rng = Rng::derive(job.seed, "render/queue");
            let timings = RenderTimings {
                queue_ms: rng.range(50, 1500),
                render_ms: gpu_ms(job.frame_count, job.resolution),
                encode_ms: job.frame_count * ENCODE_MS_PER_FRAME,
            };
            total_ms += timings.queue_ms + timings.render_ms + timings.encode_ms;
            renders.push(RenderResult {
                job_id: job.job_id.clone(),
                shot_id: job.shot_id.clone(),
                frames: job.frame_count,
                output: format!("renders/{}.mp4", job.shot_id),
                content_sha256,
                timings,
            });
        }

        let duration_ms = plan.rate().ms_for_frames(plan.total_frames);
        to_value(&RenderOutput {
            header: header(ArtifactType::RenderOutput, &plan.header.project_id),
            engine: "local-stub".to_string(),
            fps: plan.fps,
            frame_rate: plan.frame_rate,
            resolution: plan.resolution,
            total_frames: plan.total_frames,
            duration_ms,
            preview: Preview {
                output: "preview.mp4".to_string(),
                frames: plan.total_frames,
                content_sha256: sha256_hex(preview_hash_input.as_bytes()),
                estimated_render_ms: total_ms,
            },
            renders,
        })
    }
}
