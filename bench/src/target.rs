//! Where the benchmark runs: a real broker, or librdkafka's in-process mock
//! cluster.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use twitch::{KafkaCluster, TopicConfiguration};

/// A cluster to benchmark against. The mock cluster is not `Send`, so this
/// lives in the main task; workloads only get [`Target::brokers`].
pub enum Target {
    Broker {
        brokers: String,
        admin: KafkaCluster,
        /// Pid of the broker process, to measure its CPU time.
        pid: Option<u32>,
    },
    Mock {
        mock: MockCluster<'static, DefaultProducerContext>,
        brokers: String,
    },
}

impl Target {
    pub async fn broker(brokers: &str, pid: Option<u32>) -> Result<Target> {
        let admin = KafkaCluster::builder(brokers)
            .client_id("twitch-bench-admin")
            .broker_timeout(Duration::from_secs(20))
            .build()
            .context("bad --brokers")?;
        admin.wait_for_brokers().await.with_context(|| format!("no broker answers at {brokers}"))?;
        Ok(Target::Broker { brokers: brokers.to_owned(), admin, pid })
    }

    pub fn mock() -> Result<Target> {
        let mock = MockCluster::new(1).context("cannot create librdkafka's mock cluster")?;
        let brokers = mock.bootstrap_servers();
        Ok(Target::Mock { mock, brokers })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Target::Broker { .. } => "broker",
            Target::Mock { .. } => "mock",
        }
    }

    pub fn is_mock(&self) -> bool {
        matches!(self, Target::Mock { .. })
    }

    pub fn brokers(&self) -> &str {
        match self {
            Target::Broker { brokers, .. } | Target::Mock { brokers, .. } => brokers,
        }
    }

    pub fn broker_pid(&self) -> Option<u32> {
        match self {
            Target::Broker { pid, .. } => *pid,
            Target::Mock { .. } => None,
        }
    }

    /// Creates a fresh topic with a unique name.
    pub async fn fresh_topic(&self, case: &str, side: &str, partitions: i32) -> Result<String> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let run = std::process::id();
        let name = format!("bench-{case}-{side}-{run}-{}", SEQ.fetch_add(1, Ordering::Relaxed));
        match self {
            Target::Broker { admin, .. } => {
                admin
                    .ensure_topic(&TopicConfiguration::new(name.as_str(), partitions).with_replication(1))
                    .await
                    .with_context(|| format!("creating topic {name}"))?;
            }
            Target::Mock { mock, .. } => {
                mock.create_topic(&name, partitions, 1).with_context(|| format!("creating mock topic {name}"))?;
            }
        }
        Ok(name)
    }

    /// Deletes a topic when done with it (the broker keeps every record
    /// otherwise, on disk). Failures only warn.
    pub async fn drop_topic(&self, topic: &str) {
        if let Target::Broker { admin, .. } = self {
            if let Err(e) = admin.delete_topics(&[topic]).await {
                eprintln!("warning: could not delete topic {topic}: {e}");
            }
        }
    }
}

/// The pid of the Kafka node that `scripts/kafka.sh start --port N` started
/// for the port of `brokers` (the first `host:port`), read from its pid file
/// `<state>/kafka/<port>/kafka.pid`, where `<state>` is `TWITCH_STATE` as
/// for the script (default the workspace's `target/`).
pub fn find_broker_pid(brokers: &str) -> Option<u32> {
    let port = brokers.split(',').next()?.rsplit(':').next()?.trim();
    let file = format!("kafka/{port}/kafka.pid");
    let mut candidates = Vec::new();
    if let Some(state) = std::env::var_os("TWITCH_STATE").filter(|s| !s.is_empty()) {
        candidates.push(std::path::PathBuf::from(state).join(&file));
    }
    candidates.push(std::path::PathBuf::from("target").join(&file));
    candidates.push(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target").join(&file));
    candidates.iter().find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse().ok())
}
