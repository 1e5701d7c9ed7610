//! Which offsets may be committed: only the contiguous prefix of what the
//! application marked processed.
//!
//! This runs twice per record (handed out, then acked), so it avoids hashing,
//! allocation and shared locks: each assigned partition is one
//! [`TrackedPartition`], which the reader keeps a [`Cursor`] to and every
//! [`Ack`](super::group::Ack) of its records points at. The record handed out
//! last sits in a lock-free slot of its partition; a record acked before the
//! next one is read (the usual loop) never takes a lock. Only records still
//! unacked when the next one is handed out go to the partition's window,
//! behind its (uncontended) lock. The tracker's list of partitions is locked
//! only on rebalances, commits and queries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{futures::Notified, Notify};

use crate::record::{shared_topic, TopicPartition};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How acks wake a reader that waits for them (while partitions are paused
/// for backpressure). Only then does an ack notify: otherwise it costs one
/// flag load.
#[derive(Debug, Default)]
pub(crate) struct AckSignal {
    waiting: AtomicBool,
    notify: Notify,
}

impl AckSignal {
    /// Whether acks should wake the reader. Set it before looking at the
    /// pending counts the reader will wait on, so no ack is missed.
    pub(crate) fn set_waiting(&self, yes: bool) {
        self.waiting.store(yes, Ordering::SeqCst);
    }

    /// Completes at the next ack while waiting (or at once if one came since
    /// the last wake-up).
    pub(crate) fn acked(&self) -> Notified<'_> {
        self.notify.notified()
    }

    fn ack(&self) {
        if self.waiting.load(Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }
}

/// Offsets of one partition handed out before the one in its slot and not
/// yet processed when it was handed out, in order.
#[derive(Debug)]
struct Window {
    /// Offsets, ascending, from the first unprocessed one; `true` once
    /// processed. Processed offsets at the front are dropped at once.
    window: VecDeque<(i64, bool)>,
    /// Last offset committed (or to be committed) by us (-1 for none).
    committed: i64,
}

/// The slot of the record handed out last: `offset << 1 | acked`, or
/// [`Slot::EMPTY`] before the first.
struct Slot;

impl Slot {
    const EMPTY: u64 = u64::MAX;
    const ACKED: u64 = 1;

    fn unacked(offset: i64) -> u64 {
        // Offsets handed out are never negative.
        (offset as u64) << 1
    }

    fn offset(slot: u64) -> i64 {
        (slot >> 1) as i64
    }

    fn is_acked(slot: u64) -> bool {
        slot & Self::ACKED != 0
    }

    /// Whether the slot's record still counts as unprocessed.
    fn pending(slot: u64) -> bool {
        slot != Self::EMPTY && !Self::is_acked(slot)
    }

    /// Whether `offset` comes after the slot's record (a new one, not one
    /// read again).
    fn before(slot: u64, offset: i64) -> bool {
        slot == Self::EMPTY || offset > Self::offset(slot)
    }
}

/// One assigned partition: shared by the tracker, the reader's cursor and
/// the acks of its records. A new assignment of the same partition is a new
/// `TrackedPartition`, so acks from before a revoke never touch it.
#[derive(Debug)]
pub(crate) struct TrackedPartition {
    topic: Arc<str>,
    partition: i32,
    /// Set on revoke: acks of its records are void from then on.
    revoked: AtomicBool,
    /// The record handed out last (see [`Slot`]): the reader moves it on,
    /// its ack marks it acked, both without a lock while nothing else is
    /// unacked. Moved on under `offsets`' lock when its record is unacked,
    /// so that an ack that misses it finds the record in the window.
    last: AtomicU64,
    /// Unprocessed offsets in `offsets` (written under its lock).
    windowed: AtomicUsize,
    offsets: Mutex<Window>,
    signal: Arc<AckSignal>,
}

impl TrackedPartition {
    fn new(topic: Arc<str>, partition: i32, signal: Arc<AckSignal>) -> Self {
        TrackedPartition {
            topic,
            partition,
            revoked: AtomicBool::new(false),
            last: AtomicU64::new(Slot::EMPTY),
            windowed: AtomicUsize::new(0),
            offsets: Mutex::new(Window { window: VecDeque::new(), committed: -1 }),
            signal,
        }
    }

    pub(crate) fn topic(&self) -> &Arc<str> {
        &self.topic
    }

    pub(crate) fn partition(&self) -> i32 {
        self.partition
    }

    fn is(&self, topic: &str, partition: i32) -> bool {
        // The reader's topic names are the tracker's, so the pointers mostly
        // match and the names need no comparing.
        self.partition == partition && (std::ptr::eq(self.topic.as_ptr(), topic.as_ptr()) || *self.topic == *topic)
    }

    fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }

    /// Records that `offset` was handed out; returns the unprocessed records
    /// of the partition, this one included. An offset handed out before (a
    /// record read again) keeps its place and state.
    fn handed_out(&self, offset: i64) -> usize {
        let last = self.last.load(Ordering::Acquire);
        // The usual case: the record before was acked (or there was none),
        // so nothing needs to move to the window. No compare-and-swap: an
        // ack changes only an unacked slot, and only the reader's cursor
        // takes this way (see `Cursor`), one record at a time.
        if Slot::before(last, offset) && !Slot::pending(last) {
            self.last.store(Slot::unacked(offset), Ordering::Release);
            return self.windowed.load(Ordering::Relaxed) + 1;
        }
        self.handed_out_locked(offset)
    }

    /// [`handed_out`](Self::handed_out) under the partition's lock, for
    /// everything but the usual case: a record handed out while the one
    /// before is unacked, one read again, or one marked processed without
    /// being read (which may come from any thread).
    fn handed_out_locked(&self, offset: i64) -> usize {
        let mut w = lock(&self.offsets);
        if Slot::before(self.last.load(Ordering::Acquire), offset) {
            // Under the lock: an ack that misses the slot from now on looks
            // for its record in the window, and so waits for this push.
            let before = self.last.swap(Slot::unacked(offset), Ordering::AcqRel);
            if Slot::pending(before) {
                w.window.push_back((Slot::offset(before), false));
                self.windowed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.unprocessed()
    }

    /// Marks `offset` processed and wakes a waiting reader; false when the
    /// partition was revoked since (the ack is void) or the offset was
    /// processed already.
    pub(crate) fn processed(&self, offset: i64) -> bool {
        let counted = !self.revoked.load(Ordering::Acquire) && {
            let slot = Slot::unacked(offset);
            // Acked before the next record was read: the slot's alone.
            self.last.compare_exchange(slot, slot | Slot::ACKED, Ordering::AcqRel, Ordering::Relaxed).is_ok()
                || self.mark(&mut lock(&self.offsets), offset)
        };
        self.signal.ack();
        counted
    }

    /// Marks `offset` processed in the window (where the reader put it, under
    /// this lock, when it moved the slot on).
    fn mark(&self, w: &mut Window, offset: i64) -> bool {
        // Acks mostly come in order: the front is the usual place.
        let at = match w.window.front() {
            Some((o, _)) if *o == offset => 0,
            _ => match w.window.binary_search_by_key(&offset, |(o, _)| *o) {
                Ok(at) => at,
                Err(_) => return false,
            },
        };
        let Some(entry) = w.window.get_mut(at) else { return false };
        if entry.1 {
            return false;
        }
        entry.1 = true;
        self.windowed.fetch_sub(1, Ordering::Relaxed);
        while w.window.front().is_some_and(|(_, done)| *done) {
            w.window.pop_front();
        }
        true
    }

    fn pending(&self) -> usize {
        let _w = lock(&self.offsets);
        self.unprocessed()
    }

    /// Unprocessed records: the window's and the slot's. Exact under the
    /// partition's lock, which every change of the window holds.
    fn unprocessed(&self) -> usize {
        self.windowed.load(Ordering::Relaxed) + usize::from(Slot::pending(self.last.load(Ordering::Acquire)))
    }

    /// The offset to commit: the first unprocessed one, or one past the last
    /// handed out when all are processed; `None` when that is committed
    /// already or nothing was handed out.
    fn committable(&self) -> Option<i64> {
        let w = lock(&self.offsets);
        let last = self.last.load(Ordering::Acquire);
        let offset = match w.window.front() {
            Some((o, _)) => *o,
            None if last == Slot::EMPTY => return None,
            None => Slot::offset(last) + i64::from(Slot::is_acked(last)),
        };
        (offset > w.committed).then_some(offset)
    }
}

/// The reader's own copy of the assignment, so that handing a record out
/// takes no tracker lock. Refreshed when a record's partition is not in it
/// or was revoked. A tracker has one, its reader's: records are handed out
/// through it by one caller at a time (the reader's `&mut self`), which lets
/// [`TrackedPartition::handed_out`] move the slot on with a plain store.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    partitions: Vec<Arc<TrackedPartition>>,
    /// Where the last record's partition was: records come in runs of one
    /// partition, so it is mostly the next one's too.
    last: usize,
}

impl Cursor {
    /// Where the partition of a record is in the cursor, if it is there and
    /// not revoked.
    #[inline]
    fn find(&mut self, topic: &str, partition: i32) -> Option<usize> {
        let current = |p: &Arc<TrackedPartition>| p.is(topic, partition) && !p.revoked.load(Ordering::Relaxed);
        if !self.partitions.get(self.last).is_some_and(current) {
            self.last = self.partitions.iter().position(current)?;
        }
        Some(self.last)
    }
}

/// Offsets of every assigned partition.
#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    partitions: Mutex<Vec<Arc<TrackedPartition>>>,
    /// Topic names to share with the reader (see [`TrackedPartition::is`]).
    topics: Vec<Arc<str>>,
    signal: Arc<AckSignal>,
}

