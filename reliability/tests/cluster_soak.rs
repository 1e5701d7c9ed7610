//! The soak on a 3-node Kafka cluster of the test's own (ports 19712-19714,
//! replication factor 3, `min.insync.replicas` 2), started as the `soak`
//! binary's `--cluster 3` starts it ([`Broker::cluster`]): 36,000 readings (2 ms apart)
//! through three SIGKILLed members and two SIGKILLed nodes, the active
//! controller and then the leader of most of the topic's partitions. Every
//! reading is processed and the committed lag ends at 0.
//!
//! Figures go to stderr: `cargo test -p reliability --test cluster_soak -- --nocapture`.

use std::time::Duration;

use anyhow::{ensure, Result};
use reliability::{binaries, init_tracing, soak_on_cluster, Soak};

const FIRST_PORT: u16 = 19712;
const NODES: u16 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_loses_nothing_through_member_and_node_kills() -> Result<()> {
    init_tracing();
    let config = Soak {
        readings: 36_000,
        interval: "2ms".into(),
        member_kills: 3,
        broker_kills: 2,
        seed: 5,
        settle: Duration::from_secs(90),
        ..Soak::default()
    };
    let figures = soak_on_cluster(&config, &binaries()?, FIRST_PORT, NODES, "cluster soak").await?;
    ensure!((figures.member_kills, figures.broker_kills()) == (3, 2), "not every kill came: {figures}");
    ensure!(
        figures.controller_kills() >= 1 && figures.leader_kills() >= 2,
        "the node kills missed the controller or the leaders: {figures}"
    );
    ensure!(figures.kills_mid_stream == 5, "a kill came after temp_gen ended: {figures}");
    figures.check()
}
