//! What both backends ask of the database, written once against the shared schema: the rows
//! they read, the statements they run and how rows become domain values. A backend only runs
//! these (PostgreSQL asynchronously, SQLite in a blocking task) and adds what is its own:
//! locking, transactions, and PostgreSQL's one-statement submission.

use chrono::{DateTime, Utc};
use diesel::dsl::{auto_type, count_star, sum, AsSelect};
use diesel::helper_types;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::sqlite::Sqlite;
use uuid::Uuid;

use super::schema::{
    aggregate_distribution, aggregate_outbox, aggregate_summary, aggregate_totals, aggregate_trend,
    aggregate_trend_totals, allocations, categories, submissions, voters,
};
use super::sql_types::Bind;
use super::{
    DerivedAudit, NewSubmission, Replay, SeedBatch, StoreError, StoredSubmission, SubmitOutcome,
    SummaryAudit, SummaryState, VoterRef,
};
use crate::domain::{
    BucketSums, Category, CategoryId, CategoryTotal, DetailedSnapshot, FoldDelta, FoldedRow,
    Hundredths, Resolution, Snapshot, SnapshotSource, TrendRange, TrendRows, ValueCount,
};

/// The summary table holds one row, with this id (the migrations enforce it).
const SUMMARY_ID: i16 = 1;

/// A statement that runs unchanged on both backends, through either connection's `execute`.
pub(super) trait Statement:
    QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId + Send
{
}

impl<T> Statement for T where T: QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId + Send {}

#[derive(Queryable, Selectable)]
#[diesel(table_name = categories, check_for_backend(Pg, Sqlite))]
pub(super) struct CategoryRow {
    id: i32,
    slug: String,
    name: String,
    description: String,
    color: String,
    display_order: i32,
    active: bool,
}

impl From<CategoryRow> for Category {
    fn from(row: CategoryRow) -> Self {
        Category {
            id: CategoryId(row.id),
            slug: row.slug,
            name: row.name,
            description: row.description,
            color: row.color,
            display_order: row.display_order,
            active: row.active,
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = submissions, check_for_backend(Pg, Sqlite))]
pub(super) struct SubmissionRow {
    id: Uuid,
    voter_id: Uuid,
    created_at: DateTime<Utc>,
}

impl SubmissionRow {
    pub(super) fn id(&self) -> Uuid {
        self.id
    }
}

/// A submission found by its idempotency key, with what its key is bound to.
#[derive(Queryable, Selectable)]
#[diesel(table_name = submissions, check_for_backend(Pg, Sqlite))]
pub(super) struct KeyedRow {
    #[diesel(embed)]
    head: SubmissionRow,
    payload_hash: Option<String>,
    voter_token_sealed: Option<String>,
}

impl KeyedRow {
    /// The submission's head, for [`attach_allocations`], and the rest for [`replayed`].
    pub(super) fn split(self) -> (SubmissionRow, KeyBinding) {
        let binding = KeyBinding {
            payload_hash: self.payload_hash,
            sealed_token: self.voter_token_sealed,
        };
        (self.head, binding)
    }
}

/// What a stored key is bound to, beside its submission.
pub(super) struct KeyBinding {
    payload_hash: Option<String>,
    sealed_token: Option<String>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = allocations, check_for_backend(Pg, Sqlite))]
pub(super) struct AllocationRow {
    submission_id: Uuid,
    category_id: i32,
    hundredths: i32,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = aggregate_summary, check_for_backend(Pg, Sqlite))]
pub(super) struct SummaryRow {
    version: i64,
    total_submissions: i64,
    updated_at: DateTime<Utc>,
    stale: bool,
    generation: String,
}

impl SummaryRow {
    /// Marked by a rebuild in progress: readers must not trust the totals.
    pub(super) fn is_stale(&self) -> bool {
        self.stale
    }
}

/// One category's sum, from the summary or computed live.
#[derive(Queryable, Selectable)]
#[diesel(table_name = aggregate_totals, check_for_backend(Pg, Sqlite))]
pub(super) struct TotalRow {
    category_id: i32,
    sum_hundredths: i64,
}

impl From<TotalRow> for CategoryTotal {
    fn from(row: TotalRow) -> Self {
        CategoryTotal {
            category_id: CategoryId(row.category_id),
            sum_hundredths: row.sum_hundredths,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = voters)]
pub(super) struct VoterInsert {
    #[diesel(serialize_as = Bind<Uuid>)]
    id: Uuid,
    token_hash: String,
    #[diesel(serialize_as = Bind<DateTime<Utc>>)]
    created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = submissions)]
pub(super) struct SubmissionInsert {
    #[diesel(serialize_as = Bind<Uuid>)]
    id: Uuid,
    #[diesel(serialize_as = Bind<Uuid>)]
    voter_id: Uuid,
    #[diesel(serialize_as = Bind<DateTime<Utc>>)]
    created_at: DateTime<Utc>,
    idempotency_key_hash: Option<String>,
    payload_hash: Option<String>,
    created_voter: bool,
    voter_token_sealed: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = allocations)]
pub(super) struct AllocationInsert {
    #[diesel(serialize_as = Bind<Uuid>)]
    submission_id: Uuid,
    category_id: i32,
    hundredths: i32,
}

#[derive(Insertable)]
#[diesel(table_name = aggregate_summary)]
struct SummaryInsert {
    id: i16,
    version: i64,
    total_submissions: i64,
    #[diesel(serialize_as = Bind<DateTime<Utc>>)]
    updated_at: DateTime<Utc>,
    stale: bool,
    generation: String,
}

