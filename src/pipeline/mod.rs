//! The five-stage pipeline: the stage trait, the stub stages and the runner
//! that decides, from the registry, which stages to execute.

mod decide;
pub mod plan;
pub mod rng;
pub mod runner;
pub mod stage;
pub mod stages;
pub mod summary;

pub use plan::{Action, PlannedStage, RunPlan, plan_run};
pub use runner::{RunOptions, RunOutcome, run_pipeline};
pub use stage::{Stage, StageContext};
pub use stages::default_stages;
pub use summary::{RunReport, StageReport, StageStatus};
