//! `EXPLAIN QUERY PLAN` of every SQL statement the crate issues, against a
//! freshly migrated registry: none may read all of `runs`, `artifacts`,
//! `artifact_edges` or `stage_executions` — the tables that grow with every
//! run — whether the table itself (`SCAN runs`) or one of its indexes from end
//! to end (`SCAN runs USING [COVERING] INDEX …`). `SEARCH … USING INDEX` is
//! a lookup or a range and passes; how much of the table a range covers is
//! up to the value bound (`runs list --since` asks for a range of start
//! times), which a plan cannot show. The one ordered walk from an index's
//! end that a LIMIT stops is allowed by name ([`ORDERED_WALKS`]).
//!
//! The statements are not listed by hand, so a new one cannot be forgotten:
//! they are read from the source of every module under `src/`. Every string
//! literal that begins with `SELECT`, `INSERT`, `UPDATE`, `DELETE` or `WITH`
//! is a statement (a `format!` template has its `{CONST}` placeholders
//! replaced by those constants' text), and so is every `const X: &str` whose
//! text does. A `const X: Sql = Sql::dialects(sqlite, postgres)` is its
//! SQLite text; the PostgreSQL text is not SQLite's to explain, nor is a
//! `const X_POSTGRES: &str` (or a template built from one), nor a file of
//! PostgreSQL-only statements ([`POSTGRES_ONLY`]). Code in `#[cfg(test)]`
//! sections is left out.
//!
//! The plan a registry gets is the one an empty registry gets: the tool
//! never runs `ANALYZE`, so SQLite plans from the schema alone, whatever the
//! tables hold. Parameters are bound before explaining, since a GLOB against
//! a bound pattern is planned as an index range only once the pattern is
//! known: `GLOB ?n` gets `ab*`, every other parameter the integer 1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::Registry;

/// The tables a registry accumulates a row per run (or more) in.
const GROWING: [&str; 4] = ["runs", "artifacts", "artifact_edges", "stage_executions"];

/// Statements allowed one walk of an index from its end, each with the
/// plan line of that walk and why it is bounded anyway: (a placeholder the
/// statement is built with, the plan line).
const ORDERED_WALKS: [(&str, &str); 2] = [
    // `runs list` without filters: the newest runs, read from the newest
    // end of `runs_by_created_at` in order; its LIMIT (50 by default) ends
    // the walk, so it reads a page, not the table.
    ("{LIST_RUNS}", "SCAN r USING INDEX runs_by_created_at"),
    // `lineage TYPE` without a scope: runs newest first until one has the
    // type (a key lookup each); it stops at the first, which is the newest
    // run unless newer ones failed before making it.
    (
        "{NEWEST_WITH_TYPE}",
        "SCAN r USING INDEX runs_by_created_at",
    ),
];

/// Statements that count a whole table on purpose, each with why: only
/// `registry info` does, when a user asks how much the registry holds.
const WHOLE_COUNTS: [&str; 1] = [
    // One index walk per table (SQLite counts a covering index), run once
    // per `registry info`; never on a path a run or a listing takes.
    "registry/info.rs: COUNTS",
];

/// Files whose statements only ever run on PostgreSQL (its catalogs, its
/// advisory locks): not SQLite's to plan. Their query plans on PostgreSQL
/// are checked against a server, not here.
const POSTGRES_ONLY: [&str; 3] = [
    "registry/advisory.rs",
    "registry/open_postgres.rs",
    "registry/db/postgres.rs",
];

/// The first words of a statement this test explains.
const STATEMENT_KEYWORDS: [&str; 5] = ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"];

/// One statement found in the source.
#[derive(Debug)]
struct Statement {
    /// `file.rs: NAME` or `file.rs:line`.
    origin: String,
    /// The literal as written, placeholders and all.
    template: String,
    sql: String,
}

/// A string literal in Rust source: where it starts, what precedes it, and
/// its value with escapes resolved.
struct Literal {
    line: usize,
    before: String,
    value: String,
}

