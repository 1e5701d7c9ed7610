//! What the group reader does between records: carry out rebalances, commit
//! on its interval, pause and resume partitions for backpressure, and take
//! the next record.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use rdkafka::consumer::stream_consumer::MessageStream;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::offsets::{OffsetTracker, TrackedPartition};
use super::rebalance::{assign, commit_list, partition_list, starts_for, tpl_of, unassign, GroupContext, GroupEvent, Pending, RebalanceListener};
use crate::error::{is_transient, ErrorKind, Result, TransientLog};
use crate::record::{RecordRef, TopicPartition};

pub(super) type GroupConsumer = StreamConsumer<GroupContext>;

/// A record to hand out, with its partition's offsets.
pub(super) type NextRecord<'c> = Result<(RecordRef<'c>, Arc<TrackedPartition>)>;

/// The reader's state between records.
pub(super) struct Flow {
    /// The assigned partitions, as the reader last carried a rebalance out.
    pub(super) cursor: Cursor,
    pub(super) commit_every: Duration,
    /// When the last periodic commit started.
    pub(super) last_commit: Instant,
    /// When to look at committing next (see [`next_commit_at`]).
    pub(super) next_commit: Instant,
    pub(super) max_pending: usize,
    /// A partition reached `max_pending` unprocessed records.
    pub(super) full: bool,
    pub(super) paused: HashSet<TopicPartition>,
    /// Stop at each revoke once with [`ErrorKind::Revoking`] (transactional
    /// readers, until they shut down).
    pub(super) hold_revokes: bool,
    /// [`ErrorKind::Revoking`] was returned for the revoke first in line:
    /// the next read carries it out.
    pub(super) revoke_announced: bool,
    pub(super) transient: TransientLog,
    pub(super) revoke_grace: Duration,
    pub(super) listener: Option<Box<dyn RebalanceListener>>,
    /// Where rebalance events go, once the application asked for them.
    pub(super) events: Option<mpsc::Sender<GroupEvent>>,
}

/// The reader's copy of the assignment, refreshed by the reader whenever it
/// changes the assignment, so that handing a record out takes no tracker
/// lock.
#[derive(Debug, Default)]
pub(super) struct Cursor {
    partitions: Vec<Arc<TrackedPartition>>,
}

impl Cursor {
    /// Copies the tracker's assignment.
    pub(super) fn refresh(&mut self, tracker: &OffsetTracker) {
        self.partitions.clone_from(&tracker.list());
    }

    /// The tracked partition of a record, if it is assigned. `topic` is
    /// one of the reader's names, which the tracker shares: mostly the same
    /// `Arc`, so the names need no comparing.
    pub(super) fn find(&self, topic: &Arc<str>, partition: i32) -> Option<&Arc<TrackedPartition>> {
        self.partitions
            .iter()
            .find(|p| p.partition() == partition && (Arc::ptr_eq(p.topic(), topic) || **p.topic() == **topic))
    }
}

/// When the periodic commit after one that started at `started` and took
/// `round_trip` is due: `every` after it started, and no sooner than its own
/// round trip after it came back.
///
/// Commits go to the group coordinator on the connection that carries the
/// member's heartbeats, and a broker answers a connection's requests in
/// order: a heartbeat sent during a commit waits for it. When a loaded
/// broker takes seconds per commit, back-to-back commits (the next one as
/// soon as the last came back) keep that connection busy all the time, and
/// every heartbeat waits behind one; one that waits longer than the session
/// timeout throws the member out of the group and the group rebalances,
/// over and over. Spaced like this, commits take at most half of the
/// connection's time, and half as much of the broker's.
pub(super) fn next_commit_at(started: Instant, round_trip: Duration, every: Duration) -> Instant {
    started + every.max(round_trip.saturating_mul(2))
}

/// Commits `offsets` and waits for the broker, on a blocking thread (after
/// the periodic commit in flight, if any, so that offsets never go back).
pub(super) async fn commit_sync(consumer: &Arc<GroupConsumer>, offsets: Vec<(TopicPartition, i64)>) -> Result<()> {
    let tpl = commit_list(&offsets).map_err(|source| ErrorKind::Commit { source })?;
    let log = &consumer.context().commit_log;
    let waited = Instant::now();
    while log.in_flight() && waited.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let member = Arc::clone(consumer);
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || member.commit(&tpl, CommitMode::Sync))
        .await
        .map_err(|e| ErrorKind::Task(e.to_string()))?;
    log.finished(started, result.is_ok());
    result.map_err(|source| ErrorKind::Commit { source })?;
    consumer.context().tracker.committed(&offsets);
    Ok(())
}

