//! The query plan of every SQL statement the crate issues, on each engine
//! that issues it: none may read all of `runs`, `artifacts`,
//! `artifact_edges` or `stage_executions` — the tables that grow with every
//! run — whether the table itself or one of its indexes from end to end. A
//! lookup or a range of an index passes; how much of the table a range
//! covers is up to the value bound (`runs list --since` asks for a range of
//! start times), which a plan cannot show. Allowed by name, each with why:
//! the ordered walks from an index's end that a LIMIT stops
//! ([`ORDERED_WALKS`], [`POSTGRES_ORDERED_WALKS`]), `registry info`'s whole
//! counts ([`WHOLE_COUNTS`]) and the emptying of a shared registry for a
//! rebuild ([`POSTGRES_WHOLE_READS`]).
//!
//! The statements are not listed by hand, so a new one cannot be forgotten:
//! they are read from the source of every module under `src/`. Every string
//! literal that begins with `SELECT`, `INSERT`, `UPDATE`, `DELETE` or `WITH`
//! is a statement (a `format!` template has its `{CONST}` placeholders
//! replaced by those constants' text), and so is every `const X: &str` whose
//! text does. Code in `#[cfg(test)]` sections is left out.
//!
//! Each engine is given the text it runs. A plain `&str` is portable: both
//! run it (PostgreSQL with `?N` made `$N`, [`postgres_placeholders`]).
//! Where the engines differ there are two texts: the two literals of a
//! `Sql::dialects(sqlite, postgres)` (a `const X: Sql`, or two `format!`
//! templates), or a `const X` beside a `const X_POSTGRES` (passed as
//! `Sql::dialects(X, X_POSTGRES)`, or filled into the two templates as `{X}`
//! and `{X_POSTGRES}`). A template is filled with the constants of the
//! engine it is for. The files of one engine's own code ([`SQLITE_ONLY`],
//! [`POSTGRES_ONLY`]) and the statements reading SQLite's catalog are that
//! engine's alone; a batch of statements is split for PostgreSQL, which
//! prepares one at a time. No statement is lost between the two lists:
//! each text of a pair has the other engine's beside it, or the guard
//! fails.
//!
//! SQLite: `EXPLAIN QUERY PLAN` on a freshly migrated, empty registry. The
//! plan a registry gets is the one an empty registry gets: the tool never
//! runs `ANALYZE`, so SQLite plans from the schema alone, whatever the
//! tables hold. Parameters are bound before explaining, since a GLOB
//! against a bound pattern is planned as an index range only once the
//! pattern is known: `GLOB ?n` gets `ab*`, every other parameter the
//! integer 1. A whole read is `SCAN runs` or `SCAN runs USING [COVERING]
//! INDEX …`; `SEARCH … USING INDEX` passes.
//!
//! PostgreSQL plans from statistics, so an empty database would say
//! nothing: its statements are explained on a registry of 100,000 runs
//! shaped like real ones ([`populate`]), analyzed, on the server
//! `ORCHESTRATOR_TEST_PG` names (`make test` starts one; without it the
//! test says it is skipped, or fails where `ORCHESTRATOR_REQUIRE_PG` is
//! set). Each statement is `PREPARE`d, its parameter types read from
//! `pg_prepared_statements`, and `EXPLAIN EXECUTE`d with the values the
//! tool would bind, chosen by type and by what the parameter is compared
//! with ([`Sample::values`]), in every combination of an optional parameter
//! bound and left out, a hash one run has and one a thousand share, a
//! status most runs have and one a few have. The plan is the one made for
//! those values (`plan_cache_mode = force_custom_plan`): what a statement
//! gets the first five times a connection runs it, and after that unless a
//! plan for any value is estimated to cost no more. A whole read is a `Seq
//! Scan` of a growing table, or an index scan without an index condition,
//! unless the index is partial (it holds only the rows its predicate
//! selects) or a LIMIT ends the walk ([`pg_full_reads`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::Connection;

use super::Registry;
use super::db::{Backend, DbError, PgTarget, postgres_placeholders};

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
    // One walk per table (SQLite counts a covering index, PostgreSQL reads
    // the table, in parallel), run once per `registry info`; never on a
    // path a run or a listing takes.
    "registry/info.rs: COUNTS",
];

/// Files whose statements only ever run on PostgreSQL (its catalogs, its
/// advisory locks, emptying a shared registry for a rebuild).
const POSTGRES_ONLY: [&str; 3] = [
    "registry/advisory.rs",
    "registry/open_postgres.rs",
    "registry/db/postgres.rs",
];

/// Files whose statements only ever run on SQLite: opening a registry
/// file, which reads SQLite's catalog and its own migration history.
const SQLITE_ONLY: [&str; 1] = ["registry/open.rs"];

/// This file: its SQL is test fixtures.
const THIS_FILE: &str = "registry/query_plans.rs";

/// The first words of a statement this test explains.
const STATEMENT_KEYWORDS: [&str; 5] = ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"];

/// Which engines run a text found in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runs {
    /// A plain `&str`: both engines run it as written (PostgreSQL with its
    /// `?N` made `$N`).
    Both,
    /// One engine's text of a statement the other has its own text of, or
    /// a text in a file only that engine's code reads.
    Only(Backend),
}

impl Runs {
    fn on(self, backend: Backend) -> bool {
        self == Runs::Both || self == Runs::Only(backend)
    }
}

/// A text found in the source, its `{CONST}`s not yet filled in.
#[derive(Debug)]
struct Found {
    /// `registry/runs.rs`: relative to `src/`.
    file: String,
    /// `file.rs: NAME` or `file.rs:line`.
    origin: String,
    /// The constant it is the text of, if any.
    konst: Option<String>,
    /// The literal as written, placeholders and all.
    template: String,
    runs: Runs,
    /// The other engine's text of the same statement (an index into the
    /// list), for one half of a pair.
    pair: Option<usize>,
}

/// One statement found in the source, as one engine runs it.
#[derive(Debug)]
struct Statement {
    /// `registry/runs.rs`: relative to `src/`.
    file: String,
    /// `file.rs: NAME` or `file.rs:line`.
    origin: String,
    /// The literal as written, placeholders and all.
    template: String,
    sql: String,
    runs: Runs,
    /// The origin of the other engine's text of it, where it has one.
    counterpart: Option<String>,
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

/// What precedes the SQLite text of a `Sql::dialects` (whitespace
/// removed): the literal itself, or a `format!` template.
const FIRST_ARGUMENT: [&str; 2] = ["Sql::dialects(", "Sql::dialects(&format!("];

/// What lies between the two texts of a `Sql::dialects` (whitespace
/// removed): its PostgreSQL text is the next literal.
const SECOND_ARGUMENT: [&str; 2] = [",", "),&format!("];

/// The suffix of a constant holding the PostgreSQL text of the constant
/// named without it (`Sql::dialects(X, X_POSTGRES)`).
const POSTGRES_SUFFIX: &str = "_POSTGRES";

/// The crate's source files as (path under `src/`, text), test code left
/// out: it builds its own fixtures; only what ships is checked. This file
/// is all test code.
fn source_files() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    rust_files(&src)
        .into_iter()
        .map(|file| {
            let name = file.strip_prefix(&src).unwrap().display().to_string();
            let text = std::fs::read_to_string(&file).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            (name, text)
        })
        .filter(|(name, _)| name != THIS_FILE)
        .collect()
}

