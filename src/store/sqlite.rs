//! SQLite store, the embedded default: synchronous diesel connections in a deadpool pool, each
//! unit of work run as one blocking task.
//!
//! SQLite has one writer at a time, so every write transaction starts `IMMEDIATE` (takes the
//! write lock up front, no upgrade deadlocks) and a fold needs no row locks: holding the write
//! lock already serialises it with submissions, other folds and rebuilds.

mod checkpoints;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel::sqlite::Sqlite;
use diesel::{Connection, OptionalExtension, QueryResult, RunQueryDsl, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use uuid::Uuid;

use super::queries::{self, DerivedRows, KeyedRow, Statement, SubmissionRow, SummaryRow};
use super::sql_types::{self, Bind};
use super::{
    Fold, FoldBatch, KeyScope, NewSubmission, RebuildProgress, RebuildStep, SeedBatch, Store,
    StoreError, StoreStats, StoredSubmission, SubmitOutcome, SummaryAudit,
};
use crate::config::SqliteSync;
use crate::domain::{
    Category, DetailedSnapshot, FoldDelta, Resolution, Snapshot, TrendRange, TrendRows,
};
use crate::metrics::PoolUsage;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// Raw SQL (PRAGMAs have no DSL), applied to every connection: wait for the write lock instead
/// of failing at once. Each connection also sets [`WAL_CHECKPOINT_PAGES`] (see `open`).
const CONNECTION_PRAGMAS: &str = "PRAGMA busy_timeout = 15000; PRAGMA foreign_keys = ON;";
/// How long the WAL grows (in 4 KiB pages: 64 MiB) before a commit copies it into the database
/// file. SQLite's default, 1,000 pages, meant a checkpoint (its writes and a sync of the file)
/// about 20 times a second under sustained writes, each run by the committing connection
/// while its callers wait, and each copying the same hot pages (the indexes' right edges, the
/// summary's rows) again. At 16,384 group commit in process wrote 6,318-7,035 submissions/s
/// against 4,526-4,713/s (README, Benchmarks). The cost: the WAL file keeps up to 64 MiB on
/// disk, and recovery after a crash replays up to that much. Most of the copying is now done
/// beside the writer ([`checkpoints`]); this threshold is what still starts the WAL over.
const WAL_CHECKPOINT_PAGES: i32 = 16_384;

/// By default (`FULL`) the WAL is synced at every commit, so a submission the API acknowledged
/// survives a power loss; `NORMAL` only keeps the file uncorrupted.
fn synchronous_pragma(sync: SqliteSync) -> &'static str {
    match sync {
        SqliteSync::Full => "PRAGMA synchronous = FULL;",
        SqliteSync::Normal => "PRAGMA synchronous = NORMAL;",
    }
}
/// Raw SQL like the above. WAL lets readers go on while a writer commits; it is a property of
/// the file, so setting it once per process is enough.
const WAL: &str = "PRAGMA journal_mode = WAL;";
/// A fold binds one parameter per outbox row, and SQLite takes at most 32766.
const MAX_FOLD_ROWS: i64 = 10_000;

pub struct SqliteStore {
    pool: deadpool::managed::Pool<Manager>,
    /// The one connection this process writes with. Writers of this process queue for it
    /// instead of in SQLite's busy handler, which sleeps in growing steps and would add
    /// milliseconds to every contended write; other processes on the same file still meet
    /// the busy timeout. One connection also keeps its cached pages: SQLite drops all of a
    /// connection's pages when another connection has written since its last transaction,
    /// so writes taking turns on pooled connections read every page they touch again (about
    /// 20 reads from the file a submission, a tenth of its instructions at a low rate).
    writer: deadpool::managed::Pool<Manager>,
    /// Copies the WAL into the file beside the writer rather than in its commits.
    checkpoints: checkpoints::Checkpoints,
}

/// Opens connections for the pool, each in a blocking task.
#[derive(Clone)]
struct Manager {
    url: String,
    sync: SqliteSync,
}

impl deadpool::managed::Manager for Manager {
    type Type = SqliteConnection;
    type Error = StoreError;

    async fn create(&self) -> Result<SqliteConnection, StoreError> {
        let (url, sync) = (self.url.clone(), self.sync);
        tokio::task::spawn_blocking(move || open(&url, sync))
            .await
            .map_err(StoreError::Task)?
    }