/// A fresh summary generation: random, so no two summaries (of two databases, or before and
/// after a rebuild) share one.
fn new_generation() -> String {
    Uuid::new_v4().simple().to_string()
}

// Reads.

pub(super) fn ping() -> impl Statement {
    diesel::select(1_i32.into_sql::<diesel::sql_types::Integer>())
}

#[auto_type]
pub(super) fn all_categories<DB: diesel::backend::Backend>() -> _ {
    let row: AsSelect<CategoryRow, DB> = CategoryRow::as_select();
    categories::table
        .order((categories::display_order, categories::id))
        .select(row)
}

#[auto_type]
pub(super) fn voter_by_token_hash(token_hash: String) -> _ {
    voters::table
        .filter(voters::token_hash.eq(token_hash))
        .select(voters::id)
}

#[auto_type]
pub(super) fn submission_by_id<DB: diesel::backend::Backend>(id: Uuid) -> _ {
    let row: AsSelect<SubmissionRow, DB> = SubmissionRow::as_select();
    submissions::table
        .filter(submissions::id.eq(Bind(id)))
        .select(row)
}

/// The submission holding an idempotency key in a voter's scope (the index
/// `submissions_key_per_voter`).
#[auto_type]
pub(super) fn keyed_submission_of_voter<DB: diesel::backend::Backend>(
    voter: Uuid,
    key_hash: String,
) -> _ {
    let row: AsSelect<KeyedRow, DB> = KeyedRow::as_select();
    submissions::table
        .filter(submissions::voter_id.eq(Bind(voter)))
        .filter(submissions::idempotency_key_hash.eq(key_hash))
        .select(row)
}

/// The submission holding an idempotency key in the anonymous callers' scope, where a key
/// belongs to the voter its submission created (the index `submissions_key_of_new_voter`).
#[auto_type]
pub(super) fn keyed_submission_of_new_voter<DB: diesel::backend::Backend>(key_hash: String) -> _ {
    let row: AsSelect<KeyedRow, DB> = KeyedRow::as_select();
    submissions::table
        .filter(submissions::created_voter)
        .filter(submissions::idempotency_key_hash.eq(key_hash))
        .select(row)
}

/// Newest first; the index `submissions_by_voter` serves exactly this order.
#[auto_type]
pub(super) fn submissions_of_voter<DB: diesel::backend::Backend>(voter: Uuid, limit: i64) -> _ {
    let row: AsSelect<SubmissionRow, DB> = SubmissionRow::as_select();
    submissions::table
        .filter(submissions::voter_id.eq(Bind(voter)))
        .order((submissions::created_at.desc(), submissions::id.desc()))
        .limit(limit)
        .select(row)
}

/// The allocations of a page of submissions in one query, for [`attach_allocations`].
#[auto_type]
pub(super) fn allocations_of<DB: diesel::backend::Backend>(submission_ids: Vec<Bind<Uuid>>) -> _ {
    let row: AsSelect<AllocationRow, DB> = AllocationRow::as_select();
    allocations::table
        .filter(allocations::submission_id.eq_any(submission_ids))
        .order(allocations::category_id)
        .select(row)
}

#[auto_type]
pub(super) fn summary<DB: diesel::backend::Backend>() -> _ {
    let row: AsSelect<SummaryRow, DB> = SummaryRow::as_select();
    let id: i16 = SUMMARY_ID;
    aggregate_summary::table.find(id).select(row)
}

#[auto_type]
pub(super) fn summary_version() -> _ {
    let id: i16 = SUMMARY_ID;
    aggregate_summary::table
        .find(id)
        .select(aggregate_summary::version)
}

/// The summary's generation and version, for a live read to carry.
#[auto_type]
pub(super) fn summary_identity() -> _ {
    let id: i16 = SUMMARY_ID;
    aggregate_summary::table
        .find(id)
        .select((aggregate_summary::generation, aggregate_summary::version))
}

#[auto_type]
pub(super) fn summary_totals<DB: diesel::backend::Backend>() -> _ {
    let row: AsSelect<TotalRow, DB> = TotalRow::as_select();
    aggregate_totals::table
        .order(aggregate_totals::category_id)
        .select(row)
}

#[auto_type]
pub(super) fn summary_squares() -> _ {
    aggregate_totals::table
        .order(aggregate_totals::category_id)
        .select((aggregate_totals::category_id, aggregate_totals::sum_squares))
}

#[auto_type]
pub(super) fn summary_distribution() -> _ {
    aggregate_distribution::table.select((
        aggregate_distribution::category_id,
        aggregate_distribution::hundredths,
        aggregate_distribution::submissions,
    ))
}

/// Sums of squares over every stored allocation, ignoring the summary.
#[auto_type]
pub(super) fn live_squares() -> _ {
    allocations::table
        .group_by(allocations::category_id)
        .select((allocations::category_id, squares_sum()))
}

/// Counts per non-zero value over every stored allocation, ignoring the summary.
#[auto_type]
pub(super) fn live_distribution() -> _ {
    allocations::table
        .filter(allocations::hundredths.gt(0_i32))
        .group_by((allocations::category_id, allocations::hundredths))
        .select(value_counts())
}

/// The start of the first bucket with submissions at `resolution`.
#[auto_type]
pub(super) fn trend_first(resolution: &'static str) -> _ {
    let first: helper_types::min<aggregate_trend::bucket_start> =
        diesel::dsl::min(aggregate_trend::bucket_start);
    aggregate_trend::table
        .filter(aggregate_trend::resolution.eq(resolution))
        .select(first)
}

