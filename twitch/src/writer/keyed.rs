//! A writer that spreads records over a topic's partitions by key.

use std::time::Duration;

use rdkafka::producer::Producer;
use serde::Serialize;

use super::core::{Outgoing, WriterCore};
use crate::codec::Format;
use crate::config::ClientSettings;
use crate::error::{DeliveryFailure, ErrorKind, Result};
use crate::record::Record;
use crate::rt::block_here;

/// How long [`KeyedWriter::refresh_partitions`] waits for the metadata.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes records to a topic, choosing each record's partition from its key
/// with Kafka's default partitioner (records without a key go to a random
/// partition).
///
/// The writer learns how many partitions the topic has from librdkafka's
/// metadata, which it refreshes every `topic.metadata.refresh.interval.ms`
/// (5 minutes by default; set it with
/// [`KafkaClusterBuilder::set`](crate::warden::KafkaClusterBuilder::set)).
/// After [`add_partitions`](crate::warden::KafkaCluster::add_partitions),
/// keys keep going to the old partitions until then, or until
/// [`refresh_partitions`](Self::refresh_partitions).
///
/// ```no_run
/// # async fn demo() -> twitch::Result<()> {
/// use twitch::warden::KafkaCluster;
/// use twitch::Record;
///
/// let cluster = KafkaCluster::new("127.0.0.1:9092".into(), "docs".into());
/// let mut writer = cluster.keyed_writer("readings")?;
/// writer.produce(Record::new(b"21.5".to_vec()).with_key("sensor-1")).await?;
/// writer.send_keyed(b"sensor-2", &21.7_f64).await?;
/// writer.flush_async().await?;
/// assert_eq!(writer.delivered(), 2);
/// # Ok(()) }
/// ```
pub struct KeyedWriter {
    core: WriterCore,
}

impl std::fmt::Debug for KeyedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedWriter")
            .field("topic", &self.core.topic)
            .field("format", &self.core.format)
            .finish_non_exhaustive()
    }
}

impl KeyedWriter {
    pub(crate) fn new(settings: &ClientSettings, topic: &str) -> Result<Self> {
        Ok(KeyedWriter { core: WriterCore::new(settings, topic)? })
    }

    /// Queues a record; its key picks the partition.
    pub async fn produce(&mut self, record: Record) -> Result<()> {
        self.core.enqueue(Outgoing::record(None, &record)).await
    }

    /// Same as [`produce`](Self::produce), without taking the record, so
    /// its buffers can be refilled for the next one.
    pub async fn produce_ref(&mut self, record: &Record) -> Result<()> {
        self.core.enqueue(Outgoing::record(None, record)).await
    }

    /// Queues a record to an explicit partition, ignoring the partitioner.
    pub async fn produce_to(&mut self, partition: i32, record: Record) -> Result<()> {
        self.core.enqueue(Outgoing::record(Some(partition), &record)).await
    }

    /// Queues a record and waits until it (and every record before it) is
    /// acknowledged.
    pub async fn produce_and_flush(&mut self, record: Record) -> Result<()> {
        // Not `produce` then flush: earlier failures returned by `produce`
        // would leave this record unflushed; the flush returns them too.
        self.core.enqueue_and_flush(Outgoing::record(None, &record)).await
    }

    /// Encodes `value` with the writer's format and queues it under `key`.
    pub async fn send_keyed<T: Serialize + ?Sized>(&mut self, key: &[u8], value: &T) -> Result<()> {
        self.core.send_typed(None, Some(key), value).await
    }

    /// Encodes `value` with the writer's format and queues it without a key.
    pub async fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.core.send_typed(None, None, value).await
    }

    /// Waits until every queued record is acknowledged, without blocking the
    /// async runtime. Fails with every record that was not delivered, as
    /// [`ErrorKind::Delivery`](crate::ErrorKind::Delivery), or with
    /// [`ErrorKind::FlushTimeout`](crate::ErrorKind::FlushTimeout) after the
    /// [flush timeout](Self::with_flush_timeout). The records went to
    /// several partitions, so there is no one last offset to return;
    /// [`delivered`](Self::delivered) counts them.
    pub async fn flush_async(&mut self) -> Result<()> {
        self.core.flush().await
    }

    /// Blocking form of [`flush_async`](Self::flush_async). Safe to call
    /// inside a Tokio runtime: on a multi-threaded runtime it moves the
    /// runtime's other tasks off this thread while it waits.
    pub fn flush(&mut self) -> Result<()> {
        self.core.flush_blocking()
    }

    /// Records the broker acknowledged so far, over all partitions.
    pub fn delivered(&self) -> u64 {
        self.core.delivered()
    }

    /// Records queued (handed to librdkafka) whose delivery report has not
    /// come in yet: 0 after a successful flush.
    pub fn in_flight(&self) -> u64 {
        self.core.in_flight()
    }

    /// Records queued, delivered, failed and in flight so far.
    pub fn counters(&self) -> super::WriterCounters {
        self.core.counters()
    }

    /// This writer's librdkafka statistics (when the cluster was built with
    /// [`statistics`](crate::warden::KafkaClusterBuilder::statistics)) and
    /// errors; see [`telemetry`](crate::telemetry).
    pub fn telemetry(&self) -> tokio::sync::watch::Receiver<crate::telemetry::Report> {
        self.core.telemetry()
    }

    /// Takes the delivery failures reported since the last flush, without
    /// waiting.
    pub fn take_failures(&mut self) -> Vec<DeliveryFailure> {
        self.core.take_failures()
    }

    /// Sets the format [`send`](Self::send) and
    /// [`send_keyed`](Self::send_keyed) encode with.
    pub fn with_format(mut self, format: Format) -> Self {
        self.core.format = format;
        self
    }

    /// Whether typed records name their format in the
    /// [`FORMAT_HEADER`](crate::codec::FORMAT_HEADER) header (default
    /// false), so readers whose default format differs still decode them (a
    /// topic with records of several formats). Without it, readers decode
    /// with their own format. The header costs about 24 bytes per record.
    pub fn with_format_header(mut self, yes: bool) -> Self {
        self.core.format_header = yes;
        self
    }

    /// Sets how long a flush waits (default
    /// [`DEFAULT_FLUSH_TIMEOUT`](super::DEFAULT_FLUSH_TIMEOUT)).
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.core.flush_timeout = timeout;
        self
    }

    /// Asks the cluster for the topic's metadata now and returns its
    /// partition count, which the writer places keys over from now on: call
    /// it after the topic grew, so that keys go where Kafka's partitioner
    /// puts them among all its partitions. Records queued before keep their
    /// partition.
    ///
    /// One metadata round trip, at most 10 s, that blocks this thread like
    /// [`flush`](Self::flush): on a multi-threaded runtime the runtime's
    /// other tasks move off it; on a current-thread runtime they wait.
    pub fn refresh_partitions(&self) -> Result<i32> {
        let topic = self.core.topic.as_str();
        let md = block_here(|| self.core.producer.client().fetch_metadata(Some(topic), REFRESH_TIMEOUT))
            .map_err(|source| ErrorKind::Metadata { source })?;
        let found = md.topics().iter().find(|t| t.name() == topic).filter(|t| t.error().is_none() && !t.partitions().is_empty());
        match found {
            Some(t) => Ok(i32::try_from(t.partitions().len()).unwrap_or(i32::MAX)),
            None => Err(ErrorKind::UnknownTopic { topic: topic.to_owned() }.into()),
        }
    }

    /// The topic written to.
    pub fn topic(&self) -> &str {
        &self.core.topic
    }
}
