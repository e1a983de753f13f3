//! Durable data: submissions, voters, the outbox and the summary.
//!
//! One trait, one implementation per backend. Both keep the same invariant: a submission, its
//! allocations and its outbox row commit together; a fold adds a batch of outbox rows to the
//! summary and deletes them in one transaction. So a submission reaches the summary exactly
//! once, whatever crashes in between.

mod postgres;
mod queries;
mod relations;
mod schema;
mod sql_types;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::config::{DatabaseUrl, SqliteSync};
use crate::domain::{
    Category, CategoryId, DetailedSnapshot, Hundredths, Resolution, Snapshot, TrendRange,
    TrendRows, ValidAllocation,
};
use crate::metrics::PoolUsage;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the durable store, the same variant for the same situation on either backend.
/// Messages are for logs, never for clients; they repeat their cause because most call sites
/// log only the top error's `Display`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database query failed: {0}")]
    Query(#[source] diesel::result::Error),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] diesel::ConnectionError),
    /// Every pooled connection stayed busy for the pool's whole wait: the database is
    /// overloaded, so a later try may succeed.
    #[error("no database connection became free in time")]
    PoolExhausted,
    #[error("database connection pool failed: {0}")]
    Pool(#[source] BoxError),
    #[error("database migration failed: {0}")]
    Migration(#[source] BoxError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// A seed batch named categories or voters that do not exist (checked once per batch
    /// when the per-row foreign-key triggers are skipped, see [`ReferenceChecks::PerBatch`]).
    #[error(
        "a seed batch names {categories} categories and {voters} earlier voters that do not \
         exist; nothing of it was written"
    )]
    MissingSeedReferences { categories: usize, voters: usize },
    #[error("cannot create the database directory {}: {source}", path.display())]
    Directory {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A blocking task (SQLite work, a migration run) panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// A thread of the store (SQLite's checkpoints) could not be started.
    #[error("cannot start a database thread: {0}")]
    Thread(#[source] std::io::Error),
    /// One error of a batch, shared by every submission it failed (see
    /// `submissions::group_commit`).
    #[error(transparent)]
    Shared(Arc<StoreError>),
    /// The group-commit writer stopped before answering (the process is shutting down).
    #[error("the submission writer stopped")]
    WriterStopped,
    /// A submission's voter token belongs to no voter; nothing of it was written.
    #[error("no voter has the submission's token")]
    UnknownVoter,
}

/// A statement stopped by PostgreSQL's `statement_timeout`, or a SQLite statement that waited
/// its whole busy timeout for the write lock: the database was too busy, nothing was written
/// (the statement's transaction is rolled back), and a later try may succeed. Matched on the
/// message because diesel-async passes no SQLSTATE (57014) for it; PostgreSQL's messages are in
/// English unless `lc_messages` says otherwise.
fn waited_too_long(message: &str) -> bool {
    message.contains("canceling statement due to statement timeout")
        || message.contains("database is locked")
}

impl From<diesel::result::Error> for StoreError {
    fn from(error: diesel::result::Error) -> Self {
        StoreError::Query(error)
    }
}

impl StoreError {
    /// Whether the database could not be reached or was too busy (as opposed to a query or
    /// data error): the same request may succeed later.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            StoreError::Connect(_) | StoreError::PoolExhausted | StoreError::Pool(_) => true,
            StoreError::Query(Error::DatabaseError(kind, info)) => match kind {
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    true
                }
                DatabaseErrorKind::Unknown => waited_too_long(info.message()),
                _ => false,
            },
            StoreError::Query(Error::BrokenTransactionManager) => true,
            StoreError::Shared(error) => error.is_unavailable(),
            StoreError::WriterStopped => true,
            _ => false,
        }
    }

    /// Sorts a pool's error; `backend` sorts what the pool's connection manager reported.
    fn from_pool<E>(
        error: deadpool::managed::PoolError<E>,
        backend: impl FnOnce(E) -> StoreError,
    ) -> StoreError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        use deadpool::managed::{PoolError, TimeoutType};
        match error {
            PoolError::Timeout(TimeoutType::Wait) => StoreError::PoolExhausted,
            PoolError::Backend(e) => backend(e),
            other => StoreError::Pool(Box::new(other)),
        }
    }
}

