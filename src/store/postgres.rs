//! PostgreSQL store: diesel-async on a deadpool pool. What is PostgreSQL's own here: the
//! one-statement submission, the row locks (a fold skips outbox rows another worker holds;
//! the summary row serialises folds and rebuilds) and the migration lock.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{
    Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz as PgTimestamptz, Untyped,
    Uuid as PgUuid,
};
use diesel::{sql_query, OptionalExtension, QueryDsl, QueryResult, QueryableByName};
use diesel_async::pooled_connection::deadpool::{Hook, HookError, Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use uuid::Uuid;

use super::queries::{self, DerivedRows, KeyedRow, SubmissionRow, SummaryRow};
use super::sql_types::Bind;
use super::{
    Fold, FoldBatch, KeyScope, NewSubmission, RebuildProgress, RebuildStep, ReferenceChecks,
    SeedBatch, Store, StoreError, StoreStats, StoredSubmission, SubmitOutcome, SummaryAudit,
};
use crate::domain::{
    Category, DetailedSnapshot, FoldDelta, Resolution, Snapshot, TrendRange, TrendRows,
};
use crate::metrics::PoolUsage;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Serialises migrations of processes that start together against one database.
const MIGRATION_LOCK: i64 = 0x7461_7862_7564_6774;

pub struct PostgresStore {
    pool: Pool<AsyncPgConnection>,
}

fn pool_error(error: PoolError) -> StoreError {
    use diesel_async::pooled_connection::PoolError as Backend;
    StoreError::from_pool(error, |e| match e {
        Backend::ConnectionError(e) => StoreError::Connect(e),
        Backend::QueryError(e) => StoreError::Query(e),
    })
}

/// Opens a pooled connection; with a timeout, PostgreSQL cancels any of its statements that runs
/// longer (`statement_timeout`, for the whole session), so no single query holds a connection
/// or its locks for long whatever a request asks. Set here rather than in the URL's `options`,
/// which the operator's URL may already carry.
fn establish(
    url: &str,
    statement_timeout: Option<Duration>,
) -> BoxFuture<'_, diesel::ConnectionResult<AsyncPgConnection>> {
    async move {
        let mut conn = AsyncPgConnection::establish(url).await?;
        if let Some(timeout) = statement_timeout {
            // Raw SQL: a session setting has no DSL. The value is a number of milliseconds.
            conn.batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis()))
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
        }
        Ok(conn)
    }
    .boxed()
}

/// A connection unused for longer than this is verified before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Verifies a connection that sat unused for `PING_AFTER_IDLE` before it is handed out: what
/// happened to it meanwhile (a proxy or firewall that forgot it, a server that went away
/// without a word) shows here and costs a new connection, not a failed request. Under load
/// connections come back within milliseconds and skip the round trip.
fn ping_if_idle<'a>(
    conn: &'a mut AsyncPgConnection,
    metrics: &'a deadpool::managed::Metrics,
) -> BoxFuture<'a, Result<(), HookError>> {
    async move {
        if metrics.last_used() < PING_AFTER_IDLE {
            return Ok(());
        }
        // Raw SQL: the cheapest statement there is; its answer is not read.
        conn.batch_execute("SELECT 1").await.map_err(|e| {
            HookError::Backend(diesel_async::pooled_connection::PoolError::QueryError(e))
        })
    }
    .boxed()
}

impl PostgresStore {
    pub async fn connect(
        url: &str,
        pool_size: usize,
        statement_timeout: Option<Duration>,
    ) -> Result<Self, StoreError> {
        // `ManagerConfig` is non-exhaustive: built by default, then changed.
        let mut config = ManagerConfig::default();
        config.custom_setup = Box::new(move |url| establish(url, statement_timeout));
        // The default (`Verified`) sends `SELECT 1` before every checkout: a round trip per
        // statement-sized request, 6–15 % of the write rates in the writes bench. `Fast` still
        // drops a connection whose socket PostgreSQL closed or whose transaction broke (the
        // manager's `is_broken`); `ping_if_idle` verifies only connections left unused a while.
        config.recycling_method = RecyclingMethod::Fast;
        let manager =
            AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .post_recycle(Hook::async_fn(ping_if_idle))
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Pool(Box::new(e)))?;
        let store = PostgresStore { pool };
        // The pool connects lazily; a wrong URL should fail the start, not the first request.
        drop(store.conn().await?);
        Ok(store)
    }

    async fn conn(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// Applies pending migrations under an advisory lock, so processes starting together don't race.
pub async fn migrate(url: &str) -> Result<usize, StoreError> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(StoreError::Connect)?;
    // Raw SQL: diesel has no DSL for advisory locks (they return `void`).
    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .await?;
    let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
    // The harness blocks its thread on every step; on a blocking thread that works under
    // either kind of tokio runtime (in place it panics under a current-thread one).
    let (harness, applied) = tokio::task::spawn_blocking(move || {
        let applied = harness.run_pending_migrations(MIGRATIONS).map(|v| v.len());
        (harness, applied)
    })
    .await
    .map_err(StoreError::Task)?;
    let applied = applied.map_err(StoreError::Migration);
    let mut conn = harness.into_inner();
    conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .await?;
    applied
}

