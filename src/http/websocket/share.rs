//! Which operations a socket hands to a cohort (see [`super::cohorts`]) instead of running
//! them itself, and the protocol messages that carry a shared result.
//!
//! Shared: a `subscribe` (legacy `start`) with the document's text and no extensions, whose
//! operation is a subscription selecting only `aggregatesUpdated` (and `__typename`): its
//! results are the same for every subscriber. A request by persisted-query hash, or one that
//! registers a document, runs on its own, so that the schema's extension sees it.

use async_graphql::http::WebSocketProtocols;
use async_graphql::parser::types::OperationType;
use async_graphql::Request;
use serde::Deserialize;

use crate::graphql::ApiError;
use crate::http::read_cache;

/// Top-level fields of a subscription whose results do not depend on who asks.
const SHARED_FIELDS: [&str; 2] = ["aggregatesUpdated", "__typename"];

/// A subscription a cohort runs.
pub struct Shareable {
    pub id: String,
    /// What is asked (document, operation name, variables), hashed: the cohort's name.
    pub key: String,
    /// Its document already parsed.
    pub request: Request,
}

#[derive(Deserialize)]
struct Start {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    payload: Request,
}

/// The subscription `message` starts, when a cohort can run it.
pub fn shareable(message: &[u8]) -> Option<Shareable> {
    let Start { kind, id, payload } = serde_json::from_slice(message).ok()?;
    if !matches!(kind.as_str(), "subscribe" | "start") {
        return None;
    }
    let mut request = payload;
    if request.query.is_empty() || !request.extensions.is_empty() {
        return None;
    }
    // A document that does not parse runs on its own: the schema reports it.
    let document = async_graphql::parser::parse_query(&request.query).ok()?;
    let operation = read_cache::selected_operation(&document, request.operation_name.as_deref())?;
    if !read_cache::selects_only(
        &document,
        operation,
        OperationType::Subscription,
        &SHARED_FIELDS,
    ) {
        return None;
    }
    let key = read_cache::request_hash(
        &read_cache::document_hash(&request.query),
        &request,
        "subscription",
    );
    request.set_parsed_query(document);
    Some(Shareable { id, key, request })
}

/// The result message for operation `id` around `payload` (a response as JSON), written as
/// async-graphql writes its own: `{"type":"next","id":…,"payload":…}` (legacy: `data`).
pub fn next(protocol: WebSocketProtocols, id: &str, payload: &str) -> String {
    let kind = match protocol {
        WebSocketProtocols::GraphQLWS => "next",
        WebSocketProtocols::SubscriptionsTransportWS => "data",
    };
    let id = serde_json::Value::from(id).to_string();
    let mut message = String::with_capacity(payload.len() + id.len() + 40);
    message.push_str(r#"{"type":""#);
    message.push_str(kind);
    message.push_str(r#"","id":"#);
    message.push_str(&id);
    message.push_str(r#","payload":"#);
    message.push_str(payload);
    message.push('}');
    message
}

/// The message that ends operation `id`, in both protocols.
pub fn complete(id: &str) -> String {
    format!(
        r#"{{"type":"complete","id":{}}}"#,
        serde_json::Value::from(id)
    )
}

/// The response a refused request gets, as JSON: what the schema answers when its limits
/// refuse an operation.
pub fn refusal(refused: ApiError) -> String {
    let response = async_graphql::Response::from_errors(vec![refused.into_server_error()]);
    serde_json::to_string(&response)
        .unwrap_or_else(|_| r#"{"data":null,"errors":[{"message":"refused"}]}"#.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(query: &str) -> Vec<u8> {
        serde_json::json!({ "id": "a\"1", "type": "subscribe", "payload": { "query": query } })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn shares_subscriptions_to_the_snapshot_only() {
        let shared = |q: &str| shareable(&start(q)).map(|s| s.key);
        let plain = shared("subscription { aggregatesUpdated { version } }").expect("shared");
        assert!(shared("subscription S { a: aggregatesUpdated { version } __typename }").is_some());
        assert!(shared(
            "subscription { ...F } fragment F on Subscription { aggregatesUpdated { version } }"
        )
        .is_some());
        // Another document is another cohort, even if it means the same.
        assert_ne!(
            shared("subscription  { aggregatesUpdated { version } }"),
            Some(plain.clone())
        );
        assert_eq!(
            shared("subscription { aggregatesUpdated { version } }"),
            Some(plain)
        );
        assert!(shared("{ aggregates { version } }").is_none());
        assert!(shared("subscription { nope }").is_none());
        assert!(shared("subscription {").is_none());
        let by_hash = serde_json::json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "subscription { aggregatesUpdated { version } }",
            "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "x" } } } });
        assert!(shareable(by_hash.to_string().as_bytes()).is_none());
        assert!(shareable(br#"{"id":"1","type":"complete"}"#).is_none());
        let with_variables = |v: i32| {
            let message = serde_json::json!({ "id": "1", "type": "start", "payload": {
                "query": "subscription($v: Boolean!) { aggregatesUpdated @include(if: $v) { version } }",
                "variables": { "v": v == 1 } } });
            shareable(message.to_string().as_bytes()).map(|s| s.key)
        };
        assert_ne!(with_variables(1), with_variables(2));
    }

    #[test]
    fn writes_messages_as_async_graphql_does() {
        let next = next(WebSocketProtocols::GraphQLWS, "a\"1", r#"{"data":{"x":1}}"#);
        let parsed: serde_json::Value = serde_json::from_str(&next).expect("json");
        assert_eq!(
            parsed,
            serde_json::json!({ "type": "next", "id": "a\"1", "payload": { "data": { "x": 1 } } })
        );
        let legacy = super::next(WebSocketProtocols::SubscriptionsTransportWS, "7", "{}");
        assert_eq!(legacy, r#"{"type":"data","id":"7","payload":{}}"#);
        assert_eq!(complete("7"), r#"{"type":"complete","id":"7"}"#);
    }
}
