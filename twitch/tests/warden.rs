//! Cluster administration against the real broker.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{brokers, cluster, topic, unique};
use twitch::warden::{ConfigSource, KafkaCluster, TopicConfiguration};
use twitch::{Error, ErrorKind, Record, TopicPartition};

#[tokio::test(flavor = "multi_thread")]
async fn wait_for_brokers_finds_the_broker() {
    let brokers = cluster().wait_for_brokers().await.unwrap();
    assert!(!brokers.is_empty());
    assert!(brokers.iter().all(|b| b.port > 0 && !b.host.is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_for_brokers_gives_up_with_a_clear_error() {
    // Nothing listens on port 1.
    let cluster = KafkaCluster::builder("127.0.0.1:1").broker_timeout(Duration::from_secs(3)).build().unwrap();
    let started = Instant::now();
    let err = cluster.wait_for_brokers().await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err.kind(), ErrorKind::BrokersUnavailable { .. }), "{err}");
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(15), "{waited:?}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_broker_addresses_are_config_errors() {
    let err = KafkaCluster::new("not-an-address".into(), "t".into()).wait_for_brokers().await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidConfig { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn create_list_and_delete_topics() {
    let cluster = cluster();
    let a = unique("warden-a");
    let b = unique("warden-b");
    let topics = [
        TopicConfiguration::new(&a, 3).with_config("retention.ms", "3600000"),
        TopicConfiguration::new_with_default(&b),
    ];
    cluster.create_topics(&topics).await.unwrap();
    // Creating again is fine.
    cluster.create_topics(&topics).await.unwrap();

    let mut w = cluster.get_writer_for_partition(TopicPartition::new(&a, 2)).unwrap();
    for _ in 0..7 {
        w.produce(Record::new(vec![1])).await.unwrap();
    }
    w.flush_async().await.unwrap();

    let info = cluster.topic(&a).await.unwrap();
    assert_eq!(info.partitions.iter().map(|p| p.id).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(info.partitions[2].high_watermark, 7);
    assert_eq!(info.len(), 7);
    assert!(info.partitions.iter().all(|p| p.leader >= 0));
    let all = cluster.topics().await.unwrap();
    assert!(all.iter().any(|t| t.name == a) && all.iter().any(|t| t.name == b));
    assert_eq!(cluster.topic(&b).await.unwrap().partitions.len(), 1);

    cluster.delete_topics(&[&a, &b]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match cluster.topic(&a).await.map_err(Error::into_kind) {
            Err(ErrorKind::UnknownTopic { .. }) => break,
            _ if Instant::now() > deadline => panic!("topic {a} still listed after deletion"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ensure_topic_reports_a_partition_count_mismatch() {
    let cluster = cluster();
    let name = unique("warden-mismatch");
    cluster.ensure_topic(&TopicConfiguration::new(&name, 2)).await.unwrap();
    match cluster.ensure_topic(&TopicConfiguration::new(&name, 3)).await.map_err(Error::into_kind) {
        Err(ErrorKind::PartitionCountMismatch { expected: 3, actual: 2, .. }) => {}
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_topics_are_refused_before_reaching_the_broker() {
    let cluster = cluster();
    for bad in [TopicConfiguration::new("has space", 1), TopicConfiguration::new(unique("zero"), 0), TopicConfiguration::new(unique("neg"), -3)] {
        let err = cluster.create_topics(std::slice::from_ref(&bad)).await.unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::InvalidConfig { .. }), "{bad:?}: {err}");
    }
    assert!(matches!(cluster.topic(&unique("missing")).await.map_err(Error::into_kind), Err(ErrorKind::UnknownTopic { .. })));
}

/// `wait_for_topic` returns once a topic has leaders, and names a topic no
/// answer listed as unknown (not "not ready") after the request timeout.
#[tokio::test(flavor = "current_thread")]
async fn wait_for_topic_tells_a_missing_topic_from_a_ready_one() {
    let cluster = KafkaCluster::builder(brokers()).request_timeout(Duration::from_secs(1)).build().unwrap();
    let name = topic(&cluster, "wait-ready", 2).await;
    cluster.wait_for_topic(&name).await.unwrap();
    let started = Instant::now();
    let err = cluster.wait_for_topic(&unique("wait-missing")).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::UnknownTopic { .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(1), "gave up after {:?}", started.elapsed());
}

/// Growing a topic: the new partitions are listed, can be written, and a
/// partition count below the current one is refused.
#[tokio::test(flavor = "multi_thread")]
async fn add_partitions_grows_a_topic() {
    let cluster = cluster();
    let name = unique("warden-grow");
    cluster.create_topics(&[TopicConfiguration::new(&name, 1)]).await.unwrap();
    cluster.add_partitions(&name, 3).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ids: Vec<i32> = cluster.topic(&name).await.unwrap().partitions.iter().map(|p| p.id).collect();
        if ids == [0, 1, 2] {
            break;
        }
        assert!(Instant::now() < deadline, "partitions after growing to 3: {ids:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut w = cluster.get_writer_for_partition(TopicPartition::new(&name, 2)).unwrap();
    w.produce(Record::new(vec![7])).await.unwrap();
    assert_eq!(w.flush_async().await.unwrap(), Some(0));

    let err = cluster.add_partitions(&name, 2).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::TopicAdmin { operation: "add partitions", .. }), "{err}");
    let err = cluster.add_partitions(&unique("missing"), 2).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::TopicAdmin { .. }), "{err}");
}

/// Kafka describes every config of a topic, defaults included.
#[tokio::test(flavor = "multi_thread")]
async fn topic_configs_list_defaults_and_overrides() {
    let cluster = cluster();
    let name = unique("warden-configs");
    cluster
        .create_topics(&[TopicConfiguration::new(&name, 1).with_config("retention.ms", "3600000")])
        .await
        .unwrap();
    let configs = cluster.topic_configs(&name).await.unwrap();
    assert_eq!(configs.get("retention.ms").map(String::as_str), Some("3600000"), "{configs:?}");
    assert_eq!(configs.get("cleanup.policy").map(String::as_str), Some("delete"), "{configs:?}");
    assert!(configs.len() > 20, "Kafka describes its defaults too: {configs:?}");
}

/// Altering one config changes that key only: earlier overrides stay, and
/// no default becomes an override.
#[tokio::test(flavor = "multi_thread")]
async fn altering_a_topic_config_changes_only_that_key() {
    let cluster = cluster();
    let name = unique("warden-alter");
    cluster
        .create_topics(&[TopicConfiguration::new(&name, 1).with_config("retention.ms", "3600000")])
        .await
        .unwrap();
    let overrides = |pairs: &[(&str, &str)]| {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>()
    };
    let before = cluster.topic_config_overrides(&name).await.unwrap();
    assert_eq!(before, overrides(&[("retention.ms", "3600000")]));

    cluster.alter_topic_configs(&name, &[("cleanup.policy", "compact")]).await.unwrap();
    let want = overrides(&[("cleanup.policy", "compact"), ("retention.ms", "3600000")]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = cluster.topic_config_overrides(&name).await.unwrap();
        if now == want {
            break;
        }
        assert!(Instant::now() < deadline, "overrides after the alter: {now:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The broker still describes its defaults, and they are not overrides.
    let all = cluster.topic_configs(&name).await.unwrap();
    assert_eq!(all.get("cleanup.policy").map(String::as_str), Some("compact"));
    assert_eq!(all.get("segment.bytes").map(String::as_str), Some("1073741824"), "a default stays the default");
    assert!(all.len() > want.len());

    // Removing one override leaves the other; an invalid value is refused.
    cluster.reset_topic_configs(&name, &["cleanup.policy"]).await.unwrap();
    assert_eq!(cluster.topic_config_overrides(&name).await.unwrap(), overrides(&[("retention.ms", "3600000")]));
    let quick = KafkaCluster::builder(common::brokers()).request_timeout(Duration::from_secs(2)).build().unwrap();
    let err = quick.alter_topic_configs(&name, &[("retention.ms", "soon")]).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::TopicAdmin { operation: "alter configs", .. }), "{err}");
    let entries = cluster.topic_config_entries(&name).await.unwrap();
    let retention = entries.iter().find(|e| e.name == "retention.ms").unwrap();
    assert_eq!((retention.value.as_deref(), retention.source), (Some("3600000"), ConfigSource::Topic));
    let segment = entries.iter().find(|e| e.name == "segment.bytes").unwrap();
    assert_eq!((segment.source, segment.default, segment.read_only, segment.sensitive), (ConfigSource::Default, true, false, false));

    let err = cluster.alter_topic_configs("has space", &[("retention.ms", "1")]).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidConfig { .. }), "{err}");
    let missing = unique("missing");
    let err = cluster.topic_config_overrides(&missing).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::UnknownTopic { .. }), "{err}");
    let err = cluster.topic_configs(&missing).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::UnknownTopic { .. }), "{err}");
}

