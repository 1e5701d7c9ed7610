//! Which offsets may be committed: only the contiguous prefix of what the
//! application marked processed.
//!
//! This runs twice per record (handed out, then acked), so it avoids hashing
//! and allocation: a reader has a handful of partitions, found by a scan, and
//! each keeps its unprocessed offsets in the order they were handed out.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::record::{shared_topic, TopicPartition};

/// Offsets of one assigned partition.
#[derive(Debug)]
struct PartitionOffsets {
    topic: Arc<str>,
    partition: i32,
    /// Unique per assignment, so acks from before a revoke are ignored.
    generation: u64,
    /// Offsets handed out, ascending, from the first unprocessed one; `true`
    /// once processed. Processed offsets at the front are dropped at once.
    window: VecDeque<(i64, bool)>,
    /// Unprocessed offsets in `window`.
    unprocessed: usize,
    /// One past the highest offset handed out (-1 before the first).
    next: i64,
    /// Last offset committed (or to be committed) by us (-1 for none).
    committed: i64,
}

impl PartitionOffsets {
    fn is(&self, topic: &str, partition: i32) -> bool {
        self.partition == partition && *self.topic == *topic
    }

    /// The offset to commit: the first unprocessed one, or one past the last
    /// handed out when all are processed.
    fn committable(&self) -> Option<i64> {
        let offset = self.window.front().map_or(self.next, |(o, _)| *o);
        (offset >= 0 && offset > self.committed).then_some(offset)
    }

    fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }
}

/// What a reader needs to hand a record out.
#[derive(Debug, Clone)]
pub(crate) struct HandedOut {
    /// The generation an ack must quote.
    pub(crate) generation: u64,
    /// Unprocessed records of the partition, this one included.
    pub(crate) unprocessed: usize,
}

/// Offsets of every assigned partition.
#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    partitions: Vec<PartitionOffsets>,
    generations: u64,
}

impl OffsetTracker {
    /// Starts tracking newly assigned partitions.
    pub(crate) fn assign(&mut self, tps: impl IntoIterator<Item = TopicPartition>) {
        for tp in tps {
            self.generations += 1;
            self.partitions.retain(|p| !p.is(&tp.topic, tp.partition));
            let topic = shared_topic(self.partitions.iter().map(|p| &p.topic), &tp.topic);
            self.partitions.push(PartitionOffsets {
                topic,
                partition: tp.partition,
                generation: self.generations,
                window: VecDeque::new(),
                unprocessed: 0,
                next: -1,
                committed: -1,
            });
        }
    }

