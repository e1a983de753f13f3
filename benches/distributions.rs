//! Whether reading distributions and trends stays as cheap at a million submissions as at a
//! thousand.
//!
//!     cargo bench --bench distributions                  # SQLite + in-process cache
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1/postgres \
//!     BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench distributions
//!
//! Two servers run in this process, each on a database of its own seeded by bulk SQL with the
//! same kind of data over the same 30 days: `BENCH_SMALL` (default 1000) and `BENCH_SUBMISSIONS`
//! (default 1000000) submissions, with varied values (up to 10,001 distinct ones per category).
//! Then each query below is sent to one server and then the other, `BENCH_ROUNDS` times
//! (default 2000), each round in the other order, so that both meet the same moments of this
//! shared machine. The figure is the
//! ratio of the large database's median latency to the small one's, beside a reference read in
//! the same rounds: the plain `aggregates` query, which reads one cached snapshot.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tax_budget::app::{App, Server, ServerOptions};
use tax_budget::config::{Config, DatabaseUrl};

use common::{env_number, percentile, post_graphql, BenchDatabase};

/// (name, query) of every read compared.
const QUERIES: [(&str, &str); 4] = [
    (
        "aggregates (reference)",
        "{ aggregates { version totalSubmissions categories { averagePercentage } } }",
    ),
    (
        "distribution",
        "{ aggregates { version categories { median quartiles { q1 q3 } standardDeviation \
         zeroShare histogram(buckets: 20) { count } } } }",
    ),
    (
        "one-day trend (HOUR)",
        "{ aggregatesTrend(bucket: HOUR, from: \"2026-10-15T00:00:00Z\", \
         to: \"2026-10-15T23:59:59Z\") { version points { totalSubmissions \
         categories { averagePercentage } } } }",
    ),
    (
        "percentile ranks",
        "{ submission(id: \"00000000-0000-4000-8000-000000000001\") { allocations { percentileRank } } }",
    ),
];

/// One category's value in submission `n`, in hundredths: spread over 0..=999 for categories
/// 1 to 9 by a multiplicative hash; category 10 takes what is left of 100 %, so every split
/// adds up. Written out as SQL for both backends (integers only, the same arithmetic).
fn value_sql(category: u32) -> String {
    let hash = |c: u32| {
        format!(
            "((n * {}) % 4294967296 % 1000)",
            2_654_435_761u64 + 2 * u64::from(c)
        )
    };
    if category < 10 {
        hash(category)
    } else {
        let sum: Vec<String> = (1..10).map(hash).collect();
        format!("(10000 - ({}))", sum.join(" + "))
    }
}

fn allocation_values_sql() -> String {
    let cases: Vec<String> = (1..=10)
        .map(|c| format!("WHEN {c} THEN {}", value_sql(c)))
        .collect();
    format!("CASE c.id {} END", cases.join(" "))
}

/// The minute of submission `n` within the 30 days from 2026-10-01: the first 720 cover every
/// hour of every day once, so that even the small set has a point in each hour bucket.
const MINUTE_SQL: &str = "((n % 30) * 1440 + ((n / 30) % 24) * 60 + (n / 720) % 60)";

/// Submissions 1..=N, one voter, made over the 30 days from 2026-10-01 ([`MINUTE_SQL`]).
fn seed_sql(database: &DatabaseUrl, n: usize) -> String {
    let values = allocation_values_sql();
    let minute = MINUTE_SQL;
    match database {
        DatabaseUrl::Postgres(_) => format!(
            "INSERT INTO voters (id, token_hash, created_at)
               VALUES ('00000000-0000-4000-8000-000000000000', 'bench', now());
             INSERT INTO submissions (id, voter_id, created_at)
               SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid,
                      '00000000-0000-4000-8000-000000000000',
                      TIMESTAMPTZ '2026-10-01T00:00:00Z' + {minute} * INTERVAL '1 minute'
               FROM generate_series(1::BIGINT, {n}) n;
             INSERT INTO allocations (submission_id, category_id, hundredths)
               SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, c.id,
                      {values}
               FROM generate_series(1::BIGINT, {n}) n CROSS JOIN categories c;
             ANALYZE;"
        ),
        DatabaseUrl::Sqlite(_) => format!(
            "INSERT INTO voters (id, token_hash, created_at)
               VALUES ('00000000-0000-4000-8000-000000000000', 'bench', '2026-10-01T00:00:00.000000Z');
             INSERT INTO submissions (id, voter_id, created_at)
               WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {n})
               SELECT printf('00000000-0000-4000-8000-%012x', n),
                      '00000000-0000-4000-8000-000000000000',
                      strftime('%Y-%m-%dT%H:%M:%S.000000Z', '2026-10-01',
                               '+' || {minute} || ' minutes')
               FROM seq;
             INSERT INTO allocations (submission_id, category_id, hundredths)
               WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {n})
               SELECT printf('00000000-0000-4000-8000-%012x', n), c.id, {values}
               FROM seq CROSS JOIN categories c;
             ANALYZE;"
        ),
    }
}

