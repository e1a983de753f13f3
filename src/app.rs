//! The application: shared state, start-up wiring and the HTTP server's life cycle.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::aggregates::Aggregates;
use crate::bus::{Bus, BusHandler, MemoryBus, RedisBus};
use crate::cache::{MemoryCache, RedisCache, SnapshotCache};
use crate::config::{Config, MetricsEndpoint, DEFAULT_WEB_DIR};
use crate::domain::{Category, Snapshot};
use crate::feed::SnapshotFeed;
use crate::graphql::{build_schema, ReadPermits, Services, UpdatesComputed};
use crate::http::{
    Cohorts, ConnectionLimits, HttpState, Readiness, SharedResults, WebApp, WebSocketGate,
    WebSocketLimits,
};
use crate::metrics::Metrics;
use crate::publisher::SnapshotPublisher;
use crate::rate_limit::RateLimiter;
use crate::redis::Redis;
use crate::store::{self, Store, StoreError};
use crate::submissions::{GroupCommit, Submissions};
use crate::worker::{Worker, WorkerSettings, WorkerWaker};

/// How often a process without Redis reads the summary to learn of other processes' folds.
const SUMMARY_WATCH: Duration = Duration::from_millis(500);

/// The assembled application: every service built once, from one [`Config`]. Only this
/// module and `main.rs` know it; each service gets just the parts it uses.
pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn SnapshotCache>,
    pub aggregates: Aggregates,
    pub submissions: Submissions,
    pub publisher: SnapshotPublisher,
    /// Loaded once at start: categories change only by migration.
    pub categories: Arc<Vec<Category>>,
    /// Cancelled when the process shuts down: ends subscriptions, the worker, background tasks.
    pub shutdown: CancellationToken,
    /// Open WebSocket connections, which shutdown waits for.
    pub connections: TaskTracker,
    /// What this process counts, exposed at `/metrics`.
    pub metrics: Metrics,
    /// How many `aggregatesUpdated` results the server computed, over every socket.
    pub updates_computed: UpdatesComputed,
    worker_wake: Arc<Notify>,
    redis: Option<Redis>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("bad redis settings")]
    Redis(#[from] fred::error::Error),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Hands what the bus delivers to this process: snapshots to the feed, nudges to the worker,
/// resubscriptions to a resync.
struct BusDelivery {
    feed: SnapshotFeed,
    worker_wake: Arc<Notify>,
    resync: Arc<Notify>,
}

impl BusHandler for BusDelivery {
    fn snapshot_published(&self, snapshot: Snapshot) {
        self.feed.offer(snapshot);
    }

    fn outbox_nudged(&self) {
        self.worker_wake.notify_one();
    }

    fn resubscribed(&self) {
        self.resync.notify_one();
    }
}

impl App {
    /// Connects to every backend, migrates, and loads the newest snapshot.
    pub async fn start(config: Config) -> Result<Arc<App>, StartError> {
        tracing::info!(database = %config.database.describe(), redis = config.redis_url.is_some(), "starting");
        store::migrate(&config.database).await?;
        let store = store::connect(
            &config.database,
            config.database_pool_size,
            config.sqlite_synchronous,
            config.statement_timeout,
        )
        .await?;
        let categories = Arc::new(store.categories().await?);
        let worker_wake = Arc::new(Notify::new());
        let resync = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let feed = SnapshotFeed::default();
        let metrics = Metrics::new();

        let redis = match &config.redis_url {
            Some(url) => Some(Redis::connect(url, config.redis_timeout).await?),
            None => None,
        };
        let cache: Arc<dyn SnapshotCache> = match &redis {
            Some((redis, _)) => Arc::new(RedisCache::new(redis.clone(), &config.redis_key_prefix)),
            None => Arc::new(MemoryCache::default()),
        };
        let delivery = Arc::new(BusDelivery {
            feed: feed.clone(),
            worker_wake: worker_wake.clone(),
            resync: resync.clone(),
        });
        let bus: Arc<dyn Bus> = match &redis {
            Some((redis, subscriber)) => Arc::new(RedisBus::start(
                redis.clone(),
                subscriber.clone(),
                &config.redis_key_prefix,
                delivery,
            )),
            None => Arc::new(MemoryBus::new(delivery)),
        };

        let aggregates = Aggregates::new(store.clone(), cache.clone(), feed.clone());
        // Seed the feed before anyone can subscribe.
        aggregates.read().await?;
        let submissions = Submissions::new(
            store.clone(),
            categories.clone(),
            RateLimiter::per_minute(config.submit_rate_per_minute),
            GroupCommit::start(
                store.clone(),
                WorkerWaker::new(worker_wake.clone(), bus.clone()),
                config.write_batches,
                metrics.clone(),
            ),
            metrics.clone(),
        );
        let app = Arc::new(App {
            publisher: SnapshotPublisher::new(cache.clone(), bus, feed),
            config,
            store,
            cache,
            aggregates,
            submissions,
            categories,
            shutdown,
            connections: TaskTracker::new(),
            updates_computed: UpdatesComputed::default(),
            worker_wake,
            redis: redis.map(|(redis, _)| redis),
            metrics,
        });
        app.spawn_resync(resync);
        Ok(app)
    }

    /// After a (re)subscription this process may have missed snapshots, and while Redis was
    /// away, other processes missed this one's: catch up, then repair the cache and tell them.
    ///
    /// Without Redis nothing tells this process about folds of other processes (a separate
    /// `worker`, another server on the same database), so it looks at the summary itself,
    /// every [`SUMMARY_WATCH`].
    fn spawn_resync(&self, resync: Arc<Notify>) {
        let aggregates = self.aggregates.clone();
        let publisher = self.publisher.clone();
        let store = self.store.clone();
        let shutdown = self.shutdown.clone();
        let mut watch = self.redis.is_none().then(|| {
            let mut interval = tokio::time::interval(SUMMARY_WATCH);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = resync.notified() => {
                        aggregates.resync().await;
                        publisher.heal(store.as_ref()).await;
                    }
                    _ = async { watch.as_mut()?.tick().await; Some(()) }, if watch.is_some() => {
                        aggregates.resync().await;
                    }
                    _ = shutdown.cancelled() => break,
                }
            }
        });
    }

    pub fn worker(&self) -> Worker {
        Worker::new(
            self.store.clone(),
            self.publisher.clone(),
            self.worker_wake.clone(),
            WorkerSettings {
                batch_size: self.config.worker_batch_size,
                poll: self.config.worker_poll,
                fold_pause: self.config.worker_fold_pause,
                fold_interval: self.config.fold_interval(),
            },
            self.metrics.clone(),
        )
    }

    /// Starts the outbox worker on this runtime; it stops with the app. A rebuild that died
    /// half-way is finished first, see [`finish_interrupted_rebuild`].
    pub fn spawn_worker(&self) -> JoinHandle<()> {
        let worker = self.worker();
        let store = self.store.clone();
        let publisher = self.publisher.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            finish_interrupted_rebuild(store.as_ref(), &publisher).await;
            worker.run(shutdown).await;
        })
    }

    /// Recomputes the summary and publishes it (`rebuild-aggregates`).
    pub async fn rebuild_aggregates(&self) -> Result<Snapshot, StoreError> {
        self.publisher.rebuild_summary(self.store.as_ref()).await
    }

    /// [`Self::rebuild_aggregates`], telling `progress` as each step starts.
    pub async fn rebuild_aggregates_showing(
        &self,
        progress: crate::store::RebuildProgress,
    ) -> Result<Snapshot, StoreError> {
        self.publisher
            .rebuild_summary_showing(self.store.as_ref(), progress)
            .await
    }

    /// What the HTTP routes need.
    /// Serves `/metrics` alone on `addr` until the app shuts down (`serve --metrics-bind`, and
    /// `worker --metrics-bind`, whose folds are counted nowhere else); returns the address
    /// bound (`addr` with port 0 gets one).
    pub fn serve_metrics(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let bound = listener.local_addr()?;
        tracing::info!(addr = %bound, "metrics listening");
        let limits = ConnectionLimits {
            header_read_timeout: self.config.header_read_timeout,
            max_connections: self.config.max_connections,
        };
        tokio::spawn(crate::http::serve(
            listener,
            crate::http::metrics_router(self.http_state()),
            limits,
            self.shutdown.clone(),
        ));
        Ok(bound)
    }

    fn http_state(&self) -> HttpState {
        let services = Services {
            submissions: self.submissions.clone(),
            aggregates: self.aggregates.clone(),
            categories: self.categories.clone(),
            shutdown: self.shutdown.clone(),
            reads: ReadPermits::for_pool(self.config.database_pool_size),
            metrics: self.metrics.clone(),
        };
        let built = build_schema(services, &self.config.queries);
        let cohorts = Cohorts::new(built.schema.clone(), self.updates_computed.clone());
        HttpState {
            cohorts: Arc::new(cohorts),
            schema: built.schema,
            validated_once: built.validated_once,
            persisted: built.persisted,
            limits: built.limits,
            feed: self.aggregates.feed().clone(),
            readiness: Arc::new(Readiness {
                store: self.store.clone(),
                cache: self.cache.clone(),
                redis: self.redis.clone(),
            }),
            shutdown: self.shutdown.clone(),
            connections: self.connections.clone(),
            websocket: WebSocketGate::new(self.websocket_limits()),
            metrics: self.metrics.clone(),
            memo: self.config.queries.prepared_reads.then(Default::default),
            documents: Default::default(),
        }
    }

    fn websocket_limits(&self) -> WebSocketLimits {
        let ws = &self.config.websocket;
        WebSocketLimits {
            max_message_bytes: ws.ws_max_message_bytes.max(1024),
            max_operations: ws.ws_max_operations.max(1),
            max_per_address: ws.ws_max_per_address.max(1),
            max_total: ws.ws_max_connections.max(1),
            write_timeout: Duration::from_secs(ws.ws_write_timeout_secs.max(1)),
            ping_interval: Duration::from_secs(ws.ws_ping_secs.max(1)),
            allowed_origins: ws.allowed_origins.clone(),
        }
    }
}

