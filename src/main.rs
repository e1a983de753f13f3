//! The `tax-budget` command line: serve, worker, migrate, rebuild-aggregates, verify, stats,
//! seed, cache reset, schema.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tax_budget::app::{App, Server, ServerOptions};
use tax_budget::cache::CacheError;
use tax_budget::cache::SnapshotCache;
use tax_budget::config::{BackendArgs, Config, DatabaseUrl, ServeArgs, WorkerArgs};
use tax_budget::ops::progress::StepProgress;
use tax_budget::ops::seed::{SeedArgs, SeedPlan, SeedReport};
use tax_budget::ops::stats::Stats;
use tax_budget::store::Store;
use tax_budget::telemetry::{self, LogStream, Telemetry};
use tax_budget::verify::Report;

#[derive(Parser)]
#[command(
    name = "tax-budget",
    version,
    about = "Tax Budget Allocator: GraphQL service and outbox worker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the GraphQL API, GraphiQL and the web app (runs the outbox worker too by default).
    Serve {
        // Boxed: the server's flags outweigh every other command's.
        #[command(flatten)]
        serve: Box<ServeArgs>,
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        worker: WorkerArgs,
    },
    /// Run only the outbox worker (several may run against one database).
    Worker {
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        worker: WorkerArgs,
        /// Serve Prometheus metrics at `/metrics` on this address (folds, batch sizes, the
        /// outbox): a worker has no API port to serve them on, so without it they are not
        /// served.
        #[arg(long, env = "METRICS_BIND")]
        metrics_bind: Option<std::net::SocketAddr>,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Recompute the summary from all submissions; safe while servers and workers run.
    RebuildAggregates {
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Check that the summary, SQL over the folded submissions and the cache agree; print the
    /// differences. Exit status: 0 consistent, 1 inconsistent, 2 no verdict (cannot read).
    Verify {
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Print how many submissions and voters are stored, the outbox's depth and age, the
    /// summary and cache versions, and which tier a read would use now. Reads only.
    Stats {
        #[command(flatten)]
        backend: BackendArgs,
        /// One JSON object instead of the table, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Write realistic demo submissions (varied splits from a seeded random generator) in
    /// large batches, then rebuild, cache and publish the summary so every server shows them.
    /// Meanwhile readers use live SQL: seed an idle deployment.
    Seed {
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        seed: SeedArgs,
    },
    /// Operate on the shared snapshot cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Print the GraphQL schema (SDL), as published in schema.graphql.
    Schema,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Forget the cached snapshot; the next read falls through to the summary and fills it.
    Reset {
        #[command(flatten)]
        backend: BackendArgs,
    },
}

/// `verify`'s exit status when something disagrees; 0 is consistent.
const VERIFY_INCONSISTENT: u8 = 1;
/// `verify`'s exit status when it could not read what it compares (clap's for bad usage too):
/// a monitor must not take it for a verdict either way.
const VERIFY_NO_VERDICT: u8 = 2;

/// The logger (and trace export) for the rest of the process; flushes traces when dropped.
fn init_logging(backend: &BackendArgs) -> anyhow::Result<Telemetry> {
    init_logging_to(backend, LogStream::Stdout)
}

/// The same for commands whose standard output is their result: their logs go to stderr.
fn init_logging_to_stderr(backend: &BackendArgs) -> anyhow::Result<Telemetry> {
    init_logging_to(backend, LogStream::Stderr)
}

fn init_logging_to(backend: &BackendArgs, stream: LogStream) -> anyhow::Result<Telemetry> {
    let endpoint = backend
        .otlp_endpoint
        .as_deref()
        .filter(|v| !v.trim().is_empty());
    Ok(telemetry::init(backend.log_format, stream, endpoint)?)
}

/// For the commands whose stdout is their result (`stats --json`, `seed`'s and
/// `rebuild-aggregates`' summaries): logs go to stderr, beside the progress.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received");
}

/// Connects to the database without migrating (a check must not change what it checks) and
/// to the shared cache, if there is one.
async fn connect_to_look(
    config: &Config,
) -> anyhow::Result<(Arc<dyn Store>, Option<Arc<dyn SnapshotCache>>)> {
    // Connecting would create an empty SQLite file where the path is wrong.
    if let DatabaseUrl::Sqlite(path) = &config.database {
        anyhow::ensure!(path.exists(), "no SQLite database at {}", path.display());
    }
    let store =
        tax_budget::store::connect(&config.database, 1, config.sqlite_synchronous, None).await?;
    let cache = tax_budget::app::shared_cache(config).await?;
    Ok((store, cache))
}

/// Compares the database and the shared cache.
async fn verify(config: &Config) -> anyhow::Result<Report> {
    let (store, cache) = connect_to_look(config).await?;
    Ok(tax_budget::verify::verify(store.as_ref(), cache.as_deref()).await?)
}

async fn stats(config: &Config) -> anyhow::Result<Stats> {
    let (store, cache) = connect_to_look(config).await?;
    Ok(tax_budget::ops::stats::collect(store.as_ref(), cache.as_deref()).await?)
}

/// Checks the flags before anything is touched (connecting may create a SQLite file, and
/// starting migrates), then seeds.
async fn seed(backend: &BackendArgs, args: &SeedArgs) -> anyhow::Result<SeedReport> {
    let plan = SeedPlan::new(args).context("seed refused")?;
    let app = App::start(Config::maintenance(backend)).await?;
    let report = tax_budget::ops::seed::seed(
        app.store.clone(),
        &app.publisher,
        &app.categories,
        &plan,
    )
    .await
    .context(
        "seed stopped; what it wrote is counted by the next `tax-budget rebuild-aggregates` \
         (or a starting worker: the summary is marked stale until then)",
    );
    app.shutdown.cancel();
    report
}

/// Forgets the cached snapshot and says what it held.
async fn reset_cache(config: &Config) -> anyhow::Result<String> {
    let prefix = &config.redis_key_prefix;
    let Some(cache) = tax_budget::app::shared_cache(config).await? else {
        let note = "cache reset: nothing to do: without REDIS_URL each serving process keeps \
                    its own cache in memory, which starts empty with the process";
        return Ok(note.to_owned());
    };
    // Read first only to report it; an unreadable value is exactly what a reset is for.
    let held = match cache.get().await {
        Ok(Some(snapshot)) => format!("the cached snapshot (version {})", snapshot.version),
        Ok(None) => "nothing: the cache was already empty".to_owned(),
        Err(CacheError::Decode(_)) => "an unreadable cached value".to_owned(),
        Err(error) => return Err(error).context("cannot read the cache"),
    };
    cache.invalidate().await.context("cannot reset the cache")?;
    Ok(format!(
        "cache reset: forgot {held} under REDIS_KEY_PREFIX {prefix:?}; the next read fills \
         it from the summary"
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            serve,
            backend,
            worker,
        } => {
            // The long-running commands log a line per request or fold: batched writes.
            let telemetry = init_logging_to(&backend, LogStream::StdoutBatched)?;
            let app = App::start(Config::serve(&backend, &worker, &serve)).await?;
            let options = ServerOptions {
                run_worker: serve.run_worker,
                web_dir: serve.web_dir,
            };
            let server = Server::bind(app, serve.bind, options).await?;
            telemetry.write_logs_now();
            println!(
                "tax-budget listening on http://{}/ (GraphiQL: http://{}/graphiql)",
                server.addr, server.addr
            );
            shutdown_signal().await;
            server
                .shutdown(Duration::from_secs(serve.shutdown_grace_secs))
                .await;
            tracing::info!("server stopped");
        }
        Command::Worker {
            backend,
            worker,
            metrics_bind,
        } => {
            let _telemetry = init_logging_to(&backend, LogStream::StdoutBatched)?;
            let app = App::start(Config::worker(&backend, &worker)).await?;
            if let Some(addr) = metrics_bind {
                app.serve_metrics(addr)
                    .with_context(|| format!("cannot listen on {addr} for metrics"))?;
            }
            let running = app.spawn_worker();
            shutdown_signal().await;
            app.shutdown.cancel();
            running.await.context("worker task")?;
            tracing::info!("worker process stopped");
        }
        Command::Migrate { backend } => {
            let _telemetry = init_logging(&backend)?;
            let config = Config::maintenance(&backend);
            let applied = tax_budget::store::migrate(&config.database).await?;
            println!(
                "{applied} migrations applied to {}",
                config.database.describe()
            );
        }
        Command::RebuildAggregates { backend } => {
            let _telemetry = init_logging_to_stderr(&backend)?;
            let app = App::start(Config::maintenance(&backend)).await?;
            // Each step of the rebuild is SQL that reports nothing until it ends: progress
            // by steps, with an ETA from their usual shares.
            let progress = StepProgress::start(
                "rebuild-aggregates",
                "recomputing the summary over every submission",
            );
            let rebuilt = app.rebuild_aggregates_showing(progress.reporter()).await;
            let took = progress.finish();
            let snapshot = rebuilt?;
            println!(
                "summary rebuilt: version {}, {} submissions in {:.2} s",
                snapshot.version,
                snapshot.total_submissions,
                took.as_secs_f64()
            );
            app.shutdown.cancel();
        }
        Command::Verify { backend } => {
            let _telemetry = init_logging(&backend)?;
            return Ok(match verify(&Config::maintenance(&backend)).await {
                Ok(report) => {
                    println!("{report}");
                    if report.is_consistent() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(VERIFY_INCONSISTENT)
                    }
                }
                Err(error) => {
                    eprintln!("verify: no verdict: {error:#}");
                    ExitCode::from(VERIFY_NO_VERDICT)
                }
            });
        }
        Command::Stats { backend, json } => {
            let _telemetry = init_logging_to_stderr(&backend)?;
            let stats = stats(&Config::maintenance(&backend)).await?;
            if json {
                println!("{}", serde_json::to_string(&stats)?);
            } else {
                print!("{stats}");
            }
        }
        Command::Seed {
            backend,
            seed: args,
        } => {
            let _telemetry = init_logging_to_stderr(&backend)?;
            println!("{}", seed(&backend, &args).await?);
        }
        Command::Cache {
            command: CacheCommand::Reset { backend },
        } => {
            let _telemetry = init_logging(&backend)?;
            println!("{}", reset_cache(&Config::maintenance(&backend)).await?);
        }
        Command::Schema => print!("{}", tax_budget::graphql::sdl()),
    }
    Ok(ExitCode::SUCCESS)
}
