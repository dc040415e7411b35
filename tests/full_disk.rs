//! A full disk: the read commands still answer (so the user can see what
//! to free), and a `run` says plainly that the disk is full and where,
//! with exit 5. Needs a real full file system: a 2 MiB tmpfs, mounted as
//! root. Where mounting is not permitted the test says so and passes,
//! except under `CI=true`, where it fails.

mod common;

use common::{Mount, Workspace, fill_disk};

/// The example run into an artifacts directory on a 2 MiB tmpfs (not yet
/// filled): the workspace, the config, the run's summary and the mount,
/// which is unmounted when dropped. `None` where mounting is not permitted.
fn example_on_a_tmpfs(
    test: &str,
) -> Option<(Workspace, std::path::PathBuf, serde_json::Value, Mount)> {
    let ws = Workspace::new();
    let config = ws.example();
    std::fs::create_dir_all(ws.artifacts()).unwrap();
    let mounted = Mount::tmpfs(&ws.artifacts(), "2m", test)?;
    let summary = ws.run_ok(&config, &[]);
    Some((ws, config, summary, mounted))
}

#[test]
fn a_full_disk_still_answers_reads_and_run_says_the_disk_is_full() {
    let Some((ws, config, summary, _mounted)) = example_on_a_tmpfs("full_disk") else {
        return;
    };
    let run_id = summary["run_id"].as_str().unwrap();
    fill_disk(&ws.artifacts().join("filler"));

    let readers: [&[&str]; 6] = [
        &["runs", "list", "--json"],
        &["runs", "show", run_id],
        &["lineage", "RenderOutput"],
        &["verify"],
        &["export", "--format", "prov", run_id],
        &["diff", run_id, run_id],
    ];
    for args in readers {
        let out = ws.cmd().args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} on a full disk: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rows = ws.runs_list(&[]);
    assert_eq!(rows[0]["run_id"], run_id);

    for extra in [&["--force"][..], &["--run-id", "take-2"]] {
        let out = ws.run_output(&config, extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{err}");
        assert!(err.starts_with("error: the disk is full: "), "{err}");
        assert!(err.contains("`artifacts/"), "names a path: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(!first.contains("disk I/O error"), "said plainly: {err}");
    }
    let take_2 = ws.run_dir("lighthouse", "take-2");
    if common::postgres_pass() {
        // A PostgreSQL registry's disk is the server's: the run starts,
        // and stops at its first file, leaving no part of one.
        assert_eq!(common::dir_names(&take_2), Default::default());
    } else {
        // A SQLite registry cannot open for writing on a full disk: the
        // run stops before it makes its directory.
        assert!(!take_2.exists());
    }
}

/// With the registry open elsewhere (its `-shm` made, so the usual open
/// succeeds), only recording verify's results needs space: verify must
/// still report, and say the results were not recorded.
#[test]
fn verify_on_a_full_disk_reports_while_the_registry_is_open_elsewhere() {
    // The registry file's `-shm` and recording into it on the full disk;
    // a PostgreSQL registry records on the server.
    sqlite_only!();
    let Some((ws, _config, _summary, _mounted)) =
        example_on_a_tmpfs("verify_on_a_full_disk_reports_while_the_registry_is_open_elsewhere")
    else {
        return;
    };
    let other = rusqlite::Connection::open(ws.db()).unwrap();
    let runs: i64 = other
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1);
    fill_disk(&ws.artifacts().join("filler"));

    let out = ws.cmd().args(["verify", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["artifacts_checked"], 5, "{report:#}");
    assert!(
        stderr.contains("is full; these results were not recorded"),
        "{stderr}"
    );
    drop(other);
}

#[test]
fn package_on_a_full_disk_names_the_package_not_a_temp_file() {
    let Some((ws, _config, summary, _mounted)) =
        example_on_a_tmpfs("package_on_a_full_disk_names_the_package_not_a_temp_file")
    else {
        return;
    };
    let run_id = summary["run_id"].as_str().unwrap();
    fill_disk(&ws.artifacts().join("filler"));

    let out = ws.cmd().args(["package", run_id]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: the disk is full: writing `artifacts/lighthouse/{run_id}/RenderPackage.json`"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(".tmp-"), "an internal name: {stderr}");
    let left: Vec<_> = common::dir_names(&ws.run_dir("lighthouse", run_id))
        .into_iter()
        .filter(|n| n.starts_with(".tmp-") || n.starts_with("RenderPackage"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn reindex_on_a_full_disk_names_the_registry_not_its_rebuild() {
    // The rebuilt file and its swap; PostgreSQL rebuilds on the server.
    sqlite_only!();
    let Some((ws, _config, _summary, _mounted)) =
        example_on_a_tmpfs("reindex_on_a_full_disk_names_the_registry_not_its_rebuild")
    else {
        return;
    };
    fill_disk(&ws.artifacts().join("filler"));
    let before = std::fs::read(ws.db()).unwrap();

    let out = ws.cmd().arg("reindex").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.starts_with(
            "error: the disk is full: rebuilding the registry `artifacts/registry.db`"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains(".reindex-"), "an internal name: {stderr}");
    assert_eq!(std::fs::read(ws.db()).unwrap(), before);
    let left: Vec<_> = common::dir_names(&ws.artifacts())
        .into_iter()
        .filter(|n| n.contains(".reindex-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
