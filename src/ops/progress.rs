//! Progress of the long operator commands, on stderr so that stdout keeps only their result:
//! on a terminal an `indicatif` bar with rate and ETA (or a spinner with the elapsed time),
//! elsewhere (a pipe, a log file, CI) plain lines, since a redrawn bar there is a heap of
//! carriage returns and escape codes.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use tokio::task::JoinHandle;

use crate::store::{RebuildProgress, RebuildStep};

/// Plain lines come at every tenth of the work, and at least this often while it goes on.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// How often a spinner without a terminal says it is still running.
const STILL_RUNNING_EVERY: Duration = Duration::from_secs(10);

const BAR_TEMPLATE: &str =
    "{prefix}: [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {msg} ({rate}, ETA {eta})";
const SPINNER_TEMPLATE: &str = "{prefix}: {spinner} {msg} [{elapsed_precise}]";

fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Progress through a known amount of work.
pub struct Progress {
    label: &'static str,
    unit: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    output: Output,
}

enum Output {
    Bar(ProgressBar),
    Lines {
        sink: Box<dyn Write + Send>,
        /// The next tenth of the work (1..=10) that earns a line.
        next_tenth: u64,
        last_line: Instant,
    },
}

impl Progress {
    /// A bar on a terminal, lines otherwise; `unit` names what `total` counts.
    pub fn start(label: &'static str, unit: &'static str, total: u64) -> Progress {
        if !stderr_is_terminal() {
            return Progress::lines(label, unit, total, Box::new(std::io::stderr()));
        }
        let bar = ProgressBar::new(total)
            .with_style(bar_style(BAR_TEMPLATE))
            .with_prefix(label)
            .with_message(unit);
        Progress::with_output(label, unit, total, Output::Bar(bar))
    }

    /// Plain lines into `sink`, whatever it is.
    pub fn lines(
        label: &'static str,
        unit: &'static str,
        total: u64,
        sink: Box<dyn Write + Send>,
    ) -> Progress {
        let output = Output::Lines {
            sink,
            next_tenth: 1,
            last_line: Instant::now(),
        };
        Progress::with_output(label, unit, total, output)
    }

    fn with_output(
        label: &'static str,
        unit: &'static str,
        total: u64,
        output: Output,
    ) -> Progress {
        Progress {
            label,
            unit,
            total,
            done: 0,
            started: Instant::now(),
            output,
        }
    }

    /// `n` more units are done.
    pub fn advance(&mut self, n: u64) {
        self.done = self.done.saturating_add(n).min(self.total);
        let line = match &mut self.output {
            Output::Bar(bar) => {
                bar.set_position(self.done);
                return;
            }
            Output::Lines {
                next_tenth,
                last_line,
                ..
            } => {
                let tenth = tenths(self.done, self.total);
                let due = tenth >= *next_tenth || last_line.elapsed() >= LINE_EVERY;
                // The last line is `finish`'s.
                if !due || self.done == self.total {
                    return;
                }
                *next_tenth = tenth + 1;
                *last_line = Instant::now();
                self.line()
            }
        };
        self.write_line(&line);
    }

    /// Clears the bar, or writes the final line.
    pub fn finish(mut self) {
        match &self.output {
            Output::Bar(bar) => bar.finish_and_clear(),
            Output::Lines { .. } => {
                let line = self.line();
                self.write_line(&line);
            }
        }
    }

    fn line(&self) -> String {
        let elapsed = self.started.elapsed();
        let rate = per_second(self.done, elapsed);
        let percent = self.done.saturating_mul(100) / self.total.max(1);
        let mut line = format!(
            "{}: {}/{} {} ({percent}%) in {:.1} s, {rate:.0}/s",
            self.label,
            self.done,
            self.total,
            self.unit,
            elapsed.as_secs_f64()
        );
        if self.done < self.total && rate > 0.0 {
            let eta = (self.total - self.done) as f64 / rate;
            line.push_str(&format!(", ETA {eta:.0} s"));
        }
        line
    }

    fn write_line(&mut self, line: &str) {
        if let Output::Lines { sink, .. } = &mut self.output {
            // Progress is a courtesy: a closed stderr must not stop the work.
            let _ = writeln!(sink, "{line}");
            let _ = sink.flush();
        }
    }
}

/// Which tenth of `total` has been reached (0..=10).
fn tenths(done: u64, total: u64) -> u64 {
    done.saturating_mul(10) / total.max(1)
}

/// Units per second; 0 before any time has passed.
pub fn per_second(done: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        done as f64 / seconds
    } else {
        0.0
    }
}

fn bar_style(template: &str) -> ProgressStyle {
    // The templates are constants of this file, checked by a test; a bad one falls back to
    // indicatif's default rather than failing the command.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        // indicatif's `{per_sec}` shows four decimals of submissions per second.
        .with_key(
            "rate",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{:.0}/s", state.per_sec());
            },
        )
}

const STEPS_TEMPLATE: &str = "{prefix}: [{elapsed_precise}] {wide_bar} ~{pos}% {msg} (ETA {eta})";

/// Progress of a rebuild, step by step: each step is SQL that reports nothing until it ends,
/// so the share of the work done is estimated from the steps' usual shares
/// ([`RebuildStep::share`]). On a terminal a bar of that share with indicatif's ETA; elsewhere
/// the start line, one line per step with the share and an ETA, "still running" lines and the
/// final line.
pub struct StepProgress {
    spinner: Spinner,
    bar: Option<ProgressBar>,
}

