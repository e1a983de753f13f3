//! `src/store/schema.rs`, the one diesel schema both backends are queried through, must
//! describe what the migrations create:
//!
//! - PostgreSQL: it is exactly what `diesel print-schema` prints for a freshly migrated
//!   database (it was generated that way; regenerate it when a migration changes).
//! - SQLite: a freshly migrated file has the same tables and columns, with the same nullability
//!   and a matching type affinity, so a migration changed for one backend only fails here.
//!
//! The PostgreSQL check needs `TEST_DATABASE_URL` and the diesel CLI. Without them it says
//! `SKIPPED:` in the test output; under `CI=true` it fails instead.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::sql_types::{Integer, Text};
use diesel::{sql_query, Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::FutureExt;
use tax_budget::config::DatabaseUrl;
use tax_budget::store;

const INSTALL_DIESEL: &str =
    "cargo install diesel_cli --no-default-features --features postgres --locked";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn checked_in_schema() -> String {
    let path = manifest_dir().join("src/store/schema.rs");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Says why the check did not run, where a normal `cargo test` shows it: libtest captures
/// `println!`, not writes to the stdout handle. In CI a missing piece is a failure instead.
fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {reason}");
    }
    crate::harness::announce_skip(reason);
}

/// Migrates the empty database at `url` and returns what the diesel CLI prints for it.
async fn printed_schema(url: &str) -> Result<String, String> {
    store::migrate(&DatabaseUrl::Postgres(url.to_owned()))
        .await
        .map_err(|e| format!("migrate: {e}"))?;
    let out = Command::new("diesel")
        .current_dir(manifest_dir())
        .args(["print-schema", "--database-url", url, "--config-file"])
        .arg(manifest_dir().join("diesel.toml"))
        .output()
        .map_err(|e| format!("run diesel: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "diesel print-schema failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("diesel printed non-UTF-8: {e}"))
}

fn first_difference(checked_in: &str, printed: &str) -> String {
    let mut left = checked_in.lines();
    let mut right = printed.lines();
    for line in 1.. {
        match (left.next(), right.next()) {
            (None, None) => break,
            (a, b) if a == b => continue,
            (a, b) => {
                return format!(
                    "first difference at line {line}:\n  checked in: {}\n  migrations: {}",
                    a.unwrap_or("<end of file>"),
                    b.unwrap_or("<end of file>")
                )
            }
        }
    }
    "the files differ only in line endings".into()
}

#[tokio::test]
async fn schema_rs_is_what_diesel_prints_for_the_postgres_migrations() {
    let Some(admin_url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        skip("TEST_DATABASE_URL is not set");
        return;
    };
    if !Command::new("diesel")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
    {
        skip(&format!("the diesel CLI is not on PATH ({INSTALL_DIESEL})"));
        return;
    }

    let name = format!("tb_schema_{}", uuid::Uuid::new_v4().simple());
    let mut admin = AsyncPgConnection::establish(&admin_url)
        .await
        .expect("connect to TEST_DATABASE_URL");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let printed = AssertUnwindSafe(printed_schema(&crate::harness::replace_database(
        &admin_url, &name,
    )))
    .catch_unwind()
    .await;
    // Dropped before any assertion or panic, so that a failing check leaves no database behind.
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop database");

    let printed = printed
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        .unwrap_or_else(|e| panic!("{e}"));
    let checked_in = checked_in_schema();
    assert!(
        printed == checked_in,
        "src/store/schema.rs does not match migrations/postgres; regenerate it with\n  \
         diesel print-schema --database-url <a freshly migrated database> > src/store/schema.rs\n{}",
        first_difference(&checked_in, &printed)
    );
}

/// A column as both backends must agree on it.
#[derive(Debug, PartialEq, Eq)]
struct ColumnShape {
    nullable: bool,
    /// SQLite's type affinity, from the declared type by SQLite's rules.
    affinity: &'static str,
}

/// The tables and columns `schema.rs` declares, from its generated text.
fn declared_tables(schema: &str) -> Tables {
    let mut tables = BTreeMap::new();
    let mut current: Option<(String, BTreeMap<String, ColumnShape>)> = None;
    for line in schema.lines().map(str::trim) {
        if let Some((table, _)) = line.strip_suffix(" {").and_then(|l| l.split_once(" (")) {
            current = Some((table.to_owned(), BTreeMap::new()));
        } else if let (Some((_, columns)), Some((column, ty))) = (
            current.as_mut(),
            line.strip_suffix(',').and_then(|l| l.split_once(" -> ")),
        ) {
            let (ty, nullable) = match ty.strip_prefix("Nullable<") {
                Some(inner) => (inner.trim_end_matches('>'), true),
                None => (ty, false),
            };
            let affinity = match ty {
                "Int2" | "Int4" | "Int8" => "INTEGER",
                "Text" | "Uuid" | "Timestamptz" => "TEXT",
                "Bool" => "NUMERIC",
                other => panic!("schema.rs column {column} has type {other}, unknown to this test"),
            };
            columns.insert(column.to_owned(), ColumnShape { nullable, affinity });
        } else if line == "}" {
            if let Some((table, columns)) = current.take() {
                tables.insert(table, columns);
            }
        }
    }
    tables
}

/// SQLite's affinity rules (https://www.sqlite.org/datatype3.html, 3.1), in their order.
fn affinity(declared: &str) -> &'static str {
    let declared = declared.to_ascii_uppercase();
    if declared.contains("INT") {
        "INTEGER"
    } else if ["CHAR", "CLOB", "TEXT"]
        .iter()
        .any(|t| declared.contains(t))
    {
        "TEXT"
    } else if declared.contains("BLOB") || declared.is_empty() {
        "BLOB"
    } else if ["REAL", "FLOA", "DOUB"]
        .iter()
        .any(|t| declared.contains(t))
    {
        "REAL"
    } else {
        "NUMERIC"
    }
}

