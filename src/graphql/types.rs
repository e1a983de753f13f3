//! GraphQL output and input types: thin views over the domain, built eagerly.

use std::sync::Arc;

use async_graphql::{
    ComplexObject, Context, Enum, ErrorExtensions, InputObject, InputValueError, InputValueResult,
    Result, Scalar, ScalarType, SimpleObject, Value, ID,
};
use chrono::{DateTime, Utc};

use super::cost;
use super::error::{ApiError, OrGraphqlError};
use crate::domain::{
    Category, CategoryId, DetailedSnapshot, Distribution, DistributionError, Hundredths,
    Resolution, Snapshot, SnapshotSource, TrendPoint,
};
use crate::store::StoredSubmission;

/// A budget category citizens allocate their taxes to.
#[derive(SimpleObject, Clone)]
#[graphql(name = "Category")]
pub struct CategoryView {
    /// Stable identifier; send it back as `AllocationInput.categoryId`.
    pub id: ID,
    /// Short, URL-safe name.
    pub slug: String,
    /// Name to show people.
    pub name: String,
    /// What the money in this category pays for.
    pub description: String,
    /// Chart colour as `#rrggbb`.
    pub color: String,
    /// Position in lists and charts, ascending.
    pub display_order: i32,
}

impl From<&Category> for CategoryView {
    fn from(c: &Category) -> Self {
        CategoryView {
            id: ID(c.id.to_string()),
            slug: c.slug.clone(),
            name: c.name.clone(),
            description: c.description.clone(),
            color: c.color.clone(),
            display_order: c.display_order,
        }
    }
}

fn category_view(categories: &[Category], id: CategoryId) -> CategoryView {
    categories
        .iter()
        .find(|c| c.id == id)
        .map(CategoryView::from)
        .unwrap_or_else(|| CategoryView {
            id: ID(id.to_string()),
            slug: String::new(),
            name: format!("Category {id}"),
            description: String::new(),
            color: "#777777".into(),
            display_order: i32::MAX,
        })
}

/// One category's share of a submission.
#[derive(SimpleObject)]
#[graphql(name = "Allocation", complex)]
pub struct AllocationView {
    pub category: CategoryView,
    /// Percentage with at most two decimals.
    pub percentage: f64,
    #[graphql(skip)]
    category_id: CategoryId,
    #[graphql(skip)]
    value: Hundredths,
}

#[ComplexObject]
impl AllocationView {
    /// Share of all counted citizens, in percent, who gave this category less than this
    /// allocation does ("more than 82 % of citizens"): PostgreSQL's `percent_rank(percentage)
    /// WITHIN GROUP (ORDER BY percentage)` over every counted submission, rounded to hundredths.
    /// Read from the newest aggregates; null while nobody is counted.
    // Costs what a plain field costs: the distributions it reads are read at most once per
    // version by the whole process (see `Aggregates::read_detailed`), not once per field.
    async fn percentile_rank(&self, ctx: &Context<'_>) -> Result<Option<f64>> {
        let detailed = newest_details(ctx).await?;
        Ok(detailed
            .distribution(self.category_id)
            .percent_rank(self.value)
            .map(Hundredths::as_percent))
    }
}

/// The newest snapshot with its distributions: at least as new as any this process has
/// served, read through the read permits when it is not already at hand.
async fn newest_details(ctx: &Context<'_>) -> Result<Arc<DetailedSnapshot>> {
    let services = super::services(ctx);
    let aggregates = &services.aggregates;
    let _permit = services.reads.acquire().await.or_gql()?;
    let wanted = aggregates.feed().current();
    aggregates.read_detailed(&wanted).await.or_gql()
}

/// One citizen's split of their taxes.
#[derive(SimpleObject)]
#[graphql(name = "Submission", complex)]
pub struct SubmissionView {
    /// Unguessable identifier; a result page can be shared by it.
    pub id: ID,
    pub created_at: DateTime<Utc>,
    /// Its shares by category, made views of only when selected: `submitAllocation` is
    /// usually asked for the id alone (the web app's is), and ten category views (five
    /// strings each) were the largest part of its resolver.
    #[graphql(skip)]
    shares: Vec<(CategoryId, Hundredths)>,
    #[graphql(skip)]
    categories: Arc<Vec<Category>>,
}

