//! GraphQL over HTTP, following the GraphQL-over-HTTP spec: `application/graphql-response+json`
//! with 4xx for requests that cannot run, `application/json` (always 200) for legacy clients,
//! queries by GET and POST, mutations by POST only.
//!
//! Written here rather than with async-graphql-axum's extractors, which answer every request
//! with 200 `application/json`, run mutations sent by GET, and do not see the client address
//! that the submission rate limit needs.

use std::net::SocketAddr;

use async_graphql::http::parse_query_string;
use async_graphql::parser::types::OperationType;
use async_graphql::{Response as GqlResponse, Value};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::json;

use super::websocket;
use super::HttpState;
use crate::submissions::{ClientAddr, Credentials};
use crate::voter_token::VoterToken;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaType {
    GraphqlResponseJson,
    Json,
}

impl MediaType {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            MediaType::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            MediaType::Json => "application/json; charset=utf-8",
        })
    }
}

/// Picks the response type from `Accept`; `None` when the client accepts neither.
fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(MediaType::GraphqlResponseJson);
    };
    let types: Vec<&str> = accept
        .split(',')
        .map(|part| part.split(';').next().unwrap_or("").trim())
        .collect();
    if types.contains(&GRAPHQL_RESPONSE_JSON) {
        Some(MediaType::GraphqlResponseJson)
    } else if types.contains(&JSON) {
        Some(MediaType::Json)
    } else if types.iter().any(|t| *t == "*/*" || *t == "application/*") {
        Some(MediaType::GraphqlResponseJson)
    } else {
        None
    }
}

fn credentials(headers: &HeaderMap) -> Credentials {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Credentials::Anonymous;
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .and_then(|t| VoterToken::parse(t.trim()).ok());
    token.map_or(Credentials::Malformed, Credentials::Bearer)
}

/// The TCP peer, when the server was started with connect info (`Server::spawn` always is).
/// `X-Forwarded-For` and friends are ignored: anyone can send them.
fn peer(extensions: &Extensions) -> Option<ClientAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(client_addr)
}

fn client_addr(ConnectInfo(addr): &ConnectInfo<SocketAddr>) -> ClientAddr {
    ClientAddr(addr.ip())
}

/// A request the server refuses before running it, in the shape GraphQL clients read.
fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, MediaType::Json.header());
    response
}

/// Values of the wrong type for an argument or variable are bad input, like any other; the
/// rest (unknown fields, syntax) is a malformed request. The limits' refusals carry codes of
/// their own (QUERY_TOO_COSTLY, QUERY_TOO_DEEP, RATE_LIMITED, OVERLOADED, …).
fn request_error_code(message: &str) -> &'static str {
    let bad_value = ["Invalid value for argument", "Failed to parse"];
    if bad_value.iter().any(|prefix| message.starts_with(prefix)) {
        "BAD_USER_INPUT"
    } else {
        "GRAPHQL_VALIDATION_FAILED"
    }
}

