//! Runs the temperature demo's three scenarios against a running broker and
//! checks what the apps report:
//!
//! 1. `1-to-1`: one `temp_gen`, one `average_temp`.
//! 2. `1-to-3`: one `temp_gen`, three `average_temp`, each in a group of its
//!    own: each sees every reading.
//! 3. `1-to-3-group`: one `temp_gen`, three `average_temp` in one consumer
//!    group: they share the three partitions.
//!
//! The runner builds and starts nothing but the apps: it expects a broker
//! (see [`check_brokers`]) and the already-built `temp_gen` and
//! `average_temp` executables (see [`Binaries`]), runs them as child
//! processes on a fresh topic per scenario, parses their last lines
//! ([`temps::ProducerSummary`], [`temps::ConsumerSummary`]) and checks counts,
//! averages and partitions ([`evaluate`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), scenarios::Error> {
//! use scenarios::{Binaries, Config, Scenario};
//!
//! let config = Config::new("127.0.0.1:19192", Binaries::next_to_current_exe()?);
//! scenarios::check_brokers(&config).await?;
//! let report = scenarios::run_scenario(&config, Scenario::SameGroup).await?;
//! println!("{report}");
//! assert!(report.passed());
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod build;
mod check;
mod child;
mod report;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};
use twitch::{KafkaCluster, TopicConfiguration};

pub use build::build_executables;
pub use check::{evaluate, Check, TOLERANCE};
pub use child::{Exit, Outcome};
pub use report::{Report, ScenarioReport};

/// Partitions of every scenario's topic.
pub const PARTITIONS: i32 = 3;

/// One of the three scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Scenario {
    /// One producer, one consumer.
    #[value(name = "1-to-1")]
    OneToOne,
    /// One producer, three consumers, each in its own group.
    #[value(name = "1-to-3")]
    OneToThree,
    /// One producer, three consumers in one shared group.
    #[value(name = "1-to-3-group")]
    SameGroup,
}

impl Scenario {
    /// All three, in the order the demo runs them.
    pub const ALL: [Scenario; 3] = [Scenario::OneToOne, Scenario::OneToThree, Scenario::SameGroup];