impl SubmissionView {
    pub fn new(submission: StoredSubmission, categories: &Arc<Vec<Category>>) -> Self {
        SubmissionView {
            id: ID(submission.id.to_string()),
            created_at: submission.created_at,
            shares: submission.allocations,
            categories: Arc::clone(categories),
        }
    }
}

#[ComplexObject]
impl SubmissionView {
    /// One entry per category, in display order; they add up to 100.
    #[graphql(complexity = "cost::list(cost::CATEGORIES, child_complexity)")]
    async fn allocations(&self) -> Vec<AllocationView> {
        let mut allocations: Vec<AllocationView> = self
            .shares
            .iter()
            .map(|&(id, value)| AllocationView {
                category: category_view(&self.categories, id),
                percentage: value.as_percent(),
                category_id: id,
                value,
            })
            .collect();
        allocations.sort_by_key(|a| a.category.display_order);
        allocations
    }
}

/// Which tier answered an aggregates read.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum AggregateSource {
    /// The shared cache (Redis, or the in-process cache on the embedded default).
    Cache,
    /// The summary table the workers keep.
    Summary,
    /// SQL over every allocation: the last resort.
    Live,
}

impl From<SnapshotSource> for AggregateSource {
    fn from(s: SnapshotSource) -> Self {
        match s {
            SnapshotSource::Cache => AggregateSource::Cache,
            SnapshotSource::Summary => AggregateSource::Summary,
            SnapshotSource::Live => AggregateSource::Live,
        }
    }
}

/// The average of one category over all submissions.
#[derive(SimpleObject)]
#[graphql(name = "CategoryAggregate", complex)]
pub struct CategoryAggregateView {
    pub category: CategoryView,
    /// Rounded to hundredths so that the averages of a snapshot add up to exactly 100
    /// (largest-remainder rounding); 0 for every category while nobody has submitted.
    pub average_percentage: f64,
    /// The exact sum of this category's percentages over every counted submission, in
    /// hundredths of a percent: `sumHundredths / totalSubmissions / 100` is the unrounded
    /// average.
    pub sum_hundredths: Int64,
    /// Read with the snapshot when the query selects any field that needs it (see
    /// [`DETAIL_FIELDS`]).
    #[graphql(skip)]
    distribution: Option<Arc<Distribution>>,
}

/// The fields of `CategoryAggregate` that need the distribution: a read that selects one of
/// them reads the snapshot with every distribution, all of one version.
pub const DETAIL_FIELDS: [&str; 7] = [
    "sumSquares",
    "median",
    "quartiles",
    "quantile",
    "standardDeviation",
    "zeroShare",
    "histogram",
];

/// The lower and upper quartile of one category's percentages.
#[derive(SimpleObject)]
#[graphql(name = "Quartiles")]
pub struct QuartilesView {
    pub q1: f64,
    pub q3: f64,
}

/// How many citizens gave a percentage in one range.
#[derive(SimpleObject)]
#[graphql(name = "HistogramBucket")]
pub struct HistogramBucketView {
    /// The lowest percentage of the range.
    pub from: f64,
    /// The range holds percentages below this one; the last range also holds 100.
    pub to: f64,
    pub count: Int64,
}

impl CategoryAggregateView {
    fn distribution(&self) -> Result<&Distribution> {
        self.distribution.as_deref().ok_or_else(|| {
            tracing::error!("a distribution field resolved without the distribution read");
            ApiError::Internal.extend()
        })
    }

    fn quantile_of(&self, p: f64) -> Result<Option<f64>> {
        Ok(self
            .distribution()?
            .quantile(p)
            .map_err(|e| ApiError::bad_input("p", e.to_string()))
            .or_gql()?
            .map(Hundredths::as_percent))
    }
}

#[ComplexObject]
impl CategoryAggregateView {
    /// The exact sum of the squares of those hundredths, for clients that compute the variance
    /// themselves.
    async fn sum_squares(&self) -> Result<Int64> {
        Ok(Int64(self.distribution()?.sum_squares()))
    }

    /// The median percentage, as PostgreSQL's `percentile_disc(0.5)`: the lowest value that at
    /// least half of the citizens gave or less. Null while nobody has submitted.
    async fn median(&self) -> Result<Option<f64>> {
        self.quantile_of(0.5)
    }

