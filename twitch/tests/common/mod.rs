//! Helpers for the integration tests: the broker under test and unique names.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use std::time::Duration;

use tokio::time::timeout;
use twitch::warden::{KafkaCluster, TopicConfiguration};
use twitch::writer::TransactionalWriter;
use twitch::{GroupReader, Record, TopicPartition};

/// The broker under test, from `KAFKA_BROKERS` (set by `scripts/test.sh`).
pub fn brokers() -> String {
    match std::env::var("KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => b,
        _ => panic!("KAFKA_BROKERS is not set: run the tests with scripts/test.sh, or start a Kafka node (scripts/kafka.sh start --port 19092) and export KAFKA_BROKERS=127.0.0.1:19092"),
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("{prefix}-{}-{millis}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn cluster() -> KafkaCluster {
    KafkaCluster::new(brokers(), "twitch-tests".into())
}

/// A fresh topic with `partitions` partitions.
pub async fn topic(cluster: &KafkaCluster, prefix: &str, partitions: i32) -> String {
    let name = unique(prefix);
    cluster
        .create_topics(&[TopicConfiguration::new(&name, partitions)])
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    name
}

pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// Every record of partition 0 of `topic`, read with `isolation.level` =
/// `isolation` (`read_committed` or `read_uncommitted`).
pub async fn read_to_end(cluster: &KafkaCluster, topic: &str, isolation: &str) -> Vec<Vec<u8>> {
    let mut reader = cluster
        .partition_reader()
        .partition(TopicPartition::new(topic, 0))
        .set("isolation.level", isolation)
        .stop_at_end(true)
        .build()
        .unwrap();
    let mut out = Vec::new();
    while let Some(r) = timeout(Duration::from_secs(30), reader.next()).await.unwrap() {
        out.push(r.unwrap().record.payload);
    }
    out
}

/// Consume-transform-produce: begins a transaction, reads `n` records, writes
/// each one's first byte doubled into it and adds the input offsets to it.
pub async fn transform(input: &mut GroupReader, out: &mut TransactionalWriter, n: usize) {
    out.begin().await.unwrap();
    for _ in 0..n {
        let (record, ack) = timeout(Duration::from_secs(30), input.next()).await.unwrap().unwrap().unwrap();
        out.produce(Record::new(vec![record.payload()[0] * 2])).await.unwrap();
        ack.ack();
    }
    let group = input.group_metadata().expect("the reader has joined its group");
    out.send_offsets(&input.processed_offsets(), group).await.unwrap();
}
