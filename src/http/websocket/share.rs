//! Which operations a socket hands to a cohort (see [`super::cohorts`]) instead of running
//! them itself, and the protocol messages that carry a shared result.
//!
//! Shared: a `subscribe` (legacy `start`) whose operation is a subscription selecting only
//! `aggregatesUpdated` (and `__typename`), sent with the document's text and no extensions,
//! or by the hash of a persisted query alone: its results are the same for every subscriber.
//! One by a hash the server does not know, or one that registers a document (its text and
//! its hash), runs on its own, so that the schema's extension answers or registers it.

use async_graphql::http::WebSocketProtocols;
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::Request;
use serde::Deserialize;

use crate::graphql::{ApiError, PersistedQueries};
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
struct StartMessage {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    payload: Request,
}

/// A start a cohort may run, as one reading of the message tells.
enum Start {
    /// Sent with its document's text, and shareable.
    Text(Shareable),
    /// Sent by a persisted query's hash alone: shareable if its document is.
    ByHash(ByHash),
}

/// A subscription started by the hash of a persisted query alone, whose document is still to
/// be looked up.
struct ByHash {
    id: String,
    hash: String,
    /// Without its extension: its document is given to it here, as over HTTP.
    request: Request,
}

impl ByHash {
    /// Shared when `document`, registered under the hash, asks for the snapshot alone. The
    /// hash is the SHA-256 of the document's text (the extension checks it when a document
    /// is registered), so the cohort is the one of the same subscription sent as text.
    fn shareable(self, document: ExecutableDocument) -> Option<Shareable> {
        shared(self.id, &self.hash, self.request, document)
    }
}

/// The subscription `message` starts, when a cohort can run it: by its text, or by the hash
/// of a document `persisted` holds.
pub async fn shareable(message: &[u8], persisted: &PersistedQueries) -> Option<Shareable> {
    match start(message)? {
        Start::Text(shared) => Some(shared),
        Start::ByHash(started) => {
            let document = persisted.document(&started.hash).await?;
            started.shareable(document)
        }
    }
}

/// What `message` starts, if a cohort may run it: with the document's text and no extension,
/// or by a persisted query's hash and nothing else. One that registers a document (text and
/// hash together) is neither.
fn start(message: &[u8]) -> Option<Start> {
    let StartMessage { kind, id, payload } = serde_json::from_slice(message).ok()?;
    if !matches!(kind.as_str(), "subscribe" | "start") {
        return None;
    }
    let mut request = payload;
    if request.query.is_empty() {
        if request.extensions.len() != 1 {
            return None;
        }
        let hash = read_cache::persisted_hash(&request)?;
        request.extensions.clear();
        return Some(Start::ByHash(ByHash { id, hash, request }));
    }
    if !request.extensions.is_empty() {
        return None;
    }
    // A document that does not parse runs on its own: the schema reports it.
    let document = async_graphql::parser::parse_query(&request.query).ok()?;
    let document_hash = read_cache::document_hash(&request.query);
    shared(id, &document_hash, request, document).map(Start::Text)
}

