//! `average_stage`: averages temperature readings per sensor, exactly once.
//!
//! A member of a consumer group (default `average-stage`) that reads
//! [`temps::Reading`]s from the input topic (default `temps`) in batches
//! (`--batch-size`, `--batch-wait`) and writes, per batch and sensor, one
//! [`temps::StageOutput`] (plain JSON, keyed by the sensor) to the output
//! topic (default `averages`): the readings of the batch it covers, as input
//! `(partition, offset)` spans, and this member's running count, sum and
//! average of the sensor. The outputs go out in Kafka transactions through
//! [`twitch::stage::TransactionalStage`], each of one batch or of the
//! batches of `--commit-interval`: outputs and input offsets commit together
//! or not at all, so a `read_committed` reader of the output sees every
//! reading covered exactly once, whatever member, node or transaction failed
//! on the way. The running figures count committed transactions only.
//!
//! The transactional id (default `<group>-<member>`) must stay the same
//! across restarts of a member: a restarted member then fences its old
//! process (a zombie) and aborts the transaction it left open. Members that
//! run at the same time need different `--member` names.
//!
//! A failed transaction is aborted and its readings read again. When the
//! stage fails fatally, a new one is built under the same transactional id;
//! unless a newer process of the member fenced this one: then it exits with
//! an error (a fence once a transaction outlived `--transaction-timeout` is
//! the coordinator aborting it, and gets a new stage too). It exits as well
//! when a batch has not come back 2 minutes past the transaction timeout (a
//! call into Kafka that hangs).
//!
//! Logs (stderr; `RUST_LOG` filters them, default `info`) show the progress
//! every `--progress-every`. On Ctrl-C / SIGTERM it commits the open
//! transaction, leaves the group and prints one last line on stdout:
//! `committed <T> transactions, <R> readings, <O> outputs, aborted <A>`.
//!
//! ```text
//! average_stage --member a                       # one member of `average-stage`
//! average_stage --member b --topic temperatures --output-topic averages --commit-interval 1s
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod member;
mod state;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use temps::signals::Signals;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{error, info, warn};
use twitch::warden::TopicInfo;
use twitch::{KafkaCluster, TopicConfiguration};

use crate::member::{is_fenced, Member, Settings, Totals};
use crate::state::Running;

/// Averages temperature readings per sensor, exactly once: reads them in
/// batches in a consumer group and writes, per batch and sensor, one output
/// record (JSON, keyed by sensor) saying which readings it covers, in Kafka
/// transactions that commit the input offsets too.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Kafka bootstrap servers, `host:port[,host:port...]`.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,

    /// Topic to read readings from.
    #[arg(long, default_value = "temps")]
    topic: String,

    /// Consumer group; its members share the input topic's partitions.
    #[arg(long, default_value = "average-stage")]
    group: String,

    /// Topic to write the outputs to; created (as many partitions as the
    /// input topic, the broker's default replication) if missing.
    #[arg(long, default_value = "averages")]
    output_topic: String,

    /// Name of this member, unique among the running members of the group
    /// and the same across its restarts.
    #[arg(long, value_name = "NAME", default_value = "1")]
    member: String,

    /// Transactional id of the member [default: <group>-<member>].
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,

    /// Most readings per batch.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,

    /// How long a batch waits for readings (it ends sooner with
    /// --batch-size readings).
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    batch_wait: Duration,

    /// How long a transaction takes batches in before it commits: `0`
    /// commits each batch on its own; longer spans write fewer
    /// transactions. A batch that finds no reading commits at once.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    commit_interval: Duration,

    /// How long the transaction coordinator lets a transaction stay open
    /// before it aborts it (`transaction.timeout.ms`): also how long a
    /// crashed member's open transaction may hold up the member that takes
    /// over its partitions.
    #[arg(long, default_value = "10s", value_parser = transaction_timeout)]
    transaction_timeout: Duration,

    /// How long the group waits for a member that stopped without leaving
    /// (`session.timeout.ms`; brokers accept 6s to 30m by default)
    /// [default: librdkafka's 45s].
    #[arg(long, value_parser = humantime::parse_duration)]
    session_timeout: Option<Duration>,

    /// How often to log progress.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    progress_every: Duration,

    /// How long to wait for a broker to answer at startup; creating the
    /// output topic and joining the group are tried again for this long,
    /// at least a minute (a node may be down).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    broker_timeout: Duration,
}

/// A humantime duration from 1 s to Kafka's default
/// `transaction.max.timeout.ms`, 15 minutes.
fn transaction_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration: {e}"))?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(900) {
        return Err(format!("`{s}` is not between 1s and 15m"));
    }
    Ok(d)
}