    async fn recycle(
        &self,
        conn: &mut SqliteConnection,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<StoreError> {
        // A unit of work that panicked can leave its transaction open; such a connection is
        // dropped rather than handed to the next caller in the middle of it.
        match AnsiTransactionManager::transaction_manager_status_mut(conn).transaction_depth() {
            Ok(None) => Ok(()),
            _ => Err(deadpool::managed::RecycleError::message(
                "connection was left inside a transaction",
            )),
        }
    }
}

fn open(url: &str, sync: SqliteSync) -> Result<SqliteConnection, StoreError> {
    let mut conn = SqliteConnection::establish(url).map_err(StoreError::Connect)?;
    conn.batch_execute(CONNECTION_PRAGMAS)?;
    conn.batch_execute(&format!(
        "PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES};"
    ))?;
    conn.batch_execute(synchronous_pragma(sync))?;
    Ok(conn)
}

fn create_parent_dir(path: &Path) -> Result<(), StoreError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
            path: dir.to_owned(),
            source,
        }),
        None => Ok(()),
    }
}

#[diesel::declare_sql_function]
extern "SQL" {
    /// Hex SHA-256 of a text's UTF-8 bytes, as PostgreSQL's `encode(sha256(…), 'hex')`.
    fn sha256_hex(text: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// What SQLite lacks and the migrations use: `2026-11-27-000002_idempotency` hashes the
/// idempotency keys stored before it with `sha256_hex`.
fn register_migration_functions(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    use sha2::{Digest, Sha256};
    sha256_hex_utils::register_impl(conn, |text: String| {
        hex::encode(Sha256::digest(text.as_bytes()))
    })?;
    Ok(())
}

pub async fn migrate(path: &Path) -> Result<usize, StoreError> {
    create_parent_dir(path)?;
    let url = path.to_string_lossy().into_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = open(&url, SqliteSync::Full)?;
        conn.batch_execute(WAL)?;
        // Raw SQL like the others. SQLite changes a table's constraints only by rebuilding it,
        // and dropping the old table with foreign keys on would orphan every row that
        // references it; the pragma is a no-op inside the transaction each migration runs in,
        // so it is set here. A migration that rebuilds a table checks the references itself.
        conn.batch_execute("PRAGMA foreign_keys = OFF;")?;
        register_migration_functions(&mut conn)?;
        conn.run_pending_migrations(MIGRATIONS)
            .map(|applied| applied.len())
            .map_err(StoreError::Migration)
    })
    .await
    .map_err(StoreError::Task)?
}

