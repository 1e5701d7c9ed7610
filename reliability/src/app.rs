//! The apps as child processes: every line they print is kept with the time
//! it arrived, so a test can wait for output, count readings and see what a
//! process printed before it was killed.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::tally::{parse_reading_line, Processed};

/// One line a process printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When the test read it.
    pub at: Instant,
    /// The line, without its end.
    pub text: String,
}

#[derive(Debug, Default)]
struct Captured {
    stdout: Vec<Line>,
    stderr: Vec<Line>,
    /// Reading lines among `stdout`, counted as they arrive.
    readings: usize,
}

type Shared = Arc<Mutex<Captured>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Captured> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running app. Dropping it kills the process (SIGKILL).
#[derive(Debug)]
pub struct App {
    name: String,
    child: Child,
    pid: u32,
    started: Instant,
    captured: Shared,
    pipes: Vec<JoinHandle<()>>,
}

/// What a finished app left behind.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Its name in the test, such as `average_temp-2`.
    pub name: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Every line on stdout.
    pub stdout: Vec<Line>,
    /// Every line on stderr.
    pub stderr: Vec<String>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Finished {
    /// Checks a consumer stopped by a signal: it exited 0 and its summary
    /// counts exactly the readings it printed.
    pub fn check_stopped(&self) -> Result<()> {
        anyhow::ensure!(self.status.success(), "{} failed ({}):\n{}", self.name, self.status, self.stderr_tail(15));
        let summary: temps::ConsumerSummary =
            self.last_line().unwrap_or_default().parse().with_context(|| format!("{}'s summary", self.name))?;
        let printed = self.readings().len();
        anyhow::ensure!(
            summary.consumed == printed as u64,
            "{} says it consumed {} readings but printed {printed}",
            self.name,
            summary.consumed
        );
        Ok(())
    }

    /// Checks a `temp_gen` that ran to its `--count`: it exited 0 and its
    /// summary says it produced all `readings`.
    pub fn producer_summary(&self, readings: u64) -> Result<temps::ProducerSummary> {
        anyhow::ensure!(self.status.success(), "{} failed ({}):\n{}", self.name, self.status, self.stderr_tail(15));
        let summary: temps::ProducerSummary =
            self.last_line().unwrap_or_default().parse().with_context(|| format!("{}'s summary", self.name))?;
        anyhow::ensure!(
            summary.produced == readings,
            "{} produced {} readings, not {readings}",
            self.name,
            summary.produced
        );
        Ok(summary)
    }

    /// The last non-empty line on stdout (an app's summary line).
    pub fn last_line(&self) -> Option<&str> {
        self.stdout.iter().rev().map(|l| l.text.as_str()).find(|l| !l.trim().is_empty())
    }

    /// The readings it printed, one per reading line.
    pub fn readings(&self) -> Vec<Processed> {
        self.stdout.iter().filter_map(|l| parse_reading_line(&l.text, l.at)).collect()
    }

    /// The end of its stderr, for failure messages.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let skip = self.stderr.len().saturating_sub(lines);
        self.stderr[skip..].join("\n")
    }
}

async fn capture(pipe: impl AsyncRead + Unpin, shared: Shared, stderr: bool) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(text)) = lines.next_line().await {
        let line = Line { at: Instant::now(), text };
        let reading = !stderr && parse_reading_line(&line.text, line.at).is_some();
        let mut captured = lock(&shared);
        if stderr {
            captured.stderr.push(line);
        } else {
            captured.readings += usize::from(reading);
            captured.stdout.push(line);
        }
    }
}

impl App {
    /// Starts `program` with `args`, `KAFKA_BROKERS=brokers` and
    /// `RUST_LOG=info` (the consumers' assignment logs are read from it).
    pub fn spawn(name: &str, program: &Path, args: &[&str], brokers: &str) -> Result<App> {
        let mut child = Command::new(program)
            .args(args)
            .env("KAFKA_BROKERS", brokers)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        let pid = child.id().context("a just-started child has a pid")?;
        let captured = Shared::default();
        let stdout = child.stdout.take().context("stdout is piped")?;
        let stderr = child.stderr.take().context("stderr is piped")?;
        let pipes = vec![
            tokio::spawn(capture(stdout, Arc::clone(&captured), false)),
            tokio::spawn(capture(stderr, Arc::clone(&captured), true)),
        ];
        Ok(App { name: name.to_owned(), child, pid, started: Instant::now(), captured, pipes })
    }