/// Every text in `files` (see the module comment), each with the engines
/// that run it.
fn found_in(files: &[(String, String)]) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    for (name, text) in files {
        let text = text.as_str();
        check_named_pairs(name, text);
        let own = if POSTGRES_ONLY.contains(&name.as_str()) {
            Runs::Only(Backend::Postgres)
        } else if SQLITE_ONLY.contains(&name.as_str()) {
            Runs::Only(Backend::Sqlite)
        } else {
            Runs::Both
        };
        // The SQLite text of a `Sql::dialects`, until its PostgreSQL text.
        let mut open_pair: Option<usize> = None;
        for lit in literals(text) {
            let code: String = lit.before.split_whitespace().collect();
            if let Some(first) = open_pair.take() {
                assert!(
                    SECOND_ARGUMENT.contains(&code.as_str()),
                    "{}: the PostgreSQL text of its `Sql::dialects` is not the next literal \
                     (`{}` comes between); read it here",
                    found[first].origin,
                    lit.before.trim()
                );
                let konst = found[first].konst.clone();
                let origin = match &konst {
                    Some(k) => format!("{name}: {k}"),
                    None => format!("{name}:{}", lit.line),
                };
                found[first].pair = Some(found.len());
                found.push(Found {
                    file: name.clone(),
                    origin,
                    konst,
                    template: lit.value,
                    runs: Runs::Only(Backend::Postgres),
                    pair: Some(first),
                });
                continue;
            }
            let konst = const_name(&lit.before).map(str::to_string);
            let opens_pair = FIRST_ARGUMENT.iter().any(|o| code.ends_with(o));
            // PostgreSQL's text of a statement: a `…_POSTGRES` constant, or
            // a template built from one.
            let postgres_text = konst
                .as_deref()
                .is_some_and(|k| k.ends_with(POSTGRES_SUFFIX))
                || lit.value.contains(&format!("{POSTGRES_SUFFIX}}}"));
            let runs = if opens_pair {
                Runs::Only(Backend::Sqlite)
            } else if postgres_text {
                Runs::Only(Backend::Postgres)
            } else {
                own
            };
            if opens_pair {
                open_pair = Some(found.len());
            }
            let origin = match &konst {
                Some(k) => format!("{name}: {k}"),
                None => format!("{name}:{}", lit.line),
            };
            found.push(Found {
                file: name.clone(),
                origin,
                konst,
                template: lit.value,
                runs,
                pair: None,
            });
        }
        if let Some(first) = open_pair {
            panic!(
                "{}: its `Sql::dialects` has no PostgreSQL text after it",
                found[first].origin
            );
        }
    }
    // `X` beside `X_POSTGRES`: the SQLite and PostgreSQL texts of one
    // statement, as `Sql::dialects(X, X_POSTGRES)` passes them.
    for i in 0..found.len() {
        let Some(base) = found[i]
            .konst
            .as_deref()
            .and_then(|k| k.strip_suffix(POSTGRES_SUFFIX))
            .map(str::to_string)
        else {
            continue;
        };
        let sqlite = found
            .iter()
            .position(|f| f.file == found[i].file && f.konst.as_deref() == Some(base.as_str()))
            .unwrap_or_else(|| {
                panic!(
                    "{}: no `{base}` beside it to be the SQLite text",
                    found[i].origin
                )
            });
        found[sqlite].runs = Runs::Only(Backend::Sqlite);
        found[sqlite].pair = Some(i);
        found[i].pair = Some(sqlite);
    }
    found
}

/// `Sql::dialects(A, B)` of two constants in `text` must be `X` and
/// `X_POSTGRES`: the naming [`found`] pairs them by.
fn check_named_pairs(file: &str, text: &str) {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .collect();
    for call in code.split(DIALECTS).skip(1) {
        let is_const = |a: &str| {
            !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        };
        let args: Vec<&str> = (call.split(')').next().unwrap_or("").split(','))
            .filter(|a| !a.is_empty())
            .collect();
        if let [sqlite, postgres] = args[..]
            && (is_const(sqlite) || is_const(postgres))
        {
            assert_eq!(
                postgres,
                format!("{sqlite}{POSTGRES_SUFFIX}"),
                "{file}: `Sql::dialects({sqlite}, {postgres})`: name the PostgreSQL text \
                 `{sqlite}{POSTGRES_SUFFIX}`, so the query-plan guard pairs them"
            );
        }
    }
}

/// Every statement `backend` runs, in the text it runs (see the module
/// comment).
fn statements_on(backend: Backend) -> Vec<Statement> {
    statements_in(&found_in(&source_files()), backend)
}

/// The statements of `found` that `backend` runs, their `{CONST}`s filled
/// in with the text `backend` has of each.
fn statements_in(found: &[Found], backend: Backend) -> Vec<Statement> {
    let runs_here: Vec<&Found> = found.iter().filter(|f| f.runs.on(backend)).collect();
    let mut statements = Vec::new();
    for f in &runs_here {
        // A constant of the statement's own file first: two files may
        // each have one of the same name.
        let mut consts: BTreeMap<String, String> = BTreeMap::new();
        for g in runs_here.iter().filter(|g| g.file != f.file) {
            if let Some(k) = &g.konst {
                consts.insert(k.clone(), g.template.clone());
            }
        }
        for g in runs_here.iter().filter(|g| g.file == f.file) {
            if let Some(k) = &g.konst {
                consts.insert(k.clone(), g.template.clone());
            }
        }
        let sql = expand(&f.template, &consts);
        let pieces = match backend {
            Backend::Sqlite => vec![sql],
            // A batch (`Db::batch`) is its statements, each planned alone.
            Backend::Postgres => split_statements(&sql),
        };
        for sql in pieces {
            // A fragment (a const that is not a statement by itself) is
            // checked inside the statements that use it.
            if !is_statement(&sql) {
                continue;
            }
            // SQLite's catalog is SQLite's alone, whichever file reads it
            // (through a connection of its own, to a file).
            let runs = match f.runs {
                Runs::Both if reads_sqlite_catalog(&sql) => Runs::Only(Backend::Sqlite),
                runs => runs,
            };
            if !runs.on(backend) {
                continue;
            }
            statements.push(Statement {
                file: f.file.clone(),
                origin: f.origin.clone(),
                template: f.template.clone(),
                sql,
                runs,
                counterpart: f.pair.map(|p| found[p].origin.clone()),
            });
        }
    }
    statements
}

/// Every statement SQLite runs.
fn statements() -> Vec<Statement> {
    statements_on(Backend::Sqlite)
}

/// Whether `sql` reads SQLite's own catalog, which PostgreSQL has not.
fn reads_sqlite_catalog(sql: &str) -> bool {
    words(sql)
        .iter()
        .any(|w| w == "sqlite_schema" || w == "sqlite_master")
}

/// `sql` cut at each `;` outside quotes, blank pieces left out.
fn split_statements(sql: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let mut quote = None;
    for c in sql.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => {
                pieces.push(std::mem::take(&mut piece));
                continue;
            }
            _ => {}
        }
        piece.push(c);
    }
    pieces.push(piece);
    pieces
        .into_iter()
        .filter(|p| !p.trim().is_empty())
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

