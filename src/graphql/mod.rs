//! The GraphQL schema: one file per root type, shared types and error mapping beside them.

mod error;
mod mutation;
mod query;
mod subscription;
mod types;

use std::sync::Arc;

use async_graphql::{Context, Schema, SchemaBuilder};

use crate::app::App;

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

pub fn build_schema(app: Arc<App>) -> AppSchema {
    builder().data(app).finish()
}

/// The schema in SDL, as published in `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}

fn app<'a>(ctx: &Context<'a>) -> &'a Arc<App> {
    // The schema is only ever built by `build_schema`, which always provides the app.
    ctx.data_unchecked::<Arc<App>>()
}