    /// Stops tracking revoked partitions.
    pub(crate) fn revoke<'a>(&mut self, tps: impl IntoIterator<Item = &'a TopicPartition>) {
        for tp in tps {
            self.partitions.retain(|p| !p.is(&tp.topic, tp.partition));
        }
    }

    /// Records that `offset` was handed to the application; `None` for an
    /// untracked partition. An offset handed out before (a record read
    /// again) keeps its place and state.
    pub(crate) fn handed_out(&mut self, topic: &str, partition: i32, offset: i64) -> Option<HandedOut> {
        let p = self.partitions.iter_mut().find(|p| p.is(topic, partition))?;
        if offset >= p.next {
            p.window.push_back((offset, false));
            p.unprocessed += 1;
            p.next = offset + 1;
        }
        Some(HandedOut { generation: p.generation, unprocessed: p.unprocessed })
    }

    /// Marks `offset` processed; false when it belongs to a revoked
    /// assignment (its partition moved on; the ack is void) or was
    /// processed already.
    pub(crate) fn processed(&mut self, generation: u64, offset: i64) -> bool {
        let Some(p) = self.partitions.iter_mut().find(|p| p.generation == generation) else { return false };
        // Acks mostly come in order: the front is the usual place.
        let at = match p.window.front() {
            Some((o, _)) if *o == offset => 0,
            _ => match p.window.binary_search_by_key(&offset, |(o, _)| *o) {
                Ok(at) => at,
                Err(_) => return false,
            },
        };
        let Some(entry) = p.window.get_mut(at) else { return false };
        if entry.1 {
            return false;
        }
        entry.1 = true;
        p.unprocessed -= 1;
        while p.window.front().is_some_and(|(_, done)| *done) {
            p.window.pop_front();
        }
        true
    }

    /// Unprocessed records of `tp`.
    pub(crate) fn pending(&self, tp: &TopicPartition) -> usize {
        self.partitions.iter().find(|p| p.is(&tp.topic, tp.partition)).map_or(0, |p| p.unprocessed)
    }

    /// Unprocessed records over all partitions.
    pub(crate) fn total_pending(&self) -> usize {
        self.partitions.iter().map(|p| p.unprocessed).sum()
    }

    /// The offsets to commit now, for `only` these partitions or all.
    pub(crate) fn committable(&self, only: Option<&[TopicPartition]>) -> Vec<(TopicPartition, i64)> {
        let mut out: Vec<(TopicPartition, i64)> = self
            .partitions
            .iter()
            .filter(|p| only.is_none_or(|o| o.iter().any(|tp| p.is(&tp.topic, tp.partition))))
            .filter_map(|p| p.committable().map(|o| (p.topic_partition(), o)))
            .collect();
        out.sort();
        out
    }

    /// Records that these offsets were committed.
    pub(crate) fn committed(&mut self, offsets: &[(TopicPartition, i64)]) {
        for (tp, o) in offsets {
            if let Some(p) = self.partitions.iter_mut().find(|p| p.is(&tp.topic, tp.partition)) {
                p.committed = p.committed.max(*o);
            }
        }
    }

    /// Assigned partitions, sorted.
    pub(crate) fn assigned(&self) -> Vec<TopicPartition> {
        let mut v: Vec<_> = self.partitions.iter().map(PartitionOffsets::topic_partition).collect();
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

    #[test]
    fn commits_only_the_processed_prefix() {
        let mut t = OffsetTracker::default();
        t.assign([tp(0)]);
        let g: Vec<u64> = (10..15).map(|o| t.handed_out("t", 0, o).unwrap().generation).collect();
        assert!(t.committable(None).is_empty() || t.committable(None) == vec![(tp(0), 10)]);
        // Out of order: 11 and 13 done; 10 is not, so nothing past 10.
        assert!(t.processed(g[1], 11));
        assert!(t.processed(g[3], 13));
        assert_eq!(t.committable(None), vec![(tp(0), 10)]);
        assert!(t.processed(g[0], 10));
        assert_eq!(t.committable(None), vec![(tp(0), 12)]);
        assert!(t.processed(g[2], 12));
        assert!(t.processed(g[4], 14));
        assert_eq!(t.committable(None), vec![(tp(0), 15)]);
        t.committed(&[(tp(0), 15)]);
        assert!(t.committable(None).is_empty());
        assert_eq!(t.pending(&tp(0)), 0);
    }

    #[test]
    fn acks_from_a_revoked_assignment_are_void() {
        let mut t = OffsetTracker::default();
        t.assign([tp(0), tp(1)]);
        let g = t.handed_out("t", 0, 5).unwrap().generation;
        t.revoke(&[tp(0)]);
        assert!(!t.processed(g, 5));
        t.assign([tp(0)]);
        assert!(!t.processed(g, 5), "old generation must not ack the new assignment");
        assert_eq!(t.assigned(), vec![tp(0), tp(1)]);
        assert!(t.handed_out("t", 7, 1).is_none());
    }

    #[test]
    fn a_record_read_again_keeps_its_place_and_double_acks_count_once() {
        let mut t = OffsetTracker::default();
        t.assign([tp(0)]);
        let g = t.handed_out("t", 0, 0).unwrap().generation;
        t.handed_out("t", 0, 1).unwrap();
        // Offset 0 again (a seek back, or mark_processed of a handed-out
        // record): still one unprocessed record, not two.
        assert_eq!(t.handed_out("t", 0, 0).unwrap().unprocessed, 2);
        assert!(t.processed(g, 1));
        assert!(!t.processed(g, 1), "a second ack of the same offset is not counted");
        assert_eq!(t.pending(&tp(0)), 1);
        assert_eq!(t.committable(None), vec![(tp(0), 0)]);
        assert!(t.processed(g, 0));
        assert_eq!(t.committable(None), vec![(tp(0), 2)]);
        // Long since processed and committed: reading it again changes nothing.
        t.handed_out("t", 0, 0).unwrap();
        assert!(!t.processed(g, 0));
        assert_eq!((t.pending(&tp(0)), t.committable(None)), (0, vec![(tp(0), 2)]));
    }

    #[test]
    fn partitions_of_two_topics_with_one_number_are_apart() {
        let mut t = OffsetTracker::default();
        t.assign([tp(0), tp(1), TopicPartition::new("u", 0)]);
        let g = t.handed_out("t", 0, 0).unwrap().generation;
        t.handed_out("t", 1, 0).unwrap();
        t.handed_out("u", 0, 0).unwrap();
        assert_eq!(t.total_pending(), 3);
        assert!(t.processed(g, 0));
        assert_eq!(t.pending(&TopicPartition::new("u", 0)), 1);
        // Only t/0 moved on; u/0, the same number in another topic, did not.
        let u0 = TopicPartition::new("u", 0);
        assert_eq!(t.committable(None), vec![(tp(0), 1), (tp(1), 0), (u0, 0)]);
    }

    #[test]
    fn random_acks_never_commit_an_unprocessed_offset() {
        use rand::{seq::SliceRandom, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let mut t = OffsetTracker::default();
            t.assign([tp(0)]);
            let mut offs: Vec<(i64, u64)> = (0..200).map(|o| (o, t.handed_out("t", 0, o).unwrap().generation)).collect();
            offs.shuffle(&mut rng);
            let mut done = std::collections::BTreeSet::new();
            for (o, g) in offs {
                t.processed(g, o);
                done.insert(o);
                if let Some((_, c)) = t.committable(None).first() {
                    assert!((0..*c).all(|x| done.contains(&x)), "committed {c} with a gap");
                }
            }
            assert_eq!(t.committable(None), vec![(tp(0), 200)]);
        }
    }
}