/// Submissions per bucket at `resolution` from `from` up to (without) `until`.
#[auto_type]
pub(super) fn trend_counts(
    resolution: &'static str,
    from: Bind<DateTime<Utc>>,
    until: Bind<DateTime<Utc>>,
) -> _ {
    aggregate_trend::table
        .filter(aggregate_trend::resolution.eq(resolution))
        .filter(aggregate_trend::bucket_start.ge(from))
        .filter(aggregate_trend::bucket_start.lt(until))
        .order(aggregate_trend::bucket_start)
        .select((aggregate_trend::bucket_start, aggregate_trend::submissions))
}

/// Sums per bucket and category at `resolution` from `from` up to (without) `until`.
#[auto_type]
pub(super) fn trend_sums(
    resolution: &'static str,
    from: Bind<DateTime<Utc>>,
    until: Bind<DateTime<Utc>>,
) -> _ {
    aggregate_trend_totals::table
        .filter(aggregate_trend_totals::resolution.eq(resolution))
        .filter(aggregate_trend_totals::bucket_start.ge(from))
        .filter(aggregate_trend_totals::bucket_start.lt(until))
        .select((
            aggregate_trend_totals::bucket_start,
            aggregate_trend_totals::category_id,
            aggregate_trend_totals::sum_hundredths,
        ))
}

/// Where the reads of [`TrendRows`] start: no submission is older than the Unix epoch.
pub(super) fn trend_epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// Puts a trend's rows together: `before` holds the counts and sums of the buckets before the
/// range (any resolutions, each bucket once), `counts` and `sums` those of the range.
pub(super) fn trend_rows(
    range: TrendRange,
    version: i64,
    before: (Vec<i64>, Vec<(i32, i64)>),
    counts: Vec<(DateTime<Utc>, i64)>,
    sums: Vec<(DateTime<Utc>, i32, i64)>,
) -> TrendRows {
    let mut prefix = BucketSums {
        submissions: before.0.iter().sum(),
        ..BucketSums::default()
    };
    for (category, sum) in before.1 {
        prefix.add(CategoryId(category), sum);
    }
    let mut buckets: Vec<(DateTime<Utc>, BucketSums)> = counts
        .into_iter()
        .map(|(start, submissions)| {
            (
                start,
                BucketSums {
                    submissions,
                    ..BucketSums::default()
                },
            )
        })
        .collect();
    for (start, category, sum) in sums {
        if let Ok(i) = buckets.binary_search_by_key(&start, |(s, _)| *s) {
            buckets[i].1.add(CategoryId(category), sum);
        }
    }
    TrendRows {
        range,
        version,
        source: SnapshotSource::Summary,
        before: prefix,
        buckets,
    }
}

/// A snapshot with the squares and value counts read with it.
pub(super) fn detailed(
    snapshot: Snapshot,
    squares: Vec<(i32, i64)>,
    counts: Vec<(i32, i32, i64)>,
) -> DetailedSnapshot {
    let squares: Vec<(CategoryId, i64)> = squares
        .into_iter()
        .map(|(id, s)| (CategoryId(id), s))
        .collect();
    let counts = counts
        .into_iter()
        .filter_map(|(id, value, submissions)| {
            Some((
                CategoryId(id),
                ValueCount {
                    hundredths: Hundredths::from_raw(i64::from(value))?,
                    submissions,
                },
            ))
        })
        .collect();
    DetailedSnapshot::new(snapshot, &squares, counts)
}

/// Sums over every stored allocation, ignoring the summary.
#[auto_type]
pub(super) fn live_totals() -> _ {
    allocations::table
        .group_by(allocations::category_id)
        .order(allocations::category_id)
        .select((allocations::category_id, hundredths_sum()))
}

#[auto_type]
pub(super) fn submission_count() -> _ {
    submissions::table.count()
}

#[auto_type]
pub(super) fn outbox_len() -> _ {
    aggregate_outbox::table.count()
}

#[auto_type]
pub(super) fn voter_count() -> _ {
    voters::table.count()
}

/// When the oldest outbox row was written: ids grow with time, so the first by id (its
/// index) is the oldest.
#[auto_type]
pub(super) fn oldest_outbox_at() -> _ {
    aggregate_outbox::table
        .order(aggregate_outbox::id)
        .select(aggregate_outbox::created_at)
}

/// The oldest outbox rows; a backend adds its locking.
#[auto_type]
pub(super) fn outbox_batch(max_rows: i64) -> _ {
    aggregate_outbox::table
        .order(aggregate_outbox::id)
        .limit(max_rows)
        .select(aggregate_outbox::id)
}

// Writes.

pub(super) fn insert_voter(
    id: Uuid,
    token_hash: &str,
    created_at: DateTime<Utc>,
) -> impl Statement {
    diesel::insert_into(voters::table).values(VoterInsert {
        id,
        token_hash: token_hash.to_owned(),
        created_at,
    })
}

/// Takes back a voter inserted with a submission that was not written.
pub(super) fn delete_voter(id: Uuid) -> impl Statement {
    diesel::delete(voters::table.filter(voters::id.eq(Bind(id))))
}

