//! Which offsets may be committed: per partition, only the contiguous
//! prefix of what the application marked processed.
//!
//! Each assigned partition is one [`TrackedPartition`] behind its own mutex:
//! the reader records each record it hands out there, and the record's
//! [`Ack`](super::Ack) marks it processed. A new assignment of a partition is
//! a new `TrackedPartition`, so acks from before a revoke never touch it.
//!
//! A reader that waits for acks (backpressure, revoke) first watches the
//! partitions it waits on: their acks wake it, and acks of the others cost
//! no wake-up. Watching and counting what is unprocessed happen under the
//! partition's lock, so no ack falls between them unseen.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::record::{shared_topic, TopicPartition};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The offsets of one partition, as the reader and the acks change them.
#[derive(Debug)]
struct Offsets {
    /// Set on revoke: acks of its records are void from then on.
    revoked: bool,
    /// Offsets handed out from the first unprocessed one on, ascending;
    /// `true` once processed. Processed offsets at the front are dropped.
    window: VecDeque<(i64, bool)>,
    /// Entries of `window` not yet processed.
    unprocessed: usize,
    /// One past the highest offset handed out (`None` before the first).
    next: Option<i64>,
    /// The last offset committed (`-1` for none).
    committed: i64,
    /// The reader waits for acks of this partition: each one wakes it.
    watched: bool,
}

impl Offsets {
    /// Records that `offset` was handed out. An offset handed out before (a
    /// record read again) keeps its place and state.
    fn hand_out(&mut self, offset: i64) {
        if self.next.is_none_or(|next| offset >= next) {
            self.window.push_back((offset, false));
            self.unprocessed += 1;
            self.next = Some(offset + 1);
        }
    }

    /// Records that `offset` was handed out and processed at once.
    fn hand_out_processed(&mut self, offset: i64) {
        if self.window.is_empty() && self.next.is_none_or(|next| offset >= next) {
            // Nothing before it waits: the processed prefix simply grows.
            self.next = Some(offset + 1);
        } else {
            self.hand_out(offset);
            self.process(offset);
        }
    }

    /// Marks `offset` processed; false if it is not waiting to be.
    fn process(&mut self, offset: i64) -> bool {
        // Acks mostly come in order: the front is the usual place.
        let at = match self.window.front() {
            Some((first, _)) if *first == offset => 0,
            _ => match self.window.binary_search_by_key(&offset, |(o, _)| *o) {
                Ok(at) => at,
                Err(_) => return false,
            },
        };
        let Some(entry) = self.window.get_mut(at) else { return false };
        if entry.1 {
            return false;
        }
        entry.1 = true;
        self.unprocessed -= 1;
        while self.window.front().is_some_and(|(_, done)| *done) {
            self.window.pop_front();
        }
        true
    }

    /// Records handed out that wait to be committed: from the first
    /// unprocessed one on, processed or not. Backpressure counts these, not
    /// the unprocessed ones: behind one record that is never acked, every
    /// record acked later still waits (and takes memory), so the partition
    /// pauses once `max_pending` wait, instead of reading on for ever.
    fn waiting(&self) -> usize {
        self.window.len()
    }

    /// The offset to commit: the first unprocessed one, or one past the last
    /// handed out when all are processed; `None` when that is committed
    /// already or nothing was handed out.
    fn committable(&self) -> Option<i64> {
        let offset = self.window.front().map(|(o, _)| *o).or(self.next)?;
        (offset > self.committed).then_some(offset)
    }
}

/// One assigned partition: shared by the tracker, the reader and the acks
/// of its records.
#[derive(Debug)]
pub(crate) struct TrackedPartition {
    topic: Arc<str>,
    partition: i32,
    offsets: Mutex<Offsets>,
    /// Wakes a reader waiting for acks (backpressure, revoke).
    acked: Arc<Notify>,
}

