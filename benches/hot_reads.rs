//! The rate of a hot read answered from prepared bytes, beside a minimal axum handler that
//! returns the same bytes, measured in the same run (the handler is the ceiling: routing,
//! HTTP and the client, with no GraphQL at all).
//!
//!     cargo bench --bench hot_reads
//!
//! `BENCH_SECONDS` (default 3) per server, `BENCH_CONCURRENCY` (default 32) clients, SQLite
//! with the in-process cache. The query is the dashboard's, by POST.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tax_budget::app::{App, Server, ServerOptions};
use tax_budget::config::{Config, DatabaseUrl};

const DASHBOARD: &str = "query Dashboard { aggregates { version totalSubmissions updatedAt source \
     categories { category { id slug name color displayOrder } averagePercentage } } }";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// POSTs the dashboard query to `url` from `concurrency` clients for `duration`; requests/s.
async fn rate(url: &str, concurrency: usize, duration: Duration, expect: &Bytes) -> f64 {
    let http = reqwest::Client::new();
    let body = json!({ "query": DASHBOARD, "operationName": "Dashboard" }).to_string();
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, body, done) =
                (http.clone(), url.to_owned(), body.clone(), done.clone());
            let expect = expect.clone();
            tokio::spawn(async move {
                while started.elapsed() < duration {
                    let reply = http
                        .post(&url)
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("request")
                        .bytes()
                        .await
                        .expect("body");
                    assert_eq!(reply.len(), expect.len(), "another answer");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs benches with `--bench` absent: keep that quick and quiet.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let seconds = env_number("BENCH_SECONDS", 3) as u64;
    let concurrency = env_number("BENCH_CONCURRENCY", 32);
    let dir = std::env::temp_dir().join(format!("tax-budget-bench-{}", uuid::Uuid::new_v4()));
    let mut config = Config::for_database(DatabaseUrl::Sqlite(dir.join("bench.sqlite3")));
    config.queries.prepared_reads = true;
    let app = App::start(config).await.expect("start");
    app.rebuild_aggregates().await.expect("rebuild");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = Server::spawn(app.clone(), listener, ServerOptions::default()).expect("serve");
    let url = format!("http://{}/graphql", server.addr);

    // Warm up until the answer comes from the cache tier, and is then prepared.
    let http = reqwest::Client::new();
    let body = json!({ "query": DASHBOARD, "operationName": "Dashboard" });
    let mut prepared = Bytes::new();
    for _ in 0..3 {
        prepared = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .expect("request")
            .bytes()
            .await
            .expect("body");
    }
    let answer: Value = serde_json::from_slice(&prepared).expect("json");
    assert_eq!(answer["data"]["aggregates"]["source"], "CACHE", "{answer}");

    // The ceiling: the same bytes from a handler that does nothing else.
    let bytes = prepared.clone();
    let plain = Router::new().route(
        "/graphql",
        post(move || {
            let bytes = bytes.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/graphql-response+json; charset=utf-8",
                    )],
                    bytes,
                )
            }
        }),
    );
    let plain_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let plain_url = format!(
        "http://{}/graphql",
        plain_listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(plain_listener, plain).await });

    let duration = Duration::from_secs(seconds);
    let hot = rate(&url, concurrency, duration, &prepared).await;
    let ceiling = rate(&plain_url, concurrency, duration, &prepared).await;
    println!(
        "{concurrency} clients, {seconds} s each, {} bytes per answer",
        prepared.len()
    );
    println!("prepared dashboard query (POST /graphql): {hot:.0} requests/s");
    println!("minimal axum handler, same bytes:        {ceiling:.0} requests/s");
    println!("ratio: {:.0} %", 100.0 * hot / ceiling);
    let _ = std::fs::remove_dir_all(dir);
}