async fn load_submissions(
    conn: &mut AsyncPgConnection,
    heads: Vec<SubmissionRow>,
) -> Result<Vec<StoredSubmission>, StoreError> {
    let ids = heads.iter().map(|head| Bind(head.id())).collect();
    let rows = queries::allocations_of::<Pg>(ids).load(conn).await?;
    queries::attach_allocations(heads, rows)
}

/// What holds the idempotency key of `new`, which wrote nothing because the key is taken.
/// Read committed: a concurrent first use of the key that `new` waited for has committed.
async fn replay(
    conn: &mut AsyncPgConnection,
    new: &NewSubmission,
) -> Result<SubmitOutcome, StoreError> {
    let (scope, key_hash) = new.key_lookup().ok_or_else(queries::key_vanished)?;
    let row: Option<KeyedRow> = match scope {
        KeyScope::Voter(voter) => {
            queries::keyed_submission_of_voter::<Pg>(voter, key_hash)
                .first(conn)
                .await
        }
        KeyScope::NewVoter => {
            queries::keyed_submission_of_new_voter::<Pg>(key_hash)
                .first(conn)
                .await
        }
    }
    .optional()?;
    let (head, binding) = row.ok_or_else(queries::key_vanished)?.split();
    let found = load_submissions(conn, vec![head]).await?.pop();
    queries::replayed(found, binding)
}

/// Locks the summary row, creating it from the folded submissions when it is missing.
///
/// Every writer of the summary (fold, rebuild) takes this lock first, so they run one at a
/// time and each sees the others' committed work.
async fn lock_summary(conn: &mut AsyncPgConnection) -> Result<(), StoreError> {
    let lock = || queries::summary_version().for_update();
    if lock().first::<i64>(conn).await.optional()?.is_some() {
        return Ok(());
    }
    if queries::create_summary(Utc::now()).execute(conn).await? == 1 {
        recompute_folded(conn, &super::no_progress()).await
    } else {
        // A concurrent writer created it first; queue behind it for the row's lock.
        lock().first::<i64>(conn).await?;
        Ok(())
    }
}

/// Rewrites the summary from every submission that has left the outbox. Call with the summary
/// row locked: no fold can then commit, so "not in the outbox" is a stable set.
async fn recompute_folded(
    conn: &mut AsyncPgConnection,
    progress: &RebuildProgress,
) -> Result<(), StoreError> {
    // A recount reads every allocation, which may rightly take longer than the pool's
    // `statement_timeout` allows a request; also when a worker finishes an interrupted rebuild
    // at start on its pooled connection. For this transaction only (raw SQL: a setting).
    conn.batch_execute("SET LOCAL statement_timeout = 0")
        .await?;
    // Raw SQL: a setting has no DSL. The grouping below has 10 rows per submission to go
    // through; with the default 4 MB each step sorted on disk (1 GB of temporary files at
    // 1,000,000 submissions) where 64 MB hashes in memory. LOCAL: until this transaction ends.
    conn.batch_execute("SET LOCAL work_mem = '64MB'").await?;
    progress(RebuildStep::Sums);
    queries::clear_totals().execute(conn).await?;
    queries::insert_folded_totals().execute(conn).await?;
    progress(RebuildStep::ValueCounts);
    queries::clear_distribution().execute(conn).await?;
    queries::insert_folded_distribution().execute(conn).await?;
    let (minutes, rolled_up) = queries::trend_rebuild(trend_bucket);
    progress(RebuildStep::TrendMinutes);
    for statement in minutes {
        sql_query(statement).execute(conn).await?;
    }
    progress(RebuildStep::TrendRollUp);
    for statement in rolled_up {
        sql_query(statement).execute(conn).await?;
    }
    progress(RebuildStep::Summary);
    let total = queries::folded_submission_count().get_result(conn).await?;
    queries::set_summary(total, Utc::now())
        .execute(conn)
        .await?;
    Ok(())
}

/// PostgreSQL's start of a trend bucket (see [`queries::TrendBucketSql`]): UTC, whatever the
/// session's time zone.
fn trend_bucket(resolution: &str, time: &str) -> String {
    format!("date_trunc({resolution}, {time}, 'UTC')")
}

