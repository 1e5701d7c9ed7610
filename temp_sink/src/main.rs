//! `temp_sink`: reads temperature readings from Kafka and writes them, with
//! the running averages per sensor, into PostgreSQL, exactly once.
//!
//! ```text
//! temp_sink --database-url postgres://postgres@127.0.0.1:15432/postgres   # or DATABASE_URL
//! temp_sink --group sinks --exit-when-idle 5                             # members share partitions
//! temp_sink --report                                                     # what the database holds
//! ```
//!
//! On exit (Ctrl-C / SIGTERM, or `--exit-when-idle`) it writes what it read,
//! leaves its group and prints one line: `wrote <N> readings ...`. Logs go
//! to stderr (`RUST_LOG`, default `info`).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Parser;
use temp_sink::pipeline::{read_loop, write_loop, Activity, BatchLimits, ResumeFromDb, Stats};
use temp_sink::{SinkError, Store};
use temps::signals::Signals;
use tokio::time::Instant;
use tracing::{info, warn};
use twitch::reader::OnDecodeError;
use twitch::{Format, KafkaCluster, TopicConfiguration};

/// Writes temperature readings (JSON) from a Kafka topic into PostgreSQL,
/// with the running average of each sensor, exactly once: the offsets
/// consumed are stored in the same transaction as the rows.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// PostgreSQL URL, `postgres://user:password@host:port/database`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,

    /// Schema of the sink's tables (created with them on first start).
    #[arg(long, default_value = "temps")]
    schema: String,

    /// Print what the database holds (per sensor: readings and average; then
    /// overall) and exit, without reading Kafka.
    #[arg(long)]
    report: bool,

    /// Kafka bootstrap servers, `host:port[,host:port...]`.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,

    /// Topic to read.
    #[arg(long, default_value = "temperatures")]
    topic: String,

    /// Consumer group; members of one group share the partitions.
    #[arg(long, default_value = "temp_sink")]
    group: String,

    /// Topic where readings that cannot be decoded are parked [default: <topic>.dlq].
    #[arg(long, value_name = "TOPIC")]
    dead_letter: Option<String>,

    /// At most this many readings per transaction.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,

    /// How long the first reading of a batch waits for more.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    batch_latency: Duration,

    /// Exit once no reading arrived for this long (`5s`, `500ms`).
    #[arg(long, value_parser = humantime::parse_duration)]
    exit_when_idle: Option<Duration>,

    /// How long to wait for the database (at start, and for each connection).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    db_timeout: Duration,

    /// On exit, how long to keep retrying the last batches before giving up
    /// (they are read again next time: nothing is lost).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,

    /// How long the group waits for a member that stopped without leaving
    /// before handing its partitions to the others [default: 45s].
    #[arg(long, value_parser = humantime::parse_duration)]
    session_timeout: Option<Duration>,
}

/// With `--exit-when-idle`: how long to wait for the group's first assignment.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    temps::logging::init();
    temps::logging::exit_code("temp_sink", run(args).await)
}

