//! The read path (cache → summary → live SQL) and the process-wide view of the newest snapshot.

use std::sync::Arc;

use chrono::Utc;
use futures_util::Stream;
use tokio::sync::{watch, Notify};
use tokio_stream::wrappers::WatchStream;

use crate::bus::{Bus, BusHandler};
use crate::cache::SnapshotCache;
use crate::domain::{Snapshot, SnapshotSource};
use crate::store::{Store, StoreError};

/// The newest snapshot this process knows, shared by every subscriber.
///
/// A `watch` channel keeps one value, not a queue: a slow subscriber skips straight to the
/// newest snapshot and memory per subscriber stays constant. Only newer versions are accepted,
/// so nobody ever sees the version go back.
#[derive(Clone)]
pub struct LiveSnapshots {
    sender: Arc<watch::Sender<Snapshot>>,
}

impl LiveSnapshots {
    pub fn new(initial: Snapshot) -> Self {
        LiveSnapshots {
            sender: Arc::new(watch::channel(initial).0),
        }
    }

    /// Takes `snapshot` if it is newer than the current one; returns whether it did.
    pub fn offer(&self, snapshot: Snapshot) -> bool {
        self.sender.send_if_modified(|current| {
            let newer = snapshot.is_newer_than(current);
            if newer {
                *current = snapshot;
            }
            newer
        })
    }

    pub fn current(&self) -> Snapshot {
        self.sender.borrow().clone()
    }

    /// The current snapshot at once, then each newer one (skipping any the reader was too slow
    /// to take).
    pub fn subscribe(&self) -> impl Stream<Item = Snapshot> + Send + 'static {
        WatchStream::new(self.sender.subscribe())
    }
}

/// Reads aggregates through the tiers.
#[derive(Clone)]
pub struct Aggregates {
    store: Arc<dyn Store>,
    cache: Arc<dyn SnapshotCache>,
    live: LiveSnapshots,
}

impl Aggregates {
    pub fn new(store: Arc<dyn Store>, cache: Arc<dyn SnapshotCache>) -> Self {
        // Version -1 is below any stored version, so the first real snapshot always replaces it.
        let placeholder = Snapshot::empty(-1, Utc::now());
        Aggregates {
            store,
            cache,
            live: LiveSnapshots::new(placeholder),
        }
    }

    pub fn live(&self) -> &LiveSnapshots {
        &self.live
    }

    /// The newest snapshot the cheapest tier can give.
    ///
    /// A cache hit costs one cache round trip and no SQL. A cache failure is logged and the
    /// read goes on to the database: the cache is a copy, never the truth.
    pub async fn read(&self) -> Result<Snapshot, StoreError> {
        match self.cache.get().await {
            Ok(Some(snapshot)) => {
                self.live.offer(snapshot.clone());
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
        self.live.offer(snapshot.clone());
        Ok(snapshot)
    }

    /// Brings this process's view up to date after it may have missed published snapshots.
    pub async fn resync(&self) {
        if let Err(error) = self.read().await {
            tracing::warn!(%error, "could not resync the live snapshot");
        }
    }
}

/// Fans what the bus delivers out to this process: snapshots to subscribers, nudges to the
/// worker, resubscriptions to a resync.
pub struct Fanout {
    pub live: LiveSnapshots,
    pub worker_wake: Arc<Notify>,
    pub resync: Arc<Notify>,
}

impl BusHandler for Fanout {
    fn snapshot_published(&self, snapshot: Snapshot) {
        self.live.offer(snapshot);
    }

    fn outbox_nudged(&self) {
        self.worker_wake.notify_one();
    }

    fn resubscribed(&self) {
        self.resync.notify_one();
    }
}

/// Puts a freshly committed snapshot in the cache and publishes it. Both are best effort: the
/// summary already holds the truth, and the next fold or heal repeats them. It publishes even
/// when the cache already had this version, because a reader may have backfilled the cache
/// from the summary before this call, and subscribers learn of versions only from the bus.
pub async fn announce(cache: &dyn SnapshotCache, bus: &dyn Bus, snapshot: &Snapshot) {
    if let Err(error) = cache.put_if_newer(snapshot).await {
        tracing::warn!(%error, version = snapshot.version, "cache write failed");
    }
    if let Err(error) = bus.publish_snapshot(snapshot).await {
        tracing::warn!(%error, version = snapshot.version, "publish failed");
    }
}

/// Recomputes the summary, then caches and announces the result like a fold would.
pub async fn rebuild(app: &crate::app::App) -> Result<Snapshot, StoreError> {
    let snapshot = app.store.rebuild_summary().await?;
    announce(app.cache.as_ref(), app.bus.as_ref(), &snapshot).await;
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn at(version: i64) -> Snapshot {
        Snapshot::empty(version, Utc::now())
    }

    #[tokio::test]
    async fn never_goes_back_and_slow_readers_skip_to_the_newest() {
        let live = LiveSnapshots::new(at(1));
        let mut stream = live.subscribe();
        assert_eq!(stream.next().await.map(|s| s.version), Some(1));
        assert!(live.offer(at(3)));
        assert!(!live.offer(at(2)));
        assert!(live.offer(at(5)));
        // The reader was away for 3 and 5: it gets 5 only.
        assert_eq!(stream.next().await.map(|s| s.version), Some(5));
        assert_eq!(live.current().version, 5);
    }
}
