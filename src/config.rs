//! Settings, read once at start from flags and environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Where durable data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    /// The embedded default: a SQLite file.
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// `postgres://…` / `postgresql://…` is PostgreSQL; anything else is a SQLite file, given
    /// as a path or as `sqlite://path`, `sqlite:path` or `file:path`.
    pub fn parse(value: &str) -> Self {
        let value = value.trim();
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return DatabaseUrl::Postgres(value.to_owned());
        }
        let path = ["sqlite://", "sqlite:", "file://", "file:"]
            .iter()
            .find_map(|prefix| value.strip_prefix(prefix))
            .unwrap_or(value);
        DatabaseUrl::Sqlite(PathBuf::from(path))
    }

    /// Names the database for logs without leaking a password.
    pub fn describe(&self) -> String {
        match self {
            DatabaseUrl::Postgres(url) => match url.split_once('@') {
                Some((_, host)) => format!("postgres://…@{host}"),
                None => url.clone(),
            },
            DatabaseUrl::Sqlite(path) => format!("sqlite file {}", path.display()),
        }
    }
}

/// Where the embedded default keeps its file.
pub const DEFAULT_SQLITE_PATH: &str = "data/tax-budget.sqlite3";
/// Where Vite puts the built web app, relative to the working directory (the repository root
/// when started by `scripts/run` or `cargo run`).
pub const DEFAULT_WEB_DIR: &str = "web/dist";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "tax-budget:";
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 100;
pub const DEFAULT_DATABASE_POOL_SIZE: usize = 16;
pub const DEFAULT_WORKER_BATCH_SIZE: i64 = 500;
pub const DEFAULT_WORKER_POLL_MS: u64 = 1000;
/// On SQLite, while writes keep coming, at most 20 folds a second: measured with the writes
/// bench, 4,570–5,087 submissions/s at 50 ms against 3,411–4,101/s folding back to back, with
/// the outbox at most 320 rows deep.
pub const DEFAULT_SQLITE_FOLD_INTERVAL_MS: u64 = 50;
/// On PostgreSQL, while writes keep coming, at most 10 folds a second. Folds do not take turns
/// with the writes there, but a fold costs much the same for 50 rows as for 400 (13 ms against
/// 20 ms in the writes bench), and folding back to back kept the worker busy all the time:
/// interleaved runs of the writes bench gave `submitAllocation` 1.86–1.98× pgbench's rate at
/// 100 ms against 1.53–1.88× at 0, the outbox at most 531 rows deep.
pub const DEFAULT_POSTGRES_FOLD_INTERVAL_MS: u64 = 100;
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10;
pub const DEFAULT_SUBMIT_RATE_PER_MINUTE: u32 = 60;
/// The same order as the POST body limit: far above any real GraphQL message.
pub const DEFAULT_WS_MAX_MESSAGE_BYTES: usize = 64 * 1024;
pub const DEFAULT_WS_MAX_OPERATIONS: usize = 20;
pub const DEFAULT_WS_MAX_PER_ADDRESS: usize = 100;
pub const DEFAULT_WS_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_WS_WRITE_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_WS_PING_SECS: u64 = 20;
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// A full history page (`mySubmissions(first: 100)` with every field) costs 7,401.
pub const DEFAULT_MAX_QUERY_COST: usize = 10_000;
/// About a dozen full history pages, or a few hundred result pages, per minute per address.
pub const DEFAULT_READ_COST_PER_MINUTE: u32 = 100_000;
pub const DEFAULT_MAX_CONCURRENT_COSTLY_QUERIES: usize = 8;
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 5_000;
/// Well under a commit's own time (about a millisecond with a disk sync), so a lone
/// submission hardly notices it, and long enough for a burst's requests to meet.
pub const DEFAULT_WRITE_BATCH_WINDOW_US: u64 = 200;
/// A batch's statement stays small (about 12 rows per submission) and quick to roll back.
pub const DEFAULT_WRITE_BATCH_MAX: usize = 128;
/// Two batches committing while the next gathers: the database's sync of one overlaps the
/// round trip of the other.
pub const DEFAULT_WRITE_BATCHES_IN_FLIGHT: usize = 2;
/// The embedded default is a service on one's own machine: its status page is on.
pub const DEFAULT_STATUS_PAGE: bool = true;

