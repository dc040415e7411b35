//! `orchestrator lineage`: resolve a target, walk its lineage, and render
//! the graph as a tree, JSON, Graphviz DOT or a Mermaid flowchart.
//!
//! JSON keeps the core's orientation (`{"child", "parent"}` edges). DOT and
//! Mermaid draw each edge the way data flowed, parent -> child ("was used to
//! make"), so Script sits at the top of the picture whichever way the walk
//! went.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context;
use serde::Serialize;

use super::GlobalArgs;
use orchestrator::artifact::short_sha;
use orchestrator::lineage::{self, Direction, Lineage, LineageNode, Scope};
use orchestrator::output_path::{check_output_path, write_output_atomic};

#[derive(Debug, clap::Args)]
pub struct LineageArgs {
    /// Artifact type name (`RenderOutput`), sha256 or unique prefix (at
    /// least 4 hex characters), or path to an artifact file.
    pub target: String,

    /// Look the target up in this run (id or unique prefix).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,

    /// Look the target up in this project (a type name: its newest run that
    /// has one).
    #[arg(long, value_name = "PROJECT")]
    pub project: Option<String>,

    /// Show what was made from the target instead of what it was made from.
    #[arg(long)]
    pub descendants: bool,

    /// Follow at most N edges from the target [default: all of them, up to
    /// 64].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub depth: Option<u32>,

    /// How to print the graph. `dot` and `mermaid` draw edges parent -> child.
    #[arg(long, value_enum, default_value_t = Format::Tree)]
    pub format: Format,

    /// The same as `--format json`, as on every other query command.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// Write to FILE (atomically) instead of stdout, as `export --output`
    /// does: never inside the artifacts directory, over the registry's
    /// files or through a symlink.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

/// Output formats of `orchestrator lineage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Box-drawing tree rooted at the target.
    Tree,
    /// `{"root", "nodes", "edges"}` for scripts.
    Json,
    /// Graphviz digraph (`dot -Tsvg`).
    Dot,
    /// Mermaid flowchart, renders in Markdown.
    Mermaid,
}

pub fn run(global: &GlobalArgs, args: &LineageArgs) -> anyhow::Result<()> {
    // Checked before anything is read, so a refused path costs nothing.
    let output = args
        .output
        .as_deref()
        .map(|path| check_output_path(path, &global.artifacts_dir, &global.db_path()))
        .transpose()?;
    let ws = global.workspace()?;
    let registry = ws.open_existing()?;
    let liveness = ws.liveness(&registry)?;
    let live = |project: &str, run: &str| liveness.is_live(project, run);
    let scope = Scope {
        run: args.run.as_deref(),
        project: args.project.as_deref(),
    };
    let target =
        lineage::resolve_target(&registry, &args.target, scope, &global.artifacts_dir, &live)?;
    let direction = if args.descendants {
        Direction::Descendants
    } else {
        Direction::Ancestors
    };
    let graph = lineage::lineage(&registry, &target, direction, args.depth)?;
    let format = if args.json { Format::Json } else { args.format };
    let text = match format {
        Format::Tree => tree(&graph),
        Format::Json => json(&graph)?,
        Format::Dot => dot(&graph),
        Format::Mermaid => mermaid(&graph),
    };
    if let Some(out) = &output {
        return Ok(write_output_atomic(out, text.as_bytes())?);
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

/// `ShotList 278340eba657  stage2_script_to_shotlist  run a099278345b0ccbc`
fn tree_line(n: &LineageNode) -> String {
    format!(
        "{} {}  {}  run {}",
        n.artifact_type,
        short_sha(&n.sha256),
        n.stage_name,
        n.run_id
    )
}

/// The graph as a tree rooted at the target. A node reached again (the
/// AssetManifest reaches Script directly and through ShotList) is printed
/// under each of its parents, but its own lineage only the first time;
/// later copies that would have had more below them are marked `(*)`, as
/// `cargo tree` does. That keeps the output at one line per edge, and finite
/// on a cycle.
fn tree(g: &Lineage) -> String {
    let mut out = String::new();
    let Some(root) = g.node(&g.root) else {
        return out;
    };
    out.push_str(&tree_line(root));
    out.push('\n');

    let mut expanded: BTreeSet<&str> = BTreeSet::from([root.sha256.as_str()]);
    let mut repeated = false;
    // An explicit stack rather than recursion: the depth of a hand-made
    // graph is bounded by the walk, not by anything the call stack knows.
    // Each frame is (indent, the nodes still to print at that level).
    let mut stack: Vec<(String, std::vec::IntoIter<&LineageNode>)> =
        vec![(String::new(), g.next(&root.sha256).into_iter())];
    while let Some((indent, rest)) = stack.last_mut() {
        let Some(node) = rest.next() else {
            stack.pop();
            continue;
        };
        let last = rest.len() == 0;
        let (branch, below) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let first_time = expanded.insert(node.sha256.as_str());
        let next = g.next(&node.sha256);
        let marker = if !first_time && !next.is_empty() {
            repeated = true;
            " (*)"
        } else {
            ""
        };
        let _ = writeln!(out, "{indent}{branch}{}{marker}", tree_line(node));
        if first_time && !next.is_empty() {
            let indent = format!("{indent}{below}");
            stack.push((indent, next.into_iter()));
        }
    }
    if repeated {
        out.push_str("(*) shown above; its lineage is not repeated\n");
    }
    out
}

/// The documented `--format json` contract.
#[derive(Serialize)]
struct JsonGraph<'a> {
    root: &'a str,
    nodes: Vec<JsonNode<'a>>,
    edges: Vec<JsonEdge<'a>>,
}

#[derive(Serialize)]
struct JsonNode<'a> {
    sha256: &'a str,
    artifact_type: &'a str,
    run_id: &'a str,
    project_id: &'a str,
    stage: u8,
    path: &'a str,
}

