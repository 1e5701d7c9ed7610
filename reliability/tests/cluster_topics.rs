//! Topics created on a 3-node Kafka cluster of the test's own (ports
//! 19760-19762): `ensure_topic` returns each new topic with all its
//! partitions, even when the node it asks next has not applied the
//! creation yet (each node learns of a topic from the metadata log on its
//! own; an early answer is "unknown topic", which once failed the soak).
//!
//! `cargo test -p reliability --test cluster_topics -- --nocapture`.

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use reliability::{init_tracing, unique, Broker};
use twitch::{KafkaCluster, TopicConfiguration};

const FIRST_PORT: u16 = 19760;
const NODES: u16 = 3;
/// Topics created, each by a client of its own.
const TOPICS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_topic_created_is_found_at_once() -> Result<()> {
    init_tracing();
    let mut brokers = Broker::cluster(FIRST_PORT, NODES).await?;
    let outcome = create_all(&brokers).await;
    Broker::stop_all(&mut brokers).await?;
    outcome
}

async fn create_all(brokers: &[Broker]) -> Result<()> {
    let bootstrap = Broker::bootstrap(brokers);
    let prefix = unique("created");
    for i in 0..TOPICS {
        let cluster = KafkaCluster::builder(&bootstrap)
            .client_id(format!("topics-{i}"))
            .broker_timeout(Duration::from_secs(30))
            .build()?;
        let name = format!("{prefix}-{i}");
        let info = cluster
            .ensure_topic(&TopicConfiguration::new(&name, 3))
            .await
            .with_context(|| format!("topic {} of {TOPICS}", i + 1))?;
        ensure!(info.partitions.len() == 3, "{name}: {} partitions", info.partitions.len());
        ensure!(
            info.partitions.iter().all(|p| p.leader >= 1 && p.replicas.len() == 3),
            "{name}: a partition without a leader or with fewer than 3 replicas: {info:?}"
        );
    }
    Ok(())
}