/// Runs the rebuild again when the summary is marked stale, which a rebuild that died between
/// marking it and rewriting it leaves behind: otherwise every reader would stay on slow live
/// SQL until someone ran `rebuild-aggregates` by hand. Safe while another rebuild is still
/// running: both take the summary lock, so this one waits and recomputes the same sums.
/// Failing here costs speed, not correctness (folds add to a stale summary as to a fresh one),
/// so the worker starts either way.
async fn finish_interrupted_rebuild(store: &dyn Store, publisher: &SnapshotPublisher) {
    match summary_is_stale(store).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::warn!(%error, "cannot tell whether a rebuild was interrupted");
            return;
        }
    }
    tracing::warn!(
        "the summary is marked stale (a rebuild died or is running): rebuilding it before folding"
    );
    match publisher.rebuild_summary(store).await {
        Ok(snapshot) => tracing::info!(
            version = snapshot.version,
            total = snapshot.total_submissions,
            "interrupted rebuild finished"
        ),
        Err(error) => tracing::error!(
            %error,
            "rebuilding the stale summary failed; readers use live SQL until a rebuild succeeds"
        ),
    }
}

/// Whether the summary is marked stale. The cheap read settles the usual case (a fresh
/// summary); only without one does the audit, which reads every allocation, tell a stale
/// summary from none at all (a new database, whose summary the first fold creates). A stale
/// summary costs that scan again in the rebuild, which is as slow anyway.
async fn summary_is_stale(store: &dyn Store) -> Result<bool, StoreError> {
    if store.summary_snapshot().await?.is_some() {
        return Ok(false);
    }
    Ok(store.audit_summary().await?.stale)
}

