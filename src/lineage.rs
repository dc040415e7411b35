//! Lineage: which registered artifact a command-line target names, and the
//! graph of what it was made from (ancestors) or what was made from it
//! (descendants).
//!
//! A target is tried, in this order, as an artifact type name (resolved in
//! `--run`, else in the newest run of `--project`, else in the newest run),
//! as a sha256 or hex prefix of at least [`MIN_PREFIX`] characters, and as a
//! path to an artifact file (or its meta file). Anything else is a usage
//! error that says what was tried.
//!
//! The graph is one of contents: its nodes are sha256 hashes. A type name or
//! a path names one run's file, and the walk starts from that file. A hash
//! names bytes wherever they are registered, so the walk starts from every
//! registered copy of them (within `--run`/`--project` when given):
//! `lineage <Script hash> --descendants` shows what every run that used
//! that Script made from it, not only the newest run's. Each node is shown
//! by the copy in the root's run when there is one.
//!
//! The graph comes from one bounded, cycle-safe recursive query (see
//! `registry/lineage.rs`); this module turns its rows into a [`Lineage`]
//! keyed by sha256, with unique nodes and edges in a deterministic order.
//! Rendering it (tree, JSON, DOT, Mermaid) is the CLI's job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};
use std::str::FromStr;

use crate::artifact::{ArtifactType, short_sha};
use crate::error::{Error, Result};
use crate::registry::{ArtifactRecord, LiveCheck, Registry};

/// How far a walk may go when the caller sets no bound. The pipeline's
/// longest chain is four edges; the bound exists so that edges inserted by
/// hand can never make a walk unbounded.
pub const MAX_DEPTH: u32 = 64;

/// Shortest hash prefix accepted as a target: shorter ones match too much to
/// be useful and are easily confused with other words.
pub const MIN_PREFIX: usize = 4;

/// At most this many candidates are named in an "ambiguous" error.
const MAX_CANDIDATES_SHOWN: usize = 10;

/// Which way a walk follows `artifact_edges`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From an artifact to its parents: what it was made from.
    Ancestors,
    /// From an artifact to its children: what was made from it.
    Descendants,
}

/// Where a target is looked up: `--run` and `--project` as given.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// A run id or unique prefix.
    pub run: Option<&'a str>,
    pub project: Option<&'a str>,
}

/// What a target names: the artifact shown as the root, and where the walk
/// starts: every registered artifact with the root's bytes in `project` and
/// `run` (`None`: any).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub root: ArtifactRecord,
    /// The root's own project for a type name or a path; `--project` (or
    /// the `--run`'s project) for a hash.
    pub project: Option<String>,
    /// The root's own run for a type name or a path; `--run` for a hash.
    pub run: Option<String>,
}

impl Resolved {
    /// That one file: a type name's or a path's target.
    fn file(root: ArtifactRecord) -> Self {
        Resolved {
            project: Some(root.project_id.clone()),
            run: Some(root.run_id.clone()),
            root,
        }
    }
}

/// One artifact of a lineage graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageNode {
    pub sha256: String,
    pub artifact_type: String,
    pub project_id: String,
    pub run_id: String,
    pub stage: u8,
    pub stage_name: String,
    /// Relative to the artifacts directory, as registered.
    pub path: String,
    /// Fewest edges between the root and this artifact.
    pub depth: u32,
}

/// One row of the lineage query: a reached artifact and, when its edges
/// were walked, one artifact they lead to (a parent for ancestors, a child
/// for descendants).
#[derive(Debug, Clone)]
pub struct WalkRow {
    pub artifact_id: i64,
    pub node: LineageNode,
    pub next_id: Option<i64>,
}

/// `child` was made from `parent`, whichever way the walk went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageEdge {
    pub child: String,
    pub parent: String,
}

/// The artifacts within reach of a root and the edges walked to reach them.
#[derive(Debug, Clone)]
pub struct Lineage {
    /// sha256 of the target.
    pub root: String,
    pub direction: Direction,
    /// Unique by sha256, ordered by stage, then type, then sha256.
    pub nodes: Vec<LineageNode>,
    /// Unique; ordered by the child's position in `nodes`, then the parent's.
    pub edges: Vec<LineageEdge>,
}

