//! Test harness: starts the real server on a random port against its own database (a fresh
//! SQLite file, or a fresh PostgreSQL database) and its own Redis key prefix, and removes both
//! afterwards.

pub mod gql;
pub mod proxy;
pub mod ws;

use std::future::Future;
use std::io::Write;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use fred::prelude::{ClientLike, LuaInterface};
use serde_json::{json, Value};
use tax_budget::app::{App, Server, ServerOptions};
use tax_budget::config::{Config, DatabaseUrl, QueryLimitsConfig, DEFAULT_STATEMENT_TIMEOUT_MS};
use tokio::net::TcpListener;
use uuid::Uuid;

use gql::{AggregateSnapshot, AggregateSource, GqlClient};

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

/// The PostgreSQL and Redis URLs for tests, or `None` (saying so) to skip. In CI they must be
/// set.
fn services() -> Option<(String, String)> {
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
            announce_skip("needs PostgreSQL + Redis: set TEST_DATABASE_URL and TEST_REDIS_URL");
            None
        }
    }
}

/// Says on the terminal that the running test is skipped, as one line
/// `SKIPPED: <test> (<reason>)` that `scripts/test` counts.
///
/// libtest captures what `eprintln!` writes and shows it only for failing tests, so a skipped
/// test would look like a passing one; a write to the `stderr()` handle is not captured.
pub fn announce_skip(reason: &str) {
    let thread = std::thread::current();
    // libtest runs each test on a thread named after it.
    let test = thread
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("an unnamed test");
    let line = format!("SKIPPED: {test} ({reason})\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
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
    fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!("tax-budget-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TestDb {
            url: DatabaseUrl::Sqlite(dir.join("db.sqlite3")),
            cleanup: Cleanup::File(dir),
        }
    }

    async fn postgres(admin_url: String) -> TestDb {
        let name = format!("tb_test_{}", Uuid::new_v4().simple());
        let mut admin = AsyncPgConnection::establish(&admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        TestDb {
            url: DatabaseUrl::Postgres(replace_database(&admin_url, &name)),
            cleanup: Cleanup::Postgres { admin_url, name },
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

/// `url` with its database name replaced.
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = base.rsplit_once('/').map_or(base, |(p, _)| p);
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

/// Runs `cleanup` to completion from `Drop`, which runs inside the test's runtime: a thread of
/// its own with a runtime of its own may block.
fn block_on_own_thread<F: Future<Output = ()> + Send + 'static>(cleanup: F) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(cleanup);
    })
    .join();
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                block_on_own_thread(async move {
                    if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url).await {
                        let _ = admin
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                });
            }
        }
    }
}

/// A Redis key prefix of the test's own; its keys are deleted when dropped.
pub struct TestRedis {
    pub url: String,
    pub key_prefix: String,
}

/// Deletes every key matching `ARGV[1]`.
const DELETE_MATCHING: &str = r#"
local keys = redis.call('KEYS', ARGV[1])
for _, key in ipairs(keys) do
  redis.call('DEL', key)
end
return #keys
"#;

impl Drop for TestRedis {
    fn drop(&mut self) {
        let url = self.url.clone();
        // The prefix is `tb-test-<hex>:`: nothing in it is a glob character.
        let pattern = format!("{}*", self.key_prefix);
        block_on_own_thread(async move {
            let Ok(config) = fred::prelude::Config::from_url(&url) else {
                return;
            };
            let Ok(client) = fred::prelude::Builder::from_config(config).build() else {
                return;
            };
            if client.init().await.is_ok() {
                let _: Result<i64, _> = client
                    .eval(DELETE_MATCHING, Vec::<String>::new(), vec![pattern])
                    .await;
                let _ = client.quit().await;
            }
        });
    }
}

/// Where one test keeps its data: its own database and, with PostgreSQL, its own Redis key
/// prefix. Both are removed when dropped.
pub struct TestBackend {
    pub db: TestDb,
    pub redis: Option<TestRedis>,
}

impl TestBackend {
    /// `None` when PostgreSQL + Redis are asked for but not configured (outside CI only).
    pub async fn create(backend: Backend) -> Option<TestBackend> {
        match backend {
            Backend::Sqlite => Some(TestBackend {
                db: TestDb::sqlite(),
                redis: None,
            }),
            Backend::Postgres => {
                let (admin_url, redis_url) = services()?;
                Some(TestBackend {
                    db: TestDb::postgres(admin_url).await,
                    redis: Some(TestRedis {
                        url: redis_url,
                        key_prefix: format!("tb-test-{}:", Uuid::new_v4().simple()),
                    }),
                })
            }
        }
    }

