//! The behaviour suite: every test runs against the embedded default (SQLite, in-process
//! cache and bus) and against PostgreSQL + Redis, through real HTTP and WebSocket, except
//! one about PostgreSQL's schema alone.

use std::sync::Arc;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tax_budget::config::DatabaseUrl;

use crate::harness::gql::{
    AggregateSource, AggregatesData, CategoriesData, GqlResponse, GraphqlError, MySubmissionsData,
    PathSegment, SubmissionData, SubmitAllocationPayload, SubmitData, AGGREGATES,
    AGGREGATES_UPDATED, CATEGORIES, SUBMISSION, SUBMISSION_FIELDS, SUBMIT,
};
use crate::harness::ws::{Protocol, Subscription};
use crate::harness::{
    allocation, on_both_backends, spawn_app, spawn_app_on, spawn_app_with, Backend, Options,
    TestApp, TestBackend, EVEN,
};

on_both_backends!(
    categories_are_seeded_in_display_order,
    a_submission_reaches_the_aggregates,
    every_kind_of_bad_input_is_refused_and_nothing_is_written,
    an_idempotency_key_replays_the_first_response,
    an_idempotency_key_belongs_to_its_voter,
    an_idempotency_key_with_another_payload_is_refused_and_writes_nothing,
    a_retry_after_a_lost_response_gets_the_voter_token,
    an_idempotency_key_sent_concurrently_writes_once,
    an_idempotency_key_raced_with_two_payloads_stores_one,
    keys_stored_before_the_upgrade_keep_their_scope_and_payload,
    submissions_without_a_key_are_left_out_of_the_key_indexes,
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
    let categories = app
        .request::<CategoriesData>(CATEGORIES, json!({}), None)
        .await
        .expect_data()
        .categories;
    let names: Vec<&str> = categories.iter().map(|c| c.name.as_str()).collect();
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
        assert_eq!(c.display_order, i as i64 + 1);
        let color = &c.color;
        assert!(color.len() == 7 && color.starts_with('#'), "{color}");
        assert!(!c.slug.is_empty());
    }
}