/// Adds what the submissions of the given outbox rows add to the summary's tables: their
/// allocations read once, added up here, written with one upsert per table.
async fn add_to_summary(conn: &mut AsyncPgConnection, ids: &[i64]) -> Result<(), StoreError> {
    let rows: Vec<queries::FoldRow> = queries::fold_rows(ids.to_vec()).load(conn).await?;
    let adds = queries::FoldInserts::from(FoldDelta::of(rows.into_iter().map(Into::into)));
    // One multi-row statement per table that gains rows.
    if !adds.totals.is_empty() {
        queries::upsert_totals!(adds.totals).execute(conn).await?;
    }
    if !adds.values.is_empty() {
        queries::upsert_values!(adds.values).execute(conn).await?;
    }
    if !adds.trend_counts.is_empty() {
        queries::upsert_trend_counts!(adds.trend_counts)
            .execute(conn)
            .await?;
    }
    if !adds.trend_sums.is_empty() {
        queries::upsert_trend_sums!(adds.trend_sums)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// The summary's distributions, squares and trend buckets as stored, for an audit.
async fn stored_derived(conn: &mut AsyncPgConnection) -> Result<DerivedRows, StoreError> {
    let [counts, sums] = queries::STORED_TREND;
    Ok(DerivedRows {
        counts: queries::summary_distribution().load(conn).await?,
        squares: queries::summary_squares().load(conn).await?,
        trend_counts: sql_query(counts).load(conn).await?,
        trend_sums: sql_query(sums).load(conn).await?,
    })
}

/// What [`stored_derived`] must hold, computed over every folded submission.
async fn folded_derived(conn: &mut AsyncPgConnection) -> Result<DerivedRows, StoreError> {
    let [counts, sums] =
        queries::trend_selects(trend_bucket, &queries::ALL_FOLDED, &Resolution::ALL);
    Ok(DerivedRows {
        counts: queries::folded_distribution().load(conn).await?,
        squares: queries::folded_squares().load(conn).await?,
        trend_counts: sql_query(counts).load(conn).await?,
        trend_sums: sql_query(sums).load(conn).await?,
    })
}

/// The snapshot with the squares and value counts of the summary, read in the transaction that
/// read `snapshot`.
async fn details_of(
    conn: &mut AsyncPgConnection,
    snapshot: Snapshot,
) -> Result<DetailedSnapshot, StoreError> {
    let squares = queries::summary_squares().load(conn).await?;
    let counts = queries::summary_distribution().load(conn).await?;
    Ok(queries::detailed(snapshot, squares, counts))
}

/// The trend's rows, read in one transaction with the summary's version.
async fn trend_of(
    conn: &mut AsyncPgConnection,
    range: TrendRange,
) -> Result<TrendRows, StoreError> {
    let version = queries::summary_version().first(conn).await.optional()?;
    let mut before = (Vec::new(), Vec::new());
    for (resolution, from, until) in range.before() {
        let from = Bind(from.unwrap_or_else(queries::trend_epoch));
        let counts = queries::trend_counts(resolution.name(), from, Bind(until))
            .load::<(chrono::DateTime<Utc>, i64)>(conn)
            .await?;
        before.0.extend(counts.into_iter().map(|(_, n)| n));
        let sums = queries::trend_sums(resolution.name(), from, Bind(until))
            .load::<(chrono::DateTime<Utc>, i32, i64)>(conn)
            .await?;
        before.1.extend(sums.into_iter().map(|(_, c, s)| (c, s)));
    }
    let name = range.resolution.name();
    let (from, until) = (Bind(range.from), Bind(range.until));
    let counts = queries::trend_counts(name, from, until).load(conn).await?;
    let sums = queries::trend_sums(name, from, until).load(conn).await?;
    Ok(queries::trend_rows(
        range,
        version.unwrap_or(0),
        before,
        counts,
        sums,
    ))
}

async fn snapshot_of(
    conn: &mut AsyncPgConnection,
    row: SummaryRow,
) -> Result<Snapshot, StoreError> {
    let totals = queries::summary_totals::<Pg>().load(conn).await?;
    Ok(queries::summary_snapshot(row, totals))
}

/// The summary a writer just wrote while holding the summary lock.
async fn written_snapshot(conn: &mut AsyncPgConnection) -> Result<Snapshot, StoreError> {
    let row = queries::summary::<Pg>().first(conn).await.optional()?;
    let row =
        row.ok_or_else(|| StoreError::Corrupt("summary row missing under its lock".into()))?;
    snapshot_of(conn, row).await
}

/// What the batch statement says of one submission of the batch.
#[derive(QueryableByName)]
struct BatchRow {
    #[diesel(sql_type = PgUuid)]
    id: Uuid,
    /// `NULL` when the submission named its voter by a token no voter has.
    #[diesel(sql_type = Nullable<PgUuid>)]
    voter_id: Option<Uuid>,
    /// `false` when its idempotency key is taken in its scope, or its voter is unknown.
    #[diesel(sql_type = Bool)]
    written: bool,
}

/// A batch of submissions as the columns the batch statement unnests: one array per column,
/// one element per submission (per allocation for the `allocation_` ones).
#[derive(Default)]
struct BatchColumns {
    ids: Vec<Uuid>,
    /// `None` for a voter known by the token it presented (`presented_tokens`), whose id the
    /// statement looks up.
    voter_ids: Vec<Option<Uuid>>,
    created_at: Vec<chrono::DateTime<Utc>>,
    key_hashes: Vec<Option<String>>,
    payload_hashes: Vec<Option<String>>,
    creates_voter: Vec<bool>,
    sealed_tokens: Vec<Option<String>>,
    voter_token_hashes: Vec<Option<String>>,
    presented_tokens: Vec<Option<String>>,
    allocation_submissions: Vec<Uuid>,
    allocation_categories: Vec<i32>,
    allocation_values: Vec<i32>,
}

impl BatchColumns {
    fn of(batch: &[NewSubmission]) -> Self {
        let mut columns = BatchColumns::default();
        for new in batch {
            let key = new.key.as_ref();
            columns.ids.push(new.id);
            columns.voter_ids.push(new.voter_id());
            columns.created_at.push(new.created_at);
            columns.key_hashes.push(key.map(|k| k.key_hash.clone()));
            columns
                .payload_hashes
                .push(key.map(|k| k.payload_hash.clone()));
            columns.creates_voter.push(new.creates_voter());
            columns
                .sealed_tokens
                .push(key.and_then(|k| k.sealed_token.clone()));
            columns
                .voter_token_hashes
                .push(queries::new_voter(new).map(|(_, hash)| hash.to_owned()));
            columns
                .presented_tokens
                .push(new.presented_token().map(str::to_owned));
            for (category, hundredths) in new.allocation.entries() {
                columns.allocation_submissions.push(new.id);
                columns.allocation_categories.push(category.0);
                columns.allocation_values.push(i32::from(hundredths.raw()));
            }
        }
        columns
    }
}

/// The batch statement over [`BatchColumns`].
///
/// Raw SQL: one statement, so one round trip and one commit for the whole batch, atomic
/// by itself; the DSL has neither data-modifying CTEs nor `unnest`. A voter known by the token
/// it presented is looked up in the statement (`known`), so that the token costs no round
/// trip of its own; a submission whose token no voter has writes nothing. A subquery, which
/// runs only for a row with a token, by the index on `token_hash`: a join with `voters` got,
/// on a young database, a generic plan that scans the whole table for every batch, which each
/// connection then kept as the table grew (the rate of new voters fell by half within
/// seconds). Foreign keys are
/// checked at the end of the statement, so voters may be inserted after the submissions
/// that name them. Allocations have none: one is written only here, joined to the
/// submissions this statement inserted, and its category was checked against the catalogue
/// when the submission was validated. A submission whose idempotency key is taken in its
/// scope (by an earlier row of the batch too; a concurrent insert of the same key waits for
/// the first to commit) is not in `s`, and nothing else of it is written either. No
/// conflict target, as in `queries::insert_submission`: the scope decides which index
/// conflicts. Rows go in in key order, so that two batches that share keys wait for
/// each other in one order and cannot deadlock.
///
/// A query type of its own rather than `sql_query`, which diesel never keeps prepared: its text
/// is the same for every batch, so each pooled connection parses and plans it once instead of
/// once per batch (for a batch of a dozen submissions that was a third of the statement's time).
struct SubmitBatch(BatchColumns);

impl QueryId for SubmitBatch {
    type QueryId = ();
    /// Kept by its text (and bind types) in the connection's statement cache.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for SubmitBatch {
    type SqlType = Untyped;
}

impl QueryFragment<Pg> for SubmitBatch {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let c = &self.0;
        out.push_sql("WITH input AS (SELECT * FROM unnest(");
        out.push_bind_param::<Array<PgUuid>, _>(&c.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<PgUuid>>, _>(&c.voter_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<PgTimestamptz>, _>(&c.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&c.key_hashes)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&c.payload_hashes)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Bool>, _>(&c.creates_voter)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&c.sealed_tokens)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&c.voter_token_hashes)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&c.presented_tokens)?;
        out.push_sql(
            ") WITH ORDINALITY AS t(id, voter_id, created_at, key_hash, payload_hash,
                                   created_voter, sealed, voter_token_hash, presented, n)),
             known AS (
                SELECT id, coalesce(voter_id,
                                    (SELECT v.id FROM voters v WHERE v.token_hash = presented))
                           AS voter_id
                FROM input),
             s AS (
                INSERT INTO submissions (id, voter_id, created_at, idempotency_key_hash,
                                         payload_hash, created_voter, voter_token_sealed)
                SELECT i.id, k.voter_id, i.created_at, i.key_hash, i.payload_hash,
                       i.created_voter, i.sealed
                FROM input i JOIN known k ON k.id = i.id
                WHERE k.voter_id IS NOT NULL
                ORDER BY i.key_hash NULLS LAST, i.n
                ON CONFLICT DO NOTHING
                RETURNING id),
             v AS (
                INSERT INTO voters (id, token_hash, created_at)
                SELECT i.voter_id, i.voter_token_hash, i.created_at
                FROM input i JOIN s ON s.id = i.id WHERE i.voter_token_hash IS NOT NULL),
             a AS (
                INSERT INTO allocations (submission_id, category_id, hundredths)
                SELECT t.id, t.c, t.h FROM unnest(",
        );
        out.push_bind_param::<Array<PgUuid>, _>(&c.allocation_submissions)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Integer>, _>(&c.allocation_categories)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Integer>, _>(&c.allocation_values)?;
        out.push_sql(
            ") AS t(id, c, h) JOIN s ON s.id = t.id),
             o AS (
                INSERT INTO aggregate_outbox (submission_id) SELECT id FROM s)
             SELECT k.id, k.voter_id, s.id IS NOT NULL AS written
             FROM known k LEFT JOIN s ON s.id = k.id",
        );
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        queries::ping().execute(&mut conn).await?;
        Ok(())
    }

    async fn categories(&self) -> Result<Vec<Category>, StoreError> {
        let mut conn = self.conn().await?;
        let rows = queries::all_categories::<Pg>().load(&mut conn).await?;
        Ok(rows.into_iter().map(Category::from).collect())
    }

    async fn voter_by_token_hash(&self, token_hash: &str) -> Result<Option<Uuid>, StoreError> {
        let mut conn = self.conn().await?;
        let id = queries::voter_by_token_hash(token_hash.to_owned())
            .first(&mut conn)
            .await
            .optional()?;
        Ok(id)
    }

    async fn submit_batch(
        &self,
        batch: Vec<NewSubmission>,
    ) -> Result<Vec<Result<SubmitOutcome, StoreError>>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<BatchRow> = SubmitBatch(BatchColumns::of(&batch))
            .load(&mut conn)
            .await?;
        let rows: HashMap<Uuid, BatchRow> = rows.into_iter().map(|row| (row.id, row)).collect();
        let mut outcomes = Vec::with_capacity(batch.len());
        for new in batch {
            let row = rows.get(&new.id).ok_or_else(|| {
                StoreError::Corrupt("the batch statement left a submission out".into())
            })?;
            outcomes.push(match new.with_voter(row.voter_id) {
                Ok((new, voter_id)) if row.written => Ok(queries::created(new, voter_id)),
                Ok((new, _)) => replay(&mut conn, &new).await,
                Err(unknown) => Err(unknown),
            });
        }
        Ok(outcomes)
    }

    async fn submission(&self, id: Uuid) -> Result<Option<StoredSubmission>, StoreError> {
        let mut conn = self.conn().await?;
        let heads = queries::submission_by_id::<Pg>(id).load(&mut conn).await?;
        Ok(load_submissions(&mut conn, heads).await?.pop())
    }

    async fn submissions_of_voter(
        &self,
        voter_id: Uuid,
        limit: i64,
    ) -> Result<Vec<StoredSubmission>, StoreError> {
        let mut conn = self.conn().await?;
        let heads = queries::submissions_of_voter::<Pg>(voter_id, limit)
            .load(&mut conn)
            .await?;
        load_submissions(&mut conn, heads).await
    }

    async fn summary_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        let mut conn = self.conn().await?;
        // One read-only snapshot, so the totals belong to the version read with them.
        conn.build_transaction()
            .repeatable_read()
            .read_only()
            .run::<_, StoreError, _>(async |conn| {
                match queries::summary::<Pg>().first(conn).await.optional()? {
                    Some(row) if !row.is_stale() => snapshot_of(conn, row).await.map(Some),
                    _ => Ok(None),
                }
            })
            .await
    }

    async fn live_snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut conn = self.conn().await?;
        conn.build_transaction()
            .repeatable_read()
            .read_only()
            .run::<_, StoreError, _>(async |conn| {
                let totals = queries::live_totals().load(conn).await?;
                let count = queries::submission_count().get_result(conn).await?;
                let identity = queries::summary_identity().first(conn).await.optional()?;
                Ok(queries::live_snapshot(identity, count, totals))
            })
            .await
    }

    async fn summary_details(&self) -> Result<Option<DetailedSnapshot>, StoreError> {
        let mut conn = self.conn().await?;
        conn.build_transaction()
            .repeatable_read()
            .read_only()
            .run::<_, StoreError, _>(async |conn| {
                match queries::summary::<Pg>().first(conn).await.optional()? {
                    Some(row) if !row.is_stale() => {
                        let snapshot = snapshot_of(conn, row).await?;
                        details_of(conn, snapshot).await.map(Some)
                    }
                    _ => Ok(None),
                }
            })
            .await
    }

    async fn live_details(&self) -> Result<DetailedSnapshot, StoreError> {
        let mut conn = self.conn().await?;
        conn.build_transaction()
            .repeatable_read()
            .read_only()
            .run::<_, StoreError, _>(async |conn| {
                let totals = queries::live_totals().load(conn).await?;
                let count = queries::submission_count().get_result(conn).await?;
                let identity = queries::summary_identity().first(conn).await.optional()?;
                let squares = queries::live_squares().load(conn).await?;
                let counts = queries::live_distribution().load(conn).await?;
                let snapshot = queries::live_snapshot(identity, count, totals);
                Ok(queries::detailed(snapshot, squares, counts))
            })
            .await
    }

    async fn trend_first(
        &self,
        resolution: Resolution,
    ) -> Result<Option<chrono::DateTime<Utc>>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(queries::trend_first(resolution.name())
            .get_result(&mut conn)
            .await?)
    }

    async fn trend(&self, range: TrendRange) -> Result<TrendRows, StoreError> {
        let mut conn = self.conn().await?;
        conn.build_transaction()
            .repeatable_read()
            .read_only()
            .run::<_, StoreError, _>(async |conn| trend_of(conn, range).await)
            .await
    }

    async fn fold_outbox(&self, batch: FoldBatch) -> Result<Option<Fold>, StoreError> {
        let mut conn = self.conn().await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            // Rows another worker holds are skipped, not waited for.
            let ids: Vec<i64> = queries::outbox_batch(batch.max_rows)
                .for_update()
                .skip_locked()
                .load(conn)
                .await?;
            if ids.is_empty() {
                return Ok(None);
            }
            // The read of the batch's allocations below joins the batch (at most a few hundred
            // outbox rows) to tables of millions by their keys: index nested loops are the
            // only right plan.
            // The planner's default costs (and a new table's missing statistics) sometimes
            // prefer hashing every allocation instead — 10× slower here at 100,000 rows and
            // growing with them. For this transaction only (raw SQL: settings).
            conn.batch_execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
                .await?;
            lock_summary(conn).await?;
            add_to_summary(conn, &ids).await?;
            let folded = queries::delete_outbox(ids.clone()).execute(conn).await?;
            queries::advance_summary(folded, Utc::now())
                .execute(conn)
                .await?;
            if let Some(pause) = batch.pause(folded) {
                tokio::time::sleep(pause).await;
            }
            let snapshot = written_snapshot(conn).await?;
            Ok(Some(Fold::of(snapshot, &ids)))
        })
        .await
    }

    async fn outbox_len(&self) -> Result<i64, StoreError> {
        let mut conn = self.conn().await?;
        Ok(queries::outbox_len().get_result(&mut conn).await?)
    }

    async fn outbox_oldest(&self) -> Result<Option<chrono::DateTime<Utc>>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(queries::oldest_outbox_at()
            .first(&mut conn)
            .await
            .optional()?)
    }

    fn pool_usage(&self) -> PoolUsage {
        super::pool_usage(self.pool.status())
    }

    async fn mark_summary_stale(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        queries::mark_summary_stale().execute(&mut conn).await?;
        Ok(())
    }

    async fn rebuild_summary(&self, progress: RebuildProgress) -> Result<Snapshot, StoreError> {
        self.mark_summary_stale().await?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            lock_summary(conn).await?;
            recompute_folded(conn, &progress).await?;
            written_snapshot(conn).await
        })
        .await
    }

    async fn audit_summary(&self) -> Result<SummaryAudit, StoreError> {
        let mut conn = self.conn().await?;
        // One read-only snapshot: no fold can commit between the summary and the sums.
        conn.build_transaction()
            .repeatable_read()
            .read_only()
            .run::<_, StoreError, _>(async |conn| {
                let row = queries::summary::<Pg>().first(conn).await.optional()?;
                let totals = queries::summary_totals::<Pg>().load(conn).await?;
                let folded_totals = queries::folded_totals().load(conn).await?;
                let folded = queries::folded_submission_count().get_result(conn).await?;
                let unfolded = queries::outbox_len().get_result(conn).await?;
                let derived = (stored_derived(conn).await?, folded_derived(conn).await?);
                Ok(queries::summary_audit(
                    row,
                    totals,
                    folded,
                    folded_totals,
                    unfolded,
                    derived,
                ))
            })
            .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut conn = self.conn().await?;
        conn.build_transaction()
            .repeatable_read()
            .read_only()
            .run::<_, StoreError, _>(async |conn| {
                Ok(StoreStats {
                    submissions: queries::submission_count().get_result(conn).await?,
                    voters: queries::voter_count().get_result(conn).await?,
                    outbox_depth: queries::outbox_len().get_result(conn).await?,
                    oldest_outbox_at: queries::oldest_outbox_at().first(conn).await.optional()?,
                    summary: queries::summary::<Pg>()
                        .first(conn)
                        .await
                        .optional()?
                        .map(queries::summary_state),
                })
            })
            .await
    }

    async fn insert_seeded(&self, batch: SeedBatch) -> Result<(), StoreError> {
        let columns = SeedColumns::of(&batch);
        let mut conn = self.conn().await?;
        // Measured on a batch of 5,000 submissions (50,000 allocations): 0.56-0.78 s with the
        // 105,000 foreign-key trigger calls it then had (0.6 s of it in the triggers),
        // 0.14-0.21 s without. So the batch's distinct references (its categories, and the
        // earlier voters its further submissions name: a few thousand rows, not 105,000
        // checks) are checked and locked FOR KEY SHARE by one query, as the triggers would
        // lock them, and where the role may, the triggers are skipped for this transaction
        // only. What else the triggers check holds by construction: every voter a submission
        // creates is inserted by this same statement. CHECK constraints, NOT NULL and unique
        // indexes are not triggers and still apply. The query runs with the triggers too:
        // allocations carry no foreign keys any more (see the migration
        // `allocations_unchecked_per_row`), so it is what checks their categories.
        conn.transaction::<_, StoreError, _>(async |conn| {
            if batch.checks.per_batch() {
                // Raw SQL: a setting has no DSL. LOCAL: it ends with this transaction (also
                // when it fails), so the pooled connection goes back as it came.
                conn.batch_execute(SKIP_TRIGGERS).await?;
            }
            check_seed_references(conn, &batch).await?;
            insert_seed_rows(conn, &columns, &batch.hundredths).await
        })
        .await
    }

    async fn seed_reference_checks(&self) -> Result<ReferenceChecks, StoreError> {
        let mut conn = self.conn().await?;
        // Tried in a transaction that is always rolled back: no role needs to be known.
        let tried = conn
            .transaction::<(), diesel::result::Error, _>(async |conn| {
                conn.batch_execute(SKIP_TRIGGERS).await?;
                Err(diesel::result::Error::RollbackTransaction)
            })
            .await;
        match tried {
            Err(diesel::result::Error::RollbackTransaction) | Ok(()) => {
                Ok(ReferenceChecks::PerBatch)
            }
            // Not a superuser, and no GRANT SET ON PARAMETER: the slower, always-permitted way.
            Err(diesel::result::Error::DatabaseError(_, info)) => {
                Ok(ReferenceChecks::PerRowFallback(info.message().to_owned()))
            }
            Err(other) => Err(StoreError::Query(other)),
        }
    }

    async fn analyze_seeded(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        // Raw SQL: ANALYZE has no DSL. A sample of 30,000 rows a table: about a second.
        conn.batch_execute("ANALYZE voters, submissions, allocations")
            .await?;
        Ok(())
    }
}

