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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};
use axum::body::Bytes;
use axum::http::HeaderValue;
use sha2::{Digest, Sha256};

use super::swap_map::BoundedSwapMap;
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
    // The digest's own hex formatting: `hex::encode` goes char by char, a few % of a hot read.
    format!("{:x}", Sha256::digest(query.as_bytes()))
}

/// The hash of a request's `persistedQuery` extension, when it is one this server reads.
pub fn persisted_hash(request: &async_graphql::Request) -> Option<String> {
    let Some(async_graphql::Value::Object(persisted)) = request.extensions.get("persistedQuery")
    else {
        return None;
    };
    match (persisted.get("version"), persisted.get("sha256Hash")) {
        (Some(async_graphql::Value::Number(version)), Some(async_graphql::Value::String(hash)))
            if version.as_i64() == Some(1) =>
        {
            Some(hash.clone())
        }
        _ => None,
    }
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
    format!("{:x}", hasher.finalize())
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

/// How many prepared answers are kept per snapshot: a dashboard asks a handful of questions,
/// GraphiQL users a few more; past it, the oldest answer makes room.
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

/// A prepared answer: its body, and its query's cost (charged to the client's read budget as
/// if it ran).
#[derive(Clone)]
pub struct Prepared {
    pub body: Bytes,
    pub cost: usize,
}

/// A prepared answer as the memo keeps it.
struct Entry {
    prepared: Prepared,
    /// When it was prepared.
    at: Instant,
    /// Since when one request prepares it again, once expired: nanoseconds after `at`, plus
    /// one; 0 while nobody does. An atomic, so that the claim needs no lock.
    refreshing: AtomicU64,
}

/// The answers prepared at one snapshot, by request hash. Answers of older snapshots are of
/// no use: a read asks the memo at the feed's newest.
#[derive(Default)]
struct AtSnapshot {
    generation: String,
    version: i64,
    answers: HashMap<String, Arc<Entry>>,
}

impl AtSnapshot {
    fn is(&self, snapshot: &Snapshot) -> bool {
        self.version == snapshot.version && self.generation == snapshot.generation
    }
}

/// Prepared answers to reads of the snapshot, written as they are without running the schema.
///
/// Read without a lock, since every hot read looks here and the runtime's workers would
/// otherwise take turns at one mutex. A change copies the answers of the snapshot (at most
/// [`MEMO_ENTRIES`] pointers) and swaps them in; changes are rare, once per question and
/// snapshot or per second.
pub struct Memo {
    current: ArcSwap<AtSnapshot>,
    /// The kinds of the documents asked, so that a prepared answer needs no parse.
    pub kinds: Kinds,
    /// The request hashes of reads of the snapshot by their text, so that a prepared answer
    /// needs no hash either.
    pub known: KnownReads,
}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            current: ArcSwap::from_pointee(AtSnapshot {
                version: -1,
                ..AtSnapshot::default()
            }),
            kinds: Kinds::default(),
            known: KnownReads::default(),
        }
    }
}