async fn a_submission_reaches_the_aggregates(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let before = app.aggregates().await;
    assert_eq!(before.total_submissions, 0);
    assert_eq!(before.averages(), vec![0; 10]);

    app.submit([100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], None)
        .await;
    app.submit([0.0, 100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], None)
        .await;
    app.submit([0.0, 0.0, 50.5, 49.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], None)
        .await;
    let after = app.wait_folded(3).await;

    // 100/3 = 33.333…: the largest remainder gets the spare hundredth, so the sum is 100.00.
    assert_eq!(
        after.averages(),
        vec![3334, 3333, 1683, 1650, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(after.averages().iter().sum::<i64>(), 10_000);
    assert_eq!(after.source, AggregateSource::Cache);
    assert!(after.version > before.version);
    assert_eq!(after.categories[0].category.name, "Healthcare");
}

/// One kind of bad input and how it is refused.
struct BadInput {
    name: &'static str,
    /// The `SubmitAllocationInput`, as sent.
    input: Value,
    status: u16,
    code: &'static str,
    /// `extensions.field`: none where the request is refused before it runs.
    field: Option<&'static str>,
    /// Words the message contains.
    words: &'static str,
    /// The fields of `extensions.problems`, in order.
    problems: &'static [&'static str],
}

async fn every_kind_of_bad_input_is_refused_and_nothing_is_written(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let ok = [10.0; 10];
    let list = |allocations: Value| json!({ "allocations": allocations });
    // Every entry 10, except entry `i`.
    let with = |i: usize, v: f64| {
        let mut values = ok;
        values[i] = v;
        list(allocation(values))
    };
    let with_category = |i: usize, id: &str| {
        let mut allocations = allocation(ok);
        allocations[i]["categoryId"] = json!(id);
        list(allocations)
    };
    let with_key = |key: Value| json!({ "allocations": allocation(ok), "idempotencyKey": key });
    let entries = |n: usize| {
        list(Value::Array(
            (0..n)
                .map(|_| json!({"categoryId": "1", "percentage": 0}))
                .collect(),
        ))
    };
    let mut several = allocation(ok);
    several[0]["percentage"] = json!(-1);
    several[1]["percentage"] = json!(101);

    let table = [
        BadInput {
            name: "percentages adding up to less than 100",
            input: with(9, 9.99),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations"),
            words: "add up to 99.99",
            problems: &["input.allocations"],
        },
        BadInput {
            name: "percentages adding up to more than 100",
            input: with(9, 10.01),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations"),
            words: "add up to 100.01",
            problems: &["input.allocations"],
        },
        BadInput {
            name: "a negative percentage",
            input: with(2, -10.0),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations[2].percentage"),
            words: "negative",
            problems: &["input.allocations[2].percentage"],
        },
        BadInput {
            name: "another negative percentage",
            input: with(1, -1.0),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations[1].percentage"),
            words: "negative",
            problems: &["input.allocations[1].percentage"],
        },
        BadInput {
            name: "a percentage above 100",
            input: with(0, 100.5),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations[0].percentage"),
            words: "over 100",
            problems: &["input.allocations[0].percentage"],
        },
        BadInput {
            name: "a percentage with three decimals",
            input: with(4, 10.005),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations[4].percentage"),
            words: "two decimals",
            problems: &["input.allocations[4].percentage"],
        },
        BadInput {
            name: "a hair above a hundredth (10.000000001)",
            input: with(4, 10.000000001),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations[4].percentage"),
            words: "two decimals",
            problems: &["input.allocations[4].percentage"],
        },
        BadInput {
            name: "a hair below a hundredth (9.999999999)",
            input: with(5, 9.999999999),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations[5].percentage"),
            words: "two decimals",
            problems: &["input.allocations[5].percentage"],
        },
        BadInput {
            name: "a tiny positive number (1e-9)",
            input: with(6, 1e-9),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations[6].percentage"),
            words: "two decimals",
            problems: &["input.allocations[6].percentage"],
        },
        BadInput {
            name: "several problems at once, each listed with its field",
            input: list(several),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations[0].percentage"),
            words: "negative",
            problems: &[
                "input.allocations[0].percentage",
                "input.allocations[1].percentage",
            ],
        },
        BadInput {
            name: "an unknown category",
            input: with_category(3, "999"),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations[3].categoryId"),
            words: "unknown category",
            problems: &["input.allocations[3].categoryId"],
        },
        BadInput {
            name: "a category id that is no id",
            input: with_category(3, "not-an-id"),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations[3].categoryId"),
            words: "unknown category",
            problems: &["input.allocations[3].categoryId"],
        },
        BadInput {
            name: "a category twice",
            input: with_category(5, "1"),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations[5].categoryId"),
            words: "more than once",
            problems: &["input.allocations[5].categoryId"],
        },
        BadInput {
            name: "a missing category",
            input: list(Value::Array(
                allocation(ok).as_array().unwrap()[..9].to_vec(),
            )),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations"),
            words: "missing categories: Other",
            problems: &["input.allocations"],
        },
        BadInput {
            name: "no allocations",
            input: list(json!([])),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations"),
            words: "empty",
            problems: &["input.allocations"],
        },
        BadInput {
            name: "more entries than categories could need",
            input: entries(1000),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.allocations"),
            words: "at most 100",
            problems: &["input.allocations"],
        },
        // Far beyond any valid request: refused before it is read, still as JSON.
        BadInput {
            name: "a body beyond the size limit",
            input: entries(5000),
            status: 413,
            code: "BAD_REQUEST",
            field: None,
            words: "length limit",
            problems: &[],
        },
        // Refused before anything runs: with graphql-response+json (the default), 400.
        BadInput {
            name: "a percentage of the wrong type",
            input: list(json!([{ "categoryId": "1", "percentage": "ten" }])),
            status: 400,
            code: "BAD_USER_INPUT",
            field: None,
            words: r#""input.allocations.0.percentage", expected type "Float""#,
            problems: &[],
        },
        BadInput {
            name: "an idempotency key of the wrong type",
            input: with_key(json!(42)),
            status: 400,
            code: "BAD_USER_INPUT",
            field: None,
            words: r#""input.idempotencyKey", expected type "String""#,
            problems: &[],
        },
        BadInput {
            name: "an empty idempotency key",
            input: with_key(json!("")),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.idempotencyKey"),
            words: "idempotencyKey",
            problems: &["input.idempotencyKey"],
        },
        BadInput {
            name: "an idempotency key over 128 characters",
            input: with_key(json!("k".repeat(129))),
            status: 200,
            code: "BAD_USER_INPUT",
            field: Some("input.idempotencyKey"),
            words: "idempotencyKey",
            problems: &["input.idempotencyKey"],
        },
    ];

    // Twice: before the document has passed validation, and after (a valid submission of the
    // same document lets later ones skip all but the check of their variables, which must
    // then refuse exactly as the full validation did).
    for written in [0, 1] {
        if written == 1 {
            let request =
                json!({ "query": SUBMIT, "variables": { "input": list(allocation(ok)) } });
            let (status, response) = app.post::<SubmitData>(&request).await;
            assert_eq!(status.as_u16(), 200, "{response:?}");
            assert!(response.errors.is_empty(), "{response:?}");
        }
        for row in &table {
            assert_refused(&app, row, written).await;
        }
    }
}

/// Sends `row`'s input and checks its refusal, and that the database holds no more than the
/// `written` submissions it held.
async fn assert_refused(app: &TestApp, row: &BadInput, written: i64) {
    let name = row.name;
    let request = json!({ "query": SUBMIT, "variables": { "input": &row.input } });
    let (status, response) = app.post::<SubmitData>(&request).await;
    assert_eq!(status.as_u16(), row.status, "{name}: {response:?}");
    assert!(response.data.is_none(), "{name}: {response:?}");
    let error = response.first_error();
    assert_eq!(error.extensions.code, row.code, "{name}: {error:?}");
    assert_eq!(
        error.extensions.field.as_deref(),
        row.field,
        "{name}: {error:?}"
    );
    assert!(
        error.message.contains(row.words),
        "{name}: message {:?} should mention {:?}",
        error.message,
        row.words
    );
    let problems: Vec<&str> = error
        .extensions
        .problems
        .iter()
        .map(|p| p.field.as_str())
        .collect();
    assert_eq!(problems, row.problems, "{name}: {error:?}");

    // Nothing reached the database.
    let live = app.app.store.live_snapshot().await.expect("live");
    assert_eq!(live.total_submissions, written, "{name}");
    assert_eq!(live.totals.is_empty(), written == 0, "{name}");
    let outbox = app.app.store.outbox_len().await.expect("outbox");
    assert!(outbox <= written, "{name}: {outbox} outbox rows");
}

/// [`EVEN`] with 10 points moved from the second category to the first.
const UNEVEN: [f64; 10] = [20.0, 0.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0];

/// Fails the test unless `response` is the refusal of a reused idempotency key.
fn assert_key_reused(response: &GqlResponse<SubmitData>) {
    assert!(response.data.is_none(), "{response:?}");
    let error = response.first_error();
    assert_eq!(error.extensions.code, "IDEMPOTENCY_KEY_REUSED", "{error:?}");
    assert_eq!(
        error.extensions.field.as_deref(),
        Some("input.idempotencyKey")
    );
    assert!(error.message.contains("idempotencyKey"), "{error:?}");
}

/// The ids of a voter's submissions, newest first.
async fn history(app: &TestApp, token: &str) -> Vec<String> {
    my_submissions(app, None, Some(token))
        .await
        .expect_data()
        .my_submissions
        .into_iter()
        .map(|s| s.id)
        .collect()
}

async fn an_idempotency_key_replays_the_first_response(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let first = app
        .submit_raw(allocation(EVEN), Some("key-1"), None)
        .await
        .expect_data()
        .submit_allocation;
    let token = first.voter_token.clone().expect("token");

    // The first response again, whole: also its voterToken (before: no token on a replay).
    let again = app
        .submit_raw(allocation(EVEN), Some("key-1"), None)
        .await
        .expect_data()
        .submit_allocation;
    assert_eq!(again, first);
    // The same payload is the same validated split, in any order, `10` as well as `10.0`.
    let mut reordered: Vec<Value> = allocation(EVEN)
        .as_array()
        .expect("a list")
        .iter()
        .rev()
        .cloned()
        .collect();
    reordered[0]["percentage"] = json!(10);
    let again = app
        .submit_raw(Value::Array(reordered), Some("key-1"), Some(&token))
        .await
        .expect_data()
        .submit_allocation;
    assert_eq!(again, first);

    // Another payload under the key is refused (before: the first submission came back).
    let other = app
        .submit_raw(allocation(UNEVEN), Some("key-1"), Some(&token))
        .await;
    assert_key_reused(&other);

    // Another voter's use of the key is their own submission (before: refused as taken).
    let stranger = app.submit(EVEN, None).await.voter_token.expect("token");
    let theirs = app
        .submit_raw(allocation(EVEN), Some("key-1"), Some(&stranger))
        .await
        .expect_data()
        .submit_allocation;
    assert_ne!(theirs.submission.id, first.submission.id);
    assert!(theirs.voter_token.is_none());

    app.wait_folded(3).await;
    assert_eq!(app.stored_submissions().await, 3);
}

/// Keys used to be global: an anonymous caller who sent another voter's key got that voter's
/// submission, and their own vote was dropped without a word.
async fn an_idempotency_key_belongs_to_its_voter(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let alice = app.submit(EVEN, None).await.voter_token.expect("token");
    let alices = app
        .submit_raw(allocation(EVEN), Some("shared"), Some(&alice))
        .await
        .expect_data()
        .submit_allocation;

    // An anonymous caller with Alice's key and payload: a new voter and a submission of its
    // own, nothing of Alice's.
    let anonymous = app
        .submit_raw(allocation(EVEN), Some("shared"), None)
        .await
        .expect_data()
        .submit_allocation;
    assert_ne!(anonymous.submission.id, alices.submission.id);
    let carol = anonymous.voter_token.clone().expect("a new voter's token");
    assert_ne!(carol, alice);
    assert_eq!(
        history(&app, &carol).await,
        [anonymous.submission.id.as_str()]
    );

    // Without a token the key now belongs to the voter it created: the same payload replays
    // that call, another is refused, and neither is stored twice or dropped unseen.
    let replay = app
        .submit_raw(allocation(EVEN), Some("shared"), None)
        .await
        .expect_data()
        .submit_allocation;
    assert_eq!(replay, anonymous);
    assert_key_reused(
        &app.submit_raw(allocation(UNEVEN), Some("shared"), None)
            .await,
    );

    // Bob, with a token, has the key to himself, with any payload.
    let bob = app.submit(EVEN, None).await.voter_token.expect("token");
    let bobs = app
        .submit_raw(allocation(UNEVEN), Some("shared"), Some(&bob))
        .await
        .expect_data()
        .submit_allocation;
    assert!(bobs.voter_token.is_none());
    let bobs_again = app
        .submit_raw(allocation(UNEVEN), Some("shared"), Some(&bob))
        .await
        .expect_data()
        .submit_allocation;
    assert_eq!(bobs_again, bobs);

    let ids = [&alices, &anonymous, &bobs].map(|p| p.submission.id.clone());
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    assert_eq!(history(&app, &alice).await[0], ids[0]);
    assert_eq!(history(&app, &bob).await[0], ids[2]);
    assert_eq!(history(&app, &alice).await.len(), 2);
    assert_eq!(history(&app, &bob).await.len(), 2);

    app.wait_folded(5).await;
    assert_eq!(app.stored_submissions().await, 5);
}

/// A replay with other allocations used to return the first submission as if it were stored.
async fn an_idempotency_key_with_another_payload_is_refused_and_writes_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let first = app
        .submit_raw(allocation(EVEN), Some("key-p"), None)
        .await
        .expect_data()
        .submit_allocation;
    let token = first.voter_token.expect("token");
    // In the anonymous scope and in the voter's own (the key created this voter).
    assert_key_reused(
        &app.submit_raw(allocation(UNEVEN), Some("key-p"), None)
            .await,
    );
    assert_key_reused(
        &app.submit_raw(allocation(UNEVEN), Some("key-p"), Some(&token))
            .await,
    );

    // A key first sent with a token is bound the same way.
    app.submit_raw(allocation(UNEVEN), Some("key-q"), Some(&token))
        .await
        .expect_data();
    assert_key_reused(
        &app.submit_raw(allocation(EVEN), Some("key-q"), Some(&token))
            .await,
    );

    app.wait_folded(2).await;
    assert_eq!(app.stored_submissions().await, 2, "refusals wrote nothing");
    assert_eq!(history(&app, &token).await.len(), 2);
    assert_eq!(app.app.store.outbox_len().await.expect("outbox"), 0);
}