/// A deadpool pool's usage.
fn pool_usage(status: deadpool::Status) -> PoolUsage {
    PoolUsage {
        in_use: status.size.saturating_sub(status.available),
        idle: status.available,
        max: status.max_size,
    }
}

/// One call of [`Store::fold_outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldBatch {
    /// Folds at most this many outbox rows.
    pub max_rows: i64,
    /// Test hook: sleeps this long inside the fold's transaction before it commits, so that a
    /// test can kill the worker mid-fold. Zero in production.
    pub pause_before_commit: Duration,
}

impl FoldBatch {
    /// The pause to take before committing `rows` folded rows, announced in the log (tests
    /// wait for that line before they kill the worker).
    fn pause(&self, rows: usize) -> Option<Duration> {
        let pause = self.pause_before_commit;
        if pause.is_zero() {
            return None;
        }
        tracing::warn!(rows, ?pause, "fold paused before commit (test hook)");
        Some(pause)
    }
}

/// What one fold did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    pub snapshot: Snapshot,
    /// Outbox rows folded (one per submission).
    pub rows: usize,
    /// The lowest and highest outbox row id of the batch: which submissions it carried, for
    /// the logs and traces (the ids grow with each stored submission).
    pub outbox_ids: (i64, i64),
}

impl Fold {
    fn of(snapshot: Snapshot, ids: &[i64]) -> Self {
        Fold {
            snapshot,
            rows: ids.len(),
            outbox_ids: (
                ids.iter().copied().min().unwrap_or_default(),
                ids.iter().copied().max().unwrap_or_default(),
            ),
        }
    }
}

/// Which voter a new submission belongs to.
#[derive(Debug, Clone)]
pub enum VoterRef {
    /// An existing voter by id: what a [`VoterRef::ByToken`] becomes once the store has found
    /// its voter.
    Existing(Uuid),
    /// An existing voter known by the stored key of the token it presented
    /// ([`crate::voter_token::VoterToken::hash`]). The store looks the voter up in the
    /// submission's own transaction, so a token costs no round trip of its own; an unknown one
    /// fails that submission alone with [`StoreError::UnknownVoter`].
    ByToken { token_hash: String },
    /// Created in the submission's transaction, so a refused submission leaves no voter behind.
    New { id: Uuid, token_hash: String },
}

/// What a submission sent with an idempotency key stores of it. The key itself is not stored:
/// it opens `sealed_token` (see `submissions::idempotency`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// SHA-256 of the key, unique in the key's [`KeyScope`]; replays are found by it.
    pub key_hash: String,
    /// SHA-256 of the validated allocation: a replay must send the same.
    pub payload_hash: String,
    /// The token of the voter this submission creates, sealed under the key, so that a replay
    /// can return it. `None` when the submission does not create its voter.
    pub sealed_token: Option<String>,
}

/// Where an idempotency key is unique, and so where a replay of it is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyScope {
    /// A key sent with a voter token is that voter's own: other voters' keys are not seen.
    Voter(Uuid),
    /// A key sent without a token belongs to the voter its first submission created. Every
    /// anonymous caller looks here, so holding the key (and sending its payload) is what
    /// gets its submission and sealed token back.
    NewVoter,
}

#[derive(Debug, Clone)]
pub struct NewSubmission {
    pub id: Uuid,
    pub voter: VoterRef,
    pub created_at: DateTime<Utc>,
    pub allocation: ValidAllocation,
    pub key: Option<KeyRecord>,
}

impl NewSubmission {
    pub fn new(voter: VoterRef, allocation: ValidAllocation, key: Option<KeyRecord>) -> Self {
        NewSubmission {
            // Time-ordered (UUIDv7, 74 random bits): a new row goes at the end of every index
            // keyed by it (the submissions' key, the allocations', the outbox's) instead of on a
            // random page, so a commit writes a few pages, not one per index per submission.
            id: Uuid::now_v7(),
            voter,
            // Both databases keep microseconds; trimming here makes what we return equal to
            // what a later read returns.
            created_at: Utc::now().trunc_subsecs(6),
            allocation,
            key,
        }
    }