/// Writes nothing when the idempotency key is taken in its scope (then `execute` counts 0
/// rows). No conflict target: the key's scope decides which unique index can conflict (a new
/// voter's fresh id never meets `submissions_key_per_voter`, and an existing voter's row is
/// outside `submissions_key_of_new_voter`), and one target could name only one of them.
pub(super) fn insert_submission(new: &NewSubmission, voter_id: Uuid) -> impl Statement {
    let key = new.key.as_ref();
    diesel::insert_into(submissions::table)
        .values(SubmissionInsert {
            id: new.id,
            voter_id,
            created_at: new.created_at,
            idempotency_key_hash: key.map(|k| k.key_hash.clone()),
            payload_hash: key.map(|k| k.payload_hash.clone()),
            created_voter: new.creates_voter(),
            voter_token_sealed: key.and_then(|k| k.sealed_token.clone()),
        })
        .on_conflict_do_nothing()
}

/// One multi-row insert. Not a [`Statement`]: SQLite runs batch inserts its own way, through
/// the connection's `execute`.
#[auto_type]
pub(super) fn insert_allocations(rows: Vec<AllocationInsert>) -> _ {
    diesel::dsl::insert_into(allocations::table).values(rows)
}

/// The voters a seed batch creates, for [`insert_voters`].
pub(super) fn seeded_voter_rows(batch: &SeedBatch) -> Vec<VoterInsert> {
    batch
        .submissions
        .iter()
        .filter(|s| s.creates_voter)
        .map(|s| VoterInsert {
            id: s.voter_id,
            token_hash: super::seeded_token_hash(s.voter_id),
            created_at: s.created_at,
        })
        .collect()
}

/// The submissions of a seed batch, for [`insert_submissions`].
pub(super) fn seeded_submission_rows(batch: &SeedBatch) -> Vec<SubmissionInsert> {
    batch
        .submissions
        .iter()
        .map(|s| SubmissionInsert {
            id: s.id,
            voter_id: s.voter_id,
            created_at: s.created_at,
            idempotency_key_hash: None,
            payload_hash: None,
            created_voter: s.creates_voter,
            voter_token_sealed: None,
        })
        .collect()
}

/// The allocations of a seed batch, for [`insert_allocations`].
pub(super) fn seeded_allocation_rows(batch: &SeedBatch) -> Vec<AllocationInsert> {
    let per_submission = batch.categories.len().max(1);
    batch
        .submissions
        .iter()
        .zip(batch.hundredths.chunks(per_submission))
        .flat_map(|(s, values)| {
            batch
                .categories
                .iter()
                .zip(values)
                .map(|(category, &hundredths)| AllocationInsert {
                    submission_id: s.id,
                    category_id: category.0,
                    hundredths,
                })
        })
        .collect()
}

/// Multi-row inserts, like [`insert_allocations`].
#[auto_type]
pub(super) fn insert_voters(rows: Vec<VoterInsert>) -> _ {
    diesel::dsl::insert_into(voters::table).values(rows)
}

#[auto_type]
pub(super) fn insert_submissions(rows: Vec<SubmissionInsert>) -> _ {
    diesel::dsl::insert_into(submissions::table).values(rows)
}

/// Creates the summary row, empty, unless it exists; `execute` counts 1 when it created it.
pub(super) fn create_summary(now: DateTime<Utc>) -> impl Statement {
    diesel::insert_into(aggregate_summary::table)
        .values(SummaryInsert {
            id: SUMMARY_ID,
            version: 0,
            total_submissions: 0,
            updated_at: now,
            stale: false,
            generation: new_generation(),
        })
        .on_conflict(aggregate_summary::id)
        .do_nothing()
}

pub(super) fn clear_totals() -> impl Statement {
    diesel::delete(aggregate_totals::table)
}

/// The sum of a group of allocations. Groups exist only where rows do, so it is never NULL.
#[auto_type]
fn hundredths_sum() -> _ {
    let total: helper_types::sum<allocations::hundredths> = sum(allocations::hundredths);
    total.assume_not_null()
}

/// The sum of the squares of a group of allocations (each square fits 32 bits: at most 10⁸).
#[auto_type]
fn squares_sum() -> _ {
    let squares: helper_types::sum<
        helper_types::Mul<allocations::hundredths, allocations::hundredths>,
    > = sum(allocations::hundredths * allocations::hundredths);
    squares.assume_not_null()
}

/// A row of `aggregate_totals` computed from a group of allocations.
#[auto_type]
fn allocation_sums() -> _ {
    (
        allocations::category_id,
        hundredths_sum(),
        count_star(),
        squares_sum(),
    )
}

/// The columns [`allocation_sums`] fills.
#[auto_type]
fn total_columns() -> _ {
    (
        aggregate_totals::category_id,
        aggregate_totals::sum_hundredths,
        aggregate_totals::allocations,
        aggregate_totals::sum_squares,
    )
}

/// A row of `aggregate_distribution` computed from a group of allocations of one value.
#[auto_type]
fn value_counts() -> _ {
    (
        allocations::category_id,
        allocations::hundredths,
        count_star(),
    )
}

/// The columns [`value_counts`] fills.
#[auto_type]
fn distribution_columns() -> _ {
    (
        aggregate_distribution::category_id,
        aggregate_distribution::hundredths,
        aggregate_distribution::submissions,
    )
}

/// Every allocation whose submission has left the outbox: what the summary counts.
#[auto_type]
fn folded_allocations() -> _ {
    allocations::table
        .left_join(
            aggregate_outbox::table
                .on(aggregate_outbox::submission_id.eq(allocations::submission_id)),
        )
        .filter(aggregate_outbox::id.is_null())
}