    /// Applies only the first `n` migrations, so that a test can write the rows an older
    /// release would have before the app migrates the rest.
    pub async fn migrate_first(&self, n: usize) {
        use diesel_migrations::{FileBasedMigrations, MigrationHarness};
        let dir = |backend: &str| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(backend)
        };
        let source = |dir: &PathBuf| FileBasedMigrations::from_path(dir).expect("migrations");
        match &self.db.url {
            DatabaseUrl::Postgres(url) => {
                let conn = AsyncPgConnection::establish(url).await.expect("connect");
                let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
                let dir = dir("postgres");
                // The harness blocks its thread on every step.
                tokio::task::spawn_blocking(move || {
                    for _ in 0..n {
                        harness.run_next_migration(source(&dir)).expect("migrate");
                    }
                })
                .await
                .expect("migration task");
            }
            DatabaseUrl::Sqlite(path) => {
                use diesel::Connection;
                let (path, dir) = (path.display().to_string(), dir("sqlite"));
                tokio::task::spawn_blocking(move || {
                    let mut conn = diesel::SqliteConnection::establish(&path).expect("connect");
                    for _ in 0..n {
                        conn.run_next_migration(source(&dir)).expect("migrate");
                    }
                })
                .await
                .expect("migration task");
            }
        }
    }

    /// Runs SQL on the test's database.
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

    /// The environment a `tax-budget` process needs to use this backend.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("DATABASE_URL", self.db.env_value())];
        if let Some(redis) = &self.redis {
            env.push(("REDIS_URL", redis.url.clone()));
            env.push(("REDIS_KEY_PREFIX", redis.key_prefix.clone()));
        }
        env
    }
}

/// A server running in this process, on a random port. Derefs to a [`GqlClient`] for it.
pub struct TestApp {
    pub app: Arc<App>,
    pub backend: TestBackend,
    server: Option<Server>,
    addr: std::net::SocketAddr,
    client: GqlClient,
}

pub struct Options {
    pub run_worker: bool,
    /// The web app's directory. `None`: one that does not exist, so tests see the same page
    /// whether or not `web/dist` has been built in this checkout.
    pub web_dir: Option<PathBuf>,
    /// `submitAllocation` per minute per address; 0 (the default) is no limit, since every
    /// test client is 127.0.0.1.
    pub submit_rate_per_minute: u32,
    /// Reach Redis through this address (a [`proxy::TcpProxy`]) instead of directly.
    pub redis_via: Option<std::net::SocketAddr>,
    /// Reach PostgreSQL through this address (a [`proxy::TcpProxy`]) instead of directly.
    pub database_via: Option<std::net::SocketAddr>,
    /// Changes to the configuration, applied last (limits, timeouts).
    pub tweak: fn(&mut Config),
    /// The GraphQL limits: the defaults of `serve`, except the per-address read budget, which
    /// is off (every test client is 127.0.0.1), as for submissions.
    pub queries: QueryLimitsConfig,
    /// PostgreSQL's `statement_timeout`, in milliseconds (0: none); the default of `serve`.
    pub statement_timeout_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            run_worker: true,
            web_dir: None,
            submit_rate_per_minute: 0,
            redis_via: None,
            database_via: None,
            tweak: |_| {},
            queries: QueryLimitsConfig::default(),
            statement_timeout_ms: DEFAULT_STATEMENT_TIMEOUT_MS,
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
    let backend = TestBackend::create(backend).await?;
    Some(spawn_app_on(backend, options).await)
}

/// Starts the app on a backend the test has prepared; it migrates the database first.
pub async fn spawn_app_on(backend: TestBackend, options: Options) -> TestApp {
    init_logs();
    let mut config = Config::for_database(backend.db.url.clone());
    if let (Some(via), DatabaseUrl::Postgres(url)) = (options.database_via, &backend.db.url) {
        config.database = DatabaseUrl::Postgres(with_host(url, via));
    }
    if let Some(redis) = &backend.redis {
        config.redis_url = Some(match options.redis_via {
            Some(via) => with_host(&redis.url, via),
            None => redis.url.clone(),
        });
        config.redis_key_prefix = redis.key_prefix.clone();
    }
    // Workers must be woken by submissions, not find them by polling: poll once an hour.
    config.worker_poll = Duration::from_secs(3600);
    config.submit_rate_per_minute = options.submit_rate_per_minute;
    config.queries = options.queries;
    config.statement_timeout = (options.statement_timeout_ms > 0)
        .then(|| Duration::from_millis(options.statement_timeout_ms));
    (options.tweak)(&mut config);
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
    TestApp {
        app,
        backend,
        client: GqlClient::new(server.addr),
        addr: server.addr,
        server: Some(server),
    }
}

/// `url` with its `host:port` replaced by `addr` (`scheme://[user@]host:port[/rest]`).
pub fn with_host(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user, rest) = rest
        .split_once('@')
        .map_or(("", rest), |(user, rest)| (user, rest));
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let at = if user.is_empty() { "" } else { "@" };
    format!("{scheme}://{user}{at}{addr}{path}")
}

/// The `host:port` a URL names, resolved.
pub fn address_of(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split_once('@').map_or(rest, |(_, rest)| rest);
    let host_port = rest.split(['/', '?']).next().expect("host");
    use std::net::ToSocketAddrs;
    host_port
        .to_socket_addrs()
        .expect("resolve")
        .next()
        .expect("an address")
}

