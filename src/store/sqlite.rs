//! SQLite store, the embedded default: diesel's SQLite connection behind diesel-async's
//! `SyncConnectionWrapper`, each unit of work run as one blocking task.
//!
//! SQLite has one writer at a time, so every write transaction starts `IMMEDIATE` (takes the
//! write lock up front, no upgrade deadlocks) and a fold needs no row locks: holding the write
//! lock already serialises it with submissions, other folds and rebuilds.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use diesel::{sql_query, Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::AsyncConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;
use uuid::Uuid;

use super::{
    attach_allocations, NewSubmission, Store, StoreError, StoredSubmission, SubmitOutcome, VoterRef,
};
use crate::domain::{Category, CategoryId, CategoryTotal, Snapshot, SnapshotSource};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// Applied to every connection: wait for the write lock instead of failing at once.
const CONNECTION_PRAGMAS: &str =
    "PRAGMA busy_timeout = 15000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

type Conn = SyncConnectionWrapper<SqliteConnection>;
type QueryResult<T> = Result<T, diesel::result::Error>;

pub struct SqliteStore {
    pool: Pool<Conn>,
    /// Writers of this process queue here instead of in SQLite's busy handler, which sleeps
    /// in growing steps and would add milliseconds to every contended write. Other processes
    /// on the same file still meet the busy timeout.
    write_lock: tokio::sync::Mutex<()>,
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
struct TextRow {
    #[diesel(sql_type = Text)]
    value: String,
}

#[derive(QueryableByName)]
struct HeadRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    voter_id: String,
    #[diesel(sql_type = Text)]
    created_at: String,
}

#[derive(QueryableByName)]
struct AllocationRow {
    #[diesel(sql_type = Text)]
    submission_id: String,
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
    #[diesel(sql_type = Text)]
    updated_at: String,
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
struct MaybeCountRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    n: Option<i64>,
}

/// Timestamps are stored as fixed-width RFC 3339 text, so text order is time order.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn now() -> String {
    timestamp(Utc::now())
}

fn corrupt(what: &str, value: &str) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(format!("bad {what} in database: {value:?}").into())
}

fn parse_time(value: &str) -> QueryResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| corrupt("timestamp", value))
}

fn parse_uuid(value: &str) -> QueryResult<Uuid> {
    Uuid::parse_str(value).map_err(|_| corrupt("uuid", value))
}

impl SqliteStore {
    pub async fn connect(
        path: &Path,
        pool_size: usize,
        fold_pause: Duration,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Connection(format!("{}: {e}", dir.display())))?;
        }
        let url = path.to_string_lossy().into_owned();
        let migrate_url = url.clone();
        tokio::task::spawn_blocking(move || migrate(&migrate_url))
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))??;

        let mut config = ManagerConfig::<Conn>::default();
        config.custom_setup = Box::new(|url| {
            let url = url.to_owned();
            async move {
                let mut conn = Conn::establish(&url).await?;
                conn.spawn_blocking(|c| c.batch_execute(CONNECTION_PRAGMAS))
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            }
            .boxed()
        });
        let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(Duration::from_secs(30)))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Connection(e.to_string()))?;
        Ok(SqliteStore {
            pool,
            write_lock: tokio::sync::Mutex::new(()),
            fold_pause,
        })
    }

    /// Runs `work` on a pooled connection in a blocking task.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> QueryResult<T> + Send + 'static,
    {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Connection(e.to_string()))?;
        Ok(conn.spawn_blocking(work).await?)
    }

    /// Like [`Self::run`], for work that writes.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> QueryResult<T> + Send + 'static,
    {
        let _turn = self.write_lock.lock().await;
        self.run(work).await
    }
}

fn migrate(url: &str) -> Result<(), StoreError> {
    let mut conn =
        SqliteConnection::establish(url).map_err(|e| StoreError::Connection(e.to_string()))?;
    // WAL lets readers go on while a writer commits; it is a property of the file.
    conn.batch_execute("PRAGMA journal_mode = WAL;")?;
    conn.batch_execute(CONNECTION_PRAGMAS)?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    tracing::info!(
        applied = applied.len(),
        path = url,
        "sqlite migrations up to date"
    );
    Ok(())
}

