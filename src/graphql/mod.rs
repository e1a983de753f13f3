//! The GraphQL schema: one file per root type, shared types and error mapping beside them.

pub mod cost;
mod error;
pub mod limits;
mod loaders;
mod mutation;
mod query;
mod subscription;
mod types;

use std::sync::Arc;

use async_graphql::{Context, Schema, SchemaBuilder};
use tokio_util::sync::CancellationToken;

use crate::aggregates::Aggregates;
use crate::config::QueryLimitsConfig;
use crate::domain::Category;
use crate::submissions::Submissions;

pub use error::ApiError;
pub use limits::QueryLimits;
pub use loaders::ReadPermits;
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

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
}

/// The schema, with its limits (depth, cost, introspection, per-address read budget, costly
/// queries at once: see [`limits`]) in place of async-graphql's own, whose errors name no
/// number, and a set of loaders per request (see [`loaders`]).
pub fn build_schema(services: Services, limits: &QueryLimitsConfig) -> AppSchema {
    let limits = QueryLimits::new(limits);
    let mut builder = builder();
    if !limits.introspection() {
        // Also refused, with a clearer error, by the limits before validation.
        builder = builder.disable_introspection();
    }
    builder
        .data(services)
        .extension(limits::LimitsExtension(Arc::new(limits)))
        .extension(loaders::RequestLoaders)
        .finish()
}

/// The schema in SDL, as published in `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}

fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    // The schema is only ever built by `build_schema`, which always provides the services.
    ctx.data_unchecked::<Services>()
}
