//! The apps' metrics, served in Prometheus' text format (OpenMetrics) at
//! `/metrics`.
//!
//! ```
//! use monitor::metrics::{Metrics, ProducerMetrics};
//!
//! let mut metrics = Metrics::default();
//! let producer = ProducerMetrics::register(&mut metrics);
//! producer.produced.inc();
//! assert!(metrics.encode().contains("temps_readings_produced_total 1"));
//! ```

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use twitch::reader::{PartitionLag, ReaderCounters};
use twitch::telemetry::Report;
use twitch::writer::WriterCounters;

/// The content type of the text format.
const CONTENT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A gauge of `f64` values.
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// The registry of an app's metrics, all named `temps_*`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics { registry: Registry::with_prefix("temps") }
    }
}

impl Metrics {
    /// Every metric in the text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// A router that serves them at `GET /metrics`.
    pub fn router(self) -> Router {
        let metrics = Arc::new(self);
        Router::new().route("/metrics", get(move || async move { ([(CONTENT_TYPE, CONTENT)], metrics.encode()) }))
    }
}

/// Moves a counter up to `total` (a count kept elsewhere).
fn advance(counter: &Counter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

/// Labels of a partition.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: String,
}

/// Labels of a broker.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BrokerLabels {
    broker: String,
}

/// Labels of a sensor.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SensorLabels {
    sensor: String,
}

/// From librdkafka's statistics and errors (see [`twitch::telemetry`]):
/// per broker, round-trip time and requests in flight; the client's errors
/// and throttling.
#[derive(Debug, Clone, Default)]
pub struct KafkaMetrics {
    rtt: Family<BrokerLabels, FloatGauge>,
    in_flight: Family<BrokerLabels, Gauge>,
    throttle: FloatGauge,
    errors: Counter,
}

impl KafkaMetrics {
    fn register(metrics: &mut Metrics) -> Self {
        let m = KafkaMetrics::default();
        let r = &mut metrics.registry;
        r.register("kafka_broker_rtt_seconds", "Average request round trip per broker (librdkafka statistics)", m.rtt.clone());
        r.register("kafka_broker_requests_in_flight", "Requests waiting for a broker's response", m.in_flight.clone());
        r.register("kafka_throttle_seconds", "Longest average throttle a broker imposed", m.throttle.clone());
        r.register("kafka_client_errors", "Errors librdkafka reported (it retries them)", m.errors.clone());
        m
    }

    /// Takes in a client's report.
    pub fn observe(&self, report: &Report) {
        for b in report.brokers() {
            let labels = BrokerLabels { broker: b.name };
            if let Some(rtt) = b.rtt {
                self.rtt.get_or_create(&labels).set(rtt.as_secs_f64());
            }
            self.in_flight.get_or_create(&labels).set(b.in_flight);
        }
        self.throttle.set(report.throttled().as_secs_f64());
        advance(&self.errors, report.errors);
    }

    /// Takes in every report of a client until it is gone, in a task of its
    /// own.
    pub fn follow(&self, mut reports: watch::Receiver<Report>) {
        let me = self.clone();
        tokio::spawn(async move {
            while reports.changed().await.is_ok() {
                let report = reports.borrow_and_update().clone();
                me.observe(&report);
            }
        });
    }
}

/// `temp_gen`'s metrics.
#[derive(Debug, Clone)]
pub struct ProducerMetrics {
    /// Readings handed to the writer.
    pub produced: Counter,
    /// Readings the broker acknowledged.
    pub delivered: Counter,
    /// Readings whose delivery failed.
    pub failed: Counter,
    /// Readings sent and not yet acknowledged.
    pub in_flight: Gauge,
    /// The producer's librdkafka statistics.
    pub kafka: KafkaMetrics,
}

