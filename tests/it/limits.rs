//! The edge holds: query cost and depth limits, the per-address read budget, load shedding of
//! costly queries, the introspection switch and PostgreSQL's statement timeout, all over HTTP.
//!
//! Run with `--nocapture` to see the figures the README quotes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tax_budget::config::{QueryLimitsConfig, DEFAULT_MAX_QUERY_COST};
use tax_budget::graphql::limits::MAX_DEPTH;

use crate::harness::gql::GRAPHIQL_INTROSPECTION;
use crate::harness::{
    eventually, on_both_backends, spawn_app, spawn_app_with, Backend, Options, TestApp, EVEN,
};

/// An answer as it came: status, `Retry-After`, body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_default()
    }

    fn message(&self) -> &str {
        self.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
    }

    /// Refused before running: no `data` at all.
    fn assert_refused(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{:#}", self.body);
        assert_eq!(self.code(), code, "{:#}", self.body);
        assert!(self.body.get("data").is_none(), "{:#}", self.body);
    }

    fn assert_ok(&self) {
        assert_eq!(self.status, StatusCode::OK, "{:#}", self.body);
        assert!(self.body.get("errors").is_none(), "{:#}", self.body);
    }
}

/// POSTs a query (default `Accept`: application/graphql-response+json), as `token` if given.
async fn post(app: &TestApp, query: &str, token: Option<&str>) -> Answer {
    post_accepting(app, query, token, None).await
}

async fn post_accepting(
    app: &TestApp,
    query: &str,
    token: Option<&str>,
    accept: Option<&str>,
) -> Answer {
    let mut request = reqwest::Client::new()
        .post(app.url("/graphql"))
        .json(&json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = response.json().await.expect("a JSON body");
    Answer {
        status,
        retry_after,
        body,
    }
}

/// `count` aliases of `mySubmissions(first)` selecting `fields`.
fn aliases(count: usize, first: u32, fields: &str) -> String {
    let selections: String = (0..count)
        .map(|i| format!("a{i}: mySubmissions(first: {first}) {{ {fields} }} "))
        .collect();
    format!("{{ {selections}}}")
}

/// A voter with `n` submissions; returns its token.
async fn voter_with(app: &TestApp, n: usize) -> String {
    let token = app
        .submit(EVEN, None)
        .await
        .voter_token
        .expect("a new voter's token");
    for _ in 1..n {
        app.submit(EVEN, Some(&token)).await;
    }
    token
}

/// What the finding sent: 240 aliases of a full page with its allocations.
const FLOOD_ALIASES: usize = 240;
/// The heaviest legal request of that shape: 7 aliases of a full page cost 9,107.
const HEAVY_ALIASES: usize = 7;

on_both_backends!(the_alias_flood_is_refused_and_submissions_stay_fast);

async fn the_alias_flood_is_refused_and_submissions_stay_fast(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let token = voter_with(&app, 100).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        app.submit(EVEN, Some(&token)).await;
        idle.push(started.elapsed());
    }

    let flood = aliases(FLOOD_ALIASES, 100, "id allocations { percentage }");
    let refused = post(&app, &flood, Some(&token)).await;
    refused.assert_refused(StatusCode::BAD_REQUEST, "QUERY_TOO_COSTLY");
    let extensions = &refused.body["errors"][0]["extensions"];
    assert_eq!(extensions["maxCost"], DEFAULT_MAX_QUERY_COST);
    // 240 × (100 for the read + 1 + 100 × (1 + 11)).
    assert_eq!(extensions["cost"], 240 * 1_301);
    assert!(
        refused.message().contains("312240"),
        "{}",
        refused.message()
    );

    // Meanwhile the flood again and again from one client, and the heaviest legal request
    // (9,107, answered by one read) from two others, while one voter submits five times.
    // What slows the submissions then is CPU: the debug build of the server shares the test's
    // two runtime threads with its clients.
    let heavy = aliases(HEAVY_ALIASES, 100, "id allocations { percentage }");
    let stop = tokio_util::sync::CancellationToken::new();
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for query in [&flood, &heavy, &heavy] {
        let (query, token, stop, answered) =
            (query.clone(), token.clone(), stop.clone(), answered.clone());
        let url = app.url("/graphql");
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut statuses = Vec::new();
            while !stop.is_cancelled() {
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({ "query": query }))
                    .send()
                    .await
                    .expect("request");
                statuses.push(response.status());
                let _ = response.bytes().await;
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            statuses
        }));
    }
    // The load is on once the clients have had answers (three, whoever got them).
    eventually("the flood is under way", || {
        let n =
            std::sync::atomic::AtomicUsize::load(&answered, std::sync::atomic::Ordering::Relaxed);
        async move { (n >= 3).then_some(()) }
    })
    .await;
    let mut took = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        app.submit(EVEN, Some(&token)).await;
        took.push(started.elapsed());
    }
    stop.cancel();
    let mut statuses = Vec::new();
    for client in clients {
        statuses.extend(client.await.expect("client task"));
    }
    took.sort();
    println!(
        "{backend:?}: submissions took {idle:?} idle, {took:?} during {} flood and heavy \
         requests",
        statuses.len()
    );
    // The machine is shared and this is a debug build: only a generous bound, on the median.
    assert!(took[2] < Duration::from_secs(2), "took {took:?}");
    assert!(statuses.contains(&StatusCode::OK));
    assert!(statuses.contains(&StatusCode::BAD_REQUEST));
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::OK, StatusCode::BAD_REQUEST].contains(s)),
        "{statuses:?}"
    );
}