// PostgreSQL: the same statements, in the text PostgreSQL runs, explained
// on a database of 100,000 runs.

/// Runs in the PostgreSQL registry the plans are taken on.
const PG_RUNS: usize = 100_000;

/// Projects those runs are spread over.
const PG_PROJECTS: usize = 300;

/// The run whose ids, hashes and paths the parameters are bound to.
const PG_SAMPLE_RUN: usize = 42_424;

/// Statements allowed to read a growing table whole on PostgreSQL, each
/// with why (beside [`WHOLE_COUNTS`], which holds on both engines).
const POSTGRES_WHOLE_READS: [&str; 1] = [
    // `reindex` of a shared registry empties every table in the transaction
    // that fills them again (`Registry::clear_for_rebuild`): a DELETE of
    // every row reads every row, once per rebuild.
    "registry/open_postgres.rs: CLEAR",
];

/// The share of a growing table one run of a query may read, its rows
/// read by every scan of it counted (with those a filter dropped). At
/// 100,000 runs a page of a listing reads a few dozen rows, and the most any
/// query reads is 2% of a table (a `verify` chunk of 2,000 runs, the
/// descendants of a Script a thousand runs share); a walk over a range that
/// holds every row reads all of it.
const MOST_A_QUERY_READS: f64 = 0.1;

/// Statements allowed one walk of an index from its end on PostgreSQL,
/// where a LIMIT ends it: (a placeholder the statement is built with, the
/// index). The same two as [`ORDERED_WALKS`], for the same reasons.
const POSTGRES_ORDERED_WALKS: [(&str, &str); 2] = [
    ("{LIST_RUNS_POSTGRES}", "runs_by_created_at"),
    ("{NEWEST_WITH_TYPE_POSTGRES}", "runs_by_created_at"),
];

/// The PostgreSQL server to test against: `ORCHESTRATOR_TEST_PG`, a
/// superuser's URL (`make test` runs everything under tests/with-postgres,
/// which starts one and sets it). Without it: `None`, after one line saying
/// the test is skipped, or a panic where `ORCHESTRATOR_REQUIRE_PG` says
/// PostgreSQL must be tested (tests/common/pg.rs's convention).
fn postgres_server(test: &str) -> Option<String> {
    let url = std::env::var("ORCHESTRATOR_TEST_PG").unwrap_or_default();
    if !url.is_empty() {
        return Some(url);
    }
    let required =
        std::env::var("ORCHESTRATOR_REQUIRE_PG").is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{test}: ORCHESTRATOR_TEST_PG names no PostgreSQL server, and ORCHESTRATOR_REQUIRE_PG is set"
    );
    // Past the test harness's output capture: the one line a run without
    // PostgreSQL shows for it.
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipped, ORCHESTRATOR_TEST_PG names no PostgreSQL server (make test sets it)"
    );
    None
}

/// A database of its own on the test server, dropped when this is.
struct ScratchDatabase {
    admin: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    fn create(admin: &str, hint: &str) -> ScratchDatabase {
        let name = format!("ot_{}_{hint}", std::process::id());
        let mut client = ::postgres::Client::connect(admin, ::postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to ORCHESTRATOR_TEST_PG: {e}"));
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
        ScratchDatabase {
            url: with_database(admin, &name),
            admin: admin.to_string(),
            name,
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let dropped =
            ::postgres::Client::connect(&self.admin, ::postgres::NoTls).and_then(|mut c| {
                c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))
            });
        if let Err(e) = dropped {
            let _ = writeln!(std::io::stderr(), "cannot drop {}: {e}", self.name);
        }
    }
}

/// `url` with its database replaced by `database` (as tests/common/pg.rs).
fn with_database(url: &str, database: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let after = &rest[authority_end..];
    let query = after.find('?').map_or("", |i| &after[i..]);
    format!(
        "{}{}/{database}{query}",
        &url[..scheme_end],
        &rest[..authority_end]
    )
}

/// What each loading connection makes first: triggers and foreign-key
/// checks off (the rows are consistent by construction; the per-project
/// counts the triggers keep are made in one pass after), lz4 for the run
/// summaries where the server has it (quicker to compress; their storage is
/// not what is tested), the runs to make (`seed`), and what is the same in
/// every run of a stage (most of a meta record).
const POPULATE_SETUP: &str = r#"
SET session_replication_role = replica;

SELECT set_config('default_toast_compression', 'lz4', false)
FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals);

CREATE FUNCTION pg_temp.sha(g INTEGER, stage INTEGER) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN stage = 1 AND g <= 1000 THEN md5('shared script') || md5('shared')
                ELSE md5(CAST(g AS TEXT) || '/' || CAST(stage AS TEXT))
                     || md5(CAST(stage AS TEXT) || '/' || CAST(g AS TEXT)) END
$$;

