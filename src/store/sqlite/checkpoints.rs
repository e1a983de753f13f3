//! Copies the WAL into the database file on a thread of its own, off the commit path.
//!
//! SQLite's automatic checkpoint runs in the connection that commits, after its commit, so the
//! caller of the commit that crosses `wal_autocheckpoint` waits for the whole copy: every page
//! written since the last checkpoint, then a sync of the database file. With the WAL allowed to
//! reach 64 MiB (see `WAL_CHECKPOINT_PAGES`) that was one long stall of the one writer every
//! second or so under sustained writes, and every submission queued behind it waited too.
//!
//! Here a thread runs a `PASSIVE` checkpoint a few times a second while this process writes.
//! `PASSIVE` takes no write lock: the writer goes on committing while the pages are copied and
//! synced. The automatic checkpoint stays as the backstop: SQLite starts the WAL file over only
//! once a checkpoint has copied all of it, which under sustained writes a checkpoint running
//! beside the writer seldom does, so the writer's own checkpoint still runs at the threshold,
//! but it finds only the pages written since this thread's last copy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::SqliteConnection;

use crate::store::StoreError;

/// How often the thread checkpoints while writes go on. Short enough that each copy is a few
/// MiB (tens of milliseconds of disk time); long enough that a hot page (an index's right edge,
/// a summary row) rewritten by every batch is copied a few times a second, not once per batch.
const INTERVAL: Duration = Duration::from_millis(250);

/// The checkpoint thread of one store. Dropping it stops the thread (within [`INTERVAL`]).
pub(super) struct Checkpoints {
    /// Set by each write of this process; the thread checkpoints only when it is set, so an
    /// idle process does no file I/O.
    written: Arc<AtomicBool>,
    /// Never sent on: the thread ends when this is dropped.
    _stop: mpsc::Sender<()>,
}

impl Checkpoints {
    /// Starts the thread, which checkpoints through `conn`, a connection of its own.
    pub(super) fn start(conn: SqliteConnection) -> Result<Self, StoreError> {
        let written = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = mpsc::channel();
        let flag = written.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoints".into())
            .spawn(move || run(conn, &flag, &stopped))
            .map_err(StoreError::Thread)?;
        Ok(Checkpoints {
            written,
            _stop: stop,
        })
    }

    /// Tells the thread that a transaction of this process wrote to the WAL.
    pub(super) fn wrote(&self) {
        self.written.store(true, Ordering::Relaxed);
    }
}

fn run(mut conn: SqliteConnection, written: &AtomicBool, stopped: &mpsc::Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        if !written.swap(false, Ordering::Relaxed) {
            continue;
        }
        // Raw SQL: the checkpoint pragma has no DSL. Busy (another checkpoint running, the
        // writer's own) is not an error for PASSIVE; a failure is logged and the next round
        // tries again, since the writer's automatic checkpoint still bounds the WAL.
        if let Err(error) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
            tracing::warn!(%error, "background WAL checkpoint failed");
        }
    }
}
