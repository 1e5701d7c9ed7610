//! The soak, as a command: `temp_gen` writes N readings while members of
//! one group of `average_temp` read them; members and Kafka nodes are
//! killed with SIGKILL and started again along the way. Prints the figures
//! and exits 1 unless every reading was processed with a committed lag of 0.
//!
//! ```text
//! cargo run --release -p reliability --bin soak -- --cluster 3 --readings 1000000 --member-kills 20 --broker-kills 5
//! ```
//!
//! Starts Kafka nodes of its own (`scripts/kafka.sh install` first) from
//! port 19760 on: one node, or with `--cluster N` a cluster of N
//! (`scripts/cluster.sh`: replication factor 3, `min.insync.replicas` 2 for
//! N = 3), where the kills alternate between the active controller and the
//! leader of most of the soak topic's partitions.

use std::time::Duration;

use clap::Parser;
use reliability::{binaries, soak, Broker, Soak};

#[derive(Debug, Parser)]
#[command(about = "Writes N readings through member and broker kills and checks none is lost")]
struct Args {
    /// Readings temp_gen writes (over 3 sensors).
    #[arg(long, default_value_t = 1_000_000)]
    readings: u64,
    /// Group members killed with SIGKILL along the way (each replaced at once).
    #[arg(long, default_value_t = 20)]
    member_kills: u32,
    /// Kafka nodes killed with SIGKILL along the way (each started again after --downtime).
    #[arg(long, default_value_t = 5)]
    broker_kills: u32,
    /// Nodes killed back to back in one burst (each started again at once, the
    /// next killed as soon as every replica is in sync again).
    #[arg(long, default_value_t = 0)]
    packed_kills: u32,
    /// Members of the group.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// temp_gen's pause between readings (`0`: as fast as the broker takes them).
    #[arg(long, default_value = "0")]
    interval: String,
    /// How long a killed node stays down (outside a burst).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    downtime: Duration,
    /// How long the group may go without reaching the next fault's mark, or
    /// without printing every reading once temp_gen is done.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// Seed of the order and choice of kills.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The members' session timeout (`average_temp --session-timeout`)
    /// [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    session_timeout: Option<Duration>,
    /// First port of the soak's nodes (controllers on port + 1000).
    #[arg(long, default_value_t = 19760)]
    port: u16,
    /// Run a Kafka cluster of this many nodes (one node without it).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=9))]
    cluster: Option<u16>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    reliability::init_tracing();
    // On Ctrl-C or SIGTERM the run is dropped: its apps are killed and its
    // brokers stopped.
    let outcome = match temps::signals::Signals::new() {
        Ok(mut signals) => tokio::select! {
            outcome = run(args) => outcome,
            signal = signals.recv() => Err(anyhow::anyhow!("stopped by {signal}")),
        },
        Err(e) => Err(anyhow::anyhow!("cannot install signal handlers: {e}")),
    };
    if let Err(e) = outcome {
        eprintln!("soak: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let defaults = Soak::default();
    let config = Soak {
        readings: args.readings,
        interval: args.interval,
        members: args.members,
        member_kills: args.member_kills,
        broker_kills: args.broker_kills,
        packed_kills: args.packed_kills,
        downtime: args.downtime,
        seed: args.seed,
        settle: args.settle,
        session_timeout: args.session_timeout.unwrap_or(defaults.session_timeout),
        ..defaults
    };
    let bins = binaries()?;
    let mut brokers = match args.cluster {
        Some(n) => {
            eprintln!("soak: {config:?} on a Kafka cluster of {n} nodes from 127.0.0.1:{}", args.port);
            Broker::cluster(args.port, n).await?
        }
        None => {
            eprintln!("soak: {config:?} on one Kafka node (127.0.0.1:{})", args.port);
            vec![Broker::start(args.port).await?]
        }
    };
    let started = std::time::Instant::now();
    let outcome = soak(&config, &bins, &mut brokers).await;
    let stopped = Broker::stop_all(&mut brokers).await;
    let figures = outcome?;
    stopped?;
    println!("{figures}");
    for (i, kill) in figures.kills.iter().enumerate() {
        println!("  node kill {}: {kill}, down {:.1} s", i + 1, kill.down.as_secs_f64());
    }
    println!("  the soak, reading the topic back included, took {:.1} s", started.elapsed().as_secs_f64());
    figures.check()
}
