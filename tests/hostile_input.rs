//! Hostile input, driven through the binary: unsafe ids, oversized and
//! special-file configs, malformed and ambiguous JSON are refused with exit
//! 2, one short message and nothing written; symlinks, FIFOs and
//! directories in an artifact's place never hang a command, are reported by
//! `verify`, and are never written through by `run`.
//!
//! Every command runs under a timeout, so a hang fails the test instead of
//! blocking the suite.

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{Workspace, assert_usage_error, example_config, example_run, sha256_file, statuses};
use serde_json::{Value, json};

/// Far longer than any of these commands takes; reaching it means a hang.
const NO_HANG: Duration = Duration::from_secs(60);

/// The documented cap, duplicated on purpose: the test pins the README.
const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// `orchestrator run --json --project <project> <extra>` under [`NO_HANG`].
fn run(ws: &Workspace, project: &Path, extra: &[&str]) -> Output {
    ws.cmd()
        .timeout(NO_HANG)
        .arg("run")
        .arg("--json")
        .arg("--project")
        .arg(project)
        .args(extra)
        .output()
        .expect("`run` did not finish (hang?)")
}

/// Assert `run` refused with exit 2, one short `error:` line naming
/// `needle`, no control characters echoed, and nothing written anywhere in
/// the workspace (no artifacts directory, no registry). Returns the line.
fn refused(ws: &Workspace, project: &Path, extra: &[&str], needle: &str) -> String {
    let before = ws.entries();
    let out = run(ws, project, extra);
    let stderr = assert_usage_error(&out);
    let line = stderr.lines().next().unwrap().to_string();
    assert!(line.contains(needle), "`{needle}` not in: {stderr}");
    assert!(line.len() < 400, "not a short line: {line}");
    assert!(
        !stderr.chars().any(|c| c.is_control() && c != '\n'),
        "raw control character in: {stderr:?}"
    );
    assert_eq!(ws.entries(), before, "the workspace changed");
    assert!(
        !ws.artifacts().exists(),
        "an artifacts directory was created"
    );
    assert!(!ws.db().exists(), "a registry was created");
    line
}

/// A fresh workspace holding `bytes` as `project.json`.
fn with_config(bytes: impl AsRef<[u8]>) -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    let path = ws.path().join("project.json");
    std::fs::write(&path, bytes).unwrap();
    (ws, path)
}

/// `bytes` as the config: refused naming the file and `needle`.
fn refused_config(bytes: impl AsRef<[u8]>, needle: &str) -> String {
    let (ws, path) = with_config(bytes);
    let line = refused(&ws, &path, &[], needle);
    assert!(line.contains("project.json"), "file not named: {line}");
    line
}

/// `bytes` as the config: accepted; returns the run summary. The control
/// that keeps each refusal test honest.
fn accepted_config(bytes: impl AsRef<[u8]>) -> Value {
    let (ws, path) = with_config(bytes);
    let out = run(&ws, &path, &[]);
    common::summary_of(&out)
}

/// A small config, one field per line so locations are predictable:
/// `seed` is on line 4, `scene_count` on line 5, `extra` after it.
fn small_config(seed: &str, scene_count: &str, extra: &str) -> String {
    format!(
        "{{\n  \"project_id\": \"p\",\n  \"title\": \"t\",\n  \"seed\": {seed},\n  \"scene_count\": {scene_count}{extra}\n}}\n"
    )
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap()
}