/// The deployment's shared cache, connected on its own for the operator commands (`verify`,
/// `cache reset`), which must look at a deployment without joining it: no migration, no read
/// that would backfill the cache, no subscription. `None` without Redis: each serving process
/// then keeps its cache in its own memory, out of every other process's reach.
pub async fn shared_cache(config: &Config) -> Result<Option<Arc<dyn SnapshotCache>>, StartError> {
    let Some(url) = &config.redis_url else {
        return Ok(None);
    };
    let (redis, _subscriber) = Redis::connect(url, config.redis_timeout).await?;
    Ok(Some(Arc::new(RedisCache::new(
        redis,
        &config.redis_key_prefix,
    ))))
}

/// What a server does besides serving the API.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Run the outbox worker in this process.
    pub run_worker: bool,
    /// The built web app (`index.html` + `assets/`); see [`crate::http::WebApp`].
    pub web_dir: PathBuf,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            run_worker: true,
            web_dir: PathBuf::from(DEFAULT_WEB_DIR),
        }
    }
}

/// A running HTTP server.
pub struct Server {
    pub addr: SocketAddr,
    app: Arc<App>,
    task: JoinHandle<()>,
    worker: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `app` and the web app on `listener` (and runs the worker when
    /// `options.run_worker`), until shut down.
    pub fn spawn(
        app: Arc<App>,
        listener: TcpListener,
        options: ServerOptions,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let ServerOptions {
            run_worker,
            web_dir,
        } = options;
        let web = WebApp::new(web_dir)
            .with_previews(SharedResults::new(
                app.submissions.clone(),
                app.categories.clone(),
            ))
            .with_status_page(app.config.status_page);
        web.log_status();
        let metrics = app.config.metrics;
        let router = crate::http::router(app.http_state(), web, metrics == MetricsEndpoint::Api);
        let shutdown = app.shutdown.clone();
        let limits = ConnectionLimits {
            header_read_timeout: app.config.header_read_timeout,
            max_connections: app.config.max_connections,
        };
        if let MetricsEndpoint::Separate(metrics_addr) = metrics {
            app.serve_metrics(metrics_addr)?;
        }
        let task = tokio::spawn(crate::http::serve(listener, router, limits, shutdown));
        let worker = run_worker.then(|| app.spawn_worker());
        tracing::info!(%addr, run_worker, "listening");
        Ok(Server {
            addr,
            app,
            task,
            worker,
        })
    }

    pub async fn bind(
        app: Arc<App>,
        addr: SocketAddr,
        options: ServerOptions,
    ) -> Result<Self, StartError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Server::spawn(app, listener, options).map_err(|source| StartError::Bind { addr, source })
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Stops accepting, lets in-flight requests finish (up to `grace`), closes WebSockets and
    /// stops the worker after its current fold.
    pub async fn shutdown(self, grace: Duration) {
        self.app.shutdown.cancel();
        match tokio::time::timeout(grace, self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "server task failed"),
            Err(_) => tracing::warn!(
                ?grace,
                "requests still running at the end of the grace period"
            ),
        }
        self.app.connections.close();
        if tokio::time::timeout(grace, self.app.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("websockets still open at the end of the grace period");
        }
        if let Some(worker) = self.worker {
            let _ = tokio::time::timeout(grace, worker).await;
        }
    }
}