impl SqliteStore {
    pub async fn connect(
        path: &Path,
        pool_size: usize,
        sync: SqliteSync,
    ) -> Result<Self, StoreError> {
        create_parent_dir(path)?;
        let manager = Manager {
            url: path.to_string_lossy().into_owned(),
            sync,
        };
        let pool = |manager, size: usize| {
            deadpool::managed::Pool::builder(manager)
                .max_size(size)
                .wait_timeout(Some(Duration::from_secs(30)))
                .runtime(deadpool::Runtime::Tokio1)
                .build()
                .map_err(|e| StoreError::Pool(Box::new(e)))
        };
        let url = manager.url.clone();
        // Opens the file now, so that a bad path fails the start. The checkpoint thread's
        // connection sets WAL itself: a connection that has not yet read the file in WAL mode
        // does nothing on a checkpoint.
        let checkpointing = tokio::task::spawn_blocking(move || {
            let mut conn = open(&url, sync)?;
            conn.batch_execute(WAL)?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(StoreError::Task)??;
        Ok(SqliteStore {
            pool: pool(manager.clone(), pool_size.max(1))?,
            writer: pool(manager, 1)?,
            checkpoints: checkpoints::Checkpoints::start(checkpointing)?,
        })
    }

    /// Runs `work` on a pooled connection in a blocking task.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<T, StoreError> + Send + 'static,
    {
        run_on(&self.pool, work).await
    }

    /// Like [`Self::run`], for work that writes: on the writer's connection, in turn.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<T, StoreError> + Send + 'static,
    {
        let result = run_on(&self.writer, work).await;
        self.checkpoints.wrote();
        result
    }
}

/// Runs `work` on a connection of `pool` in a blocking task.
async fn run_on<T, F>(pool: &deadpool::managed::Pool<Manager>, work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut SqliteConnection) -> Result<T, StoreError> + Send + 'static,
{
    let mut conn = pool
        .get()
        .await
        .map_err(|e| StoreError::from_pool(e, |e| e))?;
    tokio::task::spawn_blocking(move || work(&mut conn))
        .await
        .map_err(StoreError::Task)?
}

/// Runs one of the shared statements; returns the number of rows it wrote.
fn exec(conn: &mut SqliteConnection, statement: impl Statement) -> diesel::QueryResult<usize> {
    ExecuteDsl::<SqliteConnection, Sqlite>::execute(statement, conn)
}

fn load_submissions(
    conn: &mut SqliteConnection,
    heads: Vec<SubmissionRow>,
) -> Result<Vec<StoredSubmission>, StoreError> {
    let ids = heads.iter().map(|head| Bind(head.id())).collect();
    let rows = queries::allocations_of::<Sqlite>(ids).load(conn)?;
    queries::attach_allocations(heads, rows)
}

fn snapshot_of(conn: &mut SqliteConnection, row: SummaryRow) -> Result<Snapshot, StoreError> {
    let totals = queries::summary_totals::<Sqlite>().load(conn)?;
    Ok(queries::summary_snapshot(row, totals))
}

/// The summary a writer just wrote while holding the write lock.
fn written_snapshot(conn: &mut SqliteConnection) -> Result<Snapshot, StoreError> {
    let row = queries::summary::<Sqlite>().first(conn).optional()?;
    let row =
        row.ok_or_else(|| StoreError::Corrupt("summary row missing under the write lock".into()))?;
    snapshot_of(conn, row)
}

/// Makes sure the summary row exists; when it was missing, fills it from the folded submissions.
/// Call inside an IMMEDIATE transaction.
fn ensure_summary(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    if exec(conn, queries::create_summary(Utc::now()))? == 1 {
        recompute_folded(conn, &super::no_progress())?;
    }
    Ok(())
}

/// Rewrites the summary from every submission that has left the outbox.
fn recompute_folded(
    conn: &mut SqliteConnection,
    progress: &RebuildProgress,
) -> Result<(), StoreError> {
    progress(RebuildStep::Sums);
    exec(conn, queries::clear_totals())?;
    exec(conn, queries::insert_folded_totals())?;
    progress(RebuildStep::ValueCounts);
    exec(conn, queries::clear_distribution())?;
    exec(conn, queries::insert_folded_distribution())?;
    let (minutes, rolled_up) = queries::trend_rebuild(trend_bucket);
    progress(RebuildStep::TrendMinutes);
    for statement in minutes {
        diesel::sql_query(statement).execute(conn)?;
    }
    progress(RebuildStep::TrendRollUp);
    for statement in rolled_up {
        diesel::sql_query(statement).execute(conn)?;
    }
    progress(RebuildStep::Summary);
    let total = queries::folded_submission_count().get_result(conn)?;
    exec(conn, queries::set_summary(total, Utc::now()))?;
    Ok(())
}

/// SQLite's start of a trend bucket (see [`queries::TrendBucketSql`]): times are stored as
/// fixed-width RFC 3339 text in UTC, so the start of a minute, hour or day is a prefix of it
/// completed with zeros, in the same format.
fn trend_bucket(resolution: &str, time: &str) -> String {
    format!(
        "CASE {resolution} \
           WHEN 'minute' THEN substr({time}, 1, 16) || ':00.000000Z' \
           WHEN 'hour' THEN substr({time}, 1, 13) || ':00:00.000000Z' \
           ELSE substr({time}, 1, 10) || 'T00:00:00.000000Z' END"
    )
}

/// Adds what the submissions of the outbox rows up to `last_id` add to the summary's tables:
/// their allocations read once, added up here, written with an upsert per row.
fn add_to_summary(conn: &mut SqliteConnection, last_id: i64) -> Result<(), StoreError> {
    let rows: Vec<queries::FoldRow> = queries::fold_rows_through(last_id).load(conn)?;
    let adds = queries::FoldInserts::from(FoldDelta::of(rows.into_iter().map(Into::into)));
    adds.totals.iter().try_for_each(|row| upsert(conn, row))?;
    adds.values.iter().try_for_each(|row| upsert(conn, row))?;
    adds.trend_counts
        .iter()
        .try_for_each(|row| upsert(conn, row))?;
    adds.trend_sums
        .iter()
        .try_for_each(|row| upsert(conn, row))?;
    Ok(())
}

fn upsert<R: AddedRow>(conn: &mut SqliteConnection, row: &R) -> QueryResult<()> {
    SummaryUpsert(row).execute(conn).map(drop)
}

/// One row a fold adds to a summary table: inserted, or added to the row with its key.
///
/// A query type of its own, because diesel never keeps an `ON CONFLICT … DO UPDATE` prepared
/// (neither as its DSL nor as `sql_query`): a fold prepared its few dozen statements again
/// every time, a third of the instructions of a submission at a low rate. Its text is fixed
/// per row type, so it is kept by type: diesel neither writes the text again nor hashes it to
/// find the prepared statement, which cost a submission as much again as preparing had.
struct SummaryUpsert<'a, R>(&'a R);

/// A row type of a summary table, whose upsert [`added_row!`] writes.
trait AddedRow: 'static {
    fn walk_upsert<'b>(&'b self, out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()>;
}

impl<R: AddedRow> QueryId for SummaryUpsert<'_, R> {
    type QueryId = R;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<R: AddedRow> QueryFragment<Sqlite> for SummaryUpsert<'_, R> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.0.walk_upsert(out)
    }
}

