//! The README's sqlite3 examples, executed against a fresh example run, so
//! they can never rot. They are SQLite's (`sqlite3 artifacts/registry.db`,
//! `IS NOT 'ok'`): every test that runs them is `sqlite_only!`.

mod common;

use common::example_run;

/// Every ```sql block of the section "Inspecting the registry with sqlite3".
fn readme_queries() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("## Inspecting the registry with sqlite3")
        .expect("README has the sqlite3 section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut queries = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sql\n") {
        let body = &rest[open + 7..];
        let close = body.find("```").expect("closed code block");
        queries.push(body[..close].to_string());
        rest = &body[close + 3..];
    }
    queries
}

#[test]
fn readme_has_four_to_six_queries() {
    let n = readme_queries().len();
    assert!((4..=6).contains(&n), "{n} queries");
}

#[test]
fn every_readme_query_returns_rows_on_the_example_run() {
    sqlite_only!();
    let (ws, _) = example_run();
    let conn = ws.sqlite();
    for sql in readme_queries() {
        let mut stmt = conn.prepare(&sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
        let columns = stmt.column_count();
        let rows: Vec<Vec<String>> = stmt
            .query_map([], |r| {
                (0..columns)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect()
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!rows.is_empty(), "no rows from:\n{sql}");
    }
}

#[test]
fn the_ancestry_query_finds_all_five_artifacts() {
    sqlite_only!();
    let (ws, _) = example_run();
    let conn = ws.sqlite();
    let sql = readme_queries()
        .into_iter()
        .find(|q| q.contains("WITH RECURSIVE"))
        .expect("a recursive ancestry query");
    let mut stmt = conn.prepare(&sql).unwrap();
    let mut found: Vec<(i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    found.sort();
    // Each artifact once, at its shortest distance from the RenderOutput.
    let expected = [
        (0, "RenderOutput"),
        (1, "RenderPlan"),
        (1, "ShotList"),
        (2, "AssetManifest"),
        (2, "Script"),
    ];
    let expected: Vec<(i64, String)> = expected.iter().map(|(d, t)| (*d, t.to_string())).collect();
    assert_eq!(found, expected);
}

/// The same queries through the real sqlite3 shell, when it is installed.
#[test]
fn readme_queries_work_in_the_sqlite3_shell() {
    sqlite_only!();
    if std::process::Command::new("sqlite3")
        .arg("-version")
        .output()
        .is_err()
    {
        eprintln!("sqlite3 not installed; skipped");
        return;
    }
    let (ws, _) = example_run();
    for sql in readme_queries() {
        let out = std::process::Command::new("sqlite3")
            .arg(ws.db())
            .arg(&sql)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{sql}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "no rows from sqlite3:\n{sql}");
    }
}