/// The failure idempotency is for: the first response is lost. The retry used to come back
/// without `voterToken`, so the new voter's token was lost for good.
async fn a_retry_after_a_lost_response_gets_the_voter_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let key = "3f1c7c1e-5d0c-4c53-9a43-5c2f8f0a7a11";
    let lost = app
        .submit_raw(allocation(EVEN), Some(key), None)
        .await
        .expect_data()
        .submit_allocation;
    let retry = app
        .submit_raw(allocation(EVEN), Some(key), None)
        .await
        .expect_data()
        .submit_allocation;
    let token = retry.voter_token.expect("the first response's token");
    assert_eq!(Some(token.clone()), lost.voter_token);
    assert_eq!(retry.submission.id, lost.submission.id);
    // It is the voter's token: it shows the history and submits as that voter.
    assert_eq!(history(&app, &token).await, [lost.submission.id.as_str()]);
    let next = app.submit(UNEVEN, Some(&token)).await;
    assert!(next.voter_token.is_none());
    assert_eq!(history(&app, &token).await.len(), 2);

    // The database holds neither the key nor the token, only hashes and the sealed token.
    let stored = app
        .query_texts(
            "SELECT COALESCE(idempotency_key_hash, '') || ' ' || COALESCE(payload_hash, '')
                    || ' ' || COALESCE(voter_token_sealed, '') AS text FROM submissions
             UNION ALL SELECT token_hash AS text FROM voters",
        )
        .await
        .join("\n");
    assert!(
        stored.contains(&hex::encode(Sha256::digest(key))),
        "{stored}"
    );
    // A token's last 64 hex digits are its secret (its start is a time-ordered id, which the
    // stored key begins with).
    for secret in [key, token.as_str(), &token[token.len() - 64..]] {
        assert!(
            !stored.contains(secret),
            "{secret} is stored in clear:\n{stored}"
        );
    }
    assert_eq!(
        app.query_texts("SELECT voter_token_sealed AS text FROM submissions WHERE voter_token_sealed IS NOT NULL")
            .await
            .len(),
        1,
        "one sealed token, of the keyed anonymous call"
    );
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
    let mut responses = Vec::new();
    for call in calls {
        responses.push(call.await.expect("task").expect_data().submit_allocation);
    }
    // Every call gets the first response (before: only the call that wrote had a token).
    let first = &responses[0];
    assert!(
        responses.iter().all(|r| r == first),
        "all calls return the first submission and its token: {responses:#?}"
    );
    let token = first.voter_token.as_deref().expect("the new voter's token");
    assert_eq!(history(&app, token).await, [first.submission.id.as_str()]);
    app.wait_folded(1).await;
    assert_eq!(app.stored_submissions().await, 1);

    // The same with a voter token: one submission, the others replay it.
    let calls = (0..12).map(|_| {
        let (app, token) = (app.clone(), token.to_owned());
        tokio::spawn(async move {
            app.submit_raw(allocation(UNEVEN), Some("voter-key"), Some(&token))
                .await
        })
    });
    let mut ids = Vec::new();
    for call in calls {
        let payload = call.await.expect("task").expect_data().submit_allocation;
        assert!(payload.voter_token.is_none());
        ids.push(payload.submission.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "all calls return the first submission");
    assert_ne!(ids[0], first.submission.id);

    app.wait_folded(2).await;
    assert_eq!(app.stored_submissions().await, 2);
}

