//! The seed's producer, unchanged, and our examples, against the real broker.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use twitch::warden::KafkaCluster;

fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").expect("KAFKA_BROKERS is not set: run the tests with scripts/test.sh")
}

/// Runs `bin` to its end (within five minutes) and returns what it printed.
fn run(bin: &str, args: &[&str]) -> String {
    run_within(bin, args, Duration::from_secs(300))
}

async fn end_offset(cluster: &KafkaCluster, topic: &str) -> i64 {
    match cluster.topic(topic).await {
        Ok(info) => info.partitions[0].high_watermark,
        Err(e) if matches!(e.kind(), twitch::ErrorKind::UnknownTopic { .. }) => 0,
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

/// Runs `bin` and fails the test if it does not exit within `limit` (the
/// child is killed then).
fn run_within(bin: &str, args: &[&str], limit: Duration) -> String {
    let mut child = Command::new(bin)
        .args(args)
        .env("KAFKA_BROKERS", brokers())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap_or_else(|e| panic!("waiting for {bin}: {e}")).is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap_or_else(|e| panic!("{bin}: {e}"));
            panic!(
                "{bin} {args:?} still ran after {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{bin}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{bin} {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The group consumer reads every record once, and the group's committed
/// offset afterwards is the end of the partition: everything it processed is
/// committed.
#[tokio::test(flavor = "multi_thread")]
async fn group_consumer_reads_everything_and_commits_it() {
    let topic = format!("examples-{}-{}", std::process::id(), line!());
    let group = format!("{topic}-group");
    let out = run(env!("CARGO_BIN_EXE_producer"), &["--topic", &topic, "--count", "499"]);
    assert!(out.contains("wrote 500 records"), "{out}");

    let out = run_within(
        env!("CARGO_BIN_EXE_group_consumer"),
        &["--topic", &topic, "--group", &group, "--count", "500"],
        Duration::from_secs(120),
    );
    assert!(out.contains("consumed 500 records (") && out.contains("1 reset, 499 data, 0 other"), "{out}");

    let cluster = KafkaCluster::new(brokers(), "examples-test".into());
    let lag = cluster.group_lag(&group, &topic).await.unwrap();
    assert_eq!(lag.len(), 1, "{lag:?}");
    assert_eq!(lag[0].committed, Some(500), "{lag:?}");
    assert_eq!(lag[0].lag, 0, "{lag:?}");

    // A new member of the group starts where the last one committed: one
    // more record, and it reads just that one.
    let out = run(env!("CARGO_BIN_EXE_producer"), &["--topic", &topic, "--count", "0"]);
    assert!(out.contains("wrote 1 records"), "{out}");
    let out = run_within(
        env!("CARGO_BIN_EXE_group_consumer"),
        &["--topic", &topic, "--group", &group, "--count", "1"],
        Duration::from_secs(120),
    );
    assert!(out.contains("consumed 1 records"), "{out}");
    let lag = cluster.group_lag(&group, &topic).await.unwrap();
    assert_eq!(lag[0].committed, Some(501), "{lag:?}");
}