/// Fills the (cleared) totals from every allocation whose submission has left the outbox.
pub(super) fn insert_folded_totals() -> impl Statement {
    let folded = folded_allocations()
        .group_by(allocations::category_id)
        .select(allocation_sums());
    diesel::insert_into(aggregate_totals::table)
        .values(folded)
        .into_columns(total_columns())
}

/// Fills the (cleared) distribution from every allocation whose submission has left the
/// outbox; zeros are not kept (see the migration).
pub(super) fn insert_folded_distribution() -> impl Statement {
    let folded = folded_allocations()
        .filter(allocations::hundredths.gt(0_i32))
        .group_by((allocations::category_id, allocations::hundredths))
        .select(value_counts());
    diesel::insert_into(aggregate_distribution::table)
        .values(folded)
        .into_columns(distribution_columns())
}

pub(super) fn clear_distribution() -> impl Statement {
    diesel::delete(aggregate_distribution::table)
}

/// The sums [`insert_folded_totals`] would write, read instead of written, for an audit.
#[auto_type]
pub(super) fn folded_totals() -> _ {
    folded_allocations()
        .group_by(allocations::category_id)
        .order(allocations::category_id)
        .select((allocations::category_id, hundredths_sum()))
}

/// How many submissions have left the outbox.
#[auto_type]
pub(super) fn folded_submission_count() -> _ {
    submissions::table
        .left_join(aggregate_outbox::table.on(aggregate_outbox::submission_id.eq(submissions::id)))
        .filter(aggregate_outbox::id.is_null())
        .count()
}

/// Sets the summary to a recomputed total and clears the stale mark. A recomputed summary is
/// a new generation (after a restore from a backup, `rebuild-aggregates` is what tells every
/// cache and process that their snapshots are of another database); versions go on counting.
pub(super) fn set_summary(total_submissions: i64, now: DateTime<Utc>) -> impl Statement {
    diesel::update(aggregate_summary::table.find(SUMMARY_ID)).set((
        aggregate_summary::version.eq(aggregate_summary::version + 1),
        aggregate_summary::total_submissions.eq(total_submissions),
        aggregate_summary::updated_at.eq(Bind(now)),
        aggregate_summary::stale.eq(false),
        aggregate_summary::generation.eq(new_generation()),
    ))
}

/// One row of a fold's batch: an allocation of one of its submissions (none for a submission
/// without allocations), with the submission's outbox row and time.
#[derive(Queryable)]
pub(super) struct FoldRow {
    outbox_id: i64,
    created_at: DateTime<Utc>,
    category_id: Option<i32>,
    hundredths: Option<i32>,
}

impl From<FoldRow> for FoldedRow {
    fn from(row: FoldRow) -> Self {
        FoldedRow {
            submission: row.outbox_id,
            created_at: row.created_at,
            allocation: row
                .category_id
                .zip(row.hundredths)
                .map(|(c, h)| (CategoryId(c), h)),
        }
    }
}

/// The allocations of the submissions of the outbox rows, each with its row: what
/// [`FoldDelta::of`] adds up; the callers say which rows.
#[auto_type]
fn fold_source() -> _ {
    aggregate_outbox::table
        .inner_join(submissions::table.on(submissions::id.eq(aggregate_outbox::submission_id)))
        .left_join(allocations::table.on(allocations::submission_id.eq(submissions::id)))
        .select((
            aggregate_outbox::id,
            submissions::created_at,
            allocations::category_id.nullable(),
            allocations::hundredths.nullable(),
        ))
}

/// What the given outbox rows fold, read once per fold.
#[auto_type]
pub(super) fn fold_rows(outbox_ids: Vec<i64>) -> _ {
    fold_source().filter(aggregate_outbox::id.eq_any(outbox_ids))
}

/// What the outbox rows up to `last_id` fold: a text that is the same for every batch, where
/// a list of ids is not (SQLite has no array to bind it as one value).
#[auto_type]
pub(super) fn fold_rows_through(last_id: i64) -> _ {
    fold_source().filter(aggregate_outbox::id.le(last_id))
}

#[derive(Insertable)]
#[diesel(table_name = aggregate_totals)]
pub(super) struct TotalsInsert {
    pub(super) category_id: i32,
    pub(super) sum_hundredths: i64,
    pub(super) allocations: i64,
    pub(super) sum_squares: i64,
}

#[derive(Insertable)]
#[diesel(table_name = aggregate_distribution)]
pub(super) struct ValueInsert {
    pub(super) category_id: i32,
    pub(super) hundredths: i32,
    pub(super) submissions: i64,
}

#[derive(Insertable)]
#[diesel(table_name = aggregate_trend)]
pub(super) struct TrendCountInsert {
    pub(super) resolution: &'static str,
    #[diesel(serialize_as = Bind<DateTime<Utc>>)]
    pub(super) bucket_start: DateTime<Utc>,
    pub(super) submissions: i64,
}

#[derive(Insertable)]
#[diesel(table_name = aggregate_trend_totals)]
pub(super) struct TrendSumInsert {
    pub(super) resolution: &'static str,
    #[diesel(serialize_as = Bind<DateTime<Utc>>)]
    pub(super) bucket_start: DateTime<Utc>,
    pub(super) category_id: i32,
    pub(super) sum_hundredths: i64,
}

/// The rows a fold adds to each table, for the `upsert_*` macros below.
pub(super) struct FoldInserts {
    pub totals: Vec<TotalsInsert>,
    pub values: Vec<ValueInsert>,
    pub trend_counts: Vec<TrendCountInsert>,
    pub trend_sums: Vec<TrendSumInsert>,
}

