//! Unit tests of the offset tracking: the processed-prefix rule, revokes,
//! records read again, and acks from other threads.

use super::*;
use crate::reader::group::flow::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

/// A record handed out: its partition (what its ack holds) and the
/// partition's records waiting to be committed.
struct HandedOut {
    partition: Arc<TrackedPartition>,
    waiting: usize,
}

/// Hands `offset` of `topic`/`partition` out through `cursor`, as the
/// group reader does for a record with an ack.
fn handed_out(t: &OffsetTracker, cursor: &mut Cursor, topic: &str, partition: i32, offset: i64) -> Option<HandedOut> {
    cursor.refresh(t);
    let partition = Arc::clone(cursor.find(&Arc::from(topic), partition)?);
    let waiting = partition.handed_out(offset);
    Some(HandedOut { partition, waiting })
}

/// Hands `offset` of t/`partition` out through a fresh cursor.
fn hand(t: &OffsetTracker, partition: i32, offset: i64) -> HandedOut {
    handed_out(t, &mut Cursor::default(), "t", partition, offset).unwrap()
}

#[test]
fn commits_only_the_processed_prefix() {
    let t = OffsetTracker::default();
    t.assign(&[tp(0)]);
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
    assert_eq!(t.pending_of(&[tp(0)]), 0);
}

#[test]
fn acks_from_a_revoked_assignment_are_void() {
    let t = OffsetTracker::default();
    t.assign(&[tp(0), tp(1)]);
    let mut cursor = Cursor::default();
    let old = handed_out(&t, &mut cursor, "t", 0, 5).unwrap().partition;
    t.revoke(&[tp(0)]);
    assert!(!old.processed(5));
    assert!(handed_out(&t, &mut cursor, "t", 0, 6).is_none(), "the cursor must not hand out of a revoked partition");
    t.assign(&[tp(0)]);
    let new = handed_out(&t, &mut cursor, "t", 0, 5).unwrap();
    assert!(!Arc::ptr_eq(&old, &new.partition), "a new assignment is tracked afresh");
    assert!(!old.processed(5), "an old ack must not ack the new assignment");
    assert_eq!((new.waiting, t.pending_of(&[tp(0)])), (1, 1));
    assert_eq!(t.assigned(), vec![tp(0), tp(1)]);
    assert!(handed_out(&t, &mut cursor, "t", 7, 1).is_none());
}

#[test]
fn a_record_read_again_keeps_its_place_and_double_acks_count_once() {
    let t = OffsetTracker::default();
    t.assign(&[tp(0)]);
    let p = hand(&t, 0, 0).partition;
    hand(&t, 0, 1);
    // Offset 0 again (a seek back, or mark_processed of a handed-out
    // record): still one unprocessed record, not two.
    assert_eq!(hand(&t, 0, 0).waiting, 2);
    assert!(p.processed(1));
    assert!(!p.processed(1), "a second ack of the same offset is not counted");
    assert_eq!(t.pending_of(&[tp(0)]), 1);
    assert_eq!(t.committable(None), vec![(tp(0), 0)]);
    assert!(p.processed(0));
    assert_eq!(t.committable(None), vec![(tp(0), 2)]);
    // Long since processed and committed: reading it again changes nothing.
    hand(&t, 0, 0);
    assert!(!p.processed(0));
    assert_eq!((t.pending_of(&[tp(0)]), t.committable(None)), (0, vec![(tp(0), 2)]));
    // Marked processed without an ack (never handed out): counted once.
    assert!(t.mark_processed("t", 0, 2));
    assert!(!t.mark_processed("t", 0, 2));
    assert!(!t.mark_processed("t", 9, 0), "untracked partition");
    assert_eq!(t.committable(None), vec![(tp(0), 3)]);
}

#[test]
fn records_processed_in_place_move_the_prefix_but_not_past_a_waiting_one() {
    let t = OffsetTracker::default();
    t.assign(&[tp(0)]);
    let p = hand(&t, 0, 0).partition;
    p.processed_in_place(1);
    p.processed_in_place(2);
    assert_eq!(t.committable(None), vec![(tp(0), 0)], "offset 0 still waits for its ack");
    assert!(p.processed(0));
    assert_eq!(t.committable(None), vec![(tp(0), 3)]);
    p.processed_in_place(3);
    p.processed_in_place(2); // read again: nothing changes
    assert_eq!((t.committable(None), t.pending_of(&[tp(0)])), (vec![(tp(0), 4)], 0));
}

#[test]
fn a_negative_offset_is_never_marked_processed() {
    let t = OffsetTracker::default();
    t.assign(&[tp(0)]);
    assert!(!t.mark_processed("t", 0, -1), "no record has a negative offset");
    // The partition is tracked as if it had not been asked.
    assert_eq!(hand(&t, 0, 0).waiting, 1);
    assert_eq!(t.committable(None), vec![(tp(0), 0)]);
}

