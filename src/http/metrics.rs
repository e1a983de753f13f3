//! `/metrics`: the process's counters (see [`crate::metrics`]), plus what is read at scrape
//! time — the outbox, the snapshot version of each tier, whether the database and Redis
//! answer, the pool — in the OpenMetrics text format.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::Utc;

use super::HttpState;

/// A scrape must answer even when a dependency hangs: each reading gets this long.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    sample(&state).await;
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        state.metrics.encode(),
    )
}

async fn sample(state: &HttpState) {
    let metrics = &state.metrics;
    let checks = &state.readiness;
    let (depth, oldest, summary, cached, ping) = tokio::join!(
        tokio::time::timeout(READ_TIMEOUT, checks.store.outbox_len()),
        tokio::time::timeout(READ_TIMEOUT, checks.store.outbox_oldest()),
        tokio::time::timeout(READ_TIMEOUT, checks.store.summary_snapshot()),
        tokio::time::timeout(READ_TIMEOUT, checks.cache.get()),
        tokio::time::timeout(READ_TIMEOUT, checks.store.ping()),
    );
    if let (Ok(Ok(depth)), Ok(Ok(oldest))) = (depth, oldest) {
        let age = oldest.map(|at| (Utc::now() - at).to_std().unwrap_or_default());
        metrics.observe_outbox(depth, age);
    }
    let version = |snapshot: Option<crate::domain::Snapshot>| snapshot.map(|s| s.version);
    metrics.observe_snapshot_version(
        "summary",
        summary.ok().and_then(Result::ok).and_then(version),
    );
    let cache_answered = matches!(cached, Ok(Ok(_)));
    metrics.observe_snapshot_version("cache", cached.ok().and_then(Result::ok).and_then(version));
    let feed = state.feed.current();
    metrics.observe_snapshot_version("feed", (feed.version >= 0).then_some(feed.version));
    metrics.observe_dependency("database", matches!(ping, Ok(Ok(()))));
    if let Some(redis) = &checks.redis {
        metrics.observe_dependency("redis", cache_answered && !redis.degraded());
    }
    metrics.observe_pool(checks.store.pool_usage());
}