impl Lineage {
    /// The node with this sha256.
    pub fn node(&self, sha256: &str) -> Option<&LineageNode> {
        self.nodes.iter().find(|n| n.sha256 == sha256)
    }

    /// Where the walk went from `sha256`: its parents for ancestors, its
    /// children for descendants. Nearest stage first, so a tree reads from
    /// the direct input (or output) outwards.
    pub fn next(&self, sha256: &str) -> Vec<&LineageNode> {
        let mut next: Vec<(usize, &LineageNode)> = self
            .edges
            .iter()
            .filter_map(|e| match self.direction {
                Direction::Ancestors if e.child == sha256 => Some(e.parent.as_str()),
                Direction::Descendants if e.parent == sha256 => Some(e.child.as_str()),
                _ => None,
            })
            .filter_map(|sha| self.nodes.iter().enumerate().find(|(_, n)| n.sha256 == sha))
            .collect();
        match self.direction {
            Direction::Ancestors => {
                next.sort_by(|a, b| b.1.stage.cmp(&a.1.stage).then(a.0.cmp(&b.0)))
            }
            Direction::Descendants => next.sort_by_key(|(i, n)| (n.stage, *i)),
        }
        next.dedup_by_key(|(i, _)| *i);
        next.into_iter().map(|(_, n)| n).collect()
    }
}

/// The lineage of `target` in `direction`, at most `depth` edges deep
/// (unbounded, up to [`MAX_DEPTH`], when `None`).
pub fn lineage(
    registry: &Registry,
    target: &Resolved,
    direction: Direction,
    depth: Option<u32>,
) -> Result<Lineage> {
    let max_depth = depth.unwrap_or(MAX_DEPTH).min(MAX_DEPTH);
    let root = &target.root;
    let rows = registry.lineage_walk(
        &root.sha256,
        (target.project.as_deref(), target.run.as_deref()),
        (&root.project_id, &root.run_id),
        direction,
        max_depth,
    )?;
    Ok(build(root, direction, rows))
}

/// Turn query rows (ordered by stage, type, sha256, id) into a graph keyed
/// by sha256. Two registered artifacts with the same bytes are one node;
/// edges to artifacts the query did not return (dangling rows inserted by
/// hand) are dropped rather than invented.
fn build(root: &ArtifactRecord, direction: Direction, rows: Vec<WalkRow>) -> Lineage {
    let mut sha_of: BTreeMap<i64, String> = BTreeMap::new();
    let mut index_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut nodes: Vec<LineageNode> = Vec::new();
    let mut steps: Vec<(i64, i64)> = Vec::new();
    for row in rows {
        sha_of.insert(row.artifact_id, row.node.sha256.clone());
        if let Some(next) = row.next_id {
            steps.push((row.artifact_id, next));
        }
        match index_of.get(&row.node.sha256) {
            Some(&i) => nodes[i].depth = nodes[i].depth.min(row.node.depth),
            None => {
                index_of.insert(row.node.sha256.clone(), nodes.len());
                nodes.push(row.node);
            }
        }
    }
    // The root was read a moment ago; if it vanished since (a concurrent
    // re-run replaced it), still answer with the root alone.
    if !index_of.contains_key(&root.sha256) {
        index_of.insert(root.sha256.clone(), nodes.len());
        nodes.push(LineageNode {
            sha256: root.sha256.clone(),
            artifact_type: root.artifact_type.clone(),
            project_id: root.project_id.clone(),
            run_id: root.run_id.clone(),
            stage: root.stage,
            stage_name: root.stage_name.clone(),
            path: root.path.clone(),
            depth: 0,
        });
    }

    let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (from, next) in steps {
        let ends = sha_of
            .get(&from)
            .zip(sha_of.get(&next))
            .and_then(|(f, n)| Some((*index_of.get(f)?, *index_of.get(n)?)));
        if let Some((from, next)) = ends {
            edges.insert(match direction {
                Direction::Ancestors => (from, next),
                Direction::Descendants => (next, from),
            });
        }
    }
    let edges = edges
        .into_iter()
        .map(|(child, parent)| LineageEdge {
            child: nodes[child].sha256.clone(),
            parent: nodes[parent].sha256.clone(),
        })
        .collect();
    Lineage {
        root: root.sha256.clone(),
        direction,
        nodes,
        edges,
    }
}

