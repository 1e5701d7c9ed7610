//! Who leads what, and whether every replica is in sync: the cluster's
//! metadata (a Metadata request through librdkafka), for picking which node
//! a soak kills and for waiting until a restarted node has caught up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::ClientConfig;
use tokio::time::Instant;

/// One partition as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// Its topic.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Node id of its leader (-1 when it has none).
    pub leader: i32,
    /// Node ids of its replicas.
    pub replicas: Vec<i32>,
    /// Node ids of its in-sync replicas.
    pub isr: Vec<i32>,
}

impl PartitionState {
    /// It has a leader and every replica is in sync.
    pub fn fully_replicated(&self) -> bool {
        self.leader >= 0 && self.isr.len() == self.replicas.len()
    }
}

/// A stand-in for "not known yet", in the list of partitions still short.
fn unknown(why: String) -> PartitionState {
    PartitionState { topic: format!("({why})"), partition: -1, leader: -1, replicas: vec![], isr: vec![] }
}

/// A metadata client of the cluster at `bootstrap`.
#[derive(Clone)]
pub struct ClusterView {
    client: Arc<BaseConsumer>,
}

impl std::fmt::Debug for ClusterView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterView").finish_non_exhaustive()
    }
}

/// How long one Metadata request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl ClusterView {
    /// A client of the cluster at `bootstrap` (`host:port,...`).
    pub fn new(bootstrap: &str) -> Result<ClusterView> {
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "reliability-metadata")
            .create()
            .context("creating a metadata client")?;
        Ok(ClusterView { client: Arc::new(client) })
    }

    /// Every partition of every topic (internal ones included: the group
    /// offsets live in `__consumer_offsets`).
    pub async fn partitions(&self) -> Result<Vec<PartitionState>> {
        let client = Arc::clone(&self.client);
        tokio::task::spawn_blocking(move || -> Result<Vec<PartitionState>> {
            let md = client.fetch_metadata(None, REQUEST_TIMEOUT).context("fetching the cluster's metadata")?;
            let mut out = Vec::new();
            for t in md.topics() {
                for p in t.partitions() {
                    out.push(PartitionState {
                        topic: t.name().to_owned(),
                        partition: p.id(),
                        leader: p.leader(),
                        replicas: p.replicas().to_vec(),
                        isr: p.isr().to_vec(),
                    });
                }
            }
            Ok(out)
        })
        .await
        .context("the metadata request's task failed")?
    }

    /// The partitions of `topic` each node leads, by node id.
    pub async fn leaders(&self, topic: &str) -> Result<BTreeMap<i32, Vec<i32>>> {
        let mut leaders: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in self.partitions().await?.into_iter().filter(|p| p.topic == topic && p.leader >= 0) {
            leaders.entry(p.leader).or_default().push(p.partition);
        }
        Ok(leaders)
    }

    /// Waits until every partition of every topic has a leader and all its
    /// replicas in sync (a restarted node has caught up); returns how long
    /// that took. Fails after `timeout`, naming the partitions still short.
    pub async fn wait_fully_replicated(&self, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            // A request may fail while a node is down; the next one goes to another.
            let short = match self.partitions().await {
                Ok(partitions) if !partitions.is_empty() => {
                    partitions.into_iter().filter(|p| !p.fully_replicated()).collect::<Vec<_>>()
                }
                Ok(_) => {
                    tracing::debug!("the metadata lists no partition yet");
                    vec![unknown("no partition listed yet".into())]
                }
                Err(e) => {
                    tracing::debug!("metadata request failed: {e:#}");
                    vec![unknown(format!("metadata request failed: {e:#}"))]
                }
            };
            if short.is_empty() {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                let sample: Vec<String> = short
                    .iter()
                    .take(5)
                    .map(|p| format!("{}-{} leader {} isr {:?} of {:?}", p.topic, p.partition, p.leader, p.isr, p.replicas))
                    .collect();
                bail!("{} partitions still not fully replicated after {timeout:?}, e.g. {sample:?}", short.len());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
