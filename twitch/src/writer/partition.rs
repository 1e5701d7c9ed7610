//! A writer to one partition.

use std::time::Duration;

use serde::Serialize;

use super::core::{Outgoing, WriterCore};
use crate::codec::Format;
use crate::config::ClientSettings;
use crate::error::{DeliveryFailure, Error, Result};
use crate::record::{Offset, Record, TopicPartition};

/// Writes records to one partition of a topic.
///
/// ```no_run
/// # async fn demo() -> twitch::Result<()> {
/// use twitch::warden::KafkaCluster;
/// use twitch::{Record, TopicPartition};
///
/// let cluster = KafkaCluster::new("127.0.0.1:9092".into(), "docs".into());
/// let mut writer = cluster.get_writer_for_partition(TopicPartition::from_str("events", 0))?;
/// writer.produce(Record::new(b"hello".to_vec())).await?;
/// writer.send(&("typed", 42)).await?; // encoded with the writer's format
/// let last_offset = writer.flush_async().await?;
/// assert_eq!(writer.in_flight(), 0);
/// # Ok(()) }
/// ```
pub struct PartitionWriter {
    core: WriterCore,
    partition: i32,
}

impl std::fmt::Debug for PartitionWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionWriter")
            .field("topic", &self.core.topic)
            .field("partition", &self.partition)
            .field("format", &self.core.format)
            .finish_non_exhaustive()
    }
}

impl PartitionWriter {
    pub(crate) fn new(settings: &ClientSettings, tp: TopicPartition) -> Result<Self> {
        if tp.partition < 0 {
            return Err(Error::config(format!("partition {} of `{}` is negative", tp.partition, tp.topic)));
        }
        Ok(PartitionWriter { core: WriterCore::new(settings, &tp.topic)?, partition: tp.partition })
    }

    /// Queues a record for the partition; waits only while the send queue is
    /// full. The payload goes out byte for byte. Returns
    /// [`ErrorKind::Delivery`](crate::ErrorKind::Delivery) when earlier
    /// records failed, once the record is queued (see
    /// [failed deliveries](crate::writer#failed-deliveries)).
    pub async fn produce(&mut self, record: Record) -> Result<()> {
        self.core.enqueue(Outgoing::record(Some(self.partition), &record)).await
    }

    /// Same as [`produce`](Self::produce), without taking the record:
    /// librdkafka copies what it needs, so one record and its buffers can be
    /// refilled for the next, with no allocation per record.
    ///
    /// ```no_run
    /// # async fn demo(writer: &mut twitch::PartitionWriter) -> twitch::Result<()> {
    /// let mut record = twitch::Record::new(Vec::with_capacity(64));
    /// for i in 0..1_000u32 {
    ///     record.payload.clear();
    ///     record.payload.extend_from_slice(&i.to_be_bytes());
    ///     writer.produce_ref(&record).await?;
    /// }
    /// writer.flush_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn produce_ref(&mut self, record: &Record) -> Result<()> {
        self.core.enqueue(Outgoing::record(Some(self.partition), record)).await
    }

    /// Queues a record and waits until it (and every record before it) is
    /// acknowledged; returns what [`flush_async`](Self::flush_async) returns.
    pub async fn produce_and_flush(&mut self, record: Record) -> Result<Option<Offset>> {
        self.core.enqueue_and_flush(Outgoing::record(Some(self.partition), &record)).await?;
        Ok(self.core.last_offset())
    }

    /// Encodes `value` with the writer's format (naming it in a header if
    /// [`with_format_header`](Self::with_format_header)), and queues it;
    /// fails as [`produce`](Self::produce) does.
    pub async fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.core.send_typed(Some(self.partition), None, value).await
    }

    /// Waits until every queued record is acknowledged, without blocking the
    /// async runtime. Returns the offset of the last record acknowledged on
    /// the partition (`None` while none was), or every record that failed as
    /// [`ErrorKind::Delivery`](crate::ErrorKind::Delivery), or [`ErrorKind::FlushTimeout`](crate::ErrorKind::FlushTimeout) after the
    /// [flush timeout](Self::with_flush_timeout) (both at once: a `Delivery`
    /// error whose `flush_timed_out` is set).
    pub async fn flush_async(&mut self) -> Result<Option<Offset>> {
        self.core.flush().await?;
        Ok(self.core.last_offset())
    }

    /// Blocking form of [`flush_async`](Self::flush_async), kept for code
    /// written against the original twitch. Safe to call inside a Tokio
    /// runtime: on a multi-threaded runtime it moves the runtime's other
    /// tasks off this thread while it waits. On a current-thread runtime it
    /// cannot return before its result is known, so it blocks the runtime's
    /// only thread (its other tasks wait) until the flush ends; it does not
    /// deadlock, since delivery reports come in on librdkafka's own thread.
    /// Prefer `flush_async` there.
    pub fn flush(&mut self) -> Result<Option<Offset>> {
        self.core.flush_blocking()?;
        Ok(self.core.last_offset())
    }

    /// Records the broker acknowledged so far.
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

    /// Takes the delivery failures reported and not yet handed back (by a
    /// `produce`, a flush or this), without waiting.
    pub fn take_failures(&mut self) -> Vec<DeliveryFailure> {
        self.core.take_failures()
    }

    /// Sets the format [`send`](Self::send) encodes with.
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

    /// The topic written to.
    pub fn topic(&self) -> &str {
        &self.core.topic
    }

    /// The partition written to.
    pub fn partition(&self) -> i32 {
        self.partition
    }
}
