//! The read path: cache → summary → live SQL, each answer also offered to the feed.

use std::sync::Arc;

use crate::cache::SnapshotCache;
use crate::domain::{Snapshot, SnapshotSource};
use crate::feed::SnapshotFeed;
use crate::store::{Store, StoreError};

/// Reads aggregates through the tiers.
#[derive(Clone)]
pub struct Aggregates {
    store: Arc<dyn Store>,
    cache: Arc<dyn SnapshotCache>,
    feed: SnapshotFeed,
}

impl Aggregates {
    pub fn new(store: Arc<dyn Store>, cache: Arc<dyn SnapshotCache>, feed: SnapshotFeed) -> Self {
        Aggregates { store, cache, feed }
    }

    /// Where every snapshot this process reads or hears of is offered to subscribers.
    pub fn feed(&self) -> &SnapshotFeed {
        &self.feed
    }

    /// The newest snapshot the cheapest tier can give.
    ///
    /// A cache hit costs one cache round trip and no SQL. A cache failure is logged and the
    /// read goes on to the database: the cache is a copy, never the truth.
    pub async fn read(&self) -> Result<Snapshot, StoreError> {
        match self.cache.get().await {
            Ok(Some(snapshot)) => {
                self.feed.offer(snapshot.clone());
                return Ok(snapshot.with_source(SnapshotSource::Cache));
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cache read failed; reading the summary"),
        }
        let snapshot = match self.store.summary_snapshot().await? {
            Some(summary) => summary.with_source(SnapshotSource::Summary),
            None => self.store.live_snapshot().await?,
        };
        if let Err(error) = self.cache.put_if_newer(&snapshot).await {
            tracing::warn!(%error, "cache backfill failed");
        }
        self.feed.offer(snapshot.clone());
        Ok(snapshot)
    }

    /// Brings the feed up to date after this process may have missed published snapshots.
    pub async fn resync(&self) {
        if let Err(error) = self.read().await {
            tracing::warn!(%error, "could not resync the snapshot feed");
        }
    }
}
