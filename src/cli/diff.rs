//! `orchestrator diff RUN_A RUN_B`: which stages produced different outputs,
//! what changed inside them, and how the configs differ — as text, or as
//! JSON with one RFC 6902 JSON Patch per differing artifact.
//!
//! Exit status follows diff(1): 0 when every stage has the same output in
//! both runs, 1 when any differs; errors keep their documented codes (2 for
//! an unknown run or an artifact that no longer matches the registry).

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context;
use serde_json::{Value, json};

use super::GlobalArgs;
use super::table::{new_table, printable};
use orchestrator::artifact::short_sha;
use orchestrator::diff::{Change, Counts, Op, RunDiff, StageStatus, diff_runs};
use orchestrator::error::exit;
use orchestrator::registry::RunRow;
use orchestrator::registry::RunStatus;

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The run to compare from (id or unique prefix).
    pub run_a: String,

    /// The run to compare to (id or unique prefix).
    pub run_b: String,

    /// Look both runs up only in this project.
    #[arg(long, value_name = "P")]
    pub project: Option<String>,

    /// Print JSON (with an RFC 6902 patch per differing artifact) instead of
    /// text.
    #[arg(long)]
    pub json: bool,

    /// Show (and, with --json, put in each patch) at most N changed paths
    /// per artifact; the counts always cover all of them.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_paths: u32,

    /// Every changed path, in the text and in complete JSON patches (can be
    /// large: two runs of thousands of scenes differ in millions of paths).
    #[arg(long, conflicts_with = "max_paths")]
    pub full: bool,
}

pub fn run(global: &GlobalArgs, args: &DiffArgs) -> anyhow::Result<u8> {
    let ws = global.workspace()?;
    let registry = ws.open_existing()?;
    let liveness = ws.liveness(&registry)?;
    let live = |project: &str, run: &str| liveness.is_live(project, run);
    let a = registry.resolve_run(&args.run_a, args.project.as_deref(), &live)?;
    let b = registry.resolve_run(&args.run_b, args.project.as_deref(), &live)?;
    for r in [&a, &b]
        .into_iter()
        .filter(|r| r.status == RunStatus::Running)
    {
        eprintln!(
            "note: run {} is in progress; comparing what it has recorded so far",
            r.run_id
        );
    }
    let cap = (!args.full).then_some(args.max_paths as usize);
    let diff = diff_runs(&registry, &global.artifacts_dir, a, b, cap)?;
    // Written as it is encoded, never built whole in memory first.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &json_report(&diff))
            .context("writing the diff to stdout")?;
        out.write_all(b"\n").context("writing to stdout")?;
    } else {
        out.write_all(text_report(&diff).as_bytes())
            .context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")?;
    Ok(if diff.identical() {
        exit::SUCCESS
    } else {
        exit::PROBLEM
    })
}

fn run_json(r: &RunRow) -> Value {
    json!({
        "project_id": r.project_id,
        "run_id": r.run_id,
        "status": r.status,
        "config_hash": r.config_hash,
    })
}

fn change_json(c: &Change) -> Value {
    json!({"op": c.op, "path": c.path, "old": c.old, "new": c.new})
}

/// The documented `--json` shape.
fn json_report(d: &RunDiff) -> Value {
    let stages: Vec<Value> = d
        .stages
        .iter()
        .map(|s| {
            let different = s.status == StageStatus::Different;
            json!({
                "stage": s.stage,
                "artifact_type": s.artifact_type,
                "status": s.status,
                "sha256_a": s.sha256_a,
                "sha256_b": s.sha256_b,
                "counts": different.then_some(s.counts),
                "truncated": different.then(|| s.truncated()),
                "patch": different.then(|| s.changes.iter().map(Change::to_patch_op).collect::<Vec<_>>()),
            })
        })
        .collect();
    json!({
        "identical": d.identical(),
        "run_a": run_json(&d.run_a),
        "run_b": run_json(&d.run_b),
        "config_changes": d.config.iter().map(change_json).collect::<Vec<_>>(),
        "first_divergence": d.first_divergence().map(|s| json!({
            "stage": s.stage,
            "artifact_type": s.artifact_type,
        })),
        "stages": stages,
    })
}

