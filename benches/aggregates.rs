//! Read and write figures for the aggregate pipeline, printed as a table.
//!
//!     cargo bench --bench aggregates                     # SQLite + in-process cache
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1/postgres \
//!     BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench aggregates
//!
//! `BENCH_SUBMISSIONS` (default 1000000) submissions are seeded by bulk SQL, folded by a
//! rebuild, then `aggregates` is read over HTTP from each tier, before and after seeding:
//! the cache and summary tiers should not care how many submissions exist; live SQL does.
//! Finally `BENCH_WRITES` (default 5000) submissions go through the API to measure writes and
//! the fold behind them. On SQLite the same writes then run on two fresh files, once with
//! `SQLITE_SYNCHRONOUS=normal` and once with the default `full`, to show what durability costs.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tax_budget::app::{App, Server, ServerOptions};
use tax_budget::config::{Config, DatabaseUrl, SqliteSync};

use common::{env_number, percentile, post_graphql, scratch_dir, BenchDatabase};

const AGGREGATES: &str =
    "{ aggregates { version totalSubmissions source categories { averagePercentage } } }";

struct Bench {
    app: Arc<App>,
    url: String,
    http: reqwest::Client,
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

impl Bench {
    async fn read(&self) -> Value {
        let body = post_graphql(&self.http, &self.url, &json!({ "query": AGGREGATES })).await;
        body["data"]["aggregates"].clone()
    }

    /// Sequential reads of one tier; `prepare` runs before each read, untimed.
    async fn reads(&self, tier: &str, count: usize, seeded: usize) {
        let mut times = Vec::with_capacity(count);
        for _ in 0..count {
            match tier {
                "SUMMARY" => self.app.cache.invalidate().await.expect("invalidate"),
                "LIVE" => {
                    self.app.store.mark_summary_stale().await.expect("stale");
                    self.app.cache.invalidate().await.expect("invalidate");
                }
                _ => {}
            }
            let started = Instant::now();
            let snapshot = self.read().await;
            times.push(started.elapsed());
            assert_eq!(snapshot["source"], tier, "read came from another tier");
        }
        if tier == "LIVE" {
            // Put the summary back in service.
            self.app.rebuild_aggregates().await.expect("rebuild");
        }
        times.sort();
        println!(
            "| {seeded:>11} | {tier:<7} | {count:>5} | {:>10} | {:>10} | {:>10} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(times.iter().sum::<Duration>() / count as u32),
        );
    }

    async fn concurrent_cache_reads(&self, total: usize, concurrency: usize) {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (http, url, next) = (self.http.clone(), self.url.clone(), next.clone());
                tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        http.post(&url)
                            .json(&json!({ "query": AGGREGATES }))
                            .send()
                            .await
                            .expect("request")
                            .bytes()
                            .await
                            .expect("body");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("reader");
        }
        let elapsed = started.elapsed();
        println!(
            "cache-tier throughput: {total} reads by {concurrency} clients in {:.2} s = {:.0} reads/s",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64()
        );
    }

    /// Returns submissions per second.
    async fn writes(&self, total: usize, concurrency: usize) -> f64 {
        let before = self.read().await["totalSubmissions"].as_i64().unwrap_or(0);
        let allocations: Vec<Value> = (1..=10)
            .map(|id| json!({ "categoryId": id.to_string(), "percentage": 10.0 }))
            .collect();
        let body = json!({
            "query": "mutation($i: SubmitAllocationInput!) { submitAllocation(input: $i) { submission { id } } }",
            "variables": { "i": { "allocations": allocations } }
        });
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (http, url, next, body) = (
                    self.http.clone(),
                    self.url.clone(),
                    next.clone(),
                    body.clone(),
                );
                tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        let reply: Value = http
                            .post(&url)
                            .json(&body)
                            .send()
                            .await
                            .expect("request")
                            .json()
                            .await
                            .expect("json");
                        assert!(reply["errors"].is_null(), "{reply}");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("writer");
        }
        let written = started.elapsed();
        let target = before + total as i64;
        while self.read().await["totalSubmissions"].as_i64() != Some(target) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let folded = started.elapsed();
        println!(
            "writes: {total} submissions by {concurrency} clients in {:.2} s = {:.0} submissions/s; \
             all folded and visible after {:.2} s",
            written.as_secs_f64(),
            total as f64 / written.as_secs_f64(),
            folded.as_secs_f64()
        );
        total as f64 / written.as_secs_f64()
    }
}