/// The artifact `target` names within `scope`, and where its walk starts
/// (see [`Resolved`]).
///
/// `artifacts_dir` is the `--artifacts-dir` the registry's paths are
/// relative to; `live` tells running runs from interrupted ones when `--run`
/// is resolved.
pub fn resolve_target(
    registry: &Registry,
    target: &str,
    scope: Scope<'_>,
    artifacts_dir: &Path,
    live: LiveCheck<'_>,
) -> Result<Resolved> {
    // `--run` is resolved first, so a bad run id is reported as such rather
    // than as "nothing matches".
    let run = match scope.run {
        Some(id) => Some(registry.resolve_run(id, scope.project, live)?),
        None => None,
    };
    let project = run
        .as_ref()
        .map(|r| r.project_id.as_str())
        .or(scope.project);
    let run_id = run.as_ref().map(|r| r.run_id.as_str());
    let in_scope = match (project, run_id) {
        (Some(p), Some(r)) => format!(" in run {p}/{r}"),
        (Some(p), None) => format!(" in project `{p}`"),
        _ => String::new(),
    };

    if let Ok(ty) = ArtifactType::from_str(target) {
        // The given run; else the newest run in scope that has one (a run
        // that failed early, or was never packaged, is passed over).
        let run = match run {
            Some(run) => run,
            None => registry
                .newest_run_with(ty.name(), project, live)?
                .ok_or_else(|| {
                    Error::usage_with_hint(
                        format!("no run{in_scope} has a {ty} artifact"),
                        missing_type_hint(ty, None),
                    )
                })?,
        };
        let found = registry.artifact_in_run(&run.project_id, &run.run_id, ty.name())?;
        return found.map(Resolved::file).ok_or_else(|| {
            Error::usage_with_hint(
                format!(
                    "run {}/{} ({}) has no {ty} artifact",
                    run.project_id, run.run_id, run.status
                ),
                missing_type_hint(ty, Some(&run.run_id)),
            )
        });
    }

    let hex_tried = match hex_prefix(target) {
        Ok(prefix) => {
            let shas = registry.shas_with_prefix(&prefix, project, run_id)?;
            if let Some(root) = one_hash(registry, target, &shas, (project, run_id))? {
                return Ok(Resolved {
                    root,
                    project: project.map(str::to_string),
                    run: run_id.map(str::to_string),
                });
            }
            format!("no artifact hash starts with `{prefix}`{in_scope}")
        }
        Err(why) => why,
    };

    let path_tried = match registry_path(Path::new(target), artifacts_dir) {
        Ok(rel) => {
            // `X.meta.json` describes `X.json`; either names the artifact.
            let rel = match rel.strip_suffix(".meta.json") {
                Some(stem) => format!("{stem}.json"),
                None => rel,
            };
            if let Some(found) = registry.artifact_at_path(&rel, project, run_id)? {
                return Ok(Resolved::file(found));
            }
            format!("`{rel}` in the artifacts directory is not a registered artifact{in_scope}")
        }
        Err(why) => why,
    };

    let types: Vec<&str> = ArtifactType::EVERY.iter().map(|t| t.name()).collect();
    let hint = match crate::config::unknown_keys::closest(target, types.iter().copied()) {
        Some(name) => format!("did you mean `{name}`? (type names are case-sensitive)"),
        None => format!(
            "give a type name, a hash prefix of at least {MIN_PREFIX} hex characters, \
             or a path like `artifacts/<project>/<run>/ShotList.json`"
        ),
    };
    Err(Error::usage_with_hint(
        format!(
            "nothing matches `{target}`: it is not an artifact type name ({}); {hex_tried}; {path_tried}",
            types.join(", ")
        ),
        hint,
    ))
}

/// What to do about a run without an artifact of `ty`: a package is made by
/// `package`; a stage output by a run that gets that far.
fn missing_type_hint(ty: ArtifactType, run: Option<&str>) -> String {
    match (ty, run) {
        (ArtifactType::RenderPackage, Some(run)) => {
            format!("`orchestrator package {run}` writes its RenderPackage")
        }
        (ArtifactType::RenderPackage, None) => {
            "`orchestrator package RUN` writes a finished run's RenderPackage".to_string()
        }
        (_, Some(run)) => format!(
            "`orchestrator runs show {run}` shows which of its stages completed; pick another run with --run"
        ),
        (_, None) => "`orchestrator runs list` shows the recorded runs".to_string(),
    }
}

