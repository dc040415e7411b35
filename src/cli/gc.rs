//! `orchestrator gc`: show (by default) or remove (`--yes`) runs that are
//! no longer wanted, and finish any deletion an earlier gc left undone.

use std::io::Write;

use anyhow::Context;
use chrono::Utc;

use super::GlobalArgs;
use super::table::new_table;
use super::when::parse_when;
use orchestrator::clock::rfc3339;
use orchestrator::gc::{Doomed, Kept, Left, Selection, apply, delete, plan};

#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("selector")
        .required(true)
        .multiple(true)
        .args(["run", "keep_last", "older_than"])
))]
pub struct GcArgs {
    /// Remove this run (id or unique prefix).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,

    /// Keep the newest N runs of each project; select the rest.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,

    /// Select runs started before DATE (2026-11-24, RFC 3339, or an age: 90m, 12h, 7d, 2w).
    #[arg(long, value_name = "DATE")]
    pub older_than: Option<String>,

    /// Only consider runs of this project.
    #[arg(long, value_name = "P")]
    pub project: Option<String>,

    /// Delete. Without it, gc only shows what it would remove.
    #[arg(long)]
    pub yes: bool,

    /// Print the plan (or what was removed) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &GlobalArgs, args: &GcArgs) -> anyhow::Result<()> {
    let ws = global.workspace()?;
    let mut registry = ws.open_for_gc(args.yes, orchestrator::registry::BUSY_TIMEOUT)?;
    let liveness = ws.liveness(&registry)?;
    let live = |project: &str, run: &str| liveness.is_live(project, run);
    let now = Utc::now();
    let run = match args.run.as_deref() {
        None => None,
        Some(id) => match registry.resolve_run(id, args.project.as_deref(), &live) {
            Ok(row) => Some(row),
            // A run whose rows an interrupted gc already deleted is known
            // only by its marked directory, which every plan finishes.
            Err(_) if is_interrupted(&global.artifacts_dir, id, args.project.as_deref()) => None,
            Err(e) => return Err(e.into()),
        },
    };
    // `--run` naming only an interrupted deletion selects no other run:
    // keeping the newest usize::MAX of each project selects none.
    let nothing_else = args.run.is_some() && run.is_none();
    let selection = Selection {
        run,
        keep_last: if nothing_else {
            Some(usize::MAX)
        } else {
            args.keep_last
        },
        older_than: args
            .older_than
            .as_deref()
            .map(|s| parse_when("--older-than", s, now))
            .transpose()?,
        project: args.project.clone(),
    };
    let plan = plan(&registry, &global.artifacts_dir, &selection, &live)?;
    let mut out = std::io::stdout().lock();
    if !args.yes {
        if args.json {
            let value = serde_json::json!({
                "dry_run": true,
                "remove": plan.remove,
                "finish": plan.finish,
                "kept": plan.kept,
                "bytes": plan.bytes,
            });
            serde_json::to_writer_pretty(&mut out, &value)?;
            writeln!(out)?;
        } else {
            print_runs(&mut out, &plan.remove, &plan.finish, &plan.kept, &[])?;
            writeln!(
                out,
                "would remove {} ({} bytes); nothing was deleted: pass --yes to delete",
                plural(plan.remove.len() + plan.finish.len()),
                plan.bytes
            )?;
        }
        return Ok(());
    }
    let outcome = apply(&mut registry, &global.artifacts_dir, &plan, &rfc3339(now)).context(
        "gc stopped; a run it was deleting stays marked as being deleted (`verify` reports it), \
         and any later `gc --yes` finishes it: `orchestrator gc --older-than 1970-01-01 --yes` \
         finishes it and selects no other run",
    )?;
    let mut kept = plan.kept.clone();
    kept.extend(outcome.skipped.iter().cloned());
    if args.json {
        let value = serde_json::json!({
            "dry_run": false,
            "removed": outcome.removed,
            "finished": outcome.finished,
            "kept": kept,
            "left": outcome.left,
            "bytes_freed": outcome.bytes_freed,
        });
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        print_runs(
            &mut out,
            &outcome.removed,
            &outcome.finished,
            &kept,
            &outcome.left,
        )?;
        writeln!(
            out,
            "removed {}, freed {} bytes",
            plural(outcome.removed.len() + outcome.finished.len()),
            outcome.bytes_freed
        )?;
    }
    for l in outcome.left.iter().filter(|_| args.json) {
        eprintln!(
            "note: left `{}` in place: {}; its directory stays",
            l.path, l.reason
        );
    }
    Ok(())
}

/// Whether the artifacts tree holds an interrupted deletion of run `id`.
fn is_interrupted(artifacts_dir: &std::path::Path, id: &str, project: Option<&str>) -> bool {
    delete::interrupted(artifacts_dir, project)
        .iter()
        .any(|i| i.run_id == id)
}

fn print_runs(
    out: &mut impl Write,
    remove: &[Doomed],
    finish: &[Doomed],
    kept: &[Kept],
    left: &[Left],
) -> std::io::Result<()> {
    if !remove.is_empty() || !finish.is_empty() {
        let mut table = new_table(&["RUN ID", "PROJECT", "STATUS", "CREATED", "FILES", "BYTES"]);
        for d in finish.iter().chain(remove) {
            table.add_row(vec![
                d.run_id.clone(),
                d.project_id.clone(),
                d.status.clone(),
                d.created_at.clone(),
                d.files.to_string(),
                d.bytes.to_string(),
            ]);
        }
        writeln!(out, "{table}")?;
    }
    for d in finish {
        writeln!(
            out,
            "{}/{}: an earlier gc was interrupted while deleting it; this one finishes",
            d.project_id, d.run_id
        )?;
    }
    for k in kept {
        writeln!(out, "kept {}/{}: {}", k.project_id, k.run_id, k.reason)?;
    }
    for l in left {
        writeln!(out, "left {}: {}", l.path, l.reason)?;
    }
    Ok(())
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 run".to_string()
    } else {
        format!("{n} runs")
    }
}
