//! A nisshi broker of a test's own, run with `scripts/broker.sh`, that the
//! test can stop and start again; stopped when dropped, even on failure.

use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{bail, Context as _, Result};

/// A directory for a broker's data under `target/tmp`, removed when
/// dropped (declare it before the broker, so that the broker stops first).
#[derive(Debug)]
pub struct DataDir(PathBuf);

impl DataDir {
    /// A new, empty directory named after `prefix`.
    pub fn new(prefix: &str) -> Result<DataDir> {
        let dir = DataDir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp").join(crate::unique(prefix)));
        std::fs::create_dir_all(&dir.0).with_context(|| format!("creating {}", dir.0.display()))?;
        Ok(dir)
    }

    /// `sqlite:///<dir>/<name>.db`.
    pub fn sqlite(&self, name: &str) -> String {
        format!("sqlite://{}", self.0.join(format!("{name}.db")).display())
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A broker on `127.0.0.1:port`, started by [`Broker::start`].
#[derive(Debug)]
pub struct Broker {
    port: u16,
    storage: String,
    running: bool,
}

fn script() -> PathBuf {
    crate::script("broker.sh")
}

async fn broker_sh(args: &[&str]) -> Result<Output> {
    crate::run_script("broker.sh", args).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_end().to_owned()
}

impl Broker {
    /// Starts nisshi on `127.0.0.1:port` with `storage` (`memory://`,
    /// `sqlite:///abs/file.db` or `postgres://...`). A broker that an earlier, interrupted run
    /// of this test left on the port is stopped first; a port that anything
    /// else answers on is an error (never silently someone else's broker).
    pub async fn start(port: u16, storage: &str) -> Result<Broker> {
        let p = port.to_string();
        broker_sh(&["stop", "--port", &p]).await?;
        let status = broker_sh(&["status", "--port", &p]).await?;
        if status.status.code() != Some(3) {
            bail!("127.0.0.1:{port} is in use ({}); the test needs it free", text(&status.stdout));
        }
        let mut broker = Broker { port, storage: storage.to_owned(), running: false };
        broker.start_again().await?;
        Ok(broker)
    }

    /// Starts `n` brokers on ports `first..first + n` that share the
    /// PostgreSQL database at `url` (`postgres://...`): one cluster, in
    /// which any broker serves any partition and the group and offset state
    /// is shared. Stops the ones started if one fails to start.
    pub async fn cluster(first: u16, n: u16, url: &str) -> Result<Vec<Broker>> {
        let last = first.checked_add(n).with_context(|| format!("{n} brokers from port {first} run out of ports"))?;
        let mut brokers = Vec::with_capacity(usize::from(n));
        for port in first..last {
            brokers.push(Broker::start(port, url).await?);
        }
        Ok(brokers)
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port and storage after [`Broker::stop`].
    pub async fn start_again(&mut self) -> Result<()> {
        let p = self.port.to_string();
        let out = broker_sh(&["start", "--port", &p, "--storage", &self.storage]).await?;
        if !out.status.success() {
            bail!("scripts/broker.sh start --port {p} failed ({}):\n{}", out.status, text(&out.stderr));
        }
        self.running = true;
        Ok(())
    }

    /// Stops it (SIGTERM; SIGKILL after 10 s). nisshi finishes the requests
    /// in flight first.
    pub async fn stop(&mut self) -> Result<()> {
        self.stop_within(10).await
    }

    /// Kills it: SIGTERM and SIGKILL at once, a crash.
    pub async fn kill(&mut self) -> Result<()> {
        self.stop_within(0).await
    }

    async fn stop_within(&mut self, secs: u32) -> Result<()> {
        let p = self.port.to_string();
        let out = broker_sh(&["stop", "--port", &p, "--timeout", &secs.to_string()]).await?;
        if !out.status.success() {
            bail!("scripts/broker.sh stop --port {p} failed ({}):\n{}", out.status, text(&out.stderr));
        }
        self.running = false;
        Ok(())
    }

    /// The end of the broker's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let state = std::env::var_os("TWITCH_STATE")
            .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/broker"), PathBuf::from);
        let log = std::fs::read_to_string(state.join(self.port.to_string()).join("nisshi.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.running {
            // Blocking, but short (the script waits at most 10 s).
            let _ = std::process::Command::new("bash")
                .arg(script())
                .args(["stop", "--port", &self.port.to_string()])
                .stdin(std::process::Stdio::null())
                .output();
        }
    }
}
