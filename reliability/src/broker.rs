//! Kafka nodes of a test's own, run with `scripts/kafka.sh` (one node, or
//! the nodes of a cluster as `scripts/cluster.sh` starts them), that the
//! test can stop, kill and start again on their log dirs; stopped when
//! dropped, even on failure.

use std::path::PathBuf;
use std::process::Output;

use anyhow::{bail, Context as _, Result};

/// A Kafka node (broker and KRaft controller in one process) on
/// `127.0.0.1:port`, started by [`Broker::start`] or [`Broker::cluster`].
/// Its settings, log dir and logs are in `$TWITCH_STATE/kafka/<port>/`
/// (`target/kafka/<port>/` by default).
#[derive(Debug)]
pub struct Broker {
    port: u16,
    node_id: i32,
    running: bool,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_end().to_owned()
}

/// Runs `scripts/<script> args...` and fails with its stderr unless it exits 0.
async fn script_ok(script: &str, args: &[&str]) -> Result<Output> {
    let out = crate::run_script(script, args).await?;
    if !out.status.success() {
        bail!("scripts/{script} {} failed ({}):\n{}", args.join(" "), out.status, text(&out.stderr));
    }
    Ok(out)
}

/// Stops a node that an earlier, interrupted run left on `port` and checks
/// that nothing else answers there (never silently someone else's broker).
async fn free(port: u16) -> Result<()> {
    let p = port.to_string();
    script_ok("kafka.sh", &["stop", "--port", &p, "--timeout", "5"]).await?;
    let status = crate::run_script("kafka.sh", &["status", "--port", &p]).await?;
    if status.status.code() != Some(3) {
        bail!("127.0.0.1:{port} is in use ({}); the test needs it free", text(&status.stdout));
    }
    Ok(())
}

/// The directory of `scripts/kafka.sh`'s nodes: `$TWITCH_STATE/kafka`, or
/// `target/kafka` of this repository.
fn state_dir() -> PathBuf {
    std::env::var_os("TWITCH_STATE")
        .map_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from)
        .join("kafka")
}

