//! twitch-bench: twitch against raw rdkafka and rskafka, same broker, same
//! run.
//!
//! ```text
//! cargo run --release -p twitch-bench -- --target broker --brokers 127.0.0.1:19900
//! cargo run --release -p twitch-bench -- --target mock --rounds 5
//! cargo run --release -p twitch-bench -- --quick --target mock
//! ```

mod cases;
mod peer;
mod raw;
mod report;
mod stats;
mod sweep;
mod target;

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};

use crate::cases::{Side, Tuning};
use crate::report::{CaseResult, Report};
use crate::target::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetArg {
    /// The broker(s) at --brokers.
    Broker,
    /// librdkafka's in-process mock cluster: shows the client's own cost.
    Mock,
    /// Both, mock first.
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SideArg {
    /// Plain rdkafka with twitch's settings.
    Raw,
    /// Plain rdkafka storing each processed record's offset (group reads).
    RawStored,
    /// twitch with its defaults.
    Twitch,
    /// twitch's writers with enable.idempotence=false (write cases).
    TwitchNoidem,
    /// rskafka (write and read cases).
    Rskafka,
    /// Every side a case has.
    All,
}

impl SideArg {
    fn picks(self, side: Side) -> bool {
        match self {
            SideArg::Raw => side == Side::Raw,
            SideArg::RawStored => side == Side::RawStored,
            SideArg::Twitch => side == Side::Twitch,
            SideArg::TwitchNoidem => side == Side::TwitchNoIdem,
            SideArg::Rskafka => side == Side::Rskafka,
            SideArg::All => true,
        }
    }
}

/// Benchmarks twitch against raw rdkafka with identical client settings, and
/// against rskafka, on the same broker, in the same run.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Bootstrap servers of the broker to benchmark.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,

    /// Short run for a smoke test: tiny record counts, 1 round.
    #[arg(long)]
    quick: bool,

    /// Rounds per case and side (the sides take turns to go first).
    #[arg(long, default_value_t = 3)]
    rounds: usize,

    /// Where to run.
    #[arg(long, value_enum, default_value_t = TargetArg::Both)]
    target: TargetArg,

    /// Run only these cases (comma-separated): a case's exact name picks
    /// that case alone, any other text every case whose name contains it.
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,

    /// Records per case instead of each case's own count (not the latency
    /// cases, which run for a time): more records make instruction counts
    /// under callgrind per record exact, fewer make a short try.
    #[arg(long)]
    records: Option<u64>,

    /// Run only these sides (comma-separated; for profiling one client, or
    /// a shorter run); ratios against a side left out are not shown, and
    /// without twitch they show NaN.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    side: Vec<SideArg>,

    /// rskafka's records per produce call.
    #[arg(long, default_value_t = peer::DEFAULT_BATCH)]
    rskafka_batch: usize,

    /// Pid of the broker process, to report its CPU use (found from
    /// scripts/kafka.sh's pid file, target/kafka/<port>/kafka.pid, when not
    /// given).
    #[arg(long, env = "BROKER_PID")]
    broker_pid: Option<u32>,

    /// Extra producer setting for both sides, `key=value` (repeatable).
    #[arg(long = "producer-set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    producer_set: Vec<(String, String)>,

    /// Extra consumer setting for both sides, `key=value` (repeatable).
    #[arg(long = "consumer-set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    consumer_set: Vec<(String, String)>,

    /// Instead of the cases, sweep producer settings (linger.ms,
    /// batch.size, compression.type) on twitch's keyed writer and on the
    /// latency case.
    #[arg(long)]
    sweep: bool,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).init();
    }
    let rounds = if cli.quick { 1 } else { cli.rounds.max(1) };
    let mut cases = cases::select(cases::all(cli.quick), &cli.cases);
    if let Some(records) = cli.records {
        cases::set_records(&mut cases, records.max(1));
    }
    if cases.is_empty() && !cli.sweep {
        bail!("no case matches --cases {:?}", cli.cases);
    }

    let tuning =
        Tuning { producer: cli.producer_set.clone(), consumer: cli.consumer_set.clone(), rskafka_batch: cli.rskafka_batch.max(1) };
    let mut machine = machine_summary();
    for (what, set) in [("producer", &tuning.producer), ("consumer", &tuning.consumer)] {
        if !set.is_empty() {
            let list: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
            machine.push_str(&format!("; extra {what} settings on both sides: {}", list.join(", ")));
        }
    }
    let rskafka = format!("rskafka 0.6, batches of {} records per produce call, one in flight per partition", tuning.rskafka_batch);
    let mut report = Report::new(machine, rskafka, rounds, cli.quick);
    let targets: &[TargetArg] = match cli.target {
        TargetArg::Both => &[TargetArg::Mock, TargetArg::Broker],
        TargetArg::Mock => &[TargetArg::Mock],
        TargetArg::Broker => &[TargetArg::Broker],
    };
    for which in targets {
        let target = match which {
            TargetArg::Mock => Target::mock()?,
            _ => {
                let pid = cli.broker_pid.or_else(|| target::find_broker_pid(&cli.brokers));
                Target::broker(&cli.brokers, pid).await?
            }
        };
        eprintln!("== target {} ({})", target.name(), target.brokers());
        if cli.sweep {
            sweep::run(&target, cli.quick, rounds).await?;
            continue;
        }
        for case in &cases {
            let mut result = CaseResult::new(target.name(), case.clone());
            let sides: Vec<Side> = case.sides().into_iter().filter(|s| cli.side.iter().any(|a| a.picks(*s))).collect();
            for round in 0..rounds {
                // The sides take turns to go first, so none always gets the
                // warmer (or more fragmented) broker.
                let mut order = sides.clone();
                order.rotate_left(round % sides.len().max(1));
                for side in order {
                    let sample = cases::run(&target, case, side, &tuning).await?;
                    eprintln!(
                        "   {:<15} {:<13} round {}: {:>10.0} rec/s {}{}",
                        case.name,
                        side.name(),
                        round + 1,
                        sample.records_per_sec(),
                        sample.cpu_per_record().map(|c| c.to_string()).unwrap_or_default(),
                        sample.latency.map(|l| format!(" p50 {:.0} us p99 {:.0} us", l.p50_us, l.p99_us)).unwrap_or_default()
                    );
                    result.push(side, sample);
                }
            }
            report.push(result);
        }
    }
    if !cli.sweep {
        print!("{}", report.render());
    }
    Ok(())
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("`{s}` is not key=value")),
    }
}

fn machine_summary() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
    format!("{cpus} CPUs ({model}), librdkafka {librdkafka}, {} build", if cfg!(debug_assertions) { "debug" } else { "release" })
}