    /// Short name: `1-to-1`, `1-to-3`, `1-to-3-group`.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::OneToOne => "1-to-1",
            Scenario::OneToThree => "1-to-3",
            Scenario::SameGroup => "1-to-3-group",
        }
    }

    /// One-line description.
    pub fn description(self) -> &'static str {
        match self {
            Scenario::OneToOne => "one temp_gen, one average_temp",
            Scenario::OneToThree => "one temp_gen, three average_temp in groups of their own",
            Scenario::SameGroup => "one temp_gen, three average_temp in one consumer group",
        }
    }

    /// Number of `average_temp` processes.
    pub fn consumers(self) -> usize {
        match self {
            Scenario::OneToOne => 1,
            Scenario::OneToThree | Scenario::SameGroup => 3,
        }
    }

    /// Whether the consumers share one group.
    pub fn shared_group(self) -> bool {
        self == Scenario::SameGroup
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a scenario could not be run at all. (A scenario that ran and whose
/// checks failed is not an error: see [`ScenarioReport::passed`].)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No broker answered.
    #[error("{source}. Start a broker with `scripts/kafka.sh start --port 19192` and `export KAFKA_BROKERS=127.0.0.1:19192` (or pass --brokers)")]
    BrokersUnreachable {
        /// The bootstrap servers tried.
        brokers: String,
        /// What twitch reported.
        source: Box<twitch::Error>,
    },

    /// An app's executable is not where it should be.
    #[error("`{name}` not found at {}; build it first: cargo build -p temp_gen -p average_temp", path.display())]
    MissingBinary {
        /// `temp_gen` or `average_temp`.
        name: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },

    /// `cargo build` of the apps failed (see [`Binaries::build_with_cargo`]).
    #[error("{message}")]
    Build {
        /// What went wrong.
        message: String,
    },

    /// The runner could not tell where its own executable is.
    #[error("cannot locate the runner's own executable: {0}")]
    CurrentExe(#[source] std::io::Error),

    /// A child process could not be started.
    #[error("cannot start {}: {source}", program.display())]
    Spawn {
        /// The executable.
        program: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// A Kafka operation of the runner itself failed (settings, topic
    /// creation).
    #[error("{operation}: {source}")]
    Kafka {
        /// What the runner was doing.
        operation: String,
        /// What twitch reported.
        source: Box<twitch::Error>,
    },
}

/// Paths of the two apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// The producer.
    pub temp_gen: PathBuf,
    /// The consumer.
    pub average_temp: PathBuf,
}

impl Binaries {
    /// `temp_gen` and `average_temp` in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        let exe = |name: &str| dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        Binaries { temp_gen: exe("temp_gen"), average_temp: exe("average_temp") }
    }

    /// The apps next to the running executable (`target/<profile>/` when the
    /// runner runs from there), checked to exist.
    pub fn next_to_current_exe() -> Result<Self, Error> {
        let exe = std::env::current_exe().map_err(Error::CurrentExe)?;
        let dir = exe.parent().ok_or_else(|| {
            Error::CurrentExe(std::io::Error::new(std::io::ErrorKind::NotFound, "the executable has no parent directory"))
        })?;
        let bins = Binaries::in_dir(dir);
        bins.check()?;
        Ok(bins)
    }

    /// Fails with [`Error::MissingBinary`] unless both files exist.
    pub fn check(&self) -> Result<(), Error> {
        for (name, path) in [("temp_gen", &self.temp_gen), ("average_temp", &self.average_temp)] {
            if !path.is_file() {
                return Err(Error::MissingBinary { name, path: path.clone() });
            }
        }
        Ok(())
    }
}

/// How to run the scenarios. [`Config::new`] documents the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Kafka bootstrap servers, also passed to the apps as `KAFKA_BROKERS`.
    pub brokers: String,
    /// The apps.
    pub binaries: Binaries,
    /// Readings `temp_gen` produces per scenario (`--count`).
    pub count: u64,
    /// Pause between readings (`--interval`).
    pub interval: Duration,
    /// `temp_gen --seed`.
    pub seed: u64,
    /// `average_temp --exit-when-idle`.
    pub idle: Duration,
    /// How long to wait for a broker, and (in the shared-group scenario) for
    /// every consumer's first assignment before producing.
    pub broker_timeout: Duration,
    /// `average_temp --join-timeout`, and the wait for assignments.
    pub join_timeout: Duration,
    /// `RUST_LOG` of the apps; must keep `info` of `average_temp` for the
    /// assignment wait to work.
    pub app_log: String,
    /// Keep each scenario's topics instead of deleting them.
    pub keep_topics: bool,
    /// Copy the apps' stdout and stderr to the runner's stderr, each line
    /// prefixed with the process name.
    pub echo: bool,
}

impl Config {
    /// 300 readings 10 ms apart, seed 42, consumers exit 5 s after the last
    /// reading, 10 s broker timeout, 60 s join timeout, topics deleted
    /// afterwards, apps' output not echoed.
    pub fn new(brokers: impl Into<String>, binaries: Binaries) -> Self {
        Config {
            brokers: brokers.into(),
            binaries,
            count: 300,
            interval: Duration::from_millis(10),
            seed: 42,
            idle: Duration::from_secs(5),
            broker_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(60),
            app_log: "info".to_owned(),
            keep_topics: false,
            echo: false,
        }
    }

    fn cluster(&self) -> Result<KafkaCluster, Error> {
        KafkaCluster::builder(&self.brokers)
            .client_id("scenarios")
            .broker_timeout(self.broker_timeout)
            .build()
            .map_err(|e| Error::Kafka { operation: "invalid broker list".to_owned(), source: Box::new(e) })
    }
}