/// Serves `config` on a random port and returns a bench client for it.
async fn serve(config: Config) -> (Bench, Server) {
    let app = App::start(config).await.expect("start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = Server::spawn(app.clone(), listener, ServerOptions::default()).expect("serve");
    let bench = Bench {
        url: format!("http://{}/graphql", server.addr),
        app,
        http: reqwest::Client::new(),
    };
    (bench, server)
}

/// The same writes on two fresh SQLite files, `normal` first, then `full`.
async fn sqlite_durability(writes: usize) {
    let mut rates = Vec::new();
    for sync in [SqliteSync::Normal, SqliteSync::Full] {
        let dir = scratch_dir();
        let mut config =
            Config::for_database(DatabaseUrl::Sqlite(dir.path().join("bench.sqlite3")));
        config.sqlite_synchronous = sync;
        let (bench, server) = serve(config).await;
        print!("SQLITE_SYNCHRONOUS={sync:?}: ");
        rates.push(bench.writes(writes, 32).await);
        server.shutdown(Duration::from_secs(5)).await;
    }
    println!(
        "durability: FULL writes at {:.2}x the rate of NORMAL ({:.0} vs {:.0} submissions/s)",
        rates[1] / rates[0],
        rates[1],
        rates[0]
    );
}

const PG_SEED: &str = "
INSERT INTO voters (id, token_hash, created_at)
  VALUES ('00000000-0000-4000-8000-000000000000', 'bench', now()) ON CONFLICT DO NOTHING;
INSERT INTO submissions (id, voter_id, created_at)
  SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid,
         '00000000-0000-4000-8000-000000000000', now()
  FROM generate_series(1, {N}) n;
INSERT INTO allocations (submission_id, category_id, hundredths)
  SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, c.id,
         CASE WHEN c.id = 1 + n % 10 THEN 1900 ELSE 900 END
  FROM generate_series(1, {N}) n CROSS JOIN categories c;
ANALYZE;";

const SQLITE_SEED: &str = "
INSERT OR IGNORE INTO voters (id, token_hash, created_at)
  VALUES ('00000000-0000-4000-8000-000000000000', 'bench', '2026-01-01T00:00:00.000000Z');
INSERT INTO submissions (id, voter_id, created_at)
  WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {N})
  SELECT printf('00000000-0000-4000-8000-%012x', n), '00000000-0000-4000-8000-000000000000',
         '2026-01-01T00:00:00.000000Z' FROM seq;
INSERT INTO allocations (submission_id, category_id, hundredths)
  WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {N})
  SELECT printf('00000000-0000-4000-8000-%012x', n), c.id,
         CASE WHEN c.id = 1 + n % 10 THEN 1900 ELSE 900 END
  FROM seq CROSS JOIN categories c;
ANALYZE;";

async fn seed(database: &DatabaseUrl, n: usize) {
    let sql = match database {
        DatabaseUrl::Postgres(_) => PG_SEED,
        DatabaseUrl::Sqlite(_) => SQLITE_SEED,
    };
    common::execute(database, sql.replace("{N}", &n.to_string())).await;
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs benches with `--bench` absent: keep that quick and quiet.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let submissions = env_number("BENCH_SUBMISSIONS", 1_000_000);
    let writes = env_number("BENCH_WRITES", 5_000);
    let redis = std::env::var("BENCH_REDIS_URL").ok();
    let bench_database = BenchDatabase::create().await;
    let database = bench_database.url.clone();
    let mut config = Config::for_database(database.clone());
    config.redis_url = redis.clone();
    config.redis_key_prefix = format!("tb-bench-{}:", uuid::Uuid::new_v4().simple());
    let (bench, server) = serve(config).await;
    let app = bench.app.clone();

    println!(
        "backend: {} + {}",
        database.describe(),
        if redis.is_some() {
            "Redis"
        } else {
            "in-process cache"
        }
    );
    println!("| submissions | tier    | reads |        p50 |        p99 |       mean |");
    println!("|-------------|---------|-------|------------|------------|------------|");
    // A fresh database has no summary row until the first fold; create it.
    app.rebuild_aggregates().await.expect("rebuild");
    bench.read().await;
    bench.reads("CACHE", 2000, 0).await;
    bench.reads("SUMMARY", 300, 0).await;
    bench.reads("LIVE", 20, 0).await;

    let started = Instant::now();
    seed(&database, submissions).await;
    let seeded = started.elapsed();
    let started = Instant::now();
    app.rebuild_aggregates().await.expect("rebuild");
    let rebuilt = started.elapsed();

    bench.reads("CACHE", 2000, submissions).await;
    bench.reads("SUMMARY", 300, submissions).await;
    bench.reads("LIVE", 5, submissions).await;
    println!(
        "seeding {submissions} submissions by bulk SQL: {:.1} s; rebuild-aggregates over them: {:.2} s",
        seeded.as_secs_f64(),
        rebuilt.as_secs_f64()
    );
    bench.concurrent_cache_reads(20_000, 16).await;
    bench.writes(writes, 32).await;
    server.shutdown(Duration::from_secs(5)).await;
    // The cache's one key, under this run's prefix.
    let _ = app.cache.invalidate().await;
    if redis.is_none() {
        sqlite_durability(writes).await;
    }

    bench_database.remove().await;
}
