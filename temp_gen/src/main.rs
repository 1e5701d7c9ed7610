//! `temp_gen`: produces random temperature readings to a Kafka topic with
//! three partitions.
//!
//! Each reading is a [`temps::Reading`] in plain JSON, keyed by its sensor id,
//! so each sensor's readings stay in order on one partition and the default
//! three sensors cover all three partitions. On exit (after `--count`
//! readings, or on Ctrl-C / SIGTERM) it flushes and prints one last line on
//! stdout: `produced <N> readings, mean <X>`. Logs go to stderr (`RUST_LOG`
//! filters them; default `info`).
//!
//! ```text
//! temp_gen --count 300 --interval 10ms --seed 42
//! temp_gen --topic temperatures --sensors 5 --interval 1s      # until Ctrl-C
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod generator;
mod progress;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use monitor::metrics::{Metrics, ProducerMetrics};
use temps::signals::Signals;
use temps::{ProducerSummary, RunningMean};
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};
use twitch::partitioner::partition_for_key;
use twitch::{Format, KafkaCluster, TopicConfiguration};

use crate::generator::Generator;
use crate::progress::Progress;

/// Partitions the topic must have.
const PARTITIONS: i32 = 3;
/// How often librdkafka's statistics come, with `--metrics`.
const STATISTICS_EVERY: Duration = Duration::from_secs(1);

/// Produces random temperature readings (JSON, keyed by sensor id) to a Kafka
/// topic with three partitions, creating the topic if it is missing.
///
/// On exit (after --count readings, or on Ctrl-C / SIGTERM) it flushes and
/// prints one last line on stdout: `produced <N> readings, mean <X>`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Kafka bootstrap servers, `host:port[,host:port...]`.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,

    /// Topic to write to; created with 3 partitions if missing.
    #[arg(long, default_value = "temperatures")]
    topic: String,

    /// Readings to produce, over all sensors; unlimited when not given.
    #[arg(long)]
    count: Option<u64>,

    /// Pause between two readings, such as `1s`, `100ms` or `0` (as fast as
    /// possible).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,

    /// Number of sensors; they report in turn, each under its own key
    /// (`sensor-001`, `sensor-002`, ...).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    sensors: u32,

    /// Seed of the random generator, to repeat a run's temperatures exactly;
    /// random (and logged) when not given.
    #[arg(long)]
    seed: Option<u64>,

    /// Base temperature in °C; each sensor gets its own within ±2 °C of it.
    #[arg(long, default_value_t = 21.0, value_parser = finite, allow_negative_numbers = true)]
    base: f64,

    /// Scale of each random step, `(rng.gen() - rng.gen()) * spread`, in °C.
    #[arg(long, default_value_t = 0.5, value_parser = non_negative)]
    spread: f64,

    /// How often to log progress.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    progress_every: Duration,

    /// How long to wait for a broker to answer at startup.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    broker_timeout: Duration,

    /// How long librdkafka keeps retrying a reading the broker has not
    /// acknowledged (`message.timeout.ms`) [default: 5m]. A reading still
    /// unacknowledged then is reported: temp_gen exits with an error naming
    /// how many readings were not delivered.
    #[arg(long, value_parser = delivery_timeout)]
    delivery_timeout: Option<Duration>,

    /// Serve metrics in Prometheus' text format at http://ADDR/metrics
    /// (readings produced, delivered, failed; librdkafka's statistics),
    /// such as `127.0.0.1:9101`.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

fn finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(format!("`{s}` is not a finite number")),
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    match finite(s)? {
        x if x >= 0.0 => Ok(x),
        _ => Err(format!("`{s}` is negative")),
    }
}

/// A humantime duration from 10 ms (above the writers' `linger.ms`) to
/// librdkafka's maximum, 2^31 - 1 ms.
fn delivery_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration: {e}"))?;
    if d < Duration::from_millis(10) || d.as_millis() > i32::MAX as u128 {
        return Err(format!("`{s}` is not between 10ms and 24d"));
    }
    Ok(d)
}