    /// The lower and upper quartile (`percentile_disc(0.25)` and `percentile_disc(0.75)`). Null
    /// while nobody has submitted.
    async fn quartiles(&self) -> Result<Option<QuartilesView>> {
        Ok(match (self.quantile_of(0.25)?, self.quantile_of(0.75)?) {
            (Some(q1), Some(q3)) => Some(QuartilesView { q1, q3 }),
            _ => None,
        })
    }

    /// The lowest percentage that at least a share `p` of the citizens gave or less, as
    /// PostgreSQL's `percentile_disc(p)`. Null while nobody has submitted.
    async fn quantile(&self, #[graphql(desc = "Between 0 and 1.")] p: f64) -> Result<Option<f64>> {
        self.quantile_of(p)
    }

    /// The population standard deviation of the percentages, in percentage points, rounded to
    /// hundredths (PostgreSQL's `stddev_pop`). Null while nobody has submitted.
    async fn standard_deviation(&self) -> Result<Option<f64>> {
        Ok(self
            .distribution()?
            .standard_deviation()
            .map(Hundredths::as_percent))
    }

    /// Percentage of citizens who gave this category nothing, rounded to hundredths. Null while
    /// nobody has submitted.
    async fn zero_share(&self) -> Result<Option<f64>> {
        Ok(self
            .distribution()?
            .zero_share()
            .map(Hundredths::as_percent))
    }

    /// How many citizens gave a percentage in each of `buckets` equal ranges from 0 to 100; the
    /// counts add up to `totalSubmissions`.
    #[graphql(complexity = "cost::list(cost::histogram_len(buckets), child_complexity)")]
    async fn histogram(
        &self,
        #[graphql(default = 20, desc = "How many ranges, 1 to 100.")] buckets: i32,
    ) -> Result<Vec<HistogramBucketView>> {
        let buckets = u32::try_from(buckets).unwrap_or(0);
        let histogram = self
            .distribution()?
            .histogram(buckets)
            .map_err(|e: DistributionError| ApiError::bad_input("buckets", e.to_string()))
            .or_gql()?;
        Ok(histogram
            .into_iter()
            .map(|b| HistogramBucketView {
                from: b.from.as_percent(),
                to: b.to.as_percent(),
                count: Int64(b.submissions),
            })
            .collect())
    }
}

/// The average allocation of all citizens at one version.
#[derive(SimpleObject)]
#[graphql(name = "AggregateSnapshot")]
pub struct AggregateSnapshotView {
    /// Grows with every change; a client never needs to accept a lower one.
    pub version: Int64,
    /// Submissions counted in this snapshot.
    pub total_submissions: Int64,
    /// When the snapshot was computed.
    pub updated_at: DateTime<Utc>,
    /// Which tier answered this read.
    pub source: AggregateSource,
    /// Every active category, in display order.
    #[graphql(complexity = "cost::list(cost::CATEGORIES, child_complexity)")]
    pub categories: Vec<CategoryAggregateView>,
}

/// Counters that outgrow GraphQL's 32-bit `Int`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int64(pub i64);

/// A 64-bit signed integer, sent as a JSON number. JavaScript reads it exactly up to 2^53.
#[Scalar(name = "Int64")]
impl ScalarType for Int64 {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(n) => n.as_i64().map(Int64).ok_or_else(|| {
                InputValueError::custom("expected a whole number between -2^63 and 2^63-1")
            }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}

impl AggregateSnapshotView {
    pub fn new(snapshot: &Snapshot, categories: &[Category]) -> Self {
        Self::build(snapshot, None, categories)
    }

    /// The view of a snapshot read with its distributions.
    pub fn detailed(detailed: &DetailedSnapshot, categories: &[Category]) -> Self {
        Self::build(&detailed.snapshot, Some(detailed), categories)
    }

