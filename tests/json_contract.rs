//! The README's table of each command's JSON top-level keys, checked
//! against what the binary prints, so the documented contract and the
//! output cannot drift apart.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Workspace, summary_of};
use serde_json::Value;

/// `command` → documented keys, from the table between the markers.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- json-contract -->")
        .expect("the JSON table");
    let end = readme.find("<!-- /json-contract -->").expect("its end");
    let mut table = BTreeMap::new();
    for line in readme[start..end].lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let command = cells[0].trim_start_matches("| ").to_string();
        let keys = cells[1]
            .trim_end_matches(" |")
            .split(", ")
            .filter_map(|k| k.strip_prefix('`').and_then(|k| k.strip_suffix('`')))
            .map(String::from)
            .collect();
        table.insert(command, keys);
    }
    table
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn json(ws: &Workspace, args: &[&str]) -> Value {
    let out = ws.cmd().args(args).output().unwrap();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn every_commands_json_has_the_documented_top_level_keys() {
    let table = documented();
    let ws = Workspace::new();
    let config = ws.example();
    let project = config.to_str().unwrap();
    let run = summary_of(&ws.run_output(&config, &[]));
    let id = run["run_id"].as_str().unwrap().to_string();
    let list = ws.runs_list(&[]);
    let show = json(&ws, &["runs", "show", &id, "--json"]);
    let mut show_keys = keys(&list[0]);
    show_keys.extend(["attempts", "host", "orchestrator_version", "stages"].map(String::from));
    let seen: Vec<(&str, BTreeSet<String>)> = vec![
        ("`run --json`", keys(&run)),
        (
            "`run --dry-run --json`",
            keys(&json(
                &ws,
                &["run", "--project", project, "--dry-run", "--json"],
            )),
        ),
        ("`runs list --json` (each element)", keys(&list[0])),
        (
            "`lineage --json`",
            keys(&json(&ws, &["lineage", "RenderOutput", "--json"])),
        ),
        ("`verify --json`", keys(&json(&ws, &["verify", "--json"]))),
        (
            "`diff --json`",
            keys(&json(&ws, &["diff", &id, &id, "--json"])),
        ),
        (
            "`package --json`",
            keys(&json(&ws, &["package", &id, "--json"])),
        ),
        (
            "`gc --json` (dry run)",
            keys(&json(&ws, &["gc", "--keep-last", "1", "--json"])),
        ),
        ("`reindex --json`", keys(&json(&ws, &["reindex", "--json"]))),
    ];
    assert_eq!(keys(&show), show_keys, "`runs show --json`");
    for (command, found) in seen {
        let want = table
            .get(command)
            .unwrap_or_else(|| panic!("README's JSON table has no row {command}"));
        assert_eq!(&found, want, "{command}: the binary vs the README");
    }
    assert!(table.contains_key("`runs show --json`"));
}
