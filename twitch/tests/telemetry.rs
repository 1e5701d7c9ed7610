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