/// Concurrent first uses of a key with two payloads: one is stored, the calls that sent its
/// payload replay it, and every other call is refused. None is dropped unseen.
async fn an_idempotency_key_raced_with_two_payloads_stores_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let app = Arc::new(app);
    let voter = app.submit(EVEN, None).await.voter_token.expect("token");
    // The same key in both scopes: the anonymous one, and the voter's own.
    for token in [None, Some(voter)] {
        let calls = (0..12).map(|i| {
            let (app, token) = (app.clone(), token.clone());
            let values = if i % 2 == 0 { EVEN } else { UNEVEN };
            tokio::spawn(async move {
                let response = app
                    .submit_raw(allocation(values), Some("race"), token.as_deref())
                    .await;
                (values, response)
            })
        });
        let mut stored: Option<([f64; 10], SubmitAllocationPayload)> = None;
        let mut refused = Vec::new();
        for call in calls {
            let (values, response) = call.await.expect("task");
            if response.errors.is_empty() {
                let payload = response.expect_data().submit_allocation;
                let percentages: Vec<f64> = payload
                    .submission
                    .allocations
                    .iter()
                    .map(|a| a.percentage)
                    .collect();
                assert_eq!(percentages, values, "a replay of the payload it sent");
                match &stored {
                    Some((_, first)) => assert_eq!(&payload, first),
                    None => stored = Some((values, payload)),
                }
            } else {
                assert_key_reused(&response);
                refused.push(values);
            }
        }
        let (winner, payload) = stored.expect("one payload is stored");
        assert_eq!(refused.len(), 6, "{token:?}");
        assert!(refused.iter().all(|v| *v != winner));
        assert_eq!(payload.voter_token.is_some(), token.is_none());
    }
    app.wait_folded(3).await;
    assert_eq!(app.stored_submissions().await, 3);
}

