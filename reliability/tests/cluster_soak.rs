//! The soak on a cluster: three nisshi brokers (ports 19712-19714) over
//! one fresh database of a PostgreSQL of the test's own (port 19711) act as
//! one Kafka cluster, while 24,000 readings go through three SIGKILLed
//! members and one SIGKILLed broker: every reading is processed and the
//! committed lag ends at 0. The brokers are started as the `soak` binary's
//! `--cluster 3 --postgres URL` starts them ([`Broker::cluster`]).
//!
//! Needs PostgreSQL 15 (`apt-get install postgresql-15`), like the sink's
//! tests: without it the test fails and says so. Figures go to stderr:
//! `cargo test -p reliability --test cluster_soak -- --nocapture`.

use std::time::Duration;

use anyhow::Result;
use reliability::{binaries, soak, unique_schema, Broker, Postgres, Soak};

const PG_PORT: u16 = 19711;
const FIRST_BROKER: u16 = 19712;
const BROKERS: u16 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_loses_nothing_through_member_and_broker_kills() -> Result<()> {
    let config = Soak {
        readings: 24_000,
        interval: "1ms".into(),
        member_kills: 3,
        broker_kills: 1,
        seed: 5,
        settle: Duration::from_secs(90),
        ..Soak::default()
    };
    let bins = binaries()?;
    // Declared before the brokers, so that they stop before it does.
    let pg = Postgres::start(PG_PORT).await?;
    let url = pg.create_database(&unique_schema("nisshi")).await?;
    let mut brokers = Broker::cluster(FIRST_BROKER, BROKERS, &url).await?;
    let figures = soak(&config, &bins, &mut brokers).await?;
    eprintln!("FIGURES cluster soak ({BROKERS} brokers over PostgreSQL): {figures}");
    assert_eq!((figures.member_kills, figures.broker_kills), (3, 1), "{figures}");
    figures.check()
}
