//! Hot reads: Automatic Persisted Queries, and HTTP caching of GET reads of the snapshot
//! (`ETag`, `Cache-Control`, 304 for a matching `If-None-Match`).

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY};
use reqwest::Response;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::gql::AGGREGATES;
use crate::harness::{
    on_both_backends, spawn_app, spawn_app_with, Backend, Options, TestApp, EVEN,
};

const SNAPSHOT_CACHE: &str = "public, max-age=1, stale-while-revalidate=5";

on_both_backends!(
    persisted_queries_register_then_run_by_hash,
    snapshot_reads_by_get_carry_an_etag_and_revalidate,
    hot_reads_are_answered_from_prepared_bytes,
);

fn header(response: &Response, name: reqwest::header::HeaderName) -> Option<&str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn persisted(hash: &str) -> String {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } }).to_string()
}

async fn get(app: &TestApp, query: &[(&str, &str)], if_none_match: Option<&str>) -> Response {
    let mut request = reqwest::Client::new().get(app.url("/graphql")).query(query);
    if let Some(tag) = if_none_match {
        request = request.header(IF_NONE_MATCH, tag);
    }
    request.send().await.expect("request")
}

async fn persisted_queries_register_then_run_by_hash(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let query = "query Slugs { categories { slug } }";
    let hash = hex::encode(Sha256::digest(query.as_bytes()));
    let extensions = persisted(&hash);

    // Unknown: the message Apollo clients look for, with a code.
    let response = get(&app, &[("extensions", &extensions)], None).await;
    assert_eq!(response.status(), 400);
    assert_eq!(header(&response, CACHE_CONTROL), Some("no-store"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    let (_, body) = app
        .post_json(
            &json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } }),
        )
        .await;
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");

    // A hash that is not the query's is refused, and registers nothing.
    let (_, body) = app
        .post_json(&json!({
            "query": "{ __typename }",
            "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } },
        }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_REQUEST",
        "{body}"
    );

    // Registered with the query, then the hash alone works over GET and POST.
    let (status, body) = app
        .post_json(&json!({
            "query": query,
            "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } },
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["categories"][0]["slug"], "healthcare");
    let response = get(&app, &[("extensions", &extensions)], None).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["categories"][0]["slug"], "healthcare");
    let (status, body) = app
        .post_json(
            &json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["categories"][0]["slug"], "healthcare");

    // A persisted mutation is still refused over GET.
    let mutation = "mutation { submitAllocation(input: {allocations: []}) { voterToken } }";
    let mutation_hash = hex::encode(Sha256::digest(mutation.as_bytes()));
    app.post_json(&json!({
        "query": mutation,
        "extensions": { "persistedQuery": { "version": 1, "sha256Hash": mutation_hash } },
    }))
    .await;
    let response = get(&app, &[("extensions", &persisted(&mutation_hash))], None).await;
    assert_eq!(response.status(), 405);

    // The limits still apply to what a hash stands for: introspection nested too deep.
    let deep = format!(
        "{{ __schema {{ types {{ {} name {} }} }} }}",
        "ofType {".repeat(30),
        "}".repeat(30)
    );
    let deep_hash = hex::encode(Sha256::digest(deep.as_bytes()));
    let (_, body) = app
        .post_json(&json!({
            "query": deep,
            "extensions": { "persistedQuery": { "version": 1, "sha256Hash": deep_hash } },
        }))
        .await;
    assert!(body.get("data").is_none(), "{body}");
    let response = get(&app, &[("extensions", &persisted(&deep_hash))], None).await;
    let body: Value = response.json().await.unwrap();
    assert!(body.get("data").is_none(), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too deep"), "{message}");
}

async fn snapshot_reads_by_get_carry_an_etag_and_revalidate(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // The process knows a snapshot once it has read one.
    app.aggregates().await;

    let response = get(&app, &[("query", AGGREGATES)], None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, CACHE_CONTROL), Some(SNAPSHOT_CACHE));
    assert_eq!(header(&response, VARY), Some("Accept"));
    let etag = header(&response, ETAG).expect("an ETag").to_owned();
    let snapshot: Value = response.json().await.unwrap();
    let version = snapshot["data"]["aggregates"]["version"].as_i64().unwrap();
    assert!(
        etag.starts_with('"') && etag.contains(&format!("-{version}-")),
        "{etag} for version {version}"
    );

    // Revalidated without running: 304, no body.
    let response = get(&app, &[("query", AGGREGATES)], Some(&etag)).await;
    assert_eq!(response.status(), 304);
    assert_eq!(header(&response, ETAG), Some(etag.as_str()));
    assert!(response.bytes().await.unwrap().is_empty());

    // Caller-specific reads and POST are never stored.
    let response = get(
        &app,
        &[("query", "{ aggregates { version } mySubmissions { id } }")],
        None,
    )
    .await;
    assert_eq!(header(&response, CACHE_CONTROL), Some("no-store"));
    assert!(header(&response, ETAG).is_none());
    let response = reqwest::Client::new()
        .post(app.url("/graphql"))
        .json(&json!({ "query": AGGREGATES }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, CACHE_CONTROL), Some("no-store"));
    assert!(header(&response, ETAG).is_none());

    // Another question has another tag.
    let response = get(&app, &[("query", "{ categories { id } }")], None).await;
    let other = header(&response, ETAG).expect("an ETag");
    assert_ne!(other, etag);
    let response = get(&app, &[("query", AGGREGATES)], Some(other)).await;
    assert_eq!(response.status(), 200);

    // A new snapshot: the old tag no longer matches.
    let before = snapshot["data"]["aggregates"]["totalSubmissions"]
        .as_i64()
        .unwrap();
    app.submit(EVEN, None).await;
    app.wait_folded(before + 1).await;
    let response = get(&app, &[("query", AGGREGATES)], Some(&etag)).await;
    assert_eq!(response.status(), 200);
    let new_etag = header(&response, ETAG).expect("an ETag").to_owned();
    assert_ne!(new_etag, etag);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["data"]["aggregates"]["totalSubmissions"].as_i64(),
        Some(before + 1)
    );
    let response = get(&app, &[("query", AGGREGATES)], Some(&new_etag)).await;
    assert_eq!(response.status(), 304);
}