impl<R: AddedRow> RunQueryDsl<SqliteConnection> for SummaryUpsert<'_, R> {}

/// Makes `$row` an [`AddedRow`] of `$table`: `INSERT INTO $table (keys…, sums…) VALUES (…)
/// ON CONFLICT (keys…) DO UPDATE SET sum = sum + excluded.sum, …`, binding the field of the
/// row that each column is named after; the same shape as `queries::upsert_adding!`, one row
/// at a time. The text is put together at compile time.
macro_rules! added_row {
    ($row:ty => $table:ident
        ($key0:ident: $key0_ty:ty $(, $key:ident: $key_ty:ty)*)
        += ($sum0:ident: $sum0_ty:ty $(, $sum:ident: $sum_ty:ty)*)) => {
        impl AddedRow for $row {
            fn walk_upsert<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
                out.push_sql(concat!(
                    "INSERT INTO ", stringify!($table), " (", stringify!($key0),
                    $(", ", stringify!($key),)* ", ", stringify!($sum0), $(", ", stringify!($sum),)*
                    ") VALUES ("
                ));
                out.push_bind_param::<$key0_ty, _>(&self.$key0)?;
                $(
                    out.push_sql(", ");
                    out.push_bind_param::<$key_ty, _>(&self.$key)?;
                )*
                out.push_sql(", ");
                out.push_bind_param::<$sum0_ty, _>(&self.$sum0)?;
                $(
                    out.push_sql(", ");
                    out.push_bind_param::<$sum_ty, _>(&self.$sum)?;
                )*
                out.push_sql(concat!(
                    ") ON CONFLICT (", stringify!($key0), $(", ", stringify!($key),)*
                    ") DO UPDATE SET ",
                    stringify!($sum0), " = ", stringify!($sum0), " + excluded.", stringify!($sum0),
                    $(", ", stringify!($sum), " = ", stringify!($sum), " + excluded.", stringify!($sum),)*
                ));
                Ok(())
            }
        }
    };
}

added_row!(queries::TotalsInsert => aggregate_totals
    (category_id: Integer) += (sum_hundredths: BigInt, allocations: BigInt, sum_squares: BigInt));
added_row!(queries::ValueInsert => aggregate_distribution
    (category_id: Integer, hundredths: Integer) += (submissions: BigInt));
added_row!(queries::TrendCountInsert => aggregate_trend
    (resolution: Text, bucket_start: sql_types::Timestamptz) += (submissions: BigInt));
added_row!(queries::TrendSumInsert => aggregate_trend_totals
    (resolution: Text, bucket_start: sql_types::Timestamptz, category_id: Integer)
        += (sum_hundredths: BigInt));

/// The summary's distributions, squares and trend buckets as stored, for an audit.
fn stored_derived(conn: &mut SqliteConnection) -> Result<DerivedRows, StoreError> {
    let [counts, sums] = queries::STORED_TREND;
    Ok(DerivedRows {
        counts: queries::summary_distribution().load(conn)?,
        squares: queries::summary_squares().load(conn)?,
        trend_counts: diesel::sql_query(counts).load(conn)?,
        trend_sums: diesel::sql_query(sums).load(conn)?,
    })
}

/// What [`stored_derived`] must hold, computed over every folded submission.
fn folded_derived(conn: &mut SqliteConnection) -> Result<DerivedRows, StoreError> {
    let [counts, sums] =
        queries::trend_selects(trend_bucket, &queries::ALL_FOLDED, &Resolution::ALL);
    Ok(DerivedRows {
        counts: queries::folded_distribution().load(conn)?,
        squares: queries::folded_squares().load(conn)?,
        trend_counts: diesel::sql_query(counts).load(conn)?,
        trend_sums: diesel::sql_query(sums).load(conn)?,
    })
}

fn details_of(
    conn: &mut SqliteConnection,
    snapshot: Snapshot,
) -> Result<DetailedSnapshot, StoreError> {
    let squares = queries::summary_squares().load(conn)?;
    let counts = queries::summary_distribution().load(conn)?;
    Ok(queries::detailed(snapshot, squares, counts))
}

/// The trend's rows, read in one transaction with the summary's version.
fn trend_of(conn: &mut SqliteConnection, range: TrendRange) -> Result<TrendRows, StoreError> {
    let version = queries::summary_version().first(conn).optional()?;
    let mut before = (Vec::new(), Vec::new());
    for (resolution, from, until) in range.before() {
        let from = Bind(from.unwrap_or_else(queries::trend_epoch));
        let counts = queries::trend_counts(resolution.name(), from, Bind(until))
            .load::<(chrono::DateTime<Utc>, i64)>(conn)?;
        before.0.extend(counts.into_iter().map(|(_, n)| n));
        let sums = queries::trend_sums(resolution.name(), from, Bind(until)).load::<(
            chrono::DateTime<Utc>,
            i32,
            i64,
        )>(conn)?;
        before.1.extend(sums.into_iter().map(|(_, c, s)| (c, s)));
    }
    let name = range.resolution.name();
    let (from, until) = (Bind(range.from), Bind(range.until));
    let counts = queries::trend_counts(name, from, until).load(conn)?;
    let sums = queries::trend_sums(name, from, until).load(conn)?;
    Ok(queries::trend_rows(
        range,
        version.unwrap_or(0),
        before,
        counts,
        sums,
    ))
}

