//! `orchestrator export`: one run's provenance as W3C PROV-JSON or as
//! OpenLineage run events, to stdout or (atomically) to a file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::GlobalArgs;
use orchestrator::Error;
use orchestrator::export::{RunHistory, openlineage, prov};
use orchestrator::output_path::{check_output_path, write_output_atomic};
use orchestrator::registry::RunStatus;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Run id or a unique prefix of one.
    pub run: String,

    /// What to write: a PROV-JSON document, or OpenLineage events as JSON
    /// lines.
    #[arg(long, value_enum)]
    pub format: ExportFormat,

    /// Look only in this project (when the same run id exists in several).
    #[arg(long, value_name = "P")]
    pub project: Option<String>,

    /// Write to FILE (atomically: a reader sees the old file or the whole
    /// new one) instead of stdout. Never inside the artifacts directory,
    /// over the registry's files or through a symlink.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// OpenLineage job and dataset namespace [default: orchestrator].
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
}

/// Formats of `orchestrator export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// W3C PROV-JSON: artifacts as entities, stage executions as activities.
    Prov,
    /// OpenLineage run events (START and COMPLETE/FAIL/ABORT), one per line.
    Openlineage,
}

pub fn run(global: &GlobalArgs, args: &ExportArgs) -> anyhow::Result<()> {
    let namespace = match (&args.namespace, args.format) {
        (Some(_), ExportFormat::Prov) => {
            return Err(
                Error::usage("`--namespace` applies only to `--format openlineage`").into(),
            );
        }
        (Some(ns), _) if ns.trim().is_empty() || ns.chars().any(char::is_control) => {
            return Err(Error::usage(
                "`--namespace` must be non-empty text without control characters",
            )
            .into());
        }
        (Some(ns), _) => ns.clone(),
        (None, _) => openlineage::DEFAULT_NAMESPACE.to_string(),
    };
    // Before the registry is opened: an output that would replace an
    // artifact or the registry is refused with nothing written.
    let output = args
        .output
        .as_deref()
        .map(|path| check_output_path(path, &global.artifacts_dir, &global.db_path()))
        .transpose()?;
    let ws = global.workspace()?;
    let registry = ws.open_existing()?;
    let liveness = ws.liveness(&registry)?;
    let live = |project: &str, run: &str| liveness.is_live(project, run);
    let run = registry.resolve_run(&args.run, args.project.as_deref(), &live)?;
    if run.status == RunStatus::Running {
        eprintln!(
            "note: run {} is in progress; the export holds what was recorded so far",
            run.run_id
        );
    }
    let history = RunHistory::load(&registry, run)?;
    let bytes = match args.format {
        ExportFormat::Prov => {
            let mut text = serde_json::to_vec_pretty(&prov::document(&history))
                .context("encoding the PROV document")?;
            text.push(b'\n');
            text
        }
        ExportFormat::Openlineage => {
            let mut text = Vec::new();
            for event in openlineage::events(&history, &namespace) {
                serde_json::to_writer(&mut text, &event).context("encoding an event")?;
                text.push(b'\n');
            }
            text
        }
    };
    match &output {
        Some(out) => {
            write_output_atomic(out, &bytes)?;
            eprintln!("wrote {} ({} bytes)", out.path().display(), bytes.len());
            Ok(())
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .context("writing to stdout")
        }
    }
}