/// A seeded database behind a server of its own.
struct Seeded {
    submissions: usize,
    database: BenchDatabase,
    app: Arc<App>,
    server: Server,
    url: String,
}

async fn seeded(submissions: usize, redis: Option<String>) -> Seeded {
    let database = BenchDatabase::create().await;
    let mut config = Config::for_database(database.url.clone());
    config.redis_url = redis;
    config.redis_key_prefix = format!("tb-bench-{}:", uuid::Uuid::new_v4().simple());
    let app = App::start(config).await.expect("start");
    let started = Instant::now();
    common::execute(&database.url, seed_sql(&database.url, submissions)).await;
    app.rebuild_aggregates().await.expect("rebuild");
    println!(
        "seeded and rebuilt {submissions} submissions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = Server::spawn(app.clone(), listener, ServerOptions::default()).expect("serve");
    Seeded {
        submissions,
        url: format!("http://{}/graphql", server.addr),
        database,
        app,
        server,
    }
}

async fn read(http: &reqwest::Client, url: &str, query: &str) -> Duration {
    let started = Instant::now();
    let body = post_graphql(http, url, &json!({ "query": query })).await;
    let elapsed = started.elapsed();
    assert!(body["errors"].is_null(), "{body}");
    elapsed
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs benches with `--bench` absent: keep that quick and quiet.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let small = env_number("BENCH_SMALL", 1_000);
    let large = env_number("BENCH_SUBMISSIONS", 1_000_000);
    let rounds = env_number("BENCH_ROUNDS", 2_000);
    let redis = std::env::var("BENCH_REDIS_URL").ok();
    let sets = [
        seeded(small, redis.clone()).await,
        seeded(large, redis).await,
    ];
    println!(
        "backend: {} + {}",
        sets[0].database.url.describe(),
        if sets[0].app.config.redis_url.is_some() {
            "Redis"
        } else {
            "in-process cache"
        }
    );
    let http = reqwest::Client::new();
    // Warm both: the first detailed read of a version loads its distributions.
    for set in &sets {
        for (_, query) in QUERIES {
            read(&http, &set.url, query).await;
        }
    }
    let mut times = vec![[Vec::with_capacity(rounds), Vec::with_capacity(rounds)]; QUERIES.len()];
    for round in 0..rounds {
        for (q, (_, query)) in QUERIES.iter().enumerate() {
            // Which server goes first alternates, so that neither always meets the caches the
            // other just warmed.
            for s in [round % 2, 1 - round % 2] {
                times[q][s].push(read(&http, &sets[s].url, query).await);
            }
        }
    }
    println!(
        "| read                   | p50 at {small:>7} | p50 at {large:>7} | ratio | p99 at {small:>7} | p99 at {large:>7} |"
    );
    println!("|------------------------|----------------|----------------|-------|----------------|----------------|");
    for (q, (name, _)) in QUERIES.iter().enumerate() {
        for set in times[q].iter_mut() {
            set.sort();
        }
        let p50 = [percentile(&times[q][0], 0.5), percentile(&times[q][1], 0.5)];
        let p99 = [
            percentile(&times[q][0], 0.99),
            percentile(&times[q][1], 0.99),
        ];
        println!(
            "| {name:<22} | {:>14} | {:>14} | {:>5.3} | {:>14} | {:>14} |",
            ms(p50[0]),
            ms(p50[1]),
            p50[1].as_secs_f64() / p50[0].as_secs_f64(),
            ms(p99[0]),
            ms(p99[1]),
        );
    }
    for set in sets {
        println!("({} submissions served)", set.submissions);
        set.server.shutdown(Duration::from_secs(5)).await;
        // The cache's one key, under this run's prefix.
        let _ = set.app.cache.invalidate().await;
        set.database.remove().await;
    }
}
