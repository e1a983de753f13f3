//! The rate of a hot read answered from prepared bytes, beside a minimal axum handler that
//! returns the same bytes, measured in the same run (the handler is the ceiling: routing,
//! HTTP and the client, with no GraphQL at all).
//!
//!     cargo bench --bench hot_reads
//!
//! `BENCH_SECONDS` (default 3) per server and load, `BENCH_CONCURRENCY` (default `32,64`: a
//! run per number of connections), SQLite with the in-process cache. The query is the
//! dashboard's, by POST. Two load generators, each against both servers: reqwest clients in
//! this process (they share its runtime with the servers), and, when `wrk` is on the `PATH`
//! (Debian's `wrk`), wrk in a process of its own with one thread: the load generator the
//! figures in the issue were taken with, which costs the servers less of the two cores.

mod common;

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tax_budget::app::{App, Server, ServerOptions};
use tax_budget::config::{Config, DatabaseUrl};

use common::wrk::{self, Figures};
use common::{env_number, percentile, scratch_dir};

const DASHBOARD: &str = "query Dashboard { aggregates { version totalSubmissions updatedAt source \
     categories { category { id slug name color displayOrder } averagePercentage } } }";

/// POSTs the dashboard query to `url` from `concurrency` clients for `duration`.
async fn rate(
    url: &str,
    body: &str,
    concurrency: usize,
    duration: Duration,
    expect: &Bytes,
) -> Figures {
    let http = reqwest::Client::new();
    let body = body.to_owned();
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
        requests: latencies.len() as u64,
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
    let concurrencies: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "32,64".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let dir = scratch_dir();
    let mut config = Config::for_database(DatabaseUrl::Sqlite(dir.path().join("bench.sqlite3")));
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
    let body = json!({ "query": DASHBOARD, "operationName": "Dashboard" }).to_string();
    let mut prepared = Bytes::new();
    for _ in 0..3 {
        prepared = http
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.clone())
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
    let script = wrk::post_script(dir.path(), "dashboard.lua", &body, None);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("{seconds} s per run, {} bytes per answer", prepared.len());
    println!(
        "| load | connections | prepared dashboard POST | p50 / p99 | minimal axum handler, same bytes | p50 / p99 | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for concurrency in concurrencies {
        let runs = [
            (
                "reqwest, in process",
                Some(rate(&url, &body, concurrency, duration, &prepared).await),
                Some(rate(&plain_url, &body, concurrency, duration, &prepared).await),
            ),
            (
                "wrk -t1, own process",
                wrk::run(&url, concurrency, duration, &script).await,
                wrk::run(&plain_url, concurrency, duration, &script).await,
            ),
        ];
        for (load, hot, ceiling) in runs {
            let (Some(hot), Some(ceiling)) = (hot, ceiling) else {
                println!("| {load} | {concurrency} | skipped: wrk not found | | | | |");
                continue;
            };
            println!(
                "| {load} | {concurrency} | {:.0} req/s | {:.2} / {:.2} ms | {:.0} req/s | {:.2} / {:.2} ms | {:.0} % |",
                hot.rate,
                ms(hot.p50),
                ms(hot.p99),
                ceiling.rate,
                ms(ceiling.p50),
                ms(ceiling.p99),
                100.0 * hot.rate / ceiling.rate
            );
        }
    }
}
