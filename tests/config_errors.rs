//! Integration tests for `orchestrator run` on bad project configs: each one
//! exits 2 with one clear `error:` line that names the file and where in it
//! the problem is, and leaves the workspace exactly as it was.

mod common;

use std::collections::BTreeSet;

use common::{Workspace, assert_usage_error, example_config};
use serde_json::{Value, json};

/// Run `orchestrator run` on `config` (a path relative to the workspace),
/// check it is a clean usage error that wrote nothing, and return stderr.
fn refused(ws: &Workspace, config: &str) -> String {
    let before = ws.entries();
    let out = ws.run_output(&ws.path().join(config), &[]);
    let stderr = assert_usage_error(&out);
    assert!(
        stderr.lines().next().unwrap().contains(config),
        "the error line does not name `{config}`: {stderr}"
    );
    assert_eq!(ws.entries(), before, "the workspace changed");
    assert!(!ws.artifacts().exists(), "an artifacts dir was created");
    stderr
}

/// Write `text` as `name` in a fresh workspace and expect it refused.
fn refused_text(name: &str, text: &str) -> String {
    let ws = Workspace::new();
    std::fs::write(ws.path().join(name), text).unwrap();
    refused(&ws, name)
}

/// The example config with `edit` applied, expected refused.
fn refused_edit(edit: impl FnOnce(&mut Value)) -> String {
    let mut config = example_config();
    edit(&mut config);
    refused_text(
        "project.json",
        &serde_json::to_string_pretty(&config).unwrap(),
    )
}

#[test]
fn missing_config_file_is_refused_naming_the_file() {
    let ws = Workspace::new();
    let stderr = refused(&ws, "no-such-project.json");
    assert!(stderr.to_lowercase().contains("no such file"), "{stderr}");
    assert!(ws.entries().is_empty());
}

#[test]
fn directory_as_config_is_refused() {
    let ws = Workspace::new();
    std::fs::create_dir(ws.path().join("configs")).unwrap();
    let stderr = refused(&ws, "configs");
    assert!(stderr.to_lowercase().contains("directory"), "{stderr}");
    assert_eq!(ws.entries(), BTreeSet::from(["configs".to_string()]));
}

#[test]
fn non_json_config_reports_line_and_column() {
    let stderr = refused_text(
        "broken.json",
        "{\n  \"project_id\": \"p\",\n  \"title\": ,\n  \"seed\": 1\n}\n",
    );
    let line = stderr.lines().next().unwrap();
    assert!(line.contains("line 3"), "{stderr}");
    assert!(line.contains("column"), "{stderr}");
}

#[test]
fn empty_config_file_is_refused_with_a_position() {
    let stderr = refused_text("empty.json", "");
    assert!(
        stderr.contains("line") && stderr.contains("column"),
        "{stderr}"
    );
}

#[test]
fn config_that_is_not_an_object_is_refused() {
    let stderr = refused_text("list.json", "[1, 2, 3]\n");
    assert!(stderr.contains("`/`"), "{stderr}");
    let stderr = refused_text("two.json", "{\"project_id\": \"p\"} {}\n");
    assert!(stderr.contains("line 1"), "{stderr}");
}

#[test]
fn missing_project_id_is_named() {
    let stderr = refused_edit(|c| {
        c.as_object_mut().unwrap().remove("project_id");
    });
    assert!(stderr.contains("project_id"), "{stderr}");
    assert!(stderr.contains("required"), "{stderr}");
}

#[test]
fn missing_title_seed_or_scene_count_is_named() {
    for field in ["title", "seed", "scene_count"] {
        let stderr = refused_edit(|c| {
            c.as_object_mut().unwrap().remove(field);
        });
        assert!(stderr.contains(field), "{field}: {stderr}");
    }
}

#[test]
fn seed_of_the_wrong_type_reports_pointer_seed() {
    let stderr = refused_edit(|c| c["seed"] = json!("x"));
    assert!(stderr.contains("/seed"), "{stderr}");
    let stderr = refused_edit(|c| c["seed"] = json!(-1));
    assert!(stderr.contains("/seed"), "{stderr}");
    let stderr = refused_edit(|c| c["seed"] = json!(1.5));
    assert!(stderr.contains("/seed"), "{stderr}");
}

#[test]
fn scene_count_zero_and_above_ten_thousand_are_refused() {
    for n in [0, 10001] {
        let stderr = refused_edit(|c| c["scene_count"] = json!(n));
        assert!(stderr.contains("/scene_count"), "{n}: {stderr}");
        assert!(stderr.contains(&n.to_string()), "{n}: {stderr}");
    }
}

#[test]
fn project_id_not_matching_the_pattern_is_refused() {
    for bad in ["Lighthouse", "light house", "-light", "../up", ""] {
        let stderr = refused_edit(|c| c["project_id"] = json!(bad));
        assert!(stderr.contains("/project_id"), "{bad:?}: {stderr}");
    }
    let stderr = refused_edit(|c| c["project_id"] = json!("a".repeat(65)));
    assert!(stderr.contains("/project_id"), "{stderr}");
}

#[test]
fn render_fps_zero_is_refused_with_its_pointer() {
    let stderr = refused_edit(|c| c["render"]["fps"] = json!(0));
    assert!(stderr.contains("/render/fps"), "{stderr}");
    let stderr = refused_edit(|c| c["render"]["width"] = json!("wide"));
    assert!(stderr.contains("/render/width"), "{stderr}");
}

#[test]
fn bad_character_entry_is_refused_with_its_pointer() {
    let stderr = refused_edit(|c| c["characters"][1] = json!({"description": "no name"}));
    assert!(stderr.contains("/characters/1"), "{stderr}");
}

#[test]
fn bad_config_writes_nothing_to_overridden_locations_either() {
    let ws = Workspace::new();
    std::fs::write(ws.path().join("bad.json"), "{").unwrap();
    let out = ws
        .cmd()
        .env("ORCHESTRATOR_ARTIFACTS_DIR", "env-arts")
        .args(["run", "--project", "bad.json", "--db", "state/reg.db"])
        .output()
        .unwrap();
    assert_usage_error(&out);
    assert_eq!(ws.entries(), BTreeSet::from(["bad.json".to_string()]));
}

#[test]
fn the_example_config_itself_is_accepted() {
    // Guards the helpers above: the unedited example must not be refused.
    let ws = Workspace::new();
    let config = ws.example();
    let out = ws.run_output(&config, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ws.artifacts().exists());
}

#[test]
fn a_comment_in_the_config_is_named_as_a_comment() {
    for text in [
        "{\n  // the seed\n  \"seed\": 1\n}\n",
        "{\"seed\": 1, /* x */ \"a\": 2}",
        "{\"seed\": 1} // end\n",
    ] {
        let stderr = refused_text("project.json", text);
        assert!(
            stderr.contains("JSON has no comments: remove the `//` or `/* */` comment"),
            "{text:?}: {stderr}"
        );
    }
}

#[test]
fn a_config_given_without_project_suggests_the_flag() {
    let ws = Workspace::new();
    let config = ws.example();
    let out = ws.cmd().arg("run").arg(&config).output().unwrap();
    let stderr = assert_usage_error(&out);
    assert!(
        stderr.contains(&format!(
            "hint: did you mean `orchestrator run --project {}`?",
            config.display()
        )),
        "{stderr}"
    );
    assert!(!ws.artifacts().exists());
}
