//! GraphQL over HTTP, following the GraphQL-over-HTTP spec: `application/graphql-response+json`
//! with 4xx for requests that cannot run, `application/json` (always 200) for legacy clients,
//! queries by GET and POST, mutations by POST only.
//!
//! Written here rather than with async-graphql-axum's extractors, which answer every request
//! with 200 `application/json`, run mutations sent by GET, and do not see the client address
//! that the submission rate limit needs.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::http::parse_query_string;
use async_graphql::parser::types::OperationType;
use async_graphql::{Response as GqlResponse, ServerError, Value};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::read_cache::{self, CACHE_SNAPSHOT, NO_STORE};
use super::websocket;
use super::HttpState;
use crate::domain::Snapshot;
use crate::error_code::ErrorCode;
use crate::graphql::{
    request_error_code, KeptDocument, LearnsValidation, SnapshotReads, PERSISTED_QUERY_NOT_FOUND,
};
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
    fn name(self) -> &'static str {
        match self {
            MediaType::GraphqlResponseJson => GRAPHQL_RESPONSE_JSON,
            MediaType::Json => JSON,
        }
    }

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
fn refusal(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body =
        json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] });
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, MediaType::Json.header());
    response
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
            Value::String(code) => match ErrorCode::parse(code)? {
                ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
                _ => return None,
            },
            _ => return None,
        };
        let retry_after = match extensions.get("retryAfterSeconds") {
            Some(Value::Number(secs)) => secs.as_u64(),
            _ => None,
        };
        Some((status, retry_after.unwrap_or(1)))
    })
}

fn not_acceptable() -> Response {
    refusal(
        StatusCode::NOT_ACCEPTABLE,
        ErrorCode::NotAcceptable,
        "accept application/graphql-response+json or application/json",
    )
}

async fn run(
    state: &HttpState,
    headers: &HeaderMap,
    client: Option<ClientAddr>,
    request: async_graphql::Request,
    kept: Option<&Arc<KeptDocument>>,
) -> GqlResponse {
    let mut request = request.data(credentials(headers));
    if let Some(client) = client {
        request = request.data(client);
    }
    // A document that passed the full validation before needs only its variables checked.
    let schema = match kept {
        Some(kept) if kept.skips_validation(&request.variables) => &state.validated_once,
        Some(kept) if kept.learning() => {
            request = request.data(LearnsValidation(kept.clone()));
            &state.schema
        }
        _ => &state.schema,
    };
    let mut response = schema.execute(request).await;
    // An error a user reports can be found in the logs by the id it carries.
    if let Some(id) = headers
        .get(&super::request_id::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
    {
        for error in &mut response.errors {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("requestId", id);
        }
    }
    response
}

/// Marks a response that no cache may keep, unless it says otherwise.
fn uncached(mut response: Response) -> Response {
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static(NO_STORE));
    response
}

/// POST is never cached: caches do not keep POST answers, and mutations come this way.
pub async fn post(State(state): State<Arc<HttpState>>, request: Request) -> Response {
    uncached(post_uncached(&state, request).await)
}

async fn post_uncached(state: &HttpState, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    // Moved out rather than cloned, as the `HeaderMap` extractor would: on a prepared read
    // that copy and its drop are a few per cent of the request.
    let headers = std::mem::take(&mut parts.headers);
    let client = peer(&parts.extensions);
    let body = match Bytes::from_request(Request::from_parts(parts, body), &()).await {
        Ok(body) => body,
        Err(rejection) => {
            return refusal(
                rejection.status(),
                ErrorCode::BadRequest,
                &rejection.body_text(),
            );
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
            ErrorCode::BadRequest,
            "send the request as application/json",
        );
    }
    let media = negotiate(&headers);
    let memo_missed = match known_read(state, &headers, client, &body, media, false) {
        Known::Answered(response) => return response,
        Known::MemoMissed => true,
        Known::Unknown => false,
    };
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                &format!("the body is not a GraphQL request: {error}"),
            )
        }
    };
    let Some(media) = media else {
        return not_acceptable();
    };
    match prepare(state, request, media, client, &headers).await {
        Ok(prepared) => {
            remember_read(state, &prepared, &body, media, false);
            answer(state, &headers, client, prepared, media, false, memo_missed).await
        }
        Err(answer) => answer,
    }
}

