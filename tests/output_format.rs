//! Integration tests for output that fits where it goes: plain aligned rows
//! for pipes, box tables sized to a terminal (ids and hashes never wrapped),
//! and colour only when asked for or on a terminal without `NO_COLOR`.

mod common;

use std::process::Command;

use common::{Workspace, example_config, example_run};

const BOX: [char; 4] = ['┌', '│', '╞', '┆'];

/// Run `orchestrator <args>` under a pseudo-terminal (util-linux `script`),
/// after `stty` sets its size (`cols` 0 leaves it unreported, as a fresh
/// pty is). Returns what the terminal showed.
fn on_a_terminal(ws: &common::Workspace, cols: u16, args: &str, env: &[(&str, &str)]) -> String {
    let bin = assert_cmd::cargo::cargo_bin!("orchestrator");
    let size = if cols == 0 {
        String::new()
    } else {
        format!("stty cols {cols} rows 50; ")
    };
    let mut cmd = Command::new("script");
    cmd.current_dir(ws.path())
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS")
        .env("TERM", "xterm")
        .args([
            "-qec",
            &format!("{size}{} {args}", bin.display()),
            "/dev/null",
        ]);
    // The workspace's registry, as `Workspace::cmd` names it.
    match ws.pg_url() {
        Some(url) => cmd.env("ORCHESTRATOR_DB", url),
        None => cmd.env_remove("ORCHESTRATOR_DB"),
    };
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("util-linux `script` runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

#[test]
fn a_piped_table_is_plain_aligned_rows_under_a_header() {
    let (ws, summary) = example_run();
    let out = ws.cmd().args(["runs", "list"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(BOX), "no box drawing in a pipe: {text}");
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "RUN",
            "ID",
            "PROJECT",
            "STATUS",
            "EXEC/SKIP",
            "CREATED",
            "DURATION"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], summary["run_id"]);
    assert_eq!(&row[1..4], ["lighthouse", "complete", "5/0"]);
    // Columns line up: each field starts where its header does.
    let at = |line: &str, word: &str| line.find(word).unwrap();
    assert_eq!(at(lines[0], "STATUS"), at(lines[1], "complete"));
    assert!(!text.contains('\x1b'), "no colour in a pipe by default");
}

#[test]
fn a_pty_that_reports_no_size_gets_a_sane_width_and_ids_never_wrap() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    for cols in [0, 60] {
        let shown = on_a_terminal(&ws, cols, "runs list --color never", &[]);
        assert!(shown.contains(BOX), "box drawing on a terminal: {shown}");
        let row = shown
            .lines()
            .find(|l| l.contains("lighthouse"))
            .unwrap_or_else(|| panic!("no row at {cols} columns: {shown}"));
        assert!(
            row.contains(run_id),
            "the run id is whole at {cols} columns: {shown}"
        );
        assert!(
            row.contains("RUN ID") || shown.contains("RUN ID"),
            "{shown}"
        );
        assert!(
            !shown.contains("│ R ┆ P"),
            "one character per column: {shown}"
        );
    }
    // `runs show` lets the reason column give way, never the hash.
    let shown = on_a_terminal(&ws, 70, &format!("runs show {run_id} --color never"), &[]);
    let sha = summary["stages"][0]["sha256"].as_str().unwrap();
    assert!(shown.contains(&sha[..12]), "{shown}");
}

#[test]
fn colour_follows_the_flag_the_terminal_and_no_color() {
    let (ws, _) = example_run();
    let green = "complete\x1b[";
    let coloured = |s: &str| s.contains('\x1b') && s.contains("complete");
    // On a terminal: colour by default, none under NO_COLOR or --color never.
    assert!(coloured(&on_a_terminal(&ws, 100, "runs list", &[])));
    let plain = on_a_terminal(&ws, 100, "runs list", &[("NO_COLOR", "1")]);
    assert!(!plain.contains("\x1b[3"), "{plain:?}");
    let plain = on_a_terminal(&ws, 100, "runs list --color never", &[]);
    assert!(!plain.contains("\x1b[3"), "{plain:?}");
    // In a pipe: only --color always.
    let out = ws
        .cmd()
        .args(["runs", "list", "--color", "always"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("\x1b[32m") && text.contains(green),
        "{text:?}"
    );
}

#[test]
fn bash_completions_load_and_complete_subcommands_and_flags() {
    let ws = common::Workspace::new();
    let out = ws.cmd().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = ws.path().join("orchestrator.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    // Source it in a real bash, then ask it to complete `orchestrator ru`
    // and `orchestrator run --pro`.
    let probe = format!(
        r#"source {}
complete_words() {{ COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}; _orchestrator orchestrator "${{COMP_WORDS[-1]}}" "${{COMP_WORDS[-2]}}"; echo "${{COMPREPLY[*]}}"; }}
complete_words orchestrator ru
complete_words orchestrator run --pro"#,
        script.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].split(' ').any(|w| w == "run") && lines[0].contains("runs"),
        "{text}"
    );
    assert_eq!(lines[1], "--project", "{text}");
    for shell in ["zsh", "fish", "powershell"] {
        let out = ws.cmd().args(["completions", shell]).output().unwrap();
        assert!(out.status.success() && out.stdout.len() > 1000, "{shell}");
    }
}