/// `request` with its `document` (whose text hashes to `document_hash`), when it can be shared.
fn shared(
    id: String,
    document_hash: &str,
    mut request: Request,
    document: ExecutableDocument,
) -> Option<Shareable> {
    let operation = read_cache::selected_operation(&document, request.operation_name.as_deref())?;
    if !read_cache::selects_only(
        &document,
        operation,
        OperationType::Subscription,
        &SHARED_FIELDS,
    ) {
        return None;
    }
    let key = read_cache::request_hash(document_hash, &request, "subscription");
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
    let mut message = String::with_capacity(payload.len() + id.len() + 40);
    message.push_str(r#"{"type":""#);
    message.push_str(kind);
    message.push_str(r#"","id":"#);
    push_json_string(&mut message, id);
    message.push_str(r#","payload":"#);
    message.push_str(payload);
    message.push('}');
    message
}

/// `text` as a JSON string. Written in place when nothing in it needs escaping, as with the
/// ids clients choose ("1", a UUID): every socket's every result writes its id.
fn push_json_string(out: &mut String, text: &str) {
    if text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&serde_json::Value::from(text).to_string());
    } else {
        out.push('"');
        out.push_str(text);
        out.push('"');
    }
}

/// The message that ends operation `id`, in both protocols.
pub fn complete(id: &str) -> String {
    let mut message = String::with_capacity(id.len() + 30);
    message.push_str(r#"{"type":"complete","id":"#);
    push_json_string(&mut message, id);
    message.push('}');
    message
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

    /// The start, when it is shareable by its text.
    fn by_text(message: &[u8]) -> Option<Shareable> {
        match super::start(message)? {
            Start::Text(shared) => Some(shared),
            Start::ByHash(_) => None,
        }
    }

    /// The start, when it is by a hash alone.
    fn by_hash(message: &[u8]) -> Option<ByHash> {
        match super::start(message)? {
            Start::ByHash(started) => Some(started),
            Start::Text(_) => None,
        }
    }

    fn start(query: &str) -> Vec<u8> {
        serde_json::json!({ "id": "a\"1", "type": "subscribe", "payload": { "query": query } })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn shares_subscriptions_to_the_snapshot_only() {
        let shared = |q: &str| by_text(&start(q)).map(|s| s.key);
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
        assert!(by_text(by_hash.to_string().as_bytes()).is_none());
        // Registering a document (text and hash) is not a start by hash alone either.
        assert!(super::start(by_hash.to_string().as_bytes()).is_none());
        assert!(by_text(br#"{"id":"1","type":"complete"}"#).is_none());
        let with_variables = |v: i32| {
            let message = serde_json::json!({ "id": "1", "type": "start", "payload": {
                "query": "subscription($v: Boolean!) { aggregatesUpdated @include(if: $v) { version } }",
                "variables": { "v": v == 1 } } });
            by_text(message.to_string().as_bytes()).map(|s| s.key)
        };
        assert_ne!(with_variables(1), with_variables(2));
    }

    #[test]
    fn a_start_by_hash_alone_shares_the_cohort_of_its_text() {
        let text = "subscription { aggregatesUpdated { version } }";
        let hash = read_cache::document_hash(text);
        let start_by_hash = |extensions: serde_json::Value| {
            serde_json::json!({ "id": "h", "type": "start",
                "payload": { "query": "", "extensions": extensions } })
            .to_string()
            .into_bytes()
        };
        let persisted =
            serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
        let started = by_hash(&start_by_hash(persisted)).expect("a start by hash");
        assert_eq!(started.hash, hash);
        let document = async_graphql::parser::parse_query(text).expect("parses");
        let shared = started.shareable(document).expect("shared");
        assert_eq!(Some(shared.key), by_text(&start(text)).map(|s| s.key));
        assert_eq!(shared.id, "h");
        assert!(shared.request.extensions.is_empty());
        // Another version, another extension beside it, or a document of other fields: alone.
        let v2 = serde_json::json!({ "persistedQuery": { "version": 2, "sha256Hash": hash } });
        assert!(by_hash(&start_by_hash(v2)).is_none());
        let more = serde_json::json!({
            "persistedQuery": { "version": 1, "sha256Hash": hash }, "client": "x" });
        assert!(by_hash(&start_by_hash(more)).is_none());
        let persisted =
            serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": "h" } });
        let other =
            async_graphql::parser::parse_query("{ aggregates { version } }").expect("parses");
        assert!(by_hash(&start_by_hash(persisted))
            .expect("a start by hash")
            .shareable(other)
            .is_none());
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

    #[test]
    fn ids_are_written_as_serde_json_writes_them() {
        for id in [
            "1",
            "",
            "é✓ 𝄞",
            "tab\there",
            "quote\"",
            "back\\slash",
            "\u{1f}",
            "\u{7f}",
        ] {
            let mut written = String::new();
            push_json_string(&mut written, id);
            assert_eq!(written, serde_json::Value::from(id).to_string(), "{id:?}");
        }
    }
}