CREATE TEMP TABLE seed AS
SELECT g,
       'proj-' || lpad(CAST(g % @PROJECTS@ AS TEXT), 3, '0') AS project_id,
       substr(md5('run ' || g), 1, 16) AS run_id,
       md5('config ' || g) || md5('config' || g) AS config_hash,
       to_char(TIMESTAMP '2026-01-01' + g * INTERVAL '5 minutes',
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created_at,
       CASE WHEN g > @RUNS@ - 5 THEN 'running'
            WHEN g % 97 = 0 THEN 'failed' ELSE 'complete' END AS status
FROM generate_series(1, @RUNS@) AS g;

CREATE TEMP TABLE stage AS
SELECT v.stage, v.type, v.name, v.parents,
       '{ "artifact_type": "' || v.type || '", "compute_origin": { "engine": "local-stub", '
           || '"host": "render-host-1", "orchestrator_version": "0.1.0" }, "created_at": "'
           AS meta_head,
       '", "creation_params": { "config_hash": "' AS meta_config,
       '", "stage": ' || v.stage || ', "stage_name": "' || v.name
           || '", "stage_version": "1.0.0" }, "parents": ['
           || coalesce((SELECT string_agg(' { "artifact_type": "' || p || '", "sha256": "'
                                          || repeat('0', 64) || '" }', ',')
                        FROM unnest(v.parents) AS p), '')
           || ' ], "path": "' || v.type || '.json", "project_id": "' AS meta_project,
       '", "schema_id": "https://orchestrator.local/schemas/' || v.type
           || '.v1.json", "schema_version": "1.0.0", "sha256": "' AS meta_sha,
       coalesce((SELECT string_agg(', "' || p || '": "' || repeat('0', 64) || '"', '')
                 FROM unnest(v.parents) AS p), '') || ' }' AS inputs_tail
FROM (VALUES (1, 'Script', 'stage1_generate_script', CAST(ARRAY[] AS TEXT[])),
             (2, 'ShotList', 'stage2_script_to_shotlist', ARRAY['Script']),
             (3, 'AssetManifest', 'stage3_shotlist_to_assetmanifest', ARRAY['Script', 'ShotList']),
             (4, 'RenderPlan', 'stage4_build_renderplan', ARRAY['ShotList', 'AssetManifest']),
             (5, 'RenderOutput', 'stage5_render_preview', ARRAY['ShotList', 'RenderPlan']))
    AS v (stage, type, name, parents);
"#;

/// The runs and their artifacts: half the rows, on one connection...
const POPULATE_RUNS: &str = r#"
INSERT INTO projects (project_id, title, first_run_at, last_run_at)
SELECT project_id, 'Project ' || project_id, min(created_at), max(created_at)
FROM seed GROUP BY project_id;

INSERT INTO runs (project_id, run_id, config_hash, config_json, run_dir, status, attempts,
    started_at, finished_at, duration_ms, stages_executed, stages_skipped, error,
    orchestrator_version, host, created_at, title, config_path)
SELECT project_id, run_id, config_hash,
    '{ "project_id": "' || project_id || '", "title": "Project ' || project_id
        || '", "scenes": [' || repeat(' { "id": "scene", "text": "The keeper climbs at dusk." },', 16)
        || ' {} ] }',
    project_id || '/' || run_id, status,
    CASE status WHEN 'failed' THEN 2 ELSE 1 END,
    created_at,
    CASE status WHEN 'running' THEN NULL ELSE created_at END,
    CASE status WHEN 'running' THEN NULL ELSE 30000 + g % 5000 END,
    CASE status WHEN 'complete' THEN 5 ELSE 3 END, 0,
    CASE status WHEN 'failed'
        THEN 'stage 4 (stage4_build_renderplan) failed: the shot list names no assets' END,
    '0.1.0', 'render-host-1', created_at, 'Project ' || project_id,
    '/home/film/' || project_id || '/project.json'
FROM seed;

INSERT INTO artifacts (artifact_id, project_id, run_id, artifact_type, sha256, schema_id,
    schema_version, path, size_bytes, stage, stage_name, stage_version, created_at, meta_json)
SELECT (g - 1) * 5 + s.stage, project_id, run_id, s.type, h.sha,
    'https://orchestrator.local/schemas/' || s.type || '.v1.json', '1.0.0',
    project_id || '/' || run_id || '/' || s.type || '.json', 7199, s.stage, s.name, '1.0.0',
    created_at,
    s.meta_head || created_at || s.meta_config || config_hash || s.meta_project || project_id
        || '", "run_id": "' || run_id || s.meta_sha || h.sha || '", "size_bytes": 7199 }'
FROM seed CROSS JOIN stage AS s CROSS JOIN LATERAL (SELECT pg_temp.sha(g, s.stage)) AS h (sha);
"#;

/// ...and the rest on another, at the same time: about as long.
const POPULATE_REST: &str = r#"
INSERT INTO artifact_edges (child_id, parent_id, parent_sha256)
SELECT (g - 1) * 5 + c.stage, (g - 1) * 5 + p.stage, pg_temp.sha(g, p.stage)
FROM seed CROSS JOIN stage AS c JOIN stage AS p ON p.type = ANY (c.parents);

INSERT INTO stage_executions (execution_id, project_id, run_id, attempt, stage, stage_name,
    stage_version, status, reason, started_at, finished_at, duration_ms, input_hashes,
    output_sha256, artifact_id, error)
SELECT (g - 1) * 5 + s.stage, project_id, run_id, 1, s.stage, s.name, '1.0.0',
    CASE WHEN in_flight THEN 'running' ELSE 'executed' END, 'not run before', created_at,
    CASE WHEN in_flight THEN NULL ELSE created_at END,
    CASE WHEN in_flight THEN NULL ELSE 6000 END,
    '{ "config": "' || config_hash || '"' || s.inputs_tail,
    CASE WHEN in_flight THEN NULL ELSE pg_temp.sha(g, s.stage) END,
    CASE WHEN in_flight THEN NULL ELSE (g - 1) * 5 + s.stage END,
    NULL
FROM seed CROSS JOIN stage AS s
CROSS JOIN LATERAL (SELECT status = 'running' AND s.stage = 5) AS f (in_flight);

INSERT INTO run_summaries (project_id, run_id, sha256, path, summary_json, written_at)
SELECT project_id, run_id, md5('summary ' || g) || md5('summary' || g),
    project_id || '/' || run_id || '/run_summary.json',
    '{ "run_id": "' || run_id || '", "stages": ['
        || repeat(' { "stage": 1, "status": "executed", "reason": "not run before", "sha256": "'
                  || config_hash || '" },', 40)
        || ' {} ] }',
    created_at
FROM seed;

INSERT INTO artifact_verifications (artifact_id, verified_at, result, problems)
SELECT (g - 1) * 5 + s.stage, created_at, 'ok', '[]'
FROM seed CROSS JOIN stage AS s WHERE g % 10 = 0;
"#;

/// What the triggers would have kept, and the statistics.
const POPULATE_FINISH: &str = r#"
INSERT INTO run_counts (project_id, status, runs)
SELECT project_id, status, count(*) FROM runs GROUP BY project_id, status;

SELECT setval(pg_get_serial_sequence('artifacts', 'artifact_id'), 5 * @RUNS@);
SELECT setval(pg_get_serial_sequence('stage_executions', 'execution_id'), 5 * @RUNS@);
ANALYZE;
"#;

/// The indexes of the growing tables that no constraint owns: (name,
/// definition).
const SECONDARY_INDEXES: &str = "
    SELECT CAST(CAST(i.indexrelid AS regclass) AS TEXT), pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
    WHERE t.relname = ANY ($1) AND t.relnamespace = CAST(current_schema() AS regnamespace)
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
    ORDER BY 1";

/// Fill the migrated PostgreSQL registry at `url` with [`PG_RUNS`] runs
/// shaped like real ones (see `benches/suite/registry.rs` and a run of the
/// example): each with five artifacts (meta records of 700–1,000 bytes, as
/// `run` writes them), seven parent edges, five stage executions and a run
/// summary (about 5 KiB); a run every five minutes over a year, spread over
/// [`PG_PROJECTS`] projects; 1% failed, the newest five still `running`;
/// the Script of the first 1,000 runs is one and the same (one config run
/// under many `--run-id`s); every tenth run verified. Then ANALYZE, as
/// autovacuum would on a live server.
///
/// The server makes the rows (`generate_series`), on two connections at
/// once, with the indexes no constraint owns dropped meanwhile and made
/// again from their own definitions after: sorting the rows once is
/// quicker than keeping each index up to date row by row, and the schema
/// the plans are taken on is the migrated one.
fn populate(url: &str) {
    let connect = || ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
    let fill = |client: &mut ::postgres::Client, script: &str| {
        let script = script
            .replace("@RUNS@", &PG_RUNS.to_string())
            .replace("@PROJECTS@", &PG_PROJECTS.to_string());
        client
            .batch_execute(&script)
            .unwrap_or_else(|e| panic!("populating: {}", DbError::from(e)));
    };
    let mut client = connect();
    let indexes: Vec<(String, String)> = client
        .query(SECONDARY_INDEXES, &[&GROWING.to_vec()])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (name, _) in &indexes {
        client.batch_execute(&format!("DROP INDEX {name}")).unwrap();
    }
    std::thread::scope(|s| {
        let runs = s.spawn(|| {
            fill(
                &mut connect(),
                &format!("{POPULATE_SETUP}\n\n{POPULATE_RUNS}"),
            )
        });
        fill(
            &mut connect(),
            &format!("{POPULATE_SETUP}\n\n{POPULATE_REST}"),
        );
        runs.join().unwrap();
    });
    client
        .batch_execute("SET maintenance_work_mem = '256MB'")
        .unwrap();
    for (_, definition) in &indexes {
        client.batch_execute(definition).unwrap();
    }
    fill(&mut client, POPULATE_FINISH);
}

/// Values from the populated registry that parameters are bound to: the
/// ids, hashes and paths of one run in the middle, a recent time, and a
/// batch of runs as `verify` binds it.
struct Sample {
    project: String,
    run: String,
    /// Its RenderPlan: a hash that one run has.
    sha256: String,
    /// The Script 1,000 runs share.
    shared_sha256: String,
    artifact_id: String,
    path: String,
    config_hash: String,
    run_dir: String,
    /// The start of the newest 1% of runs (`runs list --since`).
    recent: String,
    /// 2,000 runs as `[[project, run], …]`: one `verify` chunk.
    runs_json: String,
}

impl Sample {
    fn read(client: &mut ::postgres::Client) -> Sample {
        let artifact_id = (PG_SAMPLE_RUN - 1) * 5 + 4;
        let row = client
            .query_one(
                "SELECT a.project_id, a.run_id, a.sha256, a.path, r.config_hash, r.run_dir
                 FROM artifacts a JOIN runs r USING (project_id, run_id)
                 WHERE a.artifact_id = $1",
                &[&i64::try_from(artifact_id).unwrap()],
            )
            .unwrap();
        let recent = client
            .query_one(
                "SELECT created_at FROM runs ORDER BY created_at DESC OFFSET $1 LIMIT 1",
                &[&i64::try_from(PG_RUNS / 100).unwrap()],
            )
            .unwrap();
        let shared = client
            .query_one("SELECT sha256 FROM artifacts WHERE artifact_id = 1", &[])
            .unwrap();
        let runs_json = client
            .query_one(
                "SELECT CAST(json_agg(json_build_array(project_id, run_id)) AS TEXT)
                 FROM (SELECT project_id, run_id FROM runs ORDER BY run_id LIMIT 2000) AS chunk",
                &[],
            )
            .unwrap();
        Sample {
            project: row.get(0),
            run: row.get(1),
            sha256: row.get(2),
            shared_sha256: shared.get(0),
            artifact_id: artifact_id.to_string(),
            path: row.get(3),
            config_hash: row.get(4),
            run_dir: row.get(5),
            recent: recent.get(0),
            runs_json: runs_json.get(0),
        }
    }

    /// The values the tool would bind for a parameter of type `ty` used as
    /// `usage` says (`None`: NULL). More than one where the plan may differ
    /// between them: a hash one run has or one a thousand share, the status
    /// most runs have or one a few have, and an optional parameter bound or
    /// left out (NULL for "any", `''` for a listing's lower time bound:
    /// `runs list` without `--since`).
    fn values(&self, usage: &Usage, ty: &str, listing: bool) -> Vec<Option<String>> {
        let integer = matches!(
            ty,
            "bigint" | "integer" | "smallint" | "oid" | "numeric" | "double precision" | "real"
        );
        let one = |v: &str| vec![v.to_string()];
        let bound: Vec<String> = if usage.limit {
            one("50")
        } else if usage.like {
            // `like_prefix` of a run id prefix, as `runs show <prefix>`.
            vec![format!("{}%", &self.run[..6])]
        } else if usage.glob_prefix {
            // `lineage <sha prefix>`: the GLOB pattern, which PostgreSQL's
            // text takes the prefix back off.
            vec![format!("{}*", &self.sha256[..8])]
        } else if ty == "json" || ty == "jsonb" {
            vec![self.runs_json.clone()]
        } else if ty == "boolean" {
            one("true")
        } else {
            match usage.column.as_deref().unwrap_or("") {
                "project_id" => vec![self.project.clone()],
                "run_id" => vec![self.run.clone()],
                "sha256" | "parent_sha256" | "child_sha256" | "output_sha256" => {
                    vec![self.sha256.clone(), self.shared_sha256.clone()]
                }
                "config_hash" => vec![self.config_hash.clone()],
                "path" => vec![self.path.clone()],
                "run_dir" => vec![self.run_dir.clone()],
                "status" => vec!["complete".into(), "failed".into()],
                "artifact_type" | "child_type" | "parent_type" => one("RenderOutput"),
                "artifact_id" | "child_id" | "parent_id" | "node_id" | "execution_id" => {
                    vec![self.artifact_id.clone()]
                }
                "stage" => one("4"),
                "attempt" | "attempts" => one("1"),
                "depth" => vec![crate::lineage::MAX_DEPTH.to_string()],
                c if c.ends_with("_at") => vec![self.recent.clone()],
                _ if integer => one("1"),
                _ => one("x"),
            }
        };
        let mut values: Vec<Option<String>> = bound
            .into_iter()
            .map(|v| {
                Some(if integer && v.parse::<f64>().is_err() {
                    "1".into()
                } else {
                    v
                })
            })
            .collect();
        if usage.nullable {
            values.push(None);
        } else if usage.lower_bound && listing {
            values.push(Some(String::new()));
        }
        values
    }
}

/// How a statement uses one of its parameters, as far as choosing a
/// plausible value goes.
#[derive(Debug, Default)]
struct Usage {
    /// The column it is compared with.
    column: Option<String>,
    limit: bool,
    like: bool,
    /// `rtrim($n, '*')`: a GLOB prefix pattern.
    glob_prefix: bool,
    /// `$n IS NULL` (or `CAST($n AS …) IS NULL`): NULL means "any".
    nullable: bool,
    /// `time >= $n`: a lower bound on a time, which a listing is given as
    /// `''` when there is none (every time is above it).
    lower_bound: bool,
}

/// The tokens of `sql`, lowercased: words (with `.` and `$`), runs of
/// comparison operators, quoted strings, and single other characters.
fn sql_tokens(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let word = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '$');
    let op = |c: char| matches!(c, '<' | '>' | '=' | '!');
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        } else if word(c) {
            while i < chars.len() && word(chars[i]) {
                i += 1;
            }
        } else if op(c) {
            while i < chars.len() && op(chars[i]) {
                i += 1;
            }
        } else if c == '\'' || c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += 1;
            }
            i += 1;
        } else {
            i += 1;
        }
        let end = i.min(chars.len());
        tokens.push(chars[start..end].iter().collect::<String>().to_lowercase());
    }
    tokens
}