#[derive(QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct ColumnInfo {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    declared: String,
    #[diesel(sql_type = Integer)]
    not_null: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

fn sqlite_tables(path: &Path) -> Tables {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy()).expect("open sqlite");
    let tables: Vec<TableName> = sql_query(
        "SELECT name FROM sqlite_schema WHERE type = 'table'
         AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations'",
    )
    .load(&mut conn)
    .expect("list tables");
    tables
        .into_iter()
        .map(|table| {
            let columns: Vec<ColumnInfo> = sql_query(
                "SELECT name, type AS declared, \"notnull\" AS not_null, pk
                 FROM pragma_table_info(?)",
            )
            .bind::<Text, _>(&table.name)
            .load(&mut conn)
            .expect("table info");
            let columns = columns
                .into_iter()
                .map(|c| {
                    // PostgreSQL makes primary key columns NOT NULL; SQLite's pragma does not
                    // say so, but the store never stores NULL in them.
                    let shape = ColumnShape {
                        nullable: c.not_null == 0 && c.pk == 0,
                        affinity: affinity(&c.declared),
                    };
                    (c.name, shape)
                })
                .collect();
            (table.name, columns)
        })
        .collect()
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn sqlite_migrations_have_every_table_and_column_of_schema_rs() {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "tax-budget-schema-{}",
        uuid::Uuid::new_v4().simple()
    )));
    let path = dir.0.join("db.sqlite3");
    store::migrate(&DatabaseUrl::Sqlite(path.clone()))
        .await
        .expect("migrate sqlite");

    let declared = declared_tables(&checked_in_schema());
    assert!(
        declared.contains_key("submissions"),
        "could not parse the tables of schema.rs: {declared:?}"
    );
    let problems = differences(&declared, &sqlite_tables(&path));
    assert!(
        problems.is_empty(),
        "migrations/sqlite disagrees with src/store/schema.rs:\n{}",
        problems.join("\n")
    );
}

type Tables = BTreeMap<String, BTreeMap<String, ColumnShape>>;

/// What SQLite has otherwise than schema.rs declares, one line each.
fn differences(declared: &Tables, sqlite: &Tables) -> Vec<String> {
    let mut problems = Vec::new();
    for (table, columns) in declared {
        let Some(found) = sqlite.get(table) else {
            problems.push(format!("table {table}: missing in SQLite"));
            continue;
        };
        for (column, shape) in columns {
            match found.get(column) {
                None => problems.push(format!("{table}.{column}: missing in SQLite")),
                Some(other) if other != shape => problems.push(format!(
                    "{table}.{column}: schema.rs {shape:?}, SQLite {other:?}"
                )),
                Some(_) => {}
            }
        }
        for column in found.keys().filter(|c| !columns.contains_key(*c)) {
            problems.push(format!("{table}.{column}: only in SQLite"));
        }
    }
    for table in sqlite.keys().filter(|t| !declared.contains_key(*t)) {
        problems.push(format!("table {table}: only in SQLite"));
    }
    problems
}
