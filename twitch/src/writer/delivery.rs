//! Delivery reports, counted and kept as they come in on librdkafka's
//! polling thread, and blocking waits for them.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tokio::sync::Notify;
use tracing::{debug, error};

use crate::error::DeliveryFailure;
use crate::record::Record;
use crate::telemetry::{Reporter, Statistics};

/// The number of failures kept, alone on its cache line: `enqueue` reads it
/// for every record while librdkafka's thread updates the counters beside it.
#[derive(Default)]
#[repr(align(64))]
pub(super) struct KeptCount(pub(super) AtomicUsize);

/// Delivery reports land here, on librdkafka's polling thread.
#[derive(Default)]
pub(super) struct DeliveryTracker {
    /// Delivery reports received, successes and failures.
    pub(super) reported: AtomicU64,
    pub(super) last_offset: AtomicI64,
    /// Failures not yet handed back (purged records are not kept).
    pub(super) failures: Mutex<Vec<DeliveryFailure>>,
    /// `failures.len()`, readable without the lock.
    pub(super) kept: KeptCount,
    /// The report count a waiter (for queue room or a flush) waits for;
    /// `u64::MAX` when none waits. Reports before it wake nobody.
    pub(super) wake_at: AtomicU64,
    /// Wakes async waiters.
    pub(super) notify: Notify,
    /// Wakes blocking waiters (the synchronous `flush`).
    lock: Mutex<()>,
    reports: Condvar,
    /// Delivery reports that were failures.
    pub(super) failed: AtomicU64,
    /// Statistics and errors, for `telemetry()`.
    pub(super) reporter: Reporter,
}

impl DeliveryTracker {
    pub(super) fn new() -> Self {
        DeliveryTracker { last_offset: AtomicI64::new(-1), wake_at: AtomicU64::new(u64::MAX), ..DeliveryTracker::default() }
    }

    pub(super) fn reported(&self) -> u64 {
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
                    // An aborted transaction (or a producer being destroyed)
                    // drops its queued records: they are moot, not kept.
                    debug!(topic = msg.topic(), partition = msg.partition(), "record purged");
                } else {
                    error!(topic = msg.topic(), partition = msg.partition(), error = %err, "record not delivered");
                    let failure = DeliveryFailure {
                        topic: msg.topic().to_owned(),
                        partition: (msg.partition() >= 0).then_some(msg.partition()),
                        record: Record::from_message(msg),
                        error: err.clone(),
                    };
                    let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
                    failures.push(failure);
                    self.kept.0.store(failures.len(), Ordering::Release);
                }
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

pub(super) type Rdp = ThreadedProducer<DeliveryTracker>;

/// Takes the failures `tracker` kept.
pub(super) fn take_failures(tracker: &DeliveryTracker) -> Vec<DeliveryFailure> {
    let mut failures = tracker.failures.lock().unwrap_or_else(PoisonError::into_inner);
    tracker.kept.0.store(0, Ordering::Release);
    std::mem::take(&mut *failures)
}

/// Asks librdkafka to send lingering batches now instead of after
/// `linger.ms`.
pub(super) fn send_lingering(producer: &Rdp) {
    let _ = producer.flush(Duration::ZERO);
}

/// Waits, blocking this thread, until `target` delivery reports came in
/// (true) or `deadline` passed (false).
pub(super) fn wait_for_reports(producer: &Rdp, target: u64, deadline: Instant) -> bool {
    let tracker = producer.context();
    send_lingering(producer);
    let mut guard = tracker.lock.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        // Re-armed on every turn: a stale, lower target may have used up
        // the wake-up.
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
}

/// The flush of a writer dropped with `target` records queued in all:
/// nobody is left to hand its outcome to, so it is logged.
pub(super) fn flush_on_drop(producer: &Rdp, topic: &str, target: u64, timeout: Duration) {
    let complete = wait_for_reports(producer, target, Instant::now() + timeout);
    let failures = take_failures(producer.context());
    if !failures.is_empty() {
        let first = &failures[0].error;
        error!(topic, failed = failures.len(), %first, "records lost: not delivered, flushed by a dropped writer");
    }
    if !complete {
        let in_flight = target.saturating_sub(producer.context().reported());
        error!(topic, in_flight, ?timeout, "records lost: a dropped writer's flush timed out");
    }
}