/// How `$n` is used in `tokens` (see [`Usage`]).
fn usage(tokens: &[String], n: usize) -> Usage {
    let name = format!("${n}");
    let at = |i: usize, k: isize| -> &str {
        i.checked_add_signed(k)
            .and_then(|j| tokens.get(j))
            .map_or("", String::as_str)
    };
    let is_op = |t: &str| matches!(t, "=" | "<>" | "!=" | "<" | ">" | "<=" | ">=" | "like");
    let is_word = |t: &str| {
        t.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
    };
    let column = |t: &str| t.rsplit('.').next().unwrap_or(t).to_string();
    let mut u = Usage::default();
    for i in (0..tokens.len()).filter(|&i| tokens[i] == name) {
        if at(i, -1) == "limit"
            || (at(i, -1) == "(" && at(i, -2) == "cast" && at(i, -4) == "nullif")
                && at(i, -5) == "limit"
        {
            u.limit = true;
        }
        u.like |= at(i, -1) == "like";
        u.glob_prefix |= at(i, -1) == "(" && at(i, -2) == "rtrim";
        // The parameter as an operand: `$n` or `CAST($n AS type)`.
        let (before, after) =
            if at(i, -1) == "(" && at(i, -2) == "cast" && at(i, 1) == "as" && at(i, 3) == ")" {
                (-3, 4)
            } else {
                (-1, 1)
            };
        u.nullable |= at(i, after) == "is" && at(i, after + 1) == "null";
        let compared = if is_op(at(i, before)) && is_word(at(i, before - 1)) {
            Some((column(at(i, before - 1)), at(i, before) == ">="))
        } else if is_op(at(i, before)) && at(i, before - 1) == ")" && is_word(at(i, before - 2)) {
            // A function of the column: `lower(r.project_id) = $3`.
            Some((column(at(i, before - 2)), at(i, before) == ">="))
        } else if is_op(at(i, after)) && is_word(at(i, after + 1)) {
            Some((column(at(i, after + 1)), at(i, after) == "<="))
        } else {
            None
        };
        if let Some((column, at_least)) = compared {
            u.lower_bound |= at_least && column.ends_with("_at");
            u.column.get_or_insert(column);
        }
    }
    u
}

