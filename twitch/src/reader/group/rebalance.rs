//! Rebalances: librdkafka's callback only records what the coordinator
//! decided; the reader carries it out on its own task, where it can wait
//! for acks and run the application's listener without blocking a thread.
//!
//! librdkafka calls the rebalance callback from inside the reader's poll and
//! then waits for the application to assign or unassign, which the reader
//! does once it has waited for in-flight records, run the
//! [`RebalanceListener`] and committed. Only while the consumer closes (on
//! drop or [`shutdown`](super::GroupReader::shutdown)) is the rebalance
//! carried out inside the callback, as nobody reads any more.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset as RdOffset, TopicPartitionList};
use tokio::sync::Notify;
use tracing::{info, warn};

use super::offsets::OffsetTracker;
use crate::reader::StartAt;
use crate::record::TopicPartition;
use crate::telemetry::{Reporter, Statistics};

/// A change of this member's partitions, as reported by
/// [`GroupReader::events`](super::GroupReader::events).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupEvent {
    /// These partitions were assigned to this member.
    Assigned(Vec<TopicPartition>),
    /// These partitions were taken away; their processed offsets were
    /// committed first (unless the assignment was lost).
    Revoked(Vec<TopicPartition>),
    /// The group coordinator reported a rebalance error.
    Error(String),
}

pub use crate::error::ListenerError;

/// Code that runs during a rebalance, on the reader's task, like Kafka's
/// `ConsumerRebalanceListener`. Both methods do nothing by default.
///
/// ```no_run
/// use futures::future::BoxFuture;
/// use twitch::reader::{ListenerError, RebalanceListener, StartAt};
/// use twitch::TopicPartition;
///
/// /// Starts every assigned partition where a database says it was left.
/// struct ResumeFromDb;
///
/// impl RebalanceListener for ResumeFromDb {
///     fn on_assigned<'a>(
///         &'a mut self,
///         assigned: &'a [TopicPartition],
///     ) -> BoxFuture<'a, Result<Vec<(TopicPartition, StartAt)>, ListenerError>> {
///         Box::pin(async move {
///             // A real sink reads these in the database.
///             Ok(assigned.iter().map(|tp| (tp.clone(), StartAt::Offset(0))).collect())
///         })
///     }
/// }
/// ```
pub trait RebalanceListener: Send + Sync {
    /// Partitions were assigned to this member. Returns where reading starts
    /// in any of them (the others start at the group's committed offset).
    /// An error leaves the assignment waiting: the read that ran the
    /// listener returns [`ErrorKind::Listener`](crate::ErrorKind::Listener), and the
    /// next read runs it again.
    fn on_assigned<'a>(
        &'a mut self,
        assigned: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<Vec<(TopicPartition, StartAt)>, ListenerError>> {
        let _ = assigned;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// These partitions are being taken away. Runs after in-flight records
    /// were acked (or the reader's revoke grace ran out), before their
    /// processed offsets are committed. `lost` is true when the member lost
    /// them without a clean revoke (it timed out of the group): nothing is
    /// committed then, as another member may own them already.
    fn on_revoked<'a>(&'a mut self, revoked: &'a [TopicPartition], lost: bool) -> BoxFuture<'a, ()> {
        let _ = (revoked, lost);
        Box::pin(async {})
    }
}

/// A rebalance the reader has still to carry out.
#[derive(Debug, Clone)]
pub(super) enum Pending {
    Assign(Vec<TopicPartition>),
    Revoke { partitions: Vec<TopicPartition>, lost: bool },
    Error(String),
}

/// Rebalances waiting for the reader, in order. The reader asks whether any
/// wait before every record: that reads the length, which changes only
/// under the lock, without taking it.
#[derive(Debug, Default)]
struct PendingQueue {
    queue: Mutex<VecDeque<Pending>>,
    len: AtomicUsize,
}

impl PendingQueue {
    fn edit<R>(&self, f: impl FnOnce(&mut VecDeque<Pending>) -> R) -> R {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let out = f(&mut queue);
        self.len.store(queue.len(), Ordering::Release);
        out
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn front(&self) -> Option<Pending> {
        self.edit(|queue| queue.front().cloned())
    }

    fn push_back(&self, pending: Pending) {
        self.edit(|queue| queue.push_back(pending));
    }

    fn pop_front(&self) {
        self.edit(VecDeque::pop_front);
    }
}

/// The consumer's context: offsets of the assigned partitions, and the
/// rebalances waiting for the reader.
pub(super) struct GroupContext {
    /// Shared with the reader's [`Acker`](super::Acker)s.
    pub(super) tracker: Arc<OffsetTracker>,
    /// False for transactional readers, whose offsets commit with the
    /// producer's transaction.
    pub(super) commits: bool,
    pending: PendingQueue,
    /// Wakes the reader when a rebalance comes in.
    pub(super) rebalanced: Notify,
    /// Set when the consumer is being closed: rebalances are then carried
    /// out in the callback.
    closing: AtomicBool,
    /// Commits made and failed, and how long they took.
    pub(super) commit_log: CommitLog,
    /// Statistics and errors, for `telemetry()`.
    pub(super) reporter: Reporter,
}

/// Commits counted as their results come in.
#[derive(Debug, Default)]
pub(super) struct CommitLog {
    pub(super) done: AtomicU64,
    pub(super) failed: AtomicU64,
    /// A periodic commit is in flight.
    busy: AtomicBool,
    /// The last commit's round trip, in microseconds.
    pub(super) last_micros: AtomicU64,
}

impl CommitLog {
    /// Starts a periodic commit; false while one is in flight.
    pub(super) fn start(&self) -> bool {
        !self.busy.swap(true, Ordering::SeqCst)
    }

