//! Writes that need no commit of their own, and the one function every
//! commit of a run goes through, which carries them.
//!
//! A skipped stage changes nothing on disk, and a run that has changed
//! nothing yet needs no row saying it began: losing either to a kill loses
//! only the note that nothing happened. So they wait for the next
//! transaction that must happen, written ahead of its own rows so that rows
//! keep their order.

use super::summary::{SummaryRecord, SummaryTarget};
use crate::artifact::ComputeOrigin;
use crate::config::LoadedConfig;
use crate::error::{Error, Result};
use crate::registry::{ExecutionRecord, NewRun, Registry, Tx};

/// The run's begin row, until a transaction writes it.
pub(crate) struct Begin {
    /// `<project>/<run>`, relative to the artifacts directory.
    pub(crate) run_dir: String,
    pub(crate) started_at: String,
    /// What the registry must answer: [`Registry::next_attempt`] said so.
    pub(crate) attempt: u32,
}

/// Writes that need no commit of their own; the next transaction carries
/// them, ahead of its own rows, so rows keep their order.
pub(crate) struct Unwritten {
    pub(crate) begin: Option<Begin>,
    /// Skipped stages' rows.
    pub(crate) rows: Vec<ExecutionRecord>,
    /// The summary the run started with, written to disk, and when.
    pub(crate) summary: Option<(SummaryRecord, String)>,
}

/// One transaction: whatever is `unwritten`, then `f`'s writes. The
/// unwritten part is dropped only once committed, so a failed commit
/// leaves it for the next.
pub(crate) fn commit<T>(
    registry: &mut Registry,
    unwritten: &mut Unwritten,
    run: &Fixed<'_>,
    mut f: impl FnMut(&Tx<'_>) -> Result<T>,
) -> Result<T> {
    let out = registry.transaction(|tx| {
        if let Some(begin) = &unwritten.begin {
            let attempt = tx.begin_run(&run.new_run(begin))?;
            if attempt != begin.attempt {
                return Err(Error::Inconsistent(format!(
                    "run {} began attempt {attempt} while this process held its lock \
                     (was another --artifacts-dir used with the same registry?)",
                    run.summary.run_rel
                )));
            }
        }
        for e in &unwritten.rows {
            tx.record_execution(e)?;
        }
        if let Some((written, at)) = &unwritten.summary {
            run.summary.record(tx, written, at)?;
        }
        f(tx)
    })?;
    *unwritten = Unwritten {
        begin: None,
        rows: Vec::new(),
        summary: None,
    };
    Ok(out)
}

/// What stays the same for the whole run.
pub(crate) struct Fixed<'a> {
    pub(crate) config: &'a LoadedConfig,
    pub(crate) origin: &'a ComputeOrigin,
    pub(crate) summary: &'a SummaryTarget<'a>,
}

impl Fixed<'_> {
    pub(crate) fn new_run<'b>(&'b self, begin: &'b Begin) -> NewRun<'b> {
        let cfg = &self.config.config;
        NewRun {
            project_id: &cfg.project_id,
            title: &cfg.title,
            run_id: &self.summary.run_id,
            config_hash: &self.config.config_hash,
            config_json: &self.config.canonical_json,
            run_dir: &begin.run_dir,
            started_at: &begin.started_at,
            orchestrator_version: &self.origin.orchestrator_version,
            host: &self.origin.host,
            config_path: Some(&self.config.source),
        }
    }
}
