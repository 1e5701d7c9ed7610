//! A consumer of a group dies mid-stream: three `average_temp` in one group
//! on a fresh 3-partition topic, `temp_gen` producing, and one consumer
//! either SIGKILLed (the others take over its partition after the session
//! timeout and re-read what it had not committed) or stopped with SIGTERM
//! and restarted (it commits and leaves at once: nothing is read twice).
//!
//! Checked by sensor and sequence number (average_temp prints `#<seq>` on
//! each reading line): every produced reading is processed at least once;
//! duplicates only from the killed consumer's uncommitted window.
//!
//! Needs `KAFKA_BROKERS` (these tests fail, not skip, without it). Figures go
//! to stderr: `cargo test -p reliability --test consumer_killed -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use reliability::{
    binaries, brokers, expected_readings, poll_until, topic_readings, unique, wait_until, App, Figures, Finished,
    Processed,
};
use scenarios::Binaries;
use twitch::{KafkaCluster, TopicConfiguration};

/// Readings per run: 1,000 per partition.
const READINGS: u64 = 3_000;
/// Between two readings: the run lasts about 6 s.
const INTERVAL: &str = "2ms";
/// The session timeout of the consumers: how long the group waits for a
/// member that died without leaving (librdkafka's default is 45 s).
const SESSION_TIMEOUT: &str = "6s";
/// twitch's commit interval: what a killed consumer processed in the last
/// interval (plus the commit's round trip) may be read again.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// What a commit may take beyond the interval (a busy machine).
const WINDOW_SLACK: Duration = Duration::from_secs(4);
/// Kill or stop the first consumer once it printed this many readings
/// (about half of its partition's).
const HALFWAY: usize = 500;

struct Run {
    cluster: KafkaCluster,
    brokers: String,
    bins: Binaries,
    topic: String,
    group: String,
}

impl Run {
    async fn new(prefix: &str) -> Result<Run> {
        let brokers = brokers()?;
        let bins = binaries()?;
        let cluster =
            KafkaCluster::builder(&brokers).client_id("reliability").broker_timeout(Duration::from_secs(20)).build()?;
        cluster.wait_for_brokers().await?;
        let topic = unique(prefix);
        cluster.create_topics(&[TopicConfiguration::new(&topic, 3)]).await?;
        let group = format!("{topic}-group");
        Ok(Run { cluster, brokers, bins, topic, group })
    }

    fn consumer(&self, name: &str) -> Result<App> {
        let args =
            ["--topic", &self.topic, "--group", &self.group, "--session-timeout", SESSION_TIMEOUT, "--no-dead-letter"];
        App::spawn(name, &self.bins.average_temp, &args, &self.brokers)
    }

    fn producer(&self) -> Result<App> {
        let count = READINGS.to_string();
        let args = ["--topic", &self.topic, "--count", &count, "--interval", INTERVAL, "--seed", "7"];
        App::spawn("temp_gen", &self.bins.temp_gen, &args, &self.brokers)
    }

    /// Starts three consumers and waits until each holds one partition.
    async fn three_consumers(&self) -> Result<Vec<App>> {
        let mut consumers = (1..=3).map(|i| self.consumer(&format!("average_temp-{i}"))).collect::<Result<Vec<_>>>()?;
        wait_until("each of the three consumers to hold one partition", Duration::from_secs(45), || {
            let mut all = BTreeSet::new();
            for c in &mut consumers {
                c.check_running()?;
                match c.assignment() {
                    Some(a) if a.len() == 1 => all.extend(a),
                    _ => return Ok(false),
                }
            }
            Ok(all.len() == 3)
        })
        .await?;
        Ok(consumers)
    }
}

/// Waits until the consumers together (with the `earlier` readings of
/// consumers that stopped) printed every produced reading. On timeout it
/// says what is missing and what each consumer was doing, and returns: the
/// tally that follows fails on the missing readings.
async fn wait_for_every_reading(consumers: &mut [App], earlier: &[Processed], timeout: Duration) -> Result<()> {
    let expected = expected_readings(READINGS, 3);
    let earlier: BTreeSet<_> = earlier.iter().map(Processed::key).collect();
    let all = poll_until("the consumers to print every reading", timeout, || {
        let mut seen = earlier.clone();
        for c in consumers.iter_mut() {
            c.check_running()?;
            seen.extend(c.readings().iter().map(Processed::key));
        }
        Ok(expected.is_subset(&seen))
    })
    .await?;
    if !all {
        let mut seen = earlier.clone();
        seen.extend(consumers.iter().flat_map(|c| c.readings()).map(|r| r.key()));
        let missing: Vec<_> = expected.difference(&seen).collect();
        eprintln!(
            "after {timeout:?}, {} readings still missing, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        for c in consumers.iter() {
            let stderr = c.stderr();
            let tail = stderr[stderr.len().saturating_sub(12)..].join("\n    ");
            eprintln!(
                "  {}: {} readings, partitions {:?}; stderr:\n    {tail}",
                c.name(),
                c.reading_count(),
                c.assignment()
            );
        }
    }
    Ok(())
}

