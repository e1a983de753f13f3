//! HTTP caching of GET reads of the snapshot: an operation that selects only `aggregates`,
//! `categories` and `__typename` gives every caller the same answer until the snapshot
//! changes, so browsers and proxies may keep it briefly and revalidate it with
//! `If-None-Match`, answered 304 without running anything.
//!
//! The `ETag` is `"<generation>-<version>-<hash>"`: the process's newest snapshot (see
//! [`crate::feed`]) and a short hash of what was asked (document, variables, operation name,
//! media type). It is taken before the query runs, and a read never answers older than the
//! feed, so the body is at least as new as its tag says; a newer body only makes the next
//! revalidation miss.
//!
//! The same reads, by GET or POST, are answered from [`Memo`]: the bytes of a complete answer
//! read from the cache tier, kept per request and snapshot for a second, written without
//! running the schema.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};
use axum::body::Bytes;
use axum::http::HeaderValue;
use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::domain::Snapshot;

/// What a cacheable answer says: fresh for a second (the worker folds about that often),
/// then served stale for up to five more while a cache revalidates it in the background.
pub const CACHE_SNAPSHOT: &str = "public, max-age=1, stale-while-revalidate=5";
/// Everything else: answers that depend on the caller or change the data, and refusals.
pub const NO_STORE: &str = "no-store";

/// Top-level fields whose answer is the same for every caller, for a given snapshot.
const SNAPSHOT_FIELDS: [&str; 3] = ["aggregates", "categories", "__typename"];

/// The operation `name` selects (the only one when no name is given), as execution picks it.
pub fn selected_operation<'a>(
    doc: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match name {
        Some(name) => doc
            .operations
            .iter()
            .find(|(n, _)| n.map(|n| n.as_str()) == Some(name))
            .map(|(_, op)| &op.node),
        // Several operations and no name is an error that execution reports.
        None if doc.operations.iter().count() == 1 => {
            doc.operations.iter().next().map(|(_, op)| &op.node)
        }
        None => None,
    }
}

/// Whether the operation is a query that reads only the snapshot and the categories, looking
/// through fragments at its top level.
pub fn snapshot_only(doc: &ExecutableDocument, operation: &OperationDefinition) -> bool {
    selects_only(doc, operation, OperationType::Query, &SNAPSHOT_FIELDS)
}

/// Whether the operation is of type `ty` and selects no top-level field but `fields`, looking
/// through fragments at its top level.
pub fn selects_only(
    doc: &ExecutableDocument,
    operation: &OperationDefinition,
    ty: OperationType,
    fields: &[&str],
) -> bool {
    fn only(
        doc: &ExecutableDocument,
        set: &SelectionSet,
        fields: &[&str],
        seen: &mut HashSet<String>,
    ) -> bool {
        set.items.iter().all(|item| match &item.node {
            Selection::Field(field) => fields.contains(&field.node.name.node.as_str()),
            Selection::InlineFragment(inline) => {
                only(doc, &inline.node.selection_set.node, fields, seen)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                // A fragment seen before is already being checked: cycles (refused by
                // validation anyway) end here.
                if !seen.insert(name.to_owned()) {
                    return true;
                }
                doc.fragments
                    .get(name)
                    .is_some_and(|f| only(doc, &f.node.selection_set.node, fields, seen))
            }
        })
    }
    operation.ty == ty
        && only(
            doc,
            &operation.selection_set.node,
            fields,
            &mut HashSet::new(),
        )
}

/// The SHA-256 of a query's text, in lowercase hex: what Automatic Persisted Queries name it by.
pub fn document_hash(query: &str) -> String {
    hex::encode(Sha256::digest(query.as_bytes()))
}

