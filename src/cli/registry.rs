//! `orchestrator registry migrate|info`: the registry itself, rather than
//! what it records.

use std::io::Write;

use clap::Subcommand;
use serde::Serialize;

use super::GlobalArgs;
use orchestrator::registry::{Location, Registry};

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Create or upgrade the registry's schema. Required once for a
    /// PostgreSQL registry (and after upgrading orchestrator); a SQLite
    /// file migrates itself, but this works on it too.
    Migrate(MigrateArgs),
    /// Show the backend, where the registry is (password redacted), its
    /// schema version and how much it holds.
    Info(InfoArgs),
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Migrated {
    backend: &'static str,
    location: String,
    /// The schema version before, `null` for an empty database.
    from_version: Option<i64>,
    version: i64,
}

pub fn run(global: &GlobalArgs, cmd: &RegistryCommand) -> anyhow::Result<()> {
    let ws = global.workspace()?;
    match cmd {
        RegistryCommand::Migrate(args) => migrate(ws.location(), args),
        RegistryCommand::Info(args) => info(&ws, args),
    }
}

fn migrate(location: &Location, args: &MigrateArgs) -> anyhow::Result<()> {
    let (from_version, version) = match location {
        Location::Postgres(target) => Registry::migrate_postgres(target)?,
        Location::Sqlite(path) => {
            let before = Registry::sqlite_schema_version(path)?;
            let registry = Registry::open(path)?;
            (before, registry.schema_version()?.unwrap_or(0))
        }
    };
    let report = Migrated {
        backend: location.backend_name(),
        location: location.to_string(),
        from_version,
        version,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if from_version == Some(version) {
        writeln!(out, "{location}: schema V{version}, already current")?;
    } else {
        let from = from_version.map_or("empty".to_string(), |v| format!("V{v}"));
        writeln!(out, "{location}: schema migrated from {from} to V{version}")?;
    }
    Ok(())
}

fn info(ws: &orchestrator::workspace::Workspace, args: &InfoArgs) -> anyhow::Result<()> {
    let registry = ws.open_existing()?;
    let info = registry.info(ws.location())?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &info)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "backend     {}", info.backend)?;
    writeln!(out, "location    {}", info.location)?;
    writeln!(out, "schema      V{}", info.schema_version)?;
    writeln!(out, "projects    {}", info.projects)?;
    writeln!(out, "runs        {}", info.runs)?;
    writeln!(out, "artifacts   {}", info.artifacts)?;
    writeln!(out, "executions  {}", info.executions)?;
    Ok(())
}