    fn build(
        snapshot: &Snapshot,
        detailed: Option<&DetailedSnapshot>,
        categories: &[Category],
    ) -> Self {
        AggregateSnapshotView {
            version: Int64(snapshot.version),
            total_submissions: Int64(snapshot.total_submissions),
            updated_at: snapshot.updated_at,
            source: snapshot.source.into(),
            categories: snapshot
                .averages(categories)
                .into_iter()
                .map(
                    |(id, average): (CategoryId, Hundredths)| CategoryAggregateView {
                        category: category_view(categories, id),
                        average_percentage: average.as_percent(),
                        sum_hundredths: Int64(snapshot.sum_of(id)),
                        distribution: detailed.map(|d| d.distribution(id)),
                    },
                )
                .collect(),
        }
    }
}

/// How long a trend bucket is (UTC).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "TrendBucket")]
pub enum TrendBucket {
    Minute,
    Hour,
    Day,
}

impl From<TrendBucket> for Resolution {
    fn from(bucket: TrendBucket) -> Self {
        match bucket {
            TrendBucket::Minute => Resolution::Minute,
            TrendBucket::Hour => Resolution::Hour,
            TrendBucket::Day => Resolution::Day,
        }
    }
}

/// One category's running average at the end of a trend bucket.
#[derive(SimpleObject)]
#[graphql(name = "TrendCategory")]
pub struct TrendCategoryView {
    pub category: CategoryView,
    /// Over every submission up to the bucket's end, rounded as `averagePercentage` is.
    pub average_percentage: f64,
}

/// The national average at the end of one time bucket.
#[derive(SimpleObject)]
#[graphql(name = "TrendPoint")]
pub struct TrendPointView {
    /// Start of the bucket.
    pub start: DateTime<Utc>,
    /// End of the bucket (the next one's start).
    pub end: DateTime<Utc>,
    /// Submissions made in this bucket.
    pub submissions: Int64,
    /// Submissions made up to the bucket's end.
    pub total_submissions: Int64,
    /// Every active category, in display order.
    #[graphql(complexity = "cost::list(cost::CATEGORIES, child_complexity)")]
    pub categories: Vec<TrendCategoryView>,
}

/// The national average over time: one point per bucket that received submissions.
#[derive(SimpleObject)]
#[graphql(name = "AggregatesTrend")]
pub struct AggregatesTrendView {
    /// The summary version the trend was read at, as `AggregateSnapshot.version`.
    pub version: Int64,
    pub bucket: TrendBucket,
    /// Start of the first bucket asked for.
    pub from: DateTime<Utc>,
    /// End of the last bucket asked for.
    pub to: DateTime<Utc>,
    /// Buckets with submissions, oldest first; at most 1500 buckets are asked for at once.
    pub points: Vec<TrendPointView>,
}

impl AggregatesTrendView {
    pub fn new(
        version: i64,
        bucket: TrendBucket,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        points: Vec<TrendPoint>,
        categories: &[Category],
    ) -> Self {
        AggregatesTrendView {
            version: Int64(version),
            bucket,
            from,
            to,
            points: points
                .into_iter()
                .map(|p| TrendPointView {
                    start: p.start,
                    end: p.end,
                    submissions: Int64(p.submissions),
                    total_submissions: Int64(p.total_submissions),
                    categories: p
                        .averages
                        .into_iter()
                        .map(|(id, average)| TrendCategoryView {
                            category: category_view(categories, id),
                            average_percentage: average.as_percent(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// One category's percentage in a submission.
#[derive(InputObject)]
pub struct AllocationInput {
    /// A `Category.id`.
    pub category_id: ID,
    /// Between 0 and 100, at most two decimals.
    pub percentage: f64,
}

/// A citizen's split: one entry per active category, adding up to exactly 100.
#[derive(InputObject)]
pub struct SubmitAllocationInput {
    pub allocations: Vec<AllocationInput>,
    /// Any string up to 128 characters, new for each intended submission; a random one (a
    /// UUID), since it also guards the `voterToken` a replay returns. Sending the key again
    /// with the same allocations returns the first response (its `voterToken` too) and writes
    /// nothing; with other allocations it is refused with `IDEMPOTENCY_KEY_REUSED`. Keys sent
    /// with a voter token are that voter's own; without one, a key belongs to the voter its
    /// first call created.
    pub idempotency_key: Option<String>,
}

/// What `submitAllocation` returns.
#[derive(SimpleObject)]
pub struct SubmitAllocationPayload {
    pub submission: SubmissionView,
    /// Set when this call created a new anonymous voter, or replays the call that did: keep it
    /// and send it as `Authorization: Bearer <voterToken>` to see your history and submit again
    /// as yourself.
    pub voter_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_beyond_32_bits_go_out_whole() {
        let big = i64::from(i32::MAX) * 3;
        assert_eq!(Int64(big).to_value(), Value::Number(big.into()));
        let parsed = Int64::parse(Value::Number(big.into())).expect("parses");
        assert_eq!(parsed, Int64(big));
        assert!(Int64::parse(Value::String("1".into())).is_err());
    }
}
