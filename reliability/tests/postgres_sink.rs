//! `temp_sink` writes every reading into PostgreSQL exactly once, whatever
//! happens mid-stream: a member SIGKILLed while the group grows from one
//! member to three, the broker SIGKILLed and restarted, the database stopped
//! and started. Each test has a PostgreSQL of its own (`scripts/postgres.sh`,
//! ports 19730-19733), its own topic, group and schema.
//!
//! Checked in the database: `readings` holds every (sensor, seq) the topic
//! holds, each once; no record was skipped as a duplicate (a record read
//! again is recognised by its offset, before the insert); `sensor_averages`
//! equals the averages computed afresh from `readings`; and the overall
//! average equals the mean temp_gen printed.
//!
//! Needs `KAFKA_BROKERS` (but for the broker test, which starts its own on
//! port 19720) and PostgreSQL 15 (`apt-get install postgresql-15`). Figures
//! go to stderr: `cargo test -p reliability --test postgres_sink -- --nocapture`.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use reliability::{
    binaries, brokers, sink_binary, topic_readings, unique, unique_schema, App, Broker, Finished, Key, Postgres,
};
use temp_sink::Store;
use tokio::time::Instant;
use twitch::{KafkaCluster, Record, TopicConfiguration, TopicPartition};

/// Readings per run: 1,000 per partition, over about 12 s.
const READINGS: u64 = 3_000;
const INTERVAL: &str = "4ms";
/// How long the group waits for a member killed without leaving.
const SESSION_TIMEOUT: &str = "6s";

struct Run {
    cluster: KafkaCluster,
    brokers: String,
    topic: String,
    group: String,
    schema: String,
    url: String,
    store: Store,
}

impl Run {
    async fn new(prefix: &str, brokers: String, pg: &Postgres) -> Result<Run> {
        let cluster =
            KafkaCluster::builder(&brokers).client_id("reliability").broker_timeout(Duration::from_secs(20)).build()?;
        cluster.wait_for_brokers().await?;
        let topic = unique(prefix);
        cluster.create_topics(&[TopicConfiguration::new(&topic, 3)]).await?;
        let schema = unique_schema(prefix);
        let store = pg.store(&schema).await?;
        Ok(Run { cluster, brokers, group: format!("{topic}-group"), topic, schema, url: pg.url(), store })
    }

    fn sink(&self, name: &str) -> Result<App> {
        let args = [
            "--database-url", &self.url, "--schema", &self.schema, "--topic", &self.topic, "--group", &self.group,
            "--session-timeout", SESSION_TIMEOUT, "--batch-latency", "20ms",
        ];
        App::spawn(name, &sink_binary()?, &args, &self.brokers)
    }

    fn producer(&self, count: u64) -> Result<App> {
        let count = count.to_string();
        let args = ["--topic", &self.topic, "--count", &count, "--interval", INTERVAL, "--seed", "11"];
        App::spawn("temp_gen", &binaries()?.temp_gen, &args, &self.brokers)
    }

    /// Rows in `readings` now; 0 while the database does not answer.
    async fn rows(&self) -> i64 {
        self.store.report().await.map_or(0, |r| r.rows)
    }