async fn hot_reads_are_answered_from_prepared_bytes(backend: Backend) {
    let options = Options {
        tweak: |config| config.queries.prepared_reads = true,
        ..Options::default()
    };
    let Some(app) = spawn_app_with(backend, options).await else {
        return;
    };
    // The first read may come from the summary; the cache tier answers the next.
    let before = app.aggregates().await.total_submissions;
    app.aggregates().await;
    let post = || async {
        let response = reqwest::Client::new()
            .post(app.url("/graphql"))
            .json(&json!({ "query": AGGREGATES }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, CACHE_CONTROL), Some("no-store"));
        response.bytes().await.unwrap()
    };
    let first = post().await;
    for _ in 0..5 {
        assert_eq!(post().await, first);
    }
    let body: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(body["data"]["aggregates"]["source"], "CACHE", "{body}");

    // The same bytes asking for another media type get their own answer, typed as asked,
    // again and again (the second time and on: by their text alone, unparsed).
    for _ in 0..3 {
        for (accept, media) in [
            ("application/json", "application/json; charset=utf-8"),
            (
                "application/graphql-response+json",
                "application/graphql-response+json; charset=utf-8",
            ),
        ] {
            let response = reqwest::Client::new()
                .post(app.url("/graphql"))
                .json(&json!({ "query": AGGREGATES }))
                .header("accept", accept)
                .send()
                .await
                .unwrap();
            assert_eq!(header(&response, CONTENT_TYPE), Some(media));
            assert_eq!(response.bytes().await.unwrap(), first);
        }
    }

    // By GET too: the same query string is answered, and revalidated, as the first was.
    let response = get(&app, &[("query", AGGREGATES)], None).await;
    assert_eq!(response.status(), 200);
    let etag = header(&response, ETAG).expect("an ETag").to_owned();
    assert_eq!(response.bytes().await.unwrap(), first);
    for _ in 0..3 {
        let response = get(&app, &[("query", AGGREGATES)], None).await;
        assert_eq!(header(&response, ETAG), Some(etag.as_str()));
        assert_eq!(header(&response, CACHE_CONTROL), Some(SNAPSHOT_CACHE));
        assert_eq!(response.bytes().await.unwrap(), first);
        let response = get(&app, &[("query", AGGREGATES)], Some(&etag)).await;
        assert_eq!(response.status(), 304);
        assert!(response.bytes().await.unwrap().is_empty());
    }
    // A query string asking the same in other bytes is another text: the same answer still.
    let spaced = format!("{AGGREGATES} ");
    let response = get(&app, &[("query", spaced.as_str())], None).await;
    assert_eq!(response.bytes().await.unwrap(), first);

    // A fold moves the snapshot on: the prepared answer is not served for the new one.
    app.submit(EVEN, None).await;
    app.wait_folded(before + 1).await;
    let body: Value = serde_json::from_slice(&post().await).unwrap();
    assert_eq!(
        body["data"]["aggregates"]["totalSubmissions"].as_i64(),
        Some(before + 1)
    );
}