#[test]
fn the_man_page_names_every_command() {
    let ws = common::Workspace::new();
    let out = ws.cmd().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH orchestrator 1"), "{page}");
    for cmd in [
        "run", "runs", "lineage", "verify", "reindex", "export", "diff", "package", "gc",
    ] {
        assert!(
            page.contains(&format!("orchestrator\\-{cmd}(1)"))
                || page.contains(&format!("\n{cmd}\n")),
            "{cmd} missing from the man page"
        );
    }
}

#[test]
fn verify_findings_are_red_only_when_colour_is_on() {
    let (ws, summary) = example_run();
    let run = summary["run_id"].as_str().unwrap();
    let script = ws.run_dir("lighthouse", run).join("Script.json");
    let mut bytes = std::fs::read(&script).unwrap();
    bytes.push(b'\n');
    std::fs::write(&script, bytes).unwrap();
    let coloured = ws
        .cmd()
        .args(["verify", "--color", "always"])
        .output()
        .unwrap();
    assert_eq!(coloured.status.code(), Some(1));
    let text = String::from_utf8(coloured.stdout).unwrap();
    assert!(text.contains("\x1b[31mhash mismatch\x1b[0m"), "{text:?}");
    let plain = ws.cmd().args(["verify"]).output().unwrap();
    assert!(!String::from_utf8(plain.stdout).unwrap().contains('\x1b'));
}

/// A piped table lines up by display width, not by character count: a
/// Japanese title takes two cells per character, so the column after it
/// must start at the same terminal column in every row.
#[test]
fn a_piped_table_with_wide_characters_stays_aligned() {
    let ws = Workspace::new();
    let mut config = example_config();
    config["title"] = serde_json::json!("灯台守の最後");
    let wide = ws.write_config("wide.json", &config);
    ws.run_ok(&wide, &[]);
    ws.run_ok(&ws.example(), &[]);
    let out = ws
        .cmd()
        .args(["runs", "list", "--show", "title,seed"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let seed_column = |line: &str| {
        let at = line.rfind("  ").unwrap() + 2;
        unicode_width::UnicodeWidthStr::width(&line[..at])
    };
    let columns: Vec<usize> = stdout.lines().map(seed_column).collect();
    assert!(
        columns.windows(2).all(|w| w[0] == w[1]),
        "SEED not aligned ({columns:?}):\n{stdout}"
    );
}

/// On a terminal narrower than the fixed columns, the free-text REASON
/// column was squeezed to one letter a line ("R / E / A / S / O / N"): it
/// keeps a readable width and the table overflows instead.
#[test]
fn a_very_narrow_terminal_does_not_stack_free_text_one_letter_a_line() {
    let (ws, summary) = example_run();
    let run_id = summary["run_id"].as_str().unwrap();
    let shown = on_a_terminal(&ws, 40, &format!("runs show {run_id} --color never"), &[]);
    assert!(shown.contains("REASON"), "{shown}");
    assert!(shown.contains("not run before"), "{shown}");
}

/// `completions SHELL > /dev/full` panicked inside clap_complete (exit 101
/// and a backtrace); like `man` and every other command, a stdout that
/// cannot be written is an error message and exit 5.
#[test]
fn completions_to_a_full_disk_is_an_error_not_a_panic() {
    let ws = Workspace::new();
    for args in [&["completions", "bash"][..], &["man"][..]] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(assert_cmd::cargo::cargo_bin!("orchestrator"))
            .current_dir(ws.path())
            .args(args)
            .stdout(full)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(5), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
}