/// What a request gets from its text alone, before it is parsed.
enum Known {
    /// Seen before as a read of the snapshot, and answered without running.
    Answered(Response),
    /// Seen before as a read of the snapshot, but the memo has no answer at the current
    /// snapshot (or has one for this request to prepare again): it runs, without asking the
    /// memo a second time.
    MemoMissed,
    /// Not seen before as a read of the snapshot: it takes the usual way.
    Unknown,
}

/// Answers `text` (a POST body, or a GET's query string) when the same text was seen before
/// as a read of the snapshot alone: nothing parsed, nothing hashed (see
/// [`read_cache::KnownReads`]). Without an acceptable `media`, the usual way refuses it.
fn known_read(
    state: &HttpState,
    headers: &HeaderMap,
    client: Option<ClientAddr>,
    text: &[u8],
    media: Option<MediaType>,
    by_get: bool,
) -> Known {
    let (Some(memo), Some(media)) = (&state.memo, media) else {
        return Known::Unknown;
    };
    let sent = read_cache::Sent {
        by_get,
        media: media.name(),
    };
    let Some(hash) = memo.known.get(text, sent) else {
        return Known::Unknown;
    };
    // Read in place: a copy of the snapshot would cost as much as the rest of the answer.
    let answered = state.feed.peek(|snapshot| {
        if snapshot.version < 0 {
            return None;
        }
        let etag = by_get.then(|| read_cache::etag(snapshot, &hash)).flatten();
        without_running(state, headers, client, &hash, snapshot, media, etag, true).ok()
    });
    answered.map_or(Known::MemoMissed, Known::Answered)
}

/// Remembers the text of a read of the snapshot alone, for [`known_read`].
fn remember_read(
    state: &HttpState,
    prepared: &Prepared,
    text: &[u8],
    media: MediaType,
    by_get: bool,
) {
    if let (Some(memo), Some(hash)) = (&state.memo, &prepared.snapshot_read) {
        let sent = read_cache::Sent {
            by_get,
            media: media.name(),
        };
        memo.known.put(text, sent, hash);
    }
}

pub async fn get_or_websocket(State(state): State<Arc<HttpState>>, request: Request) -> Response {
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
    uncached(get(&state, &parts).await)
}

/// A request ready to run, with what the transport needs to know of it first.
struct Prepared {
    request: async_graphql::Request,
    /// The hash of the request's text when it has not been given its parsed document yet:
    /// a read that prepared bytes answer needs none.
    unparsed: Option<String>,
    /// The kept document the request was given, if any.
    kept: Option<Arc<KeptDocument>>,
    is_mutation: bool,
    /// The hash of what is asked (see [`read_cache::request_hash`]) when the operation reads
    /// only the snapshot.
    snapshot_read: Option<String>,
}