    /// Whether a periodic commit is in flight.
    pub(super) fn in_flight(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// The last commit's round trip (zero before the first).
    pub(super) fn round_trip(&self) -> Duration {
        Duration::from_micros(self.last_micros.load(Ordering::Relaxed))
    }

    /// A commit sent at `started` came back.
    pub(super) fn finished(&self, started: Instant, ok: bool) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_micros.store(micros, Ordering::Relaxed);
        let counter = if ok { &self.done } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
        self.busy.store(false, Ordering::SeqCst);
    }
}

pub(super) fn tps_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements().iter().map(|e| TopicPartition::new(e.topic(), e.partition())).collect()
}

/// A partition list with these start positions (`None`: the committed one).
pub(super) fn tpl_of<'a>(partitions: impl IntoIterator<Item = (&'a TopicPartition, Option<RdOffset>)>) -> KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for (tp, offset) in partitions {
        match offset {
            Some(offset) => tpl.add_partition_offset(&tp.topic, tp.partition, offset)?,
            None => {
                tpl.add_partition(&tp.topic, tp.partition);
            }
        }
    }
    Ok(tpl)
}

/// A list of these partitions, at no particular offset.
pub(super) fn partition_list(partitions: &[TopicPartition]) -> KafkaResult<TopicPartitionList> {
    tpl_of(partitions.iter().map(|tp| (tp, None)))
}

/// A list of offsets to commit.
pub(super) fn commit_list(offsets: &[(TopicPartition, i64)]) -> KafkaResult<TopicPartitionList> {
    tpl_of(offsets.iter().map(|(tp, o)| (tp, Some(RdOffset::Offset(*o)))))
}

impl GroupContext {
    pub(super) fn new(tracker: OffsetTracker, commits: bool) -> Self {
        GroupContext {
            tracker: Arc::new(tracker),
            commits,
            pending: PendingQueue::default(),
            rebalanced: Notify::new(),
            closing: AtomicBool::new(false),
            commit_log: CommitLog::default(),
            reporter: Reporter::default(),
        }
    }

    /// The next rebalance to carry out. It stays first in line until
    /// [`carried_out`](Self::carried_out), so that a read cancelled while it
    /// carries a rebalance out (at a listener's await, say) carries it out
    /// again next time instead of leaving librdkafka waiting.
    pub(super) fn next_pending(&self) -> Option<Pending> {
        self.pending.front()
    }

    /// Whether a rebalance waits for the reader.
    pub(super) fn has_pending(&self) -> bool {
        self.pending.len() > 0
    }

    /// The rebalance from [`next_pending`](Self::next_pending) is done.
    pub(super) fn carried_out(&self) {
        self.pending.pop_front();
    }

    /// Carries out, without the reader, the rebalances it left waiting: it
    /// is being dropped, and the consumer closes next (from now on,
    /// rebalances are carried out in the callback).
    pub(super) fn settle<C: Consumer<Self>>(&self, consumer: &C) {
        self.closing.store(true, Ordering::SeqCst);
        while let Some(pending) = self.next_pending() {
            let outcome = match &pending {
                Pending::Assign(partitions) => partition_list(partitions).and_then(|tpl| assign(consumer, &tpl)),
                Pending::Revoke { partitions, .. } => partition_list(partitions).map(|tpl| self.revoke_now(consumer, &tpl)),
                Pending::Error(_) => Ok(()),
            };
            if let Err(e) = outcome {
                warn!(error = %e, "rebalance while closing failed");
            }
            self.carried_out();
        }
    }

    fn push(&self, pending: Pending) {
        self.pending.push_back(pending);
        self.rebalanced.notify_one();
    }