/// Nanoseconds, saturated: an `Instant` difference fits unless the process ran for centuries.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Memo {
    pub fn get(&self, request_hash: &str, snapshot: &Snapshot) -> Option<Prepared> {
        let current = self.current.load();
        if !current.is(snapshot) {
            return None;
        }
        let entry = current.answers.get(request_hash)?;
        let age = entry.at.elapsed();
        if age < MEMO_TTL {
            return Some(entry.prepared.clone());
        }
        let claim = nanos(age).saturating_add(1);
        match entry
            .refreshing
            .compare_exchange(0, claim, Ordering::AcqRel, Ordering::Acquire)
        {
            // The caller prepares it again, then puts it or forgets it.
            Ok(_) => None,
            // Someone prepares it again: the expired answer meanwhile.
            Err(since)
                if age.saturating_sub(Duration::from_nanos(since - 1)) < MEMO_REFRESH_GRACE =>
            {
                Some(entry.prepared.clone())
            }
            // Whoever did has not come back: given up, and the caller prepares it.
            Err(_) => {
                self.forget(request_hash, snapshot);
                None
            }
        }
    }

    /// Gives up the answer to `request_hash` at `snapshot`: a request that found it expired
    /// could not prepare it again (an error, or an answer not read from the cache tier).
    pub fn forget(&self, request_hash: &str, snapshot: &Snapshot) {
        self.current.rcu(|current| {
            if !current.is(snapshot) || !current.answers.contains_key(request_hash) {
                return Arc::clone(current);
            }
            let mut answers = current.answers.clone();
            answers.remove(request_hash);
            Arc::new(AtSnapshot {
                generation: current.generation.clone(),
                version: current.version,
                answers,
            })
        });
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
        let entry = Arc::new(Entry {
            prepared: Prepared { body, cost },
            at,
            refreshing: AtomicU64::new(0),
        });
        self.current.rcu(|current| {
            let mut answers = if current.is(snapshot) {
                current.answers.clone()
            } else if current.generation == snapshot.generation
                && current.version > snapshot.version
            {
                // Prepared at an older snapshot than the memo's: nobody asks for it any more.
                return Arc::clone(current);
            } else {
                HashMap::new()
            };
            if answers.len() >= MEMO_ENTRIES && !answers.contains_key(request_hash) {
                let oldest = answers
                    .iter()
                    .min_by_key(|(_, entry)| entry.at)
                    .map(|(hash, _)| hash.clone());
                if let Some(oldest) = oldest {
                    answers.remove(&oldest);
                }
            }
            answers.insert(request_hash.to_owned(), Arc::clone(&entry));
            Arc::new(AtSnapshot {
                generation: snapshot.generation.clone(),
                version: snapshot.version,
                answers,
            })
        });
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

/// The kinds of one document's operations seen so far, by operation name.
type OperationKinds = Vec<(Option<String>, Kind)>;

/// The [`Kind`] of documents seen before, by document hash and operation name, so that a
/// prepared answer is found without parsing its document again (parsing is most of what a
/// prepared answer would otherwise cost). Keyed by the hash alone, so that a lookup borrows it
/// instead of allocating a key; a document's few named operations are then scanned. At most
/// [`KINDS`] documents (see [`BoundedSwapMap`] for what happens past it).
pub struct Kinds {
    entries: BoundedSwapMap<OperationKinds>,
}

impl Default for Kinds {
    fn default() -> Self {
        Kinds {
            entries: BoundedSwapMap::new(KINDS),
        }
    }
}

impl Kinds {
    pub fn get(&self, document_hash: &str, operation: Option<&str>) -> Option<Kind> {
        self.entries
            .load()
            .get(document_hash)?
            .iter()
            .find(|(name, _)| name.as_deref() == operation)
            .map(|&(_, kind)| kind)
    }

    pub fn put(&self, document_hash: &str, operation: Option<&str>, kind: Kind) {
        self.entries.update(document_hash, |known| {
            let mut kinds = known.cloned().unwrap_or_default();
            match kinds
                .iter_mut()
                .find(|(name, _)| name.as_deref() == operation)
            {
                Some((_, known)) => *known = kind,
                // As many as the document has operations: bounded by the body's size.
                None => kinds.push((operation.map(str::to_owned), kind)),
            }
            kinds
        });
    }
}

/// How many request texts [`KnownReads`] remembers.
const KNOWN_READS: usize = 512;
/// Longest request text [`KnownReads`] remembers (bytes): the web app's reads are a few
/// hundred; with [`KNOWN_READS`] this bounds its memory to a megabyte.
const KNOWN_READ_BYTES: usize = 2048;

/// How a request text was sent: by POST (its body) or by GET (its query string), and the
/// media type of the answer asked for. Each makes its own request hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub by_get: bool,
    pub media: &'static str,
}

/// The request hashes of texts already seen to be reads of the snapshot alone, by the exact
/// text and how it was sent. A hot read that sends the same bytes again (a dashboard polling,
/// a client retrying) is then answered from the memo without being parsed as JSON or hashed:
/// its hash, its kind and its variables follow from its text alone. A by-hash persisted query
/// is no exception: the hash names one document for good (its SHA-256). At most
/// [`KNOWN_READS`] texts (see [`BoundedSwapMap`] past it) of at most [`KNOWN_READ_BYTES`].
pub struct KnownReads {
    entries: BoundedSwapMap<Vec<(Sent, Arc<str>)>>,
}

impl Default for KnownReads {
    fn default() -> Self {
        KnownReads {
            entries: BoundedSwapMap::new(KNOWN_READS),
        }
    }
}

impl KnownReads {
    /// The request hash of `text` sent as `sent`, when it was seen to read the snapshot alone.
    pub fn get(&self, text: &[u8], sent: Sent) -> Option<Arc<str>> {
        // Not UTF-8: not a request that ever ran either.
        let text = std::str::from_utf8(text).ok()?;
        self.entries
            .load()
            .get(text)?
            .iter()
            .find(|(seen, _)| *seen == sent)
            .map(|(_, hash)| Arc::clone(hash))
    }

