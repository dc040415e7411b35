//! `orchestrator package RUN`: write and register the run's
//! `RenderPackage.json`, and with `--archive` a deterministic tar of it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::GlobalArgs;
use super::table::new_table;
use orchestrator::artifact::short_sha;
use orchestrator::clock::SystemClock;
use orchestrator::lock;
use orchestrator::output_path::check_output_path;
use orchestrator::package::{PackageReport, package};
use orchestrator::registry::BUSY_TIMEOUT;
use orchestrator::workspace::HeldRun;

#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    /// The run to package: its id or a unique prefix.
    #[arg(value_name = "RUN")]
    pub run: String,

    /// Only look for RUN in this project.
    #[arg(long, value_name = "P")]
    pub project: Option<String>,

    /// Also write a tar of the run's registered files here (deterministic
    /// bytes). Never inside the artifacts directory, over the registry's
    /// files or through a symlink.
    #[arg(long, value_name = "FILE")]
    pub archive: Option<PathBuf>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Seconds to wait for an `orchestrator run` of the same run to finish.
    #[arg(long, value_name = "SECS", default_value_t = BUSY_TIMEOUT.as_secs())]
    pub lock_timeout: u64,
}

pub fn run(global: &GlobalArgs, args: &PackageArgs) -> anyhow::Result<()> {
    let db = global.db_path();
    // Before anything is read, waited for or written: an archive that
    // would replace an artifact or the registry is refused outright.
    let archive = args
        .archive
        .as_deref()
        .map(|path| check_output_path(path, &global.artifacts_dir, &db))
        .transpose()?;
    let ws = global.workspace()?;
    let run = {
        let registry = ws.open_existing()?;
        let liveness = ws.liveness(&registry)?;
        let live = |project: &str, run: &str| liveness.is_live(project, run);
        registry.resolve_run(&args.run, args.project.as_deref(), &live)?
    };
    // The run lock with the registry closed, then the registry again (and
    // closed before the lock goes): see `Workspace::lock_recorded_run`.
    let HeldRun {
        mut registry,
        guard: locked,
    } = ws.lock_recorded_run(
        &run,
        &SystemClock,
        lock::Wait {
            timeout: Duration::from_secs(args.lock_timeout),
            on_wait: Some(super::run::say_waiting),
        },
    )?;
    // Only the run's ids are carried over the wait: the run may have
    // finished, been replaced or been removed meanwhile, so `package` reads
    // it again under the lock.
    let report = package(
        &locked,
        &mut registry,
        &global.artifacts_dir,
        &run.project_id,
        &run.run_id,
        archive.as_ref(),
        &SystemClock,
    )?;
    if let Some(a) = report.archive.as_ref().filter(|a| !a.left_out.is_empty()) {
        eprintln!(
            "note: not in the archive, as the registry does not know {}: {}",
            if a.left_out.len() == 1 { "it" } else { "them" },
            a.left_out
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &report)?;
    }
    Ok(())
}

fn print_text(out: &mut impl Write, r: &PackageReport) -> std::io::Result<()> {
    let mut table = new_table(&["TYPE", "PATH", "SHA256", "BYTES", "SCHEMA"]);
    for a in &r.artifacts {
        table.add_row(vec![
            a.artifact_type.clone(),
            a.path.clone(),
            short_sha(&a.sha256),
            a.size_bytes.to_string(),
            a.schema_version.clone(),
        ]);
    }
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "{}: {} ({} bytes, sha256 {})",
        if r.written { "written" } else { "up to date" },
        r.path,
        r.size_bytes,
        short_sha(&r.sha256)
    )?;
    if let Some(a) = &r.archive {
        writeln!(
            out,
            "archive: {} ({} files, {} bytes, sha256 {})",
            a.path.display(),
            a.members.len(),
            a.size_bytes,
            short_sha(&a.sha256)
        )?;
    }
    Ok(())
}