    /// `None` while the voter is known only by its token, until the store has looked it up.
    pub fn voter_id(&self) -> Option<Uuid> {
        match &self.voter {
            VoterRef::Existing(id) | VoterRef::New { id, .. } => Some(*id),
            VoterRef::ByToken { .. } => None,
        }
    }

    /// The submission with its voter known, and that voter's id: `found` is the voter the
    /// store found for a presented token (`None`: no voter has it, which fails the submission).
    fn with_voter(mut self, found: Option<Uuid>) -> Result<(NewSubmission, Uuid), StoreError> {
        let id = match &self.voter {
            VoterRef::Existing(id) | VoterRef::New { id, .. } => *id,
            VoterRef::ByToken { .. } => {
                let id = found.ok_or(StoreError::UnknownVoter)?;
                self.voter = VoterRef::Existing(id);
                id
            }
        };
        Ok((self, id))
    }

    /// The stored key of the token this submission's voter presented, if it is known by one.
    fn presented_token(&self) -> Option<&str> {
        match &self.voter {
            VoterRef::ByToken { token_hash } => Some(token_hash),
            VoterRef::Existing(_) | VoterRef::New { .. } => None,
        }
    }

    /// Whether this submission creates its voter (an anonymous call).
    pub fn creates_voter(&self) -> bool {
        matches!(self.voter, VoterRef::New { .. })
    }

    /// Where a replay of this submission's key is, and the key's hash; `None` without a key.
    fn key_lookup(&self) -> Option<(KeyScope, String)> {
        let key = self.key.as_ref()?;
        let scope = match self.voter {
            VoterRef::Existing(id) => KeyScope::Voter(id),
            VoterRef::New { .. } => KeyScope::NewVoter,
            // Replays are looked for once the voter is known.
            VoterRef::ByToken { .. } => return None,
        };
        Some((scope, key.key_hash.clone()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubmission {
    pub id: Uuid,
    pub voter_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub allocations: Vec<(CategoryId, Hundredths)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    Created(StoredSubmission),
    /// The idempotency key was used before in its scope; nothing was written.
    Replayed(Replay),
}

/// The submission that first used an idempotency key, and what the key is bound to. Whether
/// the new request may have it (same payload) is for the caller to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub submission: StoredSubmission,
    /// `None` for keys stored before payloads were hashed: then the submission's allocations
    /// are the payload.
    pub payload_hash: Option<String>,
    /// The voter token the first call returned, sealed under the key.
    pub sealed_token: Option<String>,
}

/// The steps of a rebuild, in order. Each is one or a few SQL statements that report nothing
/// until they end, so a rebuild's progress is known only step by step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildStep {
    /// The sums per category (and of their squares).
    Sums,
    /// The count of every value given per category.
    ValueCounts,
    /// The trend's minute buckets.
    TrendMinutes,
    /// The trend's hours and days, rolled up from the minutes.
    TrendRollUp,
    /// Counting the submissions and writing the summary row.
    Summary,
}

impl RebuildStep {
    pub const ALL: [RebuildStep; 5] = [
        RebuildStep::Sums,
        RebuildStep::ValueCounts,
        RebuildStep::TrendMinutes,
        RebuildStep::TrendRollUp,
        RebuildStep::Summary,
    ];

    /// The step's usual share of a rebuild's time, in percent: measured on PostgreSQL at a
    /// million submissions (each of the first three reads every allocation; the minute
    /// buckets also join every submission). An estimate for an ETA, not a promise.
    pub fn share(self) -> u64 {
        match self {
            RebuildStep::Sums => 20,
            RebuildStep::ValueCounts => 20,
            RebuildStep::TrendMinutes => 45,
            RebuildStep::TrendRollUp => 5,
            RebuildStep::Summary => 10,
        }
    }

    /// What the step does, for a progress line.
    pub fn describe(self) -> &'static str {
        match self {
            RebuildStep::Sums => "sums per category",
            RebuildStep::ValueCounts => "value counts per category",
            RebuildStep::TrendMinutes => "trend minute buckets",
            RebuildStep::TrendRollUp => "trend hours and days",
            RebuildStep::Summary => "counting submissions",
        }
    }
}

/// Told as each step of a rebuild starts (from whichever thread runs it).
pub type RebuildProgress = Arc<dyn Fn(RebuildStep) + Send + Sync>;

/// A [`RebuildProgress`] that shows nothing.
pub fn no_progress() -> RebuildProgress {
    Arc::new(|_| {})
}

/// The summary as stored next to what SQL says it must hold, read in one transaction, so the
/// two describe the same moment even while submissions and folds go on (`tax-budget verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryAudit {
    /// The summary row and its totals, also when marked stale; `None` before the first fold.
    pub summary: Option<Snapshot>,
    /// Whether the summary is marked stale: a rebuild is running, or died before finishing.
    pub stale: bool,
    /// Sums computed over the allocations of every submission that has left the outbox (the set
    /// a fold or rebuild counts), under the summary's version (0 without a summary).
    pub folded: Snapshot,
    /// Submissions still in the outbox: stored, and not yet in the summary by design.
    pub unfolded: i64,
    /// What the summary keeps beside its sums, as stored and as SQL over the same folded
    /// submissions computes it.
    pub derived: DerivedAudit,
}

