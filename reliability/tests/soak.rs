//! The soak's short variant on one Kafka node of its own (port 19710):
//! 30,000 readings (2 ms apart) through three SIGKILLed members and one SIGKILLed node,
//! started again on its log dir: every reading is processed and the
//! committed lag ends at 0. The full run (1,000,000 readings, 20 member and
//! 5 node kills) is the `soak` binary:
//! `cargo run --release -p reliability --bin soak`.
//!
//! Figures go to stderr: `cargo test -p reliability --test soak -- --nocapture`.

use std::time::Duration;

use anyhow::{ensure, Result};
use reliability::{binaries, init_tracing, soak, Broker, Soak};

const PORT: u16 = 19710;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_survive_member_and_broker_kills() -> Result<()> {
    init_tracing();
    let config = Soak {
        readings: 30_000,
        interval: "2ms".into(),
        member_kills: 3,
        broker_kills: 1,
        seed: 3,
        settle: Duration::from_secs(120),
        ..Soak::default()
    };
    let bins = binaries()?;
    let mut brokers = vec![Broker::start(PORT).await?];
    let outcome = soak(&config, &bins, &mut brokers).await;
    Broker::stop_all(&mut brokers).await?;
    let figures = outcome?;
    eprintln!("FIGURES soak: {figures}");
    ensure!((figures.member_kills, figures.broker_kills()) == (3, 1), "not every kill came: {figures}");
    ensure!(figures.kills_mid_stream == 4, "a kill came after temp_gen ended: {figures}");
    figures.check()
}
