//! Writers on the real broker: keyed writes after a topic grew, and
//! librdkafka's error callback reaching telemetry on a real fault.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{brokers, cluster, init_logging, topic, unique};
use tokio::time::timeout;
use twitch::partitioner::partition_for_key;
use twitch::warden::KafkaCluster;
use twitch::{KeyedWriter, Record, TopicPartition};

/// Keys `key-0..` until `n` of them land, among `partitions`, on each of
/// `wanted`.
fn keys_for(wanted: &[i32], partitions: i32, n: usize) -> Vec<String> {
    let mut count: BTreeMap<i32, usize> = BTreeMap::new();
    (0..)
        .map(|i| format!("key-{i}"))
        .filter(|k| {
            let p = partition_for_key(k.as_bytes(), partitions);
            let c = count.entry(p).or_default();
            wanted.contains(&p) && *c < n && {
                *c += 1;
                true
            }
        })
        .take(wanted.len() * n)
        .collect()
}

/// Where each key of `topic`'s partitions 0..partitions was stored.
async fn placed(cluster: &KafkaCluster, topic: &str, partitions: i32) -> BTreeMap<String, i32> {
    let mut builder = cluster.partition_reader().stop_at_end(true);
    for p in 0..partitions {
        builder = builder.partition(TopicPartition::new(topic, p));
    }
    let mut reader = builder.build().unwrap();
    let mut out = BTreeMap::new();
    while let Some(r) = timeout(Duration::from_secs(30), reader.next()).await.unwrap() {
        let r = r.unwrap();
        out.insert(String::from_utf8(r.record.key.unwrap()).unwrap(), r.partition);
    }
    out
}

async fn write(writer: &mut KeyedWriter, keys: &[String]) {
    for k in keys {
        writer.produce(Record::new(b"v".to_vec()).with_key(k.as_str())).await.unwrap();
    }
    writer.flush_async().await.unwrap();
}

/// A topic of 2 partitions grows to 4. The keyed writer keeps placing keys
/// over 2 partitions until it refreshes its metadata; then keys that
/// Kafka's partitioner maps to partitions 2 and 3 land there.
async fn keyed_writer_spreads_onto_new_partitions() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "grown", 2).await;
    let mut writer = cluster.keyed_writer(&topic).unwrap();
    assert_eq!(writer.refresh_partitions().unwrap(), 2);
    let new_keys = keys_for(&[2, 3], 4, 5);
    let before: Vec<String> = new_keys.iter().map(|k| format!("{k}-before")).collect();
    cluster.add_partitions(&topic, 4).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.topic(&topic).await.unwrap().partitions.len() < 4 {
        assert!(Instant::now() < deadline, "the topic did not grow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Not refreshed yet: keys are placed over the 2 partitions it knows.
    write(&mut writer, &before).await;

    assert_eq!(writer.refresh_partitions().unwrap(), 4);
    write(&mut writer, &new_keys).await;

    let placed = placed(&cluster, &topic, 4).await;
    assert_eq!(placed.len(), 20, "{placed:?}");
    for k in &before {
        assert_eq!(placed[k], partition_for_key(k.as_bytes(), 2), "{k} before the refresh");
    }
    for k in &new_keys {
        let p = partition_for_key(k.as_bytes(), 4);
        assert!(p == 2 || p == 3);
        assert_eq!(placed[k], p, "{k} after the refresh");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keyed_writer_spreads_onto_new_partitions_multi_thread() {
    keyed_writer_spreads_onto_new_partitions().await;
}

#[tokio::test(flavor = "current_thread")]
async fn keyed_writer_spreads_onto_new_partitions_current_thread() {
    keyed_writer_spreads_onto_new_partitions().await;
}

/// With `topic.metadata.refresh.interval.ms` short, the writer finds the
/// new partitions by itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_short_metadata_refresh_interval_finds_new_partitions_by_itself() {
    let cluster = KafkaCluster::builder(brokers()).set("topic.metadata.refresh.interval.ms", "500").build().unwrap();
    let topic = topic(&cluster, "grown-by-itself", 2).await;
    let mut writer = cluster.keyed_writer(&topic).unwrap();
    write(&mut writer, &["warm-up".to_owned()]).await;
    cluster.add_partitions(&topic, 4).await.unwrap();
    // Within two intervals (and the broker's own propagation).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let keys = keys_for(&[2, 3], 4, 5);
    write(&mut writer, &keys).await;
    let placed = placed(&cluster, &topic, 4).await;
    for k in &keys {
        assert_eq!(placed[k], partition_for_key(k.as_bytes(), 4), "{k}");
    }
}

/// Waits until `reports` counts an error, and returns the last one.
async fn first_error(mut reports: tokio::sync::watch::Receiver<twitch::telemetry::Report>) -> (u64, String) {
    let report = timeout(Duration::from_secs(15), reports.wait_for(|r| r.errors > 0)).await.expect("an error within 15 s").unwrap();
    (report.errors, report.last_error.clone().unwrap_or_default())
}

/// A writer and a group reader pointed at a port where nothing listens:
/// librdkafka's error callback reports the refused connection (or, after
/// it, that all brokers are down) through their telemetry.
#[tokio::test(flavor = "multi_thread")]
async fn errors_of_a_closed_port_reach_telemetry() {
    let cluster = KafkaCluster::new("127.0.0.1:1".into(), "closed-port".into());
    let mut writer = cluster.keyed_writer("nowhere").unwrap().with_flush_timeout(Duration::from_millis(100));
    writer.produce(Record::new(b"x".to_vec()).with_key("k")).await.unwrap();
    let (errors, last) = first_error(writer.telemetry()).await;
    assert!(errors >= 1 && (last.contains("127.0.0.1:1") || last.contains("AllBrokersDown")), "{errors}: {last}");

    let mut reader = cluster.group_reader(&unique("closed-port")).topic("nowhere").build().unwrap();
    let reports = reader.telemetry();
    // The error callback runs while the reader is read.
    let _ = timeout(Duration::from_secs(3), reader.next()).await;
    let (errors, last) = first_error(reports).await;
    assert!(errors >= 1 && (last.contains("127.0.0.1:1") || last.contains("AllBrokersDown")), "{errors}: {last}");
    drop(reader);
    // The record cannot be delivered; the writer is dropped without waiting.
    assert!(writer.flush_async().await.is_err());
}
