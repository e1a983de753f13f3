//! GraphQL output and input types: thin views over the domain, built eagerly.

use async_graphql::{Enum, InputObject, SimpleObject, ID};
use chrono::{DateTime, Utc};

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
    pub version: i32,
    /// Submissions counted in this snapshot.
    pub total_submissions: i32,
    /// When the snapshot was computed.
    pub updated_at: DateTime<Utc>,
    /// Which tier answered this read.
    pub source: AggregateSource,
    /// Every active category, in display order.
    pub categories: Vec<CategoryAggregateView>,
}

fn saturating_i32(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}

impl AggregateSnapshotView {
    pub fn new(snapshot: &Snapshot, categories: &[Category]) -> Self {
        AggregateSnapshotView {
            version: saturating_i32(snapshot.version),
            total_submissions: saturating_i32(snapshot.total_submissions),
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
    /// Any string up to 128 characters, unique per intended submission: sending the same key
    /// again returns the first submission and writes nothing.
    pub idempotency_key: Option<String>,
}

/// What `submitAllocation` returns.
#[derive(SimpleObject)]
pub struct SubmitAllocationPayload {
    pub submission: SubmissionView,
    /// Set only when this call created a new anonymous voter: keep it and send it as
    /// `Authorization: Bearer <voterToken>` to see your history and submit again as yourself.
    pub voter_token: Option<String>,
}