/// The last `Becoming the active controller at epoch E` in a node's log.
fn last_controller_epoch(log: &str) -> Option<u64> {
    const MARK: &str = "Becoming the active controller at epoch ";
    log.lines().rev().find_map(|line| {
        let rest = &line[line.find(MARK)? + MARK.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    })
}

/// Settings of the test nodes beyond `scripts/kafka.sh`'s: a SIGKILLed
/// node can register again (and lead again) only once the controller has
/// fenced its old incarnation, after `broker.session.timeout.ms` without a
/// heartbeat (Kafka's default 9 s, heartbeats every 2 s); 4 s with a
/// heartbeat a second keep a crash test from waiting 9 s per kill, and lead
/// the cluster away from a killed leader sooner.
pub const TEST_SETTINGS: [&str; 2] = ["broker.session.timeout.ms=4000", "broker.heartbeat.interval.ms=1000"];

impl Broker {
    /// Starts one Kafka node on `127.0.0.1:port` (node id 1, replication
    /// factor 1, [`TEST_SETTINGS`]) on a freshly formatted log dir. A node
    /// that an earlier, interrupted run of this test left on the port is
    /// stopped first; a port that anything else answers on is an error.
    pub async fn start(port: u16) -> Result<Broker> {
        free(port).await?;
        let broker = Broker { port, node_id: 1, running: true };
        let p = port.to_string();
        let mut args = vec!["start", "--port", &p, "--"];
        args.extend(TEST_SETTINGS);
        script_ok("kafka.sh", &args).await.with_context(|| broker.log_tail(20))?;
        Ok(broker)
    }

    /// Starts a cluster of `n` Kafka nodes on ports `first..first + n`
    /// (node ids 1..=n) with `scripts/cluster.sh start` and
    /// [`TEST_SETTINGS`]: each node both broker and controller, one static
    /// KRaft quorum of all n, fresh log dirs, replication factor min(n, 3)
    /// and `min.insync.replicas` one less (at least 1), internal topics
    /// included. All of them are stopped if one fails.
    pub async fn cluster(first: u16, n: u16) -> Result<Vec<Broker>> {
        let last = first.checked_add(n).with_context(|| format!("{n} nodes from port {first} run out of ports"))?;
        for port in first..last {
            free(port).await?;
        }
        // Built before the start, so that dropping them stops whatever started.
        let brokers: Vec<Broker> =
            (first..last).zip(1..).map(|(port, node_id)| Broker { port, node_id, running: true }).collect();
        let (nodes, port) = (n.to_string(), first.to_string());
        let mut args = vec!["start", "--nodes", &nodes, "--port", &port, "--"];
        args.extend(TEST_SETTINGS);
        script_ok("cluster.sh", &args).await.with_context(|| brokers[0].log_tail(20))?;
        tracing::info!("{n} Kafka nodes from 127.0.0.1:{first} form a cluster");
        Ok(brokers)
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The bootstrap list of `brokers`: every address, comma-separated.
    pub fn bootstrap(brokers: &[Broker]) -> String {
        brokers.iter().map(Broker::address).collect::<Vec<_>>().join(",")
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its node id (`node.id`, the id that metadata names leaders by).
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Whether it runs (it was not stopped or killed since it last started).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Starts it again on its own log dir and settings (`scripts/kafka.sh
    /// start --keep`) after [`Broker::stop`] or [`Broker::kill`]: the data
    /// survives. Waits until it answers Kafka requests.
    pub async fn start_again(&mut self) -> Result<()> {
        let p = self.port.to_string();
        script_ok("kafka.sh", &["start", "--keep", "--port", &p]).await.with_context(|| self.log_tail(20))?;
        self.running = true;
        Ok(())
    }

    /// Stops it: SIGTERM, a controlled shutdown (SIGKILL if it still runs
    /// after 30 s).
    pub async fn stop(&mut self) -> Result<()> {
        self.stop_within(30).await
    }

    /// Kills it with SIGKILL at once: a crash.
    pub async fn kill(&mut self) -> Result<()> {
        self.stop_within(0).await
    }

    async fn stop_within(&mut self, secs: u32) -> Result<()> {
        let p = self.port.to_string();
        script_ok("kafka.sh", &["stop", "--port", &p, "--timeout", &secs.to_string()]).await?;
        self.running = false;
        Ok(())
    }

    /// Its log: `$TWITCH_STATE/kafka/<port>/server.log`.
    pub fn log_path(&self) -> PathBuf {
        state_dir().join(self.port.to_string()).join("server.log")
    }

    /// The end of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read(self.log_path()).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        let all: Vec<&str> = log.lines().collect();
        format!("{}:\n{}", self.log_path().display(), all[all.len().saturating_sub(lines)..].join("\n"))
    }

    /// The KRaft epoch at which this node last became the active
    /// controller, from its log (`[QuorumController id=N] Becoming the
    /// active controller at epoch E`); `None` if it never did since its log
    /// dir was formatted.
    pub async fn controller_epoch(&self) -> Option<u64> {
        let log = tokio::fs::read(self.log_path()).await.ok()?;
        last_controller_epoch(&String::from_utf8_lossy(&log))
    }

    /// Stops every running one at once (a node's controlled shutdown waits
    /// for the others to take over its partitions, so one at a time the last
    /// would wait for a controller quorum that is gone).
    pub async fn stop_all(brokers: &mut [Broker]) -> Result<()> {
        let stops = brokers.iter_mut().filter(|b| b.running).map(|b| b.stop_within(10));
        futures::future::join_all(stops).await.into_iter().collect()
    }
}

/// The index in `brokers` of the active KRaft controller: the running node
/// that became the active controller at the highest epoch (read from the
/// nodes' logs, which `--keep` restarts append to). `None` while the
/// highest epoch belongs to a node that is down (an election is under way).
/// A controller that resigned without another taking over yet would still
/// count: the logs tell only who took over last.
pub async fn active_controller(brokers: &[Broker]) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for (i, broker) in brokers.iter().enumerate() {
        if let Some(epoch) = broker.controller_epoch().await {
            if best.is_none_or(|(e, _)| epoch > e) {
                best = Some((epoch, i));
            }
        }
    }
    best.map(|(_, i)| i).filter(|&i| brokers[i].running)
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.running {
            // Blocking, but short: SIGKILL after 5 s. The test is over; its
            // log dir is formatted afresh on the next start.
            let _ = std::process::Command::new("bash")
                .arg(crate::script("kafka.sh"))
                .args(["stop", "--port", &self.port.to_string(), "--timeout", "5"])
                .stdin(std::process::Stdio::null())
                .output();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_controller_epoch_is_read_from_the_log() {
        let log = "[2026-12-06 04:16:31,707] INFO [QuorumController id=1] Becoming the active controller at epoch 1, \
                   next write offset 1. (org.apache.kafka.controller.QuorumController)\n\
                   [x] INFO other\n\
                   [y] INFO [QuorumController id=1] Becoming the active controller at epoch 12, next write offset 9.";
        assert_eq!(last_controller_epoch(log), Some(12));
        assert_eq!(last_controller_epoch("[x] INFO nothing"), None);
    }
}