/// `target` lowercased if it can be a hash prefix, else why it cannot.
fn hex_prefix(target: &str) -> std::result::Result<String, String> {
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("it is not a hash prefix (hashes are hex)".to_string());
    }
    if target.len() < MIN_PREFIX {
        return Err(format!(
            "`{target}` is too short for a hash prefix (at least {MIN_PREFIX} hex characters)"
        ));
    }
    if target.len() > 64 {
        return Err(format!("`{target}` is longer than a sha256"));
    }
    Ok(target.to_ascii_lowercase())
}

/// The newest copy of the one hash in `shas` (all matching one prefix,
/// within `scope`), `None` when there is none, or an ambiguity error naming
/// the hashes.
fn one_hash(
    registry: &Registry,
    target: &str,
    shas: &[String],
    (project, run): (Option<&str>, Option<&str>),
) -> Result<Option<ArtifactRecord>> {
    if let [only] = shas {
        return registry.newest_copy(only, project, run);
    }
    if shas.is_empty() {
        return Ok(None);
    }
    let mut names = Vec::new();
    for sha in shas.iter().take(MAX_CANDIDATES_SHOWN) {
        // A copy deleted since the hashes were read is simply not named.
        if let Some(a) = registry.newest_copy(sha, project, run)? {
            names.push(format!(
                "{} {} (run {}/{})",
                a.artifact_type,
                short_sha(&a.sha256),
                a.project_id,
                a.run_id
            ));
        }
    }
    if shas.len() > MAX_CANDIDATES_SHOWN {
        names.push(format!("and {} more", shas.len() - MAX_CANDIDATES_SHOWN));
    }
    Err(Error::usage_with_hint(
        format!(
            "hash prefix `{target}` is ambiguous: it matches {}",
            names.join(", ")
        ),
        "give more characters of the hash, or narrow with `--run` or `--project`",
    ))
}

