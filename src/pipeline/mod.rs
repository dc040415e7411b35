//! The five-stage pipeline: the stage trait, the stub stages and the runner
//! that decides, from the registry, which stages to execute.

pub mod rng;
pub mod runner;
pub mod stage;
pub mod stages;

pub use runner::{RunOptions, RunOutcome, RunReport, StageReport, StageStatus, run_pipeline};
pub use stage::{Stage, StageContext};
pub use stages::default_stages;