/// The rows of a release whose keys were global and kept in clear, for the upgrade test: an
/// anonymous submission that created its voter with a key, and a voter (whose token is
/// `tbv1_bb…b`) with a first submission without a key and a second with one.
const LEGACY_ROWS: &str = "
    INSERT INTO voters (id, token_hash, created_at) VALUES
      ('00000000-0000-4000-8000-00000000000a', 'unknown', '2026-11-20T10:00:00.000000Z'),
      ('00000000-0000-4000-8000-00000000000b', '$HASH_B', '2026-11-20T11:00:00.000000Z');
    INSERT INTO submissions (id, voter_id, created_at, idempotency_key) VALUES
      ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-00000000000a',
       '2026-11-20T10:00:00.000000Z', 'legacy-anonymous'),
      ('00000000-0000-4000-8000-0000000000b1', '00000000-0000-4000-8000-00000000000b',
       '2026-11-20T11:00:00.000000Z', NULL),
      ('00000000-0000-4000-8000-0000000000b2', '00000000-0000-4000-8000-00000000000b',
       '2026-11-20T12:00:00.000000Z', 'legacy-voter');
    INSERT INTO aggregate_outbox (submission_id, created_at) VALUES
      ('00000000-0000-4000-8000-0000000000a1', '2026-11-20T10:00:00.000000Z'),
      ('00000000-0000-4000-8000-0000000000b1', '2026-11-20T11:00:00.000000Z'),
      ('00000000-0000-4000-8000-0000000000b2', '2026-11-20T12:00:00.000000Z');
";

/// The unique indexes of idempotency keys hold only the rows that have a key: a row without
/// one can never conflict (a unique index admits any number of NULLs), and indexing it cost
/// two index entries per submission. That they still refuse a key taken twice is what the
/// concurrent tests above show.
async fn submissions_without_a_key_are_left_out_of_the_key_indexes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let definitions = app
        .query_texts(match backend {
            Backend::Postgres => {
                "SELECT indexdef AS text FROM pg_indexes
                 WHERE tablename = 'submissions' AND indexname LIKE 'submissions_key%'
                 ORDER BY indexname"
            }
            Backend::Sqlite => {
                "SELECT sql AS text FROM sqlite_schema
                 WHERE type = 'index' AND name LIKE 'submissions_key%' ORDER BY name"
            }
        })
        .await;
    let definitions: Vec<String> = definitions
        .iter()
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(definitions.len(), 2, "{definitions:#?}");
    for definition in &definitions {
        assert!(
            definition.starts_with("CREATE UNIQUE INDEX"),
            "{definition}"
        );
        assert!(
            definition.contains("idempotency_key_hash IS NOT NULL"),
            "not limited to rows with a key: {definition}"
        );
    }
    assert!(
        definitions[0].contains("created_voter"),
        "the anonymous scope's index keeps its condition: {}",
        definitions[0]
    );
}

