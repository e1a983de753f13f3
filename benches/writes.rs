//! Sustained `submitAllocation` rate with group commit, beside the same transaction issued by
//! hand through the same pool, one commit per submission (what any server that commits once
//! per request is capped at), in the same run.
//!
//!     cargo bench --bench writes                         # SQLite file (synchronous=FULL)
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1/postgres cargo bench --bench writes
//!
//! `BENCH_SECONDS` (default 5) per run, `BENCH_CONCURRENCY` (default 32) clients. Four runs on
//! one database: by hand (`Store::submit`, no HTTP, no GraphQL), group commit in process
//! (`Submissions::submit`, what the resolver calls: checks, voter, group commit; no HTTP, no
//! GraphQL), over HTTP with group commit (the defaults), and over HTTP with group commit off
//! (a window of 0 and batches of 1). The in-process row separates what batching gives from
//! what the transport costs on the same two cores. While
//! the HTTP runs write, the outbox is sampled: its deepest point shows whether the fold keeps
//! up (it should stay below two fold batches). When `wrk` is installed (Debian's `wrk`), each
//! HTTP run is followed by the same load from wrk in a process of its own, whose answers are
//! checked against the rows stored meanwhile, and the group-commit run by a third with every
//! submission sent as one voter, by its token. Each load generator has its own deepest
//! outbox: the reqwest clients share the server's process and its worker's two threads, wrk
//! does not. On PostgreSQL, when `pgbench` is installed, the
//! by-hand run is followed by the same transaction written as plain statements and sent by
//! pgbench (simple protocol, one commit each): the reference the figures were taken
//! with. The app's own statement, kept prepared per connection, is the stronger of the two.
//! A second pgbench run writes 20 submissions per transaction in one statement: the ceiling
//! batching alone reaches on that database, with no server in front (the stretch).

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tax_budget::app::{App, Server, ServerOptions};
use tax_budget::config::{Config, GroupCommitSettings};
use tax_budget::domain::{validate_allocation, RawAllocation};
use tax_budget::store::{NewSubmission, VoterRef};
use tax_budget::submissions::Credentials;
use tax_budget::voter_token::VoterToken;

use common::{env_number, percentile, pgbench, post_graphql, scratch_dir, wrk, BenchDatabase};
use tax_budget::config::DatabaseUrl;

const SUBMIT: &str =
    "mutation($i: SubmitAllocationInput!) { submitAllocation(input: $i) { submission { id } } }";

/// Submissions per transaction in the batched pgbench run: the issue's "batched 20 at a
/// time by hand".
const PGBENCH_SUBMISSIONS_PER_TRANSACTION: usize = 20;

/// One run's figures.
struct Run {
    rate: f64,
    p50: Duration,
    p99: Duration,
    deepest_outbox: Option<i64>,
    /// The same server driven by wrk right after, when wrk is installed.
    by_wrk: Vec<WrkLeg>,
}

/// A run of wrk against the server of an HTTP run.
struct WrkLeg {
    name: &'static str,
    figures: wrk::Figures,
    /// The deepest outbox seen while wrk wrote.
    deepest_outbox: i64,
}

impl Run {
    /// A run with no outbox sampled and no wrk after it.
    fn measured(rate: f64, latencies: &[Duration]) -> Self {
        Run {
            rate,
            p50: percentile(latencies, 0.5),
            p99: percentile(latencies, 0.99),
            deepest_outbox: None,
            by_wrk: Vec::new(),
        }
    }

    fn print(&self, name: &str, references: References) {
        let outbox = self
            .deepest_outbox
            .map_or("-".to_owned(), |depth| depth.to_string());
        row(name, self.rate, self.p50, self.p99, &outbox, references);
        for leg in &self.by_wrk {
            let WrkLeg {
                name,
                figures,
                deepest_outbox,
            } = leg;
            let outbox = deepest_outbox.to_string();
            row(
                name,
                figures.rate,
                figures.p50,
                figures.p99,
                &outbox,
                references,
            );
        }
    }
}

