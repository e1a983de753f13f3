//! What the benches share: their settings from the environment, percentiles, a GraphQL POST,
//! and a database of their own (a fresh PostgreSQL database under `BENCH_DATABASE_URL`, else a
//! SQLite file in a temporary directory), removed afterwards.

// Each bench uses a part of this module.
#![allow(dead_code)]

pub mod pgbench;
pub mod wrk;

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tax_budget::config::DatabaseUrl;

/// The JSON answer to a GraphQL request `body` POSTed to `url`.
pub async fn post_graphql(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    http.post(url)
        .json(body)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

/// `name` from the environment as a number, `default` when unset or not a number.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile (0..=1) of sorted latencies; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = (sorted.len().saturating_sub(1) as f64 * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// Runs `sql` (several statements) on the database at `url`, as a bench seeds it.
pub async fn execute(database: &DatabaseUrl, sql: String) {
    match database {
        DatabaseUrl::Postgres(url) => {
            let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
            conn.batch_execute(&sql).await.expect("sql");
        }
        DatabaseUrl::Sqlite(path) => {
            use diesel::connection::SimpleConnection;
            use diesel::Connection;
            let path = path.display().to_string();
            tokio::task::spawn_blocking(move || {
                let mut conn = diesel::SqliteConnection::establish(&path).expect("connect");
                conn.batch_execute(&sql).expect("sql");
            })
            .await
            .expect("sql task");
        }
    }
}

/// A bench's own database.
pub struct BenchDatabase {
    pub url: DatabaseUrl,
    /// The admin URL and the database's name, on PostgreSQL.
    admin: Option<(String, String)>,
    /// The SQLite file's directory, removed when dropped.
    _dir: Option<tempfile::TempDir>,
}

impl BenchDatabase {
    /// A new database on the PostgreSQL of `BENCH_DATABASE_URL` (an admin URL), else a SQLite
    /// file in a new temporary directory.
    pub async fn create() -> Self {
        match std::env::var("BENCH_DATABASE_URL").ok() {
            Some(admin) => {
                let name = format!("tb_bench_{}", uuid::Uuid::new_v4().simple());
                let mut conn = AsyncPgConnection::establish(&admin).await.expect("admin");
                conn.batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                BenchDatabase {
                    url: DatabaseUrl::Postgres(format!("{base}/{name}")),
                    admin: Some((admin, name)),
                    _dir: None,
                }
            }
            None => {
                let dir = scratch_dir();
                BenchDatabase {
                    url: DatabaseUrl::Sqlite(dir.path().join("bench.sqlite3")),
                    admin: None,
                    _dir: Some(dir),
                }
            }
        }
    }

    /// Drops the PostgreSQL database, or removes the SQLite file's directory.
    pub async fn remove(mut self) {
        if let Some((admin, name)) = self.admin.take() {
            drop_database(admin, name).await;
        }
    }
}

/// A bench that panics (a failed check, a tool that failed) still leaves no database behind.
impl Drop for BenchDatabase {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.admin.take() {
            // Its own thread and runtime: this may run on the bench's runtime, unwinding.
            let _ = std::thread::spawn(move || {
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    runtime.block_on(drop_database(admin, name));
                }
            })
            .join();
        }
    }
}

/// A new directory under the system's temporary one, removed with everything in it when
/// dropped.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tax-budget-bench-")
        .tempdir()
        .expect("scratch directory")
}

async fn drop_database(admin: String, name: String) {
    if let Ok(mut conn) = AsyncPgConnection::establish(&admin).await {
        let _ = conn
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}
