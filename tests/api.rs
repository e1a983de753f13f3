//! The behaviour suite: every test runs against the embedded default (SQLite, in-process
//! cache and bus) and against PostgreSQL + Redis, through real HTTP and WebSocket.

mod common;

use std::sync::Arc;

use common::ws::{Protocol, Subscription, AGGREGATES_UPDATED};
use common::{allocation, averages, spawn_app, spawn_app_with, Backend, Options, EVEN};
use serde_json::{json, Value};

on_both_backends!(
    categories_are_seeded_in_display_order,
    a_submission_reaches_the_aggregates,
    every_kind_of_bad_input_is_refused_and_nothing_is_written,
    an_idempotency_key_replays_the_first_submission,
    an_idempotency_key_sent_concurrently_writes_once,
    voter_tokens_scope_history_and_bad_tokens_are_refused,
    each_tier_answers_with_the_same_numbers,
    an_empty_summary_is_answered_by_live_sql,
    subscribers_get_the_current_snapshot_then_updates,
    concurrent_submissions_fold_exactly,
    rebuild_during_writes_ends_exact,
    a_submission_can_be_read_back_by_id,
    a_cached_read_runs_no_sql,
    submissions_beyond_the_rate_are_refused_and_write_nothing,
    aliases_and_websockets_share_the_address_limit,
);

async fn categories_are_seeded_in_display_order(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let body = app
        .gql(
            "{ categories { id slug name color displayOrder } }",
            json!({}),
            None,
        )
        .await;
    let categories = body["data"]["categories"]
        .as_array()
        .expect("categories")
        .clone();
    let names: Vec<&str> = categories
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Healthcare",
            "Education",
            "Defense & Military",
            "Infrastructure",
            "Social Security",
            "Environment",
            "Science & Research",
            "Public Safety",
            "Housing & Community",
            "Other"
        ]
    );
    for (i, c) in categories.iter().enumerate() {
        assert_eq!(c["displayOrder"].as_i64(), Some(i as i64 + 1));
        let color = c["color"].as_str().unwrap();
        assert!(color.len() == 7 && color.starts_with('#'), "{color}");
        assert!(!c["slug"].as_str().unwrap().is_empty());
    }
}

