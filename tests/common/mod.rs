//! Test harness: starts the real server on a random port against its own database (a fresh
//! SQLite file, or a fresh PostgreSQL database) and its own Redis key prefix.
#![allow(dead_code)]

pub mod ws;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{json, Value};
use tax_budget::app::{App, Server, ServerOptions};
use tax_budget::config::{Config, DatabaseUrl};
use tokio::net::TcpListener;
use uuid::Uuid;

pub const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: SQLite file, in-process cache and bus.
    Sqlite,
    /// PostgreSQL and Redis.
    Postgres,
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                .with_test_writer()
                .try_init();
        }
    });
}

/// The PostgreSQL and Redis URLs for tests, or `None` to skip. In CI they must be set.
pub fn services() -> Option<(String, String)> {
    let pg = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty());
    let redis = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty());
    match (pg, redis) {
        (Some(pg), Some(redis)) => Some((pg, redis)),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but TEST_DATABASE_URL / TEST_REDIS_URL are not set")
        }
        _ => {
            eprintln!(
                "skipped: set TEST_DATABASE_URL and TEST_REDIS_URL to run PostgreSQL + Redis tests"
            );
            None
        }
    }
}

/// A database of the test's own, removed when dropped.
pub struct TestDb {
    pub url: DatabaseUrl,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub async fn create(backend: Backend) -> Option<(TestDb, Option<String>)> {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("tax-budget-test-{}", Uuid::new_v4()));
                std::fs::create_dir_all(&dir).expect("temp dir");
                let db = TestDb {
                    url: DatabaseUrl::Sqlite(dir.join("db.sqlite3")),
                    cleanup: Cleanup::File(dir),
                };
                Some((db, None))
            }
            Backend::Postgres => {
                let (admin_url, redis) = services()?;
                let name = format!("tb_test_{}", Uuid::new_v4().simple());
                let mut admin = AsyncPgConnection::establish(&admin_url)
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let url = replace_database(&admin_url, &name);
                let db = TestDb {
                    url: DatabaseUrl::Postgres(url),
                    cleanup: Cleanup::Postgres { admin_url, name },
                };
                Some((db, Some(redis)))
            }
        }
    }

    /// The URL as a process would take it in `DATABASE_URL`.
    pub fn env_value(&self) -> String {
        match &self.url {
            DatabaseUrl::Postgres(url) => url.clone(),
            DatabaseUrl::Sqlite(path) => path.display().to_string(),
        }
    }
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = base.rsplit_once('/').map_or(base, |(p, _)| p);
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime; a thread of its own may block.
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    runtime.block_on(async {
                        if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url).await {
                            let _ = admin
                                .batch_execute(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// A server running in this process, on a random port.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub app: Arc<App>,
    pub backend: Backend,
    pub redis_url: Option<String>,
    pub key_prefix: String,
    pub db: TestDb,
    server: Option<Server>,
    http: reqwest::Client,
}

pub struct Options {
    pub run_worker: bool,
    /// The web app's directory. `None`: one that does not exist, so tests see the same page
    /// whether or not `web/dist` has been built in this checkout.
    pub web_dir: Option<PathBuf>,
    /// `submitAllocation` per minute per address; 0 (the default) is no limit, since every
    /// test client is 127.0.0.1.
    pub submit_rate_per_minute: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            run_worker: true,
            web_dir: None,
            submit_rate_per_minute: 0,
        }
    }
}

impl Options {
    pub fn without_worker() -> Self {
        Options {
            run_worker: false,
            ..Options::default()
        }
    }
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, Options::default()).await
}

pub async fn spawn_app_with(backend: Backend, options: Options) -> Option<TestApp> {
    init_logs();
    let (db, redis_url) = TestDb::create(backend).await?;
    let key_prefix = format!("tb-test-{}:", Uuid::new_v4().simple());
    let mut config = Config::for_database(db.url.clone());
    config.redis_url = redis_url.clone();
    config.redis_key_prefix = key_prefix.clone();
    // Workers must be woken by submissions, not find them by polling: poll once an hour.
    config.worker_poll = Duration::from_secs(3600);
    config.submit_rate_per_minute = options.submit_rate_per_minute;
    let app = App::start(config).await.expect("app starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let web_dir = options.web_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tax-budget-test-no-web-{}", Uuid::new_v4()))
    });
    let server_options = ServerOptions {
        run_worker: options.run_worker,
        web_dir,
    };
    let server = Server::spawn(app.clone(), listener, server_options).expect("serve");
    Some(TestApp {
        addr: server.addr,
        app,
        backend,
        redis_url,
        key_prefix,
        db,
        server: Some(server),
        http: reqwest::Client::new(),
    })
}