/// Raw SQL up to its parameter (see [`InsertFromJson`]): the allocations of a whole batch in
/// one statement, from one JSON array of `[submission id, category id, hundredths]` (diesel
/// writes a multi-row insert on SQLite as one statement per row).
const INSERT_ALLOCATIONS: &str =
    "INSERT INTO allocations (submission_id, category_id, hundredths) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') \
     FROM json_each(";
/// Raw SQL, as above: the outbox rows of a batch, from `[submission id, created at]`, in the
/// batch's order.
const INSERT_OUTBOX: &str = "INSERT INTO aggregate_outbox (submission_id, created_at) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(";

/// A batch's submission once written: with its voter known, that voter's id, and whether it
/// was written (`false`: its idempotency key is taken in its scope, and nothing of it was
/// written), or why it could not be (its voter token is unknown).
type Written = Result<(NewSubmission, Uuid, bool), StoreError>;

/// Writes a batch of submissions in the caller's transaction.
///
/// Each submission row goes in by itself, since its key may be taken; a presented token's
/// voter is looked up first (on this connection: a lookup on the read pool would cost a hop to
/// another thread of its own), and a new voter goes in before its submission (which refers to
/// it) and out again when its key is taken. Then the allocations and outbox rows of every
/// written submission go in with one statement each. Any other failure fails the whole batch
/// (the caller then writes its submissions one by one).
fn write_batch(
    conn: &mut SqliteConnection,
    batch: Vec<NewSubmission>,
) -> QueryResult<Vec<Written>> {
    let mut written = Vec::with_capacity(batch.len());
    let mut allocations = Vec::new();
    let mut outbox = Vec::new();
    for new in batch {
        let found = match new.presented_token() {
            Some(token_hash) => queries::voter_by_token_hash(token_hash.to_owned())
                .first(conn)
                .optional()?,
            None => None,
        };
        let (new, voter_id) = match new.with_voter(found) {
            Ok(known) => known,
            Err(unknown) => {
                written.push(Err(unknown));
                continue;
            }
        };
        let voter = queries::new_voter(&new);
        if let Some((id, token_hash)) = voter {
            exec(conn, queries::insert_voter(id, token_hash, new.created_at))?;
        }
        let inserted = exec(conn, queries::insert_submission(&new, voter_id))? == 1;
        if inserted {
            let id = sql_types::sqlite_uuid(&new.id);
            for (category, value) in new.allocation.entries() {
                allocations.push((id.clone(), category.0, value.raw()));
            }
            outbox.push((id, sql_types::sqlite_time(&new.created_at)));
        } else if let Some((id, _)) = voter {
            exec(conn, queries::delete_voter(id))?;
        }
        written.push(Ok((new, voter_id, inserted)));
    }
    if !outbox.is_empty() {
        for (before_rows, rows) in [
            (INSERT_ALLOCATIONS, json_rows(&allocations)?),
            (INSERT_OUTBOX, json_rows(&outbox)?),
        ] {
            InsertFromJson {
                before_rows,
                rows: &rows,
            }
            .execute(conn)?;
        }
    }
    Ok(written)
}

fn json_rows(rows: &impl serde::Serialize) -> QueryResult<String> {
    serde_json::to_string(rows).map_err(|e| diesel::result::Error::SerializationError(e.into()))
}

/// `INSERT … FROM json_each(?)` with a batch's rows as one JSON array: `before_rows` is the
/// text up to the parameter. A query type of its own so that each connection keeps it
/// prepared, by its text, as diesel never does a `sql_query`: every batch prepared both again.
struct InsertFromJson<'a> {
    before_rows: &'static str,
    rows: &'a str,
}

impl QueryId for InsertFromJson<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Sqlite> for InsertFromJson<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql(self.before_rows);
        out.push_bind_param::<Text, _>(self.rows)?;
        out.push_sql(")");
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for InsertFromJson<'_> {}

