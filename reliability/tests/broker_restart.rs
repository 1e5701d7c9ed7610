//! The broker restarts mid-stream: a Kafka node of this test's own is
//! stopped (port 19700), or killed with SIGKILL, a crash (port 19701), and
//! started again on its log dir while `temp_gen` writes and two consumer
//! groups read.
//!
//! * Group A: one `average_temp` reads straight through the restart.
//! * Group B: one `average_temp` stops (Ctrl-C, committing what it printed)
//!   just before the restart; a new one starts after it and must carry on
//!   from the committed offsets.
//!
//! Checked: temp_gen ends with every reading delivered (librdkafka retries
//! within `message.timeout.ms`) or reports an error, never drops silently;
//! the topic holds each reading once; both groups read every reading (by
//! sensor and sequence number); the offsets committed before the restart
//! are there after it, and group B reads nothing twice.
//!
//! A third test kills the broker and keeps it down (port 19702): temp_gen
//! (with a 3 s `--delivery-timeout`) must exit with an error counting the
//! readings it could not deliver, and those plus the ones stored (read back
//! once the broker is up again) must make up every reading it produced.
//!
//! Needs Kafka installed (`scripts/kafka.sh install`), not `KAFKA_BROKERS`.
//! Figures go to stderr: `cargo test -p reliability --test broker_restart -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use reliability::{
    binaries, expected_readings, poll_until, topic_readings, unique, wait_until, App, Broker, Figures, Processed,
};
use temps::ProducerSummary;
use twitch::KafkaCluster;

/// The tests' broker ports (others: 9092, 19092+ for scripts/test.sh).
const PORT: u16 = 19700;
const PORT_CRASH: u16 = 19701;
const PORT_GONE: u16 = 19702;
const READINGS: u64 = 1_500;
/// 1,500 readings take about 6 s; the restart comes after about 2 s.
const INTERVAL: &str = "4ms";
/// Stop the broker once the consumers printed this many readings.
const BEFORE_RESTART: usize = 300;
/// How long the broker stays down.
const DOWNTIME: Duration = Duration::from_secs(2);

/// The group's committed offset per partition (partitions without one left out).
async fn committed(cluster: &KafkaCluster, group: &str, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let lag = cluster.group_lag(group, topic).await.with_context(|| format!("fetching {group}'s committed offsets"))?;
    Ok(lag.iter().filter_map(|p| p.committed.map(|c| (p.partition.partition, c))).collect())
}

