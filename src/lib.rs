//! `orchestrator`: a deterministic, schema-validated, resumable five-stage
//! film pipeline whose artifacts are indexed in a SQLite registry.
//!
//! This crate is the core: it returns values and typed errors and never
//! prints or exits. The `orchestrator` binary (`src/main.rs`, `src/cli/`)
//! decides how results look.

pub mod artifact;
pub mod clock;
pub mod config;
pub mod diff;
pub mod error;
pub mod export;
pub mod failpoint;
pub mod gc;
pub mod lineage;
pub mod lock;
pub mod output_path;
pub mod package;
pub mod path_text;
pub mod pipeline;
pub mod registry;
pub mod regular_file;
pub mod reindex;
pub mod schema;
pub mod verify;
pub mod workspace;

pub use error::{Error, Result};

/// This build's version, recorded in every meta record and run.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
