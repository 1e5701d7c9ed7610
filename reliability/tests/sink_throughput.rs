//! How fast readings go into PostgreSQL, against the broker-only consumer
//! (`average_temp`, which prints each reading). Ignored by default; run it
//! in release mode, with `KAFKA_BROKERS` and PostgreSQL 15 installed:
//!
//! ```text
//! cargo test --release -p reliability --test sink_throughput -- --ignored --nocapture
//! ```
//!
//! temp_gen fills a 3-partition topic first (`SINK_BENCH_READINGS`, default
//! 100,000); then each consumer reads it all from the beginning, alone in a
//! group of its own. `average_temp`'s rate is taken from the times its
//! first and last reading lines arrived; `temp_sink`'s from its summary
//! (first reading received to last commit), for several batch sizes.

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use reliability::{binaries, brokers, sink_binary, unique, unique_schema, App, Postgres};
use twitch::{KafkaCluster, TopicConfiguration};

/// `wrote <N> readings in <T> s (<R> readings/s, ...`: N and R.
fn sink_figures(line: &str) -> Option<(u64, f64)> {
    let mut words = line.split_whitespace();
    let n = words.nth(1)?.parse().ok()?;
    let rate = words.nth(4)?.strip_prefix('(')?.parse().ok()?;
    Some((n, rate))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it in release mode with --ignored --nocapture"]
async fn readings_per_second_into_postgres_and_broker_only() -> Result<()> {
    let readings: u64 = std::env::var("SINK_BENCH_READINGS").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let brokers = brokers()?;
    let bins = binaries()?;
    let pg = Postgres::start(19734).await?;
    let cluster = KafkaCluster::builder(&brokers).client_id("sink-bench").build()?;
    let topic = unique("sink-bench");
    cluster.create_topics(&[TopicConfiguration::new(&topic, 3)]).await?;
    let count = readings.to_string();
    let args = ["--topic", topic.as_str(), "--count", &count, "--interval", "0s", "--seed", "5"];
    let producer = App::spawn("temp_gen", &bins.temp_gen, &args, &brokers)?.finish(Duration::from_secs(300)).await?;
    ensure!(producer.status.success(), "temp_gen failed:\n{}", producer.stderr_tail(10));
    let produced = readings as f64 / producer.elapsed.as_secs_f64().max(1e-9);
    eprintln!("THROUGHPUT temp_gen --interval 0s (the producer flat out): {produced:.0} readings/s, start to exit");

    let args = ["--topic", topic.as_str(), "--exit-when-idle", "3", "--no-dead-letter"];
    let consumer = App::spawn("average_temp", &bins.average_temp, &args, &brokers)?.finish(Duration::from_secs(300)).await?;
    let lines = consumer.readings();
    ensure!(lines.len() as u64 == readings, "average_temp read {} readings, not {readings}", lines.len());
    let span = lines.last().map(|l| l.at).context("no reading")? - lines[0].at;
    let broker_only = readings as f64 / span.as_secs_f64().max(1e-9);
    eprintln!("THROUGHPUT average_temp (broker only, a line per reading): {broker_only:.0} readings/s over {span:.1?}");

    for batch in ["100", "500", "2000", "10000"] {
        let schema = unique_schema(&format!("bench-{batch}"));
        let group = unique("sink-bench-group");
        let url = pg.url();
        let args = [
            "--database-url", &url, "--schema", &schema, "--topic", &topic, "--group", &group, "--batch-size", batch,
            "--exit-when-idle", "3s",
        ];
        let sink = App::spawn("temp_sink", &sink_binary()?, &args, &brokers)?.finish(Duration::from_secs(300)).await?;
        ensure!(sink.status.success(), "temp_sink failed:\n{}", sink.stderr_tail(10));
        let line = sink.last_line().unwrap_or_default();
        let (written, rate) = sink_figures(line).with_context(|| format!("temp_sink's summary: {line}"))?;
        ensure!(written == readings, "temp_sink wrote {written} readings, not {readings}");
        eprintln!(
            "THROUGHPUT temp_sink --batch-size {batch:>5}: {rate:.0} rows/s into PostgreSQL ({:.2}x average_temp)",
            rate / broker_only
        );
    }
    Ok(())
}

#[test]
fn sink_summaries_parse() {
    let line = "wrote 3000 readings in 0.3 s (10765 readings/s, 2 batches), skipped 0 duplicates";
    assert_eq!(sink_figures(line), Some((3000, 10765.0)));
    assert_eq!(sink_figures("consumed 3 readings"), None);
}