fn totals(conn: &mut SqliteConnection) -> QueryResult<Vec<CategoryTotal>> {
    let rows: Vec<TotalRow> =
        sql_query("SELECT category_id, sum_hundredths FROM aggregate_totals ORDER BY category_id")
            .load(conn)?;
    Ok(rows.into_iter().map(to_total).collect())
}

fn to_total(row: TotalRow) -> CategoryTotal {
    CategoryTotal {
        category_id: CategoryId(row.category_id),
        sum_hundredths: row.sum_hundredths,
    }
}

fn load_submissions(
    conn: &mut SqliteConnection,
    heads: Vec<HeadRow>,
) -> QueryResult<Vec<StoredSubmission>> {
    let mut parsed = Vec::with_capacity(heads.len());
    let mut rows = Vec::new();
    for head in heads {
        let allocations: Vec<AllocationRow> = sql_query(
            "SELECT submission_id, category_id, hundredths FROM allocations
             WHERE submission_id = ? ORDER BY category_id",
        )
        .bind::<Text, _>(&head.id)
        .load(conn)?;
        let id = parse_uuid(&head.id)?;
        for a in allocations {
            rows.push((parse_uuid(&a.submission_id)?, a.category_id, a.hundredths));
        }
        parsed.push((
            id,
            parse_uuid(&head.voter_id)?,
            parse_time(&head.created_at)?,
        ));
    }
    attach_allocations(parsed, rows)
        .map_err(|e| diesel::result::Error::DeserializationError(e.to_string().into()))
}

fn summary_row(conn: &mut SqliteConnection) -> QueryResult<Option<SummaryRow>> {
    let mut rows: Vec<SummaryRow> = sql_query(
        "SELECT version, total_submissions, updated_at, stale FROM aggregate_summary WHERE id = 1",
    )
    .load(conn)?;
    Ok(rows.pop())
}

fn current_snapshot(conn: &mut SqliteConnection) -> QueryResult<Snapshot> {
    let row = summary_row(conn)?.ok_or(diesel::result::Error::NotFound)?;
    snapshot_of(conn, row)
}

fn snapshot_of(conn: &mut SqliteConnection, row: SummaryRow) -> QueryResult<Snapshot> {
    Ok(Snapshot {
        version: row.version,
        total_submissions: row.total_submissions,
        updated_at: parse_time(&row.updated_at)?,
        totals: totals(conn)?,
        source: SnapshotSource::Summary,
    })
}

/// Makes sure the summary row exists; when it was missing, fills it from the folded submissions.
/// Call inside an IMMEDIATE transaction.
fn ensure_summary(conn: &mut SqliteConnection) -> QueryResult<()> {
    if summary_row(conn)?.is_none() {
        sql_query(
            "INSERT INTO aggregate_summary (id, version, total_submissions, updated_at, stale)
             VALUES (1, 0, 0, ?, 0)",
        )
        .bind::<Text, _>(now())
        .execute(conn)?;
        recompute_folded(conn)?;
    }
    Ok(())
}

/// Rewrites the summary from every submission that has left the outbox.
fn recompute_folded(conn: &mut SqliteConnection) -> QueryResult<()> {
    sql_query("DELETE FROM aggregate_totals").execute(conn)?;
    sql_query(
        "INSERT INTO aggregate_totals (category_id, sum_hundredths, allocations)
         SELECT a.category_id, SUM(a.hundredths), COUNT(*) FROM allocations a
         WHERE NOT EXISTS (SELECT 1 FROM aggregate_outbox o WHERE o.submission_id = a.submission_id)
         GROUP BY a.category_id",
    )
    .execute(conn)?;
    sql_query(
        "UPDATE aggregate_summary SET
            version = version + 1,
            total_submissions = (SELECT COUNT(*) FROM submissions s WHERE NOT EXISTS
                (SELECT 1 FROM aggregate_outbox o WHERE o.submission_id = s.id)),
            updated_at = ?,
            stale = 0
         WHERE id = 1",
    )
    .bind::<Text, _>(now())
    .execute(conn)?;
    Ok(())
}

/// Why a submission transaction rolled back.
#[derive(Debug, thiserror::Error)]
enum SubmitAbort {
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("idempotency key already used")]
    KeyTaken,
}

