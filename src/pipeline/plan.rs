//! `run --dry-run`: what a run would do, decided by the same code a real
//! run uses (`decide`), with nothing written — no lock, no directory, no
//! registry row, no file.
//!
//! A real run learns each stage's output hash as it goes; a plan cannot
//! without computing. When a stage would execute, its dependants are judged
//! against the output it has now (stages are deterministic, so re-making it
//! usually gives the same bytes): a dependant that is otherwise up to date
//! is `skip_if_unchanged`, which the real run turns into a skip if the
//! output does come out byte-identical (early cut-off) and an execution if
//! it does not.

use std::collections::BTreeMap;

use serde::Serialize;

use super::decide::{self, Decision};
use super::runner::RunOptions;
use super::stage::Stage;
use super::take::refuse_reused_run_id;
use crate::artifact::{ArtifactType, ComputeOrigin};
use crate::config::check_run_id;
use crate::error::{Error, Result};
use crate::registry::Registry;

/// What a run would do with one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Execute,
    Skip,
    /// Register files an interrupted run left, without recomputing.
    Adopt,
    /// Up to date if an upstream stage that executes first reproduces its
    /// current output byte for byte.
    SkipIfUnchanged,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Execute => "execute",
            Action::Skip => "skip",
            Action::Adopt => "adopt",
            Action::SkipIfUnchanged => "skip_if_unchanged",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedStage {
    pub stage: u8,
    pub name: String,
    pub artifact_type: String,
    pub action: Action,
    pub reason: String,
    /// The output's hash now (what a skip keeps), when there is one.
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunPlan {
    pub project_id: String,
    pub run_id: String,
    pub config_hash: String,
    /// `<project>/<run>`, relative to the artifacts directory, as
    /// `runs list --json` gives it.
    pub run_dir: String,
    pub stages: Vec<PlannedStage>,
}

/// Decide every stage of the run `opts` describes, writing nothing.
pub fn plan_run(
    opts: &RunOptions,
    registry: &Registry,
    stages: &[Box<dyn Stage>],
) -> Result<RunPlan> {
    let cfg = &opts.config.config;
    let run_id = match &opts.run_id {
        Some(id) => {
            check_run_id(id)?;
            id.clone()
        }
        None => opts.config.default_run_id(),
    };
    if let Some(n) = opts.from_stage {
        let last = stages.len() as u8;
        if !(1..=last).contains(&n) {
            return Err(Error::usage(format!(
                "--from-stage must be between 1 and {last}, not {n}"
            )));
        }
    }
    let run_dir = opts.artifacts_dir.join(&cfg.project_id).join(&run_id);
    refuse_reused_run_id(
        registry,
        &run_dir,
        &cfg.project_id,
        &run_id,
        &opts.config.config_hash,
    )?;
    let origin = ComputeOrigin::local();
    // Each type's hash as the run would see it, and the stage that would
    // re-make it first, if any.
    let mut current: BTreeMap<ArtifactType, String> = BTreeMap::new();
    let mut remade: BTreeMap<ArtifactType, u8> = BTreeMap::new();
    let registered: BTreeMap<String, crate::registry::ArtifactRecord> = registry
        .artifacts_of_run(&cfg.project_id, &run_id)?
        .into_iter()
        .map(|a| (a.artifact_type.clone(), a))
        .collect();
    let mut planned = Vec::with_capacity(stages.len());
    for stage in stages {
        let ty = stage.output();
        let mut input_hashes = BTreeMap::new();
        input_hashes.insert("config".to_string(), opts.config.config_hash.clone());
        let mut missing = None;
        for input in stage.inputs() {
            match current.get(input) {
                Some(sha) => {
                    input_hashes.insert(input.name().to_string(), sha.clone());
                }
                None => missing = missing.or(Some(*input)),
            }
        }
        let upstream_remade = stage
            .inputs()
            .iter()
            .find_map(|t| remade.get(t).map(|n| (*t, *n)));
        let (action, reason, sha256) = if let Some(input) = missing {
            (
                Action::Execute,
                format!(
                    "its input {input} does not exist yet (stage {} makes it first)",
                    input.stage()
                ),
                None,
            )
        } else {
            let forced = if opts.force {
                Some("forced (--force)".to_string())
            } else {
                opts.from_stage
                    .filter(|&n| stage.number() >= n)
                    .map(|n| format!("forced (--from-stage {n})"))
            };
            let decision = decide::decide(
                registry,
                &decide::Inputs {
                    stage: stage.as_ref(),
                    project_id: &cfg.project_id,
                    run_id: &run_id,
                    config_hash: &opts.config.config_hash,
                    input_hashes: &input_hashes,
                    out_path: &run_dir.join(ty.file_name()),
                    meta_path: &run_dir.join(ty.meta_file_name()),
                    origin: &origin,
                    registered: registered.get(ty.name()),
                    forced,
                },
            )?;
            match (decision, upstream_remade) {
                (Decision::Skip { sha256, .. }, Some((input, n))) => (
                    Action::SkipIfUnchanged,
                    format!(
                        "up to date if {input} comes out byte-identical (stage {n} executes first)"
                    ),
                    Some(sha256),
                ),
                (Decision::Skip { sha256, .. }, None) => {
                    (Action::Skip, "up to date".to_string(), Some(sha256))
                }
                (Decision::Adopt { sha256, .. }, _) => (
                    Action::Adopt,
                    "adopt the files an interrupted run wrote (hash, schema, parents check out)"
                        .to_string(),
                    Some(sha256),
                ),
                (Decision::Execute { reason }, _) => {
                    let now = registered.get(ty.name()).map(|a| a.sha256.clone());
                    (Action::Execute, reason, now)
                }
            }
        };
        match &sha256 {
            Some(sha) => {
                current.insert(ty, sha.clone());
            }
            None => {
                current.remove(&ty);
            }
        }
        if action == Action::Execute {
            remade.insert(ty, stage.number());
        } else if let Some((_, n)) = upstream_remade.filter(|_| action == Action::SkipIfUnchanged) {
            // Its fate follows the upstream stage's.
            remade.insert(ty, n);
        }
        planned.push(PlannedStage {
            stage: stage.number(),
            name: stage.name().to_string(),
            artifact_type: ty.name().to_string(),
            action,
            reason,
            sha256,
        });
    }
    Ok(RunPlan {
        project_id: cfg.project_id.clone(),
        run_dir: format!("{}/{}", cfg.project_id, run_id),
        run_id,
        config_hash: opts.config.config_hash.clone(),
        stages: planned,
    })
}