impl StepProgress {
    /// Starts showing that `what` is being done. Call within a tokio runtime.
    pub fn start(label: &'static str, what: &str) -> StepProgress {
        if stderr_is_terminal() {
            let bar = ProgressBar::new(100)
                .with_style(bar_style(STEPS_TEMPLATE))
                .with_prefix(label)
                .with_message(what.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            StepProgress {
                spinner: Spinner {
                    label,
                    started: Instant::now(),
                    output: SpinnerOutput::Bar(bar.clone()),
                },
                bar: Some(bar),
            }
        } else {
            StepProgress {
                spinner: Spinner::start(label, what),
                bar: None,
            }
        }
    }

    /// What the rebuild calls as each step starts.
    pub fn reporter(&self) -> RebuildProgress {
        let (label, started, bar) = (self.spinner.label, self.spinner.started, self.bar.clone());
        Arc::new(move |step: RebuildStep| {
            let index = RebuildStep::ALL
                .iter()
                .position(|s| *s == step)
                .unwrap_or(0);
            let done: u64 = RebuildStep::ALL[..index].iter().map(|s| s.share()).sum();
            let what = format!(
                "step {}/{}: {}",
                index + 1,
                RebuildStep::ALL.len(),
                step.describe()
            );
            match &bar {
                Some(bar) => {
                    bar.set_position(done);
                    bar.set_message(what);
                }
                None => {
                    let elapsed = started.elapsed().as_secs_f64();
                    let eta = if done > 0 {
                        format!(", ETA {:.0} s", elapsed / done as f64 * (100 - done) as f64)
                    } else {
                        String::new()
                    };
                    eprintln!("{label}: {what} (about {done}% done after {elapsed:.1} s{eta})");
                }
            }
        })
    }

    /// Stops showing progress; returns how long the rebuild took.
    pub fn finish(self) -> Duration {
        self.spinner.finish()
    }
}

/// Progress of one step whose length nobody knows in advance, such as the single SQL
/// statement of a rebuild: the database reports nothing about it until it ends, so there is no
/// ETA to give, only the time it has taken so far.
pub struct Spinner {
    label: &'static str,
    started: Instant,
    output: SpinnerOutput,
}

enum SpinnerOutput {
    Bar(ProgressBar),
    Lines(JoinHandle<()>),
}

impl Spinner {
    /// Starts showing that `what` is being done. Call within a tokio runtime: without a
    /// terminal a task writes the "still running" lines.
    pub fn start(label: &'static str, what: &str) -> Spinner {
        let started = Instant::now();
        let output = if stderr_is_terminal() {
            let bar = ProgressBar::new_spinner()
                .with_style(bar_style(SPINNER_TEMPLATE))
                .with_prefix(label)
                .with_message(what.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            SpinnerOutput::Bar(bar)
        } else {
            eprintln!("{label}: {what}");
            SpinnerOutput::Lines(tokio::spawn(async move {
                let mut every = tokio::time::interval(STILL_RUNNING_EVERY);
                // The first tick is immediate, and the start line already said it.
                every.tick().await;
                loop {
                    every.tick().await;
                    eprintln!(
                        "{label}: still running after {:.0} s",
                        started.elapsed().as_secs_f64()
                    );
                }
            }))
        };
        Spinner {
            label,
            started,
            output,
        }
    }

    /// Stops showing progress; returns how long the step took.
    pub fn finish(self) -> Duration {
        let elapsed = self.started.elapsed();
        match self.output {
            SpinnerOutput::Bar(bar) => bar.finish_and_clear(),
            SpinnerOutput::Lines(ticker) => {
                ticker.abort();
                eprintln!("{}: done in {:.2} s", self.label, elapsed.as_secs_f64());
            }
        }
        elapsed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A sink the test can read after the progress wrote into it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("sink").clone()).expect("utf-8")
        }
    }

    #[test]
    fn the_templates_are_valid() {
        for template in [BAR_TEMPLATE, SPINNER_TEMPLATE] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn plain_lines_come_at_each_tenth_and_once_at_the_end() {
        let sink = Shared::default();
        let mut progress = Progress::lines("seed", "submissions", 1000, Box::new(sink.clone()));
        for _ in 0..40 {
            progress.advance(25);
        }
        progress.finish();
        let text = sink.text();
        let lines: Vec<&str> = text.lines().collect();
        // 100, 200, …, 900, and the final 1000.
        assert_eq!(lines.len(), 10, "{text}");
        assert!(
            lines[0].starts_with("seed: 100/1000 submissions (10%) in "),
            "{text}"
        );
        assert!(lines[0].contains(", ETA "), "{text}");
        assert!(
            lines[9].starts_with("seed: 1000/1000 submissions (100%) in "),
            "{text}"
        );
        assert!(!lines[9].contains("ETA"), "{text}");
        assert!(!text.contains('\r') && !text.contains('\u{1b}'), "{text:?}");
    }

    #[test]
    fn a_big_step_earns_one_line_not_one_per_tenth_it_crosses() {
        let sink = Shared::default();
        let mut progress = Progress::lines("seed", "submissions", 100, Box::new(sink.clone()));
        progress.advance(55);
        progress.advance(45);
        progress.finish();
        let text = sink.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("seed: 55/100 submissions (55%)"),
            "{text}"
        );
    }
}
