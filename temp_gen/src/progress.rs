//! Progress where a person waits: with `--count` on a terminal, a bar with
//! the rate and the time left; otherwise a plain log line now and then.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use temps::RunningMean;
use tracing::info;

/// How `temp_gen` shows its progress.
#[derive(Debug)]
pub enum Progress {
    /// A bar on the terminal (stderr).
    Bar(ProgressBar),
    /// A log line every `every`.
    Lines { every: Duration, started: Instant, last: Instant },
}

impl Progress {
    /// A bar when `count` is known and stderr is a terminal, lines every
    /// `every` otherwise.
    pub fn new(count: Option<u64>, every: Duration) -> Self {
        match count {
            Some(total) if std::io::stderr().is_terminal() => {
                let bar = ProgressBar::new(total);
                let template = "{bar:40.cyan/blue} {pos}/{len} readings  {per_sec}  ETA {eta}  {msg}";
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style.progress_chars("=> "));
                }
                Progress::Bar(bar)
            }
            _ => {
                let now = Instant::now();
                Progress::Lines { every, started: now, last: now }
            }
        }
    }

    /// One more reading was produced; `delivered` acknowledged so far.
    pub fn produced(&mut self, mean: &RunningMean, delivered: u64) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(mean.count());
                if mean.count() % 64 == 0 {
                    bar.set_message(format!("mean {:.3} °C", mean.mean().unwrap_or(f64::NAN)));
                }
            }
            Progress::Lines { every, started, last } => {
                if last.elapsed() < *every {
                    return;
                }
                *last = Instant::now();
                info!(
                    produced = mean.count(),
                    delivered,
                    per_second = format!("{:.1}", mean.count() as f64 / started.elapsed().as_secs_f64()),
                    mean = format!("{:.6}", mean.mean().unwrap_or(f64::NAN)),
                    "progress"
                );
            }
        }
    }

    /// Clears the bar, if any.
    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