impl From<FoldDelta> for FoldInserts {
    fn from(delta: FoldDelta) -> Self {
        FoldInserts {
            totals: delta
                .totals
                .into_iter()
                .map(|t| TotalsInsert {
                    category_id: t.category.0,
                    sum_hundredths: t.sum_hundredths,
                    allocations: t.allocations,
                    sum_squares: t.sum_squares,
                })
                .collect(),
            values: delta
                .values
                .into_iter()
                .map(|v| ValueInsert {
                    category_id: v.category.0,
                    hundredths: v.hundredths,
                    submissions: v.submissions,
                })
                .collect(),
            trend_counts: delta
                .trend_counts
                .into_iter()
                .map(|c| TrendCountInsert {
                    resolution: c.resolution.name(),
                    bucket_start: c.bucket_start,
                    submissions: c.submissions,
                })
                .collect(),
            trend_sums: delta
                .trend_sums
                .into_iter()
                .map(|s| TrendSumInsert {
                    resolution: s.resolution.name(),
                    bucket_start: s.bucket_start,
                    category_id: s.category.0,
                    sum_hundredths: s.sum_hundredths,
                })
                .collect(),
        }
    }
}

// The upserts that add a fold's rows ([`FoldInserts`]) to the summary's tables, given a list of
// rows for one multi-row statement (PostgreSQL; SQLite writes its own, see
// `sqlite::SummaryUpsert`). Macros, because diesel cannot name an
// upsert's type (`auto_type` does not know `on_conflict`), so no function can return it.

/// Inserts `$values` into `$table`; where a row with the same `$key` columns exists, adds the
/// new row's `$sum` columns to it instead.
macro_rules! upsert_adding {
    ($table:ident ($($key:ident),+) += ($($sum:ident),+), $values:expr) => {{
        use diesel::upsert::excluded;
        use diesel::ExpressionMethods;
        use $crate::store::schema::$table as t;
        diesel::insert_into(t::table)
            .values($values)
            .on_conflict(($(t::$key,)+))
            .do_update()
            .set(($(t::$sum.eq(t::$sum + excluded(t::$sum)),)+))
    }};
}

/// Adds rows of [`TotalsInsert`] to `aggregate_totals`.
macro_rules! upsert_totals {
    ($values:expr) => {
        $crate::store::queries::upsert_adding!(
            aggregate_totals(category_id) += (sum_hundredths, allocations, sum_squares),
            $values
        )
    };
}

/// Adds rows of [`ValueInsert`] to `aggregate_distribution`.
macro_rules! upsert_values {
    ($values:expr) => {
        $crate::store::queries::upsert_adding!(
            aggregate_distribution(category_id, hundredths) += (submissions),
            $values
        )
    };
}

/// Adds rows of [`TrendCountInsert`] to `aggregate_trend`.
macro_rules! upsert_trend_counts {
    ($values:expr) => {
        $crate::store::queries::upsert_adding!(
            aggregate_trend(resolution, bucket_start) += (submissions),
            $values
        )
    };
}

/// Adds rows of [`TrendSumInsert`] to `aggregate_trend_totals`.
macro_rules! upsert_trend_sums {
    ($values:expr) => {
        $crate::store::queries::upsert_adding!(
            aggregate_trend_totals(resolution, bucket_start, category_id) += (sum_hundredths),
            $values
        )
    };
}
pub(super) use {
    upsert_adding, upsert_totals, upsert_trend_counts, upsert_trend_sums, upsert_values,
};

/// Which submissions [`trend_inserts`] adds: `from` names them `s` (with their outbox row `o`)
/// and `filter` picks them.
pub(super) struct TrendSource<'a> {
    pub from: &'a str,
    pub filter: &'a str,
}

/// Every submission that has left the outbox (for a rebuild).
pub(super) const ALL_FOLDED: TrendSource<'static> = TrendSource {
    from: "submissions s LEFT JOIN aggregate_outbox o ON o.submission_id = s.id",
    filter: "o.id IS NULL",
};

/// How a backend writes the start of the trend bucket that holds a time: given the SQL of a
/// resolution name (`'minute'`, `'hour'`, `'day'`) and of a time, the SQL of the bucket's start.
pub(super) type TrendBucketSql = fn(resolution: &str, time: &str) -> String;

/// The two queries that count submissions into the trend buckets of `resolutions`: rows of
/// (resolution, bucket start, submissions), and of (resolution, bucket start, category, sum).
///
/// Raw SQL: truncating a time is written differently by each backend, and the DSL has no
/// `CROSS JOIN` of a constant table.
pub(super) fn trend_selects(
    bucket: TrendBucketSql,
    source: &TrendSource<'_>,
    resolutions: &[Resolution],
) -> [String; 2] {
    let resolutions = resolutions
        .iter()
        .map(|r| format!("SELECT '{}' AS resolution", r.name()))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let bucket = bucket("r.resolution", "s.created_at");
    let TrendSource { from, filter } = source;
    [
        format!(
            "SELECT r.resolution, {bucket} AS bucket_start, count(*) AS submissions \
             FROM {from} CROSS JOIN ({resolutions}) r \
             WHERE {filter} GROUP BY 1, 2"
        ),
        format!(
            "SELECT r.resolution, {bucket} AS bucket_start, a.category_id, \
                    sum(a.hundredths) AS sum_hundredths \
             FROM {from} JOIN allocations a ON a.submission_id = s.id \
             CROSS JOIN ({resolutions}) r \
             WHERE {filter} GROUP BY 1, 2, 3"
        ),
    ]
}