/// How the embedded SQLite store syncs a commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum SqliteSync {
    /// Every commit reaches the disk before it is acknowledged: survives a power loss.
    #[default]
    Full,
    /// Faster; a power loss may lose the last acknowledged submissions (the file stays intact).
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings every command shares: where the data and the cache are.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// PostgreSQL URL (postgres://…) or SQLite file path/URL. Unset: ./data/tax-budget.sqlite3.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Redis URL (redis://…). Unset: in-process cache and pub/sub (single process only).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel, so deployments and tests can share one Redis.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = DEFAULT_REDIS_KEY_PREFIX)]
    pub redis_key_prefix: String,

    /// How long one Redis command may take before the service goes on without it
    /// (milliseconds). After a few failures in a row Redis is skipped for a second.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = DEFAULT_REDIS_TIMEOUT_MS)]
    pub redis_timeout_ms: u64,

    /// SQLite only: `full` syncs every commit to disk (an acknowledged submission survives a
    /// power loss), `normal` is faster and may lose the last ones.
    #[arg(long, env = "SQLITE_SYNCHRONOUS", value_enum, default_value_t = SqliteSync::Full)]
    pub sqlite_synchronous: SqliteSync,

    /// Most database connections this process opens.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = DEFAULT_DATABASE_POOL_SIZE)]
    pub database_pool_size: usize,

    /// PostgreSQL only: longest one SQL statement may run before the database cancels it
    /// (milliseconds); 0 is no limit. `migrate` and `rebuild-aggregates` run without one.
    #[arg(long, env = "STATEMENT_TIMEOUT_MS", default_value_t = DEFAULT_STATEMENT_TIMEOUT_MS)]
    pub statement_timeout_ms: u64,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Export traces to this OpenTelemetry collector (OTLP over HTTP, protobuf; e.g.
    /// `http://127.0.0.1:4318`; spans go to `<url>/v1/traces`). Unset: no export.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// Settings of the outbox worker.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Most outbox rows folded in one transaction.
    #[arg(long, env = "WORKER_BATCH_SIZE", default_value_t = DEFAULT_WORKER_BATCH_SIZE)]
    pub worker_batch_size: i64,

    /// How often an idle worker looks at the outbox when no wake-up arrives (milliseconds).
    #[arg(long, env = "WORKER_POLL_MS", default_value_t = DEFAULT_WORKER_POLL_MS)]
    pub worker_poll_ms: u64,

    /// While writes keep coming (a fold found 10 rows or more), the worker gathers rows this
    /// long (milliseconds) from the start of one fold to the next; an idle worker folds at
    /// once when woken. Unset: 50 on SQLite, where a fold and a batch of submissions take
    /// turns at the one write lock and fewer, larger folds leave more turns to the writes; 100
    /// on PostgreSQL, where a fold costs about as much for a few dozen rows as for a few
    /// hundred. A full fold (the batch size) is followed at once, and when writes come faster
    /// than a batch per interval the next fold starts once a batch has come in at the last
    /// fold's rate.
    #[arg(long, env = "WORKER_FOLD_INTERVAL_MS")]
    pub worker_fold_interval_ms: Option<u64>,

    /// Test hook: sleep this long inside each fold transaction, before it commits (milliseconds).
    #[arg(long, env = "WORKER_FOLD_PAUSE_MS", default_value_t = 0, hide = true)]
    pub worker_fold_pause_ms: u64,
}