/// Skips the per-row triggers (the foreign keys' among them) until the transaction ends.
const SKIP_TRIGGERS: &str = "SET LOCAL session_replication_role = replica";

#[derive(QueryableByName)]
struct FoundReferences {
    #[diesel(sql_type = BigInt)]
    categories: i64,
    #[diesel(sql_type = BigInt)]
    voters: i64,
}

/// Checks that the categories of `batch` and the voters its further submissions name exist,
/// and locks them against deletion (`FOR KEY SHARE`, as a foreign-key check does) until the
/// transaction ends.
async fn check_seed_references(
    conn: &mut AsyncPgConnection,
    batch: &SeedBatch,
) -> Result<(), StoreError> {
    let created: HashSet<Uuid> = batch
        .submissions
        .iter()
        .filter(|s| s.creates_voter)
        .map(|s| s.voter_id)
        .collect();
    let mut earlier: Vec<Uuid> = batch
        .submissions
        .iter()
        .filter(|s| !created.contains(&s.voter_id))
        .map(|s| s.voter_id)
        .collect();
    // In key order: two batches lock their voters in the same order, and the index is read
    // in order.
    earlier.sort_unstable();
    earlier.dedup();
    let categories: Vec<i32> = batch.categories.iter().map(|c| c.0).collect();
    // Raw SQL: locking clauses inside a CTE have no DSL.
    let found: FoundReferences = sql_query(
        "WITH c AS (SELECT id FROM categories WHERE id = ANY($1) FOR KEY SHARE),
              v AS (SELECT id FROM voters WHERE id = ANY($2) FOR KEY SHARE)
         SELECT (SELECT count(*) FROM c) AS categories, (SELECT count(*) FROM v) AS voters",
    )
    .bind::<Array<Integer>, _>(&categories)
    .bind::<Array<PgUuid>, _>(&earlier)
    .get_result(conn)
    .await?;
    let missing = |expected: usize, found: i64| {
        expected.saturating_sub(usize::try_from(found).unwrap_or(usize::MAX))
    };
    let (categories, voters) = (
        missing(categories.len(), found.categories),
        missing(earlier.len(), found.voters),
    );
    if categories > 0 || voters > 0 {
        return Err(StoreError::MissingSeedReferences { categories, voters });
    }
    Ok(())
}