/// On PostgreSQL an allocation is written with no per-row reference checks (its two foreign
/// keys were half of what a batch of submissions cost the database); a category that
/// allocations name still cannot be deleted or renumbered, and one that none names still can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_that_allocations_name_cannot_be_deleted_or_renumbered() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let foreign_keys = app
        .query_texts(
            "SELECT conname AS text FROM pg_constraint
             WHERE conrelid = 'allocations'::regclass AND contype = 'f'",
        )
        .await;
    assert_eq!(foreign_keys, Vec::<String>::new());
    app.submit(EVEN, None).await;
    app.execute_sql(
        "INSERT INTO categories (id, slug, name, description, color, display_order)
         VALUES (99, 'unnamed', 'Unnamed', 'named by no allocation', '#000000', 99)",
    )
    .await;

    let DatabaseUrl::Postgres(url) = &app.backend.db.url else {
        unreachable!("a PostgreSQL backend");
    };
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
    for refused in [
        "DELETE FROM categories WHERE id = 1",
        "UPDATE categories SET id = 100 WHERE id = 2",
    ] {
        let error = conn.batch_execute(refused).await.expect_err(refused);
        assert!(
            error.to_string().contains("is named by allocations"),
            "{refused}: {error}"
        );
    }
    conn.batch_execute("UPDATE categories SET id = 3, name = 'Renamed' WHERE id = 3")
        .await
        .expect("a category keeping its id may change");
    conn.batch_execute("UPDATE categories SET id = 98 WHERE id = 99")
        .await
        .expect("an unnamed category may be renumbered");
    conn.batch_execute("DELETE FROM categories WHERE id = 98")
        .await
        .expect("an unnamed category may be deleted");
    let left = app
        .query_texts("SELECT count(*)::text AS text FROM categories")
        .await;
    assert_eq!(left, ["10"]);
}

/// Keys stored before keys were scoped and hashed: the migration hashes them and tells the
/// keys that created voters from a voter's own, and their payload is their allocations.
async fn keys_stored_before_the_upgrade_keep_their_scope_and_payload(backend: Backend) {
    let Some(backend) = TestBackend::create(backend).await else {
        return;
    };
    backend.migrate_first(1).await;
    let token_b = format!("tbv1_{}", "b".repeat(64));
    let hash_b = hex::encode(Sha256::digest(token_b.as_bytes()));
    let mut sql = LEGACY_ROWS.replace("$HASH_B", &hash_b);
    for (submission, values) in [("a1", EVEN), ("b1", EVEN), ("b2", UNEVEN)] {
        for (i, value) in values.iter().enumerate() {
            sql.push_str(&format!(
                "INSERT INTO allocations (submission_id, category_id, hundredths) VALUES \
                 ('00000000-0000-4000-8000-0000000000{submission}', {}, {});",
                i + 1,
                (value * 100.0).round() as i64
            ));
        }
    }
    backend.execute_sql(&sql).await;
    let app = spawn_app_on(backend, Options::default()).await;
    let legacy = |n: &str| format!("00000000-0000-4000-8000-0000000000{n}");

    // The key that created a voter replays its submission to an anonymous caller with the same
    // allocations, without a token (none was kept), and refuses other allocations.
    let replay = app
        .submit_raw(allocation(EVEN), Some("legacy-anonymous"), None)
        .await
        .expect_data()
        .submit_allocation;
    assert_eq!(replay.submission.id, legacy("a1"));
    assert_eq!(replay.voter_token, None);
    assert_key_reused(
        &app.submit_raw(allocation(UNEVEN), Some("legacy-anonymous"), None)
            .await,
    );

    // A key a voter sent with its token is that voter's: an anonymous caller gets a submission
    // of its own, the voter the replay of its own.
    let anonymous = app
        .submit_raw(allocation(UNEVEN), Some("legacy-voter"), None)
        .await
        .expect_data()
        .submit_allocation;
    assert_ne!(anonymous.submission.id, legacy("b2"));
    assert!(anonymous.voter_token.is_some());
    let own = app
        .submit_raw(allocation(UNEVEN), Some("legacy-voter"), Some(&token_b))
        .await
        .expect_data()
        .submit_allocation;
    assert_eq!(own.submission.id, legacy("b2"));
    assert_eq!(own.voter_token, None);
    assert_key_reused(
        &app.submit_raw(allocation(EVEN), Some("legacy-voter"), Some(&token_b))
            .await,
    );
    assert_eq!(
        history(&app, &token_b).await,
        [legacy("b2"), legacy("b1")],
        "the rebuilt table keeps every row"
    );

    // The keys are hashed now; the old rows' allocations and outbox rows still reference them.
    let keys = app
        .query_texts(
            "SELECT idempotency_key_hash AS text FROM submissions
             WHERE idempotency_key_hash IS NOT NULL ORDER BY created_at",
        )
        .await;
    let hashed = |key: &str| hex::encode(Sha256::digest(key.as_bytes()));
    assert_eq!(
        keys[..2],
        [hashed("legacy-anonymous"), hashed("legacy-voter")]
    );
    app.assert_folded_exactly(4).await;
}

/// `mySubmissions` as the voter `token`, `first` of them (the server's default without).
async fn my_submissions(
    app: &TestApp,
    first: Option<i64>,
    token: Option<&str>,
) -> GqlResponse<MySubmissionsData> {
    let argument = first.map(|n| format!("(first: {n})")).unwrap_or_default();
    let query = format!("{{ mySubmissions{argument} {{ {SUBMISSION_FIELDS} }} }}");
    app.request(&query, json!({}), token).await
}