/// `path` as the registry stores it: relative to the canonical artifacts
/// directory, `/`-separated. A file that no longer exists is still mapped
/// through its canonical parent directory, since its lineage outlives it.
/// The error says why the path cannot name an artifact.
fn registry_path(path: &Path, artifacts_dir: &Path) -> std::result::Result<String, String> {
    let shown = path.display();
    let base = artifacts_dir.canonicalize().map_err(|_| {
        format!(
            "it is not a path to an artifact (the artifacts directory `{}` does not exist)",
            artifacts_dir.display()
        )
    })?;
    let full = match path.canonicalize() {
        Ok(full) => full,
        Err(_) => {
            let parent = path.parent().map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            });
            parent
                .zip(path.file_name())
                .and_then(|(dir, name)| Some(dir.canonicalize().ok()?.join(name)))
                .filter(|full| full.starts_with(&base))
                .ok_or_else(|| format!("it is not a path to an artifact (no file `{shown}`)"))?
        }
    };
    let rel = full.strip_prefix(&base).map_err(|_| {
        format!(
            "`{shown}` is not inside the artifacts directory `{}`",
            artifacts_dir.display()
        )
    })?;
    let mut parts = Vec::new();
    for part in rel.components() {
        match part {
            Component::Normal(p) => parts.push(
                p.to_str()
                    .ok_or_else(|| format!("`{shown}` is not a UTF-8 path"))?,
            ),
            _ => return Err(format!("`{shown}` is not a path to an artifact file")),
        }
    }
    if parts.is_empty() {
        return Err(format!(
            "`{shown}` is the artifacts directory, not an artifact file"
        ));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(sha: &str, ty: &str, stage: u8) -> LineageNode {
        LineageNode {
            sha256: sha.to_string(),
            artifact_type: ty.to_string(),
            project_id: "p".to_string(),
            run_id: "r".to_string(),
            stage,
            stage_name: format!("stage{stage}"),
            path: format!("p/r/{ty}.json"),
            depth: 0,
        }
    }

    fn record(id: i64, sha: &str, ty: &str, stage: u8) -> ArtifactRecord {
        ArtifactRecord {
            artifact_id: id,
            project_id: "p".to_string(),
            run_id: "r".to_string(),
            artifact_type: ty.to_string(),
            sha256: sha.to_string(),
            schema_id: String::new(),
            schema_version: String::new(),
            path: format!("p/r/{ty}.json"),
            size_bytes: 0,
            stage,
            stage_name: format!("stage{stage}"),
            stage_version: String::new(),
            created_at: String::new(),
            meta_json: String::new(),
        }
    }

    fn row(id: i64, n: LineageNode, next: Option<i64>) -> WalkRow {
        WalkRow {
            artifact_id: id,
            node: n,
            next_id: next,
        }
    }

    #[test]
    fn hex_prefix_accepts_only_long_enough_hex() {
        assert_eq!(hex_prefix("ABCD").unwrap(), "abcd");
        assert!(hex_prefix("abc").unwrap_err().contains("too short"));
        assert!(
            hex_prefix("xyz1")
                .unwrap_err()
                .contains("not a hash prefix")
        );
        assert!(hex_prefix("").is_err());
        assert!(hex_prefix(&"a".repeat(65)).unwrap_err().contains("longer"));
    }

    #[test]
    fn same_bytes_in_two_artifacts_are_one_node_and_dangling_edges_are_dropped() {
        let root = record(3, "c", "AssetManifest", 3);
        let rows = vec![
            row(1, node("a", "Script", 1), None),
            row(9, node("a", "Script", 1), None),
            row(2, node("b", "ShotList", 2), Some(1)),
            row(3, node("c", "AssetManifest", 3), Some(2)),
            row(3, node("c", "AssetManifest", 3), Some(9)),
            row(3, node("c", "AssetManifest", 3), Some(404)),
        ];
        let g = build(&root, Direction::Ancestors, rows);
        let shas: Vec<&str> = g.nodes.iter().map(|n| n.sha256.as_str()).collect();
        assert_eq!(shas, ["a", "b", "c"]);
        let edges: Vec<(&str, &str)> = g
            .edges
            .iter()
            .map(|e| (e.child.as_str(), e.parent.as_str()))
            .collect();
        assert_eq!(edges, [("b", "a"), ("c", "a"), ("c", "b")]);
        // Nearest stage first.
        let next: Vec<&str> = g.next("c").iter().map(|n| n.sha256.as_str()).collect();
        assert_eq!(next, ["b", "a"]);
    }

    #[test]
    fn descendant_rows_become_child_to_parent_edges() {
        let root = record(1, "a", "Script", 1);
        let rows = vec![
            row(1, node("a", "Script", 1), Some(2)),
            row(2, node("b", "ShotList", 2), None),
        ];
        let g = build(&root, Direction::Descendants, rows);
        assert_eq!(
            g.edges,
            [LineageEdge {
                child: "b".into(),
                parent: "a".into()
            }]
        );
        assert_eq!(g.next("a").len(), 1);
        assert!(g.next("b").is_empty());
    }

    #[test]
    fn a_vanished_root_still_yields_itself() {
        let root = record(1, "a", "Script", 1);
        let g = build(&root, Direction::Ancestors, Vec::new());
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(g.root, "a");
    }

    #[test]
    fn registry_path_maps_inside_paths_and_explains_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let arts = dir.path().join("artifacts");
        std::fs::create_dir_all(arts.join("p/r")).unwrap();
        std::fs::write(arts.join("p/r/Script.json"), b"{}").unwrap();
        assert_eq!(
            registry_path(&arts.join("p/r/Script.json"), &arts).unwrap(),
            "p/r/Script.json"
        );
        assert_eq!(
            registry_path(&arts.join("p/r/../r/Script.json"), &arts).unwrap(),
            "p/r/Script.json"
        );
        // Deleted files still map through their directory.
        assert_eq!(
            registry_path(&arts.join("p/r/ShotList.json"), &arts).unwrap(),
            "p/r/ShotList.json"
        );
        assert!(
            registry_path(dir.path(), &arts)
                .unwrap_err()
                .contains("not inside")
        );
        assert!(
            registry_path(&arts, &arts)
                .unwrap_err()
                .contains("artifacts directory")
        );
        assert!(
            registry_path(Path::new("/nonexistent/x.json"), &arts)
                .unwrap_err()
                .contains("no file")
        );
        assert!(
            registry_path(Path::new("x.json"), &dir.path().join("missing"))
                .unwrap_err()
                .contains("does not exist")
        );
    }
}