impl OffsetTracker {
    /// A tracker whose partitions share these topic names.
    pub(crate) fn new(topics: &[Arc<str>]) -> Self {
        OffsetTracker { topics: topics.to_vec(), ..Self::default() }
    }

    /// How acks wake the reader.
    pub(crate) fn signal(&self) -> &AckSignal {
        &self.signal
    }

    fn list(&self) -> MutexGuard<'_, Vec<Arc<TrackedPartition>>> {
        lock(&self.partitions)
    }

    /// Starts tracking newly assigned partitions.
    pub(crate) fn assign(&self, tps: impl IntoIterator<Item = TopicPartition>) {
        let mut list = self.list();
        for tp in tps {
            Self::remove(&mut list, &tp);
            let topic = shared_topic(self.topics.iter().chain(list.iter().map(|p| &p.topic)), &tp.topic);
            list.push(Arc::new(TrackedPartition::new(topic, tp.partition, Arc::clone(&self.signal))));
        }
    }

    fn remove(list: &mut Vec<Arc<TrackedPartition>>, tp: &TopicPartition) {
        list.retain(|p| {
            let gone = p.is(&tp.topic, tp.partition);
            if gone {
                p.revoked.store(true, Ordering::Release);
            }
            !gone
        });
    }

    /// Stops tracking revoked partitions; acks of their records become void.
    pub(crate) fn revoke<'a>(&self, tps: impl IntoIterator<Item = &'a TopicPartition>) {
        let mut list = self.list();
        for tp in tps {
            Self::remove(&mut list, tp);
        }
    }

    /// Marks a record processed that may not have been handed out (or was,
    /// and its ack is elsewhere); false for an untracked partition, an
    /// offset processed already, or a negative one (no record has it; the
    /// slot holds only offsets from 0 up).
    pub(crate) fn mark_processed(&self, topic: &str, partition: i32, offset: i64) -> bool {
        if offset < 0 {
            return false;
        }
        let Some(tracked) = self.list().iter().find(|p| p.is(topic, partition)).cloned() else { return false };
        tracked.handed_out_locked(offset);
        tracked.processed(offset)
    }

    /// Records that `offset` was handed to the application, looking the
    /// partition up in the reader's `cursor` (refreshed from the tracker when
    /// needed); returns the partition, for the record's ack, and its
    /// unprocessed records, this one included, or `None` for an untracked
    /// partition. Always inlined, into the group reader's two reading loops
    /// (a call of its own cost about 25 instructions per record).
    #[inline(always)]
    pub(crate) fn handed_out<'c>(
        &self,
        cursor: &'c mut Cursor,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Option<(&'c Arc<TrackedPartition>, usize)> {
        let at = match cursor.find(topic, partition) {
            Some(at) => at,
            None => self.refresh(cursor, topic, partition)?,
        };
        let tracked = cursor.partitions.get(at)?;
        Some((tracked, tracked.handed_out(offset)))
    }

    /// Copies the assignment into the cursor (after a rebalance), and finds
    /// the partition there.
    #[cold]
    fn refresh(&self, cursor: &mut Cursor, topic: &str, partition: i32) -> Option<usize> {
        cursor.partitions.clone_from(&self.list());
        cursor.find(topic, partition)
    }

    /// Unprocessed records of `tp`.
    pub(crate) fn pending(&self, tp: &TopicPartition) -> usize {
        self.list().iter().find(|p| p.is(&tp.topic, tp.partition)).map_or(0, |p| p.pending())
    }

    /// Every assigned partition with its unprocessed records.
    pub(crate) fn pending_by_partition(&self) -> Vec<(TopicPartition, usize)> {
        self.list().iter().map(|p| (p.topic_partition(), p.pending())).collect()
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
                let mut w = lock(&p.offsets);
                w.committed = w.committed.max(*o);
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
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    /// A record handed out: its partition (what its ack holds) and the
    /// partition's unprocessed records.
    struct HandedOut {
        partition: Arc<TrackedPartition>,
        unprocessed: usize,
    }

    /// Hands `offset` of `topic`/`partition` out through `cursor`, as the
    /// group reader does for a record with an ack.
    fn handed_out(t: &OffsetTracker, cursor: &mut Cursor, topic: &str, partition: i32, offset: i64) -> Option<HandedOut> {
        let (partition, unprocessed) = t.handed_out(cursor, topic, partition, offset)?;
        Some(HandedOut { partition: Arc::clone(partition), unprocessed })
    }

    /// Hands `offset` of t/`partition` out through a fresh cursor.
    fn hand(t: &OffsetTracker, partition: i32, offset: i64) -> HandedOut {
        handed_out(t, &mut Cursor::default(), "t", partition, offset).unwrap()
    }

    #[test]
    fn commits_only_the_processed_prefix() {
        let t = OffsetTracker::default();
        t.assign([tp(0)]);
        let mut cursor = Cursor::default();
        let p: Vec<_> = (10..15).map(|o| handed_out(&t, &mut cursor, "t", 0, o).unwrap().partition).collect();
        assert_eq!(t.committable(None), vec![(tp(0), 10)]);
        // Out of order: 11 and 13 done; 10 is not, so nothing past 10.
        assert!(p[1].processed(11));
        assert!(p[3].processed(13));
        assert_eq!(t.committable(None), vec![(tp(0), 10)]);
        assert!(p[0].processed(10));
        assert_eq!(t.committable(None), vec![(tp(0), 12)]);
        assert!(p[2].processed(12));
        assert!(p[4].processed(14));
        assert_eq!(t.committable(None), vec![(tp(0), 15)]);
        t.committed(&[(tp(0), 15)]);
        assert!(t.committable(None).is_empty());
        assert_eq!(t.pending(&tp(0)), 0);
    }

    #[test]
    fn acks_from_a_revoked_assignment_are_void() {
        let t = OffsetTracker::default();
        t.assign([tp(0), tp(1)]);
        let mut cursor = Cursor::default();
        let old = handed_out(&t, &mut cursor, "t", 0, 5).unwrap().partition;
        t.revoke(&[tp(0)]);
        assert!(!old.processed(5));
        assert!(handed_out(&t, &mut cursor, "t", 0, 6).is_none(), "the cursor must not hand out of a revoked partition");
        t.assign([tp(0)]);
        let new = handed_out(&t, &mut cursor, "t", 0, 5).unwrap();
        assert!(!Arc::ptr_eq(&old, &new.partition), "a new assignment is tracked afresh");
        assert!(!old.processed(5), "an old ack must not ack the new assignment");
        assert_eq!((new.unprocessed, t.pending(&tp(0))), (1, 1));
        assert_eq!(t.assigned(), vec![tp(0), tp(1)]);
        assert!(handed_out(&t, &mut cursor, "t", 7, 1).is_none());
    }

    #[test]
    fn a_record_read_again_keeps_its_place_and_double_acks_count_once() {
        let t = OffsetTracker::default();
        t.assign([tp(0)]);
        let p = hand(&t, 0, 0).partition;
        hand(&t, 0, 1);
        // Offset 0 again (a seek back, or mark_processed of a handed-out
        // record): still one unprocessed record, not two.
        assert_eq!(hand(&t, 0, 0).unprocessed, 2);
        assert!(p.processed(1));
        assert!(!p.processed(1), "a second ack of the same offset is not counted");
        assert_eq!(t.pending(&tp(0)), 1);
        assert_eq!(t.committable(None), vec![(tp(0), 0)]);
        assert!(p.processed(0));
        assert_eq!(t.committable(None), vec![(tp(0), 2)]);
        // Long since processed and committed: reading it again changes nothing.
        hand(&t, 0, 0);
        assert!(!p.processed(0));
        assert_eq!((t.pending(&tp(0)), t.committable(None)), (0, vec![(tp(0), 2)]));
        // Marked processed without an ack (never handed out): counted once.
        assert!(t.mark_processed("t", 0, 2));
        assert!(!t.mark_processed("t", 0, 2));
        assert!(!t.mark_processed("t", 9, 0), "untracked partition");
        assert_eq!(t.committable(None), vec![(tp(0), 3)]);
    }

    #[test]
    fn a_negative_offset_is_never_marked_processed() {
        let t = OffsetTracker::default();
        t.assign([tp(0)]);
        assert!(!t.mark_processed("t", 0, -1), "no record has a negative offset");
        // The partition is tracked as if it had not been asked.
        assert_eq!(hand(&t, 0, 0).unprocessed, 1);
        assert_eq!(t.committable(None), vec![(tp(0), 0)]);
    }

    #[test]
    fn partitions_of_two_topics_with_one_number_are_apart() {
        let t = OffsetTracker::default();
        let u0 = TopicPartition::new("u", 0);
        t.assign([tp(0), tp(1), u0.clone()]);
        let mut cursor = Cursor::default();
        let p = handed_out(&t, &mut cursor, "t", 0, 0).unwrap().partition;
        handed_out(&t, &mut cursor, "t", 1, 0).unwrap();
        let u = handed_out(&t, &mut cursor, "u", 0, 0).unwrap().partition;
        assert_eq!((&**u.topic(), u.partition()), ("u", 0));
        assert_eq!(t.total_pending(), 3);
        assert!(p.processed(0));
        let mut by_partition = t.pending_by_partition();
        by_partition.sort();
        assert_eq!(by_partition, vec![(tp(0), 0), (tp(1), 1), (u0.clone(), 1)]);
        assert_eq!(t.pending(&u0), 1);
        // Only t/0 moved on; u/0, the same number in another topic, did not.
        assert_eq!(t.committable(None), vec![(tp(0), 1), (tp(1), 0), (u0.clone(), 0)]);
        assert_eq!(t.committable(Some(std::slice::from_ref(&u0))), vec![(u0, 0)]);
    }

    #[test]
    fn partitions_share_the_readers_topic_names() {
        let topics: Vec<Arc<str>> = vec![Arc::from("t")];
        let t = OffsetTracker::new(&topics);
        t.assign([tp(0), tp(1)]);
        let a = hand(&t, 0, 0).partition;
        let b = hand(&t, 1, 0).partition;
        assert!(Arc::ptr_eq(a.topic(), &topics[0]) && Arc::ptr_eq(b.topic(), &topics[0]));
    }

    #[tokio::test]
    async fn acks_wake_the_reader_only_while_it_waits() {
        use futures::FutureExt;
        let t = OffsetTracker::default();
        t.assign([tp(0)]);
        let p = hand(&t, 0, 0).partition;
        hand(&t, 0, 1);
        assert!(p.processed(0));
        assert!(t.signal().acked().now_or_never().is_none(), "an ack while nobody waits leaves no wake-up");
        t.signal().set_waiting(true);
        assert!(p.processed(1));
        assert!(t.signal().acked().now_or_never().is_some(), "an ack while the reader waits wakes it");
    }

    #[test]
    fn concurrent_acks_never_commit_an_unprocessed_offset() {
        use std::collections::BTreeSet;
        use std::sync::mpsc;
        // The reader hands out every third offset (gaps, as transaction
        // markers leave) while two threads ack them, in order or late, and a
        // third asks what to commit: each answer must have every offset
        // handed out below it acked.
        const LAST: i64 = 30_000;
        let t = Arc::new(OffsetTracker::default());
        t.assign([tp(0)]);
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let (txs, ackers): (Vec<_>, Vec<_>) = (0..2)
            .map(|n| {
                let (tx, rx) = mpsc::channel::<(Arc<TrackedPartition>, i64)>();
                let acked = Arc::clone(&acked);
                let acker = std::thread::spawn(move || {
                    let mut held = Vec::new();
                    let ack = |(p, o): (Arc<TrackedPartition>, i64)| {
                        lock(&acked).insert(o);
                        assert!(p.processed(o), "ack of {o} not counted");
                    };
                    for (p, o) in rx {
                        // The second thread holds some acks back a while.
                        if n == 1 && o % 7 == 0 {
                            held.push((p, o));
                            if held.len() == 20 {
                                held.drain(..).for_each(ack);
                            }
                        } else {
                            ack((p, o));
                        }
                    }
                    held.into_iter().for_each(ack);
                });
                (tx, acker)
            })
            .unzip();
        let done = Arc::new(AtomicBool::new(false));
        let checker = {
            let (t, acked, done) = (Arc::clone(&t), Arc::clone(&acked), Arc::clone(&done));
            std::thread::spawn(move || {
                // (What to commit only moves forward: each check looks at
                // the offsets since the one before.)
                let (mut checks, mut verified) = (0, 0);
                while !done.load(Ordering::Acquire) {
                    if let Some(&(_, c)) = t.committable(None).first() {
                        let acked = lock(&acked);
                        assert!((verified..c).filter(|o| o % 3 == 0).all(|o| acked.contains(&o)), "would commit {c} with an offset below it unacked");
                        verified = verified.max(c);
                        checks += 1;
                    }
                    std::thread::yield_now();
                }
                checks
            })
        };
        let mut cursor = Cursor::default();
        for o in (0..=LAST).step_by(3) {
            let handed = handed_out(&t, &mut cursor, "t", 0, o).unwrap();
            txs[usize::from(o % 2 == 0)].send((handed.partition, o)).unwrap();
        }
        drop(txs);
        for acker in ackers {
            acker.join().unwrap();
        }
        done.store(true, Ordering::Release);
        assert!(checker.join().unwrap() > 0);
        assert_eq!((t.pending(&tp(0)), t.committable(None)), (0, vec![(tp(0), LAST + 1)]));
    }

    #[test]
    fn random_acks_never_commit_an_unprocessed_offset() {
        use rand::{seq::SliceRandom, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let t = OffsetTracker::default();
            t.assign([tp(0)]);
            let mut offs: Vec<(i64, Arc<TrackedPartition>)> = (0..200).map(|o| (o, hand(&t, 0, o).partition)).collect();
            offs.shuffle(&mut rng);
            let mut done = std::collections::BTreeSet::new();
            for (o, p) in offs {
                p.processed(o);
                done.insert(o);
                if let Some((_, c)) = t.committable(None).first() {
                    assert!((0..*c).all(|x| done.contains(&x)), "committed {c} with a gap");
                }
            }
            assert_eq!(t.committable(None), vec![(tp(0), 200)]);
        }
    }
}
