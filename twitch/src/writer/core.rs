//! The producer and delivery bookkeeping every writer is built on.

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

use super::{DEFAULT_FLUSH_TIMEOUT, PRODUCER_DEFAULTS};
use crate::codec::{Format, FORMAT_HEADER};
use crate::config::ClientSettings;
use crate::error::{DeliveryFailure, Error, ErrorKind, Result};
use crate::record::{headers_size, rd_headers, Header, Offset, Record};
use crate::rt::block_here;
use crate::telemetry::{Reporter, Statistics};

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

/// Delivery reports land here, on librdkafka's polling thread.
#[derive(Default)]
pub(super) struct DeliveryTracker {
    /// Delivery reports received, successes and failures.
    reported: AtomicU64,
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
    /// Delivery reports that were failures.
    failed: AtomicU64,
    /// Statistics and errors, for `telemetry()`.
    pub(super) reporter: Reporter,
}

impl DeliveryTracker {
    fn reported(&self) -> u64 {
        self.reported.load(Ordering::SeqCst)
    }
}

impl ClientContext for DeliveryTracker {
    fn stats(&self, statistics: Statistics) {
        self.reporter.statistics(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        error!(%error, reason, "librdkafka error");
        self.reporter.error(format!("{error}: {reason}"));
    }
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(msg) => {
                self.last_offset.fetch_max(msg.offset(), Ordering::Relaxed);
            }
            Err((err, msg)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
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
        // A flush waits for the last report, a full queue for the next one.
        if reported >= self.wake_at.load(Ordering::SeqCst) {
            self.wake_at.store(u64::MAX, Ordering::SeqCst);
            self.notify.notify_waiters();
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.reports.notify_all();
        }
    }
}

/// One record on its way into librdkafka, borrowed from the caller.
pub(super) struct Outgoing<'a> {
    partition: Option<i32>,
    key: Option<&'a [u8]>,
    payload: &'a [u8],
    headers: &'a [Header],
    timestamp: Option<i64>,
    /// Format to name in the format header, for typed sends.
    format: Option<Format>,
}