/// The argument lists to `EXECUTE` a statement with: every combination of
/// the values [`Sample::values`] gives its parameters.
fn argument_lists(sql: &str, types: &[String], sample: &Sample) -> Vec<String> {
    let tokens = sql_tokens(sql);
    let usages: Vec<Usage> = (1..=types.len()).map(|n| usage(&tokens, n)).collect();
    let listing = usages.iter().any(|u| u.limit);
    let choices: Vec<Vec<String>> = usages
        .iter()
        .zip(types)
        .map(|(u, ty)| {
            sample
                .values(u, ty, listing)
                .into_iter()
                .map(|v| v.map_or("NULL".into(), |v| format!("'{}'", v.replace('\'', "''"))))
                .collect()
        })
        .collect();
    let mut lists = vec![Vec::<String>::new()];
    for choice in &choices {
        lists = lists
            .into_iter()
            .flat_map(|list| {
                choice.iter().map(move |value| {
                    let mut list = list.clone();
                    list.push(value.clone());
                    list
                })
            })
            .collect();
    }
    lists
        .into_iter()
        .map(|args| {
            if args.is_empty() {
                String::new()
            } else {
                format!("({})", args.join(", "))
            }
        })
        .collect()
}

/// The text of the one row `sql` returns (simple query protocol: EXPLAIN
/// and the catalogs as text).
fn pg_text(client: &mut ::postgres::Client, sql: &str) -> Result<Vec<String>, ::postgres::Error> {
    Ok(client
        .simple_query(sql)?
        .into_iter()
        .filter_map(|m| match m {
            ::postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("").to_string()),
            _ => None,
        })
        .collect())
}

/// The plan nodes of `node` (EXPLAIN's JSON) that read a growing table
/// from end to end, each with whether a LIMIT can end the read: a
/// sequential scan, or an index scan with no index condition, unless the
/// index is one of the `partial` ones (it holds only the rows its predicate
/// selects: `stage_executions_running`, the executions in flight). A LIMIT
/// ends the walk of an index when nothing between them reads all its input
/// first (a sort, a hash, an aggregate) and the scan is not the inner side
/// of a nested loop (run again for every outer row).
fn pg_full_reads(
    node: &serde_json::Value,
    partial: &BTreeSet<String>,
    bounded: bool,
    out: &mut Vec<(String, bool)>,
) {
    let kind = node["Node Type"].as_str().unwrap_or("");
    let relation = node["Relation Name"].as_str().unwrap_or("");
    if GROWING.contains(&relation) {
        let alias = node["Alias"].as_str().unwrap_or(relation);
        let index = node["Index Name"].as_str().unwrap_or("");
        match kind {
            "Seq Scan" => out.push((format!("Seq Scan on {relation} {alias}"), bounded)),
            "Index Scan" | "Index Only Scan"
                if node.get("Index Cond").is_none() && !partial.contains(index) =>
            {
                out.push((
                    format!("{kind} using {index} on {relation} {alias}"),
                    bounded,
                ))
            }
            _ => {}
        }
    }
    let reads_all_first = matches!(
        kind,
        "Sort" | "Hash" | "SetOp" | "Recursive Union" | "WindowAgg"
    ) || (kind == "Aggregate" && node["Strategy"].as_str() != Some("Sorted"));
    let bounded = (bounded || kind == "Limit") && !reads_all_first;
    let children = node["Plans"].as_array().map_or(&[][..], Vec::as_slice);
    for (i, child) in children.iter().enumerate() {
        let inner = kind == "Nested Loop" && i == 1;
        pg_full_reads(child, partial, bounded && !inner, out);
    }
}

/// The rows of each growing table a plan run by `EXPLAIN ANALYZE` read:
/// those each scan returned and those its filter dropped, in every loop.
fn pg_rows_read(node: &serde_json::Value, out: &mut BTreeMap<String, f64>) {
    let relation = node["Relation Name"].as_str().unwrap_or("");
    if GROWING.contains(&relation) && node["Node Type"].as_str() != Some("ModifyTable") {
        let n = |key: &str| node[key].as_f64().unwrap_or(0.0);
        let rows =
            n("Actual Rows") + n("Rows Removed by Filter") + n("Rows Removed by Index Recheck");
        *out.entry(relation.to_string()).or_default() += rows * n("Actual Loops");
    }
    for child in node["Plans"].as_array().map_or(&[][..], Vec::as_slice) {
        pg_rows_read(child, out);
    }
}

/// Whether `s` only reads, so it may be run to count what it reads (in a
/// read-only transaction, rolled back): a query of the registry's tables,
/// not a function of PostgreSQL's own (an advisory lock is taken by a
/// `SELECT`).
fn is_read_only(s: &Statement) -> bool {
    let words = words(&s.sql);
    matches!(words.first().map(String::as_str), Some("select" | "with"))
        && !words
            .iter()
            .any(|w| matches!(w.as_str(), "insert" | "update" | "delete"))
        && !POSTGRES_ONLY.contains(&s.file.as_str())
}

/// Whether the whole read `line` (bounded by a LIMIT or not) is one `s`
/// is allowed.
fn pg_allowed(s: &Statement, line: &str, bounded: bool) -> bool {
    let origin = s.origin.as_str();
    if WHOLE_COUNTS.contains(&origin) || POSTGRES_WHOLE_READS.contains(&origin) {
        return true;
    }
    bounded
        && POSTGRES_ORDERED_WALKS.iter().any(|(template, index)| {
            s.template.contains(template)
                && line.starts_with("Index")
                && line.contains(&format!(" using {index} on "))
        })
}

