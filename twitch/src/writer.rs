//! Writers: records in, acknowledged by the broker.
//!
//! * [`PartitionWriter`] writes to one partition (what the seed code uses).
//! * [`KeyedWriter`] spreads records over a topic's partitions by key, with
//!   Kafka's default murmur2 partitioner, so other clients agree.
//!
//! Both are idempotent by default (`enable.idempotence=true`, `acks=all`).
//! `produce` returns once librdkafka has queued the record; when that queue is
//! full it waits (backpressure) instead of failing. `flush` waits for the
//! broker's acknowledgements and returns every record that was not delivered,
//! with its reason, as [`Error::Delivery`].

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde::Serialize;
use tokio::sync::Notify;
use tracing::{debug, error, warn};

use crate::codec::{Format, FORMAT_HEADER};
use crate::config::ClientSettings;
use crate::error::{DeliveryFailure, Error, Result};
use crate::rt::block_here;
use crate::record::{headers_size, rd_headers, Header, Offset, Record, TopicPartition};

mod transactional;
pub use transactional::TransactionalWriter;

/// Producer settings twitch applies unless the user sets them.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("compression.type", "none"),
    ("partitioner", "murmur2_random"),
];

/// How long `flush` waits by default.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

/// Delivery reports land here, on librdkafka's polling thread.
#[derive(Default)]
struct DeliveryTracker {
    /// Delivery reports received, successes and failures.
    reported: AtomicU64,
    delivered: AtomicU64,
    last_offset: AtomicI64,
    failures: Mutex<Vec<DeliveryFailure>>,
    /// The report count a waiter (for queue room or a flush) waits for;
    /// `u64::MAX` when none waits. Reports before it wake nobody.
    wake_at: AtomicU64,
    /// Wakes async waiters.
    notify: Notify,
    /// Wakes blocking waiters (the synchronous `flush`).
    lock: Mutex<()>,
    reports: Condvar,
}

impl DeliveryTracker {
    /// Every one of the `queued` records handed to librdkafka has its
    /// delivery report. Counted here rather than asked of librdkafka, which
    /// still counts a record while its report is being handled.
    fn all_reported(&self, queued: u64) -> bool {
        self.reported.load(Ordering::SeqCst) >= queued
    }
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(msg) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.last_offset.fetch_max(msg.offset(), Ordering::Relaxed);
            }
            Err((err, msg)) => {
                let purged = matches!(
                    err.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
                );
                if purged {
                    // An aborted transaction drops its queued records.
                    debug!(topic = msg.topic(), partition = msg.partition(), "record purged");
                } else {
                    error!(topic = msg.topic(), partition = msg.partition(), error = %err, "record not delivered");
                }
                let failure = DeliveryFailure {
                    topic: msg.topic().to_owned(),
                    partition: (msg.partition() >= 0).then_some(msg.partition()),
                    record: Record::from_message(msg),
                    error: err.clone(),
                };
                self.failures.lock().unwrap_or_else(PoisonError::into_inner).push(failure);
            }
        }
        let reported = self.reported.fetch_add(1, Ordering::SeqCst) + 1;
        // Most reports wake nobody: a flush waits for the last one, a full
        // queue for the next one.
        if reported >= self.wake_at.load(Ordering::SeqCst) {
            self.wake_at.store(u64::MAX, Ordering::SeqCst);
            self.notify.notify_waiters();
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.reports.notify_all();
        }
    }
}

/// A record that found librdkafka's queue full, and its size.
struct Full<'a> {
    base: BaseRecord<'a, [u8], [u8]>,
    size: usize,
}

/// One record on its way into librdkafka, borrowed from the caller.
struct Outgoing<'a> {
    partition: Option<i32>,
    key: Option<&'a [u8]>,
    payload: &'a [u8],
    headers: &'a [Header],
    timestamp: Option<i64>,
    /// Format to name in the format header, for typed sends.
    format: Option<Format>,
}

impl<'a> Outgoing<'a> {
    fn record(partition: Option<i32>, r: &'a Record) -> Self {
        Outgoing {
            partition,
            key: r.key.as_deref(),
            payload: &r.payload,
            headers: &r.headers,
            timestamp: r.timestamp,
            format: None,
        }
    }

