//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: its backends answer).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::HttpState;
use crate::cache::SnapshotCache;
use crate::store::Store;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness checks.
pub struct Readiness {
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn SnapshotCache>,
    /// Without Redis the cache is in-process and always answers.
    pub redis_configured: bool,
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

pub async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    let checks = &state.readiness;
    let (database, cache) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, checks.store.ping()),
        tokio::time::timeout(CHECK_TIMEOUT, checks.cache.ping()),
    );
    let database = verdict(database);
    let cache = verdict(cache);
    let ready = database == "ok" && cache == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": database,
        "redis": if checks.redis_configured { cache } else { "not configured" },
    });
    (status, Json(body))
}