/// The rates each row is compared with: the app's own statement by hand, and pgbench's plain
/// statements when it ran.
#[derive(Clone, Copy)]
struct References {
    by_hand: f64,
    pgbench: Option<f64>,
}

/// One line of the table.
fn row(name: &str, rate: f64, p50: Duration, p99: Duration, outbox: &str, to: References) {
    let to_pgbench = to
        .pgbench
        .map_or("-".to_owned(), |r| format!("{:.2}×", rate / r));
    println!(
        "| {name:<47} | {rate:>8.0}/s | {:>5.2}× | {to_pgbench:>9} | {:>8.2} ms | {:>8.2} ms | {outbox:>7} |",
        rate / to.by_hand,
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
    );
}

/// Runs `one` from `concurrency` tasks for `duration`; each call's latency is kept.
async fn drive<F, Fut>(concurrency: usize, duration: Duration, one: F) -> (f64, Vec<Duration>)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let one = one.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while started.elapsed() < duration {
                    let at = Instant::now();
                    one().await;
                    latencies.push(at.elapsed());
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
    (rate, latencies)
}

/// Ten per cent to each category.
fn even_split(ids: &[String]) -> Vec<RawAllocation<'_>> {
    ids.iter()
        .map(|id| RawAllocation {
            category_id: id,
            percentage: 10.0,
        })
        .collect()
}

/// The transaction a submission is, by hand: a new voter, the submission, ten allocations and
/// the outbox row, committed through the app's own store and pool.
async fn by_hand(app: &Arc<App>, concurrency: usize, duration: Duration) -> Run {
    let ids: Vec<String> = app.categories.iter().map(|c| c.id.0.to_string()).collect();
    let allocation = validate_allocation(&even_split(&ids), &app.categories).expect("valid");
    let store = app.store.clone();
    let (rate, latencies) = drive(concurrency, duration, move || {
        let (store, allocation) = (store.clone(), allocation.clone());
        async move {
            let voter = VoterRef::New {
                id: uuid::Uuid::now_v7(),
                token_hash: VoterToken::generate().hash(),
            };
            store
                .submit(NewSubmission::new(voter, allocation, None))
                .await
                .expect("stored");
        }
    })
    .await;
    Run::measured(rate, &latencies)
}

/// The same transaction as plain statements from pgbench, one commit each (the issue's
/// reference), on PostgreSQL when pgbench is installed; with `per_transaction` above one,
/// that many submissions in each transaction instead, written as one statement (the
/// ceiling batching could reach). Rates count submissions, not transactions; a submission's
/// latency is its transaction's.
async fn by_pgbench(
    app: &Arc<App>,
    database: &DatabaseUrl,
    concurrency: usize,
    duration: Duration,
    per_transaction: usize,
) -> Option<Run> {
    let DatabaseUrl::Postgres(url) = database else {
        return None;
    };
    let categories: Vec<i32> = app.categories.iter().map(|c| c.id.0).collect();
    let share = 10_000 / i32::try_from(categories.len()).expect("a few categories");
    let script = if per_transaction == 1 {
        pgbench::submission_script(&categories, share)
    } else {
        pgbench::batched_submission_script(&categories, share, per_transaction)
    };
    let dir = scratch_dir();
    let mut figures = pgbench::run(url, concurrency, duration, &script, dir.path()).await?;
    figures.latencies.sort();
    Some(Run::measured(
        figures.rate * per_transaction as f64,
        &figures.latencies,
    ))
}

