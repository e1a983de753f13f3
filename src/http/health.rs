//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: its backends answer).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::HttpState;
use crate::cache::SnapshotCache;
use crate::redis::Redis;
use crate::store::Store;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness checks. Only the database is required: without Redis the service answers
/// from the summary and pushes within the process, so an instance must not be drained for it.
pub struct Readiness {
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn SnapshotCache>,
    /// `None` when Redis is not configured (the cache is then in-process).
    pub redis: Option<Redis>,
}

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

fn verdict<E: std::fmt::Display>(
    result: Result<Result<(), E>, tokio::time::error::Elapsed>,
) -> &'static str {
    match result {
        Ok(Ok(())) => "ok",
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check failed");
            "unavailable"
        }
        Err(_) => "timeout",
    }
}

pub async fn readyz(State(state): State<Arc<HttpState>>) -> (StatusCode, Json<Value>) {
    let checks = &state.readiness;
    let (database, cache) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, checks.store.ping()),
        tokio::time::timeout(CHECK_TIMEOUT, checks.cache.ping()),
    );
    let database = verdict(database);
    let redis = match &checks.redis {
        None => "not configured",
        Some(redis) if redis.degraded() => "degraded",
        Some(_) => match verdict(cache) {
            "ok" => "ok",
            _ => "degraded",
        },
    };
    let ready = database == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": database,
        "redis": redis,
    });
    (status, Json(body))
}
