//! The application: shared state, start-up wiring and the HTTP server's life cycle.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{Builder, Client, ClientLike, ReconnectPolicy};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::aggregates::{Aggregates, Fanout};
use crate::bus::{Bus, BusError, MemoryBus, RedisBus};
use crate::cache::{MemoryCache, RedisCache, SnapshotCache};
use crate::config::{Config, DEFAULT_WEB_DIR};
use crate::domain::Category;
use crate::http::WebApp;
use crate::rate_limit::RateLimiter;
use crate::store::{self, Store, StoreError};
use crate::worker::Worker;

/// Everything a request, the worker or a subscription needs; shared as `Arc<App>`.
pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn SnapshotCache>,
    pub bus: Arc<dyn Bus>,
    pub aggregates: Aggregates,
    /// Loaded once at start: categories change only by migration.
    pub categories: Arc<Vec<Category>>,
    pub worker_wake: Arc<Notify>,
    /// Cancelled when the process shuts down: ends subscriptions, the worker, background tasks.
    pub shutdown: CancellationToken,
    /// Open WebSocket connections: the HTTP server does not track upgraded connections, and
    /// shutdown waits for these to send their close frames.
    pub connections: TaskTracker,
    /// `submitAllocation` per client address; `None` when the limit is off. Per process: with
    /// several servers a client gets the limit once per server.
    pub submit_limiter: Option<RateLimiter>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl App {
    /// Connects to every backend, migrates, and loads the newest snapshot.
    pub async fn start(config: Config) -> Result<Arc<App>, StartError> {
        tracing::info!(database = %config.database.describe(), redis = config.redis_url.is_some(), "starting");
        store::migrate(&config.database).await?;
        let store = store::connect(&config.database, config.database_pool_size).await?;
        let categories = Arc::new(store.categories().await?);
        let worker_wake = Arc::new(Notify::new());
        let resync = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();

        let redis = match &config.redis_url {
            Some(url) => Some(connect_redis(url).await?),
            None => None,
        };
        let cache: Arc<dyn SnapshotCache> = match &redis {
            Some((client, _)) => {
                Arc::new(RedisCache::new(client.clone(), &config.redis_key_prefix))
            }
            None => Arc::new(MemoryCache::default()),
        };
        let aggregates = Aggregates::new(store.clone(), cache.clone());
        let fanout = Arc::new(Fanout {
            live: aggregates.live().clone(),
            worker_wake: worker_wake.clone(),
            resync: resync.clone(),
        });
        let bus: Arc<dyn Bus> = match redis {
            Some((client, subscriber)) => Arc::new(
                RedisBus::start(client, subscriber, &config.redis_key_prefix, fanout).await?,
            ),
            None => Arc::new(MemoryBus::new(fanout)),
        };

        // Seed the process-wide snapshot before anyone can subscribe.
        aggregates.read().await?;
        let submit_limiter = RateLimiter::per_minute(config.submit_rate_per_minute);
        let app = Arc::new(App {
            config,
            store,
            cache,
            bus,
            aggregates,
            categories,
            worker_wake,
            shutdown,
            connections: TaskTracker::new(),
            submit_limiter,
        });
        app.spawn_resync(resync);
        Ok(app)
    }

    fn spawn_resync(self: &Arc<Self>, resync: Arc<Notify>) {
        let aggregates = self.aggregates.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = resync.notified() => aggregates.resync().await,
                    _ = shutdown.cancelled() => break,
                }
            }
        });
    }

    pub fn uses_redis(&self) -> bool {
        self.config.redis_url.is_some()
    }

    /// Wakes this process's worker at once and every other worker through the bus.
    pub async fn wake_workers(&self) {
        self.worker_wake.notify_one();
        if let Err(error) = self.bus.nudge_workers().await {
            tracing::warn!(%error, "could not nudge workers; they will poll");
        }
    }

    pub fn worker(&self) -> Worker {
        Worker {
            store: self.store.clone(),
            cache: self.cache.clone(),
            bus: self.bus.clone(),
            wake: self.worker_wake.clone(),
            batch_size: self.config.worker_batch_size,
            poll: self.config.worker_poll,
            fold_pause: self.config.worker_fold_pause,
        }
    }

    /// Starts the outbox worker on this runtime; it stops with the app.
    pub fn spawn_worker(&self) -> JoinHandle<()> {
        tokio::spawn(self.worker().run(self.shutdown.clone()))
    }
}

/// One multiplexed client for commands and one connection for this process's subscription;
/// both reconnect by themselves.
async fn connect_redis(url: &str) -> Result<(Client, SubscriberClient), StartError> {
    let mut builder = Builder::from_config(fred::prelude::Config::from_url(url)?);
    builder
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(5);
        })
        .with_performance_config(|p| {
            p.default_command_timeout = Duration::from_secs(5);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
    let client = builder.build()?;
    client.init().await?;
    let subscriber = builder.build_subscriber_client()?;
    subscriber.init().await?;
    Ok((client, subscriber))
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
        let router = crate::http::router(app.clone(), web);
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
