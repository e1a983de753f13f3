//! Log lines gathered in memory and written out by a thread of their own every few
//! milliseconds, as one write.
//!
//! Under load the server logs a line per response. Written as they come, each line was a
//! `write` of its own on the request's thread: a tenth of the server's CPU in a profile, and on
//! a pipe every line also woke the reader. `tracing-appender`'s non-blocking writer moves the
//! write to a thread but wakes that thread for each line that finds it idle, and measured here
//! it was no better on a file (README, Benchmarks); this writer wakes no one: lines are appended
//! under a lock and the thread comes by on its own schedule.

use std::io::{self, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait before it is written.
const INTERVAL: Duration = Duration::from_millis(10);

/// Beyond this many bytes waiting, the thread that logs writes them out itself: memory stays
/// bounded and a flood of lines slows its sources down, as direct writes would.
const MAX_PENDING: usize = 1 << 20;

/// The [`MakeWriter`] to give the log layer.
pub struct BatchedWriter<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Clone for BatchedWriter<W> {
    fn clone(&self) -> Self {
        BatchedWriter {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<W> {
    /// Lines gathered since the last write: the only lock a logging thread takes, held for a
    /// copy of its line, never during a write.
    pending: Mutex<Vec<u8>>,
    /// The output and the buffer being written, held while writing. Taken before `pending`,
    /// so that batches are written in the order they were gathered.
    output: Mutex<Output<W>>,
}

struct Output<W> {
    out: W,
    writing: Vec<u8>,
}

impl<W: Write> Shared<W> {
    /// Writes every line gathered so far.
    fn write_out(&self) -> io::Result<()> {
        let mut output = lock(&self.output);
        let Output { out, writing } = &mut *output;
        std::mem::swap(&mut *lock(&self.pending), writing);
        if writing.is_empty() {
            return Ok(());
        }
        let written = out.write_all(writing).and_then(|()| out.flush());
        // Lines that could not be written are dropped, not retried forever: a log whose
        // output is gone must not grow without end.
        writing.clear();
        written
    }
}

/// Writes what is still waiting and stops the thread when dropped.
pub struct BatchedWriterGuard<W> {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared<W>>,
}

impl<W: Write> BatchedWriterGuard<W> {
    /// Writes the waiting lines now: before the process prints on the same stream itself,
    /// so that what it prints comes after the lines logged before it.
    pub fn write_now(&self) {
        // An error of standard output has nowhere to be logged.
        let _ = self.shared.write_out();
    }
}

impl<W> Drop for BatchedWriterGuard<W> {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A writer of batched lines into `out`, and the guard that writes the last of them.
pub fn batched<W: Write + Send + 'static>(
    out: W,
) -> io::Result<(BatchedWriter<W>, BatchedWriterGuard<W>)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Vec::with_capacity(64 * 1024)),
        output: Mutex::new(Output {
            out,
            writing: Vec::with_capacity(64 * 1024),
        }),
    });
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let shared = shared.clone();
            move || loop {
                let last = match stopped.recv_timeout(INTERVAL) {
                    Err(RecvTimeoutError::Timeout) => false,
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                };
                // An error of standard output has nowhere to be logged.
                let _ = shared.write_out();
                if last {
                    return;
                }
            }
        })?;
    Ok((
        BatchedWriter {
            shared: shared.clone(),
        },
        BatchedWriterGuard {
            stop: Some(stop),
            thread: Some(thread),
            shared,
        },
    ))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while appending leaves at worst a partial line: keep logging.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Appends a line to those gathered (the log layer writes each event in one call).
pub struct LineAppender<'a, W> {
    shared: &'a Shared<W>,
}

impl<W: Write> Write for LineAppender<'_, W> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let full = {
            let mut pending = lock(&self.shared.pending);
            pending.extend_from_slice(line);
            pending.len() >= MAX_PENDING
        };
        if full {
            self.shared.write_out()?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for BatchedWriter<W> {
    type Writer = LineAppender<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        LineAppender {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read while the writer holds it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("output").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn written(out: &Shared) -> String {
        String::from_utf8(out.0.lock().expect("output").clone()).expect("utf-8")
    }

    #[test]
    fn lines_come_out_in_order_within_the_interval() {
        let out = Shared::default();
        let (writer, _guard) = batched(out.clone()).expect("thread starts");
        writer.make_writer().write_all(b"one\n").expect("append");
        writer.make_writer().write_all(b"two\n").expect("append");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while written(&out).is_empty() {
            assert!(std::time::Instant::now() < deadline, "nothing written");
            std::thread::yield_now();
        }
        assert_eq!(written(&out), "one\ntwo\n");
    }

    #[test]
    fn dropping_the_guard_writes_what_waits() {
        let out = Shared::default();
        let (writer, guard) = batched(out.clone()).expect("thread starts");
        for i in 0..1000 {
            writeln!(writer.make_writer(), "line {i}").expect("append");
        }
        drop(guard);
        let text = written(&out);
        assert_eq!(text.lines().count(), 1000);
        assert_eq!(text.lines().last(), Some("line 999"));
    }

    #[test]
    fn write_now_writes_before_it_returns() {
        let out = Shared::default();
        let (writer, guard) = batched(out.clone()).expect("thread starts");
        writer.make_writer().write_all(b"before\n").expect("append");
        guard.write_now();
        assert_eq!(written(&out), "before\n");
    }

    /// An output whose writes wait until the test lets them through.
    struct Gate {
        entered: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
        out: Shared,
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _ = self.entered.send(());
            let _ = self.release.recv_timeout(Duration::from_secs(10));
            self.out.write(bytes)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_is_taken_while_a_write_is_stuck() {
        let (entered, writing) = mpsc::channel();
        let (release, released) = mpsc::channel();
        let out = Shared::default();
        let gate = Gate {
            entered,
            release: released,
            out: out.clone(),
        };
        let (writer, guard) = batched(gate).expect("thread starts");
        writer.make_writer().write_all(b"first\n").expect("append");
        writing
            .recv_timeout(Duration::from_secs(5))
            .expect("the writer thread writes the first line");
        // The output is stuck in that write; logging goes on.
        let (appended, done) = mpsc::channel();
        let logger = writer.clone();
        std::thread::spawn(move || {
            logger.make_writer().write_all(b"second\n").expect("append");
            let _ = appended.send(());
        });
        let taken = done.recv_timeout(Duration::from_secs(5));
        release.send(()).expect("release the first write");
        release.send(()).expect("release the second write");
        assert!(taken.is_ok(), "a line waited for the output");
        drop(guard);
        assert_eq!(written(&out), "first\nsecond\n");
    }

    #[test]
    fn past_the_bound_the_logging_thread_writes_itself() {
        let out = Shared::default();
        let (writer, _guard) = batched(out.clone()).expect("thread starts");
        let line = vec![b'x'; MAX_PENDING];
        writer.make_writer().write_all(&line).expect("append");
        // Written before the call returned, not at the writer thread's next round.
        assert_eq!(out.0.lock().expect("output").len(), MAX_PENDING);
    }
}
