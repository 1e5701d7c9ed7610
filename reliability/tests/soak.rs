//! The soak's short variant: 30,000 readings through three SIGKILLed
//! members and one SIGKILLed broker (a nisshi of its own on `sqlite://`,
//! port 19710): every reading is processed and the committed lag ends at 0.
//! The full run (1,000,000 readings, 20 member and 5 broker kills) is the
//! `soak` binary: `cargo run --release -p reliability --bin soak`.
//!
//! Figures go to stderr: `cargo test -p reliability --test soak -- --nocapture`.

use std::time::Duration;

use anyhow::Result;
use reliability::{binaries, soak, Broker, DataDir, Soak};

const PORT: u16 = 19710;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_survive_member_and_broker_kills() -> Result<()> {
    let config = Soak {
        readings: 30_000,
        interval: "1ms".into(),
        member_kills: 3,
        broker_kills: 1,
        seed: 3,
        settle: Duration::from_secs(120),
        ..Soak::default()
    };
    let bins = binaries()?;
    let dir = DataDir::new("soak-test")?;
    let mut brokers = vec![Broker::start(PORT, &dir.sqlite("soak")).await?];
    let figures = soak(&config, &bins, &mut brokers).await?;
    eprintln!("FIGURES soak: {figures}");
    assert_eq!((figures.member_kills, figures.broker_kills), (3, 1), "{figures}");
    figures.check()
}