/// Ten percentages, one per seeded category, for id 1..=10.
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

impl Deref for TestApp {
    type Target = GqlClient;

    fn deref(&self) -> &GqlClient {
        &self.client
    }
}

impl TestApp {
    /// Shuts the server down as SIGTERM would, waiting up to `grace`.
    pub async fn shut_down(&mut self, grace: Duration) {
        if let Some(server) = self.server.take() {
            server.shutdown(grace).await;
        }
    }

    pub fn client(&self) -> &GqlClient {
        &self.client
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Waits until the aggregates count `n` submissions and the outbox is empty.
    pub async fn wait_folded(&self, n: i64) -> AggregateSnapshot {
        let store = self.app.store.clone();
        eventually("all submissions folded", || async {
            let aggregates = self.aggregates().await;
            let folded = store.outbox_len().await.expect("outbox") == 0;
            (folded && aggregates.total_submissions == n).then_some(aggregates)
        })
        .await
    }

    /// Empties the cache until a read of the aggregates comes from `source`, and returns that
    /// read. One invalidation is not enough when a cache write is in flight (a worker's publish
    /// after its fold, the start-up resync): it can land after it.
    pub async fn read_past_the_cache(&self, source: AggregateSource) -> AggregateSnapshot {
        eventually(&format!("a read from {source:?}"), || async {
            self.app.cache.invalidate().await.expect("invalidate");
            let read = self.aggregates().await;
            (read.source == source).then_some(read)
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
        self.assert_distributions_and_trend_exact(&summary).await;
        summary
    }

    /// Checks that the summary's distributions equal those live SQL computes over every
    /// allocation, and that the trend buckets of every resolution add up to the summary's
    /// count and sums: each folded submission counted once, in every kind of bucket.
    pub async fn assert_distributions_and_trend_exact(
        &self,
        summary: &tax_budget::domain::Snapshot,
    ) {
        use tax_budget::domain::{CategoryId, Resolution, TrendRange};
        let store = &self.app.store;
        let details = store
            .summary_details()
            .await
            .expect("details read")
            .expect("a fresh summary");
        assert_eq!(details.snapshot.version, summary.version);
        let live = store.live_details().await.expect("live details read");
        for id in 1..=10 {
            let id = CategoryId(id);
            assert_eq!(
                details.distribution(id),
                live.distribution(id),
                "distribution of category {id}"
            );
        }
        let now = chrono::Utc::now();
        for resolution in Resolution::ALL {
            let first = store.trend_first(resolution).await.expect("first bucket");
            // A range longer than one read covers is checked at the coarser resolutions.
            let Ok(range) = TrendRange::new(resolution, first, now, None) else {
                continue;
            };
            let rows = store.trend(range).await.expect("trend read");
            let mut sums = rows.before.clone();
            for (_, bucket) in &rows.buckets {
                sums.submissions += bucket.submissions;
                for total in &bucket.totals {
                    sums.add(total.category_id, total.sum_hundredths);
                }
            }
            assert_eq!(
                sums.submissions, summary.total_submissions,
                "{resolution:?} buckets count every submission once"
            );
            for total in &summary.totals {
                let bucketed: i64 = sums
                    .totals
                    .iter()
                    .filter(|t| t.category_id == total.category_id)
                    .map(|t| t.sum_hundredths)
                    .sum();
                assert_eq!(
                    bucketed, total.sum_hundredths,
                    "{resolution:?} buckets of category {}",
                    total.category_id
                );
            }
        }
    }

    /// How many submissions the database holds, counted by live SQL (not through any tier).
    pub async fn stored_submissions(&self) -> i64 {
        let live = self.app.store.live_snapshot().await.expect("live read");
        live.total_submissions
    }

    /// Runs SQL on the test's database behind the app's back.
    pub async fn execute_sql(&self, sql: &str) {
        self.backend.execute_sql(sql).await;
    }

    /// Runs a query behind the app's back whose one column is the text `text`, and returns
    /// it row by row.
    pub async fn query_texts(&self, sql: &str) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            text: String,
        }
        let rows: Vec<Row> = match &self.backend.db.url {
            DatabaseUrl::Postgres(url) => {
                use diesel_async::RunQueryDsl;
                let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
                diesel::sql_query(sql).load(&mut conn).await.expect("query")
            }
            DatabaseUrl::Sqlite(path) => {
                use diesel::{Connection, RunQueryDsl};
                let (path, sql) = (path.display().to_string(), sql.to_owned());
                tokio::task::spawn_blocking(move || {
                    let mut conn = diesel::SqliteConnection::establish(&path).expect("connect");
                    diesel::sql_query(sql).load(&mut conn).expect("query")
                })
                .await
                .expect("query task")
            }
        };
        rows.into_iter().map(|row| row.text).collect()
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

/// Runs one async behaviour test against both backends, as `<test>::sqlite` and
/// `<test>::postgres_redis`.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::harness::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_redis() {
                    super::$name($crate::harness::Backend::Postgres).await;
                }
            }
        )+
    };
}
pub(crate) use on_both_backends;
