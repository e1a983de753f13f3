//! The `tax-budget` command line: serve, worker, migrate, rebuild-aggregates, schema.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tax_budget::app::{App, Server, ServerOptions};
use tax_budget::config::{BackendArgs, Config, LogFormat, ServeArgs, WorkerArgs};
use tracing_subscriber::EnvFilter;

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
        #[command(flatten)]
        serve: ServeArgs,
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
    /// Print the GraphQL schema (SDL), as published in schema.graphql.
    Schema,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            serve,
            backend,
            worker,
        } => {
            init_logging(backend.log_format);
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
            init_logging(backend.log_format);
            let app = App::start(Config::worker(&backend, &worker)).await?;
            let running = app.spawn_worker();
            shutdown_signal().await;
            app.shutdown.cancel();
            running.await.context("worker task")?;
        }
        Command::Migrate { backend } => {
            init_logging(backend.log_format);
            let config = Config::maintenance(&backend);
            let applied = tax_budget::store::migrate(&config.database).await?;
            println!(
                "{applied} migrations applied to {}",
                config.database.describe()
            );
        }
        Command::RebuildAggregates { backend } => {
            init_logging(backend.log_format);
            let app = App::start(Config::maintenance(&backend)).await?;
            let snapshot = app.rebuild_aggregates().await?;
            println!(
                "summary rebuilt: version {}, {} submissions",
                snapshot.version, snapshot.total_submissions
            );
            app.shutdown.cancel();
        }
        Command::Schema => print!("{}", tax_budget::graphql::sdl()),
    }
    Ok(())
}