#[test]
fn partitions_of_two_topics_with_one_number_are_apart() {
    let t = OffsetTracker::default();
    let u0 = TopicPartition::new("u", 0);
    t.assign(&[tp(0), tp(1), u0.clone()]);
    let mut cursor = Cursor::default();
    let p = handed_out(&t, &mut cursor, "t", 0, 0).unwrap().partition;
    handed_out(&t, &mut cursor, "t", 1, 0).unwrap();
    let u = handed_out(&t, &mut cursor, "u", 0, 0).unwrap().partition;
    assert_eq!((&**u.topic(), u.partition()), ("u", 0));
    assert_eq!(t.total_pending(), 3);
    assert!(p.processed(0));
    let mut by_partition = t.watch_waiting_by_partition();
    by_partition.sort();
    assert_eq!(by_partition, vec![(tp(0), 0), (tp(1), 1), (u0.clone(), 1)]);
    assert_eq!(t.pending_of(std::slice::from_ref(&u0)), 1);
    // Only t/0 moved on; u/0, the same number in another topic, did not.
    assert_eq!(t.committable(None), vec![(tp(0), 1), (tp(1), 0), (u0.clone(), 0)]);
    assert_eq!(t.committable(Some(std::slice::from_ref(&u0))), vec![(u0, 0)]);
}

#[test]
fn partitions_share_the_readers_topic_names() {
    let topics: Vec<Arc<str>> = vec![Arc::from("t")];
    let t = OffsetTracker::new(&topics);
    t.assign(&[tp(0), tp(1)]);
    let a = hand(&t, 0, 0).partition;
    let b = hand(&t, 1, 0).partition;
    assert!(Arc::ptr_eq(a.topic(), &topics[0]) && Arc::ptr_eq(b.topic(), &topics[0]));
}

/// Whether a wake-up for the reader is waiting.
fn woken(t: &OffsetTracker) -> bool {
    use futures::FutureExt;
    t.acked().now_or_never().is_some()
}

#[tokio::test]
async fn acks_of_watched_partitions_wake_a_waiting_reader() {
    use futures::FutureExt;
    let t = OffsetTracker::default();
    t.assign(&[tp(0)]);
    let p = hand(&t, 0, 0).partition;
    assert_eq!(t.watch_pending_of(&[tp(0)]), 1);
    let waiting = t.acked();
    futures::pin_mut!(waiting);
    assert!(waiting.as_mut().now_or_never().is_none(), "no ack yet");
    assert!(p.processed(0));
    assert!(waiting.now_or_never().is_some(), "an ack wakes the reader");
}

#[test]
fn acks_of_partitions_nobody_waits_on_wake_nobody() {
    let t = OffsetTracker::default();
    t.assign(&[tp(0), tp(1)]);
    let (p0, p1) = (hand(&t, 0, 0).partition, hand(&t, 1, 0).partition);
    assert!(p0.processed(0));
    assert!(!woken(&t), "nothing watched: no wake-up");
    // A reader deciding what to pause watches all, then keeps what it paused.
    let mut pending = t.watch_waiting_by_partition();
    pending.sort();
    assert_eq!(pending, vec![(tp(0), 0), (tp(1), 1)]);
    t.watch_only(&HashSet::from([tp(1)]));
    let (a, b) = (hand(&t, 0, 1).partition, hand(&t, 1, 1).partition);
    assert!(a.processed(1));
    assert!(!woken(&t), "t/0 is no longer watched");
    assert!(p1.processed(0) && b.processed(1));
    assert!(woken(&t), "t/1 is");
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
    t.assign(&[tp(0)]);
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
    assert_eq!((t.pending_of(&[tp(0)]), t.committable(None)), (0, vec![(tp(0), LAST + 1)]));
}

#[test]
fn random_acks_never_commit_an_unprocessed_offset() {
    use rand::{seq::SliceRandom, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..50 {
        let t = OffsetTracker::default();
        t.assign(&[tp(0)]);
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

/// The finding: acked records behind one that is never acked were
/// never dropped, and backpressure counted only the unacked one, so the
/// partition read on for ever. They count now: the partition waits (and
/// pauses) once `max_pending` wait behind it.
#[test]
fn records_acked_behind_an_unacked_one_count_as_waiting() {
    let t = OffsetTracker::default();
    t.assign(&[tp(0)]);
    let stuck = hand(&t, 0, 0);
    assert_eq!(stuck.waiting, 1);
    for o in 1..100 {
        let h = hand(&t, 0, o);
        assert!(h.partition.processed(o));
        assert_eq!(h.waiting, usize::try_from(o + 1).unwrap(), "offset {o} waits behind offset 0");
    }
    assert_eq!(t.pending_of(&[tp(0)]), 1, "one record is unprocessed");
    assert_eq!(t.watch_waiting_by_partition(), vec![(tp(0), 100)]);
    assert_eq!((t.first_unprocessed(&tp(0)), t.committable(None)), (Some(0), vec![(tp(0), 0)]));
    assert!(stuck.partition.processed(0));
    assert_eq!(t.watch_waiting_by_partition(), vec![(tp(0), 0)], "all of them go at once");
    assert_eq!((t.first_unprocessed(&tp(0)), t.committable(None)), (None, vec![(tp(0), 100)]));
}