/// The mean time to parse [`SUBMIT`] and to clone its parsed document, which the server
/// does instead for a document it has parsed before.
fn parse_against_clone() -> (Duration, Duration) {
    const TIMES: u32 = 20_000;
    let started = Instant::now();
    for _ in 0..TIMES {
        std::hint::black_box(async_graphql::parser::parse_query(SUBMIT).expect("parses"));
    }
    let parse = started.elapsed() / TIMES;
    let document = async_graphql::parser::parse_query(SUBMIT).expect("parses");
    let started = Instant::now();
    for _ in 0..TIMES {
        std::hint::black_box(document.clone());
    }
    (parse, started.elapsed() / TIMES)
}

/// The app of `config` with its writes batched as `batches`.
async fn start(config: &Config, batches: GroupCommitSettings) -> Arc<App> {
    let mut config = config.clone();
    config.write_batches = batches;
    App::start(config).await.expect("start")
}

/// Waits until the app's worker has folded what the runs before left in the outbox (the
/// by-hand ones have no worker), so that the outbox measured, and the folds' share of the
/// machine, are this run's.
async fn drain(app: &App) {
    let drained = Instant::now() + Duration::from_secs(120);
    while app.store.outbox_len().await.expect("outbox") > 0 {
        assert!(Instant::now() < drained, "the outbox does not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the `submitAllocation` resolver calls, called in process on an app started with
/// `batches` (its worker folding meanwhile): the checks, a new voter, group commit.
async fn in_process(
    config: &Config,
    batches: GroupCommitSettings,
    concurrency: usize,
    duration: Duration,
) -> Run {
    let app = start(config, batches).await;
    let worker = app.spawn_worker();
    drain(&app).await;
    let ids: Arc<Vec<String>> =
        Arc::new(app.categories.iter().map(|c| c.id.0.to_string()).collect());
    let submissions = app.submissions.clone();
    let (rate, latencies) = drive(concurrency, duration, move || {
        let (submissions, ids) = (submissions.clone(), ids.clone());
        async move {
            submissions
                .submit(&Credentials::Anonymous, None, &even_split(&ids), None)
                .await
                .expect("stored");
        }
    })
    .await;
    app.shutdown.cancel();
    worker.await.expect("worker");
    Run::measured(rate, &latencies)
}

/// Which of `over_http`'s load generators was writing when the outbox was sampled.
const IN_PROCESS_CLIENTS: usize = 0;
const WRK: usize = 1;
const WRK_ONE_VOTER: usize = 2;

/// `submitAllocation` over HTTP on a server started with `batches`, sampling the outbox; with
/// `one_voter`, a last run of wrk sends every submission as one voter, by its token (as the
/// issue's figures were taken): each is looked up in its batch's transaction.
async fn over_http(
    config: &Config,
    batches: GroupCommitSettings,
    concurrency: usize,
    duration: Duration,
    one_voter: bool,
) -> Run {
    let app = start(config, batches).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = Server::spawn(app.clone(), listener, ServerOptions::default()).expect("serve");
    drain(&app).await;
    let url = format!("http://{}/graphql", server.addr);
    let http = reqwest::Client::new();
    let allocations: Vec<Value> = app
        .categories
        .iter()
        .map(|c| json!({ "categoryId": c.id.0.to_string(), "percentage": 10.0 }))
        .collect();
    let body = json!({ "query": SUBMIT, "variables": { "i": { "allocations": allocations } } })
        .to_string();

    // The deepest outbox per load generator: the reqwest clients share the server's process
    // (and its worker's runtime), wrk runs in a process of its own, as real clients do.
    let deepest = Arc::new([AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)]);
    let leg = Arc::new(AtomicUsize::new(IN_PROCESS_CLIENTS));
    let writing = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (store, deepest, leg, writing) = (
            app.store.clone(),
            deepest.clone(),
            leg.clone(),
            writing.clone(),
        );
        tokio::spawn(async move {
            while writing.load(Ordering::Relaxed) {
                let sampled_during = leg.load(Ordering::Relaxed);
                if let Ok(depth) = store.outbox_len().await {
                    deepest[sampled_during].fetch_max(depth, Ordering::Relaxed);
                }
                // Not more often: on PostgreSQL a count reads every row the folds deleted and
                // autovacuum has not yet reclaimed (100,000 and more within a run), and at
                // every 10 ms the sampling alone took 7 % of the machine from the run.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let (wrk_url, wrk_body) = (url.clone(), body.clone());
    let token = if one_voter {
        Some(new_voter_token(&http, &url, &allocations).await)
    } else {
        None
    };
    let (rate, latencies) = drive(concurrency, duration, move || {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        async move {
            let reply: Value = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            assert!(reply["errors"].is_null(), "{reply}");
        }
    })
    .await;
    let exposition = app.metrics.encode();
    let value = |name: &str| {
        exposition
            .lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    let mut by_wrk = Vec::new();
    let mut legs = vec![(WRK, "  the same, wrk -t1 in its own process", None)];
    if let Some(token) = token {
        legs.push((
            WRK_ONE_VOTER,
            "  one voter, by its token, wrk -t1",
            Some(token),
        ));
    }
    for (index, name, token) in legs {
        leg.store(index, Ordering::Relaxed);
        let run = over_wrk(
            &app,
            &wrk_url,
            &wrk_body,
            token.as_deref(),
            concurrency,
            duration,
        );
        if let Some(figures) = run.await {
            by_wrk.push(WrkLeg {
                name,
                figures,
                deepest_outbox: deepest[index].load(Ordering::Relaxed),
            });
        }
    }
    writing.store(false, Ordering::Relaxed);
    sampler.await.expect("sampler");
    let folds = value("tax_budget_folds_total");
    eprintln!(
        "  folds while writing: {folds}, {:.0} rows each, {:.1} ms each; write batches: {:.1} submissions each",
        value("tax_budget_fold_batch_size_sum") / folds,
        1000.0 * value("tax_budget_fold_duration_seconds_sum") / folds,
        value("tax_budget_write_batch_size_sum") / value("tax_budget_write_batch_size_count"),
    );
    server.shutdown(Duration::from_secs(5)).await;
    Run {
        deepest_outbox: Some(deepest[IN_PROCESS_CLIENTS].load(Ordering::Relaxed)),
        by_wrk,
        ..Run::measured(rate, &latencies)
    }
}

/// The token of a new voter, from an anonymous submission of `allocations` to `url`.
async fn new_voter_token(http: &reqwest::Client, url: &str, allocations: &[Value]) -> String {
    let query =
        "mutation($i: SubmitAllocationInput!) { submitAllocation(input: $i) { voterToken } }";
    let body = json!({ "query": query, "variables": { "i": { "allocations": allocations } } });
    let reply = post_graphql(http, url, &body).await;
    reply["data"]["submitAllocation"]["voterToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no voter token: {reply}"))
        .to_owned()
}

/// The same `body` POSTed to `url` by wrk with `concurrency` connections for `duration` (as
/// the voter with `token`, if given), when wrk is installed; every answered request must have
/// its submission stored.
async fn over_wrk(
    app: &Arc<App>,
    url: &str,
    body: &str,
    token: Option<&str>,
    concurrency: usize,
    duration: Duration,
) -> Option<wrk::Figures> {
    let dir = scratch_dir();
    let script = wrk::post_script(dir.path(), "submit.lua", body, token);
    let stored = async || {
        app.store
            .live_snapshot()
            .await
            .expect("count")
            .total_submissions
    };
    let before = stored().await;
    let figures = wrk::run(url, concurrency, duration, &script).await?;
    // Requests cut off at the end may still commit: at least one row per answer.
    let written = stored().await - before;
    assert!(
        written >= figures.requests as i64,
        "{} answered, {written} stored",
        figures.requests
    );
    Some(figures)
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs benches with `--bench` absent: keep that quick and quiet.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let duration = Duration::from_secs(env_number("BENCH_SECONDS", 5) as u64);
    let concurrency = env_number("BENCH_CONCURRENCY", 32);
    let bench_database = BenchDatabase::create().await;
    let database = bench_database.url.clone();
    let mut config = Config::for_database(database.clone());
    // The fold's pacing, for trying others without a rebuild (the backend's default if unset).
    if let Ok(ms) = std::env::var("WORKER_FOLD_INTERVAL_MS") {
        let ms = ms.parse().expect("WORKER_FOLD_INTERVAL_MS: milliseconds");
        config.worker_fold_interval = Some(Duration::from_millis(ms));
    }
    // The server's group-commit settings, for trying others without a rebuild.
    let defaults = GroupCommitSettings {
        window: Duration::from_micros(env_number(
            "WRITE_BATCH_WINDOW_US",
            config.write_batches.window.as_micros() as usize,
        ) as u64),
        max_batch: env_number("WRITE_BATCH_MAX", config.write_batches.max_batch),
        max_in_flight: env_number(
            "WRITE_BATCHES_IN_FLIGHT",
            config.write_batches.max_in_flight,
        ),
    };
    let one_per_commit = GroupCommitSettings {
        window: Duration::ZERO,
        max_batch: 1,
        max_in_flight: config.database_pool_size,
    };

    let app = App::start(config.clone()).await.expect("start");
    let hand = by_hand(&app, concurrency, duration).await;
    let pgbench = by_pgbench(&app, &database, concurrency, duration, 1).await;
    let pgbench_batched = by_pgbench(
        &app,
        &database,
        concurrency,
        duration,
        PGBENCH_SUBMISSIONS_PER_TRANSACTION,
    )
    .await;
    app.shutdown.cancel();
    drop(app);
    let grouped_in_process = in_process(&config, defaults, concurrency, duration).await;
    let grouped = over_http(&config, defaults, concurrency, duration, true).await;
    let single = over_http(&config, one_per_commit, concurrency, duration, false).await;

    println!(
        "{}, {concurrency} clients, {} s per run, fold batch {} rows",
        database.describe(),
        duration.as_secs(),
        config.worker_batch_size
    );
    println!(
        "| {:<47} | {:>10} | {:>6} | {:>9} | {:>11} | {:>11} | {:>7} |",
        "path", "rate", "ratio", "× pgbench", "p50", "p99", "outbox"
    );
    println!(
        "|{:-<49}|{:-<12}|{:-<8}|{:-<11}|{:-<13}|{:-<13}|{:-<9}|",
        "", "", "", "", "", "", ""
    );
    let references = References {
        by_hand: hand.rate,
        pgbench: pgbench.as_ref().map(|run| run.rate),
    };
    hand.print("by hand: one transaction per submission", references);
    if let Some(pgbench) = &pgbench {
        pgbench.print("pgbench: the same as plain statements", references);
    }
    if let Some(batched) = &pgbench_batched {
        batched.print(
            &format!("pgbench: {PGBENCH_SUBMISSIONS_PER_TRANSACTION} per transaction (ceiling)"),
            references,
        );
    }
    grouped_in_process.print("group commit in process, no HTTP or GraphQL", references);
    grouped.print(
        &format!(
            "submitAllocation, group commit ({} µs, ≤ {})",
            defaults.window.as_micros(),
            defaults.max_batch
        ),
        references,
    );
    single.print("submitAllocation, one commit per request", references);
    println!(
        "(ratio: against the by-hand rate; × pgbench: against pgbench's; outbox: deepest seen while that load generator wrote)"
    );

    let (parse, clone) = parse_against_clone();
    println!(
        "parsing the mutation's text: {:.1} µs; cloning its parsed document: {:.1} µs ({:.0}× less)",
        parse.as_secs_f64() * 1e6,
        clone.as_secs_f64() * 1e6,
        parse.as_secs_f64() / clone.as_secs_f64()
    );

    bench_database.remove().await;
}
