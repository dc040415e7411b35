//! The command line: clap definitions, one module per command, and all
//! rendering (tables, trees, text). Commands call the core and decide how its
//! values look; only `main` exits.

pub mod completions;
pub mod diff;
pub mod export;
pub mod gc;
pub mod lineage;
pub mod package;
pub mod registry;
pub mod reindex;
pub mod run;
pub mod runs;
pub mod table;
pub mod verify;
pub mod when;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "orchestrator",
    version,
    about = "Deterministic, resumable five-stage film pipeline with an artifact registry in SQLite or PostgreSQL",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Directory that holds `<project_id>/<run_id>/` artifact trees.
    #[arg(
        long,
        global = true,
        env = "ORCHESTRATOR_ARTIFACTS_DIR",
        default_value = "artifacts",
        value_name = "DIR"
    )]
    pub artifacts_dir: PathBuf,

    /// The registry: a SQLite file, or a PostgreSQL URL
    /// (postgresql://USER@HOST:PORT/DBNAME) shared by many hosts
    /// [default: <artifacts-dir>/registry.db].
    // `hide_env_values`: a URL in the environment may carry a password,
    // which `--help` must not print.
    #[arg(
        long,
        global = true,
        env = "ORCHESTRATOR_DB",
        hide_env_values = true,
        value_name = "FILE|URL"
    )]
    pub db: Option<PathBuf>,

    /// Colour statuses and findings: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: table::ColorChoice,
}

impl GlobalArgs {
    /// The artifacts directory and the registry `--db` names.
    pub fn workspace(&self) -> orchestrator::error::Result<orchestrator::workspace::Workspace> {
        let location =
            orchestrator::registry::Location::parse(self.db.as_deref(), &self.artifacts_dir)?;
        Ok(orchestrator::workspace::Workspace::new(
            self.artifacts_dir.clone(),
            location,
        ))
    }

    /// The registry file: `--db`'s path, or the default one in the
    /// artifacts directory when `--db` names a server (a file there is
    /// still one no output may replace).
    pub fn db_path(&self) -> PathBuf {
        if let Some(db) = self.db.as_deref().and_then(|d| d.to_str())
            && orchestrator::registry::db::PgTarget::is_url(db)
        {
            return self
                .artifacts_dir
                .join(orchestrator::reindex::DEFAULT_REGISTRY_FILE);
        }
        self.db.clone().unwrap_or_else(|| {
            self.artifacts_dir
                .join(orchestrator::reindex::DEFAULT_REGISTRY_FILE)
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the five-stage pipeline for a project config, resuming where possible.
    Run(run::RunArgs),
    /// List and inspect recorded runs.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Show what an artifact was made from (or, with --descendants, what was made from it).
    Lineage(lineage::LineageArgs),
    /// Re-check the registry's promises against the files on disk.
    Verify(verify::VerifyArgs),
    /// Write and register a finished run's RenderPackage.json (and, with --archive, a tar of it).
    Package(package::PackageArgs),
    /// Remove runs no longer wanted (dry run unless --yes).
    Gc(gc::GcArgs),
    /// Rebuild the registry from the artifact tree (when it is lost, corrupt or stale).
    Reindex(reindex::ReindexArgs),
    /// The registry itself: create or upgrade its schema, show what it is.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Write one run's provenance as W3C PROV-JSON or OpenLineage events.
    Export(export::ExportArgs),
    /// Compare two runs stage by stage: outputs, artifact contents, config (exit 1 if they differ).
    Diff(diff::DiffArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff): `orchestrator man > orchestrator.1`.
    Man,
}

/// Run the parsed command; the `Ok` value is the exit code (commands that
/// find problems, like `verify`, succeed with a non-zero code).
pub fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    use orchestrator::error::exit::SUCCESS;
    table::init_color(cli.global.color);
    // Once, for every command, before any of them opens or creates it.
    if let Some(db) = &cli.global.db
        && !db
            .to_str()
            .is_some_and(orchestrator::registry::db::PgTarget::is_url)
    {
        orchestrator::output_path::check_registry_location(db, &cli.global.artifacts_dir)?;
    }
    let result = match cli.command {
        Command::Run(args) => run::run(&cli.global, &args).map(|()| SUCCESS),
        Command::Runs(cmd) => runs::run(&cli.global, &cmd).map(|()| SUCCESS),
        Command::Lineage(args) => lineage::run(&cli.global, &args).map(|()| SUCCESS),
        Command::Verify(args) => verify::run(&cli.global, &args),
        Command::Package(args) => package::run(&cli.global, &args).map(|()| SUCCESS),
        Command::Gc(args) => gc::run(&cli.global, &args).map(|()| SUCCESS),
        Command::Reindex(args) => reindex::run(&cli.global, &args),
        Command::Registry(cmd) => registry::run(&cli.global, &cmd).map(|()| SUCCESS),
        Command::Export(args) => export::run(&cli.global, &args).map(|()| SUCCESS),
        Command::Diff(args) => diff::run(&cli.global, &args),
        Command::Completions(args) => completions::completions(&args).map(|()| SUCCESS),
        Command::Man => completions::man().map(|()| SUCCESS),
    };
    result.map_err(|e| name_damaged_registry(e, &cli.global.db_path()))
}

/// SQLite reports a damaged file when a query first touches a bad page,
/// which can be long after the open succeeded and deep inside any registry
/// function. Turn such an error into one that names the file and the way
/// out (exit 3, `reindex`) here, once, instead of in every query.
fn name_damaged_registry(err: anyhow::Error, db: &std::path::Path) -> anyhow::Error {
    use orchestrator::Error;
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    let already_named = err.chain().any(|c| {
        matches!(
            c.downcast_ref::<Error>(),
            Some(
                Error::RegistryUnusable { .. }
                    | Error::NotARegistry { .. }
                    | Error::RegistryIncompatible { .. }
            )
        )
    });
    let code = err.chain().find_map(|c| match c.downcast_ref::<Error>() {
        Some(Error::Sql(e)) => e.sqlite_code(),
        _ => c
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code),
    });
    let message = match code {
        _ if already_named => return err,
        Some(DatabaseCorrupt) => "it is corrupt",
        Some(NotADatabase) => "it is not a SQLite database",
        _ => return err,
    };
    Error::RegistryUnusable {
        path: db.to_path_buf(),
        message: message.to_string(),
        source: Some(err.into()),
    }
    .into()
}
