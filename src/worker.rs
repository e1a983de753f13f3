//! The outbox fold: turns committed submissions into new summary snapshots.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bus::Bus;
use crate::metrics::Metrics;
use crate::publisher::SnapshotPublisher;
use crate::store::{FoldBatch, Store};

/// Checks that the cache holds the summary's version this often when idle, which repairs a
/// cache left behind by a worker that died between its commit and its publish.
const HEAL_EVERY_IDLE_TICKS: u32 = 10;

/// How a worker folds.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Most outbox rows folded in one transaction.
    pub batch_size: i64,
    /// How often an idle worker looks at the outbox when no wake-up arrives.
    pub poll: Duration,
    /// Test hook, see [`FoldBatch::pause_before_commit`].
    pub fold_pause: Duration,
    /// After a busy fold (at least [`BUSY_FOLD_ROWS`] rows, fewer than `batch_size`), the
    /// next starts this long after it started, or sooner once a batch has come in at its
    /// rate (see `rest_before_next_fold`).
    pub fold_interval: Duration,
}

/// A fold of this many rows or more is taken as a sign that writes keep coming: the next may
/// wait ([`WorkerSettings::fold_interval`]). A few submissions a second fold one or two rows
/// at a time, and each as soon as it is written.
pub const BUSY_FOLD_ROWS: usize = 10;

/// Wakes the workers after a submission: this process's at once, every other through the bus.
#[derive(Clone)]
pub struct WorkerWaker {
    local: Arc<Notify>,
    bus: Arc<dyn Bus>,
}

impl WorkerWaker {
    pub fn new(local: Arc<Notify>, bus: Arc<dyn Bus>) -> Self {
        WorkerWaker { local, bus }
    }

    /// Returns at once: the nudge to other processes goes out in the background, so a slow or
    /// missing Redis never delays a submission (workers also poll).
    pub fn wake(&self) {
        self.local.notify_one();
        let bus = self.bus.clone();
        tokio::spawn(async move {
            if let Err(error) = bus.nudge_workers().await {
                tracing::debug!(%error, "could not nudge workers; they will poll");
            }
        });
    }
}

/// How long to wait before the next fold, after one of `rows` rows (at most `batch_size`) that
/// started `since_start` ago: while busy, the next starts `interval` after this one did,
/// gathering what comes meanwhile; otherwise at once. A full fold left rows behind: resting
/// then would cap the fold at `batch_size` rows per interval (5,000 a second by default on
/// PostgreSQL), below what the writes can reach, and the outbox would grow without end.
///
/// `gathered_over` is how long the rows of this fold had to come in (since the previous fold
/// started, when there was one): at their rate, once a full batch would have come in before
/// the interval is out, the next fold starts then instead. Waiting out the interval at a rate
/// above `batch_size` per interval let the outbox reach a batch and more before each fold,
/// and with what came in during the fold, close to two batches (the outbox's bound).
fn rest_before_next_fold(
    rows: usize,
    batch_size: i64,
    since_start: Duration,
    interval: Duration,
    gathered_over: Option<Duration>,
) -> Duration {
    let full = usize::try_from(batch_size).is_ok_and(|size| rows >= size);
    if rows < BUSY_FOLD_ROWS || full {
        return Duration::ZERO;
    }
    let until_a_batch = match (
        gathered_over,
        u32::try_from(batch_size),
        u32::try_from(rows),
    ) {
        (Some(over), Ok(batch), Ok(rows)) => over.saturating_mul(batch) / rows,
        _ => interval,
    };
    interval.min(until_a_batch).saturating_sub(since_start)
}

