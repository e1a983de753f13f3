use async_graphql::{Context, ErrorExtensions, Object, Result, ID};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::cost::{self, MAX_PAGE};
use super::error::{ApiError, OrGraphqlError};
use super::loaders::Loaders;
use super::types::{
    AggregateSnapshotView, AggregatesTrendView, CategoryView, SubmissionView, TrendBucket,
    DETAIL_FIELDS,
};
use crate::domain::{Resolution, TrendError, TrendRange};

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
        let detailed = if selects_details(ctx) {
            Some(
                services
                    .aggregates
                    .read_detailed(&snapshot)
                    .await
                    .or_gql()?,
            )
        } else {
            None
        };
        drop(permit);
        // A detailed read answers with the snapshot its distributions belong to.
        let snapshot = detailed.as_ref().map_or(&snapshot, |d| &d.snapshot);
        services.metrics.aggregate_read(snapshot.source.name());
        if let Some(reads) = ctx.data_opt::<super::SnapshotReads>() {
            reads.record(snapshot);
        }
        Ok(match &detailed {
            Some(detailed) => AggregateSnapshotView::detailed(detailed, &services.categories),
            None => AggregateSnapshotView::new(snapshot, &services.categories),
        })
    }

    /// The national average over time, per bucket, from the summary's time buckets.
    #[graphql(
        complexity = "cost::read(cost::list(cost::trend_len(buckets_between(bucket, from, to)), child_complexity))"
    )]
    async fn aggregates_trend(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default_with = "TrendBucket::Hour",
            desc = "How long each point's bucket is."
        )]
        bucket: TrendBucket,
        #[graphql(
            desc = "The first bucket holds this time; by default the first bucket with submissions."
        )]
        from: Option<DateTime<Utc>>,
        #[graphql(desc = "The last bucket holds this time; by default now.")] to: Option<
            DateTime<Utc>,
        >,
    ) -> Result<AggregatesTrendView> {
        let services = super::services(ctx);
        let resolution = Resolution::from(bucket);
        let to = to.unwrap_or_else(Utc::now);
        let permit = services.reads.acquire().await.or_gql()?;
        let first = match from {
            Some(_) => None,
            None => services
                .aggregates
                .store()
                .trend_first(resolution)
                .await
                .or_gql()?,
        };
        let range = TrendRange::new(resolution, from, to, first)
            .map_err(|e: TrendError| ApiError::bad_input("from", e.to_string()))
            .or_gql()?;
        let rows = services.aggregates.store().trend(range).await.or_gql()?;
        drop(permit);
        let points = rows.points(&services.categories);
        Ok(AggregatesTrendView::new(
            rows.version,
            bucket,
            range.from,
            range.until,
            points,
            &services.categories,
        ))
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

/// Whether the `aggregates` field being resolved selects a field that needs the distributions.
pub(super) fn selects_details(ctx: &Context<'_>) -> bool {
    let categories = ctx.look_ahead().field("categories");
    DETAIL_FIELDS
        .iter()
        .any(|field| categories.field(field).exists())
}

/// Buckets between `from` and `to` (now when absent), for the cost of a trend; `None` without
/// `from`.
fn buckets_between(
    bucket: TrendBucket,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Option<i64> {
    let resolution = Resolution::from(bucket);
    let step = resolution.step().num_seconds().max(1);
    let to = to.unwrap_or_else(Utc::now);
    from.map(|from| (to - from).num_seconds().abs() / step + 1)
}

/// The request's loaders, which `build_schema` always provides.
fn loaders<'a>(ctx: &Context<'a>) -> Result<&'a Loaders> {
    ctx.data_opt::<Loaders>().ok_or_else(|| {
        tracing::error!("a request without loaders: the schema was not built by build_schema");
        ApiError::Internal.extend()
    })
}