impl<'a> Outgoing<'a> {
    /// `record`, to `partition` or (`None`) to the partition its key picks.
    pub(super) fn record(partition: Option<i32>, r: &'a Record) -> Self {
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
///
/// "In flight" is counted here and nowhere else: records handed to
/// librdkafka (`queued`) minus the delivery reports received.
/// librdkafka's own count (`rd_kafka_outq_len`) also holds requests, events
/// and records whose report is still being handled, so it can stay above
/// zero after every record of ours was reported.
pub(super) struct WriterCore {
    pub(super) producer: ThreadedProducer<DeliveryTracker>,
    pub(super) topic: String,
    pub(super) format: Format,
    /// Name the format in a header of every typed record (default false).
    pub(super) format_header: bool,
    pub(super) flush_timeout: Duration,
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
    pub(super) fn new(settings: &ClientSettings, topic: &str) -> Result<Self> {
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
            .map_err(|source| ErrorKind::ClientCreation { role: "producer", source })?;
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

    /// Records acknowledged by the broker so far.
    pub(super) fn delivered(&self) -> u64 {
        // Failures are counted before their report.
        let reported = self.tracker().reported();
        reported.saturating_sub(self.failed())
    }

    /// Delivery reports that were failures so far.
    pub(super) fn failed(&self) -> u64 {
        self.tracker().failed.load(Ordering::Relaxed)
    }

    /// Records handed to librdkafka so far.
    pub(super) fn queued(&self) -> u64 {
        self.queued
    }

    /// Records handed to librdkafka whose delivery report has not come in.
    pub(super) fn in_flight(&self) -> u64 {
        self.queued.saturating_sub(self.tracker().reported())
    }

    /// What this writer counted so far.
    pub(super) fn counters(&self) -> super::WriterCounters {
        super::WriterCounters {
            queued: self.queued(),
            delivered: self.delivered(),
            failed: self.failed(),
            in_flight: self.in_flight(),
        }
    }

    /// This producer's statistics and errors.
    pub(super) fn telemetry(&self) -> tokio::sync::watch::Receiver<crate::telemetry::Report> {
        self.tracker().reporter.subscribe()
    }

    /// The highest offset the broker acknowledged so far, on any partition.
    pub(super) fn last_offset(&self) -> Option<Offset> {
        let last = self.tracker().last_offset.load(Ordering::Relaxed);
        (last >= 0).then_some(last)
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
    /// librdkafka refuses a record over `message.max.bytes` itself.
    pub(super) async fn enqueue(&mut self, out: Outgoing<'_>) -> Result<()> {
        let format = out.format.map(|f| (FORMAT_HEADER, f.name()));
        let mut base = BaseRecord {
            topic: &self.topic,
            partition: out.partition,
            payload: Some(out.payload),
            key: out.key,
            timestamp: out.timestamp,
            headers: rd_headers(out.headers, format),
            delivery_opaque: (),
        };
        loop {
            match self.producer.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    base = back;
                    self.wait_for_room().await;
                }
                Err((source, _)) => return Err(self.send_error(source, &out)),
            }
        }
        self.queued += 1;
        Ok(())
    }

    /// Waits after librdkafka found its queue full: until the next delivery
    /// report frees a slot, or briefly if none of our records is in flight
    /// (librdkafka frees a reported record's slot just after its report).
    async fn wait_for_room(&self) {
        let before = self.tracker().reported();
        if self.queued <= before {
            tokio::time::sleep(Duration::from_millis(1)).await;
            return;
        }
        self.wait_for_deliveries(before + 1, Duration::from_millis(20), || self.tracker().reported() != before).await;
    }

    /// The error of a send librdkafka refused.
    fn send_error(&self, source: KafkaError, out: &Outgoing<'_>) -> Error {
        match source {
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge) => {
                ErrorKind::RecordTooLarge { size: out.size(), limit: self.max_message_bytes }.into()
            }
            source => ErrorKind::Produce { topic: self.topic.clone(), partition: out.partition, source }.into(),
        }
    }

    /// Takes the failures reported so far.
    pub(super) fn take_failures(&self) -> Vec<DeliveryFailure> {
        std::mem::take(&mut *self.tracker().failures.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The result of a flush that waited for every report (`complete`) or
    /// gave up at its deadline.
    fn flush_outcome(&self, complete: bool) -> Result<()> {
        let failures = self.take_failures();
        if !failures.is_empty() {
            return Err(ErrorKind::Delivery { failures }.into());
        }
        if !complete {
            self.gave_up.store(true, Ordering::Relaxed);
            return Err(ErrorKind::FlushTimeout { timeout: self.flush_timeout, in_flight: self.in_flight() }.into());
        }
        Ok(())
    }

    /// Asks librdkafka to send lingering batches now instead of after
    /// `linger.ms`.
    fn send_lingering(&self) {
        let _ = self.producer.flush(Duration::ZERO);
    }

    /// Waits, blocking this thread, until every queued record is reported.
    pub(super) fn flush_blocking(&self) -> Result<()> {
        let deadline = Instant::now() + self.flush_timeout;
        let tracker = self.tracker();
        let target = self.queued;
        let complete = block_here(|| {
            self.send_lingering();
            let mut guard = tracker.lock.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                // Re-armed on every turn: a stale, lower target may have
                // used up the wake-up.
                tracker.wake_at.fetch_min(target, Ordering::SeqCst);
                if tracker.reported() >= target {
                    return true;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                // Woken by the last delivery report; the timeout is a safety net.
                guard = tracker
                    .reports
                    .wait_timeout(guard, left.min(Duration::from_millis(10)))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        });
        self.flush_outcome(complete)
    }

    /// Waits, without blocking the runtime, until every queued record is
    /// reported.
    pub(super) async fn flush(&self) -> Result<()> {
        let deadline = Instant::now() + self.flush_timeout;
        let tracker = self.tracker();
        let target = self.queued;
        let mut complete = false;
        self.send_lingering();
        self.wait_for_deliveries(target, Duration::from_millis(50), || {
            complete = tracker.reported() >= target;
            complete || Instant::now() >= deadline
        })
        .await;
        self.flush_outcome(complete)
    }

    /// Encodes `value` with the writer's format into the reused buffer and
    /// queues it, naming the format in a header if the writer was asked to.
    pub(super) async fn send_typed<T: Serialize + ?Sized>(
        &mut self,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: &T,
    ) -> Result<()> {
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
        let in_flight = self.in_flight();
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

