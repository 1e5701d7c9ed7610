//! Watching a group reader from another task: its counters, its lag and its
//! librdkafka statistics, without borrowing the reader.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset as RdOffset, TopicPartitionList};
use tokio::sync::watch;

use super::flow::GroupConsumer;
use super::rebalance::partition_list;
use super::GroupReader;
use crate::error::{ErrorKind, Result};
use crate::record::TopicPartition;
use crate::telemetry::Report;

/// How long one lag look-up waits for the broker.
const LAG_TIMEOUT: Duration = Duration::from_secs(5);

/// A group's position in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: TopicPartition,
    /// The group's committed offset (the next record it will read), if any.
    pub committed: Option<i64>,
    /// Oldest offset stored.
    pub low_watermark: i64,
    /// Offset the next record written will get.
    pub high_watermark: i64,
    /// Records not yet consumed by the group.
    pub lag: i64,
}

impl PartitionLag {
    /// The lag of `partition`, whose committed offset is in `committed`
    /// (counted from the low watermark when there is none).
    pub(crate) fn of(partition: TopicPartition, committed: &TopicPartitionList, low: i64, high: i64) -> Self {
        let offset = committed.find_partition(&partition.topic, partition.partition).and_then(|e| match e.offset() {
            RdOffset::Offset(o) => Some(o),
            _ => None,
        });
        let from = offset.unwrap_or(low).max(low);
        PartitionLag { partition, committed: offset, low_watermark: low, high_watermark: high, lag: (high - from).max(0) }
    }
}

/// What a group reader counted so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ReaderCounters {
    /// Records handed out and not yet processed.
    pub pending: usize,
    /// Commits the broker confirmed.
    pub commits: u64,
    /// Commits that failed (they are retried with the next one).
    pub commit_failures: u64,
    /// How long the last commit took, from sending it to its result.
    pub last_commit: Option<Duration>,
}

/// A handle on a [`GroupReader`] for another task (a metrics endpoint, a
/// page): it does not keep the reader alive, and once the reader is gone
/// its counters are zero and its lag empty. Get one with
/// [`GroupReader::monitor`].
///
/// ```no_run
/// # async fn demo(reader: &twitch::GroupReader) -> twitch::Result<()> {
/// let monitor = reader.monitor();
/// tokio::spawn(async move {
///     loop {
///         tokio::time::sleep(std::time::Duration::from_secs(1)).await;
///         let Ok(lag) = monitor.lag().await else { continue };
///         for p in lag {
///             println!("{}: lag {}", p.partition, p.lag);
///         }
///         println!("{} commits", monitor.counters().commits);
///     }
/// });
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ReaderMonitor {
    consumer: Weak<GroupConsumer>,
    reports: watch::Receiver<Report>,
}

impl GroupReader {
    /// A handle to watch this reader from another task: counters, lag,
    /// statistics.
    pub fn monitor(&self) -> ReaderMonitor {
        ReaderMonitor { consumer: Arc::downgrade(self.consumer()), reports: self.telemetry() }
    }

    /// This reader's librdkafka statistics (when asked for with
    /// [`statistics`](super::GroupReaderBuilder::statistics)) and errors;
    /// see [`telemetry`](crate::telemetry).
    pub fn telemetry(&self) -> watch::Receiver<Report> {
        self.consumer().context().reporter.subscribe()
    }

    /// Records pending and commits made so far.
    pub fn counters(&self) -> ReaderCounters {
        counters_of(self.consumer())
    }
}

fn counters_of(consumer: &GroupConsumer) -> ReaderCounters {
    let context = consumer.context();
    let log = &context.commit_log;
    let micros = log.last_micros.load(Ordering::Relaxed);
    ReaderCounters {
        pending: context.tracker.total_pending(),
        commits: log.done.load(Ordering::Relaxed),
        commit_failures: log.failed.load(Ordering::Relaxed),
        last_commit: (log.done.load(Ordering::Relaxed) + log.failed.load(Ordering::Relaxed) > 0)
            .then(|| Duration::from_micros(micros)),
    }
}

impl ReaderMonitor {
    /// The reader's counters (all zero once it is gone).
    pub fn counters(&self) -> ReaderCounters {
        self.consumer.upgrade().map(|c| counters_of(&c)).unwrap_or_default()
    }

    /// The reader's statistics and errors.
    pub fn telemetry(&self) -> watch::Receiver<Report> {
        self.reports.clone()
    }

    /// The lag of each partition assigned to the reader: the partition's
    /// high watermark minus the group's committed offset (from its low
    /// watermark when nothing is committed). Asks the broker, on a blocking
    /// thread.
    pub async fn lag(&self) -> Result<Vec<PartitionLag>> {
        let Some(consumer) = self.consumer.upgrade() else { return Ok(Vec::new()) };
        tokio::task::spawn_blocking(move || lag_of(&consumer))
            .await
            .map_err(|e| ErrorKind::Task(e.to_string()))?
    }
}

fn lag_of(consumer: &GroupConsumer) -> Result<Vec<PartitionLag>> {
    let assigned = consumer.context().tracker.assigned();
    if assigned.is_empty() {
        return Ok(Vec::new());
    }
    let admin = |operation| move |source| ErrorKind::Admin { operation, source };
    let tpl = partition_list(&assigned).map_err(admin("list partitions"))?;
    let committed = consumer.committed_offsets(tpl, LAG_TIMEOUT).map_err(admin("fetch committed offsets"))?;
    let mut out = Vec::with_capacity(assigned.len());
    for tp in assigned {
        let (low, high) =
            consumer.fetch_watermarks(&tp.topic, tp.partition, LAG_TIMEOUT).map_err(admin("fetch watermarks"))?;
        out.push(PartitionLag::of(tp, &committed, low, high));
    }
    Ok(out)
}
