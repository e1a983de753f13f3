//! The `tax-budget` command line: serve, worker, migrate, rebuild-aggregates, verify,
//! cache reset, schema.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tax_budget::app::{App, Server, ServerOptions};
use tax_budget::cache::CacheError;
use tax_budget::config::{BackendArgs, Config, DatabaseUrl, ServeArgs, WorkerArgs};
use tax_budget::telemetry::{self, Telemetry};
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
    let endpoint = backend
        .otlp_endpoint
        .as_deref()
        .filter(|v| !v.trim().is_empty());
    Ok(telemetry::init(backend.log_format, endpoint)?)
}

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

/// Connects to the database (without migrating: a check must not change what it checks) and
/// the shared cache, and compares them.
async fn verify(config: &Config) -> anyhow::Result<Report> {
    // Connecting would create an empty SQLite file where the path is wrong.
    if let DatabaseUrl::Sqlite(path) = &config.database {
        anyhow::ensure!(path.exists(), "no SQLite database at {}", path.display());
    }
    let store =
        tax_budget::store::connect(&config.database, 1, config.sqlite_synchronous, None).await?;
    let cache = tax_budget::app::shared_cache(config).await?;
    Ok(tax_budget::verify::verify(store.as_ref(), cache.as_deref()).await?)
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
            let _telemetry = init_logging(&backend)?;
            let app = App::start(Config::serve(&backend, &worker, &serve)).await?;
            let options = ServerOptions {
                run_worker: serve.run_worker,
                web_dir: serve.web_dir,
            };
            let server = Server::bind(app, serve.bind, options).await?;
            println!(
                "tax-budget listening on http://{}/ (GraphiQL: http://{}/graphiql)",
                server.addr, server.addr
            );
            shutdown_signal().await;
            server
                .shutdown(Duration::from_secs(serve.shutdown_grace_secs))
                .await;
        }
        Command::Worker { backend, worker } => {
            let _telemetry = init_logging(&backend)?;
            let app = App::start(Config::worker(&backend, &worker)).await?;
            let running = app.spawn_worker();
            shutdown_signal().await;
            app.shutdown.cancel();
            running.await.context("worker task")?;
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
            let _telemetry = init_logging(&backend)?;
            let app = App::start(Config::maintenance(&backend)).await?;
            let snapshot = app.rebuild_aggregates().await?;
            println!(
                "summary rebuilt: version {}, {} submissions",
                snapshot.version, snapshot.total_submissions
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
