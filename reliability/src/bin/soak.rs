//! The soak, as a command: `temp_gen` writes N readings while members of
//! one group of `average_temp` read them; members and brokers are killed
//! with SIGKILL and started again along the way. Prints the figures and
//! exits 1 unless every reading was processed with a committed lag of 0.
//!
//! ```text
//! cargo run --release -p reliability --bin soak -- --readings 1000000 --member-kills 20 --broker-kills 5
//! ```
//!
//! Starts brokers of its own (nisshi, `scripts/broker.sh install` first),
//! from port 19760 on: one on `sqlite://` storage in `target/tmp`, or with
//! `--cluster N --postgres URL` a cluster of N sharing that database.

use std::time::Duration;

use clap::Parser;
use reliability::{binaries, soak, Broker, DataDir, Soak};

#[derive(Debug, Parser)]
#[command(about = "Writes N readings through member and broker kills and checks none is lost")]
struct Args {
    /// Readings temp_gen writes (over 3 sensors).
    #[arg(long, default_value_t = 1_000_000)]
    readings: u64,
    /// Group members killed with SIGKILL along the way (each replaced at once).
    #[arg(long, default_value_t = 20)]
    member_kills: u32,
    /// Brokers killed with SIGKILL along the way (each started again after --downtime).
    #[arg(long, default_value_t = 5)]
    broker_kills: u32,
    /// Members of the group.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// temp_gen's pause between readings (`0`: as fast as the broker takes them).
    #[arg(long, default_value = "0")]
    interval: String,
    /// How long a killed broker stays down.
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
    /// First port of the soak's brokers.
    #[arg(long, default_value_t = 19760)]
    port: u16,
    /// Run a cluster of this many brokers over the PostgreSQL database at
    /// --postgres (one broker on sqlite:// without it).
    #[arg(long, requires = "postgres")]
    cluster: Option<u16>,
    /// The cluster's PostgreSQL database, such as
    /// `postgres://postgres@127.0.0.1:15432/postgres` (`scripts/postgres.sh start` prints one).
    #[arg(long, env = "DATABASE_URL")]
    postgres: Option<String>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
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
        downtime: args.downtime,
        seed: args.seed,
        settle: args.settle,
        session_timeout: args.session_timeout.unwrap_or(defaults.session_timeout),
        ..defaults
    };
    let bins = binaries()?;
    let dir = DataDir::new("soak")?;
    let mut brokers = match (args.cluster, &args.postgres) {
        (Some(n), Some(url)) => {
            eprintln!("soak: {config:?} on a cluster of {n} brokers over {url}");
            Broker::cluster(args.port, n, url).await?
        }
        _ => {
            eprintln!("soak: {config:?} on one broker (127.0.0.1:{}, sqlite://)", args.port);
            vec![Broker::start(args.port, &dir.sqlite("soak")).await?]
        }
    };
    let figures = soak(&config, &bins, &mut brokers).await?;
    println!("{figures}");
    figures.check()
}
