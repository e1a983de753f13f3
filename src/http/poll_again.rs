//! A connection polled again at once when it wakes itself, instead of being rescheduled.
//!
//! hyper 1.12's HTTP/1 body channel wakes the connection's own task from inside that task's
//! poll: when the handler takes the request body, the channel wakes the body's sender (the
//! connection), though the sender has already finished. Tokio treats a task woken while it
//! runs as one that yields: it goes to the back of the run queue, and the other worker is
//! woken to steal it. So every POST paid a trip through the scheduler. With the load
//! generator on the same two cores that tripled the p99: 4.3 ms for a minimal handler that
//! reads the body, against 1.4 ms for the same handler dropping it unread, at the same p50
//! (`benches/hot_reads.rs`, wrk, 64 connections).
//!
//! [`PollAgain`] polls its future again right away when it was woken during its own poll, a
//! few times at most, so such a wake costs one more poll, not a reschedule. A wake from
//! anywhere else passes straight to the task's waker. Written here: the fix belongs in hyper
//! (wake the sender only while it is open), and no crate offers this adapter.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Polls in one go at most: a future that keeps waking itself (hyper yields after 16 rounds
/// of a busy connection) is rescheduled after these, so that it cannot starve the others.
const MAX_POLLS: usize = 4;

/// What a wake finds: whether the future is being polled now, and the task to wake when not.
struct Signal {
    polling: AtomicBool,
    /// Set by a wake that came while the future was being polled.
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Sequentially consistent, with the same in `poll`: either the poller sees `woken`
        // after its poll, or this sees the poll over and wakes the task. Both may happen (a
        // spurious poll), never neither (a lost wake).
        if self.polling.load(Ordering::SeqCst) {
            self.woken.store(true, Ordering::SeqCst);
            if self.polling.load(Ordering::SeqCst) {
                return;
            }
        }
        self.task.wake();
    }
}

/// `future`, polled again at once when it wakes itself during a poll.
pub struct PollAgain<F> {
    future: Pin<Box<F>>,
    signal: Arc<Signal>,
    waker: Waker,
}

impl<F: Future> PollAgain<F> {
    pub fn new(future: F) -> Self {
        let signal = Arc::new(Signal {
            polling: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            task: AtomicWaker::new(),
        });
        PollAgain {
            future: Box::pin(future),
            waker: Waker::from(signal.clone()),
            signal,
        }
    }
}

impl<F: Future> Future for PollAgain<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.signal.task.register(cx.waker());
        let mut inner = Context::from_waker(&this.waker);
        for _ in 0..MAX_POLLS {
            this.signal.woken.store(false, Ordering::SeqCst);
            this.signal.polling.store(true, Ordering::SeqCst);
            let polled = this.future.as_mut().poll(&mut inner);
            this.signal.polling.store(false, Ordering::SeqCst);
            if polled.is_ready() {
                return polled;
            }
            if !this.signal.woken.swap(false, Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        // Still waking itself: the others first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts the wakes of the task that polls the adapter.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Wakes itself in each of its first `self_wakes` polls, then is ready; counts its polls.
    struct WakesItself {
        self_wakes: usize,
        polls: usize,
    }

    impl Future for WakesItself {
        type Output = usize;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if self.polls > self.self_wakes {
                return Poll::Ready(self.polls);
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn task() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        (count, waker)
    }

    fn waking_itself(self_wakes: usize) -> PollAgain<WakesItself> {
        PollAgain::new(WakesItself {
            self_wakes,
            polls: 0,
        })
    }

    #[test]
    fn a_future_that_wakes_itself_is_polled_again_without_waking_the_task() {
        let (count, waker) = task();
        let mut cx = Context::from_waker(&waker);
        let mut future = waking_itself(2);
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Ready(3));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn one_that_keeps_waking_itself_is_rescheduled_after_a_few_polls() {
        let (count, waker) = task();
        let mut cx = Context::from_waker(&waker);
        let mut future = waking_itself(100);
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Pending);
        assert_eq!(future.future.polls, MAX_POLLS);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the task is woken to go on"
        );
    }

    #[test]
    fn a_wake_from_elsewhere_reaches_the_task() {
        let (count, waker) = task();
        let mut cx = Context::from_waker(&waker);
        // Pending without waking itself, keeping its waker for later (as I/O does).
        let kept = Arc::new(std::sync::Mutex::new(None::<Waker>));
        let keeper = kept.clone();
        let mut future = PollAgain::new(std::future::poll_fn(move |cx| {
            *keeper.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        }));
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Pending);
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        let later = kept.lock().unwrap().take().unwrap();
        later.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        // Woken, the task is due for a poll anyway: a second wake before it adds nothing.
        later.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        // Polled, it is woken again by the next wake.
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Pending);
        later.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }
}