/// Checks that a broker answers within the configured broker timeout.
pub async fn check_brokers(config: &Config) -> Result<(), Error> {
    config
        .cluster()?
        .wait_for_brokers()
        .await
        .map(drop)
        .map_err(|e| Error::BrokersUnreachable { brokers: config.brokers.clone(), source: Box::new(e) })
}

/// Checks the broker, then runs `scenarios` one after the other.
pub async fn run_all(config: &Config, scenarios: &[Scenario]) -> Result<Report, Error> {
    config.binaries.check()?;
    check_brokers(config).await?;
    let mut report = Report::default();
    for &scenario in scenarios {
        report.scenarios.push(run_scenario(config, scenario).await?);
    }
    Ok(report)
}

/// Runs one scenario on a fresh topic and checks the apps' results.
pub async fn run_scenario(config: &Config, scenario: Scenario) -> Result<ScenarioReport, Error> {
    let started = Instant::now();
    let cluster = config.cluster()?;
    let topic = format!("temps-{}-{}", scenario.name(), unique_suffix());
    // Created here, not by temp_gen, so consumers can subscribe before
    // anything is produced.
    cluster
        .ensure_topic(&TopicConfiguration::new(&topic, PARTITIONS))
        .await
        .map_err(|e| Error::Kafka { operation: format!("creating topic `{topic}`"), source: Box::new(e) })?;
    info!(%scenario, %topic, "running {}", scenario.description());

    let group = scenario.shared_group().then(|| format!("{topic}-group"));
    let idle = humantime::format_duration(config.idle).to_string();
    let join_timeout = humantime::format_duration(config.join_timeout).to_string();
    let mut consumers = Vec::with_capacity(scenario.consumers());
    for i in 1..=scenario.consumers() {
        let mut args = vec!["--topic", &topic, "--exit-when-idle", &idle, "--join-timeout", &join_timeout];
        if let Some(group) = &group {
            args.extend(["--group", group]);
        }
        consumers.push(child::spawn(&format!("average_temp-{i}"), &config.binaries.average_temp, &args, config)?);
    }
    if group.is_some() {
        // Produce only once every member has its partitions, so the group
        // does not rebalance while it reads and each partition stays with
        // one member.
        let deadline = tokio::time::Instant::now() + config.join_timeout;
        for c in &mut consumers {
            if !c.wait_assigned(deadline).await {
                warn!(consumer = c.name(), "no assignment seen in time; producing anyway");
            }
        }
        info!(group = group.as_deref().unwrap_or_default(), "every consumer has its partitions");
    }

    let count = config.count.to_string();
    let interval = humantime::format_duration(config.interval).to_string();
    let seed = config.seed.to_string();
    let producer = child::spawn(
        "temp_gen",
        &config.binaries.temp_gen,
        &["--topic", &topic, "--count", &count, "--interval", &interval, "--seed", &seed],
        config,
    )?;
    let produce_time = config.interval.saturating_mul(u32::try_from(config.count).unwrap_or(u32::MAX));
    let producer = producer.finish(Duration::from_secs(60).saturating_add(produce_time.saturating_mul(2))).await;

    // Consumers stop `idle` after their last reading.
    let deadline = Duration::from_secs(60).saturating_add(config.idle).saturating_add(config.join_timeout);
    let deadline = tokio::time::Instant::now() + deadline;
    let mut finished = Vec::with_capacity(consumers.len());
    for c in consumers {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        finished.push(c.finish(left).await);
    }

    if !config.keep_topics {
        let dlq = format!("{topic}.dlq");
        match cluster.delete_topics(&[&topic, &dlq]).await {
            Ok(()) => debug!(%topic, "topics deleted"),
            Err(e) => debug!(%topic, error = %e, "topics not deleted"),
        }
    }
    let report = ScenarioReport::new(scenario, topic, config, producer, finished, started.elapsed());
    info!(%scenario, passed = report.passed(), "done");
    Ok(report)
}

/// Milliseconds since the epoch, the process id and a counter: unique.
fn unique_suffix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{millis}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
