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
use crate::config::{Config, DEFAULT_WEB_DIR};
use crate::domain::{Category, Snapshot};
use crate::feed::SnapshotFeed;
use crate::graphql::{build_schema, ReadPermits, Services};
use crate::http::{HttpState, Readiness, WebApp};
use crate::publisher::SnapshotPublisher;
use crate::rate_limit::RateLimiter;
use crate::redis::Redis;
use crate::store::{self, Store, StoreError};
use crate::submissions::Submissions;
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
            WorkerWaker::new(worker_wake.clone(), bus.clone()),
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
            worker_wake,
            redis: redis.map(|(redis, _)| redis),
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
            },
        )
    }

    /// Starts the outbox worker on this runtime; it stops with the app.
    pub fn spawn_worker(&self) -> JoinHandle<()> {
        tokio::spawn(self.worker().run(self.shutdown.clone()))
    }

    /// Recomputes the summary and publishes it (`rebuild-aggregates`).
    pub async fn rebuild_aggregates(&self) -> Result<Snapshot, StoreError> {
        self.publisher.rebuild_summary(self.store.as_ref()).await
    }

    /// What the HTTP routes need.
    fn http_state(&self) -> HttpState {
        let services = Services {
            submissions: self.submissions.clone(),
            aggregates: self.aggregates.clone(),
            categories: self.categories.clone(),
            shutdown: self.shutdown.clone(),
            reads: ReadPermits::for_pool(self.config.database_pool_size),
        };
        HttpState {
            schema: build_schema(services, &self.config.queries),
            readiness: Arc::new(Readiness {
                store: self.store.clone(),
                cache: self.cache.clone(),
                redis: self.redis.clone(),
            }),
            shutdown: self.shutdown.clone(),
            connections: self.connections.clone(),
        }
    }
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
    task: JoinHandle<std::io::Result<()>>,
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
        let web = WebApp::new(web_dir);
        web.log_status();
        let router = crate::http::router(app.http_state(), web);
        let shutdown = app.shutdown.clone();
        let task = tokio::spawn(async move {
            // The peer address keys the submission rate limit.
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
        });
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
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::error!(%error, "server error"),
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
