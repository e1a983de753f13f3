//! The GraphQL schema: one file per root type, shared types and error mapping beside them.

mod error;
mod mutation;
mod query;
mod subscription;
mod types;

use std::sync::Arc;

use async_graphql::{Context, Schema, SchemaBuilder};
use tokio_util::sync::CancellationToken;

use crate::aggregates::Aggregates;
use crate::domain::Category;
use crate::submissions::Submissions;

pub use error::ApiError;
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Deep enough for GraphiQL's introspection query, shallow enough to stop abuse.
const MAX_DEPTH: usize = 20;
const MAX_COMPLEXITY: usize = 1_000;

fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
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
}

pub fn build_schema(services: Services) -> AppSchema {
    builder().data(services).finish()
}

/// The schema in SDL, as published in `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}

fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    // The schema is only ever built by `build_schema`, which always provides the services.
    ctx.data_unchecked::<Services>()
}