    /// Waits until `readings` holds at least `n` rows, the sinks running.
    async fn wait_rows(&self, n: i64, timeout: Duration, sinks: &mut [App]) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            for s in sinks.iter_mut() {
                s.check_running()?;
            }
            let rows = self.rows().await;
            if rows >= n {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "after {timeout:?} the database holds {rows} readings, not {n}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Checks the database against what the topic holds and the producer's
    /// mean; prints the figures.
    async fn check(&self, scenario: &str, producer_mean: Option<f64>) -> Result<()> {
        let stored = topic_readings(&self.cluster, &self.topic).await?;
        let in_topic: BTreeSet<Key> = stored.iter().map(|p| p.key()).collect();
        let keys: Vec<(String, i64)> = self.store.keys().await?;
        let in_db: BTreeSet<Key> = keys.iter().map(|(s, q)| (s.clone(), u64::try_from(*q).unwrap_or(u64::MAX))).collect();
        let report = self.store.report().await?;
        let recount = self.store.recount().await?;
        let missing: Vec<_> = in_topic.difference(&in_db).take(5).collect();
        eprintln!(
            "FIGURES {scenario}: topic holds {} records ({} distinct), database {} rows, {} missing, {} not in the topic, \
             {} skipped as duplicates, overall average {:?} (temp_gen: {producer_mean:?})",
            stored.len(),
            in_topic.len(),
            report.rows,
            in_topic.difference(&in_db).count(),
            in_db.difference(&in_topic).count(),
            report.duplicates,
            report.overall,
        );
        ensure!(in_topic.len() as u64 == READINGS, "the topic holds {} distinct readings, not {READINGS}", in_topic.len());
        ensure!(missing.is_empty(), "readings missing from the database, e.g. {missing:?}");
        ensure!(in_db == in_topic && report.rows == keys.len() as i64, "rows that are not in the topic");
        let topic_duplicates = (stored.len() - in_topic.len()) as i64;
        ensure!(
            report.duplicates == topic_duplicates,
            "{} records were skipped as duplicates, but the topic holds {topic_duplicates}: a record was written twice",
            report.duplicates
        );
        ensure!(report.sensors.len() == recount.len(), "{:?} vs {recount:?}", report.sensors);
        for (stored, fresh) in report.sensors.iter().zip(&recount) {
            ensure!(
                stored.sensor == fresh.sensor
                    && stored.readings == fresh.readings
                    && (stored.average - fresh.average).abs() <= 1e-9,
                "sensor_averages says {stored:?}, the readings {fresh:?}"
            );
        }
        if let (Some(mean), Some(overall)) = (producer_mean, report.overall) {
            // temp_gen prints 6 decimals.
            ensure!((mean - overall).abs() <= 1e-6 + 1e-9, "overall average {overall}, temp_gen's mean {mean}");
        }
        Ok(())
    }
}

/// Stops the sinks (SIGTERM) and checks each exited 0 with its summary line.
async fn stop_all(sinks: Vec<App>) -> Result<Vec<Finished>> {
    for s in &sinks {
        s.terminate()?;
    }
    let mut finished = Vec::new();
    for s in sinks {
        let f = s.finish(Duration::from_secs(60)).await?;
        ensure!(f.status.success(), "{} failed ({}):\n{}", f.name, f.status, f.stderr_tail(15));
        ensure!(f.last_line().is_some_and(|l| l.starts_with("wrote ")), "{}'s summary: {:?}", f.name, f.last_line());
        finished.push(f);
    }
    Ok(finished)
}

/// `... skipped <d> duplicates and <a> already written, ...` in a sink's
/// summary: a.
fn already_written(sink: &Finished) -> Option<u64> {
    let line = sink.last_line()?;
    let (before, _) = line.split_once(" already written")?;
    before.rsplit(' ').next()?.parse().ok()
}

/// Whether the sink logged that the group assigned it partitions.
fn claimed(app: &App) -> bool {
    app.stderr().iter().any(|l| l.contains("resuming partitions from the database"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_three_sinks_one_sigkilled_write_every_reading_once() -> Result<()> {
    let pg = Postgres::start(19730).await?;
    let run = Run::new("sink-killed", brokers()?, &pg).await?;
    let mut sinks = vec![run.sink("temp_sink-1")?];
    reliability::wait_until("the first sink to claim partitions", Duration::from_secs(45), || {
        sinks[0].check_running()?;
        Ok(claimed(&sinks[0]))
    })
    .await?;
    let mut producer = run.producer(READINGS)?;

    // One member, then three.
    run.wait_rows(300, Duration::from_secs(60), &mut sinks).await?;
    sinks.push(run.sink("temp_sink-2")?);
    sinks.push(run.sink("temp_sink-3")?);
    reliability::wait_until("the new sinks to claim partitions", Duration::from_secs(45), || {
        Ok(sinks.iter().skip(1).all(claimed))
    })
    .await?;

    // SIGKILL one mid-stream, then start it again.
    run.wait_rows(1_200, Duration::from_secs(60), &mut sinks).await?;
    producer.check_running().context("the kill must come while temp_gen writes")?;
    let mut victim = sinks.remove(1);
    victim.kill()?;
    let rows_at_kill = run.rows().await;
    let victim = victim.finish(Duration::from_secs(10)).await?;
    // Kafka's commit (a hint) trails the database's offsets: resuming from
    // Kafka would write the difference twice, and the check would see it.
    let in_db = run.store.offsets(&run.topic).await?;
    let in_kafka = run.cluster.group_lag(&run.group, &run.topic).await?;
    let in_kafka: Vec<(i32, Option<i64>)> = in_kafka.iter().map(|p| (p.partition.partition, p.committed)).collect();
    ensure!(!victim.status.success(), "the killed sink exited normally");
    sinks.push(run.sink("temp_sink-2-restarted")?);

    let producer = producer.finish(Duration::from_secs(60)).await?;
    let mean = producer.producer_summary(READINGS)?.mean;
    run.wait_rows(READINGS as i64, Duration::from_secs(90), &mut sinks).await?;
    let finished = stop_all(sinks).await?;
    eprintln!(
        "killed temp_sink-2 with {rows_at_kill} rows in the database; next offsets then: database {in_db:?}, \
         Kafka's commit {in_kafka:?}"
    );
    ensure!(finished.iter().filter(|f| f.stderr.iter().any(|l| l.contains("resuming partitions"))).count() == 3);
    // Resuming from the database, no sink is handed a record it wrote
    // before; resuming from Kafka's commit, the takeover would be.
    let already: Vec<Option<u64>> = finished.iter().map(already_written).collect();
    ensure!(already.iter().all(|a| *a == Some(0)), "records read again past the database's offsets: {already:?}");
    run.check("1 -> 3 sinks, one SIGKILLed and restarted", mean).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_write_every_reading_once_across_a_broker_crash() -> Result<()> {
    let pg = Postgres::start(19731).await?;
    let mut broker = Broker::start(19720).await?;
    let run = Run::new("sink-broker", broker.address(), &pg).await?;
    let mut sinks = vec![run.sink("temp_sink-1")?, run.sink("temp_sink-2")?];
    let mut producer = run.producer(READINGS)?;

    run.wait_rows(600, Duration::from_secs(60), &mut sinks).await?;
    producer.check_running().context("the crash must come while temp_gen writes")?;
    broker.kill().await?;
    let rows_at_crash = run.rows().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.start_again().await.with_context(|| broker.log_tail(20))?;

    let producer = producer.finish(Duration::from_secs(90)).await?;
    let mean = producer.producer_summary(READINGS)?.mean;
    run.wait_rows(READINGS as i64, Duration::from_secs(90), &mut sinks).await?;
    stop_all(sinks).await?;
    eprintln!("broker SIGKILLed with {rows_at_crash} rows in the database, down 2 s");
    run.check("broker SIGKILLed and restarted", mean).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_retry_while_the_database_is_down_and_lose_nothing() -> Result<()> {
    let mut pg = Postgres::start(19732).await?;
    let run = Run::new("sink-dbdown", brokers()?, &pg).await?;
    let mut sinks = vec![run.sink("temp_sink-1")?, run.sink("temp_sink-2")?];
    let mut producer = run.producer(READINGS)?;

    run.wait_rows(600, Duration::from_secs(60), &mut sinks).await?;
    producer.check_running().context("the database must stop while temp_gen writes")?;
    pg.stop().await?;
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    pg.start_again().await?;
    let downtime = down.elapsed();

    let producer = producer.finish(Duration::from_secs(60)).await?;
    let mean = producer.producer_summary(READINGS)?.mean;
    run.wait_rows(READINGS as i64, Duration::from_secs(90), &mut sinks).await?;
    let finished = stop_all(sinks).await?;
    let retried = finished.iter().filter(|f| f.stderr.iter().any(|l| l.contains("writing a batch failed; retrying"))).count();
    eprintln!("database down for {downtime:.1?}; {retried} of 2 sinks retried batches");
    ensure!(retried > 0, "no sink had to retry a batch: the database was not down mid-stream");
    run.check("database stopped and started", mean).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_readings_go_to_the_dead_letter_topic_not_the_table() -> Result<()> {
    let pg = Postgres::start(19733).await?;
    let run = Run::new("sink-dlq", brokers()?, &pg).await?;
    let producer = run.producer(30)?.finish(Duration::from_secs(60)).await?;
    ensure!(producer.status.success(), "temp_gen failed:\n{}", producer.stderr_tail(10));
    let mut w = run.cluster.get_writer_for_partition(TopicPartition::new(&run.topic, 1))?;
    w.produce(Record::new(b"{\"sensor\":\"sensor-009\",\"seq\":\"x\"}".to_vec()).with_key("sensor-009")).await?;
    w.flush_async().await?;

    let url = run.url.clone();
    let args = ["--database-url", &url, "--schema", &run.schema, "--topic", &run.topic, "--group", &run.group, "--exit-when-idle", "3s"];
    let sink = App::spawn("temp_sink", &sink_binary()?, &args, &run.brokers)?.finish(Duration::from_secs(90)).await?;
    ensure!(sink.status.success(), "temp_sink failed:\n{}", sink.stderr_tail(15));
    let report = run.store.report().await?;
    let parked = run.cluster.topic(&format!("{}.dlq", run.topic)).await?;
    let dead: i64 = parked.partitions.iter().map(|p| p.len()).sum();
    eprintln!("FIGURES dead letters: {} rows, {dead} parked; {}", report.rows, sink.last_line().unwrap_or_default());
    ensure!(report.rows == 30 && report.sensors.iter().all(|s| s.sensor != "sensor-009"), "{report:?}");
    ensure!(dead == 1, "{dead} records in the dead-letter topic, not 1");
    ensure!(sink.last_line().is_some_and(|l| l.ends_with(", 1 dead-lettered")), "{:?}", sink.last_line());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_at_start_is_one_line_and_exit_code_1() -> Result<()> {
    // Nothing listens on this port (the tests' PostgreSQL ports are 19730-19733).
    let args = ["--database-url", "postgres://postgres@127.0.0.1:19739/postgres", "--db-timeout", "2s"];
    let sink = App::spawn("temp_sink", &sink_binary()?, &args, "127.0.0.1:1")?.finish(Duration::from_secs(30)).await?;
    let errors: Vec<&String> = sink.stderr.iter().filter(|l| l.contains("error")).collect();
    ensure!(sink.status.code() == Some(1), "exit status {}", sink.status);
    ensure!(
        errors.len() == 1 && errors[0].starts_with("temp_sink: error: cannot reach the database at 127.0.0.1:19739/postgres"),
        "stderr: {:?}",
        sink.stderr
    );
    Ok(())
}
