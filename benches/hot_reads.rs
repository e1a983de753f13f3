//! The rate of a hot read answered from prepared bytes, beside a minimal axum handler that
//! returns the same bytes, measured in the same run (the handler is the ceiling: routing,
//! HTTP and the client, with no GraphQL at all).
//!
//!     cargo bench --bench hot_reads
//!
//! `BENCH_SECONDS` (default 3) per server, `BENCH_CONCURRENCY` (default 32) clients, SQLite
//! with the in-process cache. The query is the dashboard's, by POST.

mod common;

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tax_budget::app::{App, Server, ServerOptions};
use tax_budget::config::{Config, DatabaseUrl};

use common::{env_number, percentile};

const DASHBOARD: &str = "query Dashboard { aggregates { version totalSubmissions updatedAt source \
     categories { category { id slug name color displayOrder } averagePercentage } } }";

/// What one server did: requests per second, and the latencies' p50 and p99.
struct Figures {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

/// POSTs the dashboard query to `url` from `concurrency` clients for `duration`.
async fn rate(url: &str, concurrency: usize, duration: Duration, expect: &Bytes) -> Figures {
    let http = reqwest::Client::new();
    let body = json!({ "query": DASHBOARD, "operationName": "Dashboard" }).to_string();
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, body) = (http.clone(), url.to_owned(), body.clone());
            let expect = expect.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while started.elapsed() < duration {
                    let at = Instant::now();
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
                    latencies.push(at.elapsed());
                    assert_eq!(reply.len(), expect.len(), "another answer");
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client"));
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    Figures {
        rate,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
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
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (name, figures) in [
        ("prepared dashboard query (POST /graphql)", &hot),
        ("minimal axum handler, same bytes", &ceiling),
    ] {
        println!(
            "{name:<42} {:>7.0} requests/s  p50 {:.2} ms  p99 {:.2} ms",
            figures.rate,
            ms(figures.p50),
            ms(figures.p99)
        );
    }
    println!("ratio: {:.0} %", 100.0 * hot.rate / ceiling.rate);
    let _ = std::fs::remove_dir_all(dir);
}