async fn stop_all(consumers: Vec<App>) -> Result<Vec<Finished>> {
    for c in &consumers {
        c.terminate()?;
    }
    let mut finished = Vec::new();
    for c in consumers {
        finished.push(c.finish(Duration::from_secs(30)).await?);
    }
    Ok(finished)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumer_loses_nothing_and_duplicates_only_its_uncommitted_window() -> Result<()> {
    let started = tokio::time::Instant::now();
    let run = Run::new("rel-killed").await?;
    let mut consumers = run.three_consumers().await?;
    let mut producer = run.producer()?;

    // SIGKILL the first consumer halfway through its partition.
    let mut victim = consumers.remove(0);
    let victim_partitions = victim.assignment().unwrap_or_default();
    wait_until("the first consumer to print half of its readings", Duration::from_secs(60), || {
        victim.check_running()?;
        Ok(victim.reading_count() >= HALFWAY)
    })
    .await?;
    producer.check_running().context("the kill must come while temp_gen writes")?;
    victim.kill()?;
    let killed_at = tokio::time::Instant::now();
    let victim = victim.finish(Duration::from_secs(10)).await?;
    // What the group had committed when it died (nobody else reads that
    // partition until the session timeout).
    let committed_at_kill: BTreeMap<i32, i64> = run
        .cluster
        .group_lag(&run.group, &run.topic)
        .await?
        .iter()
        .filter_map(|p| p.committed.map(|c| (p.partition.partition, c)))
        .collect();
    ensure!(!victim.status.success(), "the killed consumer exited normally: {}", victim.status);

    // The other two take its partition over after the session timeout.
    wait_for_every_reading(&mut consumers, &victim.readings(), Duration::from_secs(60)).await?;
    let producer = producer.finish(Duration::from_secs(30)).await?;
    producer.producer_summary(READINGS)?;
    let survivors = stop_all(consumers).await?;
    for s in &survivors {
        s.check_stopped()?;
    }
    let took_over = survivors.iter().any(|s| s.readings().iter().any(|r| victim_partitions.contains(&r.partition)));
    ensure!(took_over, "no survivor read the killed consumer's partition {victim_partitions:?}");

    let stored = topic_readings(&run.cluster, &run.topic).await?;
    let victim_readings = victim.readings();
    let mut processed = victim_readings.clone();
    processed.extend(survivors.iter().flat_map(Finished::readings));
    let figures = Figures::new("consumer killed (SIGKILL)", &expected_readings(READINGS, 3), &stored, &processed);

    // The uncommitted window: what the victim printed past the offset the
    // group had committed for its partition when it died. (A commit still
    // in flight then may land later and shrink it.)
    let mut window = 0;
    let mut window_started = killed_at;
    for r in &victim_readings {
        if committed_at_kill.get(&r.partition).is_none_or(|&c| r.offset >= c) {
            window += 1;
            window_started = window_started.min(r.at);
        }
    }
    let window_span = killed_at - window_started;
    let duplicates = Figures::duplicates(&processed);
    let victims: BTreeSet<_> = victim_readings.iter().map(Processed::key).collect();
    eprintln!(
        "{figures}; killed after {} readings, {window} of them uncommitted (printed in its last {window_span:.1?}), \
         committed then {committed_at_kill:?}; took {:.1?}",
        victim_readings.len(),
        started.elapsed()
    );

    ensure!(figures.not_delivered == 0, "readings missing from the topic: {figures}");
    ensure!(figures.lost == 0, "readings lost: {figures}");
    ensure!(
        duplicates.keys().all(|k| victims.contains(k)) && duplicates.values().all(|&n| n == 2),
        "duplicates beyond the killed consumer's re-read readings: {duplicates:?}"
    );
    ensure!(
        figures.duplicated <= window,
        "{} duplicates, more than the uncommitted window of {window}",
        figures.duplicated
    );
    ensure!(
        window_span <= COMMIT_INTERVAL + WINDOW_SLACK,
        "the uncommitted window spans {window_span:?}: commits lag behind their {COMMIT_INTERVAL:?} interval"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stopped_and_restarted_reads_every_reading_exactly_once() -> Result<()> {
    let started = tokio::time::Instant::now();
    let run = Run::new("rel-graceful").await?;
    let mut consumers = run.three_consumers().await?;
    let mut producer = run.producer()?;

    // SIGTERM the first consumer halfway, then start it again.
    let mut first = consumers.remove(0);
    wait_until("the first consumer to print half of its readings", Duration::from_secs(60), || {
        first.check_running()?;
        Ok(first.reading_count() >= HALFWAY)
    })
    .await?;
    producer.check_running().context("the stop must come while temp_gen writes")?;
    first.terminate()?;
    let first = first.finish(Duration::from_secs(30)).await?;
    first.check_stopped()?;
    consumers.push(run.consumer("average_temp-1-restarted")?);

    wait_for_every_reading(&mut consumers, &first.readings(), Duration::from_secs(60)).await?;
    let producer = producer.finish(Duration::from_secs(30)).await?;
    producer.producer_summary(READINGS)?;
    let rest = stop_all(consumers).await?;
    for c in &rest {
        c.check_stopped()?;
    }

    let stored = topic_readings(&run.cluster, &run.topic).await?;
    let mut processed = first.readings();
    processed.extend(rest.iter().flat_map(Finished::readings));
    let figures =
        Figures::new("consumer stopped (SIGTERM) and restarted", &expected_readings(READINGS, 3), &stored, &processed);
    eprintln!(
        "{figures}; stopped after {} readings, restarted one read {}; took {:.1?}",
        first.readings().len(),
        rest.last().map_or(0, |r| r.readings().len()),
        started.elapsed()
    );

    ensure!(figures.not_delivered == 0, "readings missing from the topic: {figures}");
    ensure!(figures.lost == 0, "readings lost: {figures}");
    ensure!(
        figures.duplicated == 0,
        "a graceful stop must not duplicate: {figures}; {:?}",
        Figures::duplicates(&processed)
    );
    let lag = run.cluster.group_lag(&run.group, &run.topic).await?;
    ensure!(lag.iter().all(|p| p.lag == 0), "the group committed everything it processed: {lag:?}");
    Ok(())
}