/// Why `temp_gen` stopped early.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("topic `{topic}` has {actual} partition(s), but temp_gen needs {expected}; delete it or choose another --topic")]
    WrongPartitionCount { topic: String, expected: i32, actual: i32 },

    #[error("{0}")]
    Kafka(twitch::Error),

    #[error("cannot listen for Ctrl-C / SIGTERM: {0}")]
    Signals(#[source] std::io::Error),

    #[error("cannot write to stdout: {0}")]
    Stdout(#[source] std::io::Error),

    #[error("{0}")]
    Monitor(#[from] monitor::MonitorError),
}

impl From<twitch::Error> for AppError {
    fn from(e: twitch::Error) -> Self {
        match e.into_kind() {
            twitch::ErrorKind::PartitionCountMismatch { topic, expected, actual } => {
                AppError::WrongPartitionCount { topic, expected, actual }
            }
            other => AppError::Kafka(other.into()),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    temps::logging::init();
    temps::logging::exit_code("temp_gen", run(args).await)
}

async fn run(args: Args) -> Result<(), AppError> {
    // Installed first: from here on Ctrl-C and SIGTERM end the run cleanly.
    let mut signals = Signals::new().map_err(AppError::Signals)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut generator = Generator::new(seed, args.sensors, args.base, args.spread);

    let setup = async {
        let mut builder = KafkaCluster::builder(&args.brokers).client_id("temp_gen").broker_timeout(args.broker_timeout);
        if let Some(timeout) = args.delivery_timeout {
            builder = builder.set("message.timeout.ms", timeout.as_millis().to_string());
        }
        if args.metrics.is_some() {
            builder = builder.statistics(STATISTICS_EVERY);
        }
        let cluster = builder.build()?;
        cluster.wait_for_brokers().await?;
        cluster.ensure_topic(&TopicConfiguration::new(&args.topic, PARTITIONS)).await?;
        Ok::<_, AppError>(cluster.keyed_writer(&args.topic)?.with_format(Format::Json))
    };
    let mut writer = tokio::select! {
        biased;
        signal = signals.recv() => {
            info!(signal, "stopped during startup");
            return print_summary(&RunningMean::new());
        }
        writer = setup => writer?,
    };

    let mut covered = BTreeSet::new();
    for id in generator.sensor_ids() {
        let partition = partition_for_key(id.as_bytes(), PARTITIONS);
        covered.insert(partition);
        info!(sensor = id, partition, "sensor");
    }
    if covered.len() < usize::try_from(PARTITIONS).unwrap_or(usize::MAX) {
        warn!(partitions = ?covered, "the sensors' keys do not cover every partition; some stay empty");
    }
    info!(
        topic = %args.topic,
        seed,
        count = args.count.map_or_else(|| "unlimited".to_owned(), |c| c.to_string()),
        interval = %humantime::format_duration(args.interval),
        "producing (pass --seed {seed} to repeat these temperatures)"
    );

    let mut ticker = (!args.interval.is_zero()).then(|| {
        let mut t = tokio::time::interval(args.interval);
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        t
    });
    let metrics = match &args.metrics {
        Some(addr) => Some(serve_metrics(addr, &writer).await?),
        None => None,
    };
    let mut mean = RunningMean::new();
    let started = Instant::now();
    let mut progress = Progress::new(args.count, args.progress_every);
    loop {
        if args.count.is_some_and(|c| mean.count() >= c) {
            break;
        }
        let pause = async {
            match ticker.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => tokio::task::yield_now().await,
            }
        };
        tokio::select! {
            biased;
            signal = signals.recv() => {
                info!(signal, "stopping");
                break;
            }
            () = pause => {}
        }
        let reading = generator.next_reading(now_millis());
        writer.send_keyed(reading.sensor.as_bytes(), &reading).await?;
        mean.add(reading.celsius);
        progress.produced(&mean, writer.delivered());
        if let Some(metrics) = &metrics {
            metrics.observe(writer.counters());
        }
    }
    progress.finish();

    let flushed = writer.flush_async().await;
    if let Some(metrics) = &metrics {
        metrics.observe(writer.counters());
    }
    flushed?;
    info!(produced = mean.count(), delivered = writer.delivered(), elapsed = ?started.elapsed(), "flushed");
    print_summary(&mean)
}

/// Serves the writer's metrics at `addr`.
async fn serve_metrics(addr: &str, writer: &twitch::KeyedWriter) -> Result<ProducerMetrics, AppError> {
    let mut registry = Metrics::default();
    let metrics = ProducerMetrics::register(&mut registry);
    metrics.kafka.follow(writer.telemetry());
    let bound = monitor::serve(addr, registry.router()).await?;
    info!("metrics on http://{bound}/metrics");
    Ok(metrics)
}

/// Prints the one last line on stdout.
fn print_summary(mean: &RunningMean) -> Result<(), AppError> {
    let summary = ProducerSummary { produced: mean.count(), mean: mean.mean() };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{summary}").and_then(|()| out.flush()).map_err(AppError::Stdout)
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_timeouts_are_checked() {
        let a = Args::try_parse_from(["temp_gen", "--delivery-timeout", "3s"]).unwrap();
        assert_eq!(a.delivery_timeout, Some(Duration::from_secs(3)));
        assert_eq!(Args::try_parse_from(["temp_gen"]).unwrap().delivery_timeout, None);
        for bad in ["5ms", "30d", "soon"] {
            let e = Args::try_parse_from(["temp_gen", "--delivery-timeout", bad]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }
}