fn graphql_response(media: MediaType, mut response: GqlResponse) -> Response {
    // Errors without a path come from parsing or validation: the request never ran.
    let not_run = response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let body = if not_run {
        for error in &mut response.errors {
            let extensions = error.extensions.get_or_insert_with(Default::default);
            if extensions.get("code").is_none() {
                extensions.set("code", request_error_code(&error.message));
            }
        }
        json!({ "errors": response.errors })
    } else {
        serde_json::to_value(&response)
            .unwrap_or_else(|_| json!({"errors": [{"message": "response could not be encoded"}]}))
    };
    let throttled = not_run.then(|| throttled(&response)).flatten();
    let status = match (media, not_run, throttled) {
        (_, _, Some((status, _))) => status,
        (MediaType::GraphqlResponseJson, true, None) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let mut http = (status, body.to_string()).into_response();
    http.headers_mut()
        .insert(header::CONTENT_TYPE, media.header());
    if let Some((_, retry_after)) = throttled {
        http.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    http
}

/// A request refused before running because of load, not because of what it asks: 429 when
/// the client's read budget is spent, 503 when the server sheds costly queries, with the
/// seconds to wait. Whichever media type: these say nothing about the query, and clients
/// and proxies act on the status.
fn throttled(response: &GqlResponse) -> Option<(StatusCode, u64)> {
    response.errors.iter().find_map(|error| {
        let extensions = error.extensions.as_ref()?;
        let status = match extensions.get("code")? {
            Value::String(code) if code == "RATE_LIMITED" => StatusCode::TOO_MANY_REQUESTS,
            Value::String(code) if code == "OVERLOADED" => StatusCode::SERVICE_UNAVAILABLE,
            _ => return None,
        };
        let retry_after = match extensions.get("retryAfterSeconds") {
            Some(Value::Number(secs)) => secs.as_u64(),
            _ => None,
        };
        Some((status, retry_after.unwrap_or(1)))
    })
}

async fn execute(
    state: &HttpState,
    headers: &HeaderMap,
    client: Option<ClientAddr>,
    request: async_graphql::Request,
) -> Response {
    let Some(media) = negotiate(headers) else {
        return refusal(
            StatusCode::NOT_ACCEPTABLE,
            "NOT_ACCEPTABLE",
            "accept application/graphql-response+json or application/json",
        );
    };
    let mut request = request.data(credentials(headers));
    if let Some(client) = client {
        request = request.data(client);
    }
    let mut response = state.schema.execute(request).await;
    // An error a user reports can be found in the logs by the id it carries.
    if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        for error in &mut response.errors {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("requestId", id);
        }
    }
    graphql_response(media, response)
}

pub async fn post(
    State(state): State<HttpState>,
    connect_info: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let client = connect_info.map(|Extension(info)| client_addr(&info));
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return refusal(rejection.status(), "BAD_REQUEST", &rejection.body_text());
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if content_type.as_deref() != Some(JSON) {
        return refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_REQUEST",
            "send the request as application/json",
        );
    }
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("the body is not a GraphQL request: {error}"),
            )
        }
    };
    execute(&state, &headers, client, request).await
}

/// Is the selected operation a mutation? Unparseable queries say no: execution reports them.
fn is_mutation(request: &async_graphql::Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let operation = match &request.operation_name {
        Some(name) => document
            .operations
            .iter()
            .find(|(n, _)| n.map(|n| n.as_str()) == Some(name.as_str()))
            .map(|(_, op)| op.node.ty),
        // Several operations and no name is an error that execution reports.
        None if document.operations.iter().count() == 1 => {
            document.operations.iter().next().map(|(_, op)| op.node.ty)
        }
        None => None,
    };
    operation == Some(OperationType::Mutation)
}

pub async fn get_or_websocket(State(state): State<HttpState>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let is_upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if is_upgrade {
        return match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &state)
            .await
        {
            Ok(upgrade) => {
                websocket::upgrade(state, &parts.headers, peer(&parts.extensions), upgrade)
            }
            Err(rejection) => rejection.into_response(),
        };
    }
    let request = match parse_query_string(parts.uri.query().unwrap_or("")) {
        Ok(request) if !request.query.is_empty() => request,
        _ => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "pass the query as ?query=…, or use GraphiQL at /graphiql",
            )
        }
    };
    if is_mutation(&request) {
        let mut response = refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_REQUEST",
            "mutations are only accepted by POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    // Mutations were refused above, so the address is not needed for the limit; it is
    // passed anyway so every HTTP request carries the same data.
    execute(&state, &parts.headers, peer(&parts.extensions), request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn negotiates_the_response_type() {
        assert_eq!(
            negotiate(&HeaderMap::new()),
            Some(MediaType::GraphqlResponseJson)
        );
        assert_eq!(
            negotiate(&accept("application/json")),
            Some(MediaType::Json)
        );
        assert_eq!(
            negotiate(&accept(
                "application/json, application/graphql-response+json;q=0.9"
            )),
            Some(MediaType::GraphqlResponseJson)
        );
        assert_eq!(
            negotiate(&accept("*/*")),
            Some(MediaType::GraphqlResponseJson)
        );
        assert_eq!(negotiate(&accept("text/html")), None);
    }

    #[test]
    fn reads_bearer_tokens() {
        let token = VoterToken::generate();
        let mut headers = HeaderMap::new();
        assert_eq!(credentials(&headers), Credentials::Anonymous);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", token.as_str())).unwrap(),
        );
        assert_eq!(credentials(&headers), Credentials::Bearer(token));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert_eq!(credentials(&headers), Credentials::Malformed);
    }

    #[test]
    fn spots_mutations_by_operation_name() {
        let mut request =
            async_graphql::Request::new("query A { categories { id } } mutation B { x }");
        assert!(!is_mutation(&request));
        request.operation_name = Some("B".into());
        assert!(is_mutation(&request));
    }
}