async fn voter_tokens_scope_history_and_bad_tokens_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let first = app.submit(EVEN, None).await;
    let token = first.voter_token.expect("a new voter gets a token");
    assert!(token.len() >= 32);
    let mut second_values = EVEN;
    second_values[0] = 19.99;
    second_values[9] = 0.01;
    let second = app.submit(second_values, Some(&token)).await;
    assert!(
        second.voter_token.is_none(),
        "an existing voter gets no new token"
    );
    let other_token = app.submit(EVEN, None).await.voter_token;

    let mine = my_submissions(&app, None, Some(&token))
        .await
        .expect_data()
        .my_submissions;
    let ids: Vec<&str> = mine.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [second.submission.id.as_str(), first.submission.id.as_str()],
        "newest first"
    );
    assert_eq!(mine[0].allocations[0].percentage, 19.99);

    let theirs = my_submissions(&app, None, other_token.as_deref())
        .await
        .expect_data();
    assert_eq!(theirs.my_submissions.len(), 1);
    let one = my_submissions(&app, Some(1), Some(&token))
        .await
        .expect_data();
    assert_eq!(one.my_submissions[0].id, second.submission.id);
    let zero = my_submissions(&app, Some(0), Some(&token)).await;
    let error = zero.first_error();
    assert_eq!(error.extensions.code, "BAD_USER_INPUT");
    assert_eq!(error.extensions.field.as_deref(), Some("first"));

    let unknown = format!("tbv1_{}", "ab".repeat(32));
    let unknown_v2 = tax_budget::voter_token::VoterToken::generate();
    for bad in [
        "garbage",
        "tbv1_short",
        unknown.as_str(),
        unknown_v2.as_str(),
    ] {
        let refused = my_submissions(&app, None, Some(bad)).await;
        assert_eq!(
            refused.first_error().extensions.code,
            "UNAUTHENTICATED",
            "{bad}: {refused:?}"
        );
        let submit = app.submit_raw(allocation(EVEN), None, Some(bad)).await;
        assert_eq!(
            submit.first_error().extensions.code,
            "UNAUTHENTICATED",
            "{bad}: {submit:?}"
        );
    }
    let anonymous = my_submissions(&app, None, None).await;
    assert_eq!(anonymous.first_error().extensions.code, "UNAUTHENTICATED");

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
    assert_eq!(cached.source, AggregateSource::Cache);

    app.app.cache.invalidate().await.expect("invalidate");
    let summary = app.aggregates().await;
    assert_eq!(summary.source, AggregateSource::Summary);
    // The summary read filled the cache again.
    assert_eq!(app.aggregates().await.source, AggregateSource::Cache);

    app.app.store.mark_summary_stale().await.expect("stale");
    app.app.cache.invalidate().await.expect("invalidate");
    let live = app.aggregates().await;
    assert_eq!(live.source, AggregateSource::Live);

    for tier in [&summary, &live] {
        assert_eq!(tier.total_submissions, cached.total_submissions);
        assert_eq!(tier.version, cached.version);
        assert_eq!(tier.averages(), cached.averages());
    }
    assert_eq!(
        cached.averages(),
        vec![1523, 2033, 1778, 667, 667, 667, 667, 666, 666, 666]
    );
    assert_eq!(cached.averages().iter().sum::<i64>(), 10_000);
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
    assert_eq!(live.source, AggregateSource::Live);
    assert_eq!(live.total_submissions, 2);
    assert_eq!(live.averages(), vec![2500, 5000, 2500, 0, 0, 0, 0, 0, 0, 0]);

    // A worker creates the summary from scratch and folds the outbox into it, exactly once.
    let worker = app.app.spawn_worker();
    let folded = app.wait_folded(2).await;
    assert_eq!(folded.averages(), live.averages());
    worker.abort();
    // The worker writes the cache after its fold commits, after the fold is seen.
    let read = app.read_past_the_cache(AggregateSource::Summary).await;
    assert_eq!(read.total_submissions, 2);
    assert_eq!(read.averages(), live.averages());
}

async fn subscribers_get_the_current_snapshot_then_updates(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for protocol in [Protocol::TransportWs, Protocol::LegacyGraphqlWs] {
        let before = app.aggregates().await.total_submissions;
        let mut sub = Subscription::start(app.addr(), protocol, AGGREGATES_UPDATED).await;
        let initial = sub.next_snapshot().await;
        assert_eq!(initial.total_submissions, before, "{protocol:?}");
        app.submit([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0], None)
            .await;
        let update = sub.wait_for(|s| s.total_submissions == before + 1).await;
        assert!(update.version > initial.version);
        assert_eq!(update.categories[9].average_percentage, 100.0);
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
    assert_eq!(aggregates.averages().iter().sum::<i64>(), 10_000);
}

async fn a_submission_can_be_read_back_by_id(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let id = app
        .submit([1.5, 98.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], None)
        .await
        .submission
        .id;
    let submission = app
        .request::<SubmissionData>(SUBMISSION, json!({ "id": id }), None)
        .await
        .expect_data()
        .submission
        .expect("the submission");
    assert_eq!(submission.id, id);
    assert_eq!(submission.allocations[0].percentage, 1.5);
    assert_eq!(submission.allocations[1].category.slug, "education");
    assert_eq!(submission.allocations.len(), 10);
    let created = &submission.created_at;
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );

    for missing in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let response = app
            .request::<SubmissionData>(SUBMISSION, json!({ "id": missing }), None)
            .await;
        assert!(response.errors.is_empty(), "{response:?}");
        assert!(response.data.expect("data").submission.is_none());
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
    assert_eq!(again.source, AggregateSource::Cache);
    assert_eq!(again.version, cached.version);
    // The check can fail: without the cache the same read needs those tables.
    app.app.cache.invalidate().await.expect("invalidate");
    let response = app
        .request::<AggregatesData>(AGGREGATES, json!({}), None)
        .await;
    let error = response.first_error();
    assert_eq!(error.extensions.code, "INTERNAL", "{response:?}");
    assert_eq!(error.message, "internal error; it has been logged");
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
        "{alias}: submitAllocation(input: {{ allocations: [{}] }}) {{ submission {{ {SUBMISSION_FIELDS} }} }}",
        allocations.join(", ")
    )
}

