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

    /// Takes `snapshot`, heard of from another process or a cache, if it is newer than the
    /// current one; returns whether it did.
    pub fn offer(&self, snapshot: Snapshot) -> bool {
        self.take_if(snapshot, Snapshot::is_newer_than)
    }

    /// Takes `snapshot`, just read from or committed to this process's database, if it
    /// supersedes the current one: that includes a new generation with lower versions (the
    /// database was recreated or restored), which [`Self::offer`] would refuse.
    pub fn offer_from_database(&self, snapshot: Snapshot) -> bool {
        self.take_if(snapshot, Snapshot::supersedes)
    }

    fn take_if(&self, snapshot: Snapshot, replaces: fn(&Snapshot, &Snapshot) -> bool) -> bool {
        self.sender.send_if_modified(|current| {
            let take = replaces(&snapshot, current);
            if take {
                *current = snapshot;
            }
            take
        })
    }

    /// Whether `snapshot` belongs to the summary this process knows (the same generation),
    /// so that a cache holding it can be trusted. Before the first read nothing is known.
    pub fn knows_generation_of(&self, snapshot: &Snapshot) -> bool {
        let current = self.sender.borrow();
        current.version >= 0 && current.generation == snapshot.generation
    }

    /// What `read` makes of the newest snapshot, read in place: a hot read that needs only its
    /// version should not pay for a copy of every total.
    pub fn peek<T>(&self, read: impl FnOnce(&Snapshot) -> T) -> T {
        read(&self.sender.borrow())
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
