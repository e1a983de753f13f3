//! The read path: cache → summary → live SQL, each answer also offered to the feed.
//!
//! Distributions (see [`DetailedSnapshot`]) take another path: they are up to 10,001 counts
//! per category, too much to copy through the cache on every fold, so each process reads them
//! from the summary (live SQL as the last resort) with the snapshot they belong to, at most
//! once per version, and every read of that version shares the copy.

use std::sync::{Arc, Mutex, PoisonError};

use crate::cache::SnapshotCache;
use crate::domain::{DetailedSnapshot, Snapshot, SnapshotSource};
use crate::feed::SnapshotFeed;
use crate::store::{Store, StoreError};

/// Reads aggregates through the tiers.
#[derive(Clone)]
pub struct Aggregates {
    store: Arc<dyn Store>,
    cache: Arc<dyn SnapshotCache>,
    feed: SnapshotFeed,
    details: Arc<Details>,
}

/// The newest detailed snapshot this process has read, and the turn to read a newer one, so
/// that the readers who all find it old at once wait for one read instead of each making one.
#[derive(Default)]
struct Details {
    newest: Mutex<Option<Arc<DetailedSnapshot>>>,
    reading: tokio::sync::Mutex<()>,
}

impl Details {
    /// The kept snapshot, when it is at least as new as `wanted`.
    fn at_least(&self, wanted: &Snapshot) -> Option<Arc<DetailedSnapshot>> {
        let newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
        newest
            .as_ref()
            .filter(|kept| {
                let kept = &kept.snapshot;
                wanted.version < 0
                    || (kept.generation == wanted.generation && kept.version >= wanted.version)
            })
            .cloned()
    }

    fn keep(&self, read: &Arc<DetailedSnapshot>) {
        let mut newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
        if newest
            .as_ref()
            .is_none_or(|kept| read.snapshot.supersedes(&kept.snapshot))
        {
            *newest = Some(read.clone());
        }
    }
}

impl Aggregates {
    pub fn new(store: Arc<dyn Store>, cache: Arc<dyn SnapshotCache>, feed: SnapshotFeed) -> Self {
        Aggregates {
            store,
            cache,
            feed,
            details: Arc::default(),
        }
    }

    /// The snapshot with every category's distribution, all of one version, at least as new as
    /// `wanted` (a snapshot the caller already holds) when the database has it.
    ///
    /// Read from the summary, or by live SQL when there is none (or it is stale); a version
    /// read once is shared by every later caller until a newer one is wanted.
    pub async fn read_detailed(
        &self,
        wanted: &Snapshot,
    ) -> Result<Arc<DetailedSnapshot>, StoreError> {
        if let Some(kept) = self.details.at_least(wanted) {
            return Ok(kept);
        }
        let _turn = self.details.reading.lock().await;
        // Whoever held the turn may have read what is wanted.
        if let Some(kept) = self.details.at_least(wanted) {
            return Ok(kept);
        }
        let detailed = match self.store.summary_details().await? {
            Some(summary) => summary,
            None => self.store.live_details().await?,
        };
        let detailed = Arc::new(detailed);
        if shareable(&detailed.snapshot) {
            self.details.keep(&detailed);
            self.feed.offer_from_database(detailed.snapshot.clone());
        }
        Ok(detailed)
    }

    /// The store, for reads that have no cheaper tier (the trend).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
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
