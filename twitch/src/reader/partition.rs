//! Reading chosen partitions, without a consumer group.

use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::TopicPartitionList;
use serde::de::DeserializeOwned;
use tracing::debug;

use super::{decode_ref, decode_value, undecodable, Decoded, Decoding, StartAt, CONSUMER_DEFAULTS};
use crate::codec::Format;
use crate::config::ClientSettings;
use crate::error::{is_transient, Error, ErrorKind, Result, TransientLog};
use crate::record::{shared_topic, ConsumedRecord, RecordRef, TopicPartition};
use crate::config::validate_topic_name;
use crate::telemetry::{Report, Reporter, Statistics};

/// Logs librdkafka's errors, except the end-of-partition events that
/// `stop_at_end` asks for, and passes statistics and errors on.
#[derive(Default)]
struct ReaderContext {
    reporter: Reporter,
}

impl ClientContext for ReaderContext {
    fn stats(&self, statistics: Statistics) {
        self.reporter.statistics(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::PartitionEOF)) {
            debug!(reason, "end of partition");
        } else {
            tracing::error!(%error, reason, "librdkafka error");
            self.reporter.error(format!("{error}: {reason}"));
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// Builds a [`PartitionReader`]; get one from
/// [`KafkaCluster::partition_reader`](crate::warden::KafkaCluster::partition_reader).
#[derive(Debug, Clone)]
pub struct PartitionReaderBuilder {
    settings: ClientSettings,
    partitions: Vec<(TopicPartition, Option<StartAt>)>,
    start: StartAt,
    stop_at_end: bool,
    decoding: Decoding,
}

impl PartitionReaderBuilder {
    pub(crate) fn new(settings: ClientSettings) -> Self {
        PartitionReaderBuilder {
            settings,
            partitions: Vec::new(),
            start: StartAt::Beginning,
            stop_at_end: false,
            decoding: Decoding::default(),
        }
    }

    /// Reads this partition, from the reader's start position.
    pub fn partition(mut self, tp: TopicPartition) -> Self {
        self.partitions.push((tp, None));
        self
    }

    /// Reads this partition from `start`.
    pub fn partition_from(mut self, tp: TopicPartition, start: StartAt) -> Self {
        self.partitions.push((tp, Some(start)));
        self
    }

    /// Where partitions without their own start position begin (default:
    /// the beginning).
    pub fn start(mut self, start: StartAt) -> Self {
        self.start = start;
        self
    }

    /// Ends the stream once every partition is read up to the end it had
    /// when reading caught up with it (default: run forever).
    ///
    /// librdkafka reports the end of a partition by its number only, so a
    /// reader that stops at the end cannot read the same partition number
    /// of two topics ([`build`](Self::build) says so); use a reader per
    /// topic for that.
    pub fn stop_at_end(mut self, stop: bool) -> Self {
        self.stop_at_end = stop;
        self
    }

    /// Format for records that do not name one (default bincode).
    pub fn format(mut self, format: Format) -> Self {
        self.decoding.format = format;
        self
    }

    /// Whether typed reads look at each record's headers (default true): to
    /// follow a [`FORMAT_HEADER`](crate::codec::FORMAT_HEADER) and to carry the
    /// headers in [`RecordMeta::headers`](crate::RecordMeta::headers). Turn it
    /// off when the writers set no headers (twitch's do not, by default):
    /// every record is then decoded with [`format`](Self::format), `headers`
    /// stays empty, and typed reads skip librdkafka's header parse. Reads of
    /// raw records keep their headers either way.
    pub fn typed_headers(mut self, yes: bool) -> Self {
        self.decoding.headers = yes;
        self
    }

    /// Any librdkafka consumer setting, for example `isolation.level`.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.settings = self.settings.set(key, value);
        self
    }

    /// Creates the consumer and assigns the partitions.
    pub fn build(self) -> Result<PartitionReader> {
        self.settings.validate()?;
        if self.partitions.is_empty() {
            return Err(Error::config("a partition reader needs at least one partition"));
        }
        if self.stop_at_end {
            let mut read: Vec<(i32, &str)> = self.partitions.iter().map(|(tp, _)| (tp.partition, tp.topic.as_str())).collect();
            read.sort_unstable();
            read.dedup();
            if let Some(twice) = read.windows(2).find(|w| w[0].0 == w[1].0).map(|w| w[0].0) {
                return Err(Error::config(format!(
                    "stop_at_end cannot tell apart the ends of partition {twice} of several topics \
                     (librdkafka names only the number); read each topic with its own reader"
                )));
            }
        }
        let mut tpl = TopicPartitionList::new();
        let mut assigned: Vec<Assigned> = Vec::with_capacity(self.partitions.len());
        for (tp, start) in &self.partitions {
            validate_topic_name(&tp.topic)?;
            tpl.add_partition_offset(&tp.topic, tp.partition, start.unwrap_or(self.start).to_rd())
                .map_err(|source| ErrorKind::Subscription { operation: "assign", source })?;
            let topic = shared_topic(assigned.iter().map(|a| &a.topic), &tp.topic);
            assigned.push(Assigned { topic, partition: tp.partition, next: -1, done: false });
        }
        let eof = if self.stop_at_end { "true" } else { "false" };
        let mut config = self.settings.client_config(CONSUMER_DEFAULTS);
        config.set("enable.partition.eof", eof);
        // librdkafka's assign needs a group id; this one is never joined and
        // nothing is committed to it.
        if self.settings.get("group.id").is_none() {
            config.set("group.id", format!("twitch-partition-reader-{}", std::process::id()));
        }
        let consumer: StreamConsumer<ReaderContext> = config
            .create_with_context(ReaderContext::default())
            .map_err(|source| ErrorKind::ClientCreation { role: "consumer", source })?;
        consumer.assign(&tpl).map_err(|source| ErrorKind::Subscription { operation: "assign", source })?;
        debug!(partitions = self.partitions.len(), "partition reader assigned");
        Ok(PartitionReader {
            consumer,
            decoding: self.decoding,
            stop_at_end: self.stop_at_end,
            one_topic: assigned.windows(2).all(|w| w[0].topic == w[1].topic),
            assigned,
            transient: TransientLog::default(),
        })
    }
}

/// Reads explicitly assigned partitions as an async stream.
///
/// ```no_run
/// # async fn demo() -> twitch::Result<()> {
/// use futures::StreamExt;
/// use twitch::{warden::KafkaCluster, reader::StartAt, TopicPartition};
///
/// let cluster = KafkaCluster::new("127.0.0.1:9092".into(), "docs".into());
/// let mut reader = cluster
///     .partition_reader()
///     .partition(TopicPartition::new("events", 0))
///     .start(StartAt::Beginning)
///     .stop_at_end(true)
///     .build()?;
/// let mut records = reader.stream();
/// while let Some(record) = records.next().await {
///     let record = record?;
///     println!("{}@{}: {} bytes", record.partition, record.offset, record.payload().len());
/// }
/// # Ok(()) }
/// ```
pub struct PartitionReader {
    consumer: StreamConsumer<ReaderContext>,
    decoding: Decoding,
    stop_at_end: bool,
    assigned: Vec<Assigned>,
    /// Every assigned partition is of one topic: a record is then found by
    /// its partition number alone, without asking librdkafka for its topic
    /// (a C string to measure and check as UTF-8 per record).
    one_topic: bool,
    transient: TransientLog,
}

/// One assigned partition: a handful per reader, so a scan beats hashing.
#[derive(Debug)]
struct Assigned {
    topic: Arc<str>,
    partition: i32,
    /// Next offset to read (-1 before the first record).
    next: i64,
    /// Read to its end (with `stop_at_end`).
    done: bool,
}

impl Assigned {
    fn is(&self, topic: &str, partition: i32) -> bool {
        self.partition == partition && *self.topic == *topic
    }
}

impl std::fmt::Debug for PartitionReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionReader")
            .field("partitions", &self.assigned)
            .field("decoding", &self.decoding)
            .field("stop_at_end", &self.stop_at_end)
            .finish_non_exhaustive()
    }
}