/// A JSON value on one line, shortened to about `max` characters.
fn brief(v: &Value, max: usize) -> String {
    let s = v.to_string();
    if s.chars().count() <= max {
        return s;
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}

fn change_line(c: &Change) -> String {
    let none = Value::Null;
    // A pointer holds the config's and artifacts' own keys, which may hold
    // ESC or BEL; values are JSON text, where they are escaped already.
    let path = printable(&c.path);
    match c.op {
        Op::Replace => format!(
            "  ~ {}: {} → {}",
            path,
            brief(c.old.as_ref().unwrap_or(&none), 60),
            brief(c.new.as_ref().unwrap_or(&none), 60)
        ),
        Op::Add => format!(
            "  + {}: {}",
            path,
            brief(c.new.as_ref().unwrap_or(&none), 100)
        ),
        Op::Remove => format!(
            "  - {}: {}",
            path,
            brief(c.old.as_ref().unwrap_or(&none), 100)
        ),
    }
}

fn counts_text(c: Counts) -> String {
    format!(
        "{} changed, {} added, {} removed",
        c.changed, c.added, c.removed
    )
}

fn paths_word(n: usize) -> &'static str {
    if n == 1 {
        "path differs"
    } else {
        "paths differ"
    }
}

fn status_text(s: StageStatus) -> &'static str {
    match s {
        StageStatus::Same => "same",
        StageStatus::Different => "different",
        StageStatus::OnlyInA => "only in A",
        StageStatus::OnlyInB => "only in B",
        StageStatus::Neither => "in neither",
    }
}

fn text_report(d: &RunDiff) -> String {
    let mut out = String::new();
    for (label, r) in [("A", &d.run_a), ("B", &d.run_b)] {
        let _ = writeln!(
            out,
            "{label}  run {}  ({}, {}, config {})",
            r.run_id,
            r.project_id,
            r.status,
            short_sha(&r.config_hash)
        );
    }
    out.push('\n');
    let shown = |out: &mut String, changes: &[Change], total: usize| {
        for c in changes {
            let _ = writeln!(out, "{}", change_line(c));
        }
        if total > changes.len() {
            let _ = writeln!(
                out,
                "  … {} more not shown (--max-paths N shows more, --full all)",
                total - changes.len()
            );
        }
    };
    if d.config.is_empty() {
        out.push_str("config: same\n");
    } else {
        let c = Counts::of(&d.config);
        let _ = writeln!(
            out,
            "config: {} {} ({})",
            c.total(),
            paths_word(c.total()),
            counts_text(c)
        );
        shown(&mut out, &d.config, d.config.len());
    }
    out.push('\n');

    let mut table = new_table(&["STAGE", "ARTIFACT", "A", "B", "RESULT"]);
    for s in &d.stages {
        let sha = |x: &Option<String>| x.as_deref().map_or_else(|| "-".to_string(), short_sha);
        let result = match s.status {
            StageStatus::Different => {
                let n = s.counts.total();
                format!("different ({n} {})", paths_word(n))
            }
            other => status_text(other).to_string(),
        };
        table.add_row(vec![
            s.stage.to_string(),
            s.artifact_type.clone(),
            sha(&s.sha256_a),
            sha(&s.sha256_b),
            result,
        ]);
    }
    let _ = writeln!(out, "{table}");

    for s in d
        .stages
        .iter()
        .filter(|s| s.status == StageStatus::Different)
    {
        let c = s.counts;
        let _ = writeln!(
            out,
            "\n{} (stage {}): {} {} ({})",
            s.artifact_type,
            s.stage,
            c.total(),
            paths_word(c.total()),
            counts_text(c)
        );
        shown(&mut out, &s.changes, c.total());
    }
    out.push('\n');
    match d.first_divergence() {
        Some(s) => {
            let _ = writeln!(
                out,
                "first divergence: stage {} ({}, {})",
                s.stage,
                s.artifact_type,
                status_text(s.status)
            );
        }
        None => out.push_str("identical: every stage has the same output in both runs\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_shortens_by_characters() {
        assert_eq!(brief(&json!("é".repeat(10)), 4), "\"ééé…");
        assert_eq!(brief(&json!(12), 4), "12");
    }
}
