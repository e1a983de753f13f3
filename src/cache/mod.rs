//! Tier 1 of the read path: the newest snapshot, kept where reading it costs no SQL.

mod memory;
mod redis;

use async_trait::async_trait;

use crate::domain::Snapshot;

pub use memory::MemoryCache;
pub use redis::RedisCache;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Redis(#[from] crate::redis::RedisError),
    #[error("cached snapshot is unreadable")]
    Decode(#[from] serde_json::Error),
}

#[async_trait]
pub trait SnapshotCache: Send + Sync + 'static {
    /// The cached snapshot, if any: one round trip at most.
    async fn get(&self) -> Result<Option<Snapshot>, CacheError>;

    /// Stores `snapshot` (read from or committed to the database) if it supersedes what the
    /// cache holds: a newer version of the same generation, or another generation (see
    /// [`Snapshot::supersedes`]); returns whether it was stored. The compare and the write are
    /// one atomic step.
    async fn put_if_newer(&self, snapshot: &Snapshot) -> Result<bool, CacheError>;

    /// Forgets the cached snapshot; the next read falls through to the summary.
    async fn invalidate(&self) -> Result<(), CacheError>;

    async fn ping(&self) -> Result<(), CacheError>;
}