#[derive(Serialize)]
struct JsonEdge<'a> {
    child: &'a str,
    parent: &'a str,
}

fn json(g: &Lineage) -> anyhow::Result<String> {
    let graph = JsonGraph {
        root: &g.root,
        nodes: g
            .nodes
            .iter()
            .map(|n| JsonNode {
                sha256: &n.sha256,
                artifact_type: &n.artifact_type,
                run_id: &n.run_id,
                project_id: &n.project_id,
                stage: n.stage,
                path: &n.path,
            })
            .collect(),
        edges: g
            .edges
            .iter()
            .map(|e| JsonEdge {
                child: &e.child,
                parent: &e.parent,
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&graph).context("encoding the lineage")?;
    text.push('\n');
    Ok(text)
}

/// A DOT double-quoted string: only `"` and `\` need escaping, and a
/// newline is written as the `\n` escape so the id stays on one line.
fn dot_quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// A Graphviz digraph: nodes are quoted full hashes labelled with type and
/// short hash, the root drawn bold, edges parent -> child.
fn dot(g: &Lineage) -> String {
    let mut out = String::from("digraph lineage {\n");
    out.push_str("  // edges point from an artifact to what was made from it (parent -> child)\n");
    out.push_str("  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n");
    for n in &g.nodes {
        let label = format!("{}\n{}", n.artifact_type, short_sha(&n.sha256));
        let bold = if n.sha256 == g.root {
            ", style=bold"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {} [label={}{bold}];",
            dot_quote(&n.sha256),
            dot_quote(&label)
        );
    }
    for e in &g.edges {
        let _ = writeln!(
            out,
            "  {} -> {};",
            dot_quote(&e.parent),
            dot_quote(&e.child)
        );
    }
    out.push_str("}\n");
    out
}

/// Mermaid node ids: `n_<short hash>`, with anything but ASCII letters and
/// digits replaced, and a numeric suffix in the (hand-made) case of two
/// nodes sharing a short hash. Returned in node order.
fn mermaid_ids(g: &Lineage) -> Vec<String> {
    let mut used = BTreeSet::new();
    g.nodes
        .iter()
        .map(|n| {
            let base: String = std::iter::once("n_".to_string())
                .chain(short_sha(&n.sha256).chars().map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_string()
                    } else {
                        "_".to_string()
                    }
                }))
                .collect();
            let mut id = base.clone();
            let mut k = 2;
            while !used.insert(id.clone()) {
                id = format!("{base}_{k}");
                k += 1;
            }
            id
        })
        .collect()
}

/// Text inside a quoted Mermaid label: `"` would end it and `<`/`>` would be
/// read as HTML, so they become entity codes.
fn mermaid_text(s: &str) -> String {
    s.replace('#', "#35;")
        .replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

/// A Mermaid flowchart, top-down, edges parent --> child, root highlighted.
fn mermaid(g: &Lineage) -> String {
    let ids = mermaid_ids(g);
    let id_of = |sha: &str| {
        g.nodes
            .iter()
            .position(|n| n.sha256 == sha)
            .and_then(|i| ids.get(i))
    };
    let mut out = String::from("flowchart TD\n");
    out.push_str("  %% edges point from an artifact to what was made from it (parent --> child)\n");
    for (n, id) in g.nodes.iter().zip(&ids) {
        let _ = writeln!(
            out,
            "  {id}[\"{}<br/>{}\"]",
            mermaid_text(&n.artifact_type),
            mermaid_text(&short_sha(&n.sha256))
        );
    }
    for e in &g.edges {
        if let (Some(parent), Some(child)) = (id_of(&e.parent), id_of(&e.child)) {
            let _ = writeln!(out, "  {parent} --> {child}");
        }
    }
    if let Some(root) = id_of(&g.root) {
        out.push_str("  classDef root stroke-width:3px\n");
        let _ = writeln!(out, "  class {root} root");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_quote_escapes_what_would_end_the_string() {
        assert_eq!(dot_quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }

    #[test]
    fn mermaid_text_leaves_no_quote_or_tag() {
        let t = mermaid_text("a\"<b>#");
        assert!(!t.contains(['"', '<', '>']), "{t}");
    }
}
