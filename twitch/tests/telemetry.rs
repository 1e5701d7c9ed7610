//! Statistics, counters and lag against the real broker: nothing unless
//! asked for, typed values when asked for.

mod common;

use std::time::Duration;

use common::{brokers, init_logging, topic};
use twitch::warden::KafkaCluster;
use twitch::Record;

#[tokio::test(flavor = "multi_thread")]
async fn statistics_come_only_when_asked_for_and_counters_and_lag_add_up() {
    init_logging();
    let plain = KafkaCluster::builder(brokers()).build().unwrap();
    let topic = topic(&plain, "telemetry", 2).await;
    let watched = KafkaCluster::builder(brokers()).statistics(Duration::from_millis(100)).build().unwrap();

    let mut quiet = plain.keyed_writer(&topic).unwrap();
    let mut writer = watched.keyed_writer(&topic).unwrap();
    for i in 0..50u32 {
        quiet.produce(Record::new(i.to_be_bytes().to_vec()).with_key(format!("k{i}"))).await.unwrap();
        writer.produce(Record::new(i.to_be_bytes().to_vec()).with_key(format!("k{i}"))).await.unwrap();
    }
    quiet.flush_async().await.unwrap();
    writer.flush_async().await.unwrap();
    let counters = writer.counters();
    assert_eq!((counters.queued, counters.delivered, counters.failed, counters.in_flight), (50, 50, 0, 0));

    // Round trips are averaged over each interval: keep writing until one
    // has some.
    let reports = writer.telemetry();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !reports.borrow().brokers().iter().any(|b| b.rtt.is_some()) {
        assert!(tokio::time::Instant::now() < deadline, "no round trip in the statistics: {:?}", reports.borrow());
        writer.produce_and_flush(Record::new(b"tick".to_vec())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = reports.borrow().clone();
    let producer = report.producer().expect("a producer's statistics");
    assert_eq!(producer.tx_errors, 0);
    assert!(report.brokers().iter().any(|b| b.state == "UP"), "{:?}", report.brokers());
    assert!(report.partitions().iter().any(|p| p.topic == topic), "{:?}", report.partitions());
    // The writer without statistics got none in the same time.
    assert!(quiet.telemetry().borrow().statistics.is_none());

    let mut reader = watched.group_reader(&format!("{topic}-group")).topic(&topic).low_latency().build().unwrap();
    let monitor = reader.monitor();
    let written = writer.counters().delivered + 50;
    for _ in 0..written {
        let (_, ack) = reader.next().await.unwrap().unwrap();
        ack.ack();
    }
    reader.commit().await.unwrap();
    let lag = monitor.lag().await.unwrap();
    assert_eq!(lag.len(), 2);
    assert!(lag.iter().all(|p| p.lag == 0), "{lag:?}");
    let counters = monitor.counters();
    assert!(counters.commits >= 1 && counters.last_commit.is_some(), "{counters:?}");
    let mut reports = monitor.telemetry();
    tokio::time::timeout(Duration::from_secs(10), reports.wait_for(|r| r.statistics.is_some())).await.unwrap().unwrap();
    assert!(reports.borrow().partitions().iter().any(|p| p.topic == topic));
    reader.shutdown().await.unwrap();
    assert_eq!(monitor.counters(), Default::default(), "the reader is gone");
}

/// This process's CPU time (user + system), from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// What one statistics report costs: an idle group reader of a 3-partition
/// topic for 20 s without statistics, then with one every 10 ms (librdkafka
/// writes the JSON, twitch parses it and hands it on). Prints the figures:
/// `cargo test -p twitch --test telemetry -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check: 40 s"]
async fn what_a_statistics_report_costs() {
    let cluster = KafkaCluster::builder(brokers()).build().unwrap();
    let topic = topic(&cluster, "telemetry-cost", 3).await;
    let mut costs = Vec::new();
    for interval in [None, Some(Duration::from_millis(10))] {
        let mut builder = cluster.group_reader(&format!("{topic}-{interval:?}")).topic(&topic);
        if let Some(every) = interval {
            builder = builder.statistics(every);
        }
        let mut reader = builder.build().unwrap();
        let mut reports = reader.telemetry();
        let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = std::sync::Arc::clone(&counted);
        tokio::spawn(async move {
            while reports.changed().await.is_ok() {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        // Joins the group (no record comes).
        let _ = tokio::time::timeout(Duration::from_secs(5), reader.next()).await;
        let (before, reports_before) = (cpu_time(), counted.load(std::sync::atomic::Ordering::Relaxed));
        let _ = tokio::time::timeout(Duration::from_secs(20), reader.next()).await;
        let spent = cpu_time() - before;
        let n = counted.load(std::sync::atomic::Ordering::Relaxed) - reports_before;
        println!("statistics every {interval:?}: {spent:?} CPU in 20 s, {n} reports");
        costs.push((spent, n));
        reader.shutdown().await.unwrap();
    }
    let per_report = costs[1].0.saturating_sub(costs[0].0) / u32::try_from(costs[1].1.max(1)).unwrap();
    println!("one report costs about {per_report:?} of CPU; at one a second and 1,000 records/s, {:?} a record", per_report / 1000);
}