/// What is asked, as a SHA-256 in hex: the document's hash, the operation name, the
/// variables and the media type of the answer.
pub fn request_hash(document: &str, request: &async_graphql::Request, media: &str) -> String {
    let mut hasher = Sha256::new();
    // Each part ends with a 0 byte, which none of them contains, so parts cannot run together.
    for part in [
        document,
        request.operation_name.as_deref().unwrap_or(""),
        &serde_json::to_string(&request.variables).unwrap_or_default(),
        media,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// The `ETag` of an answer to the request hashed `request_hash` under `snapshot`: its first
/// 16 hex digits are plenty to tell one client's questions apart. `None` before the first
/// snapshot, or when the generation could not go in a header.
pub fn etag(snapshot: &Snapshot, request_hash: &str) -> Option<HeaderValue> {
    if snapshot.version < 0 || snapshot.generation.contains('"') {
        return None;
    }
    let short = request_hash.get(..16).unwrap_or(request_hash);
    HeaderValue::from_str(&format!(
        "\"{}-{}-{short}\"",
        snapshot.generation, snapshot.version
    ))
    .ok()
}

/// How many prepared answers are kept: a dashboard asks a handful of questions, GraphiQL users
/// a few more.
const MEMO_ENTRIES: usize = 256;
/// How long a prepared answer is served: what an HTTP cache may keep it (`max-age=1`). The
/// feed moves on with each fold this process hears of, which changes the key; this bounds
/// the staleness when it hears of none (another process folded and the bus is down).
const MEMO_TTL: Duration = Duration::from_secs(1);
/// How long an expired answer is still served while one request prepares it again: without
/// it, every request in flight when an answer expires would run the query at once (at 64
/// concurrent readers, a burst of slow answers every second). A refresh takes milliseconds;
/// one that fails gives the answer up at once ([`Memo::forget`]), one that hangs at this bound.
const MEMO_REFRESH_GRACE: Duration = Duration::from_secs(1);

/// Which prepared answer: the full request hash and the snapshot (generation, version).
type MemoKey = (String, String, i64);

/// A prepared answer: its body, its query's cost (charged to the client's read budget as if
/// it ran), and when it was prepared.
#[derive(Clone)]
pub struct Prepared {
    pub body: Bytes,
    pub cost: usize,
    at: Instant,
    /// Since when one request prepares it again, once expired.
    refreshing: Option<Instant>,
}

/// Prepared answers to reads of the snapshot, written as they are without running the schema.
pub struct Memo {
    entries: Mutex<LruCache<MemoKey, Prepared>>,
    /// The kinds of the documents asked, so that a prepared answer needs no parse.
    pub kinds: Kinds,
}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(MEMO_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            )),
            kinds: Kinds::default(),
        }
    }
}

impl Memo {
    fn entries(&self) -> MutexGuard<'_, LruCache<MemoKey, Prepared>> {
        // Entries are replaced whole; a panic cannot leave one half-written.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, request_hash: &str, snapshot: &Snapshot) -> Option<Prepared> {
        let key = (
            request_hash.to_owned(),
            snapshot.generation.clone(),
            snapshot.version,
        );
        let mut entries = self.entries();
        let prepared = entries.get_mut(&key)?;
        if prepared.at.elapsed() < MEMO_TTL {
            return Some(prepared.clone());
        }
        match prepared.refreshing {
            // Someone prepares it again: the expired answer meanwhile.
            Some(since) if since.elapsed() < MEMO_REFRESH_GRACE => Some(prepared.clone()),
            Some(_) => {
                entries.pop(&key);
                None
            }
            // The caller prepares it again, then puts it or forgets it.
            None => {
                prepared.refreshing = Some(Instant::now());
                None
            }
        }
    }

    /// Gives up the answer to `request_hash` at `snapshot`: a request that found it expired
    /// could not prepare it again (an error, or an answer not read from the cache tier).
    pub fn forget(&self, request_hash: &str, snapshot: &Snapshot) {
        self.entries().pop(&(
            request_hash.to_owned(),
            snapshot.generation.clone(),
            snapshot.version,
        ));
    }

    pub fn put(&self, request_hash: &str, snapshot: &Snapshot, body: Bytes, cost: usize) {
        self.put_prepared_at(request_hash, snapshot, body, cost, Instant::now());
    }

    fn put_prepared_at(
        &self,
        request_hash: &str,
        snapshot: &Snapshot,
        body: Bytes,
        cost: usize,
        at: Instant,
    ) {
        let key = (
            request_hash.to_owned(),
            snapshot.generation.clone(),
            snapshot.version,
        );
        let prepared = Prepared {
            body,
            cost,
            at,
            refreshing: None,
        };
        self.entries().put(key, prepared);
    }
}

/// How many documents' kinds are remembered (see [`Kinds`]).
const KINDS: usize = 512;

/// What a document's selected operation is: a mutation, and whether it reads the snapshot
/// alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub is_mutation: bool,
    pub snapshot_only: bool,
}

/// The [`Kind`] of documents seen before, by document hash and operation name, so that a
/// prepared answer is found without parsing its document again (parsing is most of what a
/// prepared answer would otherwise cost).
pub struct Kinds {
    entries: Mutex<LruCache<(String, Option<String>), Kind>>,
}