/// Settings of the HTTP server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = DEFAULT_BIND)]
    pub bind: SocketAddr,

    /// Run the outbox worker inside the server (`false` when separate `worker` processes run).
    #[arg(long, env = "RUN_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub run_worker: bool,

    /// How long shutdown waits for in-flight requests (seconds).
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = DEFAULT_SHUTDOWN_GRACE_SECS)]
    pub shutdown_grace_secs: u64,

    /// Directory of the built web app (index.html + assets)
    #[arg(long, env = "WEB_DIR", default_value = DEFAULT_WEB_DIR)]
    pub web_dir: PathBuf,

    /// Most `submitAllocation` calls per minute from one client address (IPv6: per /64), as a
    /// burst and as the refill rate; 0 turns the limit off. Behind a proxy every client has the
    /// proxy's address, so limit at the proxy and set 0 here.
    #[arg(long, env = "SUBMIT_RATE_PER_MINUTE", default_value_t = DEFAULT_SUBMIT_RATE_PER_MINUTE)]
    pub submit_rate_per_minute: u32,

    /// How long a client may take to send a request's headers (seconds); slower connections
    /// are closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECS)]
    pub header_read_timeout_secs: u64,

    /// Connections open at once (WebSockets included); over it new ones are closed at once.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Most a single GraphQL request may cost (see README, Limits): fields count once, lists
    /// as many times as they can be long, fields that read the database 100 more.
    #[arg(long, env = "MAX_QUERY_COST", default_value_t = DEFAULT_MAX_QUERY_COST)]
    pub max_query_cost: usize,

    /// Query cost one client address (IPv6: per /64) may spend per minute on queries and
    /// subscriptions, as a burst and as the refill rate; 0 turns the limit off. Per process,
    /// and behind a proxy every client has the proxy's address, as for submissions.
    #[arg(long, env = "READ_COST_PER_MINUTE", default_value_t = DEFAULT_READ_COST_PER_MINUTE)]
    pub read_cost_per_minute: u32,

    /// Most costly queries (cost 1,000 or more) running at once in this process; more are
    /// answered 503 with `Retry-After` at once instead of queueing. 0 turns the limit off.
    #[arg(
        long,
        env = "MAX_CONCURRENT_COSTLY_QUERIES",
        default_value_t = DEFAULT_MAX_CONCURRENT_COSTLY_QUERIES
    )]
    pub max_concurrent_costly_queries: usize,

    /// How long the writer waits for more submissions to write with the first of a batch, in
    /// one transaction (microseconds); 0 takes only those already waiting.
    #[arg(long, env = "WRITE_BATCH_WINDOW_US", default_value_t = DEFAULT_WRITE_BATCH_WINDOW_US)]
    pub write_batch_window_us: u64,

    /// Most submissions written in one transaction.
    #[arg(long, env = "WRITE_BATCH_MAX", default_value_t = DEFAULT_WRITE_BATCH_MAX)]
    pub write_batch_max: usize,

    /// Batches of submissions committing at once.
    #[arg(long, env = "WRITE_BATCHES_IN_FLIGHT", default_value_t = DEFAULT_WRITE_BATCHES_IN_FLIGHT)]
    pub write_batches_in_flight: usize,

    /// Answer introspection (`__schema`, `__type`; GraphiQL needs it). `false` refuses it with
    /// INTROSPECTION_DISABLED.
    #[arg(long, env = "INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,

    /// Answer repeated reads of the snapshot alone (`aggregates`, `categories`) from prepared
    /// bytes, without running the query: faster, but an answer may be up to a second old
    /// whatever happens to the cache tier meanwhile (a `cache reset` shows a second late).
    #[arg(long, env = "PREPARED_READS", default_value_t = false, action = clap::ArgAction::Set)]
    pub prepared_reads: bool,

    /// Serve Prometheus metrics at `/metrics` (`false`: nowhere).
    #[arg(long, env = "METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,

    /// Serve `/metrics` on this address of its own instead of the API's (e.g. an internal
    /// interface that the internet cannot reach).
    #[arg(long, env = "METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// Serve the web app's status page at `/status` (live charts of `/metrics`, no login);
    /// `false` makes `/status` a 404 and hides its link.
    #[arg(long, env = "STATUS_PAGE", default_value_t = DEFAULT_STATUS_PAGE, action = clap::ArgAction::Set)]
    pub status_page: bool,

    #[command(flatten)]
    pub websocket: WebSocketArgs,
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsEndpoint {
    Off,
    /// On the API's address.
    Api,
    /// On an address of its own.
    Separate(SocketAddr),
}

/// Limits of the WebSocket endpoint.
#[derive(Debug, Clone, Args)]
pub struct WebSocketArgs {
    /// Largest WebSocket message a client may send (bytes); a larger one closes the socket.
    #[arg(long, env = "WS_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_WS_MAX_MESSAGE_BYTES)]
    pub ws_max_message_bytes: usize,

    /// Operations (subscriptions, queries) running at once on one WebSocket; more are refused
    /// with an error message for the operation.
    #[arg(long, env = "WS_MAX_OPERATIONS", default_value_t = DEFAULT_WS_MAX_OPERATIONS)]
    pub ws_max_operations: usize,

    /// Open WebSockets per client address (IPv6: per /64); more get 429.
    #[arg(long, env = "WS_MAX_PER_ADDRESS", default_value_t = DEFAULT_WS_MAX_PER_ADDRESS)]
    pub ws_max_per_address: usize,

    /// Open WebSockets in all, per process; more get 503.
    #[arg(long, env = "WS_MAX_CONNECTIONS", default_value_t = DEFAULT_WS_MAX_CONNECTIONS)]
    pub ws_max_connections: usize,

