//! `orchestrator lineage` on real example runs: every type in both
//! directions, addressed by type, hash prefix and path, in every format
//! (JSON against its contract, DOT and Mermaid parsed back into graphs, the
//! tree read back through its indentation), plus scoping, depth, errors and
//! a cycle inserted by hand.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::time::Duration;

use common::{STAGE_EDGES, TYPES, Workspace, example_config};
use serde_json::Value;

type Edges = &'static [(&'static str, &'static str)];

/// (target type, descendants?, node types, edges child -> parent), written
/// out rather than computed so the test cannot share a bug with the code.
const EXPECTED: [(&str, bool, &[&str], Edges); 10] = [
    ("Script", false, &["Script"], &[]),
    (
        "ShotList",
        false,
        &["Script", "ShotList"],
        &[("ShotList", "Script")],
    ),
    (
        "AssetManifest",
        false,
        &["Script", "ShotList", "AssetManifest"],
        &[
            ("ShotList", "Script"),
            ("AssetManifest", "ShotList"),
            ("AssetManifest", "Script"),
        ],
    ),
    (
        "RenderPlan",
        false,
        &["Script", "ShotList", "AssetManifest", "RenderPlan"],
        &[
            ("ShotList", "Script"),
            ("AssetManifest", "ShotList"),
            ("AssetManifest", "Script"),
            ("RenderPlan", "AssetManifest"),
            ("RenderPlan", "ShotList"),
        ],
    ),
    ("RenderOutput", false, &TYPES, &STAGE_EDGES),
    ("Script", true, &TYPES, &STAGE_EDGES),
    (
        "ShotList",
        true,
        &["ShotList", "AssetManifest", "RenderPlan", "RenderOutput"],
        &[
            ("AssetManifest", "ShotList"),
            ("RenderPlan", "AssetManifest"),
            ("RenderPlan", "ShotList"),
            ("RenderOutput", "RenderPlan"),
            ("RenderOutput", "ShotList"),
        ],
    ),
    (
        "AssetManifest",
        true,
        &["AssetManifest", "RenderPlan", "RenderOutput"],
        &[
            ("RenderPlan", "AssetManifest"),
            ("RenderOutput", "RenderPlan"),
        ],
    ),
    (
        "RenderPlan",
        true,
        &["RenderPlan", "RenderOutput"],
        &[("RenderOutput", "RenderPlan")],
    ),
    ("RenderOutput", true, &["RenderOutput"], &[]),
];

/// One finished example run and what its summary says about it.
struct Example {
    ws: Workspace,
    project_id: String,
    run_id: String,
    /// type -> sha256
    sha: BTreeMap<String, String>,
    /// type -> (stage number, stage name)
    stage: BTreeMap<String, (u64, String)>,
}

impl Example {
    fn new() -> Self {
        let (ws, summary) = common::example_run();
        Self::from_summary(ws, &summary)
    }

    fn from_summary(ws: Workspace, summary: &Value) -> Self {
        let mut sha = BTreeMap::new();
        let mut stage = BTreeMap::new();
        for s in summary["stages"].as_array().unwrap() {
            let ty = s["artifact_type"].as_str().unwrap().to_string();
            sha.insert(ty.clone(), s["sha256"].as_str().unwrap().to_string());
            stage.insert(
                ty,
                (
                    s["stage"].as_u64().unwrap(),
                    s["name"].as_str().unwrap().to_string(),
                ),
            );
        }
        assert_eq!(sha.len(), 5, "{summary}");
        Example {
            ws,
            project_id: summary["project_id"].as_str().unwrap().to_string(),
            run_id: summary["run_id"].as_str().unwrap().to_string(),
            sha,
            stage,
        }
    }

    fn rel_path(&self, ty: &str) -> String {
        format!("{}/{}/{ty}.json", self.project_id, self.run_id)
    }

    fn type_of(&self, sha: &str) -> String {
        self.sha
            .iter()
            .find(|(_, s)| *s == sha)
            .map(|(t, _)| t.clone())
            .unwrap_or_else(|| panic!("{sha} is not an artifact of the example run"))
    }

    fn lineage(&self, args: &[&str]) -> Output {
        lineage(&self.ws, args)
    }

    /// `lineage --format json <args>`, checked against the contract and
    /// against this run, as a graph of type names.
    fn graph(&self, args: &[&str]) -> TypeGraph {
        let json = json_ok(&self.ws, args);
        self.typed(&json)
    }

