//! The SQLite and PostgreSQL migrations mean the same schema, version by
//! version: each engine's files are applied in order to an empty database,
//! and after every version both are described in one normalised form
//! (tables, columns, keys, CHECKs, indexes, views, triggers, the registry's
//! mark) and compared. A migration written for one engine only, or written
//! differently, fails here with the lines that differ.
//!
//! The SQLite side runs on the SQLite the tool bundles (rusqlite), as
//! refinery applies it; the PostgreSQL side with psql on a fresh database
//! from `common::pg`, and skips with one line where there is no server.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::pg;
use serde_json::Value;

/// One engine's migrations, by version: (version, file name, path).
fn migrations(engine: &str) -> Vec<(u32, String, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    let mut found: Vec<(u32, String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|path| {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let version = name
                .strip_prefix('V')
                .and_then(|rest| rest.split_once("__"))
                .filter(|_| name.ends_with(".sql"))
                .and_then(|(v, _)| v.parse().ok())
                .unwrap_or_else(|| panic!("{engine}/{name} is not named V<n>__<name>.sql"));
            (version, name, path)
        })
        .collect();
    found.sort();
    found
}

#[test]
fn both_engines_have_the_same_migrations() {
    let names = |engine| -> Vec<String> {
        migrations(engine)
            .into_iter()
            .map(|(_, name, _)| name)
            .collect()
    };
    let sqlite = names("sqlite");
    assert_eq!(
        sqlite,
        names("postgres"),
        "migrations/sqlite and migrations/postgres must hold the same versions under the same names"
    );
    let versions: Vec<u32> = migrations("sqlite").iter().map(|m| m.0).collect();
    let expected: Vec<u32> = (1..=u32::try_from(versions.len()).unwrap()).collect();
    assert_eq!(versions, expected, "versions run 1, 2, 3, … without gaps");
}

#[test]
fn every_version_builds_the_same_schema_on_both_engines() {
    let Some(url) = pg::fresh_database("schema_parity") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = rusqlite::Connection::open(dir.path().join("parity.db")).unwrap();
    let versions = migrations("sqlite").into_iter().zip(migrations("postgres"));
    for ((_, name, sqlite_file), (_, pg_name, pg_file)) in versions {
        assert_eq!(name, pg_name, "see both_engines_have_the_same_migrations");
        let sql = std::fs::read_to_string(&sqlite_file).unwrap();
        sqlite
            .execute_batch(&format!("BEGIN; {sql}\nCOMMIT;"))
            .unwrap_or_else(|e| panic!("sqlite/{name}: {e}"));
        pg::psql_file(&url, &pg_file);

        let on_sqlite = describe_sqlite(&sqlite);
        let on_postgres = describe_postgres(&url);
        assert!(
            on_sqlite == on_postgres,
            "after {name} the engines' schemas differ:\n{}",
            difference(&on_sqlite, &on_postgres)
        );
    }
}