/// Why `average_stage` stopped early.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("{0}")]
    Kafka(#[from] twitch::Error),

    #[error("cannot listen for Ctrl-C / SIGTERM: {0}")]
    Signals(#[source] std::io::Error),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    temps::logging::init();
    temps::logging::exit_code("average_stage", run(args).await)
}

async fn run(args: Args) -> Result<(), AppError> {
    // Installed first: from here on Ctrl-C and SIGTERM end the run cleanly.
    let mut signals = Signals::new().map_err(AppError::Signals)?;
    let settings = Settings {
        transactional_id: args.transactional_id.clone().unwrap_or_else(|| format!("{}-{}", args.group, args.member)),
        topic: args.topic.clone(),
        group: args.group.clone(),
        output: args.output_topic.clone(),
        session_timeout: args.session_timeout,
        transaction_timeout: args.transaction_timeout,
        batch_max: usize::try_from(args.batch_size).unwrap_or(usize::MAX),
        batch_wait: args.batch_wait,
        commit_interval: args.commit_interval,
    };
    let instance = rand::random::<u64>();
    let setup = async {
        let cluster = KafkaCluster::builder(&args.brokers)
            .client_id(format!("average_stage-{}", args.member))
            .broker_timeout(args.broker_timeout)
            .build()?;
        cluster.wait_for_brokers().await?;
        let input = wait_for_topic(&cluster, &args.topic).await?;
        // An output topic that exists is kept as it is.
        let output = TopicConfiguration::new(&args.output_topic, i32::try_from(input.partitions.len()).unwrap_or(i32::MAX));
        let patience = args.broker_timeout.max(Duration::from_secs(60));
        retry("create the output topic", patience, || cluster.create_topics(std::slice::from_ref(&output))).await?;
        let member = retry("join the group", patience, || Member::start(cluster.clone(), settings.clone(), instance)).await?;
        Ok::<_, AppError>(member)
    };
    let mut member = tokio::select! {
        biased;
        signal = signals.recv() => {
            info!(signal, "stopped during startup");
            println!("{}", summary_line(&Totals::default(), &Running::new(&settings.transactional_id, instance)));
            return Ok(());
        }
        member = setup => member?,
    };
    info!(
        topic = %settings.topic, group = %settings.group, output = %settings.output,
        transactional_id = %settings.transactional_id, instance = %format_args!("{instance:016x}"), "reading"
    );
    // Signals end the loop between two batches, never in the middle of one.
    let (stop_tx, mut stop) = oneshot::channel();
    tokio::spawn(async move {
        let _ = stop_tx.send(signals.recv().await);
    });
    let mut next_log = Instant::now() + args.progress_every;
    let wedged_after = args.transaction_timeout + WEDGED_AFTER;
    let outcome = loop {
        if let Ok(signal) = stop.try_recv() {
            info!(signal, "stopping");
            // What the open transaction holds is processed: commit it.
            break member.commit().await;
        }
        match tokio::time::timeout(wedged_after, member.step()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => break Err(e),
            Err(_) => wedged(wedged_after),
        }
        if Instant::now() >= next_log {
            next_log = Instant::now() + args.progress_every;
            member.log("progress");
        }
    };
    member.log("stopped");
    let line = summary_line(&member.totals(), member.running());
    // Aborts an open transaction (after a failure) and leaves the group.
    let shutdown = member.shutdown().await;
    outcome?;
    shutdown?;
    println!("{line}");
    Ok(())
}

/// How much longer than the transaction timeout one batch may take (its
/// transaction's calls to Kafka included) before the member gives up.
const WEDGED_AFTER: Duration = Duration::from_secs(120);

/// Ends a member whose batch has not come back for `waited`: a call into
/// librdkafka that does not return. Exits at once, since the runtime would
/// wait for that call on the way out; the group hands the partitions to
/// the others once the session times out, and a restart under the same
/// transactional id aborts the open transaction.
fn wedged(waited: Duration) -> ! {
    error!(waited = ?waited, "a batch has not come back; exiting");
    eprintln!("average_stage: error: a batch did not come back within {:.0} s (a call into Kafka hangs)", waited.as_secs_f64());
    std::process::exit(2)
}

/// The last line on stdout.
fn summary_line(totals: &Totals, running: &Running) -> String {
    format!(
        "committed {} transactions, {} readings, {} outputs, aborted {}",
        totals.committed,
        running.readings(),
        running.outputs(),
        totals.aborted
    )
}

/// Runs `attempt` until it succeeds, again every second for up to
/// `patience` while it fails (a node down, a coordinator moving); not
/// after a fence or a setting refused.
async fn retry<T, F: std::future::Future<Output = twitch::Result<T>>>(
    what: &str,
    patience: Duration,
    mut attempt: impl FnMut() -> F,
) -> twitch::Result<T> {
    let deadline = Instant::now() + patience;
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(e) if Instant::now() < deadline && !is_fenced(&e) && !matches!(e.kind(), twitch::ErrorKind::InvalidConfig { .. }) => {
                warn!(error = %e, "cannot {what} yet; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits until `topic` exists, logging every 10 s. A look-up that fails
/// (a node down, metadata not spread yet) is tried again, as long as it
/// takes: the brokers answered already.
async fn wait_for_topic(cluster: &KafkaCluster, topic: &str) -> Result<TopicInfo, AppError> {
    let mut last_log: Option<Instant> = None;
    loop {
        match cluster.topic(topic).await {
            Ok(info) => return Ok(info),
            Err(e) if matches!(e.kind(), twitch::ErrorKind::UnknownTopic { .. }) => {}
            Err(e) if matches!(e.kind(), twitch::ErrorKind::InvalidConfig { .. }) => return Err(e.into()),
            Err(e) => warn!(topic, error = %e, "cannot look the topic up; trying again"),
        }
        if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            info!(topic, "waiting for the topic to be created (start temp_gen)");
            last_log = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