    fn typed(&self, json: &Value) -> TypeGraph {
        let g = contract(json);
        for (sha, node) in &g.nodes {
            let ty = self.type_of(sha);
            assert_eq!(node["artifact_type"], ty.as_str());
            assert_eq!(node["run_id"], self.run_id.as_str());
            assert_eq!(node["project_id"], self.project_id.as_str());
            assert_eq!(node["stage"], self.stage[&ty].0);
            assert_eq!(node["path"], self.rel_path(&ty).as_str());
        }
        TypeGraph {
            root: self.type_of(&g.root),
            nodes: g.nodes.keys().map(|s| self.type_of(s)).collect(),
            edges: g
                .edges
                .iter()
                .map(|(c, p)| (self.type_of(c), self.type_of(p)))
                .collect(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct TypeGraph {
    root: String,
    nodes: BTreeSet<String>,
    /// child -> parent
    edges: BTreeSet<(String, String)>,
}

fn type_graph(root: &str, nodes: &[&str], edges: &[(&str, &str)]) -> TypeGraph {
    TypeGraph {
        root: root.to_string(),
        nodes: nodes.iter().map(|s| s.to_string()).collect(),
        edges: edges
            .iter()
            .map(|(c, p)| (c.to_string(), p.to_string()))
            .collect(),
    }
}

/// A JSON lineage graph by sha256, after checking the contract.
struct ShaGraph {
    root: String,
    nodes: BTreeMap<String, Value>,
    /// (child, parent)
    edges: BTreeSet<(String, String)>,
}

/// Check `json` is exactly `{"root", "nodes": [{sha256, artifact_type,
/// run_id, project_id, stage, path}], "edges": [{child, parent}]}` with
/// unique nodes in stage order, unique sorted edges between known nodes and
/// the root among the nodes.
fn contract(json: &Value) -> ShaGraph {
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_object()
            .unwrap_or_else(|| panic!("not an object: {v}"))
            .keys()
            .cloned()
            .collect()
    };
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| s.to_string()).collect() };
    assert_eq!(keys(json), set(&["root", "nodes", "edges"]));
    let root = json["root"].as_str().unwrap().to_string();
    assert_eq!(root.len(), 64);

    let mut nodes = BTreeMap::new();
    let mut stages = Vec::new();
    for n in json["nodes"].as_array().unwrap() {
        assert_eq!(
            keys(n),
            set(&[
                "sha256",
                "artifact_type",
                "run_id",
                "project_id",
                "stage",
                "path"
            ])
        );
        for k in ["sha256", "artifact_type", "run_id", "project_id", "path"] {
            assert!(n[k].is_string(), "{k} in {n}");
        }
        stages.push(n["stage"].as_u64().unwrap());
        let sha = n["sha256"].as_str().unwrap().to_string();
        assert!(nodes.insert(sha, n.clone()).is_none(), "duplicate node {n}");
    }
    assert!(stages.is_sorted(), "nodes not in stage order: {stages:?}");
    assert!(nodes.contains_key(&root), "root {root} is not a node");

    let mut edges = Vec::new();
    for e in json["edges"].as_array().unwrap() {
        assert_eq!(keys(e), set(&["child", "parent"]));
        let child = e["child"].as_str().unwrap().to_string();
        let parent = e["parent"].as_str().unwrap().to_string();
        assert!(
            nodes.contains_key(&child) && nodes.contains_key(&parent),
            "{e}"
        );
        edges.push((child, parent));
    }
    // Sorted by the child's place in `nodes`, then the parent's.
    let order: BTreeMap<String, usize> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, n)| (n["sha256"].as_str().unwrap().to_string(), i))
        .collect();
    let positions: Vec<(usize, usize)> = edges.iter().map(|(c, p)| (order[c], order[p])).collect();
    assert!(positions.is_sorted(), "edges not sorted: {positions:?}");
    let unique: BTreeSet<(String, String)> = edges.iter().cloned().collect();
    assert_eq!(unique.len(), edges.len(), "duplicate edges");
    ShaGraph {
        root,
        nodes,
        edges: unique,
    }
}

