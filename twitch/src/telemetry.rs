//! What a client reports about itself: librdkafka's statistics as typed
//! values, and the errors librdkafka raised, through a
//! [`tokio::sync::watch`] channel the application subscribes to.
//!
//! Statistics cost nothing unless asked for: librdkafka gathers them only
//! when `statistics.interval.ms` is above 0, which twitch never sets by
//! itself. Ask for them with
//! [`KafkaClusterBuilder::statistics`](crate::warden::KafkaClusterBuilder::statistics)
//! (every client of the cluster) or
//! [`GroupReaderBuilder::statistics`](crate::reader::GroupReaderBuilder::statistics)
//! (one reader), then subscribe with `telemetry()` on the reader or writer.
//! Each update replaces the last one: a slow subscriber sees the newest
//! report, never a backlog.
//!
//! ```no_run
//! use std::time::Duration;
//! use twitch::warden::KafkaCluster;
//!
//! # async fn demo() -> twitch::Result<()> {
//! let cluster = KafkaCluster::builder("127.0.0.1:9092").statistics(Duration::from_secs(1)).build()?;
//! let reader = cluster.group_reader("averagers").topic("temperatures").build()?;
//! let mut reports = reader.telemetry();
//! tokio::spawn(async move {
//!     while reports.changed().await.is_ok() {
//!         let report = reports.borrow_and_update().clone();
//!         for p in report.partitions() {
//!             println!("{}/{}: lag {:?}, fetch queue {}", p.topic, p.partition, p.consumer_lag, p.fetch_queue);
//!         }
//!         for b in report.brokers() {
//!             println!("{}: rtt {:?}, {} requests in flight", b.name, b.rtt, b.in_flight);
//!         }
//!         println!("errors so far: {}, throttled {:?}", report.errors, report.throttled());
//!     }
//! });
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

pub use rdkafka::statistics::Statistics;
use rdkafka::statistics::Window;
use tokio::sync::watch;

/// Everything a client reported so far: its latest statistics and its
/// errors. Cheap to clone (the statistics are shared).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Report {
    /// librdkafka's latest statistics, all of them; `None` before the first
    /// interval, or when statistics were not asked for.
    pub statistics: Option<Arc<Statistics>>,
    /// Errors librdkafka reported so far (a broker down, a failed request,
    /// ...): it retries them by itself.
    pub errors: u64,
    /// The last of them.
    pub last_error: Option<String>,
}

/// One broker, as the statistics describe it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BrokerStats {
    /// `host:port/id`.
    pub name: String,
    /// `UP`, `DOWN`, `CONNECT`, ...
    pub state: String,
    /// Average round-trip time of requests in the last interval.
    pub rtt: Option<Duration>,
    /// Requests sent and waiting for their response.
    pub in_flight: i64,
    /// Requests waiting to be sent.
    pub queued: i64,
    /// Average time the broker throttled this client in the last interval.
    pub throttle: Option<Duration>,
    /// Transmission errors so far.
    pub tx_errors: u64,
}

/// One partition, as the statistics describe it (librdkafka's `-1`, "not
/// known", is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionStats {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Consumer: high watermark minus the committed offset.
    pub consumer_lag: Option<i64>,
    /// Consumer: records fetched and waiting to be read.
    pub fetch_queue: i64,
    /// Producer: records waiting to be sent.
    pub produce_queue: i64,
}

/// The producer's side of the statistics.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProducerStats {
    /// Records in the producer's queue (waiting or in flight).
    pub queue_depth: u64,
    /// Average batch size in bytes over the last interval, over all topics.
    pub avg_batch_bytes: Option<i64>,
    /// Average records per batch over the last interval, over all topics.
    pub avg_batch_records: Option<i64>,
    /// Transmission errors so far, over all brokers.
    pub tx_errors: u64,
}

fn avg(window: &Window) -> Option<i64> {
    (window.cnt > 0).then_some(window.avg)
}

fn micros(window: &Option<Window>) -> Option<Duration> {
    window.as_ref().and_then(avg).map(|us| Duration::from_micros(us.max(0).unsigned_abs()))
}

fn known(value: i64) -> Option<i64> {
    (value >= 0).then_some(value)
}

impl Report {
    /// Each broker the client knows (bootstrap and internal entries left
    /// out), by name.
    pub fn brokers(&self) -> Vec<BrokerStats> {
        let Some(stats) = &self.statistics else { return Vec::new() };
        let mut out: Vec<BrokerStats> = stats
            .brokers
            .values()
            .filter(|b| b.nodeid >= 0)
            .map(|b| BrokerStats {
                name: b.name.clone(),
                state: b.state.clone(),
                rtt: micros(&b.rtt),
                in_flight: b.waitresp_cnt,
                queued: b.outbuf_cnt,
                throttle: micros(&b.throttle),
                tx_errors: b.txerrs,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Each partition of each topic the client uses (librdkafka's internal
    /// partition `-1` left out), sorted.
    pub fn partitions(&self) -> Vec<PartitionStats> {
        let Some(stats) = &self.statistics else { return Vec::new() };
        let mut out: Vec<PartitionStats> = stats
            .topics
            .values()
            .flat_map(|t| t.partitions.values().map(move |p| (t, p)))
            .filter(|(_, p)| p.partition >= 0)
            .map(|(t, p)| PartitionStats {
                topic: t.topic.clone(),
                partition: p.partition,
                consumer_lag: known(p.consumer_lag),
                fetch_queue: p.fetchq_cnt,
                produce_queue: p.msgq_cnt,
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    /// The producer's queue, batches and errors; `None` without statistics
    /// or for a consumer.
    pub fn producer(&self) -> Option<ProducerStats> {
        let stats = self.statistics.as_ref().filter(|s| s.client_type == "producer")?;
        let batches: Vec<(i64, i64)> =
            stats.topics.values().filter_map(|t| Some((avg(&t.batchsize)?, avg(&t.batchcnt)?))).collect();
        let n = i64::try_from(batches.len()).unwrap_or(i64::MAX);
        let mean = |f: fn(&(i64, i64)) -> i64| (n > 0).then(|| batches.iter().map(f).sum::<i64>() / n);
        Some(ProducerStats {
            queue_depth: stats.msg_cnt,
            avg_batch_bytes: mean(|b| b.0),
            avg_batch_records: mean(|b| b.1),
            tx_errors: stats.brokers.values().map(|b| b.txerrs).sum(),
        })
    }

    /// The longest average throttle any broker imposed in the last interval
    /// (zero when none throttled).
    pub fn throttled(&self) -> Duration {
        self.brokers().iter().filter_map(|b| b.throttle).max().unwrap_or_default()
    }
}

/// Where a client's context sends its reports: one per client, created with
/// it. Without `statistics.interval.ms` librdkafka never calls
/// [`statistics`](Self::statistics), and errors are rare, so an unwatched
/// reporter costs a channel and nothing per record.
#[derive(Debug)]
pub(crate) struct Reporter {
    tx: watch::Sender<Report>,
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter { tx: watch::Sender::new(Report::default()) }
    }
}

impl Reporter {
    /// A receiver of this client's reports.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Report> {
        self.tx.subscribe()
    }

    /// librdkafka's statistics came in (on its polling thread).
    pub(crate) fn statistics(&self, statistics: Statistics) {
        let statistics = Arc::new(statistics);
        self.tx.send_modify(|r| r.statistics = Some(statistics));
    }

    /// librdkafka reported an error.
    pub(crate) fn error(&self, error: String) {
        self.tx.send_modify(|r| {
            r.errors += 1;
            r.last_error = Some(error);
        });
    }
}
