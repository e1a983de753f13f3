//! HTTP surface: routes, GraphQL over HTTP and WebSocket, health, GraphiQL, the web app.

mod documents;
mod graphql;
mod graphql_first;
mod health;
mod metrics;
mod pages;
mod poll_again;
mod read_cache;
mod request_id;
mod server;
mod share;
mod swap_map;
mod web;
mod websocket;

pub use health::Readiness;
pub use server::{serve, ConnectionLimits};
pub use share::SharedResults;
pub use web::{WebApp, CONTENT_SECURITY_POLICY};
pub use websocket::{Cohorts, WebSocketGate, WebSocketLimits};

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::routing::get;
use axum::BoxError;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{Service, ServiceBuilder};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::feed::SnapshotFeed;
use crate::graphql::{AppSchema, PersistedQueries, QueryLimits};
use crate::metrics::Metrics;
use graphql_first::GraphqlFirst;
use request_id::{RequestIdLayer, REQUEST_ID};

/// Far above any valid request (ten allocations), far below anything that could hurt.
const MAX_BODY_BYTES: usize = 64 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the API routes need: shared behind one `Arc`, so that a request clones a pointer,
/// not a dozen.
pub struct HttpState {
    pub schema: AppSchema,
    /// The schema for documents validated once (see [`crate::graphql::KeptDocument`]).
    pub validated_once: AppSchema,
    /// The documents of Automatic Persisted Queries, which a GET by hash alone runs.
    pub persisted: PersistedQueries,
    /// The newest snapshot, whose version makes the `ETag` of snapshot reads.
    pub feed: SnapshotFeed,
    /// Prepared answers to hot reads of the snapshot, when `--prepared-reads` is on.
    pub memo: Option<Arc<read_cache::Memo>>,
    /// Documents parsed before, by the hash of their text.
    pub documents: documents::Documents,
    /// The schema's limits, whose read budget prepared answers are charged to.
    pub limits: Arc<QueryLimits>,
    pub readiness: Arc<Readiness>,
    /// Cancelled at shutdown: WebSockets then close with 1001.
    pub shutdown: CancellationToken,
    /// Open WebSocket connections: the HTTP server does not track upgraded connections, and
    /// shutdown waits for these to send their close frames.
    pub connections: TaskTracker,
    pub websocket: Arc<WebSocketGate>,
    pub metrics: Metrics,
    /// Subscriptions shared by every socket that asks the same.
    pub cohorts: Arc<Cohorts<AppSchema>>,
}

/// CORS for the origins besides the server's own whose pages may call the API from the
/// browser. `None` when there are none: the app's own pages need no CORS, and a page of
/// another origin is refused by the browser when the answer carries no CORS headers, which
/// is what it gets without the layer. The layer would otherwise cost every request (a
/// `Vary` header built and the response's headers extended): a sixth of the instructions of
/// a prepared read.
fn cors(allowed_origins: &[String]) -> Option<CorsLayer> {
    if allowed_origins.is_empty() {
        return None;
    }
    let cors = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, REQUEST_ID])
        .expose_headers([REQUEST_ID]);
    if allowed_origins.iter().any(|o| o == "*") {
        return Some(cors.allow_origin(AllowOrigin::any()));
    }
    let origins: Vec<HeaderValue> = allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        cors.allow_origin(AllowOrigin::list(origins))
            .max_age(Duration::from_secs(600)),
    )
}

/// The whole HTTP surface: the API routes, then the web app's routes and its fallback (files,
/// else 404) for every other path, as one service for [`serve`] (a `Router` no longer: `POST
/// /graphql` is taken before it, see [`graphql_first`]).
pub fn router(
    state: HttpState,
    web: WebApp,
    with_metrics: bool,
) -> impl Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::http::Response<
        impl HttpBody<Data = Bytes, Error = impl Into<BoxError>> + Send,
    >,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::http::Response<impl HttpBody + Send>, Infallible>> + Send,
> + Clone
       + Send
       + 'static {
    let cors = cors(&state.websocket.limits().allowed_origins);
    let mut api = Router::new()
        .route(
            "/graphql",
            get(graphql::get_or_websocket).post(graphql::post),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if with_metrics {
        api = api.route("/metrics", get(metrics::metrics));
    }
    let state = Arc::new(state);
    let api = api.with_state(state.clone());
    // One stack, around the router and the route taken before it (see [`graphql_first`]).
    // Outermost first: the id is set before the span opens (which names it in every log line
    // of the request), and copied to the response.
    let middleware = ServiceBuilder::new()
        .layer(RequestIdLayer)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        uri = %request.uri(),
                        request_id = %id,
                    )
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .option_layer(cors)
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    middleware.service(GraphqlFirst {
        state,
        router: api.merge(web.routes()),
    })
}

/// `/metrics` alone, for an address of its own.
pub fn metrics_router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .with_state(Arc::new(state))
}
