//! The group reader's commits on librdkafka's mock cluster, where the
//! broker's round-trip time can be made long.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::init_logging;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use tokio::time::timeout;
use twitch::warden::KafkaCluster;
use twitch::{Record, TopicPartition};

/// `GroupReader::commit` waits for the broker without blocking the thread:
/// on a current-thread runtime, other tasks run meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn commit_does_not_block_the_runtime() {
    init_logging();
    let mock: MockCluster<'static, DefaultProducerContext> = MockCluster::new(1).unwrap();
    mock.create_topic("in", 1, 1).unwrap();
    let cluster = KafkaCluster::new(mock.bootstrap_servers(), "mock-tests".into());
    let mut w = cluster.get_writer_for_partition(TopicPartition::new("in", 0)).unwrap();
    for i in 0..5u8 {
        w.produce(Record::new(vec![i])).await.unwrap();
    }
    w.flush_async().await.unwrap();

    let mut reader = cluster.group_reader("slow-commits").topic("in").build().unwrap();
    let (_, ack) = timeout(Duration::from_secs(30), reader.next()).await.unwrap().unwrap().unwrap();
    ack.ack();

    mock.broker_round_trip_time(1, Duration::from_millis(600)).unwrap();
    let ticks = Arc::new(AtomicU32::new(0));
    let ticker = {
        let ticks = Arc::clone(&ticks);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    tokio::task::yield_now().await;
    let before = ticks.load(Ordering::Relaxed);
    timeout(Duration::from_secs(20), reader.commit()).await.unwrap().unwrap();
    let during = ticks.load(Ordering::Relaxed) - before;
    ticker.abort();
    assert!(during >= 10, "the runtime ran other tasks only {during} times during a commit of at least 600 ms");
    mock.broker_round_trip_time(1, Duration::ZERO).unwrap();
    reader.shutdown().await.unwrap();
}