    fn typed(partition: Option<i32>, key: Option<&'a [u8]>, payload: &'a [u8], format: Option<Format>) -> Self {
        Outgoing { partition, key, payload, headers: &[], timestamp: None, format }
    }

    fn size(&self) -> usize {
        self.key.map_or(0, <[u8]>::len) + self.payload.len() + headers_size(self.headers)
    }
}

/// The producer and delivery bookkeeping that every writer shares.
struct WriterCore {
    producer: ThreadedProducer<DeliveryTracker>,
    topic: String,
    format: Format,
    /// Name the format in a header of every typed record (default false).
    format_header: bool,
    flush_timeout: Duration,
    max_message_bytes: usize,
    /// Reused encode buffer for typed sends.
    buf: Vec<u8>,
    /// Records handed to librdkafka. Only the writer's own (`&mut`) sends
    /// count them, so it needs no atomic.
    queued: u64,
    /// A flush already timed out: dropping the writer does not wait again.
    gave_up: AtomicBool,
}

impl WriterCore {
    fn new(settings: &ClientSettings, topic: &str) -> Result<Self> {
        settings.validate()?;
        crate::config::validate_topic_name(topic)?;
        let config = settings.client_config(PRODUCER_DEFAULTS);
        let max_message_bytes = config
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
        let tracker =
            DeliveryTracker { last_offset: AtomicI64::new(-1), wake_at: AtomicU64::new(u64::MAX), ..DeliveryTracker::default() };
        let producer = config
            .create_with_context(tracker)
            .map_err(|source| Error::ClientCreation { role: "producer", source })?;
        debug!(topic, "writer created");
        Ok(WriterCore {
            producer,
            topic: topic.to_owned(),
            format: Format::default(),
            format_header: false,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            max_message_bytes,
            buf: Vec::new(),
            queued: 0,
            gave_up: AtomicBool::new(false),
        })
    }

    fn tracker(&self) -> &DeliveryTracker {
        self.producer.context()
    }

    /// Waits until `ready` holds, woken once `target` delivery reports
    /// came in (and at least every `poll` as a safety net).
    async fn wait_for_deliveries(&self, target: u64, poll: Duration, mut ready: impl FnMut() -> bool) {
        let tracker = self.tracker();
        loop {
            let mut notified = pin!(tracker.notify.notified());
            notified.as_mut().enable();
            tracker.wake_at.fetch_min(target, Ordering::SeqCst);
            if ready() {
                break;
            }
            let _ = tokio::time::timeout(poll, notified).await;
        }
    }

    /// Queues one record, waiting while librdkafka's queue is full.
    async fn enqueue(&mut self, out: Outgoing<'_>) -> Result<()> {
        // Sent at once unless the queue is full. The record that waits and
        // the waiting are boxed, so that the future of every send stays
        // small (it is moved by value); for the same reason the send is a
        // statement of its own, whose temporaries are gone before the wait.
        let full = self.send_now(out)?;
        if let Some(full) = full {
            Box::pin(self.enqueue_when_room(*full)).await?;
        }
        self.queued += 1;
        Ok(())
    }

