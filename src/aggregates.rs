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

    /// The newest snapshot the cheapest tier can give, never older than one this process
    /// has already served or pushed.
    ///
    /// A cache hit costs one cache round trip and no SQL. A cache failure is logged and the
    /// read goes on to the database: the cache is a copy, never the truth. So is a cache that
    /// holds another generation of the summary than the one this process knows (or anything,
    /// before this process has read its database once): it may come from a database that was
    /// recreated or restored, so the database answers and the cache is overwritten.
    pub async fn read(&self) -> Result<Snapshot, StoreError> {
        let mut cache_failed = false;
        match self.cache.get().await {
            Ok(Some(cached)) if self.feed.knows_generation_of(&cached) => {
                // A cache that missed folds while Redis was away must not take this process
                // back: the feed's newer snapshot answers, and repairs the cache.
                if self.feed.is_ahead_of(&cached) {
                    let newest = self.feed.current();
                    self.backfill(&newest).await;
                    return Ok(newest.with_source(SnapshotSource::Cache));
                }
                self.feed.offer(cached.clone());
                return Ok(cached.with_source(SnapshotSource::Cache));
            }
            Ok(Some(foreign)) => {
                tracing::debug!(generation = %foreign.generation, "cache holds another summary's snapshot");
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "cache read failed; reading the summary");
                cache_failed = true;
            }
        }
        let snapshot = self.read_database().await?;
        if shareable(&snapshot) {
            // A cache that just failed is not asked again within the same read.
            if !cache_failed {
                self.backfill(&snapshot).await;
            }
            self.feed.offer_from_database(snapshot.clone());
        }
        Ok(snapshot)
    }

    /// The summary, or live SQL when there is none (or it is stale).
    async fn read_database(&self) -> Result<Snapshot, StoreError> {
        Ok(match self.store.summary_snapshot().await? {
            Some(summary) => summary.with_source(SnapshotSource::Summary),
            None => self.store.live_snapshot().await?,
        })
    }

    async fn backfill(&self, snapshot: &Snapshot) {
        if let Err(error) = self.cache.put_if_newer(snapshot).await {
            tracing::debug!(%error, "cache backfill failed");
        }
    }

    /// Brings the feed and the cache up to the newest of (summary, cache, feed), after this
    /// process may have missed published snapshots or the cache may have missed folds.
    pub async fn resync(&self) {
        match self.store.summary_snapshot().await {
            Ok(Some(summary)) => {
                self.feed
                    .offer_from_database(summary.with_source(SnapshotSource::Summary));
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "resync: summary read failed"),
        }
        let cached = match self.cache.get().await {
            Ok(cached) => cached,
            Err(error) => {
                tracing::debug!(%error, "resync: cache read failed");
                return;
            }
        };
        // Only a cache that holds an older snapshot is repaired here; an empty one is filled
        // by the next read.
        if let Some(cached) = cached {
            let newest = self.feed.current();
            if newest.version < 0 {
                return;
            }
            if !self.feed.knows_generation_of(&cached) || self.feed.is_ahead_of(&cached) {
                self.backfill(&newest).await;
            } else {
                self.feed.offer(cached);
            }
        }
    }
}

/// Whether a snapshot may be cached and pushed. A LIVE answer while a summary exists (stale
/// during a rebuild) carries the summary's version with totals over every row: under that
/// version it would contradict what subscribers hold, so it answers its one read only. Before
/// the first fold (version 0) there is nothing to contradict.
fn shareable(snapshot: &Snapshot) -> bool {
    snapshot.source != SnapshotSource::Live || snapshot.version == 0
}
