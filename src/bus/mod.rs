//! Pub/sub between processes: new snapshots for subscribers, wake-ups for workers.
//!
//! A process has exactly one bus and so one subscription; what arrives is handed to a
//! [`BusHandler`], which fans it out in memory. No client ever subscribes on its own.

mod memory;
mod redis;

use async_trait::async_trait;

use crate::domain::Snapshot;

pub use memory::MemoryBus;
pub use redis::RedisBus;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(transparent)]
    Redis(#[from] crate::redis::RedisError),
    #[error("snapshot could not be encoded")]
    Encode(#[from] serde_json::Error),
}

/// Receives what the bus delivers. Called on the bus's own task: keep it quick.
pub trait BusHandler: Send + Sync + 'static {
    fn snapshot_published(&self, snapshot: Snapshot);
    fn outbox_nudged(&self);
    /// The subscription was re-established: messages may have been missed.
    fn resubscribed(&self);
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    async fn publish_snapshot(&self, snapshot: &Snapshot) -> Result<(), BusError>;
    /// Tells every worker that outbox rows are waiting.
    async fn nudge_workers(&self) -> Result<(), BusError>;
}