fn lineage(ws: &Workspace, args: &[&str]) -> Output {
    ws.cmd()
        .arg("lineage")
        .args(args)
        // A walk that loops would hang the suite; fail it instead.
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "lineage failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json_ok(ws: &Workspace, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let text = stdout_ok(&lineage(ws, &all));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Exit 2, nothing on stdout, one `error:` line then only `hint:` lines,
/// no panic. Returns stderr.
fn usage_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[1..].iter().all(|l| l.starts_with("hint: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn direction_args(descendants: bool) -> Vec<&'static str> {
    if descendants {
        vec!["--descendants"]
    } else {
        Vec::new()
    }
}

// ---------------------------------------------------------------- graphs

#[test]
fn renderoutput_ancestry_is_the_five_artifacts_and_seven_stage_edges() {
    let ex = Example::new();
    let g = ex.graph(&["RenderOutput"]);
    assert_eq!(g, type_graph("RenderOutput", &TYPES, &STAGE_EDGES));
    assert_eq!(g.edges.len(), 7);
}

#[test]
fn every_type_both_directions_by_type_prefix_and_path() {
    let ex = Example::new();
    let artifacts = ex.ws.artifacts();
    for (ty, descendants, nodes, edges) in EXPECTED {
        let want = type_graph(ty, nodes, edges);
        let sha = ex.sha[ty].clone();
        let rel = ex.rel_path(ty);
        let meta = format!("artifacts/{}", rel.replace(".json", ".meta.json"));
        let abs = artifacts.join(&rel).to_string_lossy().into_owned();
        let targets: Vec<Vec<String>> = vec![
            vec![ty.to_string()],
            vec![sha[..4].to_string()],
            vec![sha[..10].to_uppercase()],
            vec![sha.clone()],
            vec![format!("artifacts/{rel}")],
            vec![meta],
            vec![abs],
            // Paths are compared after canonicalizing both sides.
            vec![
                "--artifacts-dir".into(),
                "./artifacts/../artifacts".into(),
                format!("./artifacts/{}/../{rel}", ex.project_id),
            ],
        ];
        for target in targets {
            let mut args: Vec<&str> = target.iter().map(String::as_str).collect();
            args.extend(direction_args(descendants));
            assert_eq!(ex.graph(&args), want, "lineage {args:?}");
        }
    }
}

#[test]
fn depth_bounds_the_walk() {
    let ex = Example::new();
    assert_eq!(
        ex.graph(&["RenderOutput", "--depth", "1"]),
        type_graph(
            "RenderOutput",
            &["RenderOutput", "RenderPlan", "ShotList"],
            &[("RenderOutput", "RenderPlan"), ("RenderOutput", "ShotList")],
        )
    );
    // At depth 2 every artifact is reached, but the edges of those reached
    // at the bound (AssetManifest, Script) are not walked.
    assert_eq!(
        ex.graph(&["RenderOutput", "--depth", "2"]),
        type_graph(
            "RenderOutput",
            &TYPES,
            &[
                ("RenderOutput", "RenderPlan"),
                ("RenderOutput", "ShotList"),
                ("RenderPlan", "AssetManifest"),
                ("RenderPlan", "ShotList"),
                ("ShotList", "Script"),
            ],
        )
    );
    assert_eq!(
        ex.graph(&["Script", "--descendants", "--depth", "1"]),
        type_graph(
            "Script",
            &["Script", "ShotList", "AssetManifest"],
            &[("ShotList", "Script"), ("AssetManifest", "Script")],
        )
    );
    assert_eq!(
        ex.graph(&["RenderOutput", "--depth", "4"]),
        type_graph("RenderOutput", &TYPES, &STAGE_EDGES)
    );
    // The tree obeys the bound too.
    let tree = stdout_ok(&ex.lineage(&["RenderOutput", "--depth", "1"]));
    assert_eq!(tree.lines().count(), 3, "{tree}");
    for bad in ["0", "-1", "x"] {
        let out = ex.lineage(&["RenderOutput", "--depth", bad]);
        assert_eq!(out.status.code(), Some(2), "--depth {bad}");
    }
}

// --------------------------------------------------------------- formats

#[test]
fn json_is_the_documented_contract() {
    let ex = Example::new();
    let json = json_ok(&ex.ws, &["RenderOutput"]);
    assert_eq!(json["root"], ex.sha["RenderOutput"].as_str());
    let types: Vec<&str> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["artifact_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, TYPES);
    let first = &json["nodes"][0];
    assert_eq!(first["sha256"], ex.sha["Script"].as_str());
    assert_eq!(first["stage"], 1);
    assert_eq!(first["path"], ex.rel_path("Script").as_str());
    // `contract` checks keys, uniqueness and order; this pins the output
    // as deterministic across invocations.
    contract(&json);
    assert_eq!(json, json_ok(&ex.ws, &["RenderOutput"]));
}

/// A token of the DOT language, as much of it as the test needs.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Id(String),
    Arrow,
    Punct(char),
}

fn dot_tokens(text: &str) -> Vec<Tok> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => panic!("unterminated string in DOT:\n{text}"),
                    Some('"') => break,
                    Some('\\') => {
                        // DOT keeps `\n`, `\l`… as escapes; only `\"` is
                        // part of the string syntax itself.
                        match chars.get(i + 1) {
                            Some('"') => s.push('"'),
                            Some(other) => {
                                s.push('\\');
                                s.push(*other);
                            }
                            None => panic!("dangling escape in DOT"),
                        }
                        i += 1;
                    }
                    Some(c) => {
                        assert_ne!(*c, '\n', "raw newline in a DOT string");
                        s.push(*c);
                    }
                }
                i += 1;
            }
            i += 1;
            toks.push(Tok::Id(s));
        } else if c == '-' && chars.get(i + 1) == Some(&'>') {
            toks.push(Tok::Arrow);
            i += 2;
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '.'))
            {
                i += 1;
            }
            toks.push(Tok::Id(chars[start..i].iter().collect()));
        } else if "{}[];,=".contains(c) {
            toks.push(Tok::Punct(c));
            i += 1;
        } else {
            panic!("unexpected {c:?} in DOT:\n{text}");
        }
    }
    toks
}

/// Nodes (id -> attributes) and edges (from, to) of a `digraph`.
struct Dot {
    nodes: BTreeMap<String, BTreeMap<String, String>>,
    edges: BTreeSet<(String, String)>,
}

