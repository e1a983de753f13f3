//! The GraphQL schema: one file per root type, shared types and error mapping beside them.

pub mod cost;
mod error;
pub mod limits;
mod loaders;
mod mutation;
mod observe;
mod query;
mod subscription;
mod types;
mod validate_once;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::apollo_persisted_queries::{
    ApolloPersistedQueries, CacheStorage, LruCacheStorage,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Context, Schema, SchemaBuilder, ValidationMode};
use tokio_util::sync::CancellationToken;

use crate::aggregates::Aggregates;
use crate::config::QueryLimitsConfig;
use crate::domain::{Category, Snapshot, SnapshotSource};
use crate::metrics::Metrics;
use crate::submissions::Submissions;

pub use error::ApiError;
pub use limits::QueryLimits;
pub use loaders::ReadPermits;
pub use mutation::MutationRoot;
pub use observe::{request_error_code, PERSISTED_QUERY_NOT_FOUND};
pub use query::QueryRoot;
pub use subscription::{SubscriptionRoot, UpdatesComputed};
pub use validate_once::{KeptDocument, LearnsValidation};

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
}

/// What the resolvers work with.
#[derive(Clone)]
pub struct Services {
    pub submissions: Submissions,
    pub aggregates: Aggregates,
    /// Loaded once at start: categories change only by migration.
    pub categories: Arc<Vec<Category>>,
    /// Cancelled at shutdown: ends every subscription with a `complete`.
    pub shutdown: CancellationToken,
    /// Taken by every database read a resolver makes; see [`ReadPermits`].
    pub reads: ReadPermits,
    pub metrics: Metrics,
}

/// How many documents Automatic Persisted Queries remember, least recently used out first:
/// a few times the operations of the web app and GraphiQL, with room for other clients.
const PERSISTED_QUERIES: usize = 512;

/// The documents registered by Automatic Persisted Queries (a query sent once with its
/// SHA-256, then by the hash alone), shared by the schema's extension and the HTTP transport,
/// which needs the document of a GET before it runs (to refuse mutations and to answer
/// `If-None-Match`).
///
/// Only documents that pass the limits' checks of the document alone are kept: the extension
/// stores a document before the limits see it, and a cache of documents refused anyway would
/// hold up to 64 KiB of text each, parsed.
#[derive(Clone)]
pub struct PersistedQueries {
    documents: LruCacheStorage,
    limits: Arc<QueryLimits>,
}

impl PersistedQueries {
    fn new(limits: Arc<QueryLimits>) -> Self {
        PersistedQueries {
            documents: LruCacheStorage::new(PERSISTED_QUERIES),
            limits,
        }
    }

    /// The document registered under `sha256` (lowercase hex), if it is still remembered.
    pub async fn document(&self, sha256: &str) -> Option<ExecutableDocument> {
        self.documents.get(sha256.to_owned()).await
    }
}

#[async_trait::async_trait]
impl CacheStorage for PersistedQueries {
    async fn get(&self, key: String) -> Option<ExecutableDocument> {
        self.documents.get(key).await
    }

    async fn set(&self, key: String, query: ExecutableDocument) {
        if self.limits.check_document(&query).is_ok() {
            self.documents.set(key, query).await;
        }
    }
}

/// The schema, with its limits (depth, cost, introspection, per-address read budget, costly
/// queries at once: see [`limits`]) in place of async-graphql's own, whose errors name no
/// number, a set of loaders per request (see [`loaders`]), and Automatic Persisted Queries,
/// whose documents are returned beside the schema with the limits.
pub fn build_schema(services: Services, limits: &QueryLimitsConfig) -> BuiltSchema {
    let limits = Arc::new(QueryLimits::new(limits, services.metrics.clone()));
    let metrics = services.metrics.clone();
    let persisted = PersistedQueries::new(limits.clone());
    let schema = |mode: ValidationMode| {
        let mut builder = builder().validation_mode(mode);
        if !limits.introspection() {
            // Also refused, with a clearer error, by the limits before validation.
            builder = builder.disable_introspection();
        }
        builder
            .data(services.clone())
            // The extensions run in this order. First the metrics, which must see every
            // answer; then the persisted queries, because the limits must see the document a
            // hash stands for, not the empty query sent with it.
            .extension(observe::RequestMetrics(metrics.clone()))
            .extension(ApolloPersistedQueries::new(persisted.clone()))
            .extension(limits::LimitsExtension(limits.clone()))
            .extension(loaders::RequestLoaders)
            .finish()
    };
    BuiltSchema {
        schema: schema(ValidationMode::Strict),
        validated_once: schema(ValidationMode::Fast),
        persisted,
        limits,
    }
}

/// The schema in SDL, as published in `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// What a finished build gives the transports.
pub struct BuiltSchema {
    pub schema: AppSchema,
    /// The same schema, validating only cost and depth: for documents that passed the full
    /// validation before, sent with variables that pass it (see [`KeptDocument`]).
    pub validated_once: AppSchema,
    pub persisted: PersistedQueries,
    pub limits: Arc<QueryLimits>,
}

/// Put in a request's data by a transport that keeps prepared answers: the snapshots its
/// `aggregates` fields read, so that only an answer read whole from the cache, at the snapshot
/// the transport expected, is kept (and kept answers say `CACHE` truthfully). Also the
/// request's cost, which a prepared answer charges to the client's read budget.
#[derive(Clone, Default)]
pub struct SnapshotReads {
    reads: Arc<Mutex<Vec<(String, i64, SnapshotSource)>>>,
    cost: Arc<AtomicUsize>,
}

impl SnapshotReads {
    fn record(&self, snapshot: &Snapshot) {
        self.reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((
                snapshot.generation.clone(),
                snapshot.version,
                snapshot.source,
            ));
    }

    /// Whether every read (if any) came from the cache tier at exactly this snapshot.
    pub fn all_cached_at(&self, generation: &str, version: i64) -> bool {
        self.reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .all(|(g, v, source)| {
                g == generation && *v == version && *source == SnapshotSource::Cache
            })
    }

    fn set_cost(&self, cost: usize) {
        self.cost.store(cost, Ordering::Relaxed);
    }

    /// The cost validation found; 0 when the request did not get that far.
    pub fn cost(&self) -> usize {
        self.cost.load(Ordering::Relaxed)
    }
}

fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    // The schema is only ever built by `build_schema`, which always provides the services.
    ctx.data_unchecked::<Services>()
}
