//! GraphQL output and input types: thin views over the domain, built eagerly.

use async_graphql::{
    Enum, InputObject, InputValueError, InputValueResult, Scalar, ScalarType, SimpleObject, Value,
    ID,
};
use chrono::{DateTime, Utc};

use super::cost;
use crate::domain::{Category, CategoryId, Hundredths, Snapshot, SnapshotSource};
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
#[graphql(name = "Allocation")]
pub struct AllocationView {
    pub category: CategoryView,
    /// Percentage with at most two decimals.
    pub percentage: f64,
}

/// One citizen's split of their taxes.
#[derive(SimpleObject)]
#[graphql(name = "Submission")]
pub struct SubmissionView {
    /// Unguessable identifier; a result page can be shared by it.
    pub id: ID,
    pub created_at: DateTime<Utc>,
    /// One entry per category, in display order; they add up to 100.
    #[graphql(complexity = "cost::list(cost::CATEGORIES, child_complexity)")]
    pub allocations: Vec<AllocationView>,
}

impl SubmissionView {
    pub fn new(submission: StoredSubmission, categories: &[Category]) -> Self {
        let mut allocations: Vec<AllocationView> = submission
            .allocations
            .iter()
            .map(|&(id, value)| AllocationView {
                category: category_view(categories, id),
                percentage: value.as_percent(),
            })
            .collect();
        allocations.sort_by_key(|a| a.category.display_order);
        SubmissionView {
            id: ID(submission.id.to_string()),
            created_at: submission.created_at,
            allocations,
        }
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
#[graphql(name = "CategoryAggregate")]
pub struct CategoryAggregateView {
    pub category: CategoryView,
    /// Rounded to hundredths so that the averages of a snapshot add up to exactly 100
    /// (largest-remainder rounding); 0 for every category while nobody has submitted.
    pub average_percentage: f64,
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
                    },
                )
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