    /// Hands one record to librdkafka; gives it back if the queue is full.
    /// (One caller; inlined, so that its large `Result` is not returned
    /// through memory: 10 instructions per record less.)
    #[inline(always)]
    fn send_now<'a>(&'a self, out: Outgoing<'a>) -> Result<Option<Box<Full<'a>>>> {
        let size = out.size();
        if size > self.max_message_bytes {
            return Err(Error::RecordTooLarge { size, limit: self.max_message_bytes });
        }
        let partition = out.partition;
        let format = out.format.map(|f| (FORMAT_HEADER, f.name()));
        // `rd_headers` checks this too; checking here as well is 20
        // instructions per record less (callgrind, seed case) than leaving
        // it to the inlined check there, measured both ways.
        let headers = if out.headers.is_empty() && format.is_none() { None } else { rd_headers(out.headers, format) };
        let base = BaseRecord {
            topic: &self.topic,
            partition,
            payload: Some(out.payload),
            key: out.key,
            timestamp: out.timestamp,
            headers,
            delivery_opaque: (),
        };
        match self.producer.send(base) {
            Ok(()) => Ok(None),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), base)) => Ok(Some(Box::new(Full { base, size }))),
            Err((source, _)) => Err(self.send_error(source, partition, size)),
        }
    }

    /// Sends a record that found librdkafka's queue full, waiting for room.
    async fn enqueue_when_room(&self, full: Full<'_>) -> Result<()> {
        let Full { mut base, size } = full;
        let partition = base.partition;
        loop {
            let producer = &self.producer;
            // Wait for at least one delivery report, then retry.
            let before = self.tracker().reported.load(Ordering::SeqCst);
            self.wait_for_deliveries(before + 1, Duration::from_millis(20), || {
                self.tracker().reported.load(Ordering::Acquire) != before || producer.in_flight_count() == 0
            })
            .await;
            // The safety-net timeout also ends the wait, which is fine: retry.
            match self.producer.send(base) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => base = back,
                Err((source, _)) => return Err(self.send_error(source, partition, size)),
            }
        }
    }

    /// The error of a send librdkafka refused.
    fn send_error(&self, source: KafkaError, partition: Option<i32>, size: usize) -> Error {
        match source {
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge) => {
                Error::RecordTooLarge { size, limit: self.max_message_bytes }
            }
            source => Error::Produce { topic: self.topic.clone(), partition, source },
        }
    }

    /// Takes the failures reported so far.
    fn take_failures(&self) -> Vec<DeliveryFailure> {
        std::mem::take(&mut *self.tracker().failures.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn flush_outcome(&self, flushed: std::result::Result<(), KafkaError>) -> Result<Option<Offset>> {
        let failures = self.take_failures();
        if !failures.is_empty() {
            return Err(Error::Delivery { failures });
        }
        if let Err(e) = flushed {
            debug!(error = %e, "flush did not complete");
            self.gave_up.store(true, Ordering::Relaxed);
            return Err(Error::FlushTimeout { timeout: self.flush_timeout, in_flight: self.producer.in_flight_count() });
        }
        let last = self.tracker().last_offset.load(Ordering::Relaxed);
        Ok((last >= 0).then_some(last))
    }

    /// Asks librdkafka to send lingering batches now instead of after
    /// `linger.ms`.
    fn send_lingering(&self) {
        let _ = self.producer.flush(Duration::ZERO);
    }

    fn flush_blocking(&self) -> Result<Option<Offset>> {
        let deadline = Instant::now() + self.flush_timeout;
        let tracker = self.tracker();
        let timed_out = block_here(|| {
            self.send_lingering();
            let target = self.queued;
            let mut guard = tracker.lock.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                // Re-armed on every turn: a stale, lower target may have
                // used up the wake-up.
                tracker.wake_at.fetch_min(target, Ordering::SeqCst);
                if tracker.all_reported(target) {
                    return false;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return true;
                }
                // Woken by the last delivery report; the timeout is a safety net.
                guard = tracker
                    .reports
                    .wait_timeout(guard, left.min(Duration::from_millis(10)))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        });
        let flushed = if timed_out { Err(KafkaError::Flush(RDKafkaErrorCode::RequestTimedOut)) } else { Ok(()) };
        self.flush_outcome(flushed)
    }

    async fn flush(&self) -> Result<Option<Offset>> {
        let deadline = Instant::now() + self.flush_timeout;
        let tracker = self.tracker();
        let mut timed_out = false;
        self.send_lingering();
        let target = self.queued;
        self.wait_for_deliveries(target, Duration::from_millis(50), || {
            let done = tracker.all_reported(target);
            timed_out = !done && Instant::now() >= deadline;
            done || timed_out
        })
        .await;
        let flushed = if timed_out { Err(KafkaError::Flush(RDKafkaErrorCode::RequestTimedOut)) } else { Ok(()) };
        self.flush_outcome(flushed)
    }

    /// Encodes `value` with the writer's format into the reused buffer and
    /// queues it, naming the format in a header if the writer was asked to.
    async fn send_typed<T: Serialize + ?Sized>(&mut self, partition: Option<i32>, key: Option<&[u8]>, value: &T) -> Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let res = match self.format.encode_into(value, &mut buf) {
            Ok(()) => {
                let named = self.format_header.then_some(self.format);
                self.enqueue(Outgoing::typed(partition, key, &buf, named)).await
            }
            Err(e) => Err(e.into()),
        };
        self.buf = buf;
        res
    }
}

