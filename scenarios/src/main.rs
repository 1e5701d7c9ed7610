//! `scenarios`: runs the temperature demo 1-to-1, 1-to-3, and 1-to-3 in one
//! consumer group, against a running broker, and checks the results.
//!
//! It builds and starts no broker: start one first
//! (`scripts/kafka.sh start --port 19192`, then
//! `export KAFKA_BROKERS=127.0.0.1:19192`) and build the apps
//! (`cargo build -p temp_gen -p average_temp -p scenarios`); the runner uses
//! the `temp_gen` and `average_temp` next to its own executable.
//!
//! Tables and PASS / FAIL go to stdout, progress logs to stderr. The exit
//! code is 0 when every scenario passed, 1 when one failed or could not run.
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use scenarios::{Binaries, Config, Report, Scenario};

/// Runs temp_gen and average_temp 1-to-1, 1-to-3, and 1-to-3 in one consumer
/// group on fresh topics, and checks counts, averages and partitions.
///
/// Needs a running broker (scripts/kafka.sh start) and the apps built next
/// to this executable (cargo build -p temp_gen -p average_temp -p scenarios).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Kafka bootstrap servers, `host:port[,host:port...]`; passed on to the
    /// apps.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,

    /// Scenario to run (repeatable); all three when not given.
    #[arg(long = "scenario", value_enum)]
    scenarios: Vec<Scenario>,

    /// Readings temp_gen produces per scenario.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,

    /// Pause between two readings (`10ms`, `0` for as fast as possible).
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    interval: Duration,

    /// temp_gen's seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// average_temp's --exit-when-idle: it exits this long after its last
    /// reading.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    idle: Duration,

    /// How long to wait for the broker to answer.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    broker_timeout: Duration,

    /// How long consumers may take to get their first partitions.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    join_timeout: Duration,

    /// Directory of temp_gen and average_temp [default: this executable's].
    #[arg(long)]
    bin_dir: Option<PathBuf>,

    /// Keep the scenarios' topics instead of deleting them.
    #[arg(long)]
    keep_topics: bool,

    /// Show the apps' output (on stderr), each line prefixed with its
    /// process.
    #[arg(long, short)]
    verbose: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    temps::logging::init();
    tokio::select! {
        code = run(args) => code,
        _ = tokio::signal::ctrl_c() => {
            // Dropping the scenario kills its child processes.
            eprintln!("scenarios: interrupted");
            ExitCode::from(130)
        }
    }
}

async fn run(args: Args) -> ExitCode {
    let binaries = match &args.bin_dir {
        Some(dir) => {
            let b = Binaries::in_dir(dir);
            b.check().map(|()| b)
        }
        None => Binaries::next_to_current_exe(),
    };
    let binaries = match binaries {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let mut config = Config::new(args.brokers, binaries);
    config.count = args.count;
    config.interval = args.interval;
    config.seed = args.seed;
    config.idle = args.idle;
    config.broker_timeout = args.broker_timeout;
    config.join_timeout = args.join_timeout;
    config.keep_topics = args.keep_topics;
    config.echo = args.verbose;
    if let Err(e) = scenarios::check_brokers(&config).await {
        return fail(&e);
    }
    let chosen = if args.scenarios.is_empty() { Scenario::ALL.to_vec() } else { args.scenarios };

    let mut report = Report::default();
    for scenario in chosen {
        match scenarios::run_scenario(&config, scenario).await {
            Ok(r) => {
                println!("{r}\n");
                report.scenarios.push(r);
            }
            Err(e) => return fail(&e),
        }
    }
    let passed = report.scenarios.iter().filter(|s| s.passed()).count();
    println!("{passed} of {} scenario(s) passed", report.scenarios.len());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(e: &scenarios::Error) -> ExitCode {
    eprintln!("scenarios: error: {e}");
    ExitCode::FAILURE
}
