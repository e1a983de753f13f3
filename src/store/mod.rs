//! Durable data: submissions, voters, the outbox and the summary.
//!
//! One trait, one implementation per backend. Both keep the same invariant: a submission, its
//! allocations and its outbox row commit together; a fold adds a batch of outbox rows to the
//! summary and deletes them in one transaction. So a submission reaches the summary exactly
//! once, whatever crashes in between.

mod postgres;
mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::domain::{Category, CategoryId, Hundredths, Snapshot, ValidAllocation};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Errors of the durable store. Messages are for logs, never for clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database connection failed: {0}")]
    Connection(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

/// Which voter a new submission belongs to.
#[derive(Debug, Clone)]
pub enum VoterRef {
    Existing(Uuid),
    /// Created in the submission's transaction, so a refused submission leaves no voter behind.
    New {
        id: Uuid,
        token_hash: String,
    },
}

#[derive(Debug, Clone)]
pub struct NewSubmission {
    pub id: Uuid,
    pub voter: VoterRef,
    pub created_at: DateTime<Utc>,
    pub allocation: ValidAllocation,
    pub idempotency_key: Option<String>,
}

impl NewSubmission {
    pub fn new(
        voter: VoterRef,
        allocation: ValidAllocation,
        idempotency_key: Option<String>,
    ) -> Self {
        NewSubmission {
            id: Uuid::new_v4(),
            voter,
            // Both databases keep microseconds; trimming here makes what we return equal to
            // what a later read returns.
            created_at: Utc::now().trunc_subsecs(6),
            allocation,
            idempotency_key,
        }
    }

    pub fn voter_id(&self) -> Uuid {
        match &self.voter {
            VoterRef::Existing(id) | VoterRef::New { id, .. } => *id,
        }
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
    /// The idempotency key was used before; nothing was written.
    Replayed(StoredSubmission),
}

/// What the store can do; `Arc<dyn Store>` is shared by every request and the worker.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn categories(&self) -> Result<Vec<Category>, StoreError>;

    async fn voter_by_token_hash(&self, token_hash: &str) -> Result<Option<Uuid>, StoreError>;

    /// Stores a submission with its outbox row in one transaction, or returns the submission
    /// that already holds its idempotency key.
    async fn submit(&self, submission: NewSubmission) -> Result<SubmitOutcome, StoreError>;

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

    /// Folds up to `batch_size` outbox rows into the summary in one transaction and returns the
    /// new snapshot, or `None` when the outbox was empty.
    async fn fold_outbox(&self, batch_size: i64) -> Result<Option<Snapshot>, StoreError>;

    /// Number of outbox rows not yet folded.
    async fn outbox_len(&self) -> Result<i64, StoreError>;

    /// Marks the summary stale so that readers stop trusting it.
    async fn mark_summary_stale(&self) -> Result<(), StoreError>;

    /// Recomputes the summary from every folded submission and clears the stale mark.
    async fn rebuild_summary(&self) -> Result<Snapshot, StoreError>;
}

/// Connects to the database named by `url` and brings its schema up to date.
pub async fn connect(
    url: &crate::config::DatabaseUrl,
    pool_size: usize,
    fold_pause: std::time::Duration,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    use crate::config::DatabaseUrl;
    Ok(match url {
        DatabaseUrl::Postgres(url) => {
            std::sync::Arc::new(PostgresStore::connect(url, pool_size, fold_pause).await?)
        }
        DatabaseUrl::Sqlite(path) => {
            std::sync::Arc::new(SqliteStore::connect(path, pool_size, fold_pause).await?)
        }
    })
}

/// Groups allocation rows under their submissions, keeping the submissions' order.
fn attach_allocations(
    heads: Vec<(Uuid, Uuid, DateTime<Utc>)>,
    rows: Vec<(Uuid, i32, i32)>,
) -> Result<Vec<StoredSubmission>, StoreError> {
    let mut out: Vec<StoredSubmission> = heads
        .into_iter()
        .map(|(id, voter_id, created_at)| StoredSubmission {
            id,
            voter_id,
            created_at,
            allocations: Vec::new(),
        })
        .collect();
    for (submission_id, category_id, hundredths) in rows {
        let value = Hundredths::from_raw(i64::from(hundredths))
            .ok_or_else(|| StoreError::Corrupt(format!("hundredths {hundredths} out of range")))?;
        if let Some(s) = out.iter_mut().find(|s| s.id == submission_id) {
            s.allocations.push((CategoryId(category_id), value));
        }
    }
    Ok(out)
}
