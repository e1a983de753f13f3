use async_graphql::{Context, Object, Result};

use super::cost;
use super::error::OrGraphqlError;
use super::types::{SubmissionView, SubmitAllocationInput, SubmitAllocationPayload};
use crate::domain::RawAllocation;
use crate::submissions::{ClientAddr, Credentials};

pub struct MutationRoot;

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Submit how you would split your taxes. Without a voter token this creates an anonymous
    /// voter and returns its token once.
    #[graphql(complexity = "cost::write(child_complexity)")]
    async fn submit_allocation(
        &self,
        ctx: &Context<'_>,
        input: SubmitAllocationInput,
    ) -> Result<SubmitAllocationPayload> {
        let services = super::services(ctx);
        let credentials = ctx.data_opt::<Credentials>().cloned().unwrap_or_default();
        let client = ctx.data_opt::<ClientAddr>().copied();
        let raw: Vec<RawAllocation> = input
            .allocations
            .iter()
            .map(|a| RawAllocation {
                category_id: a.category_id.as_str(),
                percentage: a.percentage,
            })
            .collect();
        let submitted = services
            .submissions
            .submit(&credentials, client, &raw, input.idempotency_key)
            .await
            .or_gql()?;
        Ok(SubmitAllocationPayload {
            submission: SubmissionView::new(submitted.submission, &services.categories),
            voter_token: submitted.voter_token.map(|t| t.as_str().to_owned()),
        })
    }
}