/// The statements that add what [`trend_selects`] counts to the stored buckets.
pub(super) fn trend_inserts(
    bucket: TrendBucketSql,
    source: &TrendSource<'_>,
    resolutions: &[Resolution],
) -> [String; 2] {
    let [counts, sums] = trend_selects(bucket, source, resolutions);
    [
        format!(
            "INSERT INTO aggregate_trend (resolution, bucket_start, submissions) {counts} \
             ON CONFLICT (resolution, bucket_start) DO UPDATE \
             SET submissions = aggregate_trend.submissions + excluded.submissions"
        ),
        format!(
            "INSERT INTO aggregate_trend_totals (resolution, bucket_start, category_id, sum_hundredths) \
             {sums} ON CONFLICT (resolution, bucket_start, category_id) DO UPDATE \
             SET sum_hundredths = aggregate_trend_totals.sum_hundredths + excluded.sum_hundredths"
        ),
    ]
}

/// One row of the first query of [`trend_selects`], or of `aggregate_trend`.
#[derive(QueryableByName)]
pub(super) struct TrendCountRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    resolution: String,
    #[diesel(sql_type = super::sql_types::Timestamptz)]
    bucket_start: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    submissions: i64,
}

/// One row of the second query of [`trend_selects`], or of `aggregate_trend_totals`.
#[derive(QueryableByName)]
pub(super) struct TrendSumRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    resolution: String,
    #[diesel(sql_type = super::sql_types::Timestamptz)]
    bucket_start: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    category_id: i32,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    sum_hundredths: i64,
}

/// Every stored trend bucket, as [`TrendCountRow`]s and [`TrendSumRow`]s.
pub(super) const STORED_TREND: [&str; 2] = [
    "SELECT resolution, bucket_start, submissions FROM aggregate_trend",
    "SELECT resolution, bucket_start, category_id, sum_hundredths FROM aggregate_trend_totals",
];

/// The derived state read for an audit, stored or computed: value counts (category, value,
/// submissions), sums of squares (category, sum) and trend buckets.
pub(super) struct DerivedRows {
    pub counts: Vec<(i32, i32, i64)>,
    pub squares: Vec<(i32, i64)>,
    pub trend_counts: Vec<TrendCountRow>,
    pub trend_sums: Vec<TrendSumRow>,
}

impl DerivedRows {
    /// Each number under the name [`DerivedAudit`] compares it by.
    pub(super) fn named(self) -> std::collections::BTreeMap<String, i64> {
        let mut named = std::collections::BTreeMap::new();
        let mut add = |name: String, value: i64| *named.entry(name).or_insert(0) += value;
        for (category, value, submissions) in self.counts {
            let percent = f64::from(value) / 100.0;
            add(
                format!("category {category} submissions at {percent} %"),
                submissions,
            );
        }
        for (category, squares) in self.squares {
            add(format!("category {category} sum of squares"), squares);
        }
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for row in self.trend_counts {
            add(
                format!(
                    "{} bucket {} submissions",
                    row.resolution,
                    at(row.bucket_start)
                ),
                row.submissions,
            );
        }
        for row in self.trend_sums {
            add(
                format!(
                    "{} bucket {} category {} sum",
                    row.resolution,
                    at(row.bucket_start),
                    row.category_id
                ),
                row.sum_hundredths,
            );
        }
        named
    }
}

/// Value counts of every folded submission, as [`insert_folded_distribution`] writes them.
#[auto_type]
pub(super) fn folded_distribution() -> _ {
    folded_allocations()
        .filter(allocations::hundredths.gt(0_i32))
        .group_by((allocations::category_id, allocations::hundredths))
        .select(value_counts())
}

/// Sums of squares of every folded submission.
#[auto_type]
pub(super) fn folded_squares() -> _ {
    folded_allocations()
        .group_by(allocations::category_id)
        .select((allocations::category_id, squares_sum()))
}

/// Rewrites the trend from every folded submission, in two stages: the minute buckets from
/// the rows, then each hour from its minutes and each day from its hours (reading the
/// submissions once, not once per resolution).
pub(super) fn trend_rebuild(bucket: TrendBucketSql) -> (Vec<String>, Vec<String>) {
    let mut minutes = vec![
        "DELETE FROM aggregate_trend".to_owned(),
        "DELETE FROM aggregate_trend_totals".to_owned(),
    ];
    minutes.extend(trend_inserts(bucket, &ALL_FOLDED, &[Resolution::Minute]));
    let mut rolled_up = Vec::new();
    for (finer, coarser) in [("minute", "hour"), ("hour", "day")] {
        let start = bucket(&format!("'{coarser}'"), "bucket_start");
        rolled_up.push(format!(
            "INSERT INTO aggregate_trend (resolution, bucket_start, submissions) \
             SELECT '{coarser}', {start}, sum(submissions) FROM aggregate_trend \
             WHERE resolution = '{finer}' GROUP BY 2"
        ));
        rolled_up.push(format!(
            "INSERT INTO aggregate_trend_totals (resolution, bucket_start, category_id, sum_hundredths) \
             SELECT '{coarser}', {start}, category_id, sum(sum_hundredths) \
             FROM aggregate_trend_totals WHERE resolution = '{finer}' GROUP BY 2, 3"
        ));
    }
    (minutes, rolled_up)
}

pub(super) fn delete_outbox(outbox_ids: Vec<i64>) -> impl Statement {
    diesel::delete(aggregate_outbox::table.filter(aggregate_outbox::id.eq_any(outbox_ids)))
}