/// The lines only one side has, under that side's name.
fn difference(sqlite: &BTreeSet<String>, postgres: &BTreeSet<String>) -> String {
    let mut out = String::new();
    for (title, ours, theirs) in [
        ("only on SQLite", sqlite, postgres),
        ("only on PostgreSQL", postgres, sqlite),
    ] {
        let lines: Vec<&String> = ours.difference(theirs).collect();
        if !lines.is_empty() {
            out.push_str(&format!("  {title}:\n"));
            for line in lines {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

// ---- SQLite -------------------------------------------------------------

fn describe_sqlite(conn: &rusqlite::Connection) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let objects: Vec<(String, String, String, Option<String>)> = conn
        .prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema
             WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
               AND tbl_name <> 'refinery_schema_history'",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (kind, name, table, sql) in &objects {
        let sql = sql.as_deref().unwrap_or_default();
        match kind.as_str() {
            "table" => describe_sqlite_table(conn, name, sql, &mut out),
            "index" => {
                let (unique, partial): (bool, bool) = conn
                    .query_row(
                        "SELECT \"unique\", partial FROM pragma_index_list(?1) WHERE name = ?2",
                        [table, name],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .unwrap();
                let columns = strings(
                    conn,
                    "SELECT coalesce(name, '<expression>') || CASE WHEN desc THEN ' desc' ELSE '' END
                     FROM pragma_index_xinfo(?1) WHERE key ORDER BY seqno",
                    name,
                );
                let predicate = partial.then(|| after_where(sql));
                out.insert(index_line(
                    name,
                    table,
                    unique,
                    &columns,
                    predicate.as_deref(),
                ));
            }
            "view" => {
                let columns = strings(conn, "SELECT name FROM pragma_table_info(?1)", name);
                out.insert(format!("view {name} ({})", columns.join(", ")));
            }
            "trigger" => {
                out.insert(sqlite_trigger_line(name, table, sql));
            }
            other => panic!("unexpected {other} {name} in sqlite_schema"),
        }
    }
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    out.insert(mark_line((app_id != 0).then_some(app_id)));
    out
}

fn describe_sqlite_table(
    conn: &rusqlite::Connection,
    table: &str,
    sql: &str,
    out: &mut BTreeSet<String>,
) {
    out.insert(format!("table {table}"));
    let columns: Vec<SqliteColumn> = conn
        .prepare("SELECT cid, name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)")
        .unwrap()
        .query_map([table], |r| {
            Ok(SqliteColumn {
                cid: r.get(0)?,
                name: r.get(1)?,
                declared: r.get(2)?,
                not_null: r.get(3)?,
                default: r.get(4)?,
                key: r.get(5)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();

    // (id, referenced table, from, to, on update, on delete), by id and seq.
    let fk_rows: Vec<(i64, String, String, Option<String>, String, String)> = conn
        .prepare(
            "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete
             FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
        )
        .unwrap()
        .query_map([table], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let fk_columns: BTreeSet<&str> = fk_rows.iter().map(|r| r.2.as_str()).collect();

    let tokens = tokenize(sql);
    let without_rowid = tokens
        .windows(2)
        .any(|w| w[0].is_word("WITHOUT") && w[1].is_word("ROWID"));
    let mut pk: Vec<&SqliteColumn> = columns.iter().filter(|c| c.key > 0).collect();
    pk.sort_by_key(|c| c.key);
    for c in &columns {
        // An INTEGER PRIMARY KEY of a rowid table is the row id, which
        // SQLite assigns when an insert names none: an identity column on
        // PostgreSQL. Not where the key is itself a reference to another
        // table's id (artifact_verifications): that id is always given.
        let auto_id = pk.len() == 1
            && c.key == 1
            && c.declared.eq_ignore_ascii_case("INTEGER")
            && !without_rowid
            && !fk_columns.contains(c.name.as_str());
        let class = match c.declared.to_ascii_uppercase().as_str() {
            "INTEGER" => "integer".to_string(),
            "TEXT" => "text".to_string(),
            "REAL" => "real".to_string(),
            "BLOB" => "blob".to_string(),
            other => format!("sqlite:{}", other.to_ascii_lowercase()),
        };
        out.insert(column_line(
            table,
            c.cid + 1,
            &c.name,
            &class,
            // PostgreSQL makes every key column NOT NULL; SQLite only a row
            // id or a WITHOUT ROWID key, though the tool never writes a NULL
            // key. Compared as PostgreSQL has it.
            c.not_null || c.key > 0,
            c.default.as_deref().map(normalise_expression).as_deref(),
            auto_id,
        ));
    }
    if !pk.is_empty() {
        let names: Vec<&str> = pk.iter().map(|c| c.name.as_str()).collect();
        out.insert(format!("table {table} primary key ({})", names.join(", ")));
    }

    let mut ids: Vec<i64> = fk_rows.iter().map(|r| r.0).collect();
    ids.dedup();
    for id in ids {
        let rows: Vec<_> = fk_rows.iter().filter(|r| r.0 == id).collect();
        let referenced = &rows[0].1;
        let from: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
        // A reference without columns names the referenced primary key.
        let to: Vec<String> = if rows.iter().all(|r| r.3.is_some()) {
            rows.iter().map(|r| r.3.clone().unwrap()).collect()
        } else {
            strings(
                conn,
                "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk",
                referenced,
            )
        };
        out.insert(foreign_key_line(
            table,
            &from,
            referenced,
            &to,
            &rows[0].5.to_ascii_lowercase(),
            &rows[0].4.to_ascii_lowercase(),
        ));
    }

    let uniques = strings(
        conn,
        "SELECT name FROM pragma_index_list(?1) WHERE origin = 'u'",
        table,
    );
    for index in uniques {
        let columns = strings(
            conn,
            "SELECT name FROM pragma_index_info(?1) ORDER BY seqno",
            &index,
        );
        out.insert(format!("table {table} unique ({})", columns.join(", ")));
    }

    let column_names: BTreeSet<String> = columns.iter().map(|c| c.name.to_lowercase()).collect();
    let mut i = 0;
    while i + 1 < tokens.len() {
        if tokens[i].is_word("CHECK") && tokens[i + 1] == Tok::Punct("(".into()) {
            let body = balanced(&tokens[i + 1..]);
            out.insert(check_line(table, body, &column_names));
            i += body.len() + 2;
        } else {
            i += 1;
        }
    }
}

/// A row of `pragma_table_info`.
struct SqliteColumn {
    cid: i64,
    name: String,
    declared: String,
    not_null: bool,
    default: Option<String>,
    /// Position in the primary key, from 1; 0 when not in it.
    key: i64,
}

/// `CREATE TRIGGER name {BEFORE|AFTER|INSTEAD OF} {INSERT|DELETE|UPDATE
/// [OF cols]} ON table [FOR EACH ROW] [WHEN expr] BEGIN …`, described.
fn sqlite_trigger_line(name: &str, table: &str, sql: &str) -> String {
    let tokens = tokenize(sql);
    let head: Vec<String> = tokens
        .iter()
        .take_while(|t| !t.is_word("BEGIN"))
        .map(|t| match t {
            Tok::Word(w) => w.to_lowercase(),
            other => other.render(),
        })
        .collect();
    let at = |word: &str| head.iter().position(|w| w == word);
    let timing = if at("instead").is_some() {
        "instead of"
    } else if at("before").is_some() {
        "before"
    } else {
        "after"
    };
    let on = at("on").expect("a trigger names its table");
    let event = ["insert", "delete", "update"]
        .into_iter()
        .find(|e| head[..on].iter().any(|w| w == e))
        .expect("a trigger has an event");
    let columns: Vec<String> = match at("of").filter(|&of| of < on) {
        Some(of) => head[of + 1..on]
            .iter()
            .filter(|w| *w != ",")
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    // SQLite has row triggers only.
    trigger_line(
        name,
        table,
        timing,
        event,
        &columns,
        true,
        at("when").is_some(),
    )
}

/// The SQL after an index's top-level WHERE.
fn after_where(create_index: &str) -> String {
    let tokens = tokenize(create_index);
    let at = tokens
        .iter()
        .position(|t| t.is_word("WHERE"))
        .expect("a partial index has a WHERE");
    normalise_tokens(&tokens[at + 1..])
}

fn strings(conn: &rusqlite::Connection, sql: &str, arg: &str) -> Vec<String> {
    conn.prepare(sql)
        .unwrap()
        .query_map([arg], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

// ---- PostgreSQL ---------------------------------------------------------

/// Everything the comparison needs from the catalogue, as one JSON object.
const POSTGRES_CATALOGUE: &str = r#"
WITH tbl AS (
    SELECT c.oid, c.relname FROM pg_class c
    WHERE c.relnamespace = current_schema()::regnamespace
      AND c.relkind IN ('r', 'p') AND c.relname <> 'refinery_schema_history'
)
SELECT json_build_object(
  'tables', (SELECT json_agg(relname) FROM tbl),
  'columns', (
    SELECT json_agg(json_build_object(
        'table', t.relname, 'position', a.attnum, 'name', a.attname,
        'type', format_type(a.atttypid, a.atttypmod), 'collation', co.collname,
        'not_null', a.attnotnull, 'default', pg_get_expr(d.adbin, d.adrelid),
        'identity', a.attidentity <> ''))
    FROM tbl t
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = t.oid AND d.adnum = a.attnum
    LEFT JOIN pg_collation co ON co.oid = a.attcollation),
  'constraints', (
    SELECT json_agg(json_build_object(
        'table', t.relname, 'kind', con.contype,
        'columns', (SELECT json_agg(a.attname ORDER BY k.i)
                    FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                    JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n),
        'references', (SELECT relname FROM pg_class WHERE oid = con.confrelid),
        'referenced', (SELECT json_agg(a.attname ORDER BY k.i)
                       FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                       JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n),
        'on_delete', con.confdeltype, 'on_update', con.confupdtype,
        'definition', pg_get_constraintdef(con.oid)))
    FROM tbl t JOIN pg_constraint con ON con.conrelid = t.oid),
  'indexes', (
    SELECT json_agg(json_build_object(
        'table', t.relname, 'name', i.relname, 'unique', ix.indisunique,
        'columns', (SELECT json_agg(pg_get_indexdef(ix.indexrelid, k, true)
                                    || CASE WHEN ix.indoption[k - 1] & 1 = 1 THEN ' desc' ELSE '' END
                                    ORDER BY k)
                    FROM generate_series(1, ix.indnkeyatts) k),
        'predicate', pg_get_expr(ix.indpred, ix.indrelid)))
    FROM tbl t
    JOIN pg_index ix ON ix.indrelid = t.oid
    JOIN pg_class i ON i.oid = ix.indexrelid
    WHERE NOT EXISTS (SELECT 1 FROM pg_constraint c
                      WHERE c.conindid = ix.indexrelid AND c.conrelid = t.oid
                        AND c.contype IN ('p', 'u', 'x'))),
  'views', (
    SELECT json_agg(json_build_object(
        'name', v.relname,
        'columns', (SELECT json_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a
                    WHERE a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped)))
    FROM pg_class v
    WHERE v.relnamespace = current_schema()::regnamespace AND v.relkind IN ('v', 'm')),
  'triggers', (
    SELECT json_agg(json_build_object(
        'table', t.relname, 'name', tg.tgname, 'type', tg.tgtype,
        'columns', (SELECT json_agg(a.attname ORDER BY k.i)
                    FROM unnest(tg.tgattr::int2[]) WITH ORDINALITY k(n, i)
                    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n),
        'when', tg.tgqual IS NOT NULL))
    FROM tbl t JOIN pg_trigger tg ON tg.tgrelid = t.oid AND NOT tg.tgisinternal),
  'mark', obj_description(to_regclass('runs'), 'pg_class')
)
"#;

fn describe_postgres(url: &str) -> BTreeSet<String> {
    let json: Value = serde_json::from_str(pg::psql(url, POSTGRES_CATALOGUE).trim())
        .expect("the catalogue query prints one JSON object");
    let list = |key: &str| -> Vec<Value> { json[key].as_array().cloned().unwrap_or_default() };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let texts = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();

    for table in list("tables") {
        out.insert(format!("table {}", text(&table)));
    }
    let mut column_names: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for c in list("columns") {
        let table = text(&c["table"]);
        let name = text(&c["name"]);
        column_names
            .entry(table.clone())
            .or_default()
            .insert(name.to_lowercase());
        let collation = text(&c["collation"]);
        let class = match text(&c["type"]).as_str() {
            "bigint" => "integer".to_string(),
            // Bytewise, as SQLite's default BINARY collation.
            "text" if collation == "C" => "text".to_string(),
            "text" => format!("text collate {collation}"),
            "double precision" => "real".to_string(),
            "bytea" => "blob".to_string(),
            other => format!("postgres:{other}"),
        };
        out.insert(column_line(
            &table,
            c["position"].as_i64().unwrap(),
            &name,
            &class,
            c["not_null"].as_bool().unwrap(),
            c["default"].as_str().map(normalise_expression).as_deref(),
            c["identity"].as_bool().unwrap(),
        ));
    }
    for con in list("constraints") {
        let table = text(&con["table"]);
        let columns = texts(&con["columns"]);
        match text(&con["kind"]).as_str() {
            "p" => out.insert(format!(
                "table {table} primary key ({})",
                columns.join(", ")
            )),
            "u" => out.insert(format!("table {table} unique ({})", columns.join(", "))),
            "f" => {
                let action = |key: &str| match text(&con[key]).as_str() {
                    "a" => "no action",
                    "r" => "restrict",
                    "c" => "cascade",
                    "n" => "set null",
                    "d" => "set default",
                    other => panic!("confdeltype {other}"),
                };
                let from: Vec<&str> = columns.iter().map(String::as_str).collect();
                out.insert(foreign_key_line(
                    &table,
                    &from,
                    &text(&con["references"]),
                    &texts(&con["referenced"]),
                    action("on_delete"),
                    action("on_update"),
                ))
            }
            "c" => {
                let tokens = tokenize(&text(&con["definition"]));
                // `CHECK (<expression>)`
                let body = balanced(&tokens[1..]);
                let names = column_names.get(&table).cloned().unwrap_or_default();
                out.insert(check_line(&table, body, &names))
            }
            other => out.insert(format!("table {table} constraint of kind {other}")),
        };
    }
    for ix in list("indexes") {
        let predicate = ix["predicate"]
            .as_str()
            .map(|p| normalise_tokens(&tokenize(p)));
        out.insert(index_line(
            &text(&ix["name"]),
            &text(&ix["table"]),
            ix["unique"].as_bool().unwrap(),
            &texts(&ix["columns"]),
            predicate.as_deref(),
        ));
    }
    for v in list("views") {
        out.insert(format!(
            "view {} ({})",
            text(&v["name"]),
            texts(&v["columns"]).join(", ")
        ));
    }
    for tg in list("triggers") {
        // pg_trigger.tgtype's bits.
        let bits = tg["type"].as_i64().unwrap();
        let timing = if bits & 64 != 0 {
            "instead of"
        } else if bits & 2 != 0 {
            "before"
        } else {
            "after"
        };
        let events: Vec<&str> = [
            (4, "insert"),
            (8, "delete"),
            (16, "update"),
            (32, "truncate"),
        ]
        .into_iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, e)| e)
        .collect();
        out.insert(trigger_line(
            &text(&tg["name"]),
            &text(&tg["table"]),
            timing,
            &events.join(" or "),
            &texts(&tg["columns"]),
            bits & 1 != 0,
            tg["when"].as_bool().unwrap(),
        ));
    }
    // V6's mark: a comment on `runs` naming SQLite's application_id.
    let mark = json["mark"].as_str().and_then(|comment| {
        let digits: String = comment
            .split("application_id ")
            .nth(1)?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    out.insert(mark_line(mark));
    out
}

// ---- The normalised form, shared -------------------------------------------

fn column_line(
    table: &str,
    position: i64,
    name: &str,
    class: &str,
    not_null: bool,
    default: Option<&str>,
    auto_id: bool,
) -> String {
    let mut line = format!("table {table} column {position:02} {name} {class}");
    if not_null {
        line.push_str(" not null");
    }
    if let Some(default) = default {
        line.push_str(&format!(" default {default}"));
    }
    if auto_id {
        line.push_str(" (id assigned by the engine)");
    }
    line
}

fn foreign_key_line(
    table: &str,
    from: &[&str],
    referenced: &str,
    to: &[String],
    on_delete: &str,
    on_update: &str,
) -> String {
    format!(
        "table {table} foreign key ({}) references {referenced} ({}) on delete {on_delete} on update {on_update}",
        from.join(", "),
        to.join(", ")
    )
}

fn index_line(
    name: &str,
    table: &str,
    unique: bool,
    columns: &[String],
    predicate: Option<&str>,
) -> String {
    let mut line = format!(
        "{}index {name} on {table} ({})",
        if unique { "unique " } else { "" },
        columns.join(", ").to_lowercase()
    );
    if let Some(predicate) = predicate {
        line.push_str(&format!(" where {predicate}"));
    }
    line
}

fn trigger_line(
    name: &str,
    table: &str,
    timing: &str,
    event: &str,
    columns: &[String],
    each_row: bool,
    when: bool,
) -> String {
    let mut line = format!("trigger {name} on {table} {timing} {event}");
    if !columns.is_empty() {
        line.push_str(&format!(" of ({})", columns.join(", ")));
    }
    line.push_str(if each_row {
        " for each row"
    } else {
        " for each statement"
    });
    if when {
        line.push_str(" when …");
    }
    line
}

fn mark_line(application_id: Option<i64>) -> String {
    match application_id {
        Some(id) => format!("registry mark: application_id {id}"),
        None => "registry mark: none".to_string(),
    }
}

/// A CHECK, loosely: the columns, functions and literal values it names.
/// The engines print the same condition differently (`x BETWEEN 1 AND 5`
/// comes back from PostgreSQL as `(x >= 1) AND (x <= 5)`, `IN (…)` as
/// `= ANY (ARRAY[…])`), and a missing or changed value is what matters.
fn check_line(table: &str, body: &[Tok], columns: &BTreeSet<String>) -> String {
    const KEYWORDS: [&str; 13] = [
        "in", "any", "array", "and", "or", "not", "between", "is", "null", "like", "case",
        "collate", "check",
    ];
    let mut named = BTreeSet::new();
    let mut functions = BTreeSet::new();
    let mut values = BTreeSet::new();
    let body = strip_casts(body);
    for (i, tok) in body.iter().enumerate() {
        match tok {
            Tok::Word(w) => {
                let w = w.to_lowercase();
                let call = body.get(i + 1) == Some(&Tok::Punct("(".into()));
                if columns.contains(&w) {
                    named.insert(w);
                } else if call && !KEYWORDS.contains(&w.as_str()) {
                    functions.insert(format!("{w}()"));
                }
            }
            Tok::Str(_) | Tok::Num(_) => {
                values.insert(tok.render());
            }
            Tok::Punct(_) => {}
        }
    }
    let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(" ");
    format!(
        "table {table} check on {} using [{}] values [{}]",
        join(&named),
        join(&functions),
        join(&values)
    )
}

/// A default or a predicate as text both engines agree on: PostgreSQL's
/// `::type` casts and the parentheses it adds dropped, words lowercased,
/// one space between tokens.
fn normalise_expression(sql: &str) -> String {
    normalise_tokens(&tokenize(sql))
}

fn normalise_tokens(tokens: &[Tok]) -> String {
    strip_casts(tokens)
        .iter()
        .filter(|t| **t != Tok::Punct("(".into()) && **t != Tok::Punct(")".into()))
        .map(|t| match t {
            Tok::Word(w) => w.to_lowercase(),
            other => other.render(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn strip_casts(tokens: &[Tok]) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == Tok::Punct("::".into()) {
            // `::text`, `::bigint`, `::character varying`, `::text[]`
            i += 1;
            while matches!(tokens.get(i), Some(Tok::Word(_))) {
                i += 1;
            }
            if tokens.get(i) == Some(&Tok::Punct("[".into()))
                && tokens.get(i + 1) == Some(&Tok::Punct("]".into()))
            {
                i += 2;
            }
        } else {
            out.push(tokens[i].clone());
            i += 1;
        }
    }
    out
}

/// The tokens inside the parenthesis `tokens` starts with.
fn balanced(tokens: &[Tok]) -> &[Tok] {
    assert_eq!(tokens.first(), Some(&Tok::Punct("(".into())));
    let mut depth = 0;
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Tok::Punct(p) if p == "(" => depth += 1,
            Tok::Punct(p) if p == ")" => {
                depth -= 1;
                if depth == 0 {
                    return &tokens[1..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses");
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A keyword or identifier (a quoted identifier without its quotes).
    Word(String),
    /// A string literal's contents.
    Str(String),
    Num(String),
    Punct(String),
}

impl Tok {
    fn is_word(&self, word: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn render(&self) -> String {
        match self {
            Tok::Word(w) | Tok::Num(w) | Tok::Punct(w) => w.clone(),
            Tok::Str(s) => format!("'{}'", s.replace('\'', "''")),
        }
    }
}

/// SQL as tokens, comments dropped: enough of both dialects for the
/// catalogue's text (table and trigger definitions, CHECKs, defaults,
/// index predicates).
fn tokenize(sql: &str) -> Vec<Tok> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let quoted = |i: &mut usize, close: char| -> String {
        let mut s = String::new();
        *i += 1;
        while *i < chars.len() {
            if chars[*i] == close {
                if chars.get(*i + 1) == Some(&close) {
                    s.push(close);
                    *i += 2;
                    continue;
                }
                *i += 1;
                return s;
            }
            s.push(chars[*i]);
            *i += 1;
        }
        panic!("unterminated {close} in {sql}");
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '\'' {
            out.push(Tok::Str(quoted(&mut i, '\'')));
        } else if c == '"' {
            out.push(Tok::Word(quoted(&mut i, '"')));
        } else if c == '`' {
            out.push(Tok::Word(quoted(&mut i, '`')));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else if c == ':' && next == Some(':') {
            out.push(Tok::Punct("::".into()));
            i += 2;
        } else {
            out.push(Tok::Punct(c.to_string()));
            i += 1;
        }
    }
    out
}