    /// Remembers that `text` sent as `sent` is the read of the snapshot hashed `request_hash`.
    pub fn put(&self, text: &[u8], sent: Sent, request_hash: &str) {
        let Ok(text) = std::str::from_utf8(text) else {
            return;
        };
        if text.len() > KNOWN_READ_BYTES || self.get(text.as_bytes(), sent).is_some() {
            return;
        }
        let hash: Arc<str> = Arc::from(request_hash);
        self.entries.update(text, |known| {
            let mut ways = known.cloned().unwrap_or_default();
            ways.retain(|(seen, _)| *seen != sent);
            // At most one per way of sending: four.
            ways.push((sent, Arc::clone(&hash)));
            ways
        });
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
    fn a_refresh_whose_request_never_came_back_is_given_up_after_the_grace() {
        let memo = Memo::default();
        let at = Snapshot::empty(3, chrono::Utc::now());
        let long_ago = Instant::now()
            .checked_sub(MEMO_TTL + MEMO_REFRESH_GRACE + Duration::from_secs(1))
            .expect("a time in the past");
        memo.put_prepared_at("abc", &at, Bytes::from_static(b"{}"), 1, long_ago);
        // Claimed as soon as it expired, by a request that never put nor forgot it (its
        // client went away mid-request, say): more than the grace ago.
        let claimed_at = nanos(MEMO_TTL + Duration::from_millis(1)) + 1;
        memo.current.load().answers["abc"]
            .refreshing
            .store(claimed_at, Ordering::Release);
        // Nobody is served the stale answer any longer: this caller prepares it, and it is
        // gone for the next one too.
        assert!(memo.get("abc", &at).is_none());
        assert!(!memo.current.load().answers.contains_key("abc"));
        assert!(memo.get("abc", &at).is_none());
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

    #[test]
    fn remembers_each_operation_of_a_document_apart() {
        let kinds = Kinds::default();
        let read = Kind {
            is_mutation: false,
            snapshot_only: true,
        };
        let write = Kind {
            is_mutation: true,
            snapshot_only: false,
        };
        kinds.put("doc", Some("Read"), read);
        kinds.put("doc", Some("Write"), write);
        kinds.put("doc", None, read);
        assert_eq!(kinds.get("doc", Some("Read")), Some(read));
        assert_eq!(kinds.get("doc", Some("Write")), Some(write));
        assert_eq!(kinds.get("doc", None), Some(read));
        assert_eq!(kinds.get("doc", Some("Other")), None);
        assert_eq!(kinds.get("other", Some("Read")), None);
        // Learnt again (the same document and name): the newer kind.
        kinds.put("doc", Some("Read"), write);
        assert_eq!(kinds.get("doc", Some("Read")), Some(write));
    }

    #[test]
    fn knows_a_read_by_its_exact_text_and_how_it_was_sent() {
        let known = KnownReads::default();
        let post = Sent {
            by_get: false,
            media: "application/json",
        };
        let get = Sent {
            by_get: true,
            ..post
        };
        let text = br#"{"query":"{ aggregates { version } }"}"#;
        assert_eq!(known.get(text, post), None);
        known.put(text, post, "h1");
        known.put(text, get, "h2");
        assert_eq!(known.get(text, post).as_deref(), Some("h1"));
        assert_eq!(known.get(text, get).as_deref(), Some("h2"));
        let other_media = Sent {
            media: "application/graphql-response+json",
            ..post
        };
        assert_eq!(known.get(text, other_media), None);
        // Another byte is another text.
        assert_eq!(
            known.get(br#"{"query":"{ aggregates { version }}"}"#, post),
            None
        );
        // Not UTF-8, or too long to keep: never known.
        known.put(b"\xff\xfe", post, "h3");
        assert_eq!(known.get(b"\xff\xfe", post), None);
        let long = vec![b'a'; KNOWN_READ_BYTES + 1];
        known.put(&long, post, "h4");
        assert_eq!(known.get(&long, post), None);
    }

    #[test]
    fn hashes_documents_in_lowercase_hex() {
        // The APQ hash of `{__typename}`, as clients compute it.
        assert_eq!(
            document_hash("{__typename}"),
            "ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"
        );
    }
}
