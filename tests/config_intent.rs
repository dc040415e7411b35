//! Integration tests for a config meaning what the user meant: unknown keys
//! are reported (and refused under `--strict`), duplicate names are refused,
//! film frame rates are exact, and `--set` / `--from-run` vary a take
//! without editing a file.

mod common;

use common::{Workspace, assert_usage_error, example_config, summary_of};
use serde_json::{Value, json};

/// The example's run id: integer rates keep theirs.
const EXAMPLE_RUN_ID: &str = "a099278345b0ccbc";

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_misspelled_key_is_warned_about_with_what_it_meant_and_strict_refuses_it() {
    let ws = Workspace::new();
    let mut config = example_config();
    config["render"] = json!({"widht": 3840, "height": 720, "fps": 24});
    config["charcters"] = json!([]);
    let path = ws.write_config("typo.json", &config);

    let out = ws.run_output(&path, &[]);
    let summary = summary_of(&out);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("typo.json`: unknown key `render.widht` (did you mean `width`?)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unknown key `charcters` (did you mean `characters`?)"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: `--strict`"), "{stderr}");
    // Still legal, still part of the identity.
    assert_eq!(summary["status"], "complete");
    assert_ne!(summary["run_id"], EXAMPLE_RUN_ID);

    for strict in [
        (Some("--strict"), None),
        (None, Some("1")),
        (None, Some("true")),
    ] {
        let ws = Workspace::new();
        let path = ws.write_config("typo.json", &config);
        let mut cmd = ws.cmd();
        cmd.args(["run", "--json", "--project"]).arg(&path);
        if let Some(flag) = strict.0 {
            cmd.arg(flag);
        }
        if let Some(env) = strict.1 {
            cmd.env("ORCHESTRATOR_STRICT", env);
        }
        let stderr = assert_usage_error(&cmd.output().unwrap());
        assert!(
            stderr.contains("at `/charcters`: unknown key `charcters` (did you mean `characters`?) (and 1 more); --strict refuses"),
            "{stderr}"
        );
        assert!(!ws.artifacts().exists(), "nothing is written");
    }
    // ORCHESTRATOR_STRICT=0 is off.
    let ws = Workspace::new();
    let path = ws.write_config("typo.json", &config);
    let out = ws
        .cmd()
        .env("ORCHESTRATOR_STRICT", "0")
        .args(["run", "--json", "--project"])
        .arg(&path)
        .output()
        .unwrap();
    summary_of(&out);
}

#[test]
fn two_characters_with_one_name_are_refused_naming_both_places() {
    for (list, index) in [("characters", 2), ("locations", 1)] {
        let ws = Workspace::new();
        let mut config = example_config();
        let first = config[list][0]["name"].as_str().unwrap().to_string();
        config[list][index]["name"] = json!(format!(" {} ", first.to_uppercase()));
        let path = ws.write_config("dup.json", &config);
        let stderr = assert_usage_error(&ws.run_output(&path, &[]));
        assert!(
            stderr.contains(&format!("at `/{list}/{index}/name`"))
                && stderr.contains(&format!("is also the name of `/{list}/0/name`")),
            "{stderr}"
        );
        assert!(!ws.artifacts().exists());
    }
}

#[test]
fn ntsc_frame_rates_are_accepted_and_counted_exactly() {
    let ws = Workspace::new();
    let mut plans = Vec::new();
    for (i, fps) in [json!(23.976), json!("24000/1001")].into_iter().enumerate() {
        let mut config = example_config();
        config["render"]["fps"] = fps;
        let path = ws.write_config(&format!("ntsc{i}.json"), &config);
        let summary = ws.run_ok(&path, &[]);
        let dir = ws.run_dir("lighthouse", summary["run_id"].as_str().unwrap());
        plans.push((
            read_json(&dir.join("RenderPlan.json")),
            read_json(&dir.join("RenderOutput.json")),
            read_json(&dir.join("ShotList.json")),
        ));
    }
    for (plan, output, shots) in &plans {
        assert_eq!(plan["fps"], 24, "the nominal rate");
        assert_eq!(plan["frame_rate"], "24000/1001");
        assert_eq!(output["frame_rate"], "24000/1001");
        // Each shot's frames: ceil(duration_ms * 24000 / (1000 * 1001)).
        let mut total = 0u64;
        for (job, shot) in plan["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .zip(shots["shots"].as_array().unwrap())
        {
            let ms = shot["duration_ms"].as_u64().unwrap();
            let frames = (ms * 24000).div_ceil(1000 * 1001).max(1);
            assert_eq!(job["frame_count"], frames, "{job}");
            assert_eq!(job["frame_start"], total);
            total += frames;
        }
        assert_eq!(plan["total_frames"], total);
        assert_eq!(output["duration_ms"], total * 1000 * 1001 / 24000);
    }
    // The two spellings are the same rate, so the same frames.
    assert_eq!(plans[0].0["jobs"], plans[1].0["jobs"]);

    // Integer rates keep their run ids and write no frame_rate.
    let summary = ws.run_ok(&ws.example(), &[]);
    assert_eq!(summary["run_id"], EXAMPLE_RUN_ID);
    let plan = read_json(
        &ws.run_dir("lighthouse", EXAMPLE_RUN_ID)
            .join("RenderPlan.json"),
    );
    assert_eq!(plan["fps"], 24);
    assert!(plan.get("frame_rate").is_none(), "{plan}");

    for bad in [
        json!(23.97),
        json!(25.5),
        json!("24000/0"),
        json!("241/1"),
        json!(0),
    ] {
        let ws = Workspace::new();
        let mut config = example_config();
        config["render"]["fps"] = bad.clone();
        let path = ws.write_config("bad.json", &config);
        let stderr = assert_usage_error(&ws.run_output(&path, &[]));
        assert!(
            stderr.contains("at `/render/fps`") && stderr.contains("NTSC rates 23.976"),
            "{bad}: {stderr}"
        );
    }
}

#[test]
fn set_overrides_are_validated_hashed_and_recorded_like_the_file() {
    let ws = Workspace::new();
    let mut edited = example_config();
    edited["seed"] = json!(1978);
    edited["render"]["width"] = json!(3840);
    edited["title"] = json!("Director's Cut");
    let edited = ws.write_config("edited.json", &edited);
    let by_file = ws.run_ok(&edited, &["--dry-run"]);

    let example = ws.example();
    let args = [
        "--set",
        "seed=1978",
        "--set",
        "render.width=3840",
        "--set",
        "title=Director's Cut",
    ];
    let planned = ws.run_ok(&example, &[&args[..], &["--dry-run"]].concat());
    assert_eq!(planned["config_hash"], by_file["config_hash"]);
    let summary = ws.run_ok(&example, &args);
    assert_eq!(summary["config_hash"], by_file["config_hash"]);
    assert_eq!(summary["run_id"], by_file["run_id"]);
    let dir = ws.run_dir("lighthouse", summary["run_id"].as_str().unwrap());
    assert_eq!(
        read_json(&dir.join("RenderPlan.json"))["resolution"]["width"],
        3840
    );
    let recorded = read_json(&dir.join("run_summary.json"));
    assert_eq!(recorded["config"]["seed"], 1978);

    // Refused: a value the schema refuses, a path through a scalar, no `=`.
    for (set, needle) in [
        ("seed=-1", "at `/seed`"),
        (
            "seed.x=1",
            "--set seed.x=1: `x` cannot be set inside a number",
        ),
    ] {
        let stderr = assert_usage_error(&ws.run_output(&example, &["--set", set]));
        assert!(stderr.contains(needle), "{set}: {stderr}");
    }
    let out = ws.run_output(&example, &["--set", "seed"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("is not KEY=VALUE"),
        "{}",
        stderr_of(&out)
    );
    // A path the schema does not know gets the unknown-key warning.
    let out = ws.run_output(&example, &["--set", "render.widht=3840", "--dry-run"]);
    summary_of(&out);
    assert!(
        stderr_of(&out).contains("unknown key `render.widht` (did you mean `width`?)"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn from_run_remakes_a_take_from_the_recorded_config() {
    let ws = Workspace::new();
    let example = ws.example();
    let take = ws.run_ok(&example, &["--run-id", "take-1"]);
    std::fs::remove_file(&example).unwrap();

    // Without changes it is the same take: everything is up to date.
    let out = ws
        .cmd()
        .args(["run", "--json", "--from-run", "take-1"])
        .output()
        .unwrap();
    let again = summary_of(&out);
    assert_eq!(again["run_id"], "take-1");
    assert_eq!(again["config_hash"], take["config_hash"]);
    assert_eq!(again["stages_skipped"], 5, "{again}");

    // With --set it is a new take with its own id.
    let out = ws
        .cmd()
        .args([
            "run",
            "--json",
            "--from-run",
            "take-1",
            "--set",
            "seed=1978",
        ])
        .output()
        .unwrap();
    let varied = summary_of(&out);
    assert_ne!(varied["run_id"], "take-1");
    assert_eq!(varied["config"]["seed"], 1978);
    assert_eq!(varied["config"]["title"], take["config"]["title"]);

    // --project and --from-run together, or neither, are usage errors.
    let out = ws
        .cmd()
        .args(["run", "--from-run", "take-1", "--project", "x.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = ws.cmd().args(["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = assert_usage_error(
        &ws.cmd()
            .args(["run", "--from-run", "nope"])
            .output()
            .unwrap(),
    );
    assert!(stderr.contains("no run matches `nope`"), "{stderr}");
}

#[test]
fn a_run_records_where_its_config_came_from() {
    let ws = Workspace::new();
    let example = ws.example();
    ws.run_ok(&example, &["--run-id", "take-1"]);
    let show = |id: &str| -> Value {
        let out = ws
            .cmd()
            .args(["runs", "show", id, "--json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(
        show("take-1")["config_path"],
        std::path::absolute(&example).unwrap().display().to_string()
    );
    let out = ws
        .cmd()
        .args([
            "run",
            "--json",
            "--from-run",
            "take-1",
            "--set",
            "seed=5",
            "--run-id",
            "take-2",
        ])
        .output()
        .unwrap();
    summary_of(&out);
    assert_eq!(show("take-2")["config_path"], "registry:lighthouse/take-1");
    // It survives a rebuilt registry: run_summary.json records it.
    // (reindex rebuilds a PostgreSQL registry from nothing in place.)
    if !common::postgres_pass() {
        std::fs::remove_file(ws.db()).unwrap();
    }
    let out = ws.cmd().args(["reindex"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(show("take-2")["config_path"], "registry:lighthouse/take-1");
}

/// Two projects with the same run id: `run --from-run take-1` is ambiguous,
/// and `--project` (the usual way out) names the config file on `run`, so
/// the take must be reachable as `PROJECT/RUN` and the hint must say so.
#[test]
fn from_run_of_a_run_id_two_projects_share_can_name_the_project() {
    let ws = Workspace::new();
    let example = ws.example();
    ws.run_ok(&example, &["--run-id", "take-1"]);
    let mut other = example_config();
    other["project_id"] = json!("other");
    other["seed"] = json!(5);
    let other = ws.write_config("other.json", &other);
    ws.run_ok(&other, &["--run-id", "take-1"]);

    let stderr = assert_usage_error(
        &ws.cmd()
            .args(["run", "--dry-run", "--from-run", "take-1"])
            .output()
            .unwrap(),
    );
    assert!(stderr.contains("is ambiguous"), "{stderr}");
    assert!(stderr.contains("--from-run PROJECT/RUN"), "{stderr}");
    assert!(!stderr.contains("or `--project`"), "{stderr}");

    let out = ws
        .cmd()
        .args(["run", "--json", "--from-run", "other/take-1"])
        .output()
        .unwrap();
    let again = summary_of(&out);
    assert_eq!(again["project_id"], "other");
    assert_eq!(again["run_id"], "take-1");
    assert_eq!(again["config"]["seed"], 5);
    assert_eq!(again["stages_skipped"], 5, "{again}");
}

/// `ORCHESTRATOR_STRICT=` (set but empty, as `export VAR=` leaves it) means
/// off, as an empty `NO_COLOR` does, not "invalid value '' for '--strict'".
#[test]
fn an_empty_orchestrator_strict_is_off_not_an_error() {
    let ws = Workspace::new();
    let example = ws.example();
    for (value, strict) in [("", false), ("0", false), ("false", false), ("1", true)] {
        let out = ws
            .cmd()
            .env("ORCHESTRATOR_STRICT", value)
            .args(["run", "--dry-run", "--set", "charcters=[]", "--project"])
            .arg(&example)
            .output()
            .unwrap();
        let stderr = stderr_of(&out);
        if strict {
            assert_eq!(out.status.code(), Some(2), "{value:?}: {stderr}");
        } else {
            assert!(out.status.success(), "{value:?}: {stderr}");
            assert!(stderr.contains("warning:"), "{value:?}: {stderr}");
        }
    }
}

/// `"1/3"` fps passed validation but rounds to a whole rate of 0, which
/// stage 4's RenderPlan schema refuses: the config mistake surfaced as a
/// failed run three stages in. A rate under 1 fps is refused up front.
#[test]
fn a_rate_below_one_frame_per_second_is_refused_before_any_stage_runs() {
    for fps in ["1/3", "1/1001", "1000/1001"] {
        let ws = Workspace::new();
        let mut config = example_config();
        config["render"]["fps"] = json!(fps);
        let path = ws.write_config("slow.json", &config);
        let stderr = assert_usage_error(&ws.run_output(&path, &[]));
        assert!(stderr.contains("at `/render/fps`"), "{fps}: {stderr}");
        assert!(!ws.artifacts().exists(), "{fps}: a run was started");
    }
}