/// The rows of a seed batch in one statement.
async fn insert_seed_rows(
    conn: &mut AsyncPgConnection,
    columns: &SeedColumns,
    hundredths: &[i32],
) -> Result<(), StoreError> {
    // Raw SQL for the reason of `submit_batch`: one statement, one round trip and one
    // commit per batch, with arrays as the only parameters however large the batch.
    // Foreign keys (when their triggers run) are checked at the end of the statement, so the
    // voters may follow the submissions that name them.
    //
    // Not COPY: diesel-async 0.9 has none, and tokio-postgres's would need connections of
    // its own; measured on 5,000 submissions with the triggers skipped, COPY took about the
    // time of this statement (0.15-0.17 s against 0.14-0.21 s): the time is in the heap and
    // index inserts and their WAL, not in reading the rows.
    sql_query(
        "WITH input AS (
            SELECT * FROM unnest($1::UUID[], $2::UUID[], $3::TIMESTAMPTZ[], $4::BOOLEAN[])
                AS t(id, voter_id, created_at, created_voter)),
         s AS (
            INSERT INTO submissions (id, voter_id, created_at, created_voter)
            SELECT id, voter_id, created_at, created_voter FROM input),
         v AS (
            INSERT INTO voters (id, token_hash, created_at)
            SELECT voter_id, 'seed:' || voter_id::TEXT, created_at
            FROM input WHERE created_voter)
         INSERT INTO allocations (submission_id, category_id, hundredths)
         SELECT * FROM unnest($5::UUID[], $6::INTEGER[], $7::INTEGER[])",
    )
    .bind::<Array<PgUuid>, _>(&columns.ids)
    .bind::<Array<PgUuid>, _>(&columns.voter_ids)
    .bind::<Array<PgTimestamptz>, _>(&columns.created_at)
    .bind::<Array<Bool>, _>(&columns.creates_voter)
    .bind::<Array<PgUuid>, _>(&columns.allocation_submissions)
    .bind::<Array<Integer>, _>(&columns.allocation_categories)
    .bind::<Array<Integer>, _>(hundredths)
    .execute(conn)
    .await?;
    Ok(())
}