impl ProducerMetrics {
    /// Registers them in `metrics`.
    pub fn register(metrics: &mut Metrics) -> Self {
        let m = ProducerMetrics {
            produced: Counter::default(),
            delivered: Counter::default(),
            failed: Counter::default(),
            in_flight: Gauge::default(),
            kafka: KafkaMetrics::register(metrics),
        };
        let r = &mut metrics.registry;
        r.register("readings_produced", "Readings handed to the writer", m.produced.clone());
        r.register("readings_delivered", "Readings the broker acknowledged", m.delivered.clone());
        r.register("delivery_failures", "Readings whose delivery failed", m.failed.clone());
        r.register("readings_in_flight", "Readings sent and not yet acknowledged", m.in_flight.clone());
        m
    }

    /// Takes in the writer's counters.
    pub fn observe(&self, counters: WriterCounters) {
        advance(&self.produced, counters.queued);
        advance(&self.delivered, counters.delivered);
        advance(&self.failed, counters.failed);
        self.in_flight.set(i64::try_from(counters.in_flight).unwrap_or(i64::MAX));
    }
}

/// `average_temp`'s metrics.
#[derive(Debug, Clone)]
pub struct ConsumerMetrics {
    /// Readings consumed and processed.
    pub consumed: Counter,
    /// Readings that could not be decoded (parked or skipped).
    pub undecodable: Counter,
    /// The current average per sensor.
    averages: Family<SensorLabels, FloatGauge>,
    /// The current average over all sensors.
    overall: FloatGauge,
    lag: Family<PartitionLabels, Gauge>,
    commits: Counter,
    commit_failures: Counter,
    commit_latency: FloatGauge,
    pending: Gauge,
    /// The consumer's librdkafka statistics.
    pub kafka: KafkaMetrics,
}

impl ConsumerMetrics {
    /// Registers them in `metrics`.
    pub fn register(metrics: &mut Metrics) -> Self {
        let m = ConsumerMetrics {
            consumed: Counter::default(),
            undecodable: Counter::default(),
            averages: Family::default(),
            overall: FloatGauge::default(),
            lag: Family::default(),
            commits: Counter::default(),
            commit_failures: Counter::default(),
            commit_latency: FloatGauge::default(),
            pending: Gauge::default(),
            kafka: KafkaMetrics::register(metrics),
        };
        let r = &mut metrics.registry;
        r.register("readings_consumed", "Readings consumed and processed", m.consumed.clone());
        r.register("readings_undecodable", "Readings that could not be decoded", m.undecodable.clone());
        r.register("average_celsius", "Running average per sensor", m.averages.clone());
        r.register("overall_average_celsius", "Running average over all sensors", m.overall.clone());
        r.register("consumer_lag", "Records not yet committed by the group, per partition", m.lag.clone());
        r.register("commits", "Offset commits the broker confirmed", m.commits.clone());
        r.register("commit_failures", "Offset commits that failed", m.commit_failures.clone());
        r.register("commit_latency_seconds", "Round trip of the last offset commit", m.commit_latency.clone());
        r.register("readings_pending", "Readings read and not yet processed", m.pending.clone());
        m
    }

    /// A reading of `sensor` was processed: the sensor's and the overall
    /// average now.
    pub fn reading(&self, sensor: &str, sensor_mean: f64, overall_mean: f64) {
        self.consumed.inc();
        self.averages.get_or_create(&SensorLabels { sensor: sensor.to_owned() }).set(sensor_mean);
        self.overall.set(overall_mean);
    }

    /// Takes in the reader's counters.
    pub fn observe(&self, counters: ReaderCounters) {
        advance(&self.commits, counters.commits);
        advance(&self.commit_failures, counters.commit_failures);
        if let Some(latency) = counters.last_commit {
            self.commit_latency.set(latency.as_secs_f64());
        }
        self.pending.set(i64::try_from(counters.pending).unwrap_or(i64::MAX));
    }

    /// Takes in the lag of the reader's partitions.
    pub fn observe_lag(&self, lag: &[PartitionLag]) {
        // Partitions revoked since the last look-up are no longer ours.
        self.lag.clear();
        for p in lag {
            let labels = PartitionLabels { topic: p.partition.topic.clone(), partition: p.partition.partition.to_string() };
            self.lag.get_or_create(&labels).set(p.lag);
        }
    }
}
