//! `average_temp`: reads temperature readings from Kafka and keeps running
//! averages, overall and per sensor.
//!
//! It prints one line per reading on stdout as it happens (`<sensor> #<seq>
//! p<partition>@<offset> <celsius> °C | ...`); on exit (Ctrl-C /
//! SIGTERM, or `--exit-when-idle`) it commits, leaves its consumer group and
//! prints one last line: `consumed <N> readings, average <X>, partitions
//! <list>`, the partitions it read readings from or held at the end. Logs go to stderr (`RUST_LOG` filters them; default `info`).
//!
//! ```text
//! average_temp                                   # own group: sees every reading
//! average_temp --group averagers                 # share the partitions with other members
//! average_temp --exit-when-idle 5                # stop 5 s after the last reading
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use temps::{Averages, ConsumerSummary, Reading, ASSIGNED_LOG_MESSAGE};
use tokio::sync::mpsc::Receiver;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use twitch::reader::{GroupEvent, GroupStart, OnDecodeError};
use twitch::{Decoded, Format, GroupReader, KafkaCluster, TopicConfiguration};

use temps::signals::Signals;
mod observe;

/// Reads temperature readings (JSON) from a Kafka topic and prints each with
/// running averages, per sensor and overall.
///
/// On exit it commits what it processed, leaves its consumer group and prints
/// one last line on stdout: `consumed <N> readings, average <X>, partitions
/// <list>`, the partitions it read readings from or held at the end (not
/// those it held for a while, while its group formed, and read nothing from).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Kafka bootstrap servers, `host:port[,host:port...]`.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,

    /// Topic to read.
    #[arg(long, default_value = "temperatures")]
    topic: String,

    /// Consumer group to join, sharing the topic's partitions with its other
    /// members. Without it, each process uses a group of its own
    /// (`average_temp-<pid>-<random>`) and so sees every reading.
    #[arg(long)]
    group: Option<String>,

    /// Exit once no reading arrived for this long: seconds (`5`) or a
    /// duration (`500ms`, `1m`). The clock starts when the group first
    /// assigns partitions to this process.
    #[arg(long, value_name = "SECS", value_parser = idle_duration)]
    exit_when_idle: Option<Duration>,

    /// Topic where readings that cannot be decoded are parked (created if
    /// missing) [default: <topic>.dlq].
    #[arg(long, value_name = "TOPIC")]
    dead_letter: Option<String>,

    /// Report readings that cannot be decoded and skip them, without a
    /// dead-letter topic.
    #[arg(long, conflicts_with = "dead_letter")]
    no_dead_letter: bool,

    /// Where a group without committed offsets starts reading.
    #[arg(long, value_enum, default_value_t = Start::Beginning)]
    start: Start,

    /// With --exit-when-idle: how long to wait for the topic and for the
    /// group's first assignment before giving up.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    join_timeout: Duration,

    /// How long to wait for a broker to answer at startup.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    broker_timeout: Duration,

    /// How long the group waits for a member that stopped without leaving
    /// (killed, crashed, cut off) before handing its partitions to the
    /// others: librdkafka's `session.timeout.ms` [default: 45s]. Heartbeats
    /// go out every tenth of it, at most every 3s. Brokers bound it (Kafka:
    /// 6s to 30m by default). A graceful stop (Ctrl-C, SIGTERM) leaves the
    /// group at once whatever this is.
    #[arg(long, value_parser = session_timeout)]
    session_timeout: Option<Duration>,

    #[command(flatten)]
    observe: observe::Options,
}

/// Where a new group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Start {
    /// The oldest reading still stored.
    Beginning,
    /// Only readings written from now on.
    End,
}

/// Seconds (`5`, `0.5`) or a humantime duration (`500ms`, `1m 30s`).
fn idle_duration(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is not a number of seconds >= 0")),
        Err(_) => humantime::parse_duration(s).map_err(|e| format!("`{s}` is neither seconds nor a duration: {e}")),
    }
}

