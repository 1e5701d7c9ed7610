//! The seed's producer, unchanged, and our examples, against the real broker.

use std::process::Command;

use twitch::warden::KafkaCluster;

fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").expect("KAFKA_BROKERS is not set: run the tests with scripts/test.sh")
}

fn run(bin: &str, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .env("KAFKA_BROKERS", brokers())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{bin} {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn end_offset(cluster: &KafkaCluster, topic: &str) -> i64 {
    match cluster.topic(topic).await {
        Ok(info) => info.partitions[0].high_watermark,
        Err(twitch::Error::UnknownTopic { .. }) => 0,
        Err(e) => panic!("{e}"),
    }
}

/// The seed's producer writes `Reset` + 30,000 records to `test_topic`/0; our
/// consumer reads exactly those back and decodes every one.
#[tokio::test(flavor = "multi_thread")]
async fn seed_producer_runs_unchanged_and_its_records_read_back() {
    let cluster = KafkaCluster::new(brokers(), "examples-test".into());
    cluster.wait_for_brokers().await.unwrap();
    let before = end_offset(&cluster, twitch_examples::TOPIC).await;

    run(env!("CARGO_BIN_EXE_seed_producer"), &[]);
    assert_eq!(end_offset(&cluster, twitch_examples::TOPIC).await - before, 30_001);

    let out = run(env!("CARGO_BIN_EXE_consumer"), &["--from", &before.to_string()]);
    assert!(out.contains("read 30001 records: 1 reset, 30000 data"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn our_producer_and_consumer_examples_agree() {
    let topic = format!("examples-{}-{}", std::process::id(), line!());
    let out = run(env!("CARGO_BIN_EXE_producer"), &["--topic", &topic, "--count", "2000"]);
    assert!(out.contains("wrote 2001 records"), "{out}");
    let out = run(env!("CARGO_BIN_EXE_consumer"), &["--topic", &topic]);
    assert!(out.contains("read 2001 records: 1 reset, 2000 data"), "{out}");
}
