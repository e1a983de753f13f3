//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: its backends answer).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::HttpState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

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
    let app = &state.app;
    let (database, cache) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, app.store.ping()),
        tokio::time::timeout(CHECK_TIMEOUT, app.cache.ping()),
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
        "redis": if app.uses_redis() { cache } else { "not configured" },
    });
    (status, Json(body))
}
