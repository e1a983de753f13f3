//! GraphQL over HTTP for tests: the operations the tests send, and their responses read into
//! types instead of walked as JSON.
//!
//! Every operation reads a type with one selection set (the `*_fields!` macros below), so one
//! Rust type fits every response that contains it.

use std::net::SocketAddr;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

macro_rules! category_fields {
    () => {
        "id slug name color displayOrder"
    };
}

macro_rules! submission_fields {
    () => {
        concat!(
            "id createdAt allocations { category { ",
            category_fields!(),
            " } percentage }"
        )
    };
}

macro_rules! snapshot_fields {
    () => {
        concat!(
            "version totalSubmissions updatedAt source categories { category { ",
            category_fields!(),
            " } averagePercentage }"
        )
    };
}

/// Reads [`CategoriesData`].
pub const CATEGORIES: &str = concat!("{ categories { ", category_fields!(), " } }");

/// Reads [`AggregatesData`].
pub const AGGREGATES: &str = concat!("{ aggregates { ", snapshot_fields!(), " } }");

/// Reads [`AggregatesUpdatedData`], over a WebSocket.
pub const AGGREGATES_UPDATED: &str = concat!(
    "subscription { aggregatesUpdated { ",
    snapshot_fields!(),
    " } }"
);

/// Takes `$input: SubmitAllocationInput!`; reads [`SubmitData`].
pub const SUBMIT: &str = concat!(
    "mutation Submit($input: SubmitAllocationInput!) { submitAllocation(input: $input) { ",
    "voterToken submission { ",
    submission_fields!(),
    " } } }"
);

/// Takes `$id: ID!`; reads [`SubmissionData`].
pub const SUBMISSION: &str = concat!(
    "query Submission($id: ID!) { submission(id: $id) { ",
    submission_fields!(),
    " } }"
);

/// What GraphiQL sends (graphql-js `getIntrospectionQuery()`), at its full depth.
pub const GRAPHIQL_INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}
"#;