impl TrackedPartition {
    fn new(topic: Arc<str>, partition: i32, acked: Arc<Notify>) -> Self {
        let offsets =
            Offsets { revoked: false, window: VecDeque::new(), unprocessed: 0, next: None, committed: -1, watched: false };
        TrackedPartition { topic, partition, offsets: Mutex::new(offsets), acked }
    }

    pub(crate) fn topic(&self) -> &Arc<str> {
        &self.topic
    }

    pub(crate) fn partition(&self) -> i32 {
        self.partition
    }

    pub(crate) fn is(&self, topic: &str, partition: i32) -> bool {
        self.partition == partition && *self.topic == *topic
    }

    pub(crate) fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }

    /// Records that `offset` was handed out; returns the partition's
    /// records waiting to be committed, this one included (see
    /// [`Offsets::waiting`]).
    pub(crate) fn handed_out(&self, offset: i64) -> usize {
        let mut offsets = lock(&self.offsets);
        offsets.hand_out(offset);
        offsets.waiting()
    }

    /// Marks `offset` processed and wakes the reader if it watches this
    /// partition; false when the partition was revoked since (the ack is
    /// void) or the offset is not waiting to be processed.
    pub(crate) fn processed(&self, offset: i64) -> bool {
        let (counted, watched) = {
            let mut offsets = lock(&self.offsets);
            (!offsets.revoked && offsets.process(offset), offsets.watched)
        };
        if watched {
            self.acked.notify_one();
        }
        counted
    }

    /// Records that `offset` was handed out and processed in place, by the
    /// reader itself (`for_each_ref`): one step, as nothing can commit in
    /// between.
    pub(crate) fn processed_in_place(&self, offset: i64) {
        let mut offsets = lock(&self.offsets);
        if !offsets.revoked {
            offsets.hand_out_processed(offset);
        }
    }

    fn pending(&self) -> usize {
        lock(&self.offsets).unprocessed
    }

    /// Starts or stops waking the reader on acks; returns the unprocessed
    /// records and the records waiting to be committed, counted as the
    /// watch starts.
    fn watch(&self, on: bool) -> (usize, usize) {
        let mut offsets = lock(&self.offsets);
        offsets.watched = on;
        (offsets.unprocessed, offsets.waiting())
    }

    /// The first record handed out and not processed yet.
    fn first_unprocessed(&self) -> Option<i64> {
        lock(&self.offsets).window.front().map(|(o, _)| *o)
    }

    fn committable(&self) -> Option<i64> {
        lock(&self.offsets).committable()
    }
}

/// Offsets of every assigned partition.
#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    partitions: Mutex<Vec<Arc<TrackedPartition>>>,
    /// Topic names to share with the reader's records.
    topics: Vec<Arc<str>>,
    acked: Arc<Notify>,
}

impl OffsetTracker {
    /// A tracker whose partitions share these topic names.
    pub(crate) fn new(topics: &[Arc<str>]) -> Self {
        OffsetTracker { topics: topics.to_vec(), ..Self::default() }
    }

    /// Completes at the next ack of a watched partition (or at once if one
    /// came since the last wake-up).
    pub(crate) async fn acked(&self) {
        self.acked.notified().await;
    }

