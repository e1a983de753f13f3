use async_graphql::{Context, Object, Result, ID};
use uuid::Uuid;

use super::error::{ApiError, OrGraphqlError};
use super::types::{AggregateSnapshotView, CategoryView, SubmissionView};
use crate::submissions::{voter_of, AuthError, Credentials};

/// Most submissions `mySubmissions` returns at once.
const MAX_PAGE: i32 = 100;

pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// The active budget categories, in display order.
    async fn categories(&self, ctx: &Context<'_>) -> Vec<CategoryView> {
        super::app(ctx)
            .categories
            .iter()
            .filter(|c| c.active)
            .map(CategoryView::from)
            .collect()
    }

    /// The average allocation of all citizens, from the cheapest tier that has it.
    async fn aggregates(&self, ctx: &Context<'_>) -> Result<AggregateSnapshotView> {
        let app = super::app(ctx);
        let snapshot = app.aggregates.read().await.or_gql()?;
        Ok(AggregateSnapshotView::new(&snapshot, &app.categories))
    }

    /// One submission by id (anyone with the id may look: ids are unguessable).
    async fn submission(&self, ctx: &Context<'_>, id: ID) -> Result<Option<SubmissionView>> {
        let app = super::app(ctx);
        let Ok(id) = Uuid::parse_str(&id) else {
            return Ok(None);
        };
        let found = app.store.submission(id).await.or_gql()?;
        Ok(found.map(|s| SubmissionView::new(s, &app.categories)))
    }

    /// The caller's own submissions, newest first. Needs `Authorization: Bearer <voterToken>`.
    async fn my_submissions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "How many, 1 to 100.")] first: i32,
    ) -> Result<Vec<SubmissionView>> {
        let app = super::app(ctx);
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(ApiError::bad_input(
                "first",
                format!("first must be between 1 and {MAX_PAGE}"),
            ))
            .or_gql();
        }
        let credentials = ctx.data_opt::<Credentials>().cloned().unwrap_or_default();
        let voter = voter_of(app, &credentials)
            .await
            .or_gql()?
            .ok_or(AuthError::Missing)
            .or_gql()?;
        let submissions = app
            .store
            .submissions_of_voter(voter, i64::from(first))
            .await
            .or_gql()?;
        Ok(submissions
            .into_iter()
            .map(|s| SubmissionView::new(s, &app.categories))
            .collect())
    }
}