/// A humantime duration from 1 ms to 1 h, librdkafka's range for
/// `session.timeout.ms`.
fn session_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration: {e}"))?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(3600) {
        return Err(format!("`{s}` is not between 1ms and 1h"));
    }
    Ok(d)
}

/// Why `average_temp` stopped early.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("{0}")]
    Kafka(#[from] twitch::Error),

    #[error("topic `{topic}` did not appear within {:.1} s", waited.as_secs_f64())]
    NoTopic { topic: String, waited: Duration },

    #[error("the group `{group}` assigned no partitions within {:.1} s", waited.as_secs_f64())]
    NotAssigned { group: String, waited: Duration },

    #[error("cannot listen for Ctrl-C / SIGTERM: {0}")]
    Signals(#[source] std::io::Error),

    #[error("cannot write to stdout: {0}")]
    Stdout(#[source] std::io::Error),

    #[error("{0}")] Monitor(#[from] monitor::MonitorError),
}

/// Why reading ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Signal(&'static str),
    Idle,
    StreamEnded,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    temps::logging::init();
    temps::logging::exit_code("average_temp", run(args).await)
}

async fn run(args: Args) -> Result<(), AppError> {
    // Installed first: from here on Ctrl-C and SIGTERM end the run cleanly.
    let mut signals = Signals::new().map_err(AppError::Signals)?;
    let started = Instant::now();
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("average_temp-{}-{:08x}", std::process::id(), rand::random::<u32>()));
    let dead_letter = (!args.no_dead_letter)
        .then(|| args.dead_letter.clone().unwrap_or_else(|| format!("{}.dlq", args.topic)));
    // Waiting for the topic counts against the join timeout.
    let join_deadline = args.exit_when_idle.map(|_| started + args.join_timeout);

    let setup = async {
        let cluster = KafkaCluster::builder(&args.brokers)
            .client_id("average_temp")
            .broker_timeout(args.broker_timeout)
            .build()?;
        cluster.wait_for_brokers().await?;
        wait_for_topic(&cluster, &args.topic, join_deadline, started).await?;
        if let Some(dlq) = &dead_letter {
            // Without it the first undecodable reading would stop us; if it
            // cannot be created here, that shows when a reading is parked.
            if let Err(e) = cluster.create_topics(&[TopicConfiguration::new(dlq, 1)]).await {
                warn!(topic = %dlq, error = %e, "cannot create the dead-letter topic");
            }
        }
        let mut builder = cluster.group_reader(&group);
        if let Some(timeout) = args.session_timeout {
            builder = builder.session_timeout(timeout);
        }
        let reader = args.observe.configure(builder)
            .topic(&args.topic)
            .format(Format::Json)
            .start(match args.start {
                Start::Beginning => GroupStart::Beginning,
                Start::End => GroupStart::End,
            })
            .on_decode_error(match &dead_letter {
                Some(topic) => OnDecodeError::DeadLetter(topic.clone()),
                None => OnDecodeError::Fail,
            })
            .build()?;
        Ok::<_, AppError>(reader)
    };
    let mut reader = tokio::select! {
        biased;
        signal = signals.recv() => {
            info!(signal, "stopped during startup");
            return print_summary(&ConsumerSummary { consumed: 0, average: None, partitions: BTreeSet::new() });
        }
        reader = setup => reader?,
    };
    info!(topic = %args.topic, %group, dead_letter = dead_letter.as_deref().unwrap_or("off"), "reading");
    let observer = observe::Observer::start(&args.observe, &args.topic, &reader).await?;

    let mut events = Some(reader.events());
    let mut averages = Averages::default();
    let mut assigned = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let watch = Watch {
        idle: args.exit_when_idle,
        started,
        join_timeout: args.join_timeout,
        last_activity: Cell::new(started),
        joined: Cell::new(false),
    };
    let outcome = {
        // Reading and watching run concurrently in this one task. Only the
        // watcher decides to stop (signal, idle, join timeout), so the reader
        // is cancelled only on the way out: a reading it had taken but not
        // yet acked is then simply not committed, and is read again later.
        let reading = read_loop(&mut reader, &mut averages, &mut seen, &watch, &observer);
        let watching = watch.run(&mut signals, &mut events, &mut assigned, &args.topic, &group);
        tokio::select! {
            stop = reading => stop,
            stop = watching => stop,
        }
    };
    let dead_lettered = reader.dead_lettered();
    // Commits what was processed and leaves the group, whatever the outcome.
    let shutdown = reader.shutdown().await;
    let stop = outcome?;
    shutdown?;
    info!(reason = ?stop, readings = averages.overall().count(), dead_lettered, "stopped");
    assigned.extend(seen);
    print_summary(&ConsumerSummary {
        consumed: averages.overall().count(),
        average: averages.overall().mean(),
        partitions: assigned,
    })
}

