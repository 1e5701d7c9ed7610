//! The producer every writer is built on: queueing records, flushing, and
//! closing it when the writer is dropped (see [`delivery`](super::delivery)
//! for the delivery reports).

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};
use serde::Serialize;
use tracing::{debug, error, warn};

use super::delivery::{flush_on_drop, send_lingering, take_failures, wait_for_reports, DeliveryTracker, Rdp};
use super::{DEFAULT_FLUSH_TIMEOUT, PRODUCER_DEFAULTS};
use crate::codec::{Format, FORMAT_HEADER};
use crate::config::ClientSettings;
use crate::error::{DeliveryFailure, Error, ErrorKind, Result};
use crate::record::{headers_size, rd_headers, Header, Offset, Record};
use crate::rt::{self, block_here, Here};

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

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
    pub(super) producer: Rdp,
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
    /// The last flush timed out: dropping the writer does not wait again.
    gave_up: AtomicBool,
    /// Set by `drop` inside a runtime, and dropped after `producer` (fields
    /// drop in order): tells the thread that closes the producer that its
    /// handle is the last one left.
    released: Option<mpsc::Sender<()>>,
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
        let tracker = DeliveryTracker::new();
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
            released: None,
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
    ///
    /// Once the record is queued, hands back the failures of earlier records
    /// reported so far, if any, as [`ErrorKind::Delivery`]: the application
    /// learns of them at once, and they (each with a copy of its record)
    /// never pile up beyond what librdkafka's queue held.
    pub(super) async fn enqueue(&mut self, out: Outgoing<'_>) -> Result<()> {
        self.queue(out).await?;
        if self.tracker().kept.0.load(Ordering::Relaxed) > 0 {
            return self.failures_so_far();
        }
        Ok(())
    }

    /// Queues one record and flushes: the flush hands back every failure,
    /// earlier records' included.
    pub(super) async fn enqueue_and_flush(&mut self, out: Outgoing<'_>) -> Result<()> {
        self.queue(out).await?;
        self.flush().await
    }

    /// Queues one record, waiting while librdkafka's queue is full.
    async fn queue(&mut self, out: Outgoing<'_>) -> Result<()> {
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

    /// The failures kept, as an error (or `Ok` if another call took them).
    #[cold]
    fn failures_so_far(&self) -> Result<()> {
        let failures = self.take_failures();
        if failures.is_empty() {
            return Ok(());
        }
        Err(ErrorKind::Delivery { failures, flush_timed_out: None, in_flight: self.in_flight() }.into())
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
        take_failures(self.tracker())
    }

    /// The result of a flush that waited for every report (`complete`) or
    /// gave up at its deadline: its failures, and whether it timed out.
    fn flush_outcome(&self, complete: bool) -> Result<()> {
        self.gave_up.store(!complete, Ordering::Relaxed);
        let failures = self.take_failures();
        let flush_timed_out = (!complete).then_some(self.flush_timeout);
        if !failures.is_empty() {
            return Err(ErrorKind::Delivery { failures, flush_timed_out, in_flight: self.in_flight() }.into());
        }
        if !complete {
            return Err(ErrorKind::FlushTimeout { timeout: self.flush_timeout, in_flight: self.in_flight() }.into());
        }
        Ok(())
    }

    /// Waits, blocking this thread, until every queued record is reported.
    /// On a current-thread runtime that blocks the runtime's only thread;
    /// it cannot deadlock, since reports come in on librdkafka's thread.
    pub(super) fn flush_blocking(&self) -> Result<()> {
        let deadline = Instant::now() + self.flush_timeout;
        let complete = block_here(|| wait_for_reports(&self.producer, self.queued, deadline));
        self.flush_outcome(complete)
    }

    /// Waits, without blocking the runtime, until every queued record is
    /// reported.
    pub(super) async fn flush(&self) -> Result<()> {
        let deadline = Instant::now() + self.flush_timeout;
        let tracker = self.tracker();
        let target = self.queued;
        let mut complete = false;
        send_lingering(&self.producer);
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

/// Dropping a writer flushes its records in flight (unless a flush already
/// timed out), then closes the producer, which joins librdkafka's polling
/// thread and destroys the client: all of it blocks. Outside a runtime it
/// runs inline; on a multi-thread runtime the flush runs in
/// `block_in_place`, so the drop returns once it is done, and the close on
/// the blocking pool; on a current-thread runtime both run on the blocking
/// pool and the drop returns at once (the runtime waits for them when it
/// shuts down).
impl Drop for WriterCore {
    fn drop(&mut self) {
        let in_flight = self.in_flight();
        let flush = in_flight > 0 && !self.gave_up.load(Ordering::Relaxed);
        if in_flight > 0 && !flush {
            error!(topic = %self.topic, in_flight, "writer dropped after a flush timed out; its records in flight are lost");
        } else if flush {
            warn!(topic = %self.topic, in_flight, "writer dropped before flush; flushing now");
        }
        if !flush {
            let kept = self.take_failures();
            if let Some(first) = kept.first() {
                error!(topic = %self.topic, failed = kept.len(), first = %first.error, "writer dropped with delivery failures nobody took; those records are lost");
            }
        }
        let (topic, target, timeout) = (self.topic.clone(), self.queued, self.flush_timeout);
        let here = rt::here();
        if here == Here::Free {
            if flush {
                flush_on_drop(&self.producer, &topic, target, timeout);
            }
            // The producer closes right here, as the fields drop.
            return;
        }
        if flush && here == Here::MultiThread {
            tokio::task::block_in_place(|| flush_on_drop(&self.producer, &topic, target, timeout));
        }
        let producer = self.producer.clone();
        let (released, wait) = mpsc::channel::<()>();
        self.released = Some(released);
        rt::detach(move || {
            if flush && here == Here::CurrentThread {
                flush_on_drop(&producer, &topic, target, timeout);
            }
            // Returns once the writer's own handle is dropped: this one is
            // the last, so dropping it closes the producer here.
            let _ = wait.recv();
            drop(producer);
        });
    }
}