impl Flow {
    /// Carries out the rebalances waiting for the reader. A transactional
    /// reader stops at a revoke once, with [`ErrorKind::Revoking`], so that
    /// the application ends its transaction while the partitions are still
    /// its own; the next call carries the revoke out.
    pub(super) async fn carry_out_pending(&mut self, consumer: &Arc<GroupConsumer>) -> Result<()> {
        while let Some(pending) = consumer.context().next_pending() {
            if let Pending::Revoke { partitions, .. } = &pending {
                if self.hold_revokes && !self.revoke_announced {
                    self.revoke_announced = true;
                    return Err(ErrorKind::Revoking { partitions: partitions.clone() }.into());
                }
            }
            self.carry_out(consumer, pending).await?;
            self.revoke_announced = false;
            consumer.context().carried_out();
        }
        Ok(())
    }

    /// Commits when due and pauses or resumes partitions for backpressure.
    pub(super) fn commit_and_pace(&mut self, consumer: &Arc<GroupConsumer>) -> Result<()> {
        if consumer.context().commits && Instant::now() >= self.next_commit {
            self.commit_in_background(consumer);
        }
        if self.full || !self.paused.is_empty() {
            self.pause_or_resume(consumer)?;
        }
        Ok(())
    }

    /// The next record, in place, with its partition's offsets (where the
    /// caller records it handed out or processed), if one is ready and
    /// nothing else is to be done first: commits when due and applies
    /// backpressure, then takes a record from `stream` without waiting.
    /// `None` when the reader has to wait (for a record, or to carry a
    /// rebalance out) or took a record it skips: then
    /// [`wait_for_record`](Self::wait_for_record).
    pub(super) fn ready_record<'c>(
        &mut self,
        consumer: &'c Arc<GroupConsumer>,
        topics: &'c [Arc<str>],
        stream: &mut MessageStream<'c, GroupContext>,
    ) -> Option<NextRecord<'c>> {
        if consumer.context().has_pending() {
            return None;
        }
        if let Err(e) = self.commit_and_pace(consumer) {
            return Some(Err(e));
        }
        let msg = stream.next().now_or_never()?;
        self.take(msg, topics)
    }

    /// What the reader makes of a message from the stream: a record to hand
    /// out, an error, or `None` for a record it skips or an error it rides
    /// out.
    fn take<'c>(
        &mut self,
        msg: Option<KafkaResult<BorrowedMessage<'c>>>,
        topics: &'c [Arc<str>],
    ) -> Option<NextRecord<'c>> {
        match msg? {
            Ok(msg) => {
                let (topic, tracked) = self.partition_of(&msg, topics)?;
                Some(Ok((RecordRef::new(msg, topic), tracked)))
            }
            Err(source) if is_transient(&source) => {
                self.transient.report(&source);
                None
            }
            Err(source) => Some(Err(ErrorKind::Consume { source }.into())),
        }
    }

    /// The next record when none was ready: carries rebalances out and
    /// waits for one.
    pub(super) async fn wait_for_record<'c>(
        &mut self,
        consumer: &'c Arc<GroupConsumer>,
        topics: &'c [Arc<str>],
        stream: &mut MessageStream<'c, GroupContext>,
    ) -> NextRecord<'c> {
        loop {
            self.carry_out_pending(consumer).await?;
            if let Some(next) = self.ready_record(consumer, topics, stream) {
                return next;
            }
            if consumer.context().has_pending() {
                continue;
            }
            let msg = self.wait_for_message(consumer, stream).await;
            if let Some(next) = self.take(msg, topics) {
                return next;
            }
        }
    }

    /// Waits for a record, or for a reason to look again (`None`): a
    /// rebalance, a commit due, or an ack while partitions are paused.
    async fn wait_for_message<'c>(
        &self,
        consumer: &'c GroupConsumer,
        stream: &mut MessageStream<'c, GroupContext>,
    ) -> Option<KafkaResult<BorrowedMessage<'c>>> {
        let context = consumer.context();
        let paused = !self.paused.is_empty();
        let commit_at = tokio::time::Instant::from_std(self.next_commit);
        tokio::select! {
            msg = stream.next() => msg,
            () = context.rebalanced.notified() => None,
            () = context.tracker.acked(), if paused => None,
            () = tokio::time::sleep_until(commit_at), if context.commits => None,
        }
    }

    /// The topic name to hand `msg` out with (the reader's copy) and its
    /// partition's offsets; `None` for a record of a partition not assigned
    /// (any more), which is skipped: it is read again by whoever owns the
    /// partition. The caller records what became of the record there.
    fn partition_of<'t>(&self, msg: &BorrowedMessage<'_>, topics: &'t [Arc<str>]) -> Option<(&'t Arc<str>, Arc<TrackedPartition>)> {
        let partition = msg.partition();
        let topic = match topics {
            [only] => Some(only),
            all => all.iter().find(|t| ***t == *msg.topic()),
        };
        let Some((topic, tracked)) = topic.and_then(|topic| Some((topic, self.cursor.find(topic, partition)?))) else {
            debug!(topic = msg.topic(), partition, offset = msg.offset(), "record of a partition not assigned; skipped");
            return None;
        };
        Some((topic, Arc::clone(tracked)))
    }

    /// Records that `offset` of `tracked` is handed to the application, to
    /// be acked later.
    pub(super) fn handed_out(&mut self, tracked: &TrackedPartition, offset: i64) {
        self.full |= tracked.handed_out(offset) >= self.max_pending;
    }

    /// Starts the commit clock again: the next periodic commit is due
    /// `commit_every` from now.
    pub(super) fn committed_now(&mut self) {
        self.last_commit = Instant::now();
        self.next_commit = self.last_commit + self.commit_every;
    }

    /// Sends the processed offsets to the broker without waiting for it:
    /// on a blocking thread, where the result and its round trip are
    /// counted (librdkafka reports an asynchronous commit's result to
    /// nobody). One at a time: while one is in flight, the next waits, and
    /// after a slow one it waits as long again ([`next_commit_at`]).
    fn commit_in_background(&mut self, consumer: &Arc<GroupConsumer>) {
        let now = Instant::now();
        let log = &consumer.context().commit_log;
        if log.in_flight() {
            self.next_commit = now + self.commit_every;
            return;
        }
        let due = next_commit_at(self.last_commit, log.round_trip(), self.commit_every);
        if now < due {
            self.next_commit = due;
            return;
        }
        self.committed_now();
        let offsets = consumer.context().tracker.committable(None);
        if offsets.is_empty() || !log.start() {
            return;
        }
        let tpl = match commit_list(&offsets) {
            Ok(tpl) => tpl,
            Err(e) => {
                log.finished(self.last_commit, false);
                return warn!(error = %e, "periodic commit failed; will retry");
            }
        };
        let (member, started) = (Arc::clone(consumer), self.last_commit);
        tokio::task::spawn_blocking(move || {
            let result = member.commit(&tpl, CommitMode::Sync);
            let context = member.context();
            context.commit_log.finished(started, result.is_ok());
            match result {
                Ok(()) => {
                    context.tracker.committed(&offsets);
                    debug!(?offsets, "committed");
                }
                Err(e) => warn!(error = %e, "periodic commit failed; will retry"),
            }
        });
    }

    /// Pauses partitions with too many unprocessed records and resumes
    /// paused ones that are down to half of that; acks of the paused ones
    /// wake the reader.
    fn pause_or_resume(&mut self, consumer: &GroupConsumer) -> Result<()> {
        self.full = false;
        let tracker = &consumer.context().tracker;
        let assigned = tracker.watch_waiting_by_partition();
        self.paused.retain(|tp| assigned.iter().any(|(a, _)| a == tp));
        let (mut pause, mut resume) = (Vec::new(), Vec::new());
        for (tp, waiting) in assigned {
            if !self.paused.contains(&tp) && waiting >= self.max_pending {
                let unprocessed = tracker.pending_of(std::slice::from_ref(&tp));
                if unprocessed * 2 < waiting {
                    // Most of them are processed: they wait behind a record
                    // that is not, and nothing past it can be committed.
                    let first = tracker.first_unprocessed(&tp);
                    warn!(partition = %tp, first_unprocessed = ?first, unprocessed, waiting, "pausing: records wait behind one not processed yet (ack it, or mark it processed)");
                }
                pause.push(tp);
            } else if self.paused.contains(&tp) && waiting <= self.max_pending / 2 {
                resume.push(tp);
            }
        }
        if !pause.is_empty() {
            debug!(partitions = ?pause, "pausing: too many records wait to be committed");
            partition_list(&pause)
                .and_then(|tpl| consumer.pause(&tpl))
                .map_err(|source| ErrorKind::Subscription { operation: "pause", source })?;
            self.paused.extend(pause);
        }
        if !resume.is_empty() {
            debug!(partitions = ?resume, "resuming");
            partition_list(&resume)
                .and_then(|tpl| consumer.resume(&tpl))
                .map_err(|source| ErrorKind::Subscription { operation: "resume", source })?;
            for tp in &resume {
                self.paused.remove(tp);
            }
        }
        tracker.watch_only(&self.paused);
        Ok(())
    }

    async fn carry_out(&mut self, consumer: &Arc<GroupConsumer>, pending: Pending) -> Result<()> {
        match pending {
            Pending::Assign(partitions) => self.assign(consumer, partitions).await,
            Pending::Revoke { partitions, lost } => {
                if let Err(e) = self.give_up(consumer, &partitions, lost).await {
                    warn!(error = %e, "commit on revoke failed; those records will be read again");
                }
                let tpl = partition_list(&partitions).map_err(|source| ErrorKind::Subscription { operation: "unassign", source })?;
                unassign(&**consumer, &tpl);
                info!(?partitions, "partitions revoked");
                self.emit(GroupEvent::Revoked(partitions));
                Ok(())
            }
            Pending::Error(error) => {
                self.cursor.refresh(&consumer.context().tracker);
                self.emit(GroupEvent::Error(error));
                Ok(())
            }
        }
    }

    async fn assign(&mut self, consumer: &Arc<GroupConsumer>, partitions: Vec<TopicPartition>) -> Result<()> {
        let context = consumer.context();
        let chosen = match self.listener.as_mut() {
            Some(listener) => match listener.on_assigned(&partitions).await {
                Ok(chosen) => chosen,
                Err(source) => return Err(ErrorKind::Listener { stage: "on_assigned", source }.into()),
            },
            None => Vec::new(),
        };
        let tpl = tpl_of(starts_for(&partitions, chosen)).map_err(|source| ErrorKind::Subscription { operation: "assign", source })?;
        context.tracker.assign(&partitions);
        self.cursor.refresh(&context.tracker);
        assign(&**consumer, &tpl).map_err(|source| ErrorKind::Subscription { operation: "assign", source })?;
        // librdkafka keeps the application's pause flag on a partition across
        // assignments: one paused for backpressure when it was revoked would
        // never be fetched again. Nothing of a new assignment is paused.
        partition_list(&partitions)
            .and_then(|tpl| consumer.resume(&tpl))
            .map_err(|source| ErrorKind::Subscription { operation: "resume", source })?;
        info!(?partitions, "partitions assigned");
        self.emit(GroupEvent::Assigned(partitions));
        Ok(())
    }

    /// Gives partitions up as a revoke does: waits up to the revoke grace
    /// for their in-flight records, runs the listener, commits what was
    /// processed (unless `lost`), and stops tracking them; the error is the
    /// commit's. The consumer still has to unassign them.
    pub(super) async fn give_up(&mut self, consumer: &Arc<GroupConsumer>, partitions: &[TopicPartition], lost: bool) -> Result<()> {
        let context = consumer.context();
        if !lost {
            self.wait_for_acks(context, partitions).await;
        }
        if let Some(listener) = self.listener.as_mut() {
            listener.on_revoked(partitions, lost).await;
        }
        let offsets = context.tracker.committable(Some(partitions));
        let mut committed = Ok(());
        if context.commits && !lost && !offsets.is_empty() {
            committed = commit_sync(consumer, offsets.clone()).await;
            if committed.is_ok() {
                info!(?offsets, "committed processed offsets of partitions given up");
            }
        }
        let unprocessed = context.tracker.pending_of(partitions);
        if unprocessed > 0 {
            warn!(unprocessed, "partitions given up with unprocessed records; they will be read again");
        }
        context.tracker.revoke(partitions);
        self.cursor.refresh(&context.tracker);
        self.paused.retain(|tp| !partitions.contains(tp));
        committed
    }

    /// Waits until every record handed out of `partitions` is acked, or the
    /// revoke grace runs out.
    async fn wait_for_acks(&self, context: &GroupContext, partitions: &[TopicPartition]) {
        let deadline = tokio::time::Instant::now() + self.revoke_grace;
        while context.tracker.watch_pending_of(partitions) > 0 {
            if tokio::time::timeout_at(deadline, context.tracker.acked()).await.is_err() {
                break;
            }
        }
    }

    fn emit(&mut self, event: GroupEvent) {
        let Some(events) = &self.events else { return };
        match events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => warn!(?event, "rebalance events are not being read; event dropped"),
            Err(mpsc::error::TrySendError::Closed(_)) => self.events = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_commits_go_every_commit_interval() {
        let (t, every) = (Instant::now(), Duration::from_secs(1));
        assert_eq!(next_commit_at(t, Duration::ZERO, every), t + every);
        assert_eq!(next_commit_at(t, Duration::from_millis(20), every), t + every);
        assert_eq!(next_commit_at(t, Duration::from_millis(500), every), t + every);
    }

    /// The soak's finding: a full-speed producer made a broker take 5.5 s per
    /// commit; the next commit went out as soon as that one came back, the
    /// member's heartbeats waited behind them for up to 5.9 s, and with a
    /// 6 s session timeout the member was thrown out of the group.
    #[test]
    fn a_slow_commit_leaves_the_coordinator_connection_idle_as_long_again() {
        let (t, every) = (Instant::now(), Duration::from_secs(1));
        let round_trip = Duration::from_millis(5_500);
        let next = next_commit_at(t, round_trip, every);
        assert_eq!(next.duration_since(t + round_trip), round_trip, "idle after the commit for as long as it took");
    }
}