impl PartitionReader {
    /// The next record, read in place (no copy); `None` once every partition
    /// is done (with [`stop_at_end`](PartitionReaderBuilder::stop_at_end)).
    ///
    /// ```no_run
    /// # async fn demo(reader: &mut twitch::PartitionReader) -> twitch::Result<()> {
    /// let mut bytes = 0;
    /// while let Some(record) = reader.next_ref().await {
    ///     bytes += record?.payload().len();
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn next_ref(&mut self) -> Option<Result<RecordRef<'_>>> {
        loop {
            if self.stop_at_end && self.assigned.iter().all(|a| a.done) {
                return None;
            }
            match self.consumer.recv().await {
                Ok(msg) => {
                    let partition = msg.partition();
                    let found = if self.one_topic {
                        self.assigned.iter().position(|a| a.partition == partition)
                    } else {
                        self.assigned.iter().position(|a| a.is(msg.topic(), partition))
                    };
                    let Some(at) = found else {
                        // Not one of ours; librdkafka assigns exactly what we asked.
                        debug!(topic = msg.topic(), partition, "record of an unassigned partition; skipped");
                        continue;
                    };
                    let slot = &mut self.assigned[at];
                    slot.next = msg.offset() + 1;
                    return Some(Ok(RecordRef::new(msg, &slot.topic)));
                }
                Err(KafkaError::PartitionEOF(partition)) => {
                    // The error names only the partition number, which
                    // `build` made unique among the partitions read.
                    for a in self.assigned.iter_mut().filter(|a| a.partition == partition && !a.done) {
                        debug!(topic = %a.topic, partition, "partition read to its end");
                        a.done = true;
                    }
                }
                Err(source) if is_transient(&source) => self.transient.report(&source),
                Err(source) => return Some(Err(ErrorKind::Consume { source }.into())),
            }
        }
    }

    /// The next record, as an owned copy.
    pub async fn next(&mut self) -> Option<Result<ConsumedRecord>> {
        Some(self.next_ref().await?.map(|r| r.detach()))
    }

    /// The next record decoded as `T`, in place: the payload is never copied.
    pub async fn next_typed<T: DeserializeOwned>(&mut self) -> Option<Result<Decoded<T>>> {
        let decoding = self.decoding;
        Some(self.next_ref().await?.and_then(|r| decode_ref(decoding, &r).map_err(|source| undecodable(&r, source))))
    }

    /// The next record's value alone, decoded in place:
    /// [`next_typed`](Self::next_typed) without the record's metadata, so
    /// the cheapest typed read.
    ///
    /// ```no_run
    /// # async fn demo(reader: &mut twitch::PartitionReader) -> twitch::Result<()> {
    /// let mut sum = 0.0;
    /// while let Some(celsius) = reader.next_value::<f64>().await {
    ///     sum += celsius?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn next_value<T: DeserializeOwned>(&mut self) -> Option<Result<T>> {
        let decoding = self.decoding;
        Some(self.next_ref().await?.and_then(|r| decode_value(decoding, &r).map_err(|source| undecodable(&r, source))))
    }

    /// The records as a stream of owned copies.
    pub fn stream(&mut self) -> BoxStream<'_, Result<ConsumedRecord>> {
        futures::stream::unfold(self, |reader| async move { reader.next().await.map(|r| (r, reader)) }).boxed()
    }

    /// The records decoded as `T`; a record that does not decode is an
    /// [`ErrorKind::Decode`](crate::ErrorKind::Decode) item carrying it, and the stream goes on.
    pub fn typed<T: DeserializeOwned + Send>(&mut self) -> BoxStream<'_, Result<Decoded<T>>> {
        futures::stream::unfold(self, |reader| async move { reader.next_typed().await.map(|r| (r, reader)) }).boxed()
    }

    /// This reader's librdkafka statistics (when the cluster was built with
    /// [`statistics`](crate::warden::KafkaClusterBuilder::statistics)) and
    /// errors; see [`telemetry`](crate::telemetry).
    pub fn telemetry(&self) -> tokio::sync::watch::Receiver<Report> {
        self.consumer.context().reporter.subscribe()
    }

    /// Offset of the next record to be read in `tp`, once one was read.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.assigned
            .iter()
            .find(|a| a.is(&tp.topic, tp.partition))
            .map(|a| a.next)
            .filter(|o| *o >= 0)
    }
}