/// Looks at the document before the request runs, to refuse mutations by GET and to answer
/// reads of the snapshot without running them. By hash alone the document is looked up here,
/// and handed to the schema as it is, so that the extension does not look again and find
/// another (a mutation registered in between). Errs with the answer when there is nothing to
/// run.
async fn prepare(
    state: &HttpState,
    mut request: async_graphql::Request,
    media: MediaType,
    client: Option<ClientAddr>,
    headers: &HeaderMap,
) -> Result<Prepared, Response> {
    // A query sent with its hash registers it, which only the extension does: such a request
    // always runs (clients send it once, after `PersistedQueryNotFound`).
    let registers = !request.query.is_empty() && request.extensions.contains_key("persistedQuery");
    let document_hash = if request.query.is_empty() {
        let Some(hash) = read_cache::persisted_hash(&request) else {
            // Malformed, or no query at all: the schema says how.
            return Err(graphql_response(
                media,
                run(state, headers, client, request, None).await,
            ));
        };
        let Some(document) = state.persisted.document(&hash).await else {
            let error = ServerError::new(PERSISTED_QUERY_NOT_FOUND, None);
            return Err(graphql_response(
                media,
                GqlResponse::from_errors(vec![error]),
            ));
        };
        request.extensions.remove("persistedQuery");
        request.set_parsed_query(document);
        hash
    } else {
        read_cache::document_hash(&request.query)
    };
    let operation_name = request.operation_name.clone();
    let known = state
        .memo
        .as_ref()
        .and_then(|memo| memo.kinds.get(&document_hash, operation_name.as_deref()));
    // A document whose kind is known is not looked at here (a prepared answer needs none).
    let unparsed = (known.is_some() && !request.query.is_empty()).then(|| document_hash.clone());
    let kept = if known.is_none() && !request.query.is_empty() {
        state.documents.attach(&mut request, &document_hash)
    } else {
        None
    };
    // Unparseable queries are neither mutations nor cacheable: execution reports them.
    let (is_mutation, snapshot_only) = match known {
        Some(kind) => (kind.is_mutation, kind.snapshot_only),
        None => match request.parsed_query() {
            Ok(document) => {
                match read_cache::selected_operation(document, operation_name.as_deref()) {
                    Some(operation) => {
                        let kind = read_cache::Kind {
                            is_mutation: operation.ty == OperationType::Mutation,
                            snapshot_only: read_cache::snapshot_only(document, operation),
                        };
                        if let Some(memo) = &state.memo {
                            memo.kinds
                                .put(&document_hash, operation_name.as_deref(), kind);
                        }
                        (kind.is_mutation, kind.snapshot_only)
                    }
                    None => (false, false),
                }
            }
            Err(_) => (false, false),
        },
    };
    let snapshot_read = (snapshot_only && !registers)
        .then(|| read_cache::request_hash(&document_hash, &request, media.name()));
    Ok(Prepared {
        request,
        unparsed,
        kept,
        is_mutation,
        snapshot_read,
    })
}

