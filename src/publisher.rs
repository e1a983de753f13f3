//! Where a snapshot goes once the summary has committed it: the cache, then the bus.

use std::sync::Arc;

use crate::bus::Bus;
use crate::cache::SnapshotCache;
use crate::domain::Snapshot;
use crate::feed::SnapshotFeed;
use crate::store::{Store, StoreError};

/// Makes committed snapshots visible: to this process's subscribers at once, to readers
/// through the cache, to subscribers of every other process through the bus.
#[derive(Clone)]
pub struct SnapshotPublisher {
    cache: Arc<dyn SnapshotCache>,
    bus: Arc<dyn Bus>,
    feed: SnapshotFeed,
}

impl SnapshotPublisher {
    pub fn new(cache: Arc<dyn SnapshotCache>, bus: Arc<dyn Bus>, feed: SnapshotFeed) -> Self {
        SnapshotPublisher { cache, bus, feed }
    }

    /// Caches and publishes a freshly committed snapshot. Both are best effort: the summary
    /// already holds the truth, and the next fold or heal repeats them. It publishes even when
    /// the cache already had this version, because a reader may have backfilled the cache from
    /// the summary before this call, and subscribers learn of versions only from the bus.
    pub async fn publish(&self, snapshot: &Snapshot) {
        // Straight to this process's subscribers: they need neither the cache nor the bus, so
        // they keep receiving while Redis is away.
        self.feed.offer_from_database(snapshot.clone());
        if let Err(error) = self.cache.put_if_newer(snapshot).await {
            tracing::warn!(%error, version = snapshot.version, "cache write failed");
        }
        self.broadcast(snapshot).await;
    }

    /// Repairs a cache left behind the summary (its folder died between commit and publish).
    /// Unlike [`Self::publish`], it publishes only when the cache was behind: only then did
    /// nobody announce this version yet.
    pub async fn heal(&self, store: &dyn Store) {
        match store.summary_snapshot().await {
            Ok(Some(snapshot)) => match self.cache.put_if_newer(&snapshot).await {
                Ok(true) => {
                    tracing::info!(version = snapshot.version, "cache was behind the summary");
                    self.broadcast(&snapshot).await;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "cache write failed"),
            },
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "summary read failed"),
        }
    }

    async fn broadcast(&self, snapshot: &Snapshot) {
        if let Err(error) = self.bus.publish_snapshot(snapshot).await {
            tracing::warn!(%error, version = snapshot.version, "publish failed");
        }
    }

    /// Recomputes the summary from every folded submission, then publishes the result like a
    /// fold would. Safe while servers and workers run.
    pub async fn rebuild_summary(&self, store: &dyn Store) -> Result<Snapshot, StoreError> {
        self.rebuild_summary_showing(store, crate::store::no_progress())
            .await
    }

    /// [`Self::rebuild_summary`], telling `progress` as each step starts.
    pub async fn rebuild_summary_showing(
        &self,
        store: &dyn Store,
        progress: crate::store::RebuildProgress,
    ) -> Result<Snapshot, StoreError> {
        let snapshot = store.rebuild_summary(progress).await?;
        self.publish(&snapshot).await;
        Ok(snapshot)
    }
}