/// The string literals of `src`, comments and char literals skipped.
/// Enough of Rust's lexical grammar for this crate's source; a literal it
/// misreads shows up as a statement that fails to prepare.
fn literals(src: &str) -> Vec<Literal> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut code_start = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                line += usize::from(chars[i] == '\n');
                i += 1;
            }
            i += 2;
        } else if c == '\'' {
            // A char literal ('x', '\n', '"'), or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c == '"' {
            let raw_hashes = raw_prefix(&chars[..i]);
            // What precedes the literal, without its `r#` prefix.
            let prefix = raw_hashes.map_or(0, |n| n + 1);
            let before: String = chars[code_start..i - prefix].iter().collect();
            let start_line = line;
            let mut value = String::new();
            i += 1;
            while let Some(&c) = chars.get(i) {
                match (c, raw_hashes) {
                    ('"', Some(n)) if chars[i + 1..].iter().take(n).all(|&h| h == '#') => {
                        i += 1 + n;
                        break;
                    }
                    ('"', None) => {
                        i += 1;
                        break;
                    }
                    ('\\', None) => {
                        let escaped = chars.get(i + 1).copied().unwrap_or('\\');
                        i += 2;
                        match escaped {
                            'n' => value.push('\n'),
                            't' => value.push('\t'),
                            '\n' => {
                                line += 1;
                                while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                                    line += usize::from(chars[i] == '\n');
                                    i += 1;
                                }
                            }
                            other => value.push(other),
                        }
                    }
                    (c, _) => {
                        line += usize::from(c == '\n');
                        value.push(c);
                        i += 1;
                    }
                }
            }
            out.push(Literal {
                line: start_line,
                before,
                value,
            });
            code_start = i;
        } else {
            i += 1;
        }
    }
    out
}

/// `Some(n)` when the quote at the end of `before` opens a raw string with
/// `n` hashes (`r"`, `r#"`, `br"`).
fn raw_prefix(before: &[char]) -> Option<usize> {
    let hashes = before.iter().rev().take_while(|&&c| c == '#').count();
    let at = before.len().checked_sub(hashes + 1)?;
    let starts_ident = at == 0 || !(before[at - 1].is_alphanumeric() || before[at - 1] == '_');
    let b_prefixed =
        at >= 1 && before[at - 1] == 'b' && (at == 1 || !before[at - 2].is_alphanumeric());
    (before[at] == 'r' && (starts_ident || b_prefixed)).then_some(hashes)
}

/// The name of the `const NAME: &str =` (or `const NAME: Sql<'static> =
/// Sql::dialects(`) that `before` ends with.
fn const_name(before: &str) -> Option<&str> {
    let before = before.trim_end();
    let (before, ty) = match before.strip_suffix(DIALECTS) {
        Some(before) => (before, "Sql<'static>"),
        None => (before, "&str"),
    };
    let decl = before.trim_end().strip_suffix('=')?.trim_end();
    let decl = decl.strip_suffix(ty)?.trim_end().strip_suffix(':')?;
    let name = decl.trim_end().rsplit(|c: char| c.is_whitespace()).next()?;
    decl.trim_end()
        .strip_suffix(name)?
        .trim_end()
        .ends_with("const")
        .then_some(name)
}

/// What opens a per-dialect statement: its SQLite text follows.
const DIALECTS: &str = "Sql::dialects(";

fn is_statement(sql: &str) -> bool {
    let first = sql.split_whitespace().next().unwrap_or("");
    STATEMENT_KEYWORDS.contains(&first)
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Every statement in the crate's source (see the module comment).
fn statements() -> Vec<Statement> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut consts: BTreeMap<String, String> = BTreeMap::new();
    let mut found: Vec<(String, String)> = Vec::new();
    for file in rust_files(&src) {
        let text = std::fs::read_to_string(&file).unwrap();
        // Test code builds its own fixtures; only what ships is checked.
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        let name = file.strip_prefix(&src).unwrap().display().to_string();
        if POSTGRES_ONLY.contains(&name.as_str()) {
            continue;
        }
        let mut postgres_text_next = false;
        for lit in literals(text) {
            // The second argument of `Sql::dialects`.
            if std::mem::take(&mut postgres_text_next) && lit.before.trim() == "," {
                continue;
            }
            postgres_text_next = lit.before.trim_end().ends_with(DIALECTS);
            let konst = const_name(&lit.before).map(str::to_string);
            // PostgreSQL's text of a statement (a `…_POSTGRES` constant, or
            // a template built from one) is not SQLite's to plan.
            if konst.as_deref().is_some_and(|k| k.ends_with("_POSTGRES"))
                || lit.value.contains("_POSTGRES}")
            {
                continue;
            }
            if let Some(k) = &konst {
                consts.insert(k.clone(), lit.value.clone());
            }
            let origin = match &konst {
                Some(k) => format!("{name}: {k}"),
                None => format!("{name}:{}", lit.line),
            };
            found.push((origin, lit.value));
        }
    }
    // A fragment (a const that is not a statement by itself) is checked
    // inside the statements that use it.
    found
        .into_iter()
        .map(|(origin, template)| Statement {
            origin,
            sql: expand(&template, &consts),
            template,
        })
        .filter(|s| is_statement(&s.sql))
        .collect()
}