/// Ten percentages that add up to 100, one per seeded category, for id 1..=10.
pub fn allocation(values: [f64; 10]) -> Value {
    Value::Array(
        values
            .iter()
            .enumerate()
            .map(|(i, v)| json!({ "categoryId": (i + 1).to_string(), "percentage": v }))
            .collect(),
    )
}

pub const EVEN: [f64; 10] = [10.0; 10];

pub const SUBMIT: &str = "mutation Submit($input: SubmitAllocationInput!) {
  submitAllocation(input: $input) {
    voterToken
    submission { id createdAt allocations { category { id slug } percentage } }
  }
}";

pub const AGGREGATES: &str = "{ aggregates { version totalSubmissions updatedAt source
  categories { category { id name } averagePercentage } } }";

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a GraphQL request and returns the whole response body.
    pub async fn gql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        let mut request = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        response.json().await.expect("json body")
    }

    pub async fn submit_raw(
        &self,
        allocations: Value,
        key: Option<&str>,
        token: Option<&str>,
    ) -> Value {
        self.gql(
            SUBMIT,
            json!({ "input": { "allocations": allocations, "idempotencyKey": key } }),
            token,
        )
        .await
    }

    /// Submits a valid allocation; returns (submission id, voter token if one was created).
    pub async fn submit(&self, values: [f64; 10], token: Option<&str>) -> (String, Option<String>) {
        let body = self.submit_raw(allocation(values), None, token).await;
        let payload = &body["data"]["submitAllocation"];
        assert!(payload.is_object(), "submit failed: {body}");
        (
            payload["submission"]["id"].as_str().expect("id").to_owned(),
            payload["voterToken"].as_str().map(str::to_owned),
        )
    }

    pub async fn aggregates(&self) -> Value {
        let body = self.gql(AGGREGATES, json!({}), None).await;
        assert!(body["errors"].is_null(), "aggregates failed: {body}");
        body["data"]["aggregates"].clone()
    }

    /// Waits until the aggregates count `n` submissions and the outbox is empty.
    pub async fn wait_folded(&self, n: i64) -> Value {
        let store = self.app.store.clone();
        eventually("all submissions folded", || async {
            let aggregates = self.aggregates().await;
            let folded = store.outbox_len().await.expect("outbox") == 0;
            (folded && aggregates["totalSubmissions"].as_i64() == Some(n)).then_some(aggregates)
        })
        .await
    }

    /// Waits for the outbox to drain, then checks that the summary counts `n` submissions and
    /// holds exactly the sums live SQL computes over every allocation.
    pub async fn assert_folded_exactly(&self, n: i64) -> tax_budget::domain::Snapshot {
        let store = self.app.store.clone();
        eventually("outbox drained", || async {
            (store.outbox_len().await.expect("outbox") == 0).then_some(())
        })
        .await;
        let summary = store
            .summary_snapshot()
            .await
            .expect("summary read")
            .expect("a fresh summary");
        let live = store.live_snapshot().await.expect("live read");
        assert_eq!(summary.total_submissions, n);
        assert_eq!(live.total_submissions, n);
        assert_eq!(summary.totals, live.totals);
        summary
    }

    /// How many submissions the database holds, counted by live SQL (not through any tier).
    pub async fn stored_submissions(&self) -> i64 {
        let live = self.app.store.live_snapshot().await.expect("live read");
        live.total_submissions
    }

    /// Runs SQL on the test's database behind the app's back.
    pub async fn execute_sql(&self, sql: &str) {
        match &self.db.url {
            DatabaseUrl::Postgres(url) => {
                let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
                conn.batch_execute(sql).await.expect("sql");
            }
            DatabaseUrl::Sqlite(path) => {
                use diesel::connection::SimpleConnection;
                use diesel::Connection;
                let (path, sql) = (path.display().to_string(), sql.to_owned());
                tokio::task::spawn_blocking(move || {
                    let mut conn = diesel::SqliteConnection::establish(&path).expect("connect");
                    conn.batch_execute("PRAGMA busy_timeout = 10000;")
                        .expect("pragma");
                    conn.batch_execute(&sql).expect("sql");
                })
                .await
                .expect("sql task");
            }
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown(Duration::from_secs(5)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.app.shutdown.cancel();
    }
}

/// Polls `check` until it yields a value, failing the test after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The averages of an aggregates response, as hundredths.
pub fn averages(aggregates: &Value) -> Vec<i64> {
    aggregates["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .map(|c| (c["averagePercentage"].as_f64().expect("average") * 100.0).round() as i64)
        .collect()
}

/// Runs one async behaviour test against both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(common::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_redis() {
                    super::$name(common::Backend::Postgres).await;
                }
            }
        )+
    };
}