fn example_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut config = example_config();
    edit(&mut config);
    pretty(&config)
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
    assert!(
        std::fs::symlink_metadata(path)
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

// ---- 1. unsafe ids -------------------------------------------------------

#[test]
fn unsafe_project_ids_are_refused_at_their_pointer() {
    let too_long = "a".repeat(65);
    let huge = "a".repeat(200_000);
    for bad in [
        "../x",
        "..",
        ".",
        "a/b",
        "/abs",
        "/etc/passwd",
        "",
        too_long.as_str(),
        huge.as_str(),
        "a\\b",
        "C:\\x",
        "a\u{0}b",
        "a\n",
        "a\tb",
        "\u{1b}[31mred",
        "Upper",
        "é",
        "ｐ",
        " a",
        "a ",
        "-a",
    ] {
        let line = refused_config(
            example_with(|c| c["project_id"] = json!(bad)),
            "`/project_id`",
        );
        assert!(line.contains("does not match"), "{bad:?}: {line}");
    }
    // Control: the longest allowed id is accepted and becomes a directory.
    let longest = "a".repeat(64);
    let summary = accepted_config(example_with(|c| c["project_id"] = json!(longest)));
    assert_eq!(summary["project_id"], json!(longest));
}

#[test]
fn unsafe_run_ids_are_refused_before_anything_is_written() {
    // argv cannot carry a NUL byte, so that case is the config's alone.
    let too_long = "a".repeat(65);
    let huge = "a".repeat(100_000);
    for bad in [
        "../x",
        "..",
        ".",
        "a/b",
        "/abs",
        "/tmp/x",
        "",
        too_long.as_str(),
        huge.as_str(),
        "a\\b",
        "a\nb",
        "a\u{1}",
        "\u{1b}[31mred",
        "Upper",
        "é",
        " a",
        "-x",
    ] {
        let ws = Workspace::new();
        let config = ws.example();
        // `--run-id=<id>` so clap hands `-x` and the empty id to the check.
        let line = refused(
            &ws,
            &config,
            &[&format!("--run-id={bad}")],
            "invalid run id",
        );
        assert!(line.contains("must match"), "{bad:?}: {line}");
    }
    // Control: a valid id is accepted.
    let ws = Workspace::new();
    let config = ws.example();
    let summary = common::summary_of(&run(&ws, &config, &["--run-id=a"]));
    assert_eq!(summary["run_id"], "a");
}

#[test]
fn a_run_id_that_is_not_utf8_is_refused_by_the_parser() {
    use std::os::unix::ffi::OsStrExt;
    let ws = Workspace::new();
    let config = ws.example();
    let before = ws.entries();
    let out = ws
        .cmd()
        .timeout(NO_HANG)
        .arg("run")
        .arg("--project")
        .arg(&config)
        .arg("--run-id")
        .arg(std::ffi::OsStr::from_bytes(b"a\xffb"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("UTF-8"),
        "{stderr}"
    );
    assert_eq!(ws.entries(), before);
}

// ---- 2. size cap ---------------------------------------------------------

/// The example config padded with trailing whitespace to exactly `len` bytes.
fn example_padded_to(len: usize) -> Vec<u8> {
    let mut bytes = pretty(&example_config()).into_bytes();
    assert!(bytes.len() < len);
    bytes.resize(len, b' ');
    bytes
}

#[test]
fn a_config_at_the_cap_is_accepted_and_one_byte_over_is_refused() {
    accepted_config(example_padded_to(MAX_CONFIG_BYTES));
    let line = refused_config(example_padded_to(MAX_CONFIG_BYTES + 1), "1 MiB");
    assert!(line.contains(&(MAX_CONFIG_BYTES + 1).to_string()), "{line}");
}

#[test]
fn a_huge_sparse_config_is_refused_without_being_read() {
    let ws = Workspace::new();
    let path = ws.path().join("project.json");
    // 64 GiB of holes: reading it whole would exhaust memory or time.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    let line = refused(&ws, &path, &[], "1 MiB");
    assert!(line.contains("project.json"), "{line}");
}

// ---- 3. special files as the config --------------------------------------

#[test]
fn a_fifo_as_the_config_is_refused_without_opening_it() {
    // Opening a FIFO for reading blocks until a writer appears; none ever
    // does here, so an open would end this test at the timeout.
    let ws = Workspace::new();
    let fifo = ws.path().join("project.json");
    mkfifo(&fifo);
    let line = refused(&ws, &fifo, &[], "FIFO");
    assert!(line.contains("project.json"), "{line}");
    // Through a symlink too: the type is that of what the link points at.
    let link = ws.path().join("link.json");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let line = refused(&ws, &link, &[], "FIFO");
    assert!(line.contains("link.json"), "{line}");
}

#[test]
fn endless_devices_as_the_config_are_refused() {
    for device in ["/dev/zero", "/dev/urandom"] {
        let device = Path::new(device);
        if !device.exists() {
            continue;
        }
        let ws = Workspace::new();
        refused(&ws, device, &[], "character device");
    }
}

#[test]
fn a_directory_or_a_missing_file_as_the_config_is_refused() {
    let ws = Workspace::new();
    std::fs::create_dir(ws.path().join("configs")).unwrap();
    refused(&ws, &ws.path().join("configs"), &[], "is a directory");
    refused(&ws, &ws.path().join("missing.json"), &[], "missing.json");
}

// ---- 4. nesting ----------------------------------------------------------

fn nested_array(depth: usize) -> Value {
    (0..depth).fold(json!([]), |inner, _| json!([inner]))
}

#[test]
fn nesting_past_the_parser_limit_is_refused_with_a_position() {
    // The config object is level 1 and `nested_array(n)` adds n + 1 levels.
    accepted_config(example_with(|c| c["deep"] = nested_array(62)));
    let line = refused_config(
        example_with(|c| c["deep"] = nested_array(63)),
        "nested deeper than 64 levels",
    );
    assert!(
        line.contains(" at line ") && line.contains(", column "),
        "{line}"
    );
}

// ---- 5. encoding and trailing text ---------------------------------------

#[test]
fn a_byte_order_mark_is_refused_with_what_to_do() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(pretty(&example_config()).into_bytes());
    let line = refused_config(bytes, "at line 1, column 1");
    assert!(line.contains("without a BOM"), "{line}");
}

#[test]
fn invalid_utf8_is_refused_saying_where() {
    // A Latin-1 `é` (0xE9) in the title, as an old editor saves it.
    let text = small_config("7", "1", "").replace("\"t\"", "\"caf\u{e9}\"");
    let at = text.find('\u{e9}').unwrap();
    let mut bytes = text.clone().into_bytes();
    bytes.splice(at..at + 2, [0xE9]);
    let line = refused_config(bytes, "at line 3, column 16");
    assert!(line.contains("not valid UTF-8 (byte 0xe9)"), "{line}");
    // Control: the same config in UTF-8 is accepted.
    accepted_config(text);
}

#[test]
fn text_after_the_config_object_is_refused_saying_where() {
    let valid = small_config("7", "1", "");
    accepted_config(&valid);
    for (trailing, location) in [
        ("}\n", "at line 7, column 1"),
        ("{}", "at line 7, column 1"),
        ("x", "at line 7, column 1"),
        ("\0", "at line 7, column 1"),
    ] {
        let line = refused_config(format!("{valid}{trailing}"), location);
        assert!(line.contains("after the end of the JSON value"), "{line}");
    }
}

// ---- 6. duplicate keys ---------------------------------------------------

#[test]
fn duplicate_keys_anywhere_are_refused_naming_object_and_key() {
    let config = small_config(
        "7",
        "1",
        ",\n  \"characters\": [{\"name\": \"A\"}, {\"name\": \"B\", \"name\": \"C\"}],\n  \"render\": {\"fps\": 24}",
    );
    accepted_config(config.replace(", \"name\": \"C\"", ""));
    let line = refused_config(
        &config,
        "duplicate key `name` in the object at `/characters/1`",
    );
    assert!(line.contains("at line 6, column "), "{line}");

    // Same value twice is still refused: the rule is about the text.
    let config = small_config("7", "1", ",\n  \"seed\": 7");
    let line = refused_config(config, "duplicate key `seed` in the object at `/`");
    assert!(line.contains("at line 6, column "), "{line}");

    let config = small_config("7", "1", ",\n  \"render\": {\"fps\": 24,\n \"fps\": 25}");
    refused_config(config, "duplicate key `fps` in the object at `/render`");
}

// ---- 7. numbers ----------------------------------------------------------

#[test]
fn numbers_out_of_range_or_not_representable_are_refused() {
    for (seed, scene_count, extra, needle) in [
        ("1e400", "1", "", "out of range"),
        ("7", "1", ",\n  \"x\": -1e999999999", "out of range"),
        ("18446744073709551616", "1", "", "line 4, column 11"),
        ("18446744073709551615", "1", "", "outside ±(2^53−1)"),
        ("9007199254740992", "1", "", "outside ±(2^53−1)"),
        (
            "7",
            "1",
            ",\n  \"id\": 9007199254740993",
            "line 6, column 9",
        ),
        ("1e-400", "1", "", "too small"),
        ("7", "1", ",\n  \"x\": 2.5e-99999", "too small"),
        ("7", "-3", "", "`/scene_count`"),
        ("7", "1.5", "", "`/scene_count`"),
        ("1.5", "1", "", "`/seed`"),
        ("-1", "1", "", "`/seed`"),
        ("1e300", "1", "", "`/seed`"),
        ("\"7\"", "1", "", "`/seed`"),
    ] {
        refused_config(small_config(seed, scene_count, extra), needle);
    }
}

#[test]
fn negative_zero_and_integral_floats_read_as_the_same_config() {
    let plain = accepted_config(small_config("0", "2", ",\n  \"x\": 0"));
    for (seed, scene_count, x) in [
        ("-0", "2", "-0"),
        ("0.0", "2.0", "0e10"),
        ("-0.0", "2e0", "0"),
    ] {
        let other = accepted_config(small_config(seed, scene_count, &format!(",\n  \"x\": {x}")));
        assert_eq!(other["run_id"], plain["run_id"], "{seed} {scene_count} {x}");
    }
    // Control: a real change gives a different run.
    let changed = accepted_config(small_config("0", "2", ",\n  \"x\": 1"));
    assert_ne!(changed["run_id"], plain["run_id"]);
}

// ---- 8. wrong shape ------------------------------------------------------

#[test]
fn valid_json_that_is_not_an_object_is_refused() {
    for (text, found) in [
        ("[]", "an array"),
        (&format!("[{}]", pretty(&example_config())), "an array"),
        ("\"project.json\"", "a string"),
        ("42", "a number"),
        ("null", "null"),
        ("true", "a boolean"),
    ] {
        let line = refused_config(text, "at `/`: expected a JSON object");
        assert!(line.ends_with(&format!("found {found}")), "{line}");
    }
}

// ---- 9. and 10. what sits in an artifact's place ---------------------------

struct Verified {
    code: i32,
    /// (kind, path relative to the run directory, found)
    problems: Vec<(String, String, String)>,
}

fn verify(ws: &Workspace) -> Verified {
    let out = ws
        .cmd()
        .timeout(NO_HANG)
        .args(["verify", "--json"])
        .output()
        .expect("`verify` did not finish (hang?)");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    let problems = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let path = p["path"].as_str().unwrap();
            (
                p["kind"].as_str().unwrap().to_string(),
                path.rsplit('/').next().unwrap().to_string(),
                p["found"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    Verified {
        code: out.status.code().unwrap(),
        problems,
    }
}

fn run_dir_of(ws: &Workspace, summary: &Value) -> PathBuf {
    ws.run_dir("lighthouse", summary["run_id"].as_str().unwrap())
}

fn sha_of(summary: &Value, artifact_type: &str) -> String {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["artifact_type"] == artifact_type)
        .unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string()
}

fn is_regular(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .unwrap()
        .file_type()
        .is_file()
}

#[test]
fn symlinked_artifact_and_meta_are_reported_then_replaced_never_written_through() {
    let (ws, first) = example_run();
    let dir = run_dir_of(&ws, &first);
    // The links point at files whose content differs from what a run
    // writes, the config itself among them: writing through either would
    // change them.
    let config = ws.path().join("project.json");
    let decoy = ws.path().join("decoy.json");
    std::fs::write(&decoy, b"{\"decoy\": true}\n").unwrap();
    let config_before = std::fs::read(&config).unwrap();
    let decoy_before = std::fs::read(&decoy).unwrap();
    std::fs::remove_file(dir.join("Script.json")).unwrap();
    std::os::unix::fs::symlink(&config, dir.join("Script.json")).unwrap();
    std::fs::remove_file(dir.join("ShotList.meta.json")).unwrap();
    std::os::unix::fs::symlink(&decoy, dir.join("ShotList.meta.json")).unwrap();

    let v = verify(&ws);
    assert_eq!(v.code, 1);
    let mut found: Vec<(String, String)> = v
        .problems
        .iter()
        .filter(|(_, _, found)| found.contains("symlink") && found.contains("not followed"))
        .map(|(kind, file, _)| (kind.clone(), file.clone()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("not_regular_file".to_string(), "Script.json".to_string()),
            (
                "not_regular_file".to_string(),
                "ShotList.meta.json".to_string()
            ),
        ]
    );

    let out = run(&ws, &config, &[]);
    let second = common::summary_of(&out);
    assert_eq!(
        second["stages"][0]["reason"],
        "artifact is not a regular file"
    );
    assert_eq!(std::fs::read(&config).unwrap(), config_before);
    assert_eq!(std::fs::read(&decoy).unwrap(), decoy_before);
    for file in ["Script.json", "ShotList.meta.json"] {
        assert!(
            is_regular(&dir.join(file)),
            "{file} is still not a regular file"
        );
    }
    assert_eq!(
        sha256_file(&dir.join("Script.json")),
        sha_of(&first, "Script")
    );
    let v = verify(&ws);
    assert_eq!((v.code, v.problems.len()), (0, 0), "{:?}", v.problems);
}

const FIFO_PLACES: [&str; 3] = ["ShotList.json", "Script.meta.json", "run_summary.json"];

#[test]
fn fifos_in_artifact_and_meta_places_hang_nothing_and_are_replaced() {
    let (ws, first) = example_run();
    let dir = run_dir_of(&ws, &first);
    for file in FIFO_PLACES {
        std::fs::remove_file(dir.join(file)).unwrap();
        mkfifo(&dir.join(file));
    }

    let v = verify(&ws);
    assert_eq!(v.code, 1);
    for file in FIFO_PLACES {
        assert!(
            v.problems
                .iter()
                .any(|(kind, f, found)| kind == "not_regular_file"
                    && f == file
                    && found.contains("FIFO")),
            "{file}: {:?}",
            v.problems
        );
    }

    let second = common::summary_of(&run(&ws, &ws.path().join("project.json"), &[]));
    assert_eq!(statuses(&second)[..2], ["executed", "executed"]);
    for file in FIFO_PLACES {
        assert!(
            is_regular(&dir.join(file)),
            "{file} is still not a regular file"
        );
    }
    assert_eq!(
        sha256_file(&dir.join("ShotList.json")),
        sha_of(&first, "ShotList")
    );
    let v = verify(&ws);
    assert_eq!((v.code, v.problems.len()), (0, 0), "{:?}", v.problems);
}

/// Replace `file` in the run directory with a directory; `keep` puts a
/// file inside it. Returns the directory.
fn directory_in_place_of(dir: &Path, file: &str, keep: bool) -> PathBuf {
    let path = dir.join(file);
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    if keep {
        std::fs::write(path.join("keep.txt"), b"mine").unwrap();
    }
    path
}

#[test]
fn a_directory_in_an_artifacts_place_is_reported_and_never_removed() {
    // The documented choice: `run` fails with exit 5 naming the path and
    // saying to move or remove it, even when the directory is empty.
    for (file, keep) in [("RenderPlan.json", true), ("ShotList.meta.json", false)] {
        let (ws, first) = example_run();
        let dir = run_dir_of(&ws, &first);
        let in_the_way = directory_in_place_of(&dir, file, keep);

        let v = verify(&ws);
        assert_eq!(v.code, 1);
        assert!(
            v.problems
                .iter()
                .any(|(kind, f, found)| kind == "not_regular_file"
                    && f == file
                    && found == "a directory"),
            "{file}: {:?}",
            v.problems
        );

        let config = ws.path().join("project.json");
        let out = run(&ws, &config, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{stderr}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(file),
            "{stderr}"
        );
        assert!(lines[1].contains("move or remove it"), "{stderr}");
        assert!(in_the_way.is_dir(), "{file}: the directory was removed");
        if keep {
            assert_eq!(std::fs::read(in_the_way.join("keep.txt")).unwrap(), b"mine");
        }
        assert!(
            !common::dir_names(&dir)
                .iter()
                .any(|n| n.starts_with(".tmp-")),
            "a temporary file was left behind"
        );

        // Once it is moved away, the next run completes and all is clean.
        std::fs::remove_dir_all(&in_the_way).unwrap();
        common::summary_of(&run(&ws, &config, &[]));
        let v = verify(&ws);
        assert_eq!((v.code, v.problems.len()), (0, 0), "{:?}", v.problems);
    }
}

/// A config's title (or its path) with terminal escape sequences is shown
/// escaped by `runs show` and in `runs list --show title`: printed raw, ESC
/// and BEL would retitle or recolour the user's terminal.
#[test]
fn terminal_escapes_in_a_title_are_not_printed_raw() {
    let ws = Workspace::new();
    let mut config = example_config();
    config["title"] = json!("Evil\u{1b}]0;pwned\u{7}\u{1b}[31mRED");
    let project = ws.write_config("escape\u{1b}[2J.json", &config);
    let summary = ws.run_ok(&project, &[]);
    let run_id = summary["run_id"].as_str().unwrap();
    for args in [
        vec!["runs", "show", run_id],
        vec!["runs", "list", "--show", "title"],
    ] {
        let out = ws.cmd().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            !stdout.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}: raw control character in: {stdout:?}"
        );
        assert!(stdout.contains("Evil\\u{1b}]0;pwned"), "{args:?}: {stdout}");
    }
}

