use async_graphql::{Context, ErrorExtensions, Object, Result, ID};
use uuid::Uuid;

use super::cost::{self, MAX_PAGE};
use super::error::{ApiError, OrGraphqlError};
use super::loaders::Loaders;
use super::types::{AggregateSnapshotView, CategoryView, SubmissionView};

pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// The active budget categories, in display order.
    #[graphql(complexity = "cost::list(cost::CATEGORIES, child_complexity)")]
    async fn categories(&self, ctx: &Context<'_>) -> Vec<CategoryView> {
        super::services(ctx)
            .categories
            .iter()
            .filter(|c| c.active)
            .map(CategoryView::from)
            .collect()
    }

    /// The average allocation of all citizens, from the cheapest tier that has it.
    #[graphql(complexity = "cost::read(child_complexity)")]
    async fn aggregates(&self, ctx: &Context<'_>) -> Result<AggregateSnapshotView> {
        let services = super::services(ctx);
        // Usually a cache hit, but the database answers when the cache cannot.
        let permit = services.reads.acquire().await.or_gql()?;
        let snapshot = services.aggregates.read().await.or_gql()?;
        drop(permit);
        services.metrics.aggregate_read(snapshot.source.name());
        if let Some(reads) = ctx.data_opt::<super::SnapshotReads>() {
            reads.record(&snapshot);
        }
        Ok(AggregateSnapshotView::new(&snapshot, &services.categories))
    }

    /// One submission by id (anyone with the id may look: ids are unguessable).
    #[graphql(complexity = "cost::read(child_complexity)")]
    async fn submission(&self, ctx: &Context<'_>, id: ID) -> Result<Option<SubmissionView>> {
        let services = super::services(ctx);
        let Ok(id) = Uuid::parse_str(&id) else {
            return Ok(None);
        };
        let found = loaders(ctx)?.by_id.load_one(id).await.or_gql()?;
        Ok(found.map(|s| SubmissionView::new(s, &services.categories)))
    }

    /// The caller's own submissions, newest first. Needs `Authorization: Bearer <voterToken>`.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn my_submissions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "How many, 1 to 100.")] first: i32,
    ) -> Result<Vec<SubmissionView>> {
        let services = super::services(ctx);
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(ApiError::bad_input(
                "first",
                format!("first must be between 1 and {MAX_PAGE}"),
            ))
            .or_gql();
        }
        // Every alias of this field in the request shares one read (see `loaders`).
        let submissions = loaders(ctx)?
            .pages
            .load_one(first)
            .await
            .or_gql()?
            .unwrap_or_default();
        Ok(submissions
            .into_iter()
            .map(|s| SubmissionView::new(s, &services.categories))
            .collect())
    }
}

/// The request's loaders, which `build_schema` always provides.
fn loaders<'a>(ctx: &Context<'a>) -> Result<&'a Loaders> {
    ctx.data_opt::<Loaders>().ok_or_else(|| {
        tracing::error!("a request without loaders: the schema was not built by build_schema");
        ApiError::Internal.extend()
    })
}