/// What holds the idempotency key of `new`, which wrote nothing because the key is taken.
fn replay(conn: &mut SqliteConnection, new: &NewSubmission) -> Result<SubmitOutcome, StoreError> {
    let (scope, key_hash) = new.key_lookup().ok_or_else(queries::key_vanished)?;
    let row: Option<KeyedRow> = match scope {
        KeyScope::Voter(voter) => {
            queries::keyed_submission_of_voter::<Sqlite>(voter, key_hash).first(conn)
        }
        KeyScope::NewVoter => {
            queries::keyed_submission_of_new_voter::<Sqlite>(key_hash).first(conn)
        }
    }
    .optional()?;
    let (head, binding) = row.ok_or_else(queries::key_vanished)?.split();
    let found = load_submissions(conn, vec![head])?.pop();
    queries::replayed(found, binding)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| Ok(exec(c, queries::ping()).map(drop)?)).await
    }

    async fn categories(&self) -> Result<Vec<Category>, StoreError> {
        let rows = self
            .run(|c| Ok(queries::all_categories::<Sqlite>().load(c)?))
            .await?;
        Ok(rows.into_iter().map(Category::from).collect())
    }

    async fn voter_by_token_hash(&self, token_hash: &str) -> Result<Option<Uuid>, StoreError> {
        let query = queries::voter_by_token_hash(token_hash.to_owned());
        self.run(move |c| Ok(query.first(c).optional()?)).await
    }

    async fn submit_batch(
        &self,
        batch: Vec<NewSubmission>,
    ) -> Result<Vec<Result<SubmitOutcome, StoreError>>, StoreError> {
        self.write(move |c| {
            // One write transaction, so one commit (and one sync under `synchronous=FULL`) for
            // the batch.
            let written = c.immediate_transaction(|c| write_batch(c, batch))?;
            // Under the write lock still: the rows holding the keys cannot change meanwhile.
            Ok(written
                .into_iter()
                .map(|written| match written? {
                    (new, voter_id, true) => Ok(queries::created(new, voter_id)),
                    (new, _, false) => replay(c, &new),
                })
                .collect())
        })
        .await
    }

    async fn submission(&self, id: Uuid) -> Result<Option<StoredSubmission>, StoreError> {
        self.run(move |c| {
            let heads = queries::submission_by_id::<Sqlite>(id).load(c)?;
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
            let heads = queries::submissions_of_voter::<Sqlite>(voter_id, limit).load(c)?;
            load_submissions(c, heads)
        })
        .await
    }

    async fn summary_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        // A read transaction in WAL mode sees one consistent state of the file.
        self.run(|c| {
            c.transaction(
                |c| match queries::summary::<Sqlite>().first(c).optional()? {
                    Some(row) if !row.is_stale() => snapshot_of(c, row).map(Some),
                    _ => Ok(None),
                },
            )
        })
        .await
    }

    async fn live_snapshot(&self) -> Result<Snapshot, StoreError> {
        self.run(|c| {
            c.transaction(|c| {
                let totals = queries::live_totals().load(c)?;
                let count = queries::submission_count().get_result(c)?;
                let identity = queries::summary_identity().first(c).optional()?;
                Ok(queries::live_snapshot(identity, count, totals))
            })
        })
        .await
    }

    async fn summary_details(&self) -> Result<Option<DetailedSnapshot>, StoreError> {
        self.run(|c| {
            c.transaction(
                |c| match queries::summary::<Sqlite>().first(c).optional()? {
                    Some(row) if !row.is_stale() => {
                        let snapshot = snapshot_of(c, row)?;
                        details_of(c, snapshot).map(Some)
                    }
                    _ => Ok(None),
                },
            )
        })
        .await
    }

    async fn live_details(&self) -> Result<DetailedSnapshot, StoreError> {
        self.run(|c| {
            c.transaction(|c| {
                let totals = queries::live_totals().load(c)?;
                let count = queries::submission_count().get_result(c)?;
                let identity = queries::summary_identity().first(c).optional()?;
                let squares = queries::live_squares().load(c)?;
                let counts = queries::live_distribution().load(c)?;
                let snapshot = queries::live_snapshot(identity, count, totals);
                Ok(queries::detailed(snapshot, squares, counts))
            })
        })
        .await
    }

    async fn trend_first(
        &self,
        resolution: Resolution,
    ) -> Result<Option<chrono::DateTime<Utc>>, StoreError> {
        self.run(move |c| Ok(queries::trend_first(resolution.name()).get_result(c)?))
            .await
    }

    async fn trend(&self, range: TrendRange) -> Result<TrendRows, StoreError> {
        self.run(move |c| c.transaction(|c| trend_of(c, range)))
            .await
    }

    async fn fold_outbox(&self, batch: FoldBatch) -> Result<Option<Fold>, StoreError> {
        self.write(move |c| {
            c.immediate_transaction(|c| {
                // The write lock keeps every other writer out, so the oldest rows need no
                // row locks.
                let ids: Vec<i64> =
                    queries::outbox_batch(batch.max_rows.min(MAX_FOLD_ROWS)).load(c)?;
                if ids.is_empty() {
                    return Ok(None);
                }
                ensure_summary(c)?;
                // The batch is the oldest rows, and the write lock keeps any other row from
                // coming or going meanwhile: the rows up to its newest are the batch. Named
                // that way, the statements read the same for any batch and stay prepared.
                let last_id = ids.iter().copied().max().unwrap_or_default();
                add_to_summary(c, last_id)?;
                let folded = exec(c, queries::delete_outbox_through(last_id))?;
                exec(c, queries::advance_summary(folded, Utc::now()))?;
                if let Some(pause) = batch.pause(folded) {
                    std::thread::sleep(pause);
                }
                let snapshot = written_snapshot(c)?;
                Ok(Some(Fold::of(snapshot, &ids)))
            })
        })
        .await
    }

    async fn outbox_len(&self) -> Result<i64, StoreError> {
        self.run(|c| Ok(queries::outbox_len().get_result(c)?)).await
    }

    async fn outbox_oldest(&self) -> Result<Option<chrono::DateTime<Utc>>, StoreError> {
        self.run(|c| Ok(queries::oldest_outbox_at().first(c).optional()?))
            .await
    }

    fn pool_usage(&self) -> PoolUsage {
        super::pool_usage(self.pool.status())
    }

    async fn mark_summary_stale(&self) -> Result<(), StoreError> {
        self.write(|c| Ok(exec(c, queries::mark_summary_stale()).map(drop)?))
            .await
    }

    async fn rebuild_summary(&self, progress: RebuildProgress) -> Result<Snapshot, StoreError> {
        self.mark_summary_stale().await?;
        self.write(move |c| {
            c.immediate_transaction(|c| {
                ensure_summary(c)?;
                recompute_folded(c, &progress)?;
                written_snapshot(c)
            })
        })
        .await
    }

    async fn audit_summary(&self) -> Result<SummaryAudit, StoreError> {
        // One read transaction sees one state of the file: no fold commits in between.
        self.run(|c| {
            c.transaction(|c| {
                let row = queries::summary::<Sqlite>().first(c).optional()?;
                let totals = queries::summary_totals::<Sqlite>().load(c)?;
                let folded_totals = queries::folded_totals().load(c)?;
                let folded = queries::folded_submission_count().get_result(c)?;
                let unfolded = queries::outbox_len().get_result(c)?;
                let derived = (stored_derived(c)?, folded_derived(c)?);
                Ok(queries::summary_audit(
                    row,
                    totals,
                    folded,
                    folded_totals,
                    unfolded,
                    derived,
                ))
            })
        })
        .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.run(|c| {
            c.transaction(|c| {
                Ok(StoreStats {
                    submissions: queries::submission_count().get_result(c)?,
                    voters: queries::voter_count().get_result(c)?,
                    outbox_depth: queries::outbox_len().get_result(c)?,
                    oldest_outbox_at: queries::oldest_outbox_at().first(c).optional()?,
                    summary: queries::summary::<Sqlite>()
                        .first(c)
                        .optional()?
                        .map(queries::summary_state),
                })
            })
        })
        .await
    }

    async fn insert_seeded(&self, batch: SeedBatch) -> Result<(), StoreError> {
        self.write(move |c| {
            c.immediate_transaction(|c| {
                for rows in chunked(queries::seeded_voter_rows(&batch), 3) {
                    queries::insert_voters(rows).execute(c)?;
                }
                for rows in chunked(queries::seeded_submission_rows(&batch), 7) {
                    queries::insert_submissions(rows).execute(c)?;
                }
                for rows in chunked(queries::seeded_allocation_rows(&batch), 3) {
                    queries::insert_allocations(rows).execute(c)?;
                }
                Ok(())
            })
        })
        .await
    }
}