/// Every statement PostgreSQL runs, explained as the server plans it for
/// the values the tool binds, on a registry of 100,000 runs: none may read
/// a growing table from end to end (see [`pg_full_reads`]), but for the
/// allowances named above.
#[test]
fn no_postgres_query_reads_a_growing_table_at_100k_runs() {
    let Some(admin) = postgres_server("no_postgres_query_reads_a_growing_table_at_100k_runs")
    else {
        return;
    };
    let db = ScratchDatabase::create(&admin, "query_plans");
    Registry::migrate_postgres(&PgTarget::parse(&db.url).unwrap()).unwrap();
    let started = Instant::now();
    populate(&db.url);
    let populated = started.elapsed();
    let mut client = ::postgres::Client::connect(&db.url, ::postgres::NoTls).unwrap();
    let sample = Sample::read(&mut client);
    // The plan made for the values bound: what a statement gets the first
    // five times a connection runs it, and after that unless a plan for any
    // value is estimated as cheap (so a generic plan reading a whole table
    // is not chosen where one that does not exists).
    client
        .batch_execute("SET plan_cache_mode = force_custom_plan")
        .unwrap();
    let partial: BTreeSet<String> = pg_text(
        &mut client,
        "SELECT CAST(CAST(indexrelid AS regclass) AS TEXT) FROM pg_index WHERE indpred IS NOT NULL",
    )
    .unwrap()
    .into_iter()
    .collect();
    let table_rows: BTreeMap<String, f64> = GROWING
        .iter()
        .map(|table| {
            let rows = pg_text(
                &mut client,
                &format!("SELECT reltuples FROM pg_class WHERE oid = CAST('{table}' AS regclass)"),
            )
            .unwrap();
            (table.to_string(), rows[0].parse().unwrap())
        })
        .collect();
    let statements = statements_on(Backend::Postgres);
    let mut failures = Vec::new();
    let mut plans = 0;
    for s in &statements {
        let sql = postgres_placeholders(&s.sql);
        if let Err(e) = client.batch_execute(&format!("PREPARE plan_check AS {sql}")) {
            failures.push(format!(
                "{} does not prepare: {}\n  sql: {}",
                s.origin,
                DbError::from(e),
                words_and_marks(&sql)
            ));
            continue;
        }
        let types = pg_text(
            &mut client,
            "SELECT array_to_string(CAST(parameter_types AS TEXT[]), '|')
             FROM pg_prepared_statements WHERE name = 'plan_check'",
        )
        .unwrap();
        let types: Vec<String> = types[0]
            .split('|')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        println!("{}\n  {}", s.origin, words_and_marks(&sql));
        for args in argument_lists(&sql, &types, &sample) {
            plans += 1;
            let explain = |client: &mut ::postgres::Client, options: &str| {
                pg_text(
                    client,
                    &format!("EXPLAIN {options}EXECUTE plan_check{args}"),
                )
            };
            let json = match explain(&mut client, "(FORMAT JSON) ") {
                Ok(json) => json,
                Err(e) => {
                    failures.push(format!(
                        "{} cannot be explained with {args}: {}\n  sql: {}",
                        s.origin,
                        DbError::from(e),
                        words_and_marks(&sql)
                    ));
                    continue;
                }
            };
            let plan: serde_json::Value = serde_json::from_str(&json.concat()).unwrap();
            let mut reads = Vec::new();
            pg_full_reads(&plan[0]["Plan"], &partial, false, &mut reads);
            let text = explain(&mut client, "").unwrap();
            println!("    with {args:.200}");
            for line in &text {
                println!("      {line}");
            }
            let reads: Vec<String> = reads
                .into_iter()
                .filter(|(line, bounded)| !pg_allowed(s, line, *bounded))
                .map(|(line, _)| line)
                .collect();
            if !reads.is_empty() {
                failures.push(format!(
                    "{} reads a whole table: {}\n  with: {args:.300}\n  plan:\n      {}\n  sql: {}",
                    s.origin,
                    reads.join("; "),
                    text.join("\n      "),
                    words_and_marks(&sql)
                ));
                continue;
            }
            // An index range can still cover the whole table (`created_at
            // >= ''`, a filter on what the index does not hold): what a
            // query only reading may be run, and its rows counted.
            let mut read = BTreeMap::new();
            pg_rows_read(&plan[0]["Plan"], &mut read);
            if read.is_empty() || !is_read_only(s) || pg_allowed(s, "", false) {
                continue;
            }
            client.batch_execute("BEGIN READ ONLY").unwrap();
            let analyzed = explain(&mut client, "(ANALYZE, FORMAT JSON) ");
            client.batch_execute("ROLLBACK").unwrap();
            let plan: serde_json::Value = match analyzed {
                Ok(json) => serde_json::from_str(&json.concat()).unwrap(),
                Err(e) => {
                    failures.push(format!(
                        "{} cannot be run with {args:.300}: {}",
                        s.origin,
                        DbError::from(e)
                    ));
                    continue;
                }
            };
            let mut read = BTreeMap::new();
            pg_rows_read(&plan[0]["Plan"], &mut read);
            println!("      rows read: {read:?}");
            let most: Vec<String> = read
                .iter()
                .filter(|(table, rows)| **rows > table_rows[*table] * MOST_A_QUERY_READS)
                .map(|(table, rows)| format!("{rows} of the {} rows of {table}", table_rows[table]))
                .collect();
            if !most.is_empty() {
                failures.push(format!(
                    "{} reads {}\n  with: {args:.300}\n  plan:\n      {}\n  sql: {}",
                    s.origin,
                    most.join(", "),
                    text.join("\n      "),
                    words_and_marks(&sql)
                ));
            }
        }
        client.batch_execute("DEALLOCATE plan_check").unwrap();
    }
    let _ = writeln!(
        std::io::stderr(),
        "PostgreSQL query plans: {}; {plans} plans, on {PG_RUNS} runs populated in {:.1} s",
        census(&statements, Backend::Postgres),
        populated.as_secs_f64()
    );
    drop(client);
    drop(db);
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// How many statements `backend` runs, and whose text they are.
fn census(statements: &[Statement], backend: Backend) -> String {
    let count = |f: &dyn Fn(&Statement) -> bool| statements.iter().filter(|s| f(s)).count();
    format!(
        "{} statements on {backend:?}: {} portable, {} its text of a pair, {} its alone",
        statements.len(),
        count(&|s| s.runs == Runs::Both),
        count(&|s| s.runs == Runs::Only(backend) && s.counterpart.is_some()),
        count(&|s| s.runs == Runs::Only(backend) && s.counterpart.is_none()),
    )
}

/// No statement is lost between the engines: each text one engine has of
/// its own (from a `Sql::dialects`, or `X` beside `X_POSTGRES`) has the
/// other engine's text beside it, a statement too; one without is in that
/// engine's own files (or reads SQLite's catalog). The portable ones are
/// the same on both, as written (a template may be filled with a constant
/// each engine has a text of).
#[test]
fn every_statement_has_a_text_for_each_engine_that_runs_it() {
    let sqlite = statements_on(Backend::Sqlite);
    let postgres = statements_on(Backend::Postgres);
    for (backend, own, other) in [
        (Backend::Sqlite, &sqlite, &postgres),
        (Backend::Postgres, &postgres, &sqlite),
    ] {
        let own_files: &[&str] = match backend {
            Backend::Sqlite => &SQLITE_ONLY,
            Backend::Postgres => &POSTGRES_ONLY,
        };
        for s in own.iter().filter(|s| s.runs == Runs::Only(backend)) {
            match &s.counterpart {
                Some(c) => assert!(
                    other.iter().any(|o| &o.origin == c),
                    "{} ({backend:?}): the other engine's text, {c}, is not a statement",
                    s.origin
                ),
                None => assert!(
                    own_files.contains(&s.file.as_str()) || reads_sqlite_catalog(&s.sql),
                    "{} is {backend:?}'s alone, but neither a text of a pair nor in its own files",
                    s.origin
                ),
            }
        }
    }
    let portable = |list: &[Statement]| -> Vec<String> {
        list.iter()
            .filter(|s| s.runs == Runs::Both)
            .map(|s| format!("{}\n{}", s.origin, s.template))
            .collect()
    };
    assert_eq!(portable(&sqlite), portable(&postgres));
    let pairs = |list: &[Statement], backend| {
        list.iter()
            .filter(|s| s.runs == Runs::Only(backend) && s.counterpart.is_some())
            .count()
    };
    assert_eq!(
        pairs(&sqlite, Backend::Sqlite),
        pairs(&postgres, Backend::Postgres)
    );
    println!("{}", census(&sqlite, Backend::Sqlite));
    println!("{}", census(&postgres, Backend::Postgres));
}

/// Each engine gets its own text of a statement that has two, however the
/// pair is written, and a template is filled with that engine's constants.
#[test]
fn dialect_pairs_give_each_engine_its_own_text() {
    let src = r##"
        const PORTABLE: &str = "SELECT 1 FROM runs WHERE run_id = ?1";
        const LITERALS: Sql<'static> = Sql::dialects(
            "SELECT 2 FROM runs WHERE run_id GLOB ?1",
            "SELECT 2 FROM runs WHERE run_id LIKE ?1",
        );
        const TAIL: &str = "FROM runs INDEXED BY runs_by_run_id";
        const TAIL_POSTGRES: &str = "FROM runs";
        const COUNT: &str = "SELECT count(*) FROM runs WHERE ?1 IS NULL";
        const COUNT_POSTGRES: &str = "SELECT count(*) FROM runs WHERE CAST(?1 AS TEXT) IS NULL";
        fn f(db: &Db) {
            db.query(Sql::dialects(&format!("SELECT 3 {TAIL}"), &format!("SELECT 3 {TAIL_POSTGRES}")));
            db.query(Sql::dialects(COUNT, COUNT_POSTGRES));
        }
    "##;
    let found = found_in(&[("registry/x.rs".to_string(), src.to_string())]);
    let texts = |backend| -> Vec<(String, String)> {
        statements_in(&found, backend)
            .into_iter()
            .map(|s| (s.origin, s.sql))
            .collect()
    };
    let pair = |origin: &str, sql: &str| (origin.to_string(), sql.to_string());
    assert_eq!(
        texts(Backend::Sqlite),
        [
            pair(
                "registry/x.rs: PORTABLE",
                "SELECT 1 FROM runs WHERE run_id = ?1"
            ),
            pair(
                "registry/x.rs: LITERALS",
                "SELECT 2 FROM runs WHERE run_id GLOB ?1"
            ),
            pair(
                "registry/x.rs: COUNT",
                "SELECT count(*) FROM runs WHERE ?1 IS NULL"
            ),
            pair(
                "registry/x.rs:12",
                "SELECT 3 FROM runs INDEXED BY runs_by_run_id"
            ),
        ]
    );
    assert_eq!(
        texts(Backend::Postgres),
        [
            pair(
                "registry/x.rs: PORTABLE",
                "SELECT 1 FROM runs WHERE run_id = ?1"
            ),
            pair(
                "registry/x.rs: LITERALS",
                "SELECT 2 FROM runs WHERE run_id LIKE ?1"
            ),
            pair(
                "registry/x.rs: COUNT_POSTGRES",
                "SELECT count(*) FROM runs WHERE CAST(?1 AS TEXT) IS NULL"
            ),
            pair("registry/x.rs:12", "SELECT 3 FROM runs"),
        ]
    );
}