#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{0}")]
    Kafka(#[from] twitch::Error),
    #[error("cannot listen for Ctrl-C / SIGTERM: {0}")]
    Signals(#[source] std::io::Error),
}

async fn run(args: Args) -> Result<(), AppError> {
    let mut signals = Signals::new().map_err(AppError::Signals)?;
    let store = Store::connect(&args.database_url, &args.schema, args.db_timeout).await?;
    if args.report {
        return print_report(&store).await;
    }
    info!(database = store.target(), schema = %args.schema, "database ready");

    let cluster = KafkaCluster::builder(&args.brokers).client_id("temp_sink").build()?;
    cluster.wait_for_brokers().await?;
    let dead_letter = args.dead_letter.clone().unwrap_or_else(|| format!("{}.dlq", args.topic));
    if let Err(e) = cluster.create_topics(&[TopicConfiguration::new(&dead_letter, 1)]).await {
        warn!(topic = %dead_letter, error = %e, "cannot create the dead-letter topic");
    }
    let activity: Activity = Arc::default();
    let listener = ResumeFromDb::new(store.clone(), &args.topic, Arc::clone(&activity));
    let epochs = listener.epochs();
    let mut builder = cluster
        .group_reader(&args.group)
        .topic(&args.topic)
        .format(Format::Json)
        .on_decode_error(OnDecodeError::DeadLetter(dead_letter.clone()))
        .max_pending_per_partition(4 * args.batch_size as usize)
        .on_rebalance(listener);
    if let Some(timeout) = args.session_timeout {
        builder = builder.session_timeout(timeout);
    }
    let mut reader = builder.build()?;
    info!(topic = %args.topic, group = %args.group, %dead_letter, "reading");

    let limits = BatchLimits { size: args.batch_size as usize, latency: args.batch_latency };
    let (tx, rx) = tokio::sync::mpsc::channel(2 * limits.size);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let mut writer = tokio::spawn(write_loop(store.clone(), args.topic.clone(), rx, limits, Arc::clone(&stats)));

    let outcome = tokio::select! {
        read = read_loop(&mut reader, epochs, tx, Arc::clone(&activity)) => read.map_err(AppError::from),
        () = watch(&mut signals, args.exit_when_idle, &activity) => Ok(()),
    };
    // The sender is gone: the writer writes what it holds, then returns.
    if tokio::time::timeout(args.drain_timeout, &mut writer).await.is_err() {
        writer.abort();
        warn!(waited = ?args.drain_timeout, "gave up writing the last batches; they will be read again");
    }
    let dead_lettered = reader.dead_lettered();
    let shutdown = reader.shutdown().await;
    let stats = stats.lock().unwrap_or_else(PoisonError::into_inner).clone();
    info!(?stats, dead_lettered, "stopped");
    println!(
        "wrote {} readings in {:.1} s ({:.0} readings/s, {} batches), skipped {} duplicates and {} already written, \
         {} dead-lettered",
        stats.inserted,
        stats.busy.as_secs_f64(),
        stats.rate(),
        stats.batches,
        stats.duplicates,
        stats.already,
        dead_lettered
    );
    outcome?;
    shutdown?;
    Ok(())
}

/// Returns on Ctrl-C / SIGTERM, or once no reading came for `idle` (the
/// clock starts at the first assignment, or after [`JOIN_TIMEOUT`]).
async fn watch(signals: &mut Signals, idle: Option<Duration>, activity: &Activity) {
    let started = Instant::now();
    let deadline = || {
        let last = activity.lock().unwrap_or_else(PoisonError::into_inner).unwrap_or(started + JOIN_TIMEOUT);
        idle.map(|idle| last + idle)
    };
    loop {
        tokio::select! {
            signal = signals.recv() => {
                info!(signal, "stopping");
                return;
            }
            // Readings and the first assignment move the deadline: look again soon.
            () = sleep_until(deadline().map(|d| d.min(Instant::now() + Duration::from_millis(250)))) => {
                if deadline().is_some_and(|d| d <= Instant::now()) {
                    info!("no new reading; exiting");
                    return;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Prints `<sensor> readings <n> average <x>` per sensor, then `overall
/// readings <n> average <x> duplicates <d>`.
async fn print_report(store: &Store) -> Result<(), AppError> {
    let report = store.report().await?;
    for s in &report.sensors {
        println!("{} readings {} average {:.6}", s.sensor, s.readings, s.average);
    }
    let overall = report.overall.map_or_else(|| "n/a".to_owned(), |a| format!("{a:.6}"));
    println!("overall readings {} average {overall} duplicates {}", report.rows, report.duplicates);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_parses() {
        use clap::CommandFactory;
        Args::command().debug_assert();
        let a = Args::try_parse_from(["temp_sink", "--database-url", "postgres://x@y/z", "--batch-size", "10"]).unwrap();
        assert_eq!((a.batch_size, a.schema.as_str(), a.group.as_str()), (10, "temps", "temp_sink"));
        assert!(Args::try_parse_from(["temp_sink", "--database-url", "u", "--batch-size", "0"]).is_err());
    }
}
