//! `/metrics` scraped as Prometheus would, while `temp_gen` writes and
//! `average_temp` reads: the counts grow during the run and end equal to
//! the summaries, and the consumer's lag goes to 0 once the producer stops.
//! Needs `KAFKA_BROKERS`.

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use reliability::web::{http_get, metric, metric_series, served_addr, serving_consumer, Serving};
use reliability::App;
use temps::{ConsumerSummary, ProducerSummary};

/// Readings, over three sensors: about 6 s.
const READINGS: u64 = 3_000;
const INTERVAL: &str = "2ms";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_readings_and_the_lag_drains() -> Result<()> {
    let Serving { brokers, bins, topic, mut consumer, addr: consumer_addr } =
        serving_consumer("metrics", "--metrics", "metrics").await?;
    let count = READINGS.to_string();
    let args = ["--topic", &topic, "--count", &count, "--interval", INTERVAL, "--seed", "5", "--metrics", "127.0.0.1:0"];
    let mut producer = App::spawn("temp_gen", &bins.temp_gen, &args, &brokers)?;
    let producer_addr = served_addr(&mut producer, "metrics").await?;

    // During the run: scrape both every 200 ms while temp_gen writes.
    let (mut consumed_seen, mut produced_seen) = (Vec::new(), Vec::new());
    while producer.check_running().is_ok() {
        let Ok(text) = http_get(&producer_addr, "/metrics").await else { break };
        produced_seen.push(metric(&text, "temps_readings_produced_total").context("readings produced")?);
        let text = http_get(&consumer_addr, "/metrics").await?;
        consumed_seen.push(metric(&text, "temps_readings_consumed_total").context("readings consumed")?);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let produced = producer.finish(Duration::from_secs(60)).await?;
    ensure!(produced.status.success(), "temp_gen failed:\n{}", produced.stderr_tail(15));
    let summary: ProducerSummary = produced.last_line().unwrap_or_default().parse()?;
    ensure!(summary.produced == READINGS);
    ensure!(consumed_seen.windows(2).all(|w| w[0] <= w[1]), "the consumed count went down: {consumed_seen:?}");
    ensure!(
        consumed_seen.iter().any(|&c| c > 0.0 && c < READINGS as f64),
        "no scrape saw the run in progress: {consumed_seen:?}"
    );
    ensure!(produced_seen.iter().any(|&c| c > 0.0), "temp_gen's metrics never counted a reading: {produced_seen:?}");

    // After the producer stopped: everything consumed, committed, no lag.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (mut last, mut drained) = (String::new(), false);
    while !drained && tokio::time::Instant::now() < deadline {
        consumer.check_running()?;
        last = http_get(&consumer_addr, "/metrics").await?;
        let lag = metric_series(&last, "temps_consumer_lag");
        drained = metric(&last, "temps_readings_consumed_total") == Some(READINGS as f64)
            && lag.len() == 3
            && lag.iter().all(|(_, v)| *v == 0.0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(drained, "the lag did not drain; last scrape:\n{last}");
    ensure!(metric(&last, "temps_commits_total").is_some_and(|c| c >= 1.0), "no commit counted:\n{last}");
    ensure!(metric_series(&last, "temps_average_celsius").len() == 3, "an average per sensor:\n{last}");

    consumer.terminate()?;
    let finished = consumer.finish(Duration::from_secs(60)).await?;
    finished.check_stopped()?;
    let summary: ConsumerSummary = finished.last_line().unwrap_or_default().parse()?;
    ensure!(summary.consumed == READINGS);
    let overall = metric(&last, "temps_overall_average_celsius").context("the overall average")?;
    ensure!(
        summary.average.is_some_and(|a| (a - overall).abs() < 5e-7),
        "metrics say {overall}, average_temp {:?}",
        summary.average
    );
    Ok(())
}