fn insert_submission(conn: &mut SqliteConnection, new: &NewSubmission) -> Result<(), SubmitAbort> {
    let created_at = timestamp(new.created_at);
    if let VoterRef::New { id, token_hash } = &new.voter {
        sql_query("INSERT INTO voters (id, token_hash, created_at) VALUES (?, ?, ?)")
            .bind::<Text, _>(id.to_string())
            .bind::<Text, _>(token_hash)
            .bind::<Text, _>(&created_at)
            .execute(conn)?;
    }
    let inserted = sql_query(
        "INSERT INTO submissions (id, voter_id, created_at, idempotency_key)
         VALUES (?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind::<Text, _>(new.id.to_string())
    .bind::<Text, _>(new.voter_id().to_string())
    .bind::<Text, _>(&created_at)
    .bind::<Nullable<Text>, _>(new.idempotency_key.as_deref())
    .execute(conn)?;
    if inserted == 0 {
        return Err(SubmitAbort::KeyTaken);
    }
    for (category, value) in new.allocation.entries() {
        sql_query(
            "INSERT INTO allocations (submission_id, category_id, hundredths) VALUES (?, ?, ?)",
        )
        .bind::<Text, _>(new.id.to_string())
        .bind::<Integer, _>(category.0)
        .bind::<Integer, _>(i32::from(value.raw()))
        .execute(conn)?;
    }
    sql_query("INSERT INTO aggregate_outbox (submission_id, created_at) VALUES (?, ?)")
        .bind::<Text, _>(new.id.to_string())
        .bind::<Text, _>(&created_at)
        .execute(conn)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| c.batch_execute("SELECT 1")).await
    }

    async fn categories(&self) -> Result<Vec<Category>, StoreError> {
        let rows: Vec<CategoryRow> = self
            .run(|c| {
                sql_query(
                    "SELECT id, slug, name, description, color, display_order, active
                     FROM categories ORDER BY display_order, id",
                )
                .load(c)
            })
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
        let token_hash = token_hash.to_owned();
        self.run(move |c| {
            let mut rows: Vec<TextRow> =
                sql_query("SELECT id AS value FROM voters WHERE token_hash = ?")
                    .bind::<Text, _>(token_hash)
                    .load(c)?;
            rows.pop().map(|r| parse_uuid(&r.value)).transpose()
        })
        .await
    }

    async fn submit(&self, new: NewSubmission) -> Result<SubmitOutcome, StoreError> {
        self.write(move |c| {
            match c.immediate_transaction(|c| insert_submission(c, &new)) {
                Ok(()) => Ok(SubmitOutcome::Created(StoredSubmission {
                    id: new.id,
                    voter_id: new.voter_id(),
                    created_at: new.created_at,
                    allocations: new.allocation.entries().to_vec(),
                })),
                Err(SubmitAbort::KeyTaken) => {
                    let heads: Vec<HeadRow> = sql_query(
                        "SELECT id, voter_id, created_at FROM submissions WHERE idempotency_key = ?",
                    )
                    .bind::<Text, _>(new.idempotency_key.unwrap_or_default())
                    .load(c)?;
                    load_submissions(c, heads)?
                        .pop()
                        .map(SubmitOutcome::Replayed)
                        .ok_or(diesel::result::Error::NotFound)
                }
                Err(SubmitAbort::Query(e)) => Err(e),
            }
        })
        .await
    }

    async fn submission(&self, id: Uuid) -> Result<Option<StoredSubmission>, StoreError> {
        self.run(move |c| {
            let heads: Vec<HeadRow> =
                sql_query("SELECT id, voter_id, created_at FROM submissions WHERE id = ?")
                    .bind::<Text, _>(id.to_string())
                    .load(c)?;
            Ok(load_submissions(c, heads)?.pop())
        })
        .await
    }

    async fn submissions_of_voter(
        &self,
        voter_id: Uuid,
        limit: i64,
    ) -> Result<Vec<StoredSubmission>, StoreError> {
        self.run(move |c| {
            let heads: Vec<HeadRow> = sql_query(
                "SELECT id, voter_id, created_at FROM submissions WHERE voter_id = ?
                 ORDER BY created_at DESC, id DESC LIMIT ?",
            )
            .bind::<Text, _>(voter_id.to_string())
            .bind::<BigInt, _>(limit)
            .load(c)?;
            load_submissions(c, heads)
        })
        .await
    }

    async fn summary_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        // A read transaction in WAL mode sees one consistent state of the file.
        self.run(|c| {
            c.transaction(|c| match summary_row(c)? {
                Some(row) if !row.stale => snapshot_of(c, row).map(Some),
                _ => Ok(None),
            })
        })
        .await
    }

    async fn live_snapshot(&self) -> Result<Snapshot, StoreError> {
        self.run(|c| {
            c.transaction(|c| {
                let rows: Vec<TotalRow> = sql_query(
                    "SELECT category_id, SUM(hundredths) AS sum_hundredths
                     FROM allocations GROUP BY category_id ORDER BY category_id",
                )
                .load(c)?;
                let count: CountRow =
                    sql_query("SELECT COUNT(*) AS n FROM submissions").get_result(c)?;
                let version: MaybeCountRow =
                    sql_query("SELECT (SELECT version FROM aggregate_summary WHERE id = 1) AS n")
                        .get_result(c)?;
                Ok(Snapshot {
                    version: version.n.unwrap_or(0),
                    total_submissions: count.n,
                    updated_at: Utc::now(),
                    totals: rows.into_iter().map(to_total).collect(),
                    source: SnapshotSource::Live,
                })
            })
        })
        .await
    }

    async fn fold_outbox(&self, batch_size: i64) -> Result<Option<Snapshot>, StoreError> {
        let pause = self.fold_pause;
        self.write(move |c| {
            c.immediate_transaction(|c| {
                // Writers are serialised by the write lock, so outbox ids below the batch's
                // last id are exactly the batch.
                let last: MaybeCountRow = sql_query(
                    "SELECT MAX(id) AS n FROM
                        (SELECT id FROM aggregate_outbox ORDER BY id LIMIT ?)",
                )
                .bind::<BigInt, _>(batch_size)
                .get_result(c)?;
                let Some(last) = last.n else {
                    return Ok(None);
                };
                ensure_summary(c)?;
                sql_query(
                    "INSERT INTO aggregate_totals AS t (category_id, sum_hundredths, allocations)
                     SELECT a.category_id, SUM(a.hundredths), COUNT(*)
                     FROM aggregate_outbox o JOIN allocations a ON a.submission_id = o.submission_id
                     WHERE o.id <= ? GROUP BY a.category_id
                     ON CONFLICT (category_id) DO UPDATE SET
                        sum_hundredths = t.sum_hundredths + excluded.sum_hundredths,
                        allocations = t.allocations + excluded.allocations",
                )
                .bind::<BigInt, _>(last)
                .execute(c)?;
                let folded = sql_query("DELETE FROM aggregate_outbox WHERE id <= ?")
                    .bind::<BigInt, _>(last)
                    .execute(c)?;
                sql_query(
                    "UPDATE aggregate_summary SET version = version + 1,
                        total_submissions = total_submissions + ?, updated_at = ?
                     WHERE id = 1",
                )
                .bind::<BigInt, _>(i64::try_from(folded).unwrap_or(i64::MAX))
                .bind::<Text, _>(now())
                .execute(c)?;
                if !pause.is_zero() {
                    tracing::warn!(
                        rows = folded,
                        ?pause,
                        "fold paused before commit (test hook)"
                    );
                    std::thread::sleep(pause);
                }
                current_snapshot(c).map(Some)
            })
        })
        .await
    }

    async fn outbox_len(&self) -> Result<i64, StoreError> {
        self.run(|c| {
            sql_query("SELECT COUNT(*) AS n FROM aggregate_outbox")
                .get_result::<CountRow>(c)
                .map(|r| r.n)
        })
        .await
    }

    async fn mark_summary_stale(&self) -> Result<(), StoreError> {
        self.write(|c| {
            sql_query("UPDATE aggregate_summary SET stale = 1 WHERE id = 1")
                .execute(c)
                .map(drop)
        })
        .await
    }

    async fn rebuild_summary(&self) -> Result<Snapshot, StoreError> {
        self.mark_summary_stale().await?;
        self.write(|c| {
            c.immediate_transaction(|c| {
                ensure_summary(c)?;
                recompute_folded(c)?;
                current_snapshot(c)
            })
        })
        .await
    }
}