/// A `Sql::dialects` whose PostgreSQL text the guard cannot read (here: a
/// variable) is an error, not a statement left out.
#[test]
#[should_panic(expected = "is not the next literal")]
fn a_dialect_pair_without_a_readable_postgres_text_is_refused() {
    let src = r#"
        fn f(db: &Db, other: &str) {
            db.query(Sql::dialects("SELECT 1 FROM runs", other));
            let x = "SELECT 2 FROM runs";
        }
    "#;
    found_in(&[("registry/x.rs".to_string(), src.to_string())]);
}

/// Two constants passed as a pair must be named `X` and `X_POSTGRES`, the
/// naming the guard pairs them by.
#[test]
#[should_panic(expected = "name the PostgreSQL text `COUNT_POSTGRES`")]
fn a_pair_of_constants_must_be_named_x_and_x_postgres() {
    let src = r#"
        const COUNT: &str = "SELECT count(*) FROM runs";
        const COUNT_PG: &str = "SELECT count(*) FROM runs";
        fn f(db: &Db) { db.query(Sql::dialects(COUNT, COUNT_PG)); }
    "#;
    found_in(&[("registry/x.rs".to_string(), src.to_string())]);
}

/// PostgreSQL's list has the texts PostgreSQL runs: its own files, its
/// texts of the pairs, and nothing of SQLite's dialect.
#[test]
fn the_postgres_statements_are_postgres_texts() {
    let all = statements_on(Backend::Postgres);
    let origins: Vec<&str> = all.iter().map(|s| s.origin.as_str()).collect();
    for known in [
        "registry/runs.rs: COUNT_RUNS_POSTGRES",
        "registry/runs.rs: COUNT_RUNS_SINCE",
        "registry/lineage.rs: ANCESTORS",
        "registry/verification.rs: EDGES_OF_RUNS",
        "registry/executions.rs: INSERT_EXECUTION",
        "registry/open_postgres.rs: HISTORY",
        "registry/open_postgres.rs: CLEAR",
        "registry/info.rs: COUNTS",
    ] {
        assert!(
            origins.contains(&known),
            "{known} not found in {origins:#?}"
        );
    }
    for s in &all {
        let words = words(&s.sql);
        for sqlite_only in ["glob", "indexed", "json_each", "pragma", "sqlite_schema"] {
            assert!(
                !words.iter().any(|w| w == sqlite_only),
                "{}: SQLite's `{sqlite_only}` in PostgreSQL's text: {}",
                s.origin,
                s.sql
            );
        }
        assert!(
            !s.sql.contains('{'),
            "{}: a placeholder was left in: {}",
            s.origin,
            s.sql
        );
    }
    // The rebuild's batch is its statements, one each.
    assert_eq!(
        origins
            .iter()
            .filter(|o| **o == "registry/open_postgres.rs: CLEAR")
            .count(),
        8
    );
    // SQLite's opener is SQLite's.
    assert!(!origins.iter().any(|o| o.starts_with("registry/open.rs")));
}