/// Deletes the outbox rows up to `last_id`, in one text for every batch (see
/// [`fold_rows_through`]).
pub(super) fn delete_outbox_through(last_id: i64) -> impl Statement {
    diesel::delete(aggregate_outbox::table.filter(aggregate_outbox::id.le(last_id)))
}

/// Counts `folded` more submissions into the summary and moves its version on.
pub(super) fn advance_summary(folded: usize, now: DateTime<Utc>) -> impl Statement {
    let folded = i64::try_from(folded).unwrap_or(i64::MAX);
    diesel::update(aggregate_summary::table.find(SUMMARY_ID)).set((
        aggregate_summary::version.eq(aggregate_summary::version + 1),
        aggregate_summary::total_submissions.eq(aggregate_summary::total_submissions + folded),
        aggregate_summary::updated_at.eq(Bind(now)),
    ))
}

pub(super) fn mark_summary_stale() -> impl Statement {
    diesel::update(aggregate_summary::table.find(SUMMARY_ID)).set(aggregate_summary::stale.eq(true))
}

// Rows to domain values.

/// What a new submission of the voter `voter_id` becomes once written.
pub(super) fn created(new: NewSubmission, voter_id: Uuid) -> SubmitOutcome {
    SubmitOutcome::Created(StoredSubmission {
        id: new.id,
        voter_id,
        created_at: new.created_at,
        allocations: new.allocation.entries().to_vec(),
    })
}

/// A submission that wrote nothing: its idempotency key is taken. The row holding the key
/// committed before ours tried it and nothing deletes submissions, so not finding it (or a
/// submission without a key writing nothing) means the data is broken.
pub(super) fn key_vanished() -> StoreError {
    StoreError::Corrupt("a submission wrote nothing, yet no row holds its idempotency key".into())
}

/// The replay of the submission `found` (loaded from a [`KeyedRow`]), with its key's binding.
pub(super) fn replayed(
    found: Option<StoredSubmission>,
    binding: KeyBinding,
) -> Result<SubmitOutcome, StoreError> {
    let submission = found.ok_or_else(key_vanished)?;
    Ok(SubmitOutcome::Replayed(Replay {
        submission,
        payload_hash: binding.payload_hash,
        sealed_token: binding.sealed_token,
    }))
}

/// The token hash of a voter the submission creates, if it creates one.
pub(super) fn new_voter(new: &NewSubmission) -> Option<(Uuid, &str)> {
    match &new.voter {
        VoterRef::New { id, token_hash } => Some((*id, token_hash.as_str())),
        VoterRef::Existing(_) | VoterRef::ByToken { .. } => None,
    }
}

/// Groups allocation rows under their submissions, keeping the submissions' order.
pub(super) fn attach_allocations(
    heads: Vec<SubmissionRow>,
    rows: Vec<AllocationRow>,
) -> Result<Vec<StoredSubmission>, StoreError> {
    let mut out: Vec<StoredSubmission> = heads
        .into_iter()
        .map(|head| StoredSubmission {
            id: head.id,
            voter_id: head.voter_id,
            created_at: head.created_at,
            allocations: Vec::new(),
        })
        .collect();
    for row in rows {
        let value = Hundredths::from_raw(i64::from(row.hundredths)).ok_or_else(|| {
            StoreError::Corrupt(format!("hundredths {} out of range", row.hundredths))
        })?;
        if let Some(s) = out.iter_mut().find(|s| s.id == row.submission_id) {
            s.allocations.push((CategoryId(row.category_id), value));
        }
    }
    Ok(out)
}

pub(super) fn summary_state(row: SummaryRow) -> SummaryState {
    SummaryState {
        generation: row.generation,
        version: row.version,
        total_submissions: row.total_submissions,
        updated_at: row.updated_at,
        stale: row.stale,
    }
}

pub(super) fn summary_snapshot(row: SummaryRow, totals: Vec<TotalRow>) -> Snapshot {
    Snapshot {
        generation: row.generation,
        version: row.version,
        total_submissions: row.total_submissions,
        updated_at: row.updated_at,
        totals: totals.into_iter().map(CategoryTotal::from).collect(),
        source: SnapshotSource::Summary,
    }
}

/// The summary row (stale or not) with its totals, and the folded submissions' sums and count.
pub(super) fn summary_audit(
    row: Option<SummaryRow>,
    totals: Vec<TotalRow>,
    folded_count: i64,
    folded_totals: Vec<TotalRow>,
    unfolded: i64,
    derived: (DerivedRows, DerivedRows),
) -> SummaryAudit {
    let identity = row.as_ref().map(|r| (r.generation.clone(), r.version));
    let stale = row.as_ref().is_some_and(SummaryRow::is_stale);
    let (stored, folded) = derived;
    SummaryAudit {
        summary: row.map(|row| summary_snapshot(row, totals)),
        stale,
        folded: live_snapshot(identity, folded_count, folded_totals),
        unfolded,
        derived: DerivedAudit {
            stored: stored.named(),
            folded: folded.named(),
        },
    }
}

/// `identity` is the summary's (generation, version), when it has a row: live reads keep the
/// version clients saw.
pub(super) fn live_snapshot(
    identity: Option<(String, i64)>,
    count: i64,
    totals: Vec<TotalRow>,
) -> Snapshot {
    let (generation, version) = identity.unwrap_or_default();
    Snapshot {
        generation,
        version,
        total_submissions: count,
        updated_at: Utc::now(),
        totals: totals.into_iter().map(CategoryTotal::from).collect(),
        source: SnapshotSource::Live,
    }
}
