//! In-process cache for the embedded default (one process, no Redis).

use async_trait::async_trait;
use tokio::sync::RwLock;

use super::{CacheError, SnapshotCache};
use crate::domain::Snapshot;

#[derive(Default)]
pub struct MemoryCache {
    current: RwLock<Option<Snapshot>>,
}

#[async_trait]
impl SnapshotCache for MemoryCache {
    async fn get(&self) -> Result<Option<Snapshot>, CacheError> {
        Ok(self.current.read().await.clone())
    }

    async fn put_if_newer(&self, snapshot: &Snapshot) -> Result<bool, CacheError> {
        let mut current = self.current.write().await;
        if current.as_ref().is_some_and(|c| !snapshot.supersedes(c)) {
            return Ok(false);
        }
        *current = Some(snapshot.clone());
        Ok(true)
    }

    async fn invalidate(&self) -> Result<(), CacheError> {
        *self.current.write().await = None;
        Ok(())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}