/// Waits until `topic` exists, up to `deadline` (forever without one).
async fn wait_for_topic(
    cluster: &KafkaCluster,
    topic: &str,
    deadline: Option<Instant>,
    started: Instant,
) -> Result<(), AppError> {
    let mut last_log: Option<Instant> = None;
    loop {
        match cluster.topic(topic).await {
            Ok(info) => {
                info!(topic, partitions = info.partitions.len(), readings = info.len(), "topic found");
                return Ok(());
            }
            Err(e) if matches!(e.kind(), twitch::ErrorKind::UnknownTopic { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Err(AppError::NoTopic { topic: topic.to_owned(), waited: now - started });
        }
        if last_log.is_none_or(|t| now - t >= Duration::from_secs(10)) {
            info!(topic, "waiting for the topic to be created (start temp_gen)");
            last_log = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads, prints and acks readings until the stream ends or fails.
async fn read_loop(
    reader: &mut GroupReader,
    averages: &mut Averages,
    seen: &mut BTreeSet<i32>,
    watch: &Watch,
    observer: &observe::Observer,
) -> Result<Stop, AppError> {
    let mut line = String::new();
    loop {
        match reader.next_typed::<Reading>().await {
            None => return Ok(Stop::StreamEnded),
            Some(Ok((Decoded { value, record }, ack))) => {
                let sensor = averages.add(&value.sensor, value.celsius);
                let overall = averages.overall();
                observer.reading(&value.sensor, &sensor, &overall);
                seen.insert(record.partition);
                line.clear();
                // Writing to a String cannot fail.
                let _ = write!(
                    line,
                    "{} #{} p{}@{} {:.2} °C | sensor avg {:.6} (n={}) | overall avg {:.6} (n={})",
                    value.sensor,
                    value.seq,
                    record.partition,
                    record.offset,
                    value.celsius,
                    sensor.mean().unwrap_or(f64::NAN),
                    sensor.count(),
                    overall.mean().unwrap_or(f64::NAN),
                    overall.count(),
                );
                print_line(&line)?;
                // Processed: only now may its offset be committed.
                ack.ack();
                watch.activity();
            }
            Some(Err(e)) => match e.kind() {
                twitch::ErrorKind::Decode { record, source } => {
                    warn!(
                        topic = %record.topic,
                        partition = record.partition,
                        offset = record.offset,
                        key = %String::from_utf8_lossy(record.key().unwrap_or_default()),
                        error = %source,
                        "cannot decode a reading; skipped"
                    );
                    reader.mark_processed(record);
                    observer.undecodable();
                    watch.activity();
                }
                twitch::ErrorKind::Consume { .. } => {
                    warn!(error = %e, "consuming failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ => return Err(e.into()),
            },
        }
    }
}

/// What decides when to stop: signals, group events and the idle clock.
#[derive(Debug)]
struct Watch {
    idle: Option<Duration>,
    started: Instant,
    join_timeout: Duration,
    /// Last reading, assignment or revocation.
    last_activity: Cell<Instant>,
    /// Whether the group assigned partitions (possibly none) at least once.
    joined: Cell<bool>,
}

impl Watch {
    fn activity(&self) {
        self.last_activity.set(Instant::now());
    }

    /// When to stop if nothing happens before.
    fn deadline(&self) -> Option<Instant> {
        let idle = self.idle?;
        Some(if self.joined.get() { self.last_activity.get() + idle } else { self.started + self.join_timeout })
    }

    async fn run(
        &self,
        signals: &mut Signals,
        events: &mut Option<Receiver<GroupEvent>>,
        assigned: &mut BTreeSet<i32>,
        topic: &str,
        group: &str,
    ) -> Result<Stop, AppError> {
        loop {
            let deadline = self.deadline();
            tokio::select! {
                biased;
                signal = signals.recv() => {
                    info!(signal, "stopping");
                    return Ok(Stop::Signal(signal));
                }
                event = next_event(events) => match event {
                    Some(GroupEvent::Assigned(tps)) => {
                        let mine: BTreeSet<i32> = tps.iter().filter(|tp| tp.topic == topic).map(|tp| tp.partition).collect();
                        info!(partitions = %list(&mine), "{}", ASSIGNED_LOG_MESSAGE);
                        assigned.extend(mine);
                        self.joined.set(true);
                        self.activity();
                    }
                    Some(GroupEvent::Revoked(tps)) => {
                        let mine: BTreeSet<i32> = tps.iter().filter(|tp| tp.topic == topic).map(|tp| tp.partition).collect();
                        info!(partitions = %list(&mine), "partitions revoked");
                        assigned.retain(|p| !mine.contains(p));
                        self.activity();
                    }
                    Some(GroupEvent::Error(e)) => warn!(error = %e, "rebalance error"),
                    Some(other) => debug!(event = ?other, "group event"),
                    None => {
                        // The reader is gone; nothing more will come.
                        *events = None;
                    }
                },
                () = sleep_until(deadline) => {
                    // Readings may have moved the deadline since.
                    if self.deadline().is_some_and(|d| d <= Instant::now()) {
                        if !self.joined.get() {
                            return Err(AppError::NotAssigned { group: group.to_owned(), waited: self.started.elapsed() });
                        }
                        info!(idle = %humantime::format_duration(self.idle.unwrap_or_default()), "no new reading; exiting");
                        return Ok(Stop::Idle);
                    }
                }
            }
        }
    }
}

async fn next_event(events: &mut Option<Receiver<GroupEvent>>) -> Option<GroupEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Partitions as `0,1,2`, or `none`.
fn list(partitions: &BTreeSet<i32>) -> String {
    if partitions.is_empty() {
        return "none".to_owned();
    }
    partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// Prints one line on stdout and flushes it at once.
fn print_line(line: &str) -> Result<(), AppError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(AppError::Stdout)
}

/// Prints the one last line on stdout.
fn print_summary(summary: &ConsumerSummary) -> Result<(), AppError> {
    print_line(&summary.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_takes_seconds_or_durations() {
        assert_eq!(idle_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(idle_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(idle_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(idle_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(idle_duration("-1").is_err());
        assert!(idle_duration("soon").is_err());
        assert!(idle_duration("1e300").is_err());
    }

    #[test]
    fn partition_lists() {
        assert_eq!(list(&BTreeSet::new()), "none");
        assert_eq!(list(&[2, 0, 1].into()), "0,1,2");
    }

    #[test]
    fn the_cli_parses() {
        use clap::CommandFactory;
        Args::command().debug_assert();
        let a = Args::try_parse_from(["average_temp", "--brokers", "b:1", "--exit-when-idle", "5", "--no-dead-letter"]).unwrap();
        assert_eq!(a.exit_when_idle, Some(Duration::from_secs(5)));
        assert!(a.no_dead_letter && a.group.is_none());
        let e = Args::try_parse_from(["average_temp", "--dead-letter", "x", "--no-dead-letter"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let a = Args::try_parse_from(["average_temp", "--session-timeout", "6s"]).unwrap();
        assert_eq!(a.session_timeout, Some(Duration::from_secs(6)));
        for bad in ["0s", "2h", "soon"] {
            let e = Args::try_parse_from(["average_temp", "--session-timeout", bad]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }
}
