//! Support for the reliability tests in `tests/`: the apps as child
//! processes whose every output line is kept ([`App`]), Kafka nodes of a
//! test's own that can be stopped, killed and started again ([`Broker`]),
//! who leads what in the cluster ([`ClusterView`]), and the tally of what
//! was produced, delivered, consumed, lost and duplicated ([`Figures`]).
//!
//! The tests prove that no record is lost when a consumer is killed, when
//! a Kafka node restarts or crashes (alone, or as one of a 3-node cluster),
//! and that the apps fail fast and clearly when no broker answers. They run
//! against Apache Kafka: `KAFKA_BROKERS` (which `scripts/test.sh` sets) for
//! the consumer tests, nodes of their own (started with `scripts/kafka.sh`,
//! clusters as `scripts/cluster.sh` starts them) for the tests that kill
//! brokers.
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod app;
mod broker;
mod kills;
mod metadata;
mod postgres;
mod soak;
mod tally;
pub mod web;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use scenarios::Binaries;

pub use app::{App, Finished, Line};
pub use broker::{active_controller, Broker, TEST_SETTINGS};
pub use kills::Kill;
pub use metadata::{ClusterView, PartitionState};
pub use postgres::{sink_binary, unique_schema, Postgres};
pub use soak::{on_cluster as soak_on_cluster, run as soak, Soak, SoakFigures};
pub use tally::{expected_readings, parse_reading_line, topic_readings, Figures, Key, Processed};

/// `scripts/<name>` of this repository.
fn script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(name)
}

/// Runs `bash scripts/<name> args...` (no stdin, killed if dropped) and
/// returns its output, whatever its exit status.
async fn run_script(name: &str, args: &[&str]) -> Result<std::process::Output> {
    tokio::process::Command::new("bash")
        .arg(script(name))
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running scripts/{name} {}", args.join(" ")))
}

/// The broker under test, from `KAFKA_BROKERS` (set by `scripts/test.sh`).
/// Fails, so a test that needs a broker fails rather than skips.
pub fn brokers() -> Result<String> {
    match std::env::var("KAFKA_BROKERS") {
        Ok(b) if !b.trim().is_empty() => Ok(b),
        _ => bail!(
            "KAFKA_BROKERS is not set: these tests need a broker. Run scripts/test.sh, or start one \
             (scripts/kafka.sh start --port 19092) and export KAFKA_BROKERS=127.0.0.1:19092"
        ),
    }
}

/// Logs of this crate (and `RUST_LOG`'s, when set) to stderr, once per
/// process: the soak's kills and waits. Tests see them with `--nocapture`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("reliability=info"));
    // A second call (another test of the same binary) finds one installed.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// `temp_gen` and `average_temp`, built once per test binary with
/// [`Binaries::build_with_cargo`].
pub fn binaries() -> Result<Binaries> {
    static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();
    BINARIES
        .get_or_init(|| Binaries::build_with_cargo().map_err(|e| e.to_string()))
        .clone()
        .map_err(anyhow::Error::msg)
        .context("building temp_gen and average_temp")
}

/// A name no other test (or earlier run) uses: `prefix-<ms>-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{prefix}-{millis}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Checks `cond` every 50 ms until it holds; fails after `timeout`, or as
/// soon as `cond` fails (for example because a process it watches died).
pub async fn wait_until(what: &str, timeout: Duration, cond: impl FnMut() -> Result<bool>) -> Result<()> {
    if !poll_until(what, timeout, cond).await? {
        bail!("timed out after {timeout:?} waiting for {what}");
    }
    Ok(())
}

/// Like [`wait_until`], but a timeout is `Ok(false)`, not an error.
pub async fn poll_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().with_context(|| format!("while waiting for {what}"))? {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
