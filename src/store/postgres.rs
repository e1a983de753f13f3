//! PostgreSQL store: diesel-async on a deadpool pool.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel::{sql_query, QueryableByName};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use uuid::Uuid;

use super::{
    attach_allocations, NewSubmission, Store, StoreError, StoredSubmission, SubmitOutcome, VoterRef,
};
use crate::domain::{Category, CategoryId, CategoryTotal, Snapshot, SnapshotSource};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Serialises migrations of processes that start together against one database.
const MIGRATION_LOCK: i64 = 0x7461_7862_7564_6774;

type SqlUuid = diesel::sql_types::Uuid;

pub struct PostgresStore {
    pool: Pool<AsyncPgConnection>,
    fold_pause: Duration,
}

#[derive(QueryableByName)]
struct CategoryRow {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Text)]
    slug: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    description: String,
    #[diesel(sql_type = Text)]
    color: String,
    #[diesel(sql_type = Integer)]
    display_order: i32,
    #[diesel(sql_type = Bool)]
    active: bool,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

#[derive(QueryableByName)]
struct HeadRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    voter_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct AllocationRow {
    #[diesel(sql_type = SqlUuid)]
    submission_id: Uuid,
    #[diesel(sql_type = Integer)]
    category_id: i32,
    #[diesel(sql_type = Integer)]
    hundredths: i32,
}

#[derive(QueryableByName)]
struct SummaryRow {
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = BigInt)]
    total_submissions: i64,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
    #[diesel(sql_type = Bool)]
    stale: bool,
}

#[derive(QueryableByName)]
struct TotalRow {
    #[diesel(sql_type = Integer)]
    category_id: i32,
    #[diesel(sql_type = BigInt)]
    sum_hundredths: i64,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct OutboxRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    version: Option<i64>,
}

impl PostgresStore {
    pub async fn connect(
        url: &str,
        pool_size: usize,
        fold_pause: Duration,
    ) -> Result<Self, StoreError> {
        migrate(url).await?;
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Connection(e.to_string()))?;
        Ok(PostgresStore { pool, fold_pause })
    }

    async fn conn(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Connection(e.to_string()))
    }
}

/// Applies pending migrations under an advisory lock, so processes starting together don't race.
pub async fn migrate(url: &str) -> Result<(), StoreError> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| StoreError::Connection(e.to_string()))?;
    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .await?;
    let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
    // The harness blocks the thread in place; that is fine on the multi-threaded runtime.
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map(|v| v.len())
        .map_err(|e| StoreError::Migration(e.to_string()));
    let mut conn = harness.into_inner();
    conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .await?;
    tracing::info!(applied = applied?, "postgres migrations up to date");
    Ok(())
}

async fn totals(conn: &mut AsyncPgConnection) -> Result<Vec<CategoryTotal>, diesel::result::Error> {
    let rows: Vec<TotalRow> =
        sql_query("SELECT category_id, sum_hundredths FROM aggregate_totals ORDER BY category_id")
            .load(conn)
            .await?;
    Ok(rows.into_iter().map(to_total).collect())
}

fn to_total(row: TotalRow) -> CategoryTotal {
    CategoryTotal {
        category_id: CategoryId(row.category_id),
        sum_hundredths: row.sum_hundredths,
    }
}

async fn load_submissions(
    conn: &mut AsyncPgConnection,
    heads: Vec<HeadRow>,
) -> Result<Vec<StoredSubmission>, StoreError> {
    let ids: Vec<Uuid> = heads.iter().map(|h| h.id).collect();
    let rows: Vec<AllocationRow> = sql_query(
        "SELECT submission_id, category_id, hundredths FROM allocations
         WHERE submission_id = ANY($1) ORDER BY category_id",
    )
    .bind::<Array<SqlUuid>, _>(&ids)
    .load(conn)
    .await?;
    attach_allocations(
        heads
            .into_iter()
            .map(|h| (h.id, h.voter_id, h.created_at))
            .collect(),
        rows.into_iter()
            .map(|r| (r.submission_id, r.category_id, r.hundredths))
            .collect(),
    )
}