impl Default for Kinds {
    fn default() -> Self {
        Kinds {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(KINDS).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

impl Kinds {
    fn entries(&self) -> MutexGuard<'_, LruCache<(String, Option<String>), Kind>> {
        // Entries are replaced whole; a panic cannot leave one half-written.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, document_hash: &str, operation: Option<&str>) -> Option<Kind> {
        self.entries()
            .get(&(document_hash.to_owned(), operation.map(str::to_owned)))
            .copied()
    }

    pub fn put(&self, document_hash: &str, operation: Option<&str>, kind: Kind) {
        self.entries().put(
            (document_hash.to_owned(), operation.map(str::to_owned)),
            kind,
        );
    }
}

/// Whether `If-None-Match` names `etag` (or is `*`). Weak tags compare equal to strong ones,
/// as RFC 9110 asks of `If-None-Match`.
pub fn none_match_hits(if_none_match: Option<&HeaderValue>, etag: &HeaderValue) -> bool {
    let (Some(header), Ok(etag)) = (if_none_match.and_then(|v| v.to_str().ok()), etag.to_str())
    else {
        return false;
    };
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(query).unwrap()
    }

    fn cacheable(query: &str, name: Option<&str>) -> bool {
        let doc = parse(query);
        selected_operation(&doc, name).is_some_and(|op| snapshot_only(&doc, op))
    }

    #[test]
    fn only_snapshot_reads_are_cacheable() {
        assert!(cacheable(
            "{ aggregates { version } categories { id } __typename }",
            None
        ));
        assert!(cacheable(
            "query D { ...F } fragment F on Query { aggregates { version } }",
            None
        ));
        assert!(cacheable("{ ... on Query { categories { id } } }", None));
        assert!(!cacheable(
            "{ aggregates { version } mySubmissions { id } }",
            None
        ));
        assert!(!cacheable("{ submission(id: \"x\") { id } }", None));
        assert!(!cacheable(
            "query D { ...F } fragment F on Query { mySubmissions { id } }",
            None
        ));
        assert!(!cacheable(
            "subscription { aggregatesUpdated { version } }",
            None
        ));
        let two = "query A { categories { id } } query B { mySubmissions { id } }";
        assert!(cacheable(two, Some("A")));
        assert!(!cacheable(two, Some("B")));
        assert!(!cacheable(two, None));
    }

    #[test]
    fn prepared_answers_are_kept_per_request_and_snapshot() {
        let memo = Memo::default();
        let at = |version| Snapshot::empty(version, chrono::Utc::now());
        memo.put("abc", &at(3), Bytes::from_static(b"{}"), 102);
        let hit = memo.get("abc", &at(3)).map(|p| (p.body, p.cost));
        assert_eq!(hit, Some((Bytes::from_static(b"{}"), 102)));
        assert!(memo.get("abc", &at(4)).is_none());
        assert!(memo.get("abd", &at(3)).is_none());
    }

    #[test]
    fn an_expired_answer_is_prepared_again_by_one_request_while_the_others_get_it() {
        let memo = Memo::default();
        let at = Snapshot::empty(3, chrono::Utc::now());
        let expired = Instant::now()
            .checked_sub(MEMO_TTL + Duration::from_millis(10))
            .expect("a time in the past");
        let body = || Bytes::from_static(b"{}");
        memo.put_prepared_at("abc", &at, body(), 1, expired);
        // The first to find it expired prepares it again; meanwhile the others get it.
        assert!(memo.get("abc", &at).is_none());
        assert_eq!(memo.get("abc", &at).map(|p| p.body), Some(body()));
        assert_eq!(memo.get("abc", &at).map(|p| p.body), Some(body()));
        // Prepared again: fresh.
        memo.put("abc", &at, Bytes::from_static(b"{\"new\":1}"), 1);
        assert_eq!(
            memo.get("abc", &at).map(|p| p.body),
            Some(Bytes::from_static(b"{\"new\":1}"))
        );
        // A refresh that fails gives it up: nobody is served the expired answer any longer.
        memo.put_prepared_at("abd", &at, body(), 1, expired);
        assert!(memo.get("abd", &at).is_none());
        memo.forget("abd", &at);
        assert!(memo.get("abd", &at).is_none());
        assert!(memo.get("abd", &at).is_none());
    }

    #[test]
    fn matches_if_none_match() {
        let etag = HeaderValue::from_static("\"g-3-abc\"");
        let hits =
            |value: &'static str| none_match_hits(Some(&HeaderValue::from_static(value)), &etag);
        assert!(hits("\"g-3-abc\""));
        assert!(hits("W/\"g-3-abc\""));
        assert!(hits("\"x\", \"g-3-abc\""));
        assert!(hits("*"));
        assert!(!hits("\"g-2-abc\""));
        assert!(!none_match_hits(None, &etag));
    }
}
