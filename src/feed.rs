//! The snapshot feed: the newest snapshot this process knows, pushed to every subscriber.

use std::sync::Arc;

use chrono::Utc;
use futures_util::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

use crate::domain::Snapshot;

/// The newest snapshot this process knows, shared by every subscriber.
///
/// A `watch` channel keeps one value, not a queue: a slow subscriber skips straight to the
/// newest snapshot and memory per subscriber stays constant. Only newer versions are accepted,
/// so nobody ever sees the version go back.
#[derive(Clone)]
pub struct SnapshotFeed {
    sender: Arc<watch::Sender<Snapshot>>,
}

impl Default for SnapshotFeed {
    /// Starts below any stored version (-1), so the first real snapshot always replaces it.
    fn default() -> Self {
        SnapshotFeed::new(Snapshot::empty(-1, Utc::now()))
    }
}

impl SnapshotFeed {
    pub fn new(initial: Snapshot) -> Self {
        SnapshotFeed {
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

    /// Whether `snapshot` is older than what the feed holds (then the feed's is the answer).
    pub fn is_ahead_of(&self, snapshot: &Snapshot) -> bool {
        self.sender.borrow().is_newer_than(snapshot)
    }

    /// The current snapshot at once, then each newer one (skipping any the reader was too slow
    /// to take). The start-up placeholder (version -1) is never sent: a subscriber that comes
    /// before the first real snapshot waits for it.
    pub fn subscribe(&self) -> impl Stream<Item = Snapshot> + Send + 'static {
        WatchStream::new(self.sender.subscribe())
            .filter(|snapshot| std::future::ready(snapshot.version >= 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(version: i64) -> Snapshot {
        Snapshot::empty(version, Utc::now())
    }

    #[tokio::test]
    async fn never_goes_back_and_slow_readers_skip_to_the_newest() {
        let feed = SnapshotFeed::new(at(1));
        let mut stream = feed.subscribe();
        assert_eq!(stream.next().await.map(|s| s.version), Some(1));
        assert!(feed.offer(at(3)));
        assert!(!feed.offer(at(2)));
        assert!(feed.offer(at(5)));
        // The reader was away for 3 and 5: it gets 5 only.
        assert_eq!(stream.next().await.map(|s| s.version), Some(5));
        assert_eq!(feed.current().version, 5);
    }
}