/// A seed batch as the columns its statement unnests, like [`BatchColumns`]. The voters' token
/// hashes are made in SQL, the same as [`super::seeded_token_hash`] makes them.
#[derive(Default)]
struct SeedColumns {
    ids: Vec<Uuid>,
    voter_ids: Vec<Uuid>,
    created_at: Vec<chrono::DateTime<Utc>>,
    creates_voter: Vec<bool>,
    allocation_submissions: Vec<Uuid>,
    allocation_categories: Vec<i32>,
}

impl SeedColumns {
    fn of(batch: &SeedBatch) -> Self {
        let n = batch.submissions.len();
        let per_submission = batch.categories.len();
        let mut columns = SeedColumns {
            ids: Vec::with_capacity(n),
            voter_ids: Vec::with_capacity(n),
            created_at: Vec::with_capacity(n),
            creates_voter: Vec::with_capacity(n),
            allocation_submissions: Vec::with_capacity(n * per_submission),
            allocation_categories: Vec::with_capacity(n * per_submission),
        };
        for submission in &batch.submissions {
            columns.ids.push(submission.id);
            columns.voter_ids.push(submission.voter_id);
            columns.created_at.push(submission.created_at);
            columns.creates_voter.push(submission.creates_voter);
            for category in &batch.categories {
                columns.allocation_submissions.push(submission.id);
                columns.allocation_categories.push(category.0);
            }
        }
        columns
    }
}
