//! The apps as child processes: started with piped output, watched, and
//! reduced to an [`Outcome`].

use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::{Config, Error};

/// Lines of a child's stderr kept for the report.
const STDERR_TAIL: usize = 20;

/// How a child process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// Exit code 0.
    Success,
    /// Another exit code, or a signal, as the OS describes it.
    Failed(String),
    /// It did not finish in time and was killed.
    TimedOut(Duration),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Success => f.write_str("exit code 0"),
            Exit::Failed(status) => f.write_str(status),
            Exit::TimedOut(after) => write!(f, "killed: still running after {}", humantime::format_duration(*after)),
        }
    }
}

/// What a finished child left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Its name in the report, such as `average_temp-2`.
    pub name: String,
    /// How it ended.
    pub exit: Exit,
    /// Its last non-empty line on stdout: the summary line, if all went well.
    pub last_line: Option<String>,
    /// Lines it printed on stdout.
    pub stdout_lines: u64,
    /// Its last lines on stderr.
    pub stderr_tail: Vec<String>,
    /// How long it ran.
    pub elapsed: Duration,
}

#[derive(Debug, Default)]
struct Stdout {
    lines: u64,
    last: Option<String>,
}

/// A started child.
#[derive(Debug)]
pub(crate) struct Running {
    name: String,
    child: Child,
    started: Instant,
    stdout: JoinHandle<Stdout>,
    stderr: JoinHandle<VecDeque<String>>,
    assigned: watch::Receiver<bool>,
}

/// Starts `program` with `args`, `KAFKA_BROKERS` and `RUST_LOG` from
/// `config`; the child is killed if its [`Running`] is dropped.
pub(crate) fn spawn(name: &str, program: &Path, args: &[&str], config: &Config) -> Result<Running, Error> {
    let spawn_error = |source| Error::Spawn { program: program.to_owned(), source };
    let mut child = Command::new(program)
        .args(args)
        .env("KAFKA_BROKERS", &config.brokers)
        .env("RUST_LOG", &config.app_log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_error)?;
    debug!(name, ?args, pid = child.id(), "started");
    let no_pipe = || spawn_error(std::io::Error::other("no pipe to the child"));
    let stdout = child.stdout.take().ok_or_else(no_pipe)?;
    let stderr = child.stderr.take().ok_or_else(no_pipe)?;
    let (assigned_tx, assigned) = watch::channel(false);
    let echo = config.echo.then(|| name.to_owned());
    let stdout = tokio::spawn(read_stdout(stdout, echo.clone()));
    let stderr = tokio::spawn(read_stderr(stderr, echo, assigned_tx));
    Ok(Running { name: name.to_owned(), child, started: Instant::now(), stdout, stderr, assigned })
}

async fn read_stdout(pipe: impl AsyncRead + Unpin, echo: Option<String>) -> Stdout {
    let mut out = Stdout::default();
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(name) = &echo {
            eprintln!("[{name}] {line}");
        }
        out.lines += 1;
        if !line.trim().is_empty() {
            out.last = Some(line);
        }
    }
    out
}

async fn read_stderr(
    pipe: impl AsyncRead + Unpin,
    echo: Option<String>,
    assigned: watch::Sender<bool>,
) -> VecDeque<String> {
    let mut tail = VecDeque::with_capacity(STDERR_TAIL);
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(name) = &echo {
            eprintln!("[{name}] {line}");
        }
        if line.contains(temps::ASSIGNED_LOG_MESSAGE) {
            assigned.send_replace(true);
        }
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    tail
}

impl Running {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Waits until the child logs its first assignment; false if it did not
    /// by `deadline` (or exited).
    pub(crate) async fn wait_assigned(&mut self, deadline: Instant) -> bool {
        matches!(tokio::time::timeout_at(deadline, self.assigned.wait_for(|a| *a)).await, Ok(Ok(_)))
    }

    /// Waits up to `timeout` for the child to exit (killing it after that)
    /// and collects its output.
    pub(crate) async fn finish(mut self, timeout: Duration) -> Outcome {
        let exit = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Exit::Success,
            Ok(Ok(status)) => Exit::Failed(status.to_string()),
            Ok(Err(e)) => Exit::Failed(format!("cannot wait for it: {e}")),
            Err(_) => {
                warn!(name = %self.name, "still running after {}; killing it", humantime::format_duration(timeout));
                if let Err(e) = self.child.kill().await {
                    warn!(name = %self.name, error = %e, "cannot kill it");
                }
                Exit::TimedOut(timeout)
            }
        };
        let elapsed = self.started.elapsed();
        // The pipes close when the process exits; the timeout only guards
        // against a grandchild holding them open.
        let grace = Duration::from_secs(5);
        let stdout = tokio::time::timeout(grace, self.stdout).await.ok().and_then(Result::ok).unwrap_or_default();
        let stderr = tokio::time::timeout(grace, self.stderr).await.ok().and_then(Result::ok).unwrap_or_default();
        debug!(name = %self.name, %exit, ?elapsed, "finished");
        Outcome {
            name: self.name,
            exit,
            last_line: stdout.last,
            stdout_lines: stdout.lines,
            stderr_tail: stderr.into(),
            elapsed,
        }
    }
}