/// The distributions, sums of squares and trend buckets, each number under a name that says
/// what it counts ("category 3 submissions at 12.5 %"), as stored (`stored`) and as computed
/// over the folded submissions (`folded`). A name missing on one side is 0 there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DerivedAudit {
    pub stored: std::collections::BTreeMap<String, i64>,
    pub folded: std::collections::BTreeMap<String, i64>,
}

/// Counts for `tax-budget stats`, read in one transaction, so they describe one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    pub submissions: i64,
    pub voters: i64,
    /// Outbox rows not yet folded.
    pub outbox_depth: i64,
    /// When the oldest outbox row was written; `None` with an empty outbox.
    pub oldest_outbox_at: Option<DateTime<Utc>>,
    /// The summary row as stored, also when marked stale; `None` before the first fold.
    pub summary: Option<SummaryState>,
}

/// The summary row without its totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryState {
    pub generation: String,
    pub version: i64,
    pub total_submissions: i64,
    pub updated_at: DateTime<Utc>,
    /// A rebuild is running or died: readers do not trust the summary.
    pub stale: bool,
}

/// Demo submissions for `tax-budget seed`, written by [`Store::insert_seeded`].
#[derive(Debug, Clone, Default)]
pub struct SeedBatch {
    pub submissions: Vec<SeedSubmission>,
    /// The categories of every submission's hundredths, in this order.
    pub categories: Vec<CategoryId>,
    /// `categories.len()` values per submission, in the order of `submissions`.
    pub hundredths: Vec<i32>,
    /// How the batch's references are checked, as [`Store::seed_reference_checks`] said.
    pub checks: ReferenceChecks,
}

/// How [`Store::insert_seeded`] makes sure that a batch names only existing voters and
/// categories.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ReferenceChecks {
    /// The database's foreign keys, row by row (on SQLite every reference; on PostgreSQL
    /// each submission's voter, one trigger call per submission, while the batch's
    /// categories, which allocations no longer check per row there, are checked by one
    /// query).
    #[default]
    PerRow,
    /// PostgreSQL only: the batch's distinct references are checked (and locked against
    /// deletion, as the triggers would) by one query in the batch's transaction, and the
    /// per-row triggers are skipped for that transaction only (`SET LOCAL
    /// session_replication_role = replica`, which needs a superuser or `GRANT SET ON
    /// PARAMETER session_replication_role`).
    PerBatch,
    /// PostgreSQL refused the per-batch way; why, as it said.
    PerRowFallback(String),
}

impl ReferenceChecks {
    /// Whether the per-row foreign-key triggers are skipped.
    pub fn per_batch(&self) -> bool {
        matches!(self, ReferenceChecks::PerBatch)
    }
}