const LOCK_SUMMARY: &str = "SELECT 1::BIGINT AS n FROM aggregate_summary WHERE id = 1 FOR UPDATE";

/// Locks the summary row, creating it from the folded submissions when it is missing.
///
/// Every writer of the summary (fold, rebuild) takes this lock first, so they run one at a
/// time and each sees the others' committed work.
async fn lock_summary(conn: &mut AsyncPgConnection) -> Result<(), diesel::result::Error> {
    let locked: Vec<CountRow> = sql_query(LOCK_SUMMARY).load(conn).await?;
    if !locked.is_empty() {
        return Ok(());
    }
    let created = sql_query(
        "INSERT INTO aggregate_summary (id, version, total_submissions, updated_at, stale)
         VALUES (1, 0, 0, now(), FALSE) ON CONFLICT (id) DO NOTHING",
    )
    .execute(conn)
    .await?;
    if created == 1 {
        recompute_folded(conn).await?;
    } else {
        sql_query(LOCK_SUMMARY).load::<CountRow>(conn).await?;
    }
    Ok(())
}

/// Rewrites the summary from every submission that has left the outbox. Call with the summary
/// row locked: no fold can then commit, so "not in the outbox" is a stable set.
async fn recompute_folded(conn: &mut AsyncPgConnection) -> Result<(), diesel::result::Error> {
    sql_query("DELETE FROM aggregate_totals")
        .execute(conn)
        .await?;
    sql_query(
        "INSERT INTO aggregate_totals (category_id, sum_hundredths, allocations)
         SELECT a.category_id, SUM(a.hundredths), COUNT(*) FROM allocations a
         WHERE NOT EXISTS (SELECT 1 FROM aggregate_outbox o WHERE o.submission_id = a.submission_id)
         GROUP BY a.category_id",
    )
    .execute(conn)
    .await?;
    sql_query(
        "UPDATE aggregate_summary SET
            version = version + 1,
            total_submissions = (SELECT COUNT(*) FROM submissions s WHERE NOT EXISTS
                (SELECT 1 FROM aggregate_outbox o WHERE o.submission_id = s.id)),
            updated_at = now(),
            stale = FALSE
         WHERE id = 1",
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn summary_row(
    conn: &mut AsyncPgConnection,
) -> Result<Option<SummaryRow>, diesel::result::Error> {
    let mut rows: Vec<SummaryRow> = sql_query(
        "SELECT version, total_submissions, updated_at, stale FROM aggregate_summary WHERE id = 1",
    )
    .load(conn)
    .await?;
    Ok(rows.pop())
}

async fn current_snapshot(conn: &mut AsyncPgConnection) -> Result<Snapshot, diesel::result::Error> {
    let row = summary_row(conn)
        .await?
        .ok_or(diesel::result::Error::NotFound)?;
    snapshot_of(conn, row).await
}

async fn snapshot_of(
    conn: &mut AsyncPgConnection,
    row: SummaryRow,
) -> Result<Snapshot, diesel::result::Error> {
    Ok(Snapshot {
        version: row.version,
        total_submissions: row.total_submissions,
        updated_at: row.updated_at,
        totals: totals(conn).await?,
        source: SnapshotSource::Summary,
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.batch_execute("SELECT 1").await?;
        Ok(())
    }

    async fn categories(&self) -> Result<Vec<Category>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<CategoryRow> = sql_query(
            "SELECT id, slug, name, description, color, display_order, active
             FROM categories ORDER BY display_order, id",
        )
        .load(&mut conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Category {
                id: CategoryId(r.id),
                slug: r.slug,
                name: r.name,
                description: r.description,
                color: r.color,
                display_order: r.display_order,
                active: r.active,
            })
            .collect())
    }

    async fn voter_by_token_hash(&self, token_hash: &str) -> Result<Option<Uuid>, StoreError> {
        let mut conn = self.conn().await?;
        let mut rows: Vec<IdRow> = sql_query("SELECT id FROM voters WHERE token_hash = $1")
            .bind::<Text, _>(token_hash)
            .load(&mut conn)
            .await?;
        Ok(rows.pop().map(|r| r.id))
    }

    async fn submit(&self, new: NewSubmission) -> Result<SubmitOutcome, StoreError> {
        let mut conn = self.conn().await?;
        let categories: Vec<i32> = new.allocation.entries().iter().map(|(c, _)| c.0).collect();
        let values: Vec<i32> = new
            .allocation
            .entries()
            .iter()
            .map(|(_, h)| i32::from(h.raw()))
            .collect();
        let new_voter_hash = match &new.voter {
            VoterRef::New { token_hash, .. } => Some(token_hash.as_str()),
            VoterRef::Existing(_) => None,
        };
        // One statement, so one round trip and atomic by itself. Foreign keys are checked at
        // the end of the statement, so the voter may be inserted after the submission that
        // names it. When the idempotency key is taken (a concurrent insert of the same key
        // waits for the first to commit), `s` is empty and nothing else is written either.
        let written: CountRow = sql_query(
            "WITH s AS (
                INSERT INTO submissions (id, voter_id, created_at, idempotency_key)
                VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING id),
             v AS (
                INSERT INTO voters (id, token_hash, created_at)
                SELECT $2, $5, $3 FROM s WHERE $5::TEXT IS NOT NULL),
             a AS (
                INSERT INTO allocations (submission_id, category_id, hundredths)
                SELECT s.id, t.c, t.h FROM s, unnest($6::INTEGER[], $7::INTEGER[]) AS t(c, h)),
             o AS (
                INSERT INTO aggregate_outbox (submission_id) SELECT id FROM s)
             SELECT COUNT(*) AS n FROM s",
        )
        .bind::<SqlUuid, _>(new.id)
        .bind::<SqlUuid, _>(new.voter_id())
        .bind::<Timestamptz, _>(new.created_at)
        .bind::<Nullable<Text>, _>(new.idempotency_key.as_deref())
        .bind::<Nullable<Text>, _>(new_voter_hash)
        .bind::<Array<Integer>, _>(&categories)
        .bind::<Array<Integer>, _>(&values)
        .get_result(&mut conn)
        .await?;
        if written.n == 1 {
            return Ok(SubmitOutcome::Created(StoredSubmission {
                id: new.id,
                voter_id: new.voter_id(),
                created_at: new.created_at,
                allocations: new.allocation.entries().to_vec(),
            }));
        }
        let key = new.idempotency_key.unwrap_or_default();
        let heads: Vec<HeadRow> = sql_query(
            "SELECT id, voter_id, created_at FROM submissions WHERE idempotency_key = $1",
        )
        .bind::<Text, _>(&key)
        .load(&mut conn)
        .await?;
        load_submissions(&mut conn, heads)
            .await?
            .pop()
            .map(SubmitOutcome::Replayed)
            .ok_or_else(|| StoreError::Corrupt("idempotency key vanished".into()))
    }

    async fn submission(&self, id: Uuid) -> Result<Option<StoredSubmission>, StoreError> {
        let mut conn = self.conn().await?;
        let heads: Vec<HeadRow> =
            sql_query("SELECT id, voter_id, created_at FROM submissions WHERE id = $1")
                .bind::<SqlUuid, _>(id)
                .load(&mut conn)
                .await?;
        Ok(load_submissions(&mut conn, heads).await?.pop())
    }

    async fn submissions_of_voter(
        &self,
        voter_id: Uuid,
        limit: i64,
    ) -> Result<Vec<StoredSubmission>, StoreError> {
        let mut conn = self.conn().await?;
        let heads: Vec<HeadRow> = sql_query(
            "SELECT id, voter_id, created_at FROM submissions WHERE voter_id = $1
             ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind::<SqlUuid, _>(voter_id)
        .bind::<BigInt, _>(limit)
        .load(&mut conn)
        .await?;
        load_submissions(&mut conn, heads).await
    }

    async fn summary_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        let mut conn = self.conn().await?;
        // One read-only snapshot, so the totals belong to the version read with them.
        let snapshot = conn
            .build_transaction()
            .repeatable_read()
            .read_only()
            .run::<_, diesel::result::Error, _>(async |conn| match summary_row(conn).await? {
                Some(row) if !row.stale => snapshot_of(conn, row).await.map(Some),
                _ => Ok(None),
            })
            .await?;
        Ok(snapshot)
    }

    async fn live_snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut conn = self.conn().await?;
        let snapshot = conn
            .build_transaction()
            .repeatable_read()
            .read_only()
            .run::<_, diesel::result::Error, _>(async |conn| {
                let rows: Vec<TotalRow> = sql_query(
                    "SELECT category_id, SUM(hundredths)::BIGINT AS sum_hundredths
                         FROM allocations GROUP BY category_id ORDER BY category_id",
                )
                .load(conn)
                .await?;
                let count: CountRow = sql_query("SELECT COUNT(*) AS n FROM submissions")
                    .get_result(conn)
                    .await?;
                let version: VersionRow = sql_query(
                    "SELECT (SELECT version FROM aggregate_summary WHERE id = 1) AS version",
                )
                .get_result(conn)
                .await?;
                Ok(Snapshot {
                    version: version.version.unwrap_or(0),
                    total_submissions: count.n,
                    updated_at: Utc::now(),
                    totals: rows.into_iter().map(to_total).collect(),
                    source: SnapshotSource::Live,
                })
            })
            .await?;
        Ok(snapshot)
    }

    async fn fold_outbox(&self, batch_size: i64) -> Result<Option<Snapshot>, StoreError> {
        let mut conn = self.conn().await?;
        let pause = self.fold_pause;
        let snapshot = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                {
                    // Rows another worker holds are skipped, not waited for.
                    let batch: Vec<OutboxRow> = sql_query(
                        "SELECT id FROM aggregate_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                    )
                    .bind::<BigInt, _>(batch_size)
                    .load(conn)
                    .await?;
                    if batch.is_empty() {
                        return Ok(None);
                    }
                    let ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
                    lock_summary(conn).await?;
                    sql_query(
                        "INSERT INTO aggregate_totals AS t (category_id, sum_hundredths, allocations)
                         SELECT a.category_id, SUM(a.hundredths), COUNT(*)
                         FROM aggregate_outbox o JOIN allocations a ON a.submission_id = o.submission_id
                         WHERE o.id = ANY($1) GROUP BY a.category_id
                         ON CONFLICT (category_id) DO UPDATE SET
                            sum_hundredths = t.sum_hundredths + EXCLUDED.sum_hundredths,
                            allocations = t.allocations + EXCLUDED.allocations",
                    )
                    .bind::<Array<BigInt>, _>(&ids)
                    .execute(conn)
                    .await?;
                    let folded = sql_query("DELETE FROM aggregate_outbox WHERE id = ANY($1)")
                        .bind::<Array<BigInt>, _>(&ids)
                        .execute(conn)
                        .await?;
                    sql_query(
                        "UPDATE aggregate_summary SET version = version + 1,
                            total_submissions = total_submissions + $1, updated_at = now()
                         WHERE id = 1",
                    )
                    .bind::<BigInt, _>(i64::try_from(folded).unwrap_or(i64::MAX))
                    .execute(conn)
                    .await?;
                    if !pause.is_zero() {
                        tracing::warn!(rows = folded, ?pause, "fold paused before commit (test hook)");
                        tokio::time::sleep(pause).await;
                    }
                    current_snapshot(conn).await.map(Some)
                }
            })
            .await?;
        Ok(snapshot)
    }

    async fn outbox_len(&self) -> Result<i64, StoreError> {
        let mut conn = self.conn().await?;
        let row: CountRow = sql_query("SELECT COUNT(*) AS n FROM aggregate_outbox")
            .get_result(&mut conn)
            .await?;
        Ok(row.n)
    }

    async fn mark_summary_stale(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        sql_query("UPDATE aggregate_summary SET stale = TRUE WHERE id = 1")
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    async fn rebuild_summary(&self) -> Result<Snapshot, StoreError> {
        self.mark_summary_stale().await?;
        let mut conn = self.conn().await?;
        let snapshot = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                lock_summary(conn).await?;
                recompute_folded(conn).await?;
                current_snapshot(conn).await
            })
            .await?;
        Ok(snapshot)
    }
}