/// An unknown config key is quoted in a warning (and, with `--strict`, in
/// the error): a key holding ESC or BEL must be shown escaped there, not
/// sent to the user's terminal.
#[test]
fn terminal_escapes_in_an_unknown_key_are_not_printed_raw() {
    let ws = Workspace::new();
    let mut config = example_config();
    config["x\u{1b}[31mred\u{7}"] = json!(1);
    let project = ws.write_config("keys.json", &config);
    for extra in [&["--dry-run"][..], &["--dry-run", "--strict"][..]] {
        let out = run(&ws, &project, extra);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("unknown key"), "{extra:?}: {stderr}");
        assert!(
            !stderr.chars().any(|c| c.is_control() && c != '\n'),
            "{extra:?}: raw control character in: {stderr:?}"
        );
    }
}

/// `--set a.a.a…=1` with tens of thousands of levels overflowed the stack
/// (abort, exit 134) applying and hashing the config. A path is bounded
/// like a file's nesting: exit 2 saying so.
#[test]
fn a_set_path_nested_tens_of_thousands_deep_is_refused_not_a_stack_overflow() {
    let ws = Workspace::new();
    let project = ws.write_config("project.json", &example_config());
    let key = vec!["a"; 60_000].join(".");
    let out = run(&ws, &project, &["--dry-run", "--set", &format!("{key}=1")]);
    // clap quotes the refused value whole; the reason follows it.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr
        .chars()
        .rev()
        .take(300)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(out.status.code(), Some(2), "{tail}");
    assert!(stderr.contains("nested deeper than 64 levels"), "{tail}");
}

/// A stray file whose name holds ESC/BEL, in a run directory or beside
/// one, is named by `verify` and `reindex` with those characters escaped:
/// printed raw, the name would drive the user's terminal.
#[test]
fn terminal_escapes_in_a_stray_file_name_are_not_printed_raw() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    std::fs::write(
        ws.run_dir("lighthouse", run_id).join("x\u{1b}[31mred\u{7}"),
        b"",
    )
    .unwrap();
    std::fs::create_dir(ws.artifacts().join("lighthouse").join("z\u{1b}]0;t\u{7}")).unwrap();
    for args in [&["verify"][..], &["reindex", "--dry-run"][..]] {
        let out = ws.cmd().args(args).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap();
        assert!(text.contains("x\\u{1b}[31mred"), "{args:?}: {text}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}: raw control character in: {text:?}"
        );
    }
}