/// Waits until `consumer` has read every expected reading (together with
/// `earlier` ones); on timeout, says what is missing and returns: the tally
/// that follows fails on the missing readings.
async fn wait_for_every_reading(consumer: &mut App, earlier: &[Processed]) -> Result<()> {
    let expected = expected_readings(READINGS, 3);
    let earlier: BTreeSet<_> = earlier.iter().map(Processed::key).collect();
    let seen =
        |c: &App| -> BTreeSet<_> { earlier.iter().cloned().chain(c.readings().iter().map(Processed::key)).collect() };
    let what = format!("{} to read every reading", consumer.name());
    let all = poll_until(&what, Duration::from_secs(30), || {
        consumer.check_running()?;
        Ok(expected.is_subset(&seen(consumer)))
    })
    .await?;
    if !all {
        let seen = seen(consumer);
        let missing: Vec<_> = expected.difference(&seen).take(5).collect();
        let stderr = consumer.stderr();
        eprintln!(
            "after 30 s, {} readings still missing, e.g. {missing:?}; {} stderr:\n{}",
            expected.difference(&seen).count(),
            consumer.name(),
            stderr[stderr.len().saturating_sub(20)..].join("\n")
        );
    }
    Ok(())
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing_and_keeps_committed_offsets() -> Result<()> {
    restart(PORT, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_crash_loses_nothing_acknowledged_and_keeps_committed_offsets() -> Result<()> {
    restart(PORT_CRASH, true).await
}

/// Stops the broker mid-stream (or kills it: `crash`), starts it again and
/// checks that nothing was lost.
async fn restart(port: u16, crash: bool) -> Result<()> {
    let how = if crash { "broker crash (SIGKILL)" } else { "broker restart" };
    let started = tokio::time::Instant::now();
    let bins = binaries()?;
    let mut broker = Broker::start(port).await?;
    let brokers = broker.address();

    let cluster =
        KafkaCluster::builder(&brokers).client_id("reliability").broker_timeout(Duration::from_secs(20)).build()?;
    cluster.wait_for_brokers().await?;
    let topic = unique("rel-restart");
    cluster.ensure_topic(&twitch::TopicConfiguration::new(&topic, 3)).await?;
    let (group_a, group_b) = (format!("{topic}-a"), format!("{topic}-b"));
    let consumer = |name: &str, group: &str| {
        App::spawn(name, &bins.average_temp, &["--topic", &topic, "--group", group, "--no-dead-letter"], &brokers)
    };

    let mut a = consumer("average_temp-a", &group_a)?;
    let mut b1 = consumer("average_temp-b1", &group_b)?;
    wait_until("both consumers' first assignment", Duration::from_secs(30), || {
        a.check_running()?;
        b1.check_running()?;
        Ok([&a, &b1].iter().all(|c| c.assignment().is_some_and(|p| p.len() == 3)))
    })
    .await?;
    let count = READINGS.to_string();
    let produce = ["--topic", topic.as_str(), "--count", &count, "--interval", INTERVAL, "--seed", "11"];
    let mut producer = App::spawn("temp_gen", &bins.temp_gen, &produce, &brokers)?;

    // Both read some; B1 stops, committing what it printed; A commits too.
    wait_until("the consumers to read some readings", Duration::from_secs(60), || {
        a.check_running()?;
        b1.check_running()?;
        Ok(a.reading_count() >= BEFORE_RESTART && b1.reading_count() >= BEFORE_RESTART)
    })
    .await?;
    b1.interrupt()?; // Ctrl-C
    let b1 = b1.finish(Duration::from_secs(30)).await?;
    b1.check_stopped()?;
    let mut before_a = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !(before_a.len() == 3 && before_a.values().all(|&o| o >= 50)) {
        ensure!(tokio::time::Instant::now() < deadline, "group A committed only {before_a:?} in 15 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
        before_a = committed(&cluster, &group_a, &topic).await?;
    }
    let before_b = committed(&cluster, &group_b, &topic).await?;
    let printed_b1: BTreeMap<i32, i64> = b1.readings().iter().fold(BTreeMap::new(), |mut m, r| {
        let next = m.entry(r.partition).or_insert(0);
        *next = (*next).max(r.offset + 1);
        m
    });
    ensure!(before_b == printed_b1, "B1 committed {before_b:?} but printed up to {printed_b1:?}");

    // The restart, while temp_gen writes and A reads.
    let read_before_stop = a.reading_count();
    producer.check_running().context("the restart must come while temp_gen writes")?;
    if crash {
        broker.kill().await?;
    } else {
        broker.stop().await?;
    }
    let stopped_at = tokio::time::Instant::now();
    tokio::time::sleep(DOWNTIME).await;
    broker.start_again().await?;
    let down_for = stopped_at.elapsed();

    // What was committed before is still there: B's exactly (no member
    // since), A's at least (it keeps committing).
    cluster.wait_for_brokers().await?;
    let after_b = committed(&cluster, &group_b, &topic).await?;
    ensure!(after_b == before_b, "group B committed {before_b:?} before the restart, {after_b:?} after it");
    let after_a = committed(&cluster, &group_a, &topic).await?;
    for (p, offset) in &before_a {
        ensure!(
            after_a.get(p).is_some_and(|o| o >= offset),
            "group A partition {p}: committed {offset} before, {:?} after",
            after_a.get(p)
        );
    }
    let mut b2 = consumer("average_temp-b2", &group_b)?;

    // The producer delivers everything (or says what it could not).
    let producer = producer.finish(Duration::from_secs(120)).await?;
    ensure!(
        producer.status.success(),
        "temp_gen reported an error ({}):\n{}\nbroker log:\n{}",
        producer.status,
        producer.stderr_tail(15),
        broker.log_tail(20)
    );
    let summary: ProducerSummary = producer.last_line().unwrap_or_default().parse().context("temp_gen's summary")?;
    ensure!(summary.produced == READINGS, "temp_gen produced {}, not {READINGS}", summary.produced);

    // Both groups read everything.
    wait_for_every_reading(&mut a, &[]).await?;
    wait_for_every_reading(&mut b2, &b1.readings()).await?;
    a.terminate()?;
    b2.terminate()?;
    let a = a.finish(Duration::from_secs(30)).await?;
    let b2 = b2.finish(Duration::from_secs(30)).await?;
    a.check_stopped()?;
    b2.check_stopped()?;
    for group in [&group_a, &group_b] {
        let lag = cluster.group_lag(group, &topic).await?;
        ensure!(lag.iter().all(|p| p.lag == 0), "{group} left records uncommitted: {lag:?}");
    }

    // A never re-read what it had committed before the restart.
    let mut prints: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for r in a.readings() {
        *prints.entry((r.partition, r.offset)).or_default() += 1;
    }
    let reread: Vec<_> = prints
        .iter()
        .filter(|((p, o), n)| **n > 1 && before_a.get(p).is_some_and(|c| o < c))
        .map(|(k, _)| *k)
        .collect();
    ensure!(reread.is_empty(), "group A re-read records committed before the restart: {reread:?}");

    let expected = expected_readings(READINGS, 3);
    let stored = topic_readings(&cluster, &topic).await?;
    let fig_a = Figures::new(&format!("{how}, consumer reading through it"), &expected, &stored, &a.readings());
    let mut readings_b = b1.readings();
    readings_b.extend(b2.readings());
    let fig_b =
        Figures::new(&format!("{how}, consumer stopped before and restarted after"), &expected, &stored, &readings_b);
    eprintln!("{fig_a}; broker down {down_for:.1?} after {read_before_stop} readings; committed before {before_a:?}, after {after_a:?}");
    eprintln!(
        "{fig_b}; B1 read {} and committed {before_b:?}, B2 read {}; took {:.1?}",
        b1.readings().len(),
        b2.readings().len(),
        started.elapsed()
    );
    for figures in [&fig_a, &fig_b] {
        ensure!(
            figures.not_delivered == 0 && figures.stored == READINGS,
            "the topic does not hold each reading once: {figures}"
        );
        ensure!(figures.lost == 0, "readings lost: {figures}");
    }
    ensure!(fig_b.duplicated == 0, "group B re-read committed readings: {fig_b}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stays_down_makes_the_producer_report_what_it_did_not_deliver() -> Result<()> {
    const COUNT: u64 = 600;
    let started = tokio::time::Instant::now();
    let bins = binaries()?;
    let mut broker = Broker::start(PORT_GONE).await?;
    let brokers = broker.address();
    let cluster =
        KafkaCluster::builder(&brokers).client_id("reliability").broker_timeout(Duration::from_secs(20)).build()?;
    cluster.wait_for_brokers().await?;
    let topic = unique("rel-gone");
    cluster.ensure_topic(&twitch::TopicConfiguration::new(&topic, 3)).await?;

    // About 3 s of readings; the broker goes after the first 100 are stored.
    let count = COUNT.to_string();
    let produce =
        ["--topic", &topic, "--count", &count, "--interval", "5ms", "--seed", "5", "--delivery-timeout", "3s"];
    let mut producer = App::spawn("temp_gen", &bins.temp_gen, &produce, &brokers)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while cluster.topic(&topic).await?.len() < 100 {
        producer.check_running()?;
        ensure!(tokio::time::Instant::now() < deadline, "temp_gen stored fewer than 100 readings in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    producer.check_running().context("the broker must go while temp_gen writes")?;
    broker.kill().await?;

    // temp_gen gives up after its delivery timeout and says how many.
    let producer = producer.finish(Duration::from_secs(60)).await?;
    let error = producer.stderr.iter().rev().find(|l| l.starts_with("temp_gen: error: ")).cloned().unwrap_or_default();
    ensure!(
        producer.status.code() == Some(1) && producer.last_line().is_none(),
        "temp_gen should fail without a summary, got {} and stdout {:?}:\n{}",
        producer.status,
        producer.last_line(),
        producer.stderr_tail(10)
    );
    let reported: u64 = error
        .strip_prefix("temp_gen: error: ")
        .and_then(|rest| rest.split_once(" record(s) not delivered"))
        .and_then(|(n, _)| n.parse().ok())
        .with_context(|| format!("temp_gen's error does not count undelivered readings: {error:?}"))?;

    // What is stored (read back once the broker is up again) and what was
    // reported make up everything produced.
    broker.start_again().await?;
    cluster.wait_for_brokers().await?;
    let stored = topic_readings(&cluster, &topic).await?;
    let expected = expected_readings(COUNT, 3);
    let distinct: BTreeSet<_> = stored.iter().map(Processed::key).collect();
    let delivered = distinct.intersection(&expected).count() as u64;
    let silently_lost = COUNT.saturating_sub(delivered + reported);
    eprintln!(
        "FIGURES broker gone for good: produced {COUNT}, delivered {delivered} (topic holds {}), reported not delivered \
         {reported}, lost silently {silently_lost}; temp_gen exited {:.1?} after start: {error}; took {:.1?}",
        stored.len(),
        producer.elapsed,
        started.elapsed()
    );
    ensure!(
        distinct.is_subset(&expected) && stored.len() == distinct.len(),
        "the topic holds strange or repeated readings"
    );
    ensure!(reported > 0, "the broker went mid-stream, yet temp_gen reports no undelivered reading");
    ensure!(silently_lost == 0, "{silently_lost} readings neither delivered nor reported");
    Ok(())
}
