//! HTTP surface: routes, GraphQL over HTTP and WebSocket, health, GraphiQL.

mod graphql;
mod health;
mod pages;
mod websocket;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::app::App;
use crate::graphql::{build_schema, AppSchema};

/// Far above any valid request (ten allocations), far below anything that could hurt.
const MAX_BODY_BYTES: usize = 64 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct HttpState {
    pub app: Arc<App>,
    pub schema: AppSchema,
}

pub fn router(app: Arc<App>) -> Router {
    let state = HttpState {
        schema: build_schema(app.clone()),
        app,
    };
    Router::new()
        .route(
            "/graphql",
            get(graphql::get_or_websocket).post(graphql::post),
        )
        .route("/graphiql", get(pages::graphiql))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/", get(pages::index))
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
        .with_state(state)
}