    /// Its name in the test.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The readings it printed so far.
    pub fn readings(&self) -> Vec<Processed> {
        lock(&self.captured).stdout.iter().filter_map(|l| parse_reading_line(&l.text, l.at)).collect()
    }

    /// Number of reading lines printed so far.
    pub fn reading_count(&self) -> usize {
        lock(&self.captured).readings
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        lock(&self.captured).stderr.iter().map(|l| l.text.clone()).collect()
    }

    /// The partitions `average_temp` holds now, from its `assigned
    /// partitions partitions=0,2` and `partitions revoked` logs; `None`
    /// before its first assignment.
    pub fn assignment(&self) -> Option<BTreeSet<i32>> {
        let mut current = None;
        for line in &lock(&self.captured).stderr {
            if line.text.contains(temps::ASSIGNED_LOG_MESSAGE) {
                let list = line.text.split("partitions=").nth(1).and_then(|s| s.split_whitespace().next());
                let set: BTreeSet<i32> = list.unwrap_or("").split(',').filter_map(|p| p.parse().ok()).collect();
                current = Some(set);
            } else if line.text.contains("partitions revoked") {
                current = Some(BTreeSet::new());
            }
        }
        current
    }

    /// Fails if the process has exited (with its stderr), for waits that
    /// need it running.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                let stderr = self.stderr();
                let tail = stderr[stderr.len().saturating_sub(15)..].join("\n");
                bail!("{} exited unexpectedly ({status}); stderr:\n{tail}", self.name)
            }
            Err(e) => bail!("cannot check on {}: {e}", self.name),
        }
    }

    /// Sends SIGTERM: a graceful stop.
    pub fn terminate(&self) -> Result<()> {
        send_signal(self.pid, libc::SIGTERM).with_context(|| format!("SIGTERM to {}", self.name))
    }

    /// Sends SIGINT (Ctrl-C): a graceful stop too.
    pub fn interrupt(&self) -> Result<()> {
        send_signal(self.pid, libc::SIGINT).with_context(|| format!("SIGINT to {}", self.name))
    }

    /// Sends SIGKILL: the process dies at once, without cleaning up.
    pub fn kill(&mut self) -> Result<()> {
        self.child.start_kill().with_context(|| format!("SIGKILL to {}", self.name))
    }

    /// Waits up to `timeout` for the process to exit and collects its
    /// output. A process still running then is killed, and that is an error.
    pub async fn finish(mut self, timeout: Duration) -> Result<Finished> {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.with_context(|| format!("waiting for {}", self.name))?,
            Err(_) => {
                let _ = self.child.kill().await;
                let stderr = self.stderr();
                let tail = stderr[stderr.len().saturating_sub(15)..].join("\n");
                bail!("{} still ran {timeout:?} after it was asked to finish; killed it. stderr:\n{tail}", self.name);
            }
        };
        let elapsed = self.started.elapsed();
        // The pipes close with the process; the timeout guards against a
        // grandchild holding them open.
        for pipe in std::mem::take(&mut self.pipes) {
            let _ = tokio::time::timeout(Duration::from_secs(5), pipe).await;
        }
        let captured = std::mem::take(&mut *lock(&self.captured));
        Ok(Finished {
            name: self.name.clone(),
            status,
            stdout: captured.stdout,
            stderr: captured.stderr.into_iter().map(|l| l.text).collect(),
            elapsed,
        })
    }
}

#[allow(unsafe_code)]
fn send_signal(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    // The pid is our child's: until it is reaped (by `finish`, or by
    // `check_running` once it has exited) no other process can get it.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
