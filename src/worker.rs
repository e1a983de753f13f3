//! The outbox fold: turns committed submissions into new summary snapshots.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::aggregates::announce;
use crate::bus::Bus;
use crate::cache::SnapshotCache;
use crate::domain::Snapshot;
use crate::store::{FoldBatch, Store};

/// Checks that the cache holds the summary's version this often when idle, which repairs a
/// cache left behind by a worker that died between its commit and its publish.
const HEAL_EVERY_IDLE_TICKS: u32 = 10;

pub struct Worker {
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn SnapshotCache>,
    pub bus: Arc<dyn Bus>,
    pub wake: Arc<Notify>,
    pub batch_size: i64,
    pub poll: Duration,
    /// Test hook, see [`FoldBatch::pause_before_commit`].
    pub fold_pause: Duration,
}

impl Worker {
    /// Folds until `shutdown` is cancelled; a fold in progress is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(batch_size = self.batch_size, "outbox worker started");
        self.heal().await;
        let mut idle_ticks = 0u32;
        while !shutdown.is_cancelled() {
            let batch = tracing::info_span!("fold_batch", limit = self.batch_size);
            match self
                .store
                .fold_outbox(FoldBatch {
                    max_rows: self.batch_size,
                    pause_before_commit: self.fold_pause,
                })
                .instrument(batch.clone())
                .await
            {
                Ok(Some(snapshot)) => {
                    self.deliver(&snapshot).instrument(batch).await;
                    idle_ticks = 0;
                    continue;
                }
                Ok(None) => {}
                Err(error) => tracing::error!(%error, "fold failed; retrying"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll) => {
                    idle_ticks += 1;
                    if idle_ticks % HEAL_EVERY_IDLE_TICKS == 0 {
                        self.heal().await;
                    }
                }
                _ = shutdown.cancelled() => {}
            }
        }
        tracing::info!("outbox worker stopped");
    }

    async fn deliver(&self, snapshot: &Snapshot) {
        tracing::debug!(
            version = snapshot.version,
            total = snapshot.total_submissions,
            "folded"
        );
        announce(self.cache.as_ref(), self.bus.as_ref(), snapshot).await;
    }

    /// Unlike a fold, publishes only when the cache was behind: then nobody announced this
    /// version yet (its worker died between commit and publish).
    async fn heal(&self) {
        match self.store.summary_snapshot().await {
            Ok(Some(snapshot)) => match self.cache.put_if_newer(&snapshot).await {
                Ok(true) => {
                    tracing::info!(version = snapshot.version, "cache was behind the summary");
                    if let Err(error) = self.bus.publish_snapshot(&snapshot).await {
                        tracing::warn!(%error, "publish failed");
                    }
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "cache write failed"),
            },
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "summary read failed"),
        }
    }
}
