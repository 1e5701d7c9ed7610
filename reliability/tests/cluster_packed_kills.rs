//! Node kills packed together on a 3-node Kafka cluster of the test's own
//! (ports 19715-19717, replication factor 3, `min.insync.replicas` 2):
//! while `temp_gen` writes and a group of three `average_temp` reads, three
//! nodes are killed with SIGKILL back to back, the active controller and
//! partition leaders, each started again at once and the next killed as
//! soon as every replica is in sync again (never two nodes short at once).
//! Every reading is processed and the committed lag ends at 0.
//!
//! Figures go to stderr: `cargo test -p reliability --test cluster_packed_kills -- --nocapture`.

use std::time::Duration;

use anyhow::{ensure, Result};
use reliability::{binaries, init_tracing, soak_on_cluster, Soak};

const FIRST_PORT: u16 = 19715;
const NODES: u16 = 3;
const KILLS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_drains_after_node_kills_in_a_burst() -> Result<()> {
    init_tracing();
    let config = Soak {
        readings: 40_000,
        interval: "2ms".into(),
        member_kills: 0,
        broker_kills: 0,
        packed_kills: KILLS,
        seed: 9,
        settle: Duration::from_secs(90),
        ..Soak::default()
    };
    let figures = soak_on_cluster(&config, &binaries()?, FIRST_PORT, NODES, "packed node kills").await?;
    ensure!(figures.broker_kills() == KILLS, "not every kill came: {figures}");
    let victims: std::collections::BTreeSet<i32> = figures.kills.iter().map(|k| k.node).collect();
    ensure!(victims.len() >= 2, "the burst killed the same node over and over: {figures}");
    ensure!(
        figures.controller_kills() >= 1 && figures.leader_kills() >= 2,
        "the kills missed the controller or the leaders: {figures}"
    );
    ensure!(figures.kills_mid_stream == KILLS, "a kill came after temp_gen ended: {figures}");
    figures.check()
}