impl std::fmt::Display for ReferenceChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReferenceChecks::PerRow => f.write_str("references checked per row by foreign keys"),
            ReferenceChecks::PerBatch => f.write_str(
                "references checked once per batch, foreign-key triggers skipped \
                 (session_replication_role = replica)",
            ),
            ReferenceChecks::PerRowFallback(why) => write!(
                f,
                "references checked per row by foreign keys (slower): cannot skip the \
                 triggers: {why}"
            ),
        }
    }
}

/// One demo submission; a voter is created with the submission that says so, and must be
/// created by this batch or an earlier one before another submission names it.
#[derive(Debug, Clone)]
pub struct SeedSubmission {
    pub id: Uuid,
    pub voter_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub creates_voter: bool,
}

/// The token hash stored for a seeded voter: not a SHA-256 in hex, so no bearer token can
/// ever match it and nobody can submit as a demo voter.
fn seeded_token_hash(voter_id: Uuid) -> String {
    format!("seed:{voter_id}")
}

/// What the store can do; `Arc<dyn Store>` is shared by every request and the worker.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn categories(&self) -> Result<Vec<Category>, StoreError>;

    /// The voter whose token has this stored key, for reads by token (a voter's history);
    /// a submission by token is looked up in its own batch instead ([`VoterRef::ByToken`]).
    async fn voter_by_token_hash(&self, token_hash: &str) -> Result<Option<Uuid>, StoreError>;

    /// Stores a batch of submissions, each with its outbox row, in one transaction (group
    /// commit: one commit, so one disk sync, for the whole batch). A submission whose
    /// idempotency key is already taken in its scope (the voter's own keys for an existing
    /// voter, the keys that created voters for a new one), by an earlier submission or by one
    /// before it in the batch, writes nothing and gets back the submission holding the key.
    ///
    /// The outer error means nothing of the batch was written; an inner one concerns its
    /// submission alone. Outcomes come in the order of `batch`.
    async fn submit_batch(
        &self,
        batch: Vec<NewSubmission>,
    ) -> Result<Vec<Result<SubmitOutcome, StoreError>>, StoreError>;

    /// One submission, as [`Store::submit_batch`] stores a batch of one.
    async fn submit(&self, submission: NewSubmission) -> Result<SubmitOutcome, StoreError> {
        self.submit_batch(vec![submission])
            .await?
            .pop()
            .unwrap_or_else(|| Err(StoreError::Corrupt("a batch of one had no outcome".into())))
    }

    async fn submission(&self, id: Uuid) -> Result<Option<StoredSubmission>, StoreError>;

    /// A voter's submissions, newest first.
    async fn submissions_of_voter(
        &self,
        voter_id: Uuid,
        limit: i64,
    ) -> Result<Vec<StoredSubmission>, StoreError>;

    /// The summary table's snapshot; `None` when it has no rows yet or is marked stale.
    async fn summary_snapshot(&self) -> Result<Option<Snapshot>, StoreError>;

    /// Sums over every stored allocation, ignoring the summary. Slow; the last resort.
    async fn live_snapshot(&self) -> Result<Snapshot, StoreError>;

    /// The summary's snapshot with every category's distribution, read in one transaction;
    /// `None` when it has no rows yet or is marked stale.
    async fn summary_details(&self) -> Result<Option<DetailedSnapshot>, StoreError>;

    /// [`Store::live_snapshot`] with every category's distribution, computed over every stored
    /// allocation. Slow; the last resort.
    async fn live_details(&self) -> Result<DetailedSnapshot, StoreError>;

    /// The start of the first trend bucket at `resolution` that has submissions.
    async fn trend_first(
        &self,
        resolution: Resolution,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// The trend buckets of `range` and the sums before it, read in one transaction with the
    /// summary's version. Reads the range's buckets and, before it, whole days, then the hours
    /// and minutes of the range's first day and hour: never more rows than that, whatever the
    /// number of submissions. The buckets are folded with the sums, so during a rebuild they
    /// still describe the summary being rebuilt.
    async fn trend(&self, range: TrendRange) -> Result<TrendRows, StoreError>;

    /// Folds up to `batch.max_rows` outbox rows into the summary in one transaction and returns
    /// the new snapshot with what was folded, or `None` when the outbox was empty.
    async fn fold_outbox(&self, batch: FoldBatch) -> Result<Option<Fold>, StoreError>;

    /// Number of outbox rows not yet folded.
    async fn outbox_len(&self) -> Result<i64, StoreError>;

    /// When the oldest outbox row was written; `None` when the outbox is empty.
    async fn outbox_oldest(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// How many pooled connections are in use, idle, and allowed.
    fn pool_usage(&self) -> PoolUsage;

    /// Marks the summary stale so that readers stop trusting it.
    async fn mark_summary_stale(&self) -> Result<(), StoreError>;

    /// Recomputes the summary from every folded submission and clears the stale mark, telling
    /// `progress` as each step starts.
    async fn rebuild_summary(&self, progress: RebuildProgress) -> Result<Snapshot, StoreError>;

    /// The summary with the sums it must hold, see [`SummaryAudit`]. Slow like
    /// [`Store::live_snapshot`]: it reads every allocation.
    async fn audit_summary(&self) -> Result<SummaryAudit, StoreError>;

    /// Counts of the stored data and the summary's state (`tax-budget stats`); reads no
    /// allocation, but counts every submission and voter.
    async fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Writes demo submissions (`tax-budget seed`) with their allocations and new voters, in
    /// one transaction, as already folded: without outbox rows, so the summary counts them
    /// only after [`Store::rebuild_summary`], which the caller runs when it has written them
    /// all (a fold per batch would cost more than the writes).
    async fn insert_seeded(&self, batch: SeedBatch) -> Result<(), StoreError>;

    /// How [`Store::insert_seeded`] can check the references of a seed batch: the fastest
    /// way this database and role permit, found by trying it once.
    async fn seed_reference_checks(&self) -> Result<ReferenceChecks, StoreError> {
        Ok(ReferenceChecks::PerRow)
    }

    /// After a seed wrote its rows: refreshes the planner's statistics, so that the rebuild
    /// that follows plans for the tables as they now are (autovacuum's analyze lags behind a
    /// bulk load; with the empty tables' estimates the rebuild sorts on disk).
    async fn analyze_seeded(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Brings the schema of the database named by `url` up to date; returns how many migrations it
/// applied. Safe to run from several processes at once.
pub async fn migrate(url: &DatabaseUrl) -> Result<usize, StoreError> {
    let applied = match url {
        DatabaseUrl::Postgres(url) => postgres::migrate(url).await?,
        DatabaseUrl::Sqlite(path) => sqlite::migrate(path).await?,
    };
    tracing::info!(applied, database = %url.describe(), "migrations up to date");
    Ok(applied)
}

/// Connects to the database named by `url`, whose schema [`migrate`] has brought up to date.
/// `statement_timeout` applies to PostgreSQL only (SQLite's statements wait at most its busy
/// timeout for the write lock, and never for anything else).
pub async fn connect(
    url: &DatabaseUrl,
    pool_size: usize,
    sqlite_sync: SqliteSync,
    statement_timeout: Option<Duration>,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        DatabaseUrl::Postgres(url) => {
            Arc::new(PostgresStore::connect(url, pool_size, statement_timeout).await?)
        }
        DatabaseUrl::Sqlite(path) => {
            Arc::new(SqliteStore::connect(path, pool_size, sqlite_sync).await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use deadpool::managed::{PoolError, TimeoutType};

    use super::StoreError;

    #[test]
    fn a_pool_wait_timeout_is_exhaustion_and_other_pool_errors_keep_their_cause() {
        let sort = |e: PoolError<StoreError>| StoreError::from_pool(e, |e| e);
        assert!(matches!(
            sort(PoolError::Timeout(TimeoutType::Wait)),
            StoreError::PoolExhausted
        ));
        let create = sort(PoolError::Timeout(TimeoutType::Create));
        assert!(matches!(create, StoreError::Pool(_)));
        assert!(create.source().is_some());
        let backend = sort(PoolError::Backend(StoreError::Query(
            diesel::result::Error::NotFound,
        )));
        assert!(matches!(
            backend,
            StoreError::Query(diesel::result::Error::NotFound)
        ));
        assert!(backend.source().is_some());
    }
}
