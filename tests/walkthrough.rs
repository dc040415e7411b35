//! The README's five-minute walkthrough, executed line by line as a new
//! user would type it, in an empty directory holding a copy of `examples/`:
//! if a command, an id or an exit code in it goes stale, this fails.

mod common;

use common::Workspace;

/// The command lines of the README's walkthrough block, comments removed.
fn walkthrough() -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- walkthrough -->")
        .expect("a walkthrough block");
    let end = readme.find("<!-- /walkthrough -->").expect("its end");
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with("orchestrator "))
        .map(|l| {
            let command = l.split("  #").next().unwrap();
            command
                .split_whitespace()
                .skip(1)
                .map(String::from)
                .collect()
        })
        .collect()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_readme_walkthrough_works_verbatim() {
    let ws = Workspace::new();
    copy_dir(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples")),
        &ws.path().join("examples"),
    );
    let commands = walkthrough();
    assert!(commands.len() >= 8, "{commands:?}");
    for args in &commands {
        let out = ws.cmd().args(args).output().unwrap();
        // `diff` follows diff(1): 1 means the takes differ, as the README says.
        let expected = if args[0] == "diff" { 1 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "`orchestrator {}`:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // It ends with the second take kept and packaged, the first removed.
    let runs = ws.runs_list(&[]);
    let ids: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["d3355077b80ddcf9"]);
    assert!(
        ws.run_dir("lighthouse", "d3355077b80ddcf9")
            .join("RenderPackage.json")
            .is_file()
    );
}