/// `template` with each `{NAME}` replaced by that constant's text.
fn expand(template: &str, consts: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').unwrap_or(after.len());
        let name = &after[..close];
        match consts.get(name) {
            Some(text) => out.push_str(&expand(text, consts)),
            None => {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
        }
        rest = after.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Names a growing table goes by in `sql`: its own, and every alias given
/// to it there or in a view `sql` reads.
fn growing_names(sql: &str, views: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = GROWING.iter().map(|t| t.to_string()).collect();
    let mut texts = vec![sql.to_string()];
    let in_sql: Vec<String> = words(sql);
    texts.extend(
        views
            .iter()
            .filter(|(v, _)| in_sql.contains(v))
            .map(|(_, text)| text.clone()),
    );
    for text in texts {
        let w = words(&text);
        for i in 0..w.len() {
            let introduces = matches!(w[i].as_str(), "from" | "join");
            if !introduces || !GROWING.contains(&w.get(i + 1).map_or("", String::as_str)) {
                continue;
            }
            let alias = match w.get(i + 2).map(String::as_str) {
                Some("as") => w.get(i + 3),
                _ => w.get(i + 2),
            };
            let not_alias = [
                "where", "join", "on", "left", "inner", "cross", "group", "order", "limit",
                "using", "set", "values", "union", "select", "natural",
            ];
            if let Some(a) = alias.filter(|a| !not_alias.contains(&a.as_str())) {
                names.insert(a.clone());
            }
        }
    }
    names
}

/// The identifiers and keywords of `sql`, lowercased.
fn words(sql: &str) -> Vec<String> {
    sql.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The plan of `sql` as `EXPLAIN QUERY PLAN` prints it, one detail per line.
fn plan(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let compact: String = words_and_marks(sql);
    for i in 1..=stmt.parameter_count() {
        let name = stmt.parameter_name(i).unwrap_or("").to_string();
        if compact.contains(&format!("GLOB {name} ")) || compact.ends_with(&format!("GLOB {name}"))
        {
            stmt.raw_bind_parameter(i, "ab*")?;
        } else {
            stmt.raw_bind_parameter(i, 1)?;
        }
    }
    let mut rows = stmt.raw_query();
    let mut details = Vec::new();
    while let Some(row) = rows.next()? {
        details.push(row.get::<_, String>(3)?);
    }
    Ok(details)
}

/// `sql` with runs of whitespace made one space.
fn words_and_marks(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ") + " "
}

/// The plan lines that read a growing table (`names`) from end to end.
fn full_scans(plan: &[String], names: &BTreeSet<String>) -> Vec<String> {
    plan.iter()
        .filter(|line| {
            let mut w = line.split_whitespace();
            w.next() == Some("SCAN") && w.next().is_some_and(|t| names.contains(t))
        })
        .cloned()
        .collect()
}

fn migrated() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&dir.path().join("registry.db")).unwrap();
    (dir, registry)
}

fn views(conn: &Connection) -> BTreeMap<String, String> {
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'view'")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Every statement in `src/` prepares against the migrated schema (a typo
/// or a column a migration dropped fails here, not in a user's hands).
/// `cargo test --lib every_statement_prepares -- --nocapture` prints each
/// with its plan (how BENCHMARKS.md's plans were taken; a plain INSERT has
/// none).
#[test]
fn every_statement_prepares() {
    let (_dir, registry) = migrated();
    for s in statements() {
        println!("{}\n  {}", s.origin, words_and_marks(&s.sql));
        let lines = plan(registry.db().sqlite().unwrap(), &s.sql)
            .unwrap_or_else(|e| panic!("{}: cannot explain: {e}", s.origin));
        for line in lines {
            println!("    {line}");
        }
    }
}

#[test]
fn no_query_reads_a_growing_table_from_end_to_end() {
    let (_dir, registry) = migrated();
    let conn = registry.db().sqlite().unwrap();
    let views = views(conn);
    let statements = statements();
    let mut failures = Vec::new();
    for s in statements
        .iter()
        .filter(|s| !WHOLE_COUNTS.contains(&s.origin.as_str()))
    {
        match plan(conn, &s.sql) {
            Ok(plan) => {
                let scans: Vec<String> = full_scans(&plan, &growing_names(&s.sql, &views))
                    .into_iter()
                    .filter(|line| !is_ordered_walk(s, line))
                    .collect();
                if !scans.is_empty() {
                    failures.push(format!(
                        "{} reads a whole table: {}\n  plan: {}\n  sql: {}",
                        s.origin,
                        scans.join("; "),
                        plan.join(" | "),
                        words_and_marks(&s.sql)
                    ));
                }
            }
            Err(e) => failures.push(format!(
                "{} does not prepare: {e}\n  sql: {}",
                s.origin,
                words_and_marks(&s.sql)
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Whether `line` is the ordered walk [`ORDERED_WALKS`] allows `s`, which
/// must end it with a LIMIT.
fn is_ordered_walk(s: &Statement, line: &str) -> bool {
    ORDERED_WALKS.iter().any(|(template, walk)| {
        s.template.contains(template) && line == *walk && s.sql.contains("LIMIT ?")
    })
}

/// A page of `runs list` comes straight out of an index, in order, so the
/// LIMIT ends the walk; a sort of every matching run would not.
#[test]
fn run_listings_are_read_in_index_order() {
    let (_dir, registry) = migrated();
    let listings: Vec<Statement> = statements()
        .into_iter()
        .filter(|s| s.template.contains("{LIST_RUNS"))
        .collect();
    assert!(listings.len() >= 3, "{listings:#?}");
    for s in &listings {
        let plan = plan(registry.db().sqlite().unwrap(), &s.sql).unwrap();
        assert!(
            !plan.iter().any(|l| l == "USE TEMP B-TREE FOR ORDER BY"),
            "{} sorts every matching run: {plan:?}",
            s.origin
        );
    }
}

/// The collection itself: the known statements of every module are found,
/// with their fragments filled in, so the test above cannot pass by
/// finding nothing.
#[test]
fn the_statements_of_every_module_are_found() {
    let all = statements();
    let origins: Vec<&str> = all.iter().map(|s| s.origin.as_str()).collect();
    for known in [
        "registry/executions.rs: LAST_COMPLETED",
        "registry/executions.rs: INSERT_EXECUTION",
        "registry/verification.rs: STALE_EDGES",
        "registry/reindex.rs: INSERT_EDGE",
        "registry/runs.rs: UPSERT_RUN",
        "registry/runs.rs: COUNT_RUNS",
        "registry/lineage.rs: ANCESTORS",
        "registry/lineage.rs: DESCENDANTS",
        "registry/lineage.rs: SHAS_WITH_PREFIX",
    ] {
        assert!(
            origins.contains(&known),
            "{known} not found in {origins:#?}"
        );
    }
    for s in &all {
        assert!(
            !s.sql.contains("{RUN_COLUMNS}") && !s.sql.contains("{ARTIFACT_COLUMNS}"),
            "{}: a placeholder was left in: {}",
            s.origin,
            s.sql
        );
    }
    // Composed statements (format! templates) are found under their line.
    assert!(
        all.iter()
            .any(|s| s.origin.starts_with("registry/runs.rs:") && s.sql.contains("LIMIT ?2")),
        "{origins:#?}"
    );
}

#[test]
fn the_lexer_reads_consts_raw_strings_continuations_and_skips_comments() {
    let src = r####"
        // "not a literal"
        const A: &str = "SELECT 1 \
                         FROM t";
        pub(crate) const B: &str = r#"SELECT "x""#;
        let c = '"'; let d = '\''; fn f<'a>(x: &'a str) {}
        /* "neither" */ let e = format!("SELECT {A} WHERE x = \"y\"");
    "####;
    let lits = literals(src);
    let values: Vec<&str> = lits.iter().map(|l| l.value.as_str()).collect();
    assert_eq!(
        values,
        [
            "SELECT 1 FROM t",
            "SELECT \"x\"",
            "SELECT {A} WHERE x = \"y\""
        ]
    );
    let names: Vec<Option<&str>> = lits.iter().map(|l| const_name(&l.before)).collect();
    assert_eq!(names, [Some("A"), Some("B"), None]);
    let consts = BTreeMap::from([("A".to_string(), "a".to_string())]);
    assert_eq!(expand(values[2], &consts), "SELECT a WHERE x = \"y\"");
}

#[test]
fn a_full_scan_is_caught_under_any_alias() {
    let (_dir, registry) = migrated();
    let conn = registry.db().sqlite().unwrap();
    let views = views(conn);
    for sql in [
        "SELECT count(*) FROM runs",
        "SELECT * FROM artifacts a WHERE a.size_bytes > 1",
        "SELECT * FROM stage_executions AS se WHERE se.reason = 'x'",
        "SELECT * FROM artifact_edges e JOIN artifacts c ON c.artifact_id = e.child_id",
        "SELECT * FROM latest_stage_executions WHERE reason = 'x'",
    ] {
        let plan = plan(conn, sql).unwrap();
        assert!(
            !full_scans(&plan, &growing_names(sql, &views)).is_empty(),
            "{sql}: {plan:?}"
        );
    }
    let sql = "SELECT * FROM artifacts WHERE sha256 GLOB ?1";
    let plan = plan(conn, sql).unwrap();
    assert!(
        full_scans(&plan, &growing_names(sql, &views)).is_empty(),
        "{plan:?}"
    );
}