fn parse_dot(text: &str) -> Dot {
    let toks = dot_tokens(text);
    let mut it = toks.into_iter().peekable();
    assert_eq!(it.next(), Some(Tok::Id("digraph".into())), "{text}");
    if let Some(Tok::Id(_)) = it.peek() {
        it.next();
    }
    assert_eq!(it.next(), Some(Tok::Punct('{')), "{text}");
    let mut dot = Dot {
        nodes: BTreeMap::new(),
        edges: BTreeSet::new(),
    };
    loop {
        // One statement: ids joined by `->`, an optional attribute list,
        // then `;` (or the closing brace).
        let mut chain: Vec<String> = Vec::new();
        let mut attrs = BTreeMap::new();
        let mut graph_attr = false;
        loop {
            match it.next() {
                Some(Tok::Id(id)) => chain.push(id),
                Some(Tok::Arrow) => assert!(!chain.is_empty(), "edge without a tail"),
                Some(Tok::Punct('=')) => {
                    // `rankdir=TB`: a graph attribute, not a node.
                    assert!(matches!(it.next(), Some(Tok::Id(_))));
                    graph_attr = true;
                }
                Some(Tok::Punct('[')) => loop {
                    match it.next() {
                        Some(Tok::Punct(']')) => break,
                        Some(Tok::Punct(',' | ';')) => {}
                        Some(Tok::Id(k)) => {
                            assert_eq!(it.next(), Some(Tok::Punct('=')), "attribute {k}");
                            let Some(Tok::Id(v)) = it.next() else {
                                panic!("attribute {k} has no value")
                            };
                            attrs.insert(k, v);
                        }
                        other => panic!("unexpected {other:?} in attribute list"),
                    }
                },
                Some(Tok::Punct(';')) => break,
                Some(Tok::Punct('}')) => {
                    assert!(chain.is_empty(), "statement without `;`");
                    assert_eq!(it.next(), None, "text after the closing brace");
                    return dot;
                }
                other => panic!("unexpected {other:?} in DOT:\n{text}"),
            }
        }
        if graph_attr
            || matches!(
                chain.first().map(String::as_str),
                Some("node" | "edge" | "graph")
            )
        {
            continue;
        }
        match chain.len() {
            0 => {}
            1 => {
                let id = chain.remove(0);
                assert!(
                    dot.nodes.insert(id.clone(), attrs).is_none(),
                    "node {id} twice"
                );
            }
            _ => {
                for pair in chain.windows(2) {
                    assert!(
                        dot.edges.insert((pair[0].clone(), pair[1].clone())),
                        "edge {pair:?} twice"
                    );
                }
            }
        }
    }
}

#[test]
fn dot_parses_back_to_the_json_graph_for_every_type_and_direction() {
    let ex = Example::new();
    let graphviz = std::process::Command::new("dot").arg("-V").output().is_ok();
    // CI installs Graphviz (.ci/run), so there the render check must run.
    assert!(
        graphviz || std::env::var_os("CI").is_none(),
        "CI must have Graphviz `dot` installed"
    );
    for (ty, descendants, _, _) in EXPECTED {
        let mut args = vec![ty];
        args.extend(direction_args(descendants));
        let json = contract(&json_ok(&ex.ws, &args));
        args.extend(["--format", "dot"]);
        let text = stdout_ok(&ex.lineage(&args));
        let dot = parse_dot(&text);

        let ids: BTreeSet<&String> = dot.nodes.keys().collect();
        assert_eq!(ids, json.nodes.keys().collect(), "{text}");
        // DOT draws data flow: parent -> child.
        let flipped: BTreeSet<(String, String)> = json
            .edges
            .iter()
            .map(|(c, p)| (p.clone(), c.clone()))
            .collect();
        assert_eq!(dot.edges, flipped, "{text}");
        for (sha, attrs) in &dot.nodes {
            let label = &attrs["label"];
            assert_eq!(label, &format!("{}\\n{}", ex.type_of(sha), &sha[..12]));
            assert_eq!(
                attrs.get("style").map(String::as_str) == Some("bold"),
                *sha == json.root
            );
        }
        if graphviz {
            let mut child = std::process::Command::new("dot")
                .arg("-Tsvg")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "dot rejected:\n{text}");
            assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
        }
    }
}

/// Node ids -> label, and edges (from, to), of a Mermaid flowchart.
struct Mermaid {
    nodes: BTreeMap<String, String>,
    edges: BTreeSet<(String, String)>,
}