    pub(super) fn list(&self) -> MutexGuard<'_, Vec<Arc<TrackedPartition>>> {
        lock(&self.partitions)
    }

    /// Starts tracking newly assigned partitions.
    pub(crate) fn assign(&self, tps: &[TopicPartition]) {
        let mut list = self.list();
        for tp in tps {
            Self::remove(&mut list, tp);
            let topic = shared_topic(self.topics.iter().chain(list.iter().map(|p| &p.topic)), &tp.topic);
            list.push(Arc::new(TrackedPartition::new(topic, tp.partition, Arc::clone(&self.acked))));
        }
    }

    fn remove(list: &mut Vec<Arc<TrackedPartition>>, tp: &TopicPartition) {
        list.retain(|p| {
            let gone = p.is(&tp.topic, tp.partition);
            if gone {
                lock(&p.offsets).revoked = true;
            }
            !gone
        });
    }

    /// Stops tracking revoked partitions; acks of their records become void.
    pub(crate) fn revoke(&self, tps: &[TopicPartition]) {
        let mut list = self.list();
        for tp in tps {
            Self::remove(&mut list, tp);
        }
    }

    fn find(&self, topic: &str, partition: i32) -> Option<Arc<TrackedPartition>> {
        self.list().iter().find(|p| p.is(topic, partition)).cloned()
    }

    /// Marks a record processed that may not have been handed out (or was,
    /// and its ack is elsewhere); false for an untracked partition, an
    /// offset processed already, or a negative one (no record has it).
    pub(crate) fn mark_processed(&self, topic: &str, partition: i32, offset: i64) -> bool {
        if offset < 0 {
            return false;
        }
        let Some(tracked) = self.find(topic, partition) else { return false };
        tracked.handed_out(offset);
        tracked.processed(offset)
    }

    /// Unprocessed records of these partitions.
    pub(crate) fn pending_of(&self, tps: &[TopicPartition]) -> usize {
        self.sum_of(tps, TrackedPartition::pending)
    }

    fn sum_of(&self, tps: &[TopicPartition], count: impl Fn(&TrackedPartition) -> usize) -> usize {
        self.list().iter().filter(|p| tps.iter().any(|tp| p.is(&tp.topic, tp.partition))).map(|p| count(p)).sum()
    }

    /// Unprocessed records of these partitions, for a reader about to wait
    /// for them: from now on their acks wake it.
    pub(crate) fn watch_pending_of(&self, tps: &[TopicPartition]) -> usize {
        self.sum_of(tps, |p| p.watch(true).0)
    }

    /// Every assigned partition with its records waiting to be committed,
    /// for a reader deciding which to pause: from now on every ack wakes
    /// it, until [`watch_only`](Self::watch_only).
    pub(crate) fn watch_waiting_by_partition(&self) -> Vec<(TopicPartition, usize)> {
        self.list().iter().map(|p| (p.topic_partition(), p.watch(true).1)).collect()
    }

    /// The first unprocessed offset of a partition, if it has one.
    pub(crate) fn first_unprocessed(&self, tp: &TopicPartition) -> Option<i64> {
        self.find(&tp.topic, tp.partition)?.first_unprocessed()
    }

    /// Acks of these partitions go on waking the reader; acks of the others
    /// no longer do.
    pub(crate) fn watch_only(&self, watched: &HashSet<TopicPartition>) {
        for p in self.list().iter() {
            if !watched.iter().any(|tp| p.is(&tp.topic, tp.partition)) {
                p.watch(false);
            }
        }
    }

    /// Unprocessed records over all partitions.
    pub(crate) fn total_pending(&self) -> usize {
        self.list().iter().map(|p| p.pending()).sum()
    }

    /// The offsets to commit now, for `only` these partitions or all.
    pub(crate) fn committable(&self, only: Option<&[TopicPartition]>) -> Vec<(TopicPartition, i64)> {
        let mut out: Vec<(TopicPartition, i64)> = self
            .list()
            .iter()
            .filter(|p| only.is_none_or(|o| o.iter().any(|tp| p.is(&tp.topic, tp.partition))))
            .filter_map(|p| p.committable().map(|o| (p.topic_partition(), o)))
            .collect();
        out.sort();
        out
    }

    /// Records that these offsets were committed.
    pub(crate) fn committed(&self, offsets: &[(TopicPartition, i64)]) {
        let list = self.list();
        for (tp, o) in offsets {
            if let Some(p) = list.iter().find(|p| p.is(&tp.topic, tp.partition)) {
                let mut offsets = lock(&p.offsets);
                offsets.committed = offsets.committed.max(*o);
            }
        }
    }

    /// Assigned partitions, sorted.
    pub(crate) fn assigned(&self) -> Vec<TopicPartition> {
        let mut v: Vec<_> = self.list().iter().map(|p| p.topic_partition()).collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests;