/// The data of a mutation of [`submit_inline`] under the alias `ws`.
#[derive(Debug, Deserialize)]
struct SubmittedAsWs {
    ws: SubmitAllocationPayload,
}

fn limited(submissions_per_minute: u32) -> Options {
    Options {
        submit_rate_per_minute: submissions_per_minute,
        ..Options::default()
    }
}

/// Checks the error's shape; returns its `retryAfterSeconds`.
fn assert_rate_limited(error: &GraphqlError, field: &str) -> u64 {
    assert_eq!(error.extensions.code, "RATE_LIMITED", "{error:?}");
    assert_eq!(
        error.path,
        [PathSegment::Field(field.to_owned())],
        "{error:?}"
    );
    let retry = error
        .extensions
        .retry_after_seconds
        .expect("retryAfterSeconds");
    assert!(retry >= 1, "{error:?}");
    assert_eq!(
        error.message,
        format!("too many submissions from your address; try again in {retry} s")
    );
    retry
}

async fn submissions_beyond_the_rate_are_refused_and_write_nothing(backend: Backend) {
    let Some(app) = spawn_app_with(backend, limited(2)).await else {
        return;
    };
    let first = app
        .submit_raw(allocation(EVEN), Some("first"), None)
        .await
        .expect_data()
        .submit_allocation;
    let token = first.voter_token.expect("token");
    app.submit(EVEN, Some(&token)).await;

    // The third within the minute: an execution error like any other, so HTTP 200.
    let (status, response) = app
        .post::<SubmitData>(&json!({
            "query": SUBMIT,
            "variables": { "input": { "allocations": allocation(EVEN), "idempotencyKey": "third" } },
        }))
        .await;
    assert_eq!(status, 200);
    assert!(response.data.is_none(), "{response:?}");
    let retry = assert_rate_limited(response.first_error(), "submitAllocation");
    // Two per minute: one token back every 30 s.
    assert!(retry <= 30, "{response:?}");

    // Checked before any work: a replay of a stored key and invalid input are refused alike.
    let replay = app
        .submit_raw(allocation(EVEN), Some("first"), Some(&token))
        .await;
    assert_rate_limited(replay.first_error(), "submitAllocation");
    let invalid = app.submit_raw(json!([]), None, None).await;
    assert_rate_limited(invalid.first_error(), "submitAllocation");

    // Reads are not limited.
    app.request::<CategoriesData>(CATEGORIES, json!({}), None)
        .await
        .expect_data();
    let aggregates = app.wait_folded(2).await;
    assert_eq!(aggregates.total_submissions, 2);
    let history = my_submissions(&app, None, Some(&token)).await;
    assert_eq!(history.expect_data().my_submissions.len(), 2);

    assert_eq!(app.stored_submissions().await, 2, "refusals wrote nothing");
    assert_eq!(app.app.store.outbox_len().await.expect("outbox"), 0);
}

async fn aliases_and_websockets_share_the_address_limit(backend: Backend) {
    let Some(app) = spawn_app_with(backend, limited(2)).await else {
        return;
    };
    // A mutation over the WebSocket takes a token like one over POST.
    let one = format!("mutation {{ {} }}", submit_inline("ws", 1));
    let mut socket = Subscription::start(app.addr(), Protocol::TransportWs, &one).await;
    let data = socket.next_data::<SubmittedAsWs>().await;
    assert!(!data.ws.submission.id.is_empty(), "{data:?}");
    socket.close().await;

    // Every field of one request counts: the second alias is over the limit.
    let twice = format!(
        "mutation {{ {} {} }}",
        submit_inline("a", 2),
        submit_inline("b", 3)
    );
    let response = app.request::<IgnoredAny>(&twice, json!({}), None).await;
    assert_eq!(response.errors.len(), 1, "{response:?}");
    assert_rate_limited(&response.errors[0], "b");

    // And the WebSocket is refused in the same words once the bucket is empty.
    let mut socket = Subscription::start(app.addr(), Protocol::LegacyGraphqlWs, &one).await;
    let message = socket.next_message().await.expect("a result");
    assert_eq!(message["type"], "data", "{message}");
    let payload = GqlResponse::<IgnoredAny>::from_json(message["payload"].clone());
    assert_rate_limited(payload.first_error(), "ws");
    socket.close().await;

    app.wait_folded(2).await;
    assert_eq!(app.stored_submissions().await, 2);
}