fn parse_mermaid(text: &str) -> Mermaid {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let header = lines.next().unwrap();
    assert!(
        ["flowchart TD", "flowchart TB", "flowchart BT", "graph TD"].contains(&header),
        "{header}"
    );
    let mut m = Mermaid {
        nodes: BTreeMap::new(),
        edges: BTreeSet::new(),
    };
    let safe_id = |id: &str| {
        id.strip_prefix("n_").is_some_and(|hex| {
            hex.len() == 12
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
    };
    for line in lines {
        if line.starts_with("%%") || line.starts_with("classDef ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("class ") {
            let (id, class) = rest.split_once(' ').unwrap();
            assert!(m.nodes.contains_key(id), "class for unknown node {id}");
            assert_eq!(class, "root");
        } else if let Some((from, to)) = line.split_once(" --> ") {
            assert!(m.nodes.contains_key(from), "edge from unknown node: {line}");
            assert!(m.nodes.contains_key(to), "edge to unknown node: {line}");
            assert!(
                m.edges.insert((from.to_string(), to.to_string())),
                "{line} twice"
            );
        } else {
            let (id, label) = line
                .split_once("[\"")
                .unwrap_or_else(|| panic!("not a node line: {line}"));
            assert!(safe_id(id), "unsafe mermaid id {id}");
            let label = label
                .strip_suffix("\"]")
                .unwrap_or_else(|| panic!("{line}"));
            assert!(!label.contains('"'), "{line}");
            assert!(
                m.nodes.insert(id.to_string(), label.to_string()).is_none(),
                "{id} twice"
            );
        }
    }
    m
}

#[test]
fn mermaid_parses_back_to_the_json_graph_for_every_type_and_direction() {
    let ex = Example::new();
    for (ty, descendants, _, _) in EXPECTED {
        let mut args = vec![ty];
        args.extend(direction_args(descendants));
        let json = contract(&json_ok(&ex.ws, &args));
        args.extend(["--format", "mermaid"]);
        let text = stdout_ok(&ex.lineage(&args));
        let m = parse_mermaid(&text);

        let sha_of: BTreeMap<&String, &String> = m
            .nodes
            .iter()
            .map(|(id, label)| {
                let (label_type, label_sha) = label.split_once("<br/>").unwrap();
                let sha = json
                    .nodes
                    .keys()
                    .find(|s| s.starts_with(label_sha) && id == &format!("n_{}", &s[..12]))
                    .unwrap_or_else(|| panic!("{id} {label} names no node"));
                assert_eq!(label_type, ex.type_of(sha));
                (id, sha)
            })
            .collect();
        let shas: BTreeSet<&String> = sha_of.values().copied().collect();
        assert_eq!(shas, json.nodes.keys().collect(), "{text}");
        let edges: BTreeSet<(String, String)> = m
            .edges
            .iter()
            .map(|(from, to)| (sha_of[to].clone(), sha_of[from].clone()))
            .collect();
        assert_eq!(edges, json.edges, "mermaid draws parent --> child:\n{text}");
    }
}

/// One tree line: indentation level, the fields after the branch, and
/// whether it is marked `(*)`.
struct TreeLine {
    level: usize,
    fields: Vec<String>,
    repeat: bool,
}

fn parse_tree(text: &str) -> (Vec<TreeLine>, bool) {
    let mut out = Vec::new();
    let mut legend = false;
    for line in text.lines() {
        if line.starts_with("(*) ") {
            legend = true;
            continue;
        }
        assert!(!legend, "line after the legend: {line}");
        let chars: Vec<char> = line.chars().collect();
        let mut level = 0;
        while chars.len() >= (level + 1) * 4 {
            let group: String = chars[level * 4..(level + 1) * 4].iter().collect();
            match group.as_str() {
                "│   " | "    " | "├── " | "└── " => level += 1,
                _ => break,
            }
        }
        let prefix: String = chars[..level * 4].iter().collect();
        if level > 0 {
            assert!(
                prefix.ends_with("├── ") || prefix.ends_with("└── "),
                "bad branch in {line:?}"
            );
            assert!(
                !prefix[..prefix.len() - "├── ".len()].contains(['├', '└']),
                "{line:?}"
            );
        }
        let rest: String = chars[level * 4..].iter().collect();
        let mut fields: Vec<String> = rest.split_whitespace().map(String::from).collect();
        let repeat = fields.last().is_some_and(|f| f == "(*)");
        if repeat {
            fields.pop();
        }
        out.push(TreeLine {
            level,
            fields,
            repeat,
        });
    }
    (out, legend)
}

#[test]
fn tree_shows_every_edge_once_under_its_node() {
    let ex = Example::new();
    for (ty, descendants, nodes, edges) in EXPECTED {
        let mut args = vec![ty];
        args.extend(direction_args(descendants));
        let text = stdout_ok(&ex.lineage(&args));
        let (lines, legend) = parse_tree(&text);
        // The root, then one line per walked edge.
        assert_eq!(lines.len(), 1 + edges.len(), "{text}");
        assert_eq!(lines[0].level, 0);
        assert_eq!(lines[0].fields[0], ty);

        let mut seen_types = BTreeSet::new();
        let mut tree_edges = BTreeSet::new();
        let mut stack: Vec<String> = Vec::new();
        for line in &lines {
            let [t, short, stage, run_word, run] = line.fields.as_slice() else {
                panic!("unexpected fields {:?} in:\n{text}", line.fields);
            };
            assert_eq!(short, &ex.sha[t][..12]);
            assert_eq!(stage, &ex.stage[t].1);
            assert_eq!(run_word, "run");
            assert_eq!(run, &ex.run_id);
            assert!(line.level <= stack.len(), "{text}");
            stack.truncate(line.level);
            if let Some(from) = stack.last() {
                let edge = if descendants {
                    (t.clone(), from.clone())
                } else {
                    (from.clone(), t.clone())
                };
                assert!(tree_edges.insert(edge), "edge shown twice:\n{text}");
            }
            stack.push(t.clone());
            seen_types.insert(t.clone());
        }
        let want: BTreeSet<(String, String)> = edges
            .iter()
            .map(|(c, p)| (c.to_string(), p.to_string()))
            .collect();
        assert_eq!(tree_edges, want, "{text}");
        assert_eq!(seen_types, nodes.iter().map(|s| s.to_string()).collect());
        assert_eq!(legend, lines.iter().any(|l| l.repeat), "{text}");
    }

    // A node reached twice is expanded once; the other copy is marked.
    let text = stdout_ok(&ex.lineage(&["RenderOutput"]));
    let (lines, legend) = parse_tree(&text);
    assert!(legend);
    let shotlists: Vec<&TreeLine> = lines.iter().filter(|l| l.fields[0] == "ShotList").collect();
    assert_eq!(shotlists.len(), 3, "{text}");
    assert_eq!(shotlists.iter().filter(|l| !l.repeat).count(), 1, "{text}");
    assert!(text.contains("├── ") && text.contains("└── ") && text.contains("│   "));
}

// ------------------------------------------------------- scope and errors

/// The example run, a copy of it under `--run-id copy` (same bytes, newer),
/// and a second project `harbor`, run last.
fn three_runs() -> (Example, String) {
    let ex = Example::new();
    let config = ex.ws.example();
    let copy = ex.ws.run_ok(&config, &["--run-id", "copy"]);
    assert_eq!(copy["run_id"], "copy");
    let mut harbor = example_config();
    harbor["project_id"] = "harbor".into();
    harbor["seed"] = 7.into();
    let harbor_config = ex.ws.write_config("harbor.json", &harbor);
    let summary = ex.ws.run_ok(&harbor_config, &[]);
    let harbor_run = summary["run_id"].as_str().unwrap().to_string();
    (ex, harbor_run)
}

fn root_of(ws: &Workspace, args: &[&str]) -> (String, String, String) {
    let json = json_ok(ws, args);
    let root = json["root"].as_str().unwrap().to_string();
    let node = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["sha256"] == root.as_str())
        .unwrap()
        .clone();
    // Every node of a pipeline-made graph is in the root's run.
    for n in json["nodes"].as_array().unwrap() {
        assert_eq!(n["run_id"], node["run_id"], "{json}");
    }
    (
        node["artifact_type"].as_str().unwrap().to_string(),
        node["project_id"].as_str().unwrap().to_string(),
        node["run_id"].as_str().unwrap().to_string(),
    )
}

#[test]
fn type_names_resolve_in_run_then_project_then_newest_run() {
    let (ex, harbor_run) = three_runs();
    let ws = &ex.ws;
    let at = |p: &str, r: &str| ("RenderOutput".to_string(), p.to_string(), r.to_string());
    assert_eq!(root_of(ws, &["RenderOutput"]), at("harbor", &harbor_run));
    assert_eq!(
        root_of(ws, &["RenderOutput", "--project", "lighthouse"]),
        at("lighthouse", "copy")
    );
    assert_eq!(
        root_of(ws, &["RenderOutput", "--run", &ex.run_id[..6]]),
        at("lighthouse", &ex.run_id)
    );
    assert_eq!(
        root_of(
            ws,
            &["RenderOutput", "--run", "cop", "--project", "lighthouse"]
        ),
        at("lighthouse", "copy")
    );
    assert_eq!(
        root_of(ws, &["RenderOutput", "--run", &harbor_run]),
        at("harbor", &harbor_run)
    );

    let err = usage_error(&lineage(
        ws,
        &["RenderOutput", "--run", "copy", "--project", "harbor"],
    ));
    assert!(
        err.contains("no run matches `copy` in project `harbor`"),
        "{err}"
    );
    let err = usage_error(&lineage(ws, &["RenderOutput", "--project", "nope"]));
    assert!(
        err.contains("no run in project `nope` has a RenderOutput artifact"),
        "{err}"
    );
    let err = usage_error(&lineage(ws, &["RenderOutput", "--run", "Bad Id"]));
    assert!(err.contains("`Bad Id`"), "{err}");

    // A run missing the type says so (here: its row deleted by hand).
    ws.registry_exec(
        "DELETE FROM artifacts WHERE run_id = 'copy' AND artifact_type = 'RenderOutput'",
    );
    let err = usage_error(&lineage(ws, &["RenderOutput", "--run", "copy"]));
    assert!(
        err.contains("run lighthouse/copy (complete) has no RenderOutput artifact"),
        "{err}"
    );
    // …and `--project` means what it promises: its newest run that has one.
    assert_eq!(
        root_of(ws, &["RenderOutput", "--project", "lighthouse"]),
        at("lighthouse", &ex.run_id)
    );
}

#[test]
fn lineage_of_a_type_skips_newer_runs_without_one_and_hints_at_package() {
    let (ex, harbor_run) = three_runs();
    let ws = &ex.ws;
    // No run is packaged yet: the hint says how to make one.
    let err = usage_error(&lineage(ws, &["RenderPackage", "--project", "lighthouse"]));
    assert!(
        err.contains("no run in project `lighthouse` has a RenderPackage artifact")
            && err.contains("hint: `orchestrator package RUN`"),
        "{err}"
    );
    let err = usage_error(&lineage(ws, &["RenderPackage", "--run", &harbor_run]));
    assert!(
        err.contains(&format!("hint: `orchestrator package {harbor_run}`")),
        "{err}"
    );
    // The older lighthouse run is packaged; the newer `copy` is not.
    let out = ws.cmd().args(["package", &ex.run_id]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        root_of(ws, &["RenderPackage", "--project", "lighthouse"]),
        (
            "RenderPackage".to_string(),
            "lighthouse".to_string(),
            ex.run_id.clone()
        )
    );
    assert_eq!(
        root_of(ws, &["RenderPackage"]),
        (
            "RenderPackage".to_string(),
            "lighthouse".to_string(),
            ex.run_id.clone()
        )
    );
}

#[test]
fn a_near_miss_type_name_gets_did_you_mean() {
    let (ex, _) = three_runs();
    for (typed, meant) in [
        ("script", "Script"),
        ("Shotlist", "ShotList"),
        ("RenderPakage", "RenderPackage"),
    ] {
        let err = usage_error(&lineage(&ex.ws, &[typed]));
        assert!(
            err.contains(&format!("hint: did you mean `{meant}`?")),
            "{typed}: {err}"
        );
        assert!(
            err.contains("RenderPackage"),
            "type list names RenderPackage: {err}"
        );
    }
}

#[test]
fn ambiguous_run_prefix_is_a_usage_error() {
    let ex = Example::new();
    let config = ex.ws.example();
    ex.ws.run_ok(&config, &["--run-id", "copy-1"]);
    ex.ws.run_ok(&config, &["--run-id", "copy-2"]);
    let err = usage_error(&ex.lineage(&["Script", "--run", "copy"]));
    assert!(
        err.contains("ambiguous") && err.contains("copy-1") && err.contains("copy-2"),
        "{err}"
    );
}

#[test]
fn same_bytes_in_several_runs_pick_the_newest_unless_narrowed() {
    let (ex, _) = three_runs();
    let ws = &ex.ws;
    let sha = ex.sha["ShotList"].clone();
    for target in [&sha[..8], sha.as_str()] {
        let (ty, project, run) = root_of(ws, &[target]);
        assert_eq!(
            (ty.as_str(), project.as_str(), run.as_str()),
            ("ShotList", "lighthouse", "copy")
        );
        let (_, _, run) = root_of(ws, &[target, "--run", &ex.run_id]);
        assert_eq!(run, ex.run_id);
        let (_, _, run) = root_of(ws, &[target, "--project", "lighthouse"]);
        assert_eq!(run, "copy");
        let err = usage_error(&lineage(ws, &[target, "--project", "harbor"]));
        assert!(err.contains("no artifact hash starts with"), "{err}");
    }
    // A path names exactly one run's file, whatever else has the same bytes.
    let path = format!("artifacts/{}", ex.rel_path("ShotList"));
    let (_, _, run) = root_of(ws, &[&path]);
    assert_eq!(run, ex.run_id);
    let err = usage_error(&lineage(ws, &[&path, "--run", "copy"]));
    assert!(
        err.contains("not a registered artifact in run lighthouse/copy"),
        "{err}"
    );
}

#[test]
fn ambiguous_hash_prefix_lists_the_candidates() {
    let (ex, _) = three_runs();
    let ws = &ex.ws;
    // Give the copy's ShotList a different hash sharing 8 characters.
    let sha = ex.sha["ShotList"].clone();
    let other = format!("{}{}", &sha[..8], "f".repeat(56));
    assert_ne!(other, sha);
    ws.registry_exec(&format!(
        "UPDATE artifacts SET sha256 = '{other}' WHERE run_id = 'copy' AND artifact_type = 'ShotList'"
    ));
    let err = usage_error(&lineage(ws, &[&sha[..8]]));
    assert!(
        err.contains(&format!("hash prefix `{}` is ambiguous", &sha[..8])),
        "{err}"
    );
    for needle in [
        format!("ShotList {} (run lighthouse/{})", &sha[..12], ex.run_id),
        format!("ShotList {} (run lighthouse/copy)", &other[..12]),
    ] {
        assert!(err.contains(&needle), "missing {needle}: {err}");
    }
    assert!(err.contains("hint: "), "{err}");
    // One more character, or a run, settles it.
    let (_, _, run) = root_of(ws, &[&sha[..9]]);
    assert_eq!(run, ex.run_id);
    let (_, _, run) = root_of(ws, &[&sha[..8], "--run", "copy"]);
    assert_eq!(run, "copy");
}

#[test]
fn unknown_targets_exit_2_saying_what_was_tried() {
    let ex = Example::new();
    let unused_prefix = ["0000", "1111", "2222", "3333"]
        .into_iter()
        .find(|p| ex.sha.values().all(|s| !s.starts_with(p)))
        .unwrap();
    std::fs::write(ex.ws.path().join("notes.json"), b"{}").unwrap();
    let no_such_hash = format!("no artifact hash starts with `{unused_prefix}`");
    let cases: [(&str, &str); 7] = [
        ("renderoutput", "it is not a hash prefix"),
        ("Nonsense", "no file `Nonsense`"),
        ("abc", "too short for a hash prefix"),
        (unused_prefix, &no_such_hash),
        ("notes.json", "is not inside the artifacts directory"),
        (
            "artifacts/lighthouse/Nope.json",
            "`lighthouse/Nope.json` in the artifacts directory is not a registered artifact",
        ),
        ("artifacts", "is the artifacts directory"),
    ];
    for (target, tried) in cases {
        let err = usage_error(&ex.lineage(&[target]));
        assert!(
            err.contains(&format!("nothing matches `{target}`")),
            "{err}"
        );
        assert!(err.contains("it is not an artifact type name"), "{err}");
        assert!(err.contains(tried), "{target}: expected {tried:?} in {err}");
        assert!(err.contains("hint: "), "{err}");
    }
}

#[test]
fn missing_registry_is_a_usage_error_and_creates_nothing() {
    let ws = Workspace::new();
    let err = usage_error(&lineage(&ws, &["RenderOutput"]));
    // A SQLite registry is made by the first run; a PostgreSQL one is
    // there, migrated and empty.
    let why = if common::postgres_pass() {
        "no run has a RenderOutput artifact"
    } else {
        "no registry"
    };
    assert!(err.contains(why), "{err}");
    assert!(!ws.artifacts().exists());
}

#[test]
fn corrupt_registry_exits_3() {
    // Garbage bytes in the registry file.
    sqlite_only!();
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.artifacts()).unwrap();
    std::fs::write(ws.db(), vec![0x5a; 8192]).unwrap();
    let out = lineage(&ws, &["RenderOutput"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
}

// ----------------------------------------------------------------- cycles

#[test]
fn a_cycle_inserted_by_hand_terminates_in_every_format() {
    let ex = Example::new();
    let id = |ty: &str| {
        ex.ws.registry_value(&format!(
            "SELECT artifact_id FROM artifacts WHERE artifact_type = '{ty}'"
        ))
    };
    // Script "made from" RenderOutput closes a five-stage loop; ShotList
    // made from itself is the smallest loop there is.
    for (child, parent) in [("Script", "RenderOutput"), ("ShotList", "ShotList")] {
        ex.ws.registry_exec(&format!(
            "INSERT INTO artifact_edges (child_id, parent_id, parent_sha256)
             VALUES ({}, {}, '{}')",
            id(child),
            id(parent),
            ex.sha[parent]
        ));
    }

    let mut all_edges: Vec<(&str, &str)> = STAGE_EDGES.to_vec();
    all_edges.extend([("Script", "RenderOutput"), ("ShotList", "ShotList")]);
    for (ty, descendants) in [
        ("RenderOutput", false),
        ("Script", true),
        ("AssetManifest", false),
    ] {
        let mut args = vec![ty];
        args.extend(direction_args(descendants));
        assert_eq!(
            ex.graph(&args),
            type_graph(ty, &TYPES, &all_edges),
            "{args:?}"
        );
        for depth in ["64", "1000"] {
            let mut bounded = args.clone();
            bounded.extend(["--depth", depth]);
            assert_eq!(ex.graph(&bounded), type_graph(ty, &TYPES, &all_edges));
        }
        for format in ["tree", "dot", "mermaid"] {
            let mut with_format = args.clone();
            with_format.extend(["--format", format]);
            let text = stdout_ok(&ex.lineage(&with_format));
            assert!(text.lines().count() < 40, "{format}:\n{text}");
        }
        let text = stdout_ok(&ex.lineage(&args));
        let (lines, _) = parse_tree(&text);
        assert_eq!(lines.len(), 1 + all_edges.len(), "{text}");
        assert_eq!(
            parse_dot(&stdout_ok(&ex.lineage(&[ty, "--format", "dot"])))
                .nodes
                .len(),
            5
        );
    }
}

#[test]
fn lineage_json_flag_is_format_json() {
    let ex = Example::new();
    let long = ex
        .ws
        .cmd()
        .args(["lineage", "RenderOutput", "--format", "json"])
        .output()
        .unwrap();
    let short = ex
        .ws
        .cmd()
        .args(["lineage", "RenderOutput", "--json"])
        .output()
        .unwrap();
    assert!(
        short.status.success(),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );
    assert_eq!(short.stdout, long.stdout);
    let both = ex
        .ws
        .cmd()
        .args(["lineage", "RenderOutput", "--json", "--format", "dot"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
}

#[test]
fn lineage_output_writes_a_file_under_the_same_rules_as_export() {
    let ex = Example::new();
    let to_stdout = ex
        .ws
        .cmd()
        .args(["lineage", "RenderOutput", "--format", "dot"])
        .output()
        .unwrap();
    let out = ex
        .ws
        .cmd()
        .args([
            "lineage",
            "RenderOutput",
            "--format",
            "dot",
            "--output",
            "lineage.dot",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert_eq!(
        std::fs::read(ex.ws.path().join("lineage.dot")).unwrap(),
        to_stdout.stdout
    );
    // Over an artifact: refused, and the artifact is untouched.
    let script = ex.ws.run_dir("lighthouse", &ex.run_id).join("Script.json");
    let before = std::fs::read(&script).unwrap();
    let out = ex
        .ws
        .cmd()
        .args(["lineage", "RenderOutput", "--output"])
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read(&script).unwrap(), before);
}