async fn a_submission_reaches_the_aggregates(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let before = app.aggregates().await;
    assert_eq!(before["totalSubmissions"], 0);
    assert_eq!(averages(&before), vec![0; 10]);

    app.submit([100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], None)
        .await;
    app.submit([0.0, 100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], None)
        .await;
    app.submit([0.0, 0.0, 50.5, 49.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], None)
        .await;
    let after = app.wait_folded(3).await;

    // 100/3 = 33.333…: the largest remainder gets the spare hundredth, so the sum is 100.00.
    assert_eq!(
        averages(&after),
        vec![3334, 3333, 1683, 1650, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(averages(&after).iter().sum::<i64>(), 10_000);
    assert_eq!(after["source"], "CACHE");
    assert!(after["version"].as_i64() > before["version"].as_i64());
    assert_eq!(after["categories"][0]["category"]["name"], "Healthcare");
}

/// Sends a bad allocation and checks the error, its field, and that nothing was stored.
async fn expect_refused(
    app: &common::TestApp,
    allocations: Value,
    key: Option<&str>,
    field: &str,
    words: &str,
) {
    let body = app.submit_raw(allocations, key, None).await;
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert_eq!(error["extensions"]["field"], field, "{body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(words),
        "message {message:?} should mention {words:?}"
    );
    assert!(body["data"].is_null(), "{body}");
}

async fn every_kind_of_bad_input_is_refused_and_nothing_is_written(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let ok = [10.0; 10];
    let with = |i: usize, v: f64| {
        let mut values = ok;
        values[i] = v;
        allocation(values)
    };
    expect_refused(
        &app,
        with(9, 9.99),
        None,
        "input.allocations",
        "add up to 99.99",
    )
    .await;
    expect_refused(
        &app,
        with(9, 10.01),
        None,
        "input.allocations",
        "add up to 100.01",
    )
    .await;
    expect_refused(
        &app,
        with(2, -10.0),
        None,
        "input.allocations[2].percentage",
        "negative",
    )
    .await;
    expect_refused(
        &app,
        with(0, 100.5),
        None,
        "input.allocations[0].percentage",
        "over 100",
    )
    .await;
    expect_refused(
        &app,
        with(4, 10.005),
        None,
        "input.allocations[4].percentage",
        "two decimals",
    )
    .await;

    let mut unknown = allocation(ok);
    unknown[3]["categoryId"] = json!("999");
    expect_refused(
        &app,
        unknown,
        None,
        "input.allocations[3].categoryId",
        "unknown category",
    )
    .await;
    let mut garbage = allocation(ok);
    garbage[3]["categoryId"] = json!("not-an-id");
    expect_refused(
        &app,
        garbage,
        None,
        "input.allocations[3].categoryId",
        "unknown category",
    )
    .await;

    let mut twice = allocation(ok);
    twice[5]["categoryId"] = json!("1");
    expect_refused(
        &app,
        twice,
        None,
        "input.allocations[5].categoryId",
        "more than once",
    )
    .await;

    let missing = Value::Array(allocation(ok).as_array().unwrap()[..9].to_vec());
    expect_refused(
        &app,
        missing,
        None,
        "input.allocations",
        "missing categories: Other",
    )
    .await;
    expect_refused(&app, json!([]), None, "input.allocations", "empty").await;
    let long: Vec<Value> = (0..1000)
        .map(|_| json!({"categoryId": "1", "percentage": 0}))
        .collect();
    expect_refused(
        &app,
        Value::Array(long),
        None,
        "input.allocations",
        "at most 100",
    )
    .await;
    // A body far beyond any valid request is refused before it is read, still as JSON.
    let huge: Vec<Value> = (0..5000)
        .map(|_| json!({"categoryId": "1", "percentage": 0}))
        .collect();
    let response = reqwest::Client::new()
        .post(app.url("/graphql"))
        .json(
            &json!({ "query": common::SUBMIT, "variables": { "input": { "allocations": huge } } }),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");

    expect_refused(
        &app,
        allocation(ok),
        Some(""),
        "input.idempotencyKey",
        "idempotencyKey",
    )
    .await;
    let long_key = "k".repeat(129);
    expect_refused(
        &app,
        allocation(ok),
        Some(&long_key),
        "input.idempotencyKey",
        "idempotencyKey",
    )
    .await;

    // Several problems at once are all listed, each with its field.
    let body = app.submit_raw(with(1, -1.0), None, None).await;
    let mut many = allocation([10.0; 10]);
    many[0]["percentage"] = json!(-1);
    many[1]["percentage"] = json!(101);
    let body2 = app.submit_raw(many, None, None).await;
    let problems = body2["errors"][0]["extensions"]["problems"]
        .as_array()
        .expect("problems")
        .clone();
    let fields: Vec<&str> = problems
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "input.allocations[0].percentage",
            "input.allocations[1].percentage"
        ]
    );
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    // Nothing reached the database.
    let live = app.app.store.live_snapshot().await.expect("live");
    assert_eq!(live.total_submissions, 0);
    assert!(live.totals.is_empty());
    assert_eq!(app.app.store.outbox_len().await.expect("outbox"), 0);
}

async fn an_idempotency_key_replays_the_first_submission(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let first = app.submit_raw(allocation(EVEN), Some("key-1"), None).await;
    let first = &first["data"]["submitAllocation"];
    let token = first["voterToken"].as_str().expect("token").to_owned();

    let mut other = EVEN;
    other[0] = 20.0;
    other[1] = 0.0;
    let again = app
        .submit_raw(allocation(other), Some("key-1"), Some(&token))
        .await;
    let again = &again["data"]["submitAllocation"];
    assert_eq!(again["submission"]["id"], first["submission"]["id"]);
    assert_eq!(
        again["submission"]["allocations"],
        first["submission"]["allocations"]
    );
    assert!(again["voterToken"].is_null());

    // Another voter cannot take over the key.
    let (_, stranger) = app.submit(EVEN, None).await;
    let body = app
        .submit_raw(allocation(EVEN), Some("key-1"), stranger.as_deref())
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        "input.idempotencyKey"
    );

    app.wait_folded(2).await;
    assert_eq!(app.stored_submissions().await, 2);
}

async fn an_idempotency_key_sent_concurrently_writes_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let app = Arc::new(app);
    let calls = (0..12).map(|_| {
        let app = app.clone();
        tokio::spawn(async move {
            app.submit_raw(allocation(EVEN), Some("same-key"), None)
                .await
        })
    });
    let mut ids = Vec::new();
    let mut tokens = 0;
    for call in calls {
        let body = call.await.expect("task");
        let payload = &body["data"]["submitAllocation"];
        ids.push(payload["submission"]["id"].as_str().expect("id").to_owned());
        tokens += usize::from(payload["voterToken"].is_string());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "all calls return the first submission");
    assert_eq!(tokens, 1, "only the call that wrote created a voter");
    app.wait_folded(1).await;
    assert_eq!(app.stored_submissions().await, 1);
}