/// A query by GET: by its text, or by the hash of a persisted one. Reads of the snapshot alone
/// carry an `ETag` and may be cached for a second; a matching `If-None-Match` is answered 304
/// without running anything.
async fn get(state: &HttpState, parts: &axum::http::request::Parts) -> Response {
    // Mutations are refused below, so the address is not needed for the limit; it is
    // passed anyway so every HTTP request carries the same data.
    let client = peer(&parts.extensions);
    let query_string = parts.uri.query().unwrap_or("");
    let media = negotiate(&parts.headers);
    let known = known_read(
        state,
        &parts.headers,
        client,
        query_string.as_bytes(),
        media,
        true,
    );
    let memo_missed = match known {
        Known::Answered(response) => return response,
        Known::MemoMissed => true,
        Known::Unknown => false,
    };
    let request = match parse_query_string(query_string) {
        Ok(request)
            if !request.query.is_empty() || request.extensions.contains_key("persistedQuery") =>
        {
            request
        }
        _ => {
            return refusal(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                "pass the query as ?query=…, or use GraphiQL at /graphiql",
            )
        }
    };
    let Some(media) = media else {
        return not_acceptable();
    };
    let prepared = match prepare(state, request, media, client, &parts.headers).await {
        Ok(prepared) => prepared,
        Err(answer) => return answer,
    };
    if prepared.is_mutation {
        let mut response = refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadRequest,
            "mutations are only accepted by POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    remember_read(state, &prepared, query_string.as_bytes(), media, true);
    answer(
        state,
        &parts.headers,
        client,
        prepared,
        media,
        true,
        memo_missed,
    )
    .await
}

/// Runs a prepared request. A read of the snapshot is answered from the memo when it holds
/// the answer at the current snapshot (unless `memo_missed`: the memo was asked already), and
/// a complete answer read from the cache tier is kept there; by GET it also carries an
/// `ETag`, and a matching `If-None-Match` is answered 304.
async fn answer(
    state: &HttpState,
    headers: &HeaderMap,
    client: Option<ClientAddr>,
    prepared: Prepared,
    media: MediaType,
    by_get: bool,
    memo_missed: bool,
) -> Response {
    let Prepared {
        mut request,
        unparsed,
        mut kept,
        snapshot_read,
        ..
    } = prepared;
    // Only now, when it is known to run.
    if let Some(hash) = &unparsed {
        kept = state.documents.attach(&mut request, hash);
    }
    // Taken before the query runs: a read never answers older than the feed.
    let snapshot = state.feed.current();
    let Some(hash) = snapshot_read.filter(|_| snapshot.version >= 0) else {
        return graphql_response(
            media,
            run(state, headers, client, request, kept.as_ref()).await,
        );
    };
    let etag = by_get.then(|| read_cache::etag(&snapshot, &hash)).flatten();
    let etag = match without_running(
        state,
        headers,
        client,
        &hash,
        &snapshot,
        media,
        etag,
        !memo_missed,
    ) {
        Ok(answered) => return answered,
        Err(etag) => etag,
    };
    let reads = SnapshotReads::default();
    let response = run(
        state,
        headers,
        client,
        request.data(reads.clone()),
        kept.as_ref(),
    )
    .await;
    // Only a full answer read from the cache tier is worth keeping: an error may be gone at
    // the next try. Otherwise an expired answer this request was to prepare again is given
    // up, so that nobody is served it any longer.
    let body = (response.errors.is_empty())
        .then(|| serde_json::to_vec(&response).ok())
        .flatten()
        .map(Bytes::from);
    if let Some(memo) = &state.memo {
        match &body {
            Some(body) if reads.all_cached_at(&snapshot.generation, snapshot.version) => {
                memo.put(&hash, &snapshot, body.clone(), reads.cost());
            }
            _ => memo.forget(&hash, &snapshot),
        }
    }
    match body {
        Some(body) => snapshot_answer(body, media, etag),
        None => graphql_response(media, response),
    }
}

/// The answer to the read of the snapshot hashed `hash` that runs nothing: 304 when
/// `If-None-Match` names `etag`, else, when `ask_memo`, the memo's prepared answer at
/// `snapshot` (or the read budget's refusal of it). Errs with the `etag` when the read must
/// run; when the memo was asked, this request is then the one to prepare the answer again.
#[allow(clippy::too_many_arguments)]
fn without_running(
    state: &HttpState,
    headers: &HeaderMap,
    client: Option<ClientAddr>,
    hash: &str,
    snapshot: &Snapshot,
    media: MediaType,
    etag: Option<HeaderValue>,
    ask_memo: bool,
) -> Result<Response, Option<HeaderValue>> {
    if let Some(etag) = &etag {
        if read_cache::none_match_hits(headers.get(header::IF_NONE_MATCH), etag) {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            cacheable_headers(response.headers_mut(), etag.clone());
            return Ok(response);
        }
    }
    let prepared = match &state.memo {
        Some(memo) if ask_memo => memo.get(hash, snapshot),
        _ => None,
    };
    let Some(prepared) = prepared else {
        return Err(etag);
    };
    if let Err(refused) = state.limits.charge_read(prepared.cost, client) {
        let errors = vec![refused.into_server_error()];
        return Ok(graphql_response(media, GqlResponse::from_errors(errors)));
    }
    Ok(snapshot_answer(prepared.body, media, etag))
}

/// A complete answer to a read of the snapshot, as `body`.
fn snapshot_answer(body: Bytes, media: MediaType, etag: Option<HeaderValue>) -> Response {
    let mut http = (StatusCode::OK, body).into_response();
    http.headers_mut()
        .insert(header::CONTENT_TYPE, media.header());
    if let Some(etag) = etag {
        cacheable_headers(http.headers_mut(), etag);
    }
    http
}

/// What a cacheable answer, and its 304, carry. The body differs by `Accept` only in its
/// `Content-Type`, but a cache must not serve one for the other.
fn cacheable_headers(headers: &mut HeaderMap, etag: HeaderValue) {
    headers.insert(header::ETAG, etag);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_SNAPSHOT),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
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
}