impl Drop for WriterCore {
    fn drop(&mut self) {
        let in_flight = self.producer.in_flight_count();
        if in_flight > 0 && self.gave_up.load(Ordering::Relaxed) {
            error!(topic = %self.topic, in_flight, "writer dropped after a flush timed out; its records in flight are lost");
        } else if in_flight > 0 {
            warn!(topic = %self.topic, in_flight, "writer dropped before flush; flushing now");
            if let Err(e) = self.flush_blocking() {
                error!(topic = %self.topic, error = %e, "records lost: writer dropped without a successful flush");
            }
        }
    }
}

macro_rules! common_writer_methods {
    () => {
        /// Waits until every queued record is acknowledged (without blocking
        /// the async runtime). Returns the offset of the last record the
        /// broker acknowledged, or every record that failed.
        pub async fn flush_async(&mut self) -> Result<Option<Offset>> {
            self.core.flush().await
        }

        /// Blocking form of [`flush_async`](Self::flush_async), kept for code
        /// written against the original twitch. Safe to call inside a Tokio
        /// runtime: on a multi-threaded runtime it moves the runtime's other
        /// tasks off this thread while it waits.
        pub fn flush(&mut self) -> Result<Option<Offset>> {
            self.core.flush_blocking()
        }

        /// Records the broker acknowledged so far.
        pub fn delivered(&self) -> u64 {
            self.core.tracker().delivered.load(Ordering::Relaxed)
        }

        /// Records queued or on the wire, not yet acknowledged.
        pub fn in_flight(&self) -> usize {
            usize::try_from(self.core.producer.in_flight_count()).unwrap_or(0)
        }

        /// Takes the delivery failures reported since the last flush, without
        /// waiting.
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
        /// false), so readers whose default format differs still decode them
        /// (a topic with records of several formats). Without it, readers
        /// decode with their own format. The header costs about 24 bytes per
        /// record and a few librdkafka allocations on each side, about
        /// 0.25 µs per record when writing and again when reading: a third of
        /// a typed bincode round trip (docs/performance.md).
        pub fn with_format_header(mut self, yes: bool) -> Self {
            self.core.format_header = yes;
            self
        }

        /// Sets how long a flush waits (default [`DEFAULT_FLUSH_TIMEOUT`]).
        pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
            self.core.flush_timeout = timeout;
            self
        }

        /// The topic written to.
        pub fn topic(&self) -> &str {
            &self.core.topic
        }
    };
}

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
    /// full. The payload goes out byte for byte.
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

    /// Queues a record and waits until it (and all before it) is acknowledged.
    pub async fn produce_and_flush(&mut self, record: Record) -> Result<Option<Offset>> {
        self.produce(record).await?;
        self.flush_async().await
    }

    /// Encodes `value` with the writer's format (naming it in a header if
    /// [`with_format_header`](Self::with_format_header)), and queues it.
    pub async fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.core.send_typed(Some(self.partition), None, value).await
    }

    /// The partition written to.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    common_writer_methods!();
}

/// Writes records to a topic, choosing each record's partition from its key
/// with Kafka's default partitioner (records without a key go to a random
/// partition).
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
        self.produce_ref(&record).await
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

    /// Queues a record and waits until it (and all before it) is acknowledged.
    pub async fn produce_and_flush(&mut self, record: Record) -> Result<Option<Offset>> {
        self.produce(record).await?;
        self.flush_async().await
    }

    /// Encodes `value` with the writer's format and queues it under `key`.
    pub async fn send_keyed<T: Serialize + ?Sized>(&mut self, key: &[u8], value: &T) -> Result<()> {
        self.core.send_typed(None, Some(key), value).await
    }

    /// Encodes `value` with the writer's format and queues it without a key.
    pub async fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.core.send_typed(None, None, value).await
    }

    common_writer_methods!();
}

