//! Metadata with a partition that has no leader, on librdkafka's mock
//! cluster (a single Kafka node cannot lose the leader of one partition and
//! keep the others): the listing reports it instead of failing.

mod common;

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use twitch::warden::{KafkaCluster, UNKNOWN_WATERMARK};
use twitch::{ErrorKind, Record, TopicPartition};

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_without_a_leader_is_listed_not_fatal() {
    let mock: MockCluster<'static, DefaultProducerContext> = MockCluster::new(3).expect("mock cluster");
    mock.create_topic("t", 4, 1).unwrap();
    let cluster = KafkaCluster::builder(mock.bootstrap_servers()).request_timeout(Duration::from_secs(2)).build().unwrap();
    for (partition, records) in [(0, 3), (2, 5)] {
        let mut w = cluster.get_writer_for_partition(TopicPartition::new("t", partition)).unwrap();
        for _ in 0..records {
            w.produce(Record::new(vec![1])).await.unwrap();
        }
        w.flush_async().await.unwrap();
    }
    mock.partition_leader("t", 1, None).unwrap();

    let started = Instant::now();
    let all = cluster.topics().await.unwrap();
    let listing = started.elapsed();
    let t = all.iter().find(|t| t.name == "t").unwrap();
    let seen: Vec<(i32, i64, i64)> = t.partitions.iter().map(|p| (p.leader >= 0, p.low_watermark, p.high_watermark)).map(|(l, lo, hi)| (i32::from(l), lo, hi)).collect();
    assert_eq!(seen, [(1, 0, 3), (0, UNKNOWN_WATERMARK, UNKNOWN_WATERMARK), (1, 0, 5), (1, 0, 0)]);
    assert_eq!(t.partitions[1].leader, -1);
    assert!(!t.partitions[1].is_available() && t.partitions[0].is_available());
    assert_eq!(t.len(), 8);
    assert!(listing < Duration::from_secs(1), "the listing waits for nothing: {listing:?}");

    // One topic waits for a leader up to the request timeout, then lists it
    // the same way; a lag needs every watermark, so it fails.
    let started = Instant::now();
    let one = cluster.topic("t").await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(&one, t);
    let err = cluster.group_lag("g", "t").await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Metadata { source: KafkaError::MetadataFetch(RDKafkaErrorCode::LeaderNotAvailable) }),
        "{err}"
    );

    // Back with a leader, everything is known again.
    mock.partition_leader("t", 1, Some(2)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = cluster.topic("t").await.unwrap();
        if t.partitions.iter().all(|p| p.is_available()) {
            assert_eq!((t.partitions[1].leader, t.partitions[1].high_watermark), (2, 0));
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", t.partitions[1]);
    }
}