/// Leaders, replicas and in-sync replicas of every partition, and the
/// brokers: on one node, node 1 holds everything.
#[tokio::test(flavor = "multi_thread")]
async fn metadata_names_leaders_replicas_in_sync_replicas_and_brokers() {
    let cluster = cluster();
    let brokers = cluster.brokers().await.unwrap();
    assert_eq!(brokers.len(), 1, "{brokers:?}");
    let node = &brokers[0];
    assert_eq!(format!("{}:{}", node.host, node.port), common::brokers(), "{node:?}");
    let name = unique("warden-meta");
    cluster.create_topics(&[TopicConfiguration::new(&name, 3)]).await.unwrap();
    let info = cluster.topic(&name).await.unwrap();
    assert_eq!(info.partitions.len(), 3);
    for p in &info.partitions {
        assert_eq!((p.leader, p.replicas.clone(), p.isr.clone()), (node.id, vec![node.id], vec![node.id]), "{p:?}");
        assert!(p.is_available() && p.is_empty(), "{p:?}");
    }
    // The listing of every topic says the same.
    let all = cluster.topics().await.unwrap();
    assert_eq!(all.iter().find(|t| t.name == name), Some(&info));
}

/// Median of nine timings of `f`.
async fn median<F: std::future::Future<Output = ()>>(mut f: impl FnMut() -> F) -> Duration {
    let mut times = Vec::new();
    for _ in 0..9 {
        let started = Instant::now();
        f().await;
        times.push(started.elapsed());
    }
    times.sort();
    times[4]
}