    /// Carries a revoke out inside the callback, while the consumer closes:
    /// commits what was processed (nobody acks any more) and unassigns.
    fn revoke_now<C: Consumer<Self>>(&self, consumer: &C, tpl: &TopicPartitionList) {
        let revoked = tps_of(tpl);
        let offsets = self.tracker.committable(Some(&revoked));
        if self.commits && !offsets.is_empty() && !consumer.assignment_lost() {
            match commit_list(&offsets).and_then(|tpl| consumer.commit(&tpl, CommitMode::Sync)) {
                Ok(()) => info!(?offsets, "committed processed offsets on close"),
                Err(e) => warn!(error = %e, "commit on close failed; those records will be read again"),
            }
        }
        let pending = self.tracker.pending_of(&revoked);
        if pending > 0 {
            warn!(pending, "closed with unprocessed records; they will be read again");
        }
        self.tracker.revoke(&revoked);
        unassign(consumer, tpl);
    }
}

/// Gives these partitions up, as the rebalance protocol wants it.
pub(super) fn unassign<C: Consumer<X>, X: ConsumerContext>(consumer: &C, tpl: &TopicPartitionList) {
    let res = match consumer.rebalance_protocol() {
        RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
        _ => consumer.unassign(),
    };
    if let Err(e) = res {
        warn!(error = %e, "unassign failed");
    }
}

/// Takes these partitions on, as the rebalance protocol wants it.
pub(super) fn assign<C: Consumer<X>, X: ConsumerContext>(consumer: &C, tpl: &TopicPartitionList) -> KafkaResult<()> {
    match consumer.rebalance_protocol() {
        RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
        _ => consumer.assign(tpl),
    }
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        self.reporter.statistics(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(%error, reason, "librdkafka error");
        self.reporter.error(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let closing = self.closing.load(Ordering::SeqCst);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS if closing => {
                if let Err(e) = assign(consumer, tpl) {
                    warn!(error = %e, "assign while closing failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.push(Pending::Assign(tps_of(tpl))),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if closing => self.revoke_now(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.push(Pending::Revoke { partitions: tps_of(tpl), lost: consumer.assignment_lost() })
            }
            other => {
                let error = KafkaError::Rebalance(RDKafkaErrorCode::from(other));
                warn!(%error, "rebalance error; giving the partitions up");
                self.tracker.revoke(&tps_of(tpl));
                unassign(consumer, tpl);
                self.push(Pending::Error(error.to_string()));
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                let done: Vec<(TopicPartition, i64)> = offsets
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        RdOffset::Offset(o) => Some((TopicPartition::new(e.topic(), e.partition()), o)),
                        _ => None,
                    })
                    .collect();
                self.tracker.committed(&done);
            }
            Err(e) => warn!(error = %e, "offset commit failed; will retry"),
        }
    }
}

/// The starts the listener chose, for the partitions assigned.
pub(super) fn starts_for(assigned: &[TopicPartition], chosen: Vec<(TopicPartition, StartAt)>) -> Vec<(&TopicPartition, Option<RdOffset>)> {
    assigned
        .iter()
        .map(|tp| (tp, chosen.iter().find(|(c, _)| c == tp).map(|(_, s)| s.to_rd())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_start_applies_only_to_its_partition() {
        let (a, b) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
        let assigned = [a.clone(), b.clone()];
        let starts = starts_for(&assigned, vec![(b.clone(), StartAt::Offset(7)), (TopicPartition::new("u", 0), StartAt::End)]);
        assert_eq!(starts, vec![(&a, None), (&b, Some(RdOffset::Offset(7)))]);
    }

    #[test]
    fn offsets_to_commit_become_a_list() {
        let tpl = commit_list(&[(TopicPartition::new("t", 2), 40)]).unwrap();
        let e = &tpl.elements()[0];
        assert_eq!((e.topic(), e.partition(), e.offset()), ("t", 2, RdOffset::Offset(40)));
        assert_eq!(tps_of(&tpl), vec![TopicPartition::new("t", 2)]);
    }

    #[test]
    fn the_pending_length_follows_the_queue() {
        let queue = PendingQueue::default();
        assert_eq!(queue.len(), 0);
        queue.push_back(Pending::Error("a".into()));
        queue.push_back(Pending::Assign(vec![TopicPartition::new("t", 0)]));
        assert_eq!(queue.len(), 2);
        assert!(matches!(queue.front(), Some(Pending::Error(e)) if e == "a"), "the first stays first until carried out");
        assert_eq!(queue.len(), 2);
        queue.pop_front();
        assert!(matches!(queue.front(), Some(Pending::Assign(_))));
        queue.pop_front();
        queue.pop_front();
        assert_eq!((queue.len(), queue.front().is_none()), (0, true));
    }
}
