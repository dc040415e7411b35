//! The five-stage pipeline: the stage trait, the stub stages and the runner
//! that decides, from the registry, which stages to execute.

mod commit;
mod decide;
mod execute;
pub mod plan;
pub mod rng;
mod rundir;
pub mod runner;
pub mod stage;
pub mod stages;
pub mod summary;
pub mod take;

pub use plan::{Action, PlannedStage, RunPlan, plan_run};
pub use runner::{LockedRun, RunOptions, RunOutcome, lock_run, lock_run_in_registry, run_pipeline};
pub use stage::{Stage, StageContext};
pub use stages::default_stages;
pub use summary::{RunReport, StageReport, StageStatus};
