//! What `cluster_exactly_once` reads back and checks: the readings of the
//! input topic, the outputs of `average_stage` as `read_committed` and
//! `read_uncommitted` readers see them (and as they come: [`Tail`]), and
//! the tally of which input readings they cover how many times.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use temps::{Reading, StageOutput};
use twitch::reader::{decode, StartAt};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use twitch::{ConsumedRecord, Format, KafkaCluster, TopicPartition};

/// An input reading: `(partition, offset)`.
pub type At = (i32, i64);

/// How long reading a topic to its end may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads every record of `topic` (of `partitions` partitions) from the
/// beginning to its end with `isolation.level` `isolation`.
async fn read_all(cluster: &KafkaCluster, topic: &str, partitions: i32, isolation: &str) -> Result<Vec<ConsumedRecord>> {
    let mut builder =
        cluster.partition_reader().start(StartAt::Beginning).stop_at_end(true).set("isolation.level", isolation);
    for p in 0..partitions {
        builder = builder.partition(TopicPartition::new(topic, p));
    }
    let mut reader = builder.build().context("building a partition reader")?;
    let mut out = Vec::new();
    let read = async {
        while let Some(item) = reader.next().await {
            out.push(item.with_context(|| format!("reading {topic} ({isolation})"))?);
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .with_context(|| format!("reading {topic} ({isolation}) to its end took over {READ_TIMEOUT:?}"))??;
    Ok(out)
}

/// Every reading of the input topic, by where it is.
pub async fn input(cluster: &KafkaCluster, topic: &str, partitions: i32) -> Result<BTreeMap<At, Reading>> {
    let records = read_all(cluster, topic, partitions, "read_committed").await?;
    let decoded = records.into_iter().map(|r| decode::<Reading>(Format::Json, r).context("decoding a reading"));
    decoded.map(|d| d.map(|d| ((d.record.partition, d.record.offset), d.value))).collect()
}

/// Every output record, in order per partition, as a reader with
/// `isolation` sees it.
pub async fn outputs(cluster: &KafkaCluster, topic: &str, partitions: i32, isolation: &str) -> Result<Vec<(At, StageOutput)>> {
    let records = read_all(cluster, topic, partitions, isolation).await?;
    let decoded = records.into_iter().map(|r| decode::<StageOutput>(Format::Json, r).context("decoding an output"));
    decoded.map(|d| d.map(|d| ((d.record.partition, d.record.offset), d.value))).collect()
}

/// How many times the outputs cover each input reading.
pub fn coverage(outputs: &[(At, StageOutput)]) -> BTreeMap<At, u64> {
    let mut covered = BTreeMap::new();
    for (_, o) in outputs {
        for at in o.covers.offsets() {
            *covered.entry(at).or_default() += 1;
        }
    }
    covered
}

/// Follows the output topic as a `read_uncommitted` reader, from its end:
/// when each member process (by instance) last wrote an output, seen
/// within milliseconds, whether or not its transaction commits. Stops when
/// dropped.
#[derive(Debug)]
pub struct Tail {
    seen: Arc<Mutex<HashMap<u64, Instant>>>,
    task: JoinHandle<()>,
}

impl Tail {
    /// Starts following `topic` (of `partitions` partitions).
    pub fn start(cluster: &KafkaCluster, topic: &str, partitions: i32) -> Result<Tail> {
        let mut builder = cluster
            .partition_reader()
            .start(StartAt::End)
            .set("isolation.level", "read_uncommitted")
            .set("fetch.wait.max.ms", "10");
        for p in 0..partitions {
            builder = builder.partition(TopicPartition::new(topic, p));
        }
        let mut reader = builder.build().context("building the output's tail reader")?;
        let seen: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let shared = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Some(item) = reader.next().await {
                // A read that fails (a node down) is retried by librdkafka.
                let Ok(record) = item else { continue };
                if let Ok(d) = decode::<StageOutput>(Format::Json, record) {
                    shared.lock().unwrap_or_else(PoisonError::into_inner).insert(d.value.instance, Instant::now());
                }
            }
        });
        Ok(Tail { seen, task })
    }

    /// When the member process `instance` last wrote an output.
    pub fn last_write(&self, instance: u64) -> Option<Instant> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).get(&instance).copied()
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `a` and `b` equal up to rounding: relative 1e-9 (absolute near 0).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The figures of a run, checked by [`Tally::check`].
#[derive(Debug, Default)]
pub struct Tally {
    /// Readings in the input topic.
    pub readings: u64,
    /// Output records `read_committed` sees.
    pub committed_outputs: u64,
    /// Readings they cover, counting repeats.
    pub committed_covered: u64,
    /// Readings they cover more than once (must be 0).
    pub duplicates: u64,
    /// Readings they do not cover (must be 0).
    pub missing: u64,
    /// Output records `read_uncommitted` sees besides the committed ones:
    /// those of aborted transactions.
    pub aborted_outputs: u64,
    /// Readings those cover.
    pub aborted_covered: u64,
    /// Per member process (its instance) that wrote them: outputs and
    /// readings they cover.
    pub aborted_writers: BTreeMap<u64, (u64, u64)>,
    /// Member processes that wrote committed outputs.
    pub committed_writers: u64,
    /// Sensors, with their readings.
    pub sensors: BTreeMap<String, u64>,
}

