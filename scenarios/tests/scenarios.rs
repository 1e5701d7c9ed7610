//! End to end: the three scenarios, and the apps' error paths, against the
//! broker in `KAFKA_BROKERS` (which must be set: these tests fail, not skip,
//! without it).
//!
//! The apps are separate crates, so Cargo does not build them for this test;
//! each test run builds them first with `cargo build -p temp_gen -p
//! average_temp` (a no-op when they are fresh) and takes their paths from
//! Cargo's JSON messages.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use scenarios::{Binaries, Config, Scenario};
use temps::{ConsumerSummary, Reading};
use twitch::{Format, KafkaCluster, Record, TopicConfiguration};

fn brokers() -> String {
    match std::env::var("KAFKA_BROKERS") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => panic!(
            "KAFKA_BROKERS is not set: the end-to-end tests need a broker. Run scripts/test.sh, or start one \
             (scripts/kafka.sh start --port 19192) and export KAFKA_BROKERS=127.0.0.1:19192"
        ),
    }
}

/// `temp_gen` and `average_temp`, built once per test run.
fn binaries() -> Binaries {
    static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();
    BINARIES.get_or_init(|| Binaries::build_with_cargo().map_err(|e| e.to_string())).clone().unwrap_or_else(|e| panic!("{e}"))
}

fn config() -> Config {
    Config::new(brokers(), binaries())
}

async fn run(scenario: Scenario) {
    let config = config();
    scenarios::check_brokers(&config).await.unwrap_or_else(|e| panic!("{e}"));
    let report = scenarios::run_scenario(&config, scenario).await.unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
    assert!(report.passed(), "scenario {scenario} failed:\n{report}");
}

#[tokio::test]
async fn one_to_one() {
    run(Scenario::OneToOne).await;
}

#[tokio::test]
async fn one_to_three_each_sees_every_reading() {
    run(Scenario::OneToThree).await;
}

#[tokio::test]
async fn one_to_three_in_one_group_share_the_partitions() {
    run(Scenario::SameGroup).await;
}

fn unique(prefix: &str) -> String {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{prefix}-{millis}-{}", std::process::id())
}

async fn app(path: &PathBuf, args: &[&str]) -> Output {
    tokio::process::Command::new(path)
        .args(args)
        .env("KAFKA_BROKERS", brokers())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn temp_gen_refuses_a_topic_with_another_partition_count() {
    let cluster = KafkaCluster::new(brokers(), "scenarios-tests".into());
    let topic = unique("temps-one-partition");
    cluster.create_topics(&[TopicConfiguration::new(&topic, 1)]).await.expect("create topic");

    let out = app(&binaries().temp_gen, &["--topic", &topic, "--count", "1"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "no summary on failure: {}", text(&out.stdout));
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!("temp_gen: error: topic `{topic}` has 1 partition(s), but temp_gen needs 3; delete it or choose another --topic")
    );
}

#[tokio::test]
async fn undecodable_readings_are_parked_or_skipped_never_fatal() {
    let cluster = KafkaCluster::new(brokers(), "scenarios-tests".into());
    let topic = unique("temps-garbage");
    cluster.create_topics(&[TopicConfiguration::new(&topic, 3)]).await.expect("create topic");
    let mut writer = cluster.keyed_writer(&topic).expect("writer").with_format(Format::Json);
    let reading = |seq, celsius| Reading { sensor: "sensor-001".into(), seq, celsius, timestamp: 0 };
    writer.send_keyed(b"sensor-001", &reading(0, 20.0)).await.expect("send");
    writer.produce(Record::new(b"not json".to_vec()).with_key("sensor-001")).await.expect("send");
    writer.send_keyed(b"sensor-001", &reading(1, 21.0)).await.expect("send");
    writer.flush_async().await.expect("flush");
    let average_temp = binaries().average_temp;

    // Default: parked in <topic>.dlq.
    let out = app(&average_temp, &["--topic", &topic, "--exit-when-idle", "2"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let summary: ConsumerSummary = stdout.lines().last().unwrap_or_default().parse().expect("summary line");
    assert_eq!((summary.consumed, summary.average), (2, Some(20.5)), "{stdout}");
    assert_eq!(stdout.lines().count(), 3, "one line per reading, then the summary: {stdout}");
    let dlq = cluster.topic(&format!("{topic}.dlq")).await.expect("dead-letter topic");
    assert_eq!(dlq.len(), 1, "the undecodable record is parked");

    // --no-dead-letter: reported and skipped.
    let out = app(&average_temp, &["--topic", &topic, "--exit-when-idle", "2", "--no-dead-letter"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: ConsumerSummary = text(&out.stdout).lines().last().unwrap_or_default().parse().expect("summary line");
    assert_eq!(summary.consumed, 2);
    assert!(text(&out.stderr).contains("cannot decode a reading; skipped"), "{}", text(&out.stderr));
}

#[tokio::test]
async fn a_group_resumes_after_what_it_committed() {
    let cluster = KafkaCluster::new(brokers(), "scenarios-tests".into());
    let topic = unique("temps-resume");
    let group = unique("temps-resume-group");
    let bins = binaries();
    let produce = ["--topic", topic.as_str(), "--count", "30", "--interval", "0", "--seed", "1"];
    let consume = ["--topic", topic.as_str(), "--group", group.as_str(), "--exit-when-idle", "2"];
    cluster.create_topics(&[TopicConfiguration::new(&topic, 3)]).await.expect("create topic");

    assert!(app(&bins.temp_gen, &produce).await.status.success());
    let first = app(&bins.average_temp, &consume).await;
    let first: ConsumerSummary = text(&first.stdout).lines().last().unwrap_or_default().parse().expect("summary");
    assert_eq!(first.consumed, 30);

    assert!(app(&bins.temp_gen, &produce).await.status.success());
    let second = app(&bins.average_temp, &consume).await;
    let second: ConsumerSummary = text(&second.stdout).lines().last().unwrap_or_default().parse().expect("summary");
    assert_eq!(second.consumed, 30, "only the new readings: the first run committed what it processed");
}

#[tokio::test]
async fn misuse_exits_with_2_and_an_unreachable_broker_with_1() {
    let bins = binaries();
    for (bin, args) in [
        (&bins.temp_gen, &["--sensors", "0"][..]),
        (&bins.temp_gen, &["--interval", "soon"]),
        (&bins.average_temp, &["--exit-when-idle", "-1"]),
        (&bins.average_temp, &["--dead-letter", "x", "--no-dead-letter"]),
    ] {
        let out = app(bin, args).await;
        assert_eq!(out.status.code(), Some(2), "{} {args:?}: {}", bin.display(), text(&out.stderr));
    }

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scenarios"))
        .args(["--brokers", "127.0.0.1:1", "--broker-timeout", "1s", "--bin-dir"])
        .arg(bins.temp_gen.parent().expect("bin dir"))
        .output()
        .await
        .expect("run scenarios");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("scenarios: error: ") && stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(stderr.contains("scripts/kafka.sh start"), "{stderr}");
}

#[tokio::test]
async fn the_runner_binary_runs_a_scenario() {
    let bins = binaries();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scenarios"))
        .args(["--scenario", "1-to-1", "--count", "30", "--idle", "2s", "--bin-dir"])
        .arg(bins.temp_gen.parent().expect("bin dir"))
        .env("KAFKA_BROKERS", brokers())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run scenarios");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("PASS 1-to-1"), "{stdout}");
    assert!(stdout.ends_with("1 of 1 scenario(s) passed\n"), "{stdout}");
}