    /// How long a write to a WebSocket may wait for the client to read before it is dropped
    /// (seconds).
    #[arg(long, env = "WS_WRITE_TIMEOUT_SECS", default_value_t = DEFAULT_WS_WRITE_TIMEOUT_SECS)]
    pub ws_write_timeout_secs: u64,

    /// How often the server pings each WebSocket (seconds); a client from which nothing at all
    /// (not even a Pong) came for three intervals is closed.
    #[arg(long, env = "WS_PING_SECS", default_value_t = DEFAULT_WS_PING_SECS)]
    pub ws_ping_secs: u64,

    /// Origins besides the server's own whose pages may call the API (CORS) and open a
    /// WebSocket (comma-separated, e.g. `https://example.org`; `*` allows any). Clients that
    /// are not browsers send no Origin and are not affected.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
}

impl Default for WebSocketArgs {
    fn default() -> Self {
        WebSocketArgs {
            ws_max_message_bytes: DEFAULT_WS_MAX_MESSAGE_BYTES,
            ws_max_operations: DEFAULT_WS_MAX_OPERATIONS,
            ws_max_per_address: DEFAULT_WS_MAX_PER_ADDRESS,
            ws_max_connections: DEFAULT_WS_MAX_CONNECTIONS,
            ws_write_timeout_secs: DEFAULT_WS_WRITE_TIMEOUT_SECS,
            ws_ping_secs: DEFAULT_WS_PING_SECS,
            allowed_origins: Vec::new(),
        }
    }
}

impl Default for BackendArgs {
    /// What the flags default to, without reading the environment.
    fn default() -> Self {
        BackendArgs {
            database_url: None,
            redis_url: None,
            redis_key_prefix: DEFAULT_REDIS_KEY_PREFIX.into(),
            redis_timeout_ms: DEFAULT_REDIS_TIMEOUT_MS,
            sqlite_synchronous: SqliteSync::Full,
            database_pool_size: DEFAULT_DATABASE_POOL_SIZE,
            statement_timeout_ms: DEFAULT_STATEMENT_TIMEOUT_MS,
            log_format: LogFormat::Text,
            otlp_endpoint: None,
        }
    }
}

impl Default for WorkerArgs {
    /// What the flags default to, for commands that take no worker flags.
    fn default() -> Self {
        WorkerArgs {
            worker_batch_size: DEFAULT_WORKER_BATCH_SIZE,
            worker_poll_ms: DEFAULT_WORKER_POLL_MS,
            worker_fold_interval_ms: None,
            worker_fold_pause_ms: 0,
        }
    }
}

/// Everything the library needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseUrl,
    pub redis_url: Option<String>,
    pub redis_key_prefix: String,
    pub redis_timeout: Duration,
    pub database_pool_size: usize,
    pub sqlite_synchronous: SqliteSync,
    pub worker_batch_size: i64,
    pub worker_poll: Duration,
    pub worker_fold_pause: Duration,
    /// How long the worker gathers rows between the starts of two folds while writes keep
    /// coming (less once a batch has come in); `None`: the backend's default, see
    /// [`Config::fold_interval`].
    pub worker_fold_interval: Option<Duration>,
    /// `submitAllocation` calls per minute per client address; 0 is no limit. Only `serve`
    /// takes it from a flag; everything else, tests included, runs without a limit.
    pub submit_rate_per_minute: u32,
    /// Only `serve` takes these from flags; everything else runs with the defaults.
    pub websocket: WebSocketArgs,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// PostgreSQL's `statement_timeout` on every pooled connection; `None` is no limit.
    pub statement_timeout: Option<Duration>,
    /// The limits of GraphQL requests; only `serve` takes them from flags.
    pub queries: QueryLimitsConfig,
    /// How submissions are batched into transactions; only `serve` takes it from flags.
    pub write_batches: GroupCommitSettings,
    pub metrics: MetricsEndpoint,
    /// The web app's `/status` page; only `serve` takes it from a flag.
    pub status_page: bool,
}

/// How submissions are batched into transactions (see `submissions::group_commit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitSettings {
    /// How long the writer waits for more submissions after the first of a batch.
    pub window: Duration,
    /// Most submissions in one transaction.
    pub max_batch: usize,
    /// Batches committing at once (each holds one database connection).
    pub max_in_flight: usize,
}

/// The limits of GraphQL requests, as configured (see `graphql::limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimitsConfig {
    pub max_cost: usize,
    /// Query cost per minute per client address; 0 is no limit.
    pub read_cost_per_minute: u32,
    /// Costly queries running at once; 0 is no limit.
    pub max_concurrent_costly: usize,
    pub introspection: bool,
    /// Hot reads of the snapshot answered from prepared bytes (see `http::read_cache`).
    pub prepared_reads: bool,
}