pub struct Worker {
    store: Arc<dyn Store>,
    publisher: SnapshotPublisher,
    /// Notified by this process's [`WorkerWaker`] and by nudges from the bus.
    wake: Arc<Notify>,
    settings: WorkerSettings,
    metrics: Metrics,
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        publisher: SnapshotPublisher,
        wake: Arc<Notify>,
        settings: WorkerSettings,
        metrics: Metrics,
    ) -> Self {
        Worker {
            store,
            publisher,
            wake,
            settings,
            metrics,
        }
    }

    /// Folds until `shutdown` is cancelled; a fold in progress is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let WorkerSettings {
            batch_size,
            poll,
            fold_pause,
            fold_interval,
        } = self.settings;
        tracing::info!(batch_size, "outbox worker started");
        self.publisher.heal(self.store.as_ref()).await;
        let mut idle_ticks = 0u32;
        // When the last fold that found rows started, while folds keep finding rows.
        let mut previous_start: Option<std::time::Instant> = None;
        while !shutdown.is_cancelled() {
            // The span names the batch it carried (its outbox rows, one per submission, in id
            // order), so a submission can be followed from its write to its fold and push.
            let batch = tracing::info_span!(
                "fold_batch",
                limit = batch_size,
                rows = tracing::field::Empty,
                first_outbox_id = tracing::field::Empty,
                last_outbox_id = tracing::field::Empty,
                version = tracing::field::Empty,
            );
            let started = std::time::Instant::now();
            match self
                .store
                .fold_outbox(FoldBatch {
                    max_rows: batch_size,
                    pause_before_commit: fold_pause,
                })
                .instrument(batch.clone())
                .await
            {
                Ok(Some(fold)) => {
                    batch.record("rows", fold.rows);
                    batch.record("first_outbox_id", fold.outbox_ids.0);
                    batch.record("last_outbox_id", fold.outbox_ids.1);
                    batch.record("version", fold.snapshot.version);
                    tracing::debug!(
                        parent: &batch,
                        total = fold.snapshot.total_submissions,
                        "folded"
                    );
                    self.publisher
                        .publish(&fold.snapshot)
                        .instrument(batch)
                        .await;
                    self.metrics.fold(
                        i64::try_from(fold.rows).unwrap_or(i64::MAX),
                        started.elapsed(),
                    );
                    idle_ticks = 0;
                    let rest = rest_before_next_fold(
                        fold.rows,
                        batch_size,
                        started.elapsed(),
                        fold_interval,
                        previous_start.map(|previous| started.duration_since(previous)),
                    );
                    previous_start = Some(started);
                    if !rest.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(rest) => {}
                            _ = shutdown.cancelled() => {}
                        }
                    }
                    continue;
                }
                Ok(None) => previous_start = None,
                Err(error) => {
                    previous_start = None;
                    self.metrics.fold_failed();
                    tracing::error!(%error, "fold failed; retrying");
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {
                    idle_ticks += 1;
                    if idle_ticks % HEAL_EVERY_IDLE_TICKS == 0 {
                        self.publisher.heal(self.store.as_ref()).await;
                    }
                }
                _ = shutdown.cancelled() => {}
            }
        }
        tracing::info!("outbox worker stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_busy_fold_makes_the_next_wait_out_the_interval() {
        let ms = Duration::from_millis;
        let rest = |rows, since_start| rest_before_next_fold(rows, 500, since_start, ms(50), None);
        assert_eq!(rest(BUSY_FOLD_ROWS, ms(8)), ms(42));
        assert_eq!(rest(499, ms(8)), ms(42));
        // A fold that took the whole interval, or none configured: at once.
        assert_eq!(rest(499, ms(60)), Duration::ZERO);
        assert_eq!(
            rest_before_next_fold(499, 500, ms(8), Duration::ZERO, None),
            Duration::ZERO
        );
        // A few submissions are folded as soon as they come.
        assert_eq!(rest(BUSY_FOLD_ROWS - 1, ms(1)), Duration::ZERO);
    }

    #[test]
    fn a_full_fold_is_followed_at_once() {
        let ms = Duration::from_millis;
        assert_eq!(
            rest_before_next_fold(500, 500, ms(8), ms(50), Some(ms(50))),
            Duration::ZERO
        );
        assert_eq!(
            rest_before_next_fold(20, 20, ms(1), ms(60_000), None),
            Duration::ZERO
        );
        assert_eq!(rest_before_next_fold(19, 20, ms(1), ms(50), None), ms(49));
    }

    #[test]
    fn at_more_than_a_batch_per_interval_the_next_fold_starts_when_a_batch_has_come_in() {
        let ms = Duration::from_millis;
        // 250 rows came in over 25 ms (10,000 a second): 500 take 50 ms, so the next fold
        // starts 50 ms after this one did, not 100.
        assert_eq!(
            rest_before_next_fold(250, 500, ms(10), ms(100), Some(ms(25))),
            ms(40)
        );
        // 200 rows over 100 ms (2,000 a second) fill no batch within the interval: wait it out.
        assert_eq!(
            rest_before_next_fold(200, 500, ms(10), ms(100), Some(ms(100))),
            ms(90)
        );
        // The fold itself took longer than a batch takes to come in: at once.
        assert_eq!(
            rest_before_next_fold(400, 500, ms(30), ms(100), Some(ms(20))),
            Duration::ZERO
        );
        // No rate known (the first fold after a quiet spell): the interval.
        assert_eq!(
            rest_before_next_fold(400, 500, ms(10), ms(100), None),
            ms(90)
        );
    }
}
