use async_graphql::{Context, Object, Result, ID};
use uuid::Uuid;

use super::error::{ApiError, OrGraphqlError};
use super::types::{AggregateSnapshotView, CategoryView, SubmissionView};
use crate::submissions::Credentials;

/// Most submissions `mySubmissions` returns at once.
const MAX_PAGE: i32 = 100;

pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// The active budget categories, in display order.
    async fn categories(&self, ctx: &Context<'_>) -> Vec<CategoryView> {
        super::services(ctx)
            .categories
            .iter()
            .filter(|c| c.active)
            .map(CategoryView::from)
            .collect()
    }

    /// The average allocation of all citizens, from the cheapest tier that has it.
    async fn aggregates(&self, ctx: &Context<'_>) -> Result<AggregateSnapshotView> {
        let services = super::services(ctx);
        let snapshot = services.aggregates.read().await.or_gql()?;
        Ok(AggregateSnapshotView::new(&snapshot, &services.categories))
    }

    /// One submission by id (anyone with the id may look: ids are unguessable).
    async fn submission(&self, ctx: &Context<'_>, id: ID) -> Result<Option<SubmissionView>> {
        let services = super::services(ctx);
        let Ok(id) = Uuid::parse_str(&id) else {
            return Ok(None);
        };
        let found = services.submissions.find(id).await.or_gql()?;
        Ok(found.map(|s| SubmissionView::new(s, &services.categories)))
    }

    /// The caller's own submissions, newest first. Needs `Authorization: Bearer <voterToken>`.
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
        let credentials = ctx.data_opt::<Credentials>().cloned().unwrap_or_default();
        let submissions = services
            .submissions
            .of_caller(&credentials, i64::from(first))
            .await
            .or_gql()?;
        Ok(submissions
            .into_iter()
            .map(|s| SubmissionView::new(s, &services.categories))
            .collect())
    }
}