on_both_backends!(costly_but_legal_queries_pass_and_aliases_share_one_read);

async fn costly_but_legal_queries_pass_and_aliases_share_one_read(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let token = voter_with(&app, 3).await;
    // The web app's history page at its full size: 7,401.
    let history = format!(
        "{{ mySubmissions(first: 100) {{ {} }} }}",
        crate::harness::gql::SUBMISSION_FIELDS
    );
    let answer = post(&app, &history, Some(&token)).await;
    answer.assert_ok();
    assert_eq!(
        answer.body["data"]["mySubmissions"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // The heaviest legal alias request passes; pages of different lengths are the beginnings
    // of the same list.
    let heavy = aliases(HEAVY_ALIASES, 100, "id allocations { percentage }");
    post(&app, &heavy, Some(&token)).await.assert_ok();
    let answer = post(
        &app,
        "{ short: mySubmissions(first: 2) { id } long: mySubmissions(first: 100) { id } }",
        Some(&token),
    )
    .await;
    answer.assert_ok();
    let ids = |key: &str| -> Vec<Value> { answer.body["data"][key].as_array().unwrap().clone() };
    assert_eq!(ids("long").len(), 3);
    assert_eq!(ids("short"), ids("long")[..2].to_vec());

    // Errors stay per field: an anonymous caller, or a page out of range.
    let anonymous = post(&app, "{ mySubmissions(first: 5) { id } }", None).await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
    let out_of_range = post(&app, "{ mySubmissions(first: 500) { id } }", Some(&token)).await;
    assert_eq!(out_of_range.code(), "BAD_USER_INPUT");

    // Many aliases of one submission: one read.
    let id = answer.body["data"]["long"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_id: String = (0..20)
        .map(|i| format!("s{i}: submission(id: \"{id}\") {{ id }} "))
        .collect();
    let answer = post(&app, &format!("{{ {by_id} }}"), None).await;
    answer.assert_ok();
    assert_eq!(answer.body["data"]["s19"]["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_queries_and_bad_fragments_are_refused_before_running() {
    let app = spawn_app(Backend::Sqlite).await.expect("sqlite app");

    let deep = format!(
        "{{ __type(name: \"Query\") {{ {} name {} }} }}",
        "ofType { ".repeat(MAX_DEPTH),
        "} ".repeat(MAX_DEPTH)
    );
    let refused = post(&app, &deep, None).await;
    refused.assert_refused(StatusCode::BAD_REQUEST, "QUERY_TOO_DEEP");
    let extensions = &refused.body["errors"][0]["extensions"];
    assert_eq!(extensions["maxDepth"], MAX_DEPTH);
    assert!(extensions["depth"].as_u64().unwrap() > MAX_DEPTH as u64);
    assert!(
        refused.message().contains("too deep"),
        "{}",
        refused.message()
    );
    // Legacy JSON clients get the same error with a 200.
    let legacy = post_accepting(&app, &deep, None, Some("application/json")).await;
    legacy.assert_refused(StatusCode::OK, "QUERY_TOO_DEEP");

    // A fragment that spreads itself, through another: named in the error.
    let cycle = "{ ...A } fragment A on Query { categories { id } ...B } \
                 fragment B on Query { ...A }";
    let refused = post(&app, cycle, None).await;
    refused.assert_refused(StatusCode::BAD_REQUEST, "GRAPHQL_VALIDATION_FAILED");
    assert!(
        refused.message().contains("spreads itself"),
        "{}",
        refused.message()
    );

    // Fragments nested beyond any real use.
    let mut chain = String::from("{ ...F0 } ");
    for i in 0..12 {
        chain.push_str(&format!(
            "fragment F{i} on Query {{ __typename ...F{} }} ",
            i + 1
        ));
    }
    chain.push_str("fragment F12 on Query { __typename }");
    post(&app, &chain, None)
        .await
        .assert_refused(StatusCode::BAD_REQUEST, "QUERY_TOO_DEEP");

    // A fragment bomb: 8 levels that each spread the next ten times are 10^8 fields once
    // inlined, from a few hundred bytes. Refused as too costly, at once.
    let mut bomb = String::from("{ ...B0 } ");
    for i in 0..8 {
        let spreads = format!("...B{} ", i + 1).repeat(10);
        bomb.push_str(&format!("fragment B{i} on Query {{ {spreads}}} "));
    }
    bomb.push_str("fragment B8 on Query { __typename }");
    let started = Instant::now();
    let refused = post(&app, &bomb, None).await;
    refused.assert_refused(StatusCode::BAD_REQUEST, "QUERY_TOO_COSTLY");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        refused.body["errors"][0]["extensions"]["cost"],
        100_000_000u64
    );
}

/// POSTs `query` (costing 102) until it is refused, the `i`th time accepting `accept(i)`;
/// checks that exactly nine were answered, and returns the refusal.
async fn nine_reads_fit_in_a_budget_of_1000(
    app: &TestApp,
    query: &str,
    accept: impl Fn(usize) -> Option<&'static str>,
) -> Answer {
    let mut accepted = 0;
    let refused = loop {
        let answer = post_accepting(app, query, None, accept(accepted)).await;
        if answer.status != StatusCode::OK {
            break answer;
        }
        answer.assert_ok();
        accepted += 1;
        assert!(
            accepted <= 9,
            "more than 9 reads of 102 in a budget of 1,000"
        );
    };
    assert_eq!(accepted, 9);
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_beyond_the_budget_per_minute_are_rate_limited() {
    let options = Options {
        queries: QueryLimitsConfig {
            read_cost_per_minute: 1_000,
            ..QueryLimitsConfig::default()
        },
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options)
        .await
        .expect("sqlite app");
    // 100 for the read, 1 for the field, 1 for `version`.
    let query = "{ aggregates { version } }";
    let refused = nine_reads_fit_in_a_budget_of_1000(&app, query, |_| None).await;
    refused.assert_refused(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
    let retry = refused.body["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .expect("retryAfterSeconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(refused.retry_after, Some(retry.to_string()));
    assert!(
        refused.message().contains("1000 per minute"),
        "{}",
        refused.message()
    );
    // The same for legacy JSON clients: the status is about load, not about the query.
    let legacy = post_accepting(&app, query, None, Some("application/json")).await;
    legacy.assert_refused(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");

    // Submissions have a limit of their own and do not spend the read budget.
    let submitted = app.submit(EVEN, None).await;
    assert!(submitted.voter_token.is_some());

    // Waiting the advertised time is enough.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    post(&app, query, None).await.assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_answered_from_prepared_bytes_spend_the_budget_as_reads_that_run() {
    let options = Options {
        queries: QueryLimitsConfig {
            read_cost_per_minute: 1_000,
            ..QueryLimitsConfig::default()
        },
        tweak: |config| config.queries.prepared_reads = true,
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options)
        .await
        .expect("sqlite app");
    // The same text each time: after the first, answered by its bytes alone, and charged
    // 102 all the same, whichever media type it asks for.
    let query = "{ aggregates { version } }";
    let medias = ["application/json", "application/graphql-response+json"];
    let refused = nine_reads_fit_in_a_budget_of_1000(&app, query, |i| Some(medias[i % 2])).await;
    refused.assert_refused(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
    post_accepting(&app, query, None, Some("application/json"))
        .await
        .assert_refused(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_is_on_by_default_and_can_be_turned_off() {
    // On, with the read budget of `serve`: GraphiQL's whole introspection query passes.
    let options = Options {
        queries: QueryLimitsConfig {
            read_cost_per_minute: tax_budget::config::DEFAULT_READ_COST_PER_MINUTE,
            ..QueryLimitsConfig::default()
        },
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options)
        .await
        .expect("sqlite app");
    let answer = post(&app, GRAPHIQL_INTROSPECTION, None).await;
    answer.assert_ok();
    assert!(
        answer.body["data"]["__schema"]["types"]
            .as_array()
            .unwrap()
            .len()
            > 10
    );

    let options = Options {
        queries: QueryLimitsConfig {
            introspection: false,
            ..QueryLimitsConfig::default()
        },
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options)
        .await
        .expect("sqlite app");
    for query in [
        GRAPHIQL_INTROSPECTION,
        "{ __schema { queryType { name } } }",
        "{ __type(name: \"Query\") { name } }",
        "{ categories { id } ...Q } fragment Q on Query { __schema { types { name } } }",
    ] {
        let refused = post(&app, query, None).await;
        refused.assert_refused(StatusCode::BAD_REQUEST, "INTROSPECTION_DISABLED");
        assert!(
            refused.message().contains("disabled"),
            "{}",
            refused.message()
        );
    }
    // `__typename` is not introspection.
    let answer = post(&app, "{ __typename categories { id } }", None).await;
    answer.assert_ok();
    assert_eq!(answer.body["data"]["__typename"], "Query");
}

/// A connection of the test's own to the app's PostgreSQL database, holding `LOCK TABLE
/// submissions` until `release`: every read of submissions waits behind it.
struct SubmissionsLock(AsyncPgConnection);

impl SubmissionsLock {
    async fn take(app: &TestApp) -> SubmissionsLock {
        let tax_budget::config::DatabaseUrl::Postgres(url) = &app.backend.db.url else {
            panic!("a PostgreSQL app");
        };
        let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
        conn.batch_execute("BEGIN; LOCK TABLE submissions IN ACCESS EXCLUSIVE MODE;")
            .await
            .expect("lock");
        SubmissionsLock(conn)
    }

    /// Waits until a statement of the app waits for this lock.
    async fn wait_for_a_waiter(&mut self) {
        #[derive(diesel::QueryableByName)]
        struct Waiting {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            waiting: i64,
        }
        let conn = &mut self.0;
        let started = Instant::now();
        loop {
            let row: Waiting = diesel::sql_query(
                "SELECT count(*) AS waiting FROM pg_locks \
                 WHERE NOT granted AND relation = 'submissions'::regclass \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .get_result(conn)
            .await
            .expect("pg_stat_activity");
            if row.waiting > 0 {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "nobody waits");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn release(mut self) {
        self.0.batch_execute("COMMIT").await.expect("unlock");
    }
}

/// A recount of every allocation may rightly outlast the `statement_timeout` requests get;
/// here the rebuild is held behind a lock on a table it rewrites for twice the timeout, and
/// still finishes, exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_outlasts_the_statement_timeout() {
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        waiting: i64,
    }
    let options = Options {
        statement_timeout_ms: 300,
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Backend::Postgres, options).await else {
        return;
    };
    for _ in 0..3 {
        app.submit(EVEN, None).await;
    }
    app.wait_folded(3).await;
    let tax_budget::config::DatabaseUrl::Postgres(url) = &app.backend.db.url else {
        panic!("a PostgreSQL app");
    };
    let mut lock = AsyncPgConnection::establish(url).await.expect("connect");
    lock.batch_execute("BEGIN; LOCK TABLE aggregate_trend IN ACCESS EXCLUSIVE MODE;")
        .await
        .expect("lock");
    let rebuild = {
        let app = app.app.clone();
        tokio::spawn(async move { app.rebuild_aggregates().await })
    };
    // Until the rebuild has waited twice its statement timeout (`clock_timestamp`: this
    // connection's `now()` stays at the start of its transaction).
    let started = Instant::now();
    loop {
        let row: Waiting = diesel::sql_query(
            "SELECT count(*) AS waiting FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE NOT l.granted AND l.relation = 'aggregate_trend'::regclass \
             AND clock_timestamp() - a.query_start > interval '600 milliseconds'",
        )
        .get_result(&mut lock)
        .await
        .expect("pg_locks");
        if row.waiting > 0 {
            break;
        }
        assert!(!rebuild.is_finished(), "the rebuild ended while held back");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the rebuild never waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lock.batch_execute("COMMIT").await.expect("unlock");
    let rebuilt = rebuild.await.expect("rebuild task").expect("rebuild");
    assert_eq!(rebuilt.total_submissions, 3);
    app.assert_folded_exactly(3).await;
}

/// Deterministic on PostgreSQL, where a test can hold a read in the database with a lock
/// (the limiter's own rules are unit-tested in `graphql::limits`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_queries_beyond_the_concurrency_limit_are_shed_with_503() {
    let options = Options {
        queries: QueryLimitsConfig {
            max_concurrent_costly: 1,
            ..QueryLimitsConfig::default()
        },
        // The held query must outlast the test's steps, not be cancelled by the timeout.
        statement_timeout_ms: 60_000,
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Backend::Postgres, options).await else {
        return;
    };
    let token = voter_with(&app, 2).await;
    // No fold may be what waits for the lock below.
    app.wait_folded(2).await;
    // 1,301: costly.
    let costly = "{ mySubmissions(first: 100) { id allocations { percentage } } }";

    let mut lock = SubmissionsLock::take(&app).await;
    let held = {
        let (client, url, token) = (reqwest::Client::new(), app.url("/graphql"), token.clone());
        tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "query": costly }))
                .send()
                .await
                .expect("request");
            (
                response.status(),
                response.json::<Value>().await.expect("json"),
            )
        })
    };
    lock.wait_for_a_waiter().await;

    let shed = post(&app, costly, Some(&token)).await;
    shed.assert_refused(StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED");
    assert_eq!(shed.retry_after.as_deref(), Some("1"));
    assert_eq!(shed.body["errors"][0]["extensions"]["retryAfterSeconds"], 1);
    // Cheap queries are not limited.
    post(&app, "{ categories { id } }", None).await.assert_ok();

    lock.release().await;
    let (status, body) = held.await.expect("held request");
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["mySubmissions"].as_array().unwrap().len(), 2);
    // The slot is free again.
    eventually("the slot is free", || async {
        let answer = post(&app, costly, Some(&token)).await;
        (answer.status == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statement_timeout_ends_a_read_stuck_in_postgresql() {
    let options = Options {
        statement_timeout_ms: 300,
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Backend::Postgres, options).await else {
        return;
    };
    let id = app.submit(EVEN, None).await.submission.id;
    app.wait_folded(1).await;
    let query = format!("{{ submission(id: \"{id}\") {{ id }} }}");

    let lock = SubmissionsLock::take(&app).await;
    let started = Instant::now();
    let answer = post(&app, &query, None).await;
    let took = started.elapsed();
    lock.release().await;
    println!("a read stuck behind a lock ended after {took:?} (statement_timeout 300 ms)");
    assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
    assert_eq!(answer.code(), "SERVICE_UNAVAILABLE", "{:#}", answer.body);
    assert_eq!(answer.body["data"]["submission"], Value::Null);
    assert!(took < Duration::from_secs(3), "took {took:?}");

    // The connection went back to the pool in working order.
    let answer = post(&app, &query, None).await;
    answer.assert_ok();
    assert_eq!(answer.body["data"]["submission"]["id"], id.as_str());
}