/// SQLite binds at most this many parameters in one statement.
const MAX_BINDS: usize = 32_766;

/// `rows` in chunks that a multi-row insert of `columns` bound columns can take.
fn chunked<T>(rows: Vec<T>, columns: usize) -> Vec<Vec<T>> {
    let size = (MAX_BINDS / columns.max(1)).max(1);
    let mut chunks = Vec::with_capacity(rows.len().div_ceil(size));
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        chunks.push(rows.by_ref().take(size).collect());
    }
    chunks
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::Integer;
    use diesel::{sql_query, QueryableByName, RunQueryDsl};

    use super::*;

    #[test]
    fn a_summary_upsert_adds_its_sums_to_the_row_with_its_key() {
        let row = queries::TotalsInsert {
            category_id: 3,
            sum_hundredths: 1250,
            allocations: 1,
            sum_squares: 1_562_500,
        };
        let upsert = diesel::debug_query::<Sqlite, _>(&SummaryUpsert(&row)).to_string();
        assert_eq!(
            upsert,
            "INSERT INTO aggregate_totals (category_id, sum_hundredths, allocations, sum_squares) \
             VALUES (?, ?, ?, ?) ON CONFLICT (category_id) DO UPDATE SET \
             sum_hundredths = sum_hundredths + excluded.sum_hundredths, \
             allocations = allocations + excluded.allocations, \
             sum_squares = sum_squares + excluded.sum_squares \
             -- binds: [3, 1250, 1, 1562500]"
        );
    }

    #[derive(QueryableByName)]
    struct Step {
        #[diesel(sql_type = Text)]
        opcode: String,
    }

    /// The opcodes SQLite would run for `statement`, which is not run.
    fn plan(conn: &mut SqliteConnection, statement: &impl QueryFragment<Sqlite>) -> Vec<String> {
        use diesel::query_builder::QueryBuilder;
        let mut sql = diesel::sqlite::SqliteQueryBuilder::new();
        statement.to_sql(&mut sql, &Sqlite).expect("sql");
        sql_query(format!("EXPLAIN {}", sql.finish()))
            .load::<Step>(conn)
            .expect("explain")
            .into_iter()
            .map(|step| step.opcode)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_fold_upsert_builds_no_temporary_table() {
        // Removed when dropped, also when the test fails.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db.sqlite3");
        migrate(&path).await.expect("migrate");
        let store = SqliteStore::connect(&path, 1, SqliteSync::Full)
            .await
            .expect("connect");
        let plans = store
            .run(|c| {
                let bucket_start = Utc::now();
                let count = queries::TrendCountInsert {
                    resolution: "hour",
                    bucket_start,
                    submissions: 1,
                };
                let sum = queries::TrendSumInsert {
                    resolution: "hour",
                    bucket_start,
                    category_id: 1,
                    sum_hundredths: 1,
                };
                Ok([
                    plan(c, &SummaryUpsert(&count)),
                    plan(c, &SummaryUpsert(&sum)),
                ])
            })
            .await
            .expect("plans");
        for opcodes in plans {
            // A CHECK (… IN (…)) on the table would show here as one per row written.
            assert!(opcodes.iter().any(|op| op == "Insert"), "{opcodes:?}");
            assert!(
                !opcodes.iter().any(|op| op == "OpenEphemeral"),
                "{opcodes:?}"
            );
        }
    }

    #[derive(QueryableByName)]
    struct Synchronous {
        #[diesel(sql_type = Integer)]
        synchronous: i32,
    }

    #[derive(QueryableByName)]
    struct Checkpoint {
        #[diesel(sql_type = Integer)]
        wal_autocheckpoint: i32,
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn every_pooled_connection_syncs_each_commit() {
        // Removed when dropped, also when the test fails.
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::connect(&dir.path().join("db.sqlite3"), 2, SqliteSync::Full)
            .await
            .expect("connect");
        let level = store
            .run(|c| Ok(sql_query("PRAGMA synchronous").get_result::<Synchronous>(c)?))
            .await
            .expect("pragma");
        let checkpoint = store
            .run(|c| Ok(sql_query("PRAGMA wal_autocheckpoint").get_result::<Checkpoint>(c)?))
            .await
            .expect("pragma");
        // 2 is FULL.
        assert_eq!(level.synchronous, 2);
        assert_eq!(checkpoint.wal_autocheckpoint, WAL_CHECKPOINT_PAGES);
    }

    /// Waits up to ten seconds for `done`, checking every 10 ms.
    async fn eventually(mut done: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        done()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn writes_reach_the_database_file_before_the_automatic_checkpoint_and_the_thread_ends_with_the_store(
    ) {
        // Removed when dropped, also when the test fails.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db.sqlite3");
        let wal = dir.path().join("db.sqlite3-wal");
        let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let store = SqliteStore::connect(&path, 1, SqliteSync::Full)
            .await
            .expect("connect");
        let before = size(&path);
        // About 2 MiB in 512 pages: an eighth of the automatic checkpoint's threshold, so
        // only the background checkpoint copies it into the file.
        store
            .write(|c| {
                Ok(c.batch_execute(
                    "CREATE TABLE filler (b BLOB); \
                     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 512) \
                     INSERT INTO filler SELECT zeroblob(4000) FROM n;",
                )?)
            })
            .await
            .expect("write");
        let copied = eventually(|| size(&path) >= before + 2_000_000).await;
        let grown = size(&path);
        drop(store);
        // SQLite removes the WAL file when the last connection to the database closes, so
        // this also shows that the checkpoint thread let go of its connection.
        let closed = eventually(|| !wal.exists()).await;
        assert!(copied, "database file {before} -> {grown} bytes");
        assert!(
            closed,
            "the WAL file is still there: a connection stayed open"
        );
    }
}