const MY_SUBMISSIONS: &str = "{ mySubmissions { id createdAt allocations { percentage } } }";

async fn voter_tokens_scope_history_and_bad_tokens_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (first, token) = app.submit(EVEN, None).await;
    let token = token.expect("a new voter gets a token");
    assert!(token.len() >= 32);
    let mut second_values = EVEN;
    second_values[0] = 19.99;
    second_values[9] = 0.01;
    let (second, no_token) = app.submit(second_values, Some(&token)).await;
    assert!(no_token.is_none(), "an existing voter gets no new token");
    let (_, other_token) = app.submit(EVEN, None).await;

    let mine = app.gql(MY_SUBMISSIONS, json!({}), Some(&token)).await;
    let ids: Vec<&str> = mine["data"]["mySubmissions"]
        .as_array()
        .expect("history")
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "newest first");
    assert_eq!(
        mine["data"]["mySubmissions"][0]["allocations"][0]["percentage"],
        19.99
    );

    let theirs = app
        .gql(MY_SUBMISSIONS, json!({}), other_token.as_deref())
        .await;
    assert_eq!(theirs["data"]["mySubmissions"].as_array().unwrap().len(), 1);
    let one = app
        .gql(
            "{ mySubmissions(first: 1) { id } }",
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(one["data"]["mySubmissions"][0]["id"], second.as_str());
    let zero = app
        .gql(
            "{ mySubmissions(first: 0) { id } }",
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(zero["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(zero["errors"][0]["extensions"]["field"], "first");

    let unknown = format!("tbv1_{}", "ab".repeat(32));
    for bad in ["garbage", "tbv1_short", unknown.as_str()] {
        let history = app.gql(MY_SUBMISSIONS, json!({}), Some(bad)).await;
        assert_eq!(
            history["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{bad}: {history}"
        );
        let submit = app.submit_raw(allocation(EVEN), None, Some(bad)).await;
        assert_eq!(
            submit["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{bad}: {submit}"
        );
    }
    let anonymous = app.gql(MY_SUBMISSIONS, json!({}), None).await;
    assert_eq!(
        anonymous["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );

    // Refused calls wrote nothing.
    assert_eq!(app.stored_submissions().await, 3);
}

async fn each_tier_answers_with_the_same_numbers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.submit(
        [12.34, 7.66, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0],
        None,
    )
    .await;
    app.submit(
        [0.01, 19.99, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0],
        None,
    )
    .await;
    app.submit(
        [33.33, 33.33, 33.34, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        None,
    )
    .await;
    let cached = app.wait_folded(3).await;
    assert_eq!(cached["source"], "CACHE");

    app.app.cache.invalidate().await.expect("invalidate");
    let summary = app.aggregates().await;
    assert_eq!(summary["source"], "SUMMARY");
    // The summary read filled the cache again.
    assert_eq!(app.aggregates().await["source"], "CACHE");

    app.app.store.mark_summary_stale().await.expect("stale");
    app.app.cache.invalidate().await.expect("invalidate");
    let live = app.aggregates().await;
    assert_eq!(live["source"], "LIVE");

    for tier in [&summary, &live] {
        assert_eq!(tier["totalSubmissions"], cached["totalSubmissions"]);
        assert_eq!(tier["version"], cached["version"]);
        assert_eq!(averages(tier), averages(&cached));
    }
    assert_eq!(
        averages(&cached),
        vec![1523, 2033, 1778, 667, 667, 667, 667, 666, 666, 666]
    );
    assert_eq!(averages(&cached).iter().sum::<i64>(), 10_000);
}

async fn an_empty_summary_is_answered_by_live_sql(backend: Backend) {
    let Some(app) = spawn_app_with(backend, Options::without_worker()).await else {
        return;
    };
    app.submit([50.0, 50.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], None)
        .await;
    app.submit([0.0, 50.0, 50.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], None)
        .await;
    app.app.cache.invalidate().await.expect("invalidate");
    // No worker has run: the summary has no rows, so live SQL answers, with every submission.
    let live = app.aggregates().await;
    assert_eq!(live["source"], "LIVE");
    assert_eq!(live["totalSubmissions"], 2);
    assert_eq!(averages(&live), vec![2500, 5000, 2500, 0, 0, 0, 0, 0, 0, 0]);

    // A worker creates the summary from scratch and folds the outbox into it, exactly once.
    let worker = app.app.spawn_worker();
    let folded = app.wait_folded(2).await;
    assert_eq!(averages(&folded), averages(&live));
    app.app.cache.invalidate().await.expect("invalidate");
    assert_eq!(app.aggregates().await["source"], "SUMMARY");
    worker.abort();
}

async fn subscribers_get_the_current_snapshot_then_updates(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for protocol in [Protocol::TransportWs, Protocol::LegacyGraphqlWs] {
        let before = app.aggregates().await["totalSubmissions"].as_i64().unwrap();
        let mut sub = Subscription::start(app.addr, protocol, AGGREGATES_UPDATED).await;
        let initial = sub.next_data().await;
        assert_eq!(
            initial["aggregatesUpdated"]["totalSubmissions"], before,
            "{protocol:?}"
        );
        app.submit([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0], None)
            .await;
        let update = sub
            .wait_for(|s| s["totalSubmissions"].as_i64() == Some(before + 1))
            .await;
        assert!(update["version"].as_i64() > initial["aggregatesUpdated"]["version"].as_i64());
        assert_eq!(update["categories"][9]["averagePercentage"], 100.0);
        sub.close().await;
    }
}

async fn concurrent_submissions_fold_exactly(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let app = Arc::new(app);
    const N: usize = 2000;
    const CONCURRENCY: usize = 50;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients = (0..CONCURRENCY).map(|_| {
        let (app, next) = (app.clone(), next.clone());
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= N {
                    break;
                }
                // Deterministic but varied splits that add up to exactly 100.
                let k = (i % 7) as f64 * 0.01;
                let mut values = [5.0; 10];
                values[i % 10] = 55.0 - k;
                values[(i + 1) % 10] = 5.0 + k;
                let values = values.map(|v| (v * 100.0).round() / 100.0);
                app.submit(values, None).await;
            }
        })
    });
    for client in clients {
        client.await.expect("client");
    }
    app.wait_folded(N as i64).await;
    let live = app.assert_folded_exactly(N as i64).await;
    let total: i64 = live.totals.iter().map(|t| t.sum_hundredths).sum();
    assert_eq!(total, 10_000 * N as i64);
}

async fn rebuild_during_writes_ends_exact(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let app = Arc::new(app);
    const N: usize = 400;
    let writers = (0..8).map(|w| {
        let app = app.clone();
        tokio::spawn(async move {
            for i in 0..N / 8 {
                let mut values = EVEN;
                values[(w + i) % 10] = 5.0;
                values[(w + i + 1) % 10] = 15.0;
                app.submit(values, None).await;
            }
        })
    });
    let writers: Vec<_> = writers.collect();
    let mut rebuilds = 0;
    while !writers.iter().all(|w| w.is_finished()) {
        app.app.rebuild_aggregates().await.expect("rebuild");
        rebuilds += 1;
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    app.app.rebuild_aggregates().await.expect("final rebuild");
    assert!(rebuilds >= 1);
    let aggregates = app.wait_folded(N as i64).await;
    app.assert_folded_exactly(N as i64).await;
    assert_eq!(averages(&aggregates).iter().sum::<i64>(), 10_000);
}

async fn a_submission_can_be_read_back_by_id(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, _) = app
        .submit([1.5, 98.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], None)
        .await;
    let query = "query($id: ID!) { submission(id: $id) { id createdAt allocations { category { slug } percentage } } }";
    let body = app.gql(query, json!({ "id": id }), None).await;
    let submission = &body["data"]["submission"];
    assert_eq!(submission["id"], id.as_str());
    assert_eq!(submission["allocations"][0]["percentage"], 1.5);
    assert_eq!(
        submission["allocations"][1]["category"]["slug"],
        "education"
    );
    assert_eq!(submission["allocations"].as_array().unwrap().len(), 10);
    let created = submission["createdAt"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );

    for missing in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let body = app.gql(query, json!({ "id": missing }), None).await;
        assert!(body["data"]["submission"].is_null(), "{body}");
        assert!(body["errors"].is_null());
    }
}

async fn a_cached_read_runs_no_sql(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.submit(EVEN, None).await;
    let cached = app.wait_folded(1).await;
    // Take away every table a database read could use: the cache must not notice.
    app.execute_sql(
        "ALTER TABLE aggregate_summary RENAME TO hidden_summary;
         ALTER TABLE aggregate_totals RENAME TO hidden_totals;
         ALTER TABLE allocations RENAME TO hidden_allocations;",
    )
    .await;
    let again = app.aggregates().await;
    assert_eq!(again["source"], "CACHE");
    assert_eq!(again["version"], cached["version"]);
    // The check can fail: without the cache the same read needs those tables.
    app.app.cache.invalidate().await.expect("invalidate");
    let body = app.gql(common::AGGREGATES, json!({}), None).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INTERNAL",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["message"],
        "internal error; it has been logged"
    );
}

/// `submitAllocation` with all of one category, written inline for transports that send no
/// variables here, under `alias`.
fn submit_inline(alias: &str, category: usize) -> String {
    let allocations: Vec<String> = (1..=10)
        .map(|id| {
            let percentage = if id == category { 100 } else { 0 };
            format!(r#"{{ categoryId: "{id}", percentage: {percentage} }}"#)
        })
        .collect();
    format!(
        "{alias}: submitAllocation(input: {{ allocations: [{}] }}) {{ submission {{ id }} }}",
        allocations.join(", ")
    )
}

fn limited(submissions_per_minute: u32) -> Options {
    Options {
        submit_rate_per_minute: submissions_per_minute,
        ..Options::default()
    }
}

/// Checks the error's shape; returns its `retryAfterSeconds`.
fn assert_rate_limited(error: &Value, field: &str) -> u64 {
    assert_eq!(error["extensions"]["code"], "RATE_LIMITED", "{error}");
    assert_eq!(error["path"], json!([field]), "{error}");
    let retry = error["extensions"]["retryAfterSeconds"]
        .as_u64()
        .expect("retryAfterSeconds");
    assert!(retry >= 1, "{error}");
    assert_eq!(
        error["message"],
        format!("too many submissions from your address; try again in {retry} s")
    );
    retry
}

async fn submissions_beyond_the_rate_are_refused_and_write_nothing(backend: Backend) {
    let Some(app) = spawn_app_with(backend, limited(2)).await else {
        return;
    };
    let first = app.submit_raw(allocation(EVEN), Some("first"), None).await;
    let token = first["data"]["submitAllocation"]["voterToken"]
        .as_str()
        .expect("token")
        .to_owned();
    app.submit(EVEN, Some(&token)).await;

    // The third within the minute: an execution error like any other, so HTTP 200.
    let response = reqwest::Client::new()
        .post(app.url("/graphql"))
        .json(&json!({
            "query": common::SUBMIT,
            "variables": { "input": { "allocations": allocation(EVEN), "idempotencyKey": "third" } },
        }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert!(body["data"].is_null(), "{body}");
    let retry = assert_rate_limited(&body["errors"][0], "submitAllocation");
    // Two per minute: one token back every 30 s.
    assert!(retry <= 30, "{body}");

    // Checked before any work: a replay of a stored key and invalid input are refused alike.
    let replay = app
        .submit_raw(allocation(EVEN), Some("first"), Some(&token))
        .await;
    assert_rate_limited(&replay["errors"][0], "submitAllocation");
    let invalid = app.submit_raw(json!([]), None, None).await;
    assert_rate_limited(&invalid["errors"][0], "submitAllocation");

    // Reads are not limited.
    let categories = app.gql("{ categories { id } }", json!({}), None).await;
    assert!(categories["errors"].is_null(), "{categories}");
    let aggregates = app.wait_folded(2).await;
    assert_eq!(aggregates["totalSubmissions"], 2);
    let history = app
        .gql("{ mySubmissions { id } }", json!({}), Some(token.as_str()))
        .await;
    assert_eq!(
        history["data"]["mySubmissions"].as_array().map(Vec::len),
        Some(2),
        "{history}"
    );

    assert_eq!(app.stored_submissions().await, 2, "refusals wrote nothing");
    assert_eq!(app.app.store.outbox_len().await.expect("outbox"), 0);
}

async fn aliases_and_websockets_share_the_address_limit(backend: Backend) {
    let Some(app) = spawn_app_with(backend, limited(2)).await else {
        return;
    };
    // A mutation over the WebSocket takes a token like one over POST.
    let one = format!("mutation {{ {} }}", submit_inline("ws", 1));
    let mut socket = Subscription::start(app.addr, Protocol::TransportWs, &one).await;
    let data = socket.next_data().await;
    assert!(data["ws"]["submission"]["id"].is_string(), "{data}");
    socket.close().await;

    // Every field of one request counts: the second alias is over the limit.
    let twice = format!(
        "mutation {{ {} {} }}",
        submit_inline("a", 2),
        submit_inline("b", 3)
    );
    let body = app.gql(&twice, json!({}), None).await;
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert_rate_limited(&errors[0], "b");

    // And the WebSocket is refused in the same words once the bucket is empty.
    let mut socket = Subscription::start(app.addr, Protocol::LegacyGraphqlWs, &one).await;
    let message = socket.next_message().await.expect("a result");
    assert_eq!(message["type"], "data", "{message}");
    assert_rate_limited(&message["payload"]["errors"][0], "ws");
    socket.close().await;

    app.wait_folded(2).await;
    assert_eq!(app.stored_submissions().await, 2);
}