impl Default for QueryLimitsConfig {
    /// The flags' defaults, except the per-address read budget: off, as for submissions, for
    /// everything but `serve` (tests included: every test client is 127.0.0.1).
    fn default() -> Self {
        QueryLimitsConfig {
            max_cost: DEFAULT_MAX_QUERY_COST,
            read_cost_per_minute: 0,
            max_concurrent_costly: DEFAULT_MAX_CONCURRENT_COSTLY_QUERIES,
            introspection: true,
            prepared_reads: false,
        }
    }
}

fn millis(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

impl Config {
    /// For `serve`.
    pub fn serve(backend: &BackendArgs, worker: &WorkerArgs, serve: &ServeArgs) -> Self {
        Config {
            submit_rate_per_minute: serve.submit_rate_per_minute,
            websocket: serve.websocket.clone(),
            header_read_timeout: Duration::from_secs(serve.header_read_timeout_secs.max(1)),
            max_connections: serve.max_connections.max(1),
            queries: QueryLimitsConfig {
                max_cost: serve.max_query_cost.max(1),
                read_cost_per_minute: serve.read_cost_per_minute,
                max_concurrent_costly: serve.max_concurrent_costly_queries,
                introspection: serve.introspection,
                prepared_reads: serve.prepared_reads,
            },
            write_batches: GroupCommitSettings {
                window: Duration::from_micros(serve.write_batch_window_us),
                max_batch: serve.write_batch_max.max(1),
                max_in_flight: serve.write_batches_in_flight.max(1),
            },
            metrics: match (serve.metrics, serve.metrics_bind) {
                (false, _) => MetricsEndpoint::Off,
                (true, None) => MetricsEndpoint::Api,
                (true, Some(addr)) => MetricsEndpoint::Separate(addr),
            },
            status_page: serve.status_page,
            ..Config::worker(backend, worker)
        }
    }

    /// For `worker`.
    pub fn worker(backend: &BackendArgs, worker: &WorkerArgs) -> Self {
        let database = DatabaseUrl::parse(
            backend
                .database_url
                .as_deref()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or(DEFAULT_SQLITE_PATH),
        );
        Config {
            database,
            redis_url: backend.redis_url.clone().filter(|v| !v.trim().is_empty()),
            redis_key_prefix: backend.redis_key_prefix.clone(),
            redis_timeout: Duration::from_millis(backend.redis_timeout_ms.max(1)),
            database_pool_size: backend.database_pool_size.max(1),
            sqlite_synchronous: backend.sqlite_synchronous,
            worker_batch_size: worker.worker_batch_size.clamp(1, 10_000),
            worker_poll: Duration::from_millis(worker.worker_poll_ms.max(10)),
            worker_fold_pause: Duration::from_millis(worker.worker_fold_pause_ms),
            worker_fold_interval: worker.worker_fold_interval_ms.map(Duration::from_millis),
            submit_rate_per_minute: 0,
            websocket: WebSocketArgs::default(),
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            statement_timeout: millis(backend.statement_timeout_ms),
            queries: QueryLimitsConfig::default(),
            write_batches: GroupCommitSettings {
                window: Duration::from_micros(DEFAULT_WRITE_BATCH_WINDOW_US),
                max_batch: DEFAULT_WRITE_BATCH_MAX,
                max_in_flight: DEFAULT_WRITE_BATCHES_IN_FLIGHT,
            },
            metrics: MetricsEndpoint::Api,
            status_page: DEFAULT_STATUS_PAGE,
        }
    }

    /// For the maintenance commands (`migrate`, `rebuild-aggregates`), which take no worker
    /// or server flags. They run without a statement timeout: a rebuild reads every
    /// allocation in one statement, which may rightly take longer than any request should.
    pub fn maintenance(backend: &BackendArgs) -> Self {
        Config {
            statement_timeout: None,
            ..Config::worker(backend, &WorkerArgs::default())
        }
    }

    /// How long the worker gathers rows between the starts of two folds while writes keep
    /// coming (less once a batch has come in): as configured, else 50 ms on SQLite and 100 ms
    /// on PostgreSQL (see `--worker-fold-interval-ms`).
    pub fn fold_interval(&self) -> Duration {
        self.worker_fold_interval.unwrap_or(match self.database {
            DatabaseUrl::Sqlite(_) => Duration::from_millis(DEFAULT_SQLITE_FOLD_INTERVAL_MS),
            DatabaseUrl::Postgres(_) => Duration::from_millis(DEFAULT_POSTGRES_FOLD_INTERVAL_MS),
        })
    }

    /// For tests and embedding: the given database, no Redis, every other setting at its
    /// default.
    pub fn for_database(database: DatabaseUrl) -> Self {
        Config {
            database,
            ..Config::worker(&BackendArgs::default(), &WorkerArgs::default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_paced_by_backend_unless_configured_otherwise() {
        let sqlite = Config::for_database(DatabaseUrl::Sqlite("x.sqlite3".into()));
        assert_eq!(sqlite.fold_interval(), Duration::from_millis(50));
        let postgres = Config::for_database(DatabaseUrl::Postgres("postgres://h/db".into()));
        assert_eq!(postgres.fold_interval(), Duration::from_millis(100));
        let chosen = Config {
            worker_fold_interval: Some(Duration::from_millis(7)),
            ..postgres
        };
        assert_eq!(chosen.fold_interval(), Duration::from_millis(7));
    }

    #[test]
    fn tells_postgres_from_sqlite() {
        assert_eq!(
            DatabaseUrl::parse("postgres://u@h/db"),
            DatabaseUrl::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/x.db"),
            DatabaseUrl::Sqlite("data/x.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("/tmp/x.sqlite3"),
            DatabaseUrl::Sqlite("/tmp/x.sqlite3".into())
        );
    }

    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn the_submit_rate_reaches_the_config_only_from_serve() {
        use clap::Parser;
        let backend = BackendArgs::default();
        let worker = WorkerArgs::default();
        assert_eq!(Config::worker(&backend, &worker).submit_rate_per_minute, 0);
        if std::env::var_os("SUBMIT_RATE_PER_MINUTE").is_none() {
            let default = Serve::try_parse_from(["serve"]).unwrap();
            assert_eq!(
                default.serve.submit_rate_per_minute,
                DEFAULT_SUBMIT_RATE_PER_MINUTE
            );
        }
        let set = Serve::try_parse_from(["serve", "--submit-rate-per-minute", "5"]).unwrap();
        let config = Config::serve(&backend, &worker, &set.serve);
        assert_eq!(config.submit_rate_per_minute, 5);
    }

    #[test]
    fn the_status_page_is_on_unless_turned_off() {
        use clap::Parser;
        let backend = BackendArgs::default();
        let worker = WorkerArgs::default();
        assert!(Config::worker(&backend, &worker).status_page);
        if std::env::var_os("STATUS_PAGE").is_none() {
            let default = Serve::try_parse_from(["serve"]).unwrap();
            assert!(Config::serve(&backend, &worker, &default.serve).status_page);
        }
        let off = Serve::try_parse_from(["serve", "--status-page", "false"]).unwrap();
        assert!(!Config::serve(&backend, &worker, &off.serve).status_page);
    }

    #[test]
    fn query_limits_reach_the_config_only_from_serve() {
        use clap::Parser;
        let backend = BackendArgs {
            database_url: None,
            redis_url: None,
            redis_key_prefix: "tax-budget:".into(),
            redis_timeout_ms: 100,
            sqlite_synchronous: SqliteSync::Full,
            database_pool_size: 1,
            statement_timeout_ms: 250,
            log_format: LogFormat::Text,
            otlp_endpoint: None,
        };
        let worker = WorkerArgs::default();
        let for_worker = Config::worker(&backend, &worker);
        assert_eq!(for_worker.queries.read_cost_per_minute, 0);
        assert_eq!(
            for_worker.statement_timeout,
            Some(Duration::from_millis(250))
        );
        assert_eq!(Config::maintenance(&backend).statement_timeout, None);
        let set = Serve::try_parse_from([
            "serve",
            "--read-cost-per-minute",
            "500",
            "--max-query-cost",
            "300",
            "--max-concurrent-costly-queries",
            "0",
            "--introspection",
            "false",
        ])
        .unwrap();
        let config = Config::serve(&backend, &worker, &set.serve);
        assert_eq!(
            config.queries,
            QueryLimitsConfig {
                max_cost: 300,
                read_cost_per_minute: 500,
                max_concurrent_costly: 0,
                introspection: false,
                prepared_reads: false,
            }
        );
    }

    #[test]
    fn hides_passwords_in_descriptions() {
        let url = DatabaseUrl::parse("postgres://user:secret@db:5432/app");
        assert!(!url.describe().contains("secret"));
    }
}
