//! Group commit: submissions that arrive together are written in one transaction.
//!
//! A commit costs a disk sync (and on PostgreSQL a round trip); a submission costs a few
//! rows. Writing each submission in its own transaction caps the write rate at the rate of
//! commits; here a writer task takes every submission queued, waits a moment (the window) for
//! more, and hands the batch to [`Store::submit_batch`], up to `max_in_flight` batches at
//! once. While those commit, new submissions queue, so the busier the service the larger the
//! batches; an idle service pays only the window.
//!
//! Each caller still gets its own answer, and only once its batch has committed. A taken
//! idempotency key concerns its submission alone (the store replays it); a batch that fails
//! for any reason other than the database being unavailable is retried one submission at a
//! time, so that one bad row cannot fail the others.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::config::GroupCommitSettings;
use crate::metrics::Metrics;
use crate::store::{NewSubmission, Store, StoreError, SubmitOutcome};
use crate::worker::WorkerWaker;

type Reply = oneshot::Sender<Result<SubmitOutcome, StoreError>>;

/// The queue into the writer task. Cheap to clone; the writer stops when every clone is gone.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<(NewSubmission, Reply)>,
}

impl GroupCommit {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(
        store: Arc<dyn Store>,
        waker: WorkerWaker,
        settings: GroupCommitSettings,
        metrics: Metrics,
    ) -> Self {
        let settings = GroupCommitSettings {
            max_batch: settings.max_batch.max(1),
            max_in_flight: settings.max_in_flight.max(1),
            ..settings
        };
        // Bounded: when the database cannot keep up, callers wait here (their requests hold
        // their connections) instead of the queue growing without limit.
        let (queue, receiver) = mpsc::channel(settings.max_batch * settings.max_in_flight * 4);
        tokio::spawn(write_batches(receiver, store, waker, settings, metrics));
        GroupCommit { queue }
    }

    /// Writes `submission` with the next batch; returns once that batch has committed.
    pub async fn submit(&self, submission: NewSubmission) -> Result<SubmitOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((submission, reply))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn write_batches(
    mut queue: mpsc::Receiver<(NewSubmission, Reply)>,
    store: Arc<dyn Store>,
    waker: WorkerWaker,
    settings: GroupCommitSettings,
    metrics: Metrics,
) {
    let slots = Arc::new(Semaphore::new(settings.max_in_flight));
    while let Some(first) = queue.recv().await {
        // A slot first: what queues while every slot is busy joins this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let batch = gather(&mut queue, first, &settings).await;
        metrics.write_batch(batch.len());
        let (store, waker) = (store.clone(), waker.clone());
        tokio::spawn(async move {
            commit(store.as_ref(), &waker, batch).await;
            drop(slot);
        });
    }
}

/// `first` and whatever else is queued, waiting up to the window for more.
///
/// The window is a few hundred microseconds, below the timer's millisecond resolution, so it
/// is waited out by yielding to the scheduler: requests already being parsed on other tasks
/// get to join.
async fn gather(
    queue: &mut mpsc::Receiver<(NewSubmission, Reply)>,
    first: (NewSubmission, Reply),
    settings: &GroupCommitSettings,
) -> Vec<(NewSubmission, Reply)> {
    let deadline = Instant::now() + settings.window;
    let mut batch = vec![first];
    loop {
        while batch.len() < settings.max_batch {
            match queue.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        if batch.len() >= settings.max_batch || Instant::now() >= deadline {
            return batch;
        }
        tokio::task::yield_now().await;
    }
}

async fn commit(store: &dyn Store, waker: &WorkerWaker, batch: Vec<(NewSubmission, Reply)>) {
    let (submissions, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    let size = submissions.len();
    let outcomes = match store.submit_batch(submissions.clone()).await {
        Ok(outcomes) => outcomes,
        Err(error) if error.is_unavailable() || size == 1 => {
            let error = Arc::new(error);
            (0..size)
                .map(|_| Err(StoreError::Shared(error.clone())))
                .collect()
        }
        Err(error) => {
            tracing::warn!(%error, size, "batch of submissions failed; writing them one by one");
            let mut outcomes = Vec::with_capacity(size);
            for submission in submissions {
                outcomes.push(store.submit(submission).await);
            }
            outcomes
        }
    };
    // One nudge per batch: the worker folds the whole batch in one go anyway.
    if outcomes
        .iter()
        .any(|outcome| matches!(outcome, Ok(SubmitOutcome::Created(_))))
    {
        waker.wake();
    }
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        // A caller that went away (its request was dropped) needs no answer.
        let _ = reply.send(outcome);
    }
}