/// The selection set of a [`Submission`], for queries written with inline arguments.
pub const SUBMISSION_FIELDS: &str = submission_fields!();

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub color: String,
    pub display_order: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Allocation {
    pub category: Category,
    pub percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Submission {
    pub id: String,
    /// As sent, so a test can check its format.
    pub created_at: String,
    pub allocations: Vec<Allocation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AggregateSource {
    Cache,
    Summary,
    Live,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryAggregate {
    pub category: Category,
    pub average_percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregateSnapshot {
    pub version: i64,
    pub total_submissions: i64,
    pub source: AggregateSource,
    pub categories: Vec<CategoryAggregate>,
}

impl AggregateSnapshot {
    /// The averages, as hundredths.
    pub fn averages(&self) -> Vec<i64> {
        self.categories
            .iter()
            .map(|c| (c.average_percentage * 100.0).round() as i64)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitAllocationPayload {
    pub voter_token: Option<String>,
    pub submission: Submission,
}

#[derive(Debug, Deserialize)]
pub struct CategoriesData {
    pub categories: Vec<Category>,
}

#[derive(Debug, Deserialize)]
pub struct AggregatesData {
    pub aggregates: AggregateSnapshot,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregatesUpdatedData {
    pub aggregates_updated: AggregateSnapshot,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitData {
    pub submit_allocation: SubmitAllocationPayload,
}

#[derive(Debug, Deserialize)]
pub struct SubmissionData {
    pub submission: Option<Submission>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MySubmissionsData {
    pub my_submissions: Vec<Submission>,
}

/// One entry of `errors`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GraphqlError {
    pub message: String,
    #[serde(default)]
    pub path: Vec<PathSegment>,
    #[serde(default)]
    pub extensions: ErrorExtensions,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PathSegment {
    Field(String),
    Index(u64),
}

/// What the server puts in `extensions`. Every error has a `code` (empty here when it has not).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorExtensions {
    #[serde(default)]
    pub code: String,
    /// The input the error is about (`BAD_USER_INPUT`).
    pub field: Option<String>,
    /// Every problem found in the input (`BAD_USER_INPUT`).
    #[serde(default)]
    pub problems: Vec<Problem>,
    /// When a token is back (`RATE_LIMITED`).
    pub retry_after_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Problem {
    pub field: String,
}

/// A GraphQL response: `data` (absent or null are both `None`) and `errors`.
#[derive(Debug, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
pub struct GqlResponse<T> {
    pub data: Option<T>,
    #[serde(default)]
    pub errors: Vec<GraphqlError>,
}

impl<T: DeserializeOwned + std::fmt::Debug> GqlResponse<T> {
    /// Reads a response body, failing the test with the body when it is not one.
    pub fn from_json(body: Value) -> Self {
        serde_json::from_value(body.clone()).unwrap_or_else(|e| {
            panic!(
                "not a response with {} data: {e}\n{body}",
                std::any::type_name::<T>()
            )
        })
    }

    /// The data of a response without errors; fails the test with the errors otherwise.
    pub fn expect_data(self) -> T {
        assert!(self.errors.is_empty(), "errors: {:#?}", self.errors);
        self.data.expect("data in a response without errors")
    }

    /// The first error; fails the test when there is none.
    pub fn first_error(&self) -> &GraphqlError {
        self.errors
            .first()
            .unwrap_or_else(|| panic!("expected an error, got data {:?}", self.data))
    }
}

/// GraphQL over HTTP to one server.
#[derive(Clone)]
pub struct GqlClient {
    url: String,
    http: reqwest::Client,
}

impl GqlClient {
    pub fn new(addr: SocketAddr) -> Self {
        GqlClient {
            url: format!("http://{addr}/graphql"),
            http: reqwest::Client::new(),
        }
    }

    /// GETs another path of the same server (`/readyz`) and reads its JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let url = self.url.replace("/graphql", path);
        let response = self.http.get(url).send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// POSTs `body` as JSON (no `Accept` header) and returns the status and the body as it
    /// came, for tests of the wire format.
    pub async fn post_json(&self, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(&self.url)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.expect("json body"))
    }

    /// POSTs `body` as JSON and returns the status and the response read as `T`.
    pub async fn post<T: DeserializeOwned + std::fmt::Debug>(
        &self,
        body: &Value,
    ) -> (StatusCode, GqlResponse<T>) {
        let (status, body) = self.post_json(body).await;
        (status, GqlResponse::from_json(body))
    }

    /// Runs `query` with `variables`, as the voter `token` when given.
    pub async fn request<T: DeserializeOwned + std::fmt::Debug>(
        &self,
        query: &str,
        variables: Value,
        token: Option<&str>,
    ) -> GqlResponse<T> {
        let mut request = self
            .http
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let body: Value = request
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json body");
        GqlResponse::from_json(body)
    }

    /// `submitAllocation` with these allocations and idempotency key, whatever comes back.
    pub async fn submit_raw(
        &self,
        allocations: Value,
        key: Option<&str>,
        token: Option<&str>,
    ) -> GqlResponse<SubmitData> {
        self.request(
            SUBMIT,
            json!({ "input": { "allocations": allocations, "idempotencyKey": key } }),
            token,
        )
        .await
    }

    /// Submits a valid allocation (see [`super::allocation`]), failing the test on errors.
    pub async fn submit(&self, values: [f64; 10], token: Option<&str>) -> SubmitAllocationPayload {
        self.submit_raw(super::allocation(values), None, token)
            .await
            .expect_data()
            .submit_allocation
    }

    /// The aggregates, failing the test on errors.
    pub async fn aggregates(&self) -> AggregateSnapshot {
        self.request::<AggregatesData>(AGGREGATES, json!({}), None)
            .await
            .expect_data()
            .aggregates
    }
}