impl Tally {
    /// Tallies the input readings and the outputs each reader saw; fails
    /// on anything that is not exactly once: an output covering a reading
    /// that is not there or not its sensor's, or with figures that do not
    /// add up; a reading covered twice or never; per sensor, a mean of the
    /// committed outputs other than the mean of the readings written; a
    /// member's running figures that count something besides its committed
    /// outputs.
    pub fn check(input: &BTreeMap<At, Reading>, committed: &[(At, StageOutput)], uncommitted: &[(At, StageOutput)]) -> Result<Tally> {
        let mut t = Tally { readings: input.len() as u64, committed_outputs: committed.len() as u64, ..Tally::default() };
        for (at, o) in committed {
            check_output(input, *at, o)?;
        }
        let covered = coverage(committed);
        t.committed_covered = covered.values().sum();
        t.duplicates = covered.values().filter(|n| **n > 1).map(|n| n - 1).sum();
        t.missing = input.keys().filter(|at| !covered.contains_key(at)).count() as u64;
        let sample: Vec<_> = covered.iter().filter(|(_, n)| **n > 1).take(5).collect();
        ensure!(t.duplicates == 0, "read_committed: {} readings covered more than once, e.g. {sample:?}", t.duplicates);
        let sample: Vec<_> = input.keys().filter(|at| !covered.contains_key(at)).take(5).collect();
        ensure!(t.missing == 0, "read_committed: {} readings not covered, e.g. {sample:?}", t.missing);
        ensure!(t.committed_covered == t.readings, "read_committed covers {} readings of {}", t.committed_covered, t.readings);

        // Per sensor: the committed outputs' readings and sums are the input's.
        let mut expected: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
        for r in input.values() {
            let e = expected.entry(&r.sensor).or_default();
            e.0 += 1;
            e.1 += r.celsius;
        }
        let mut got: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
        for (_, o) in committed {
            let g = got.entry(&o.sensor).or_default();
            g.0 += o.readings;
            g.1 += o.readings_sum;
        }
        for (sensor, (n, sum)) in &expected {
            let (gn, gsum) = got.get(sensor).copied().unwrap_or_default();
            let (mean, gmean) = (sum / *n as f64, gsum / gn.max(1) as f64);
            ensure!(gn == *n && close(gmean, mean), "{sensor}: outputs count {gn} readings, mean {gmean}; written: {n}, mean {mean}");
            t.sensors.insert((*sensor).to_owned(), *n);
        }
        ensure!(got.len() == expected.len(), "outputs name sensors {:?}, readings {:?}", got.keys(), expected.keys());
        t.committed_writers = check_running_figures(committed)?;

        // What only read_uncommitted sees: the aborted transactions' outputs.
        let committed_at: BTreeSet<At> = committed.iter().map(|(at, _)| *at).collect();
        let uncommitted_at: BTreeSet<At> = uncommitted.iter().map(|(at, _)| *at).collect();
        let lost: Vec<&At> = committed_at.difference(&uncommitted_at).take(5).collect();
        ensure!(lost.is_empty(), "read_uncommitted misses committed outputs, e.g. {lost:?}");
        for (at, o) in uncommitted.iter().filter(|(at, _)| !committed_at.contains(at)) {
            check_output(input, *at, o)?;
            t.aborted_outputs += 1;
            t.aborted_covered += o.covers.len();
            let w = t.aborted_writers.entry(o.instance).or_default();
            w.0 += 1;
            w.1 += o.covers.len();
        }
        Ok(t)
    }
}

/// One output is consistent with the input: it covers readings of its
/// sensor that are there, and its count and sum are theirs.
fn check_output(input: &BTreeMap<At, Reading>, at: At, o: &StageOutput) -> Result<()> {
    let mut sum = 0.0;
    for c in o.covers.offsets() {
        let r = input.get(&c).with_context(|| format!("output {at:?} covers {c:?}, which the input does not hold"))?;
        ensure!(r.sensor == o.sensor, "output {at:?} of {} covers {c:?}, a reading of {}", o.sensor, r.sensor);
        sum += r.celsius;
    }
    ensure!(
        o.readings == o.covers.len() && close(o.readings_sum, sum),
        "output {at:?} of {} says {} readings summing to {}; it covers {} summing to {sum}",
        o.sensor,
        o.readings,
        o.readings_sum,
        o.covers.len()
    );
    Ok(())
}

/// Each member process's running figures per sensor, in commit order (one
/// output partition per sensor), add up exactly its committed outputs:
/// nothing of an aborted transaction. Returns how many processes wrote.
fn check_running_figures(committed: &[(At, StageOutput)]) -> Result<u64> {
    let mut last: BTreeMap<(&str, u64, &str), (u64, f64)> = BTreeMap::new();
    for (at, o) in committed {
        let prev = last.entry((&o.member, o.instance, &o.sensor)).or_default();
        let (count, sum) = (prev.0 + o.readings, prev.1 + o.readings_sum);
        ensure!(
            o.count == count && close(o.sum, sum) && close(o.average, sum / count as f64),
            "output {at:?} of {} by {} ({:016x}): running count {}, sum {}, average {}; its committed outputs add up to \
             {count}, {sum}",
            o.sensor,
            o.member,
            o.instance,
            o.count,
            o.sum,
            o.average
        );
        *prev = (count, sum);
    }
    Ok(last.keys().map(|(m, i, _)| (*m, *i)).collect::<BTreeSet<_>>().len() as u64)
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} readings of {} sensors; read_committed: {} outputs covering {} readings, {} duplicates, {} missing; \
             read_uncommitted besides: {} aborted outputs of {} member processes covering {} readings",
            self.readings,
            self.sensors.len(),
            self.committed_outputs,
            self.committed_covered,
            self.duplicates,
            self.missing,
            self.aborted_outputs,
            self.aborted_writers.len(),
            self.aborted_covered
        )
    }
}