/// Watermarks of 30 partitions, exact; read in one batch, and compared with
/// reading them one partition at a time (what `topic` did before).
#[tokio::test(flavor = "multi_thread")]
async fn watermarks_of_thirty_partitions_are_exact_and_read_in_one_batch() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let cluster = cluster();
    let name = unique("warden-marks");
    cluster.create_topics(&[TopicConfiguration::new(&name, 30)]).await.unwrap();
    // Partition p holds p % 4 records.
    for p in 0..30 {
        let mut w = cluster.get_writer_for_partition(TopicPartition::new(&name, p)).unwrap();
        for _ in 0..p % 4 {
            w.produce(Record::new(vec![1])).await.unwrap();
        }
        w.flush_async().await.unwrap();
    }
    let info = cluster.topic(&name).await.unwrap();
    let highs: Vec<i64> = info.partitions.iter().map(|p| p.high_watermark).collect();
    assert_eq!(highs, (0..30).map(|p| i64::from(p % 4)).collect::<Vec<_>>());
    assert!(info.partitions.iter().all(|p| p.low_watermark == 0));
    assert_eq!(info.len(), (0..30).map(|p| i64::from(p % 4)).sum::<i64>());

    let batched = median(|| async {
        cluster.topic(&name).await.unwrap();
    })
    .await;
    let one_by_one: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", common::brokers()).create().unwrap();
    let one_by_one = std::sync::Arc::new(one_by_one);
    let sequential = median(|| {
        let (client, name) = (one_by_one.clone(), name.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let md = client.fetch_metadata(None, Duration::from_secs(10)).unwrap();
                assert!(md.topics().iter().any(|t| t.name() == name));
                for p in 0..30 {
                    client.fetch_watermarks(&name, p, Duration::from_secs(10)).unwrap();
                }
            })
            .await
            .unwrap();
        }
    })
    .await;
    let metadata = median(|| async {
        cluster.brokers().await.unwrap();
    })
    .await;
    println!(
        "topic() with 30 partitions: batched {batched:?}, one partition at a time {sequential:?}; \
         the metadata request alone {metadata:?} (medians of 9)"
    );
}
