//! HTTP surface: routes, GraphQL over HTTP and WebSocket, health, GraphiQL, the web app.

mod graphql;
mod health;
mod pages;
mod server;
mod web;
mod websocket;

pub use health::Readiness;
pub use server::{serve, ConnectionLimits};
pub use web::{WebApp, CONTENT_SECURITY_POLICY};
pub use websocket::{WebSocketGate, WebSocketLimits};

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::graphql::AppSchema;

/// Far above any valid request (ten allocations), far below anything that could hurt.
const MAX_BODY_BYTES: usize = 64 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the API routes need.
#[derive(Clone)]
pub struct HttpState {
    pub schema: AppSchema,
    pub readiness: Arc<Readiness>,
    /// Cancelled at shutdown: WebSockets then close with 1001.
    pub shutdown: CancellationToken,
    /// Open WebSocket connections: the HTTP server does not track upgraded connections, and
    /// shutdown waits for these to send their close frames.
    pub connections: TaskTracker,
    pub websocket: Arc<WebSocketGate>,
}

/// The whole HTTP surface: the API routes, then the web app's routes and its fallback (files,
/// else 404) for every other path.
pub fn router(state: HttpState, web: WebApp) -> Router {
    let api = Router::new()
        .route(
            "/graphql",
            get(graphql::get_or_websocket).post(graphql::post),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state);
    api.merge(web.routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}
