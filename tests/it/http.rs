//! The HTTP surface: GraphQL over HTTP rules, GraphiQL, health, the published schema.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::harness::gql::GRAPHIQL_INTROSPECTION;
use crate::harness::{allocation, spawn_app, Backend};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

#[test]
fn the_published_schema_matches_the_code() {
    let published = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the repository root");
    let generated = tax_budget::graphql::sdl();
    assert!(
        published == generated,
        "schema.graphql differs from the code; regenerate it with `cargo run -- schema > schema.graphql` \
         if the change is intended.\n--- generated ---\n{generated}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_graphql_over_http() {
    let app = spawn_app(Backend::Sqlite).await.expect("sqlite app");
    let client = reqwest::Client::new();
    let url = app.url("/graphql");

    // Queries by GET, answered as application/graphql-response+json by default.
    let response = client
        .get(&url)
        .query(&[("query", "{ categories { slug } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with(GRAPHQL_RESPONSE));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["categories"][0]["slug"], "healthcare");

    // Mutations are refused over GET, with the method that works.
    let response = client
        .get(&url)
        .query(&[(
            "query",
            "mutation { submitAllocation(input: {allocations: []}) { voterToken } }",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(app.stored_submissions().await, 0);

    // A request that cannot run: 400 with graphql-response+json, 200 for legacy JSON clients.
    let invalid = json!({ "query": "{ noSuchField }" });
    let response = client
        .post(&url)
        .header("accept", GRAPHQL_RESPONSE)
        .json(&invalid)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    let response = client
        .post(&url)
        .header("accept", "application/json")
        .json(&invalid)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));

    // A value of the wrong type is bad input, refused before anything runs with a 400: see
    // the bad-input table in `api::every_kind_of_bad_input_is_refused_and_nothing_is_written`.

    // A field error is still a 200: the request ran.
    let response = client
        .post(&url)
        .header("accept", GRAPHQL_RESPONSE)
        .json(&json!({ "query": "{ mySubmissions { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    // Bodies that are not GraphQL requests.
    let response = client
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    let response = client
        .post(&url)
        .header("accept", "text/html")
        .json(&invalid)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 406);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_introspection_passes_the_query_limits() {
    let app = spawn_app(Backend::Sqlite).await.expect("sqlite app");
    let page = reqwest::get(app.url("/graphiql"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("graphiql"), "{page}");
    // The introspection query GraphiQL sends, at its full depth.
    let schema = app
        .request::<IntrospectionData>(GRAPHIQL_INTROSPECTION, json!({}), None)
        .await
        .expect_data()
        .schema;
    assert!(schema
        .types
        .iter()
        .any(|t| t.name.as_deref() == Some("AggregateSnapshot")));
    assert_eq!(
        schema.subscription_type.and_then(|t| t.name).as_deref(),
        Some("Subscription")
    );

    // A query nested beyond any real use is refused, without even a `data` key.
    let deep = format!(
        "{{ __schema {{ types {{ {} name {} }} }} }}",
        "ofType {".repeat(30),
        "}".repeat(30)
    );
    let (_, body) = app
        .post_json(&json!({ "query": deep, "variables": {} }))
        .await;
    assert!(body.get("data").is_none(), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too deep"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_index() {
    let app = spawn_app(Backend::Sqlite).await.expect("sqlite app");
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["redis"], "not configured");
    // The harness's web dir does not exist: `/` is the page that says how to build the app,
    // which links the API's pages (`web` covers the app itself).
    let index = reqwest::get(app.url("/")).await.unwrap();
    assert_eq!(index.status(), 200);
    let index = index.text().await.unwrap();
    if cfg!(not(feature = "embed-web")) {
        assert!(index.contains("/graphiql"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_redis_when_configured() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let body: Value = reqwest::get(app.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        json!({ "status": "ready", "database": "ok", "redis": "ok" })
    );
}

/// What the tests read of [`GRAPHIQL_INTROSPECTION`]'s answer.
#[derive(Debug, Deserialize)]
struct IntrospectionData {
    #[serde(rename = "__schema")]
    schema: IntrospectedSchema,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IntrospectedSchema {
    subscription_type: Option<NamedType>,
    types: Vec<NamedType>,
}

#[derive(Debug, Deserialize)]
struct NamedType {
    name: Option<String>,
}

/// The server keeps each document it parsed and hands a copy to the next request with the same
/// text: those requests must be answered exactly as the first, whatever their variables, and
/// a document that does not parse must be reported every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_sent_again_is_answered_as_the_first() {
    let app = spawn_app(Backend::Sqlite).await.expect("sqlite app");
    let client = app.client();
    // The harness sends one document for every submission, with the split as a variable.
    let mut even = [10.0; 10];
    let mut uneven = [10.0; 10];
    (uneven[0], uneven[1]) = (15.0, 5.0);
    for values in [even, uneven, even] {
        let allocations = client.submit(values, None).await.submission.allocations;
        assert_eq!(allocations[0].percentage, values[0], "{allocations:?}");
        assert_eq!(allocations[1].percentage, values[1], "{allocations:?}");
    }
    // Bad variables for the same document: refused as bad input, nothing written.
    even[0] = 150.0;
    let refused = client.submit_raw(allocation(even), None, None).await;
    assert_eq!(refused.first_error().extensions.code, "BAD_USER_INPUT");
    let refused = client.submit_raw(json!("ten"), None, None).await;
    assert_eq!(
        refused.first_error().extensions.code,
        "BAD_USER_INPUT",
        "{:?}",
        refused.errors
    );
    assert_eq!(app.stored_submissions().await, 3);

    for _ in 0..2 {
        let (status, body) = client
            .post_json(&json!({ "query": "{ aggregates { " }))
            .await;
        assert_eq!(status, 400, "{body}");
        let error = &body["errors"][0];
        assert!(
            error["message"].as_str().unwrap().contains("expected"),
            "{body}"
        );
        assert_eq!(
            error["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
            "{body}"
        );
    }
}
