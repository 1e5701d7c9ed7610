//! Which offsets may be committed: only the contiguous prefix of what the
//! application marked processed.

use std::collections::{BTreeSet, HashMap};

use crate::record::TopicPartition;

/// Offsets of one assigned partition.
#[derive(Debug, Clone, Default)]
struct PartitionOffsets {
    /// Bumped on each new assignment, so acks from before a revoke are ignored.
    generation: u64,
    /// Handed to the application, not yet processed.
    pending: BTreeSet<i64>,
    /// One past the highest offset handed out (-1 before the first).
    next: i64,
    /// Last offset committed (or to be committed) by us (-1 for none).
    committed: i64,
}

impl PartitionOffsets {
    /// The offset to commit: the first unprocessed one, or one past the last
    /// handed out when all are processed.
    fn committable(&self) -> Option<i64> {
        let offset = self.pending.first().copied().unwrap_or(self.next);
        (offset >= 0 && offset > self.committed).then_some(offset)
    }
}

/// Offsets of every assigned partition.
#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    partitions: HashMap<TopicPartition, PartitionOffsets>,
    generations: u64,
}

impl OffsetTracker {
    /// Starts tracking newly assigned partitions.
    pub(crate) fn assign(&mut self, tps: impl IntoIterator<Item = TopicPartition>) {
        for tp in tps {
            self.generations += 1;
            let p = PartitionOffsets { generation: self.generations, next: -1, committed: -1, ..Default::default() };
            self.partitions.insert(tp, p);
        }
    }

    /// Stops tracking revoked partitions.
    pub(crate) fn revoke<'a>(&mut self, tps: impl IntoIterator<Item = &'a TopicPartition>) {
        for tp in tps {
            self.partitions.remove(tp);
        }
    }

    /// Records that `offset` was handed to the application; returns the
    /// generation an ack must quote, or `None` for an untracked partition.
    pub(crate) fn handed_out(&mut self, tp: &TopicPartition, offset: i64) -> Option<u64> {
        let p = self.partitions.get_mut(tp)?;
        p.pending.insert(offset);
        p.next = p.next.max(offset + 1);
        Some(p.generation)
    }

    /// Marks `offset` processed; false when it belongs to a revoked
    /// assignment (its partition moved on; the ack is void).
    pub(crate) fn processed(&mut self, tp: &TopicPartition, offset: i64, generation: u64) -> bool {
        match self.partitions.get_mut(tp) {
            Some(p) if p.generation == generation => p.pending.remove(&offset),
            _ => false,
        }
    }

    /// Unprocessed records of `tp`.
    pub(crate) fn pending(&self, tp: &TopicPartition) -> usize {
        self.partitions.get(tp).map_or(0, |p| p.pending.len())
    }

    /// The most unprocessed records of any one partition.
    pub(crate) fn max_pending(&self) -> usize {
        self.partitions.values().map(|p| p.pending.len()).max().unwrap_or(0)
    }

    /// Unprocessed records over all partitions.
    pub(crate) fn total_pending(&self) -> usize {
        self.partitions.values().map(|p| p.pending.len()).sum()
    }

    /// The offsets to commit now, for `only` these partitions or all.
    pub(crate) fn committable(&self, only: Option<&[TopicPartition]>) -> Vec<(TopicPartition, i64)> {
        let mut out: Vec<(TopicPartition, i64)> = self
            .partitions
            .iter()
            .filter(|(tp, _)| only.is_none_or(|o| o.contains(tp)))
            .filter_map(|(tp, p)| p.committable().map(|o| (tp.clone(), o)))
            .collect();
        out.sort();
        out
    }

    /// Records that these offsets were committed.
    pub(crate) fn committed(&mut self, offsets: &[(TopicPartition, i64)]) {
        for (tp, o) in offsets {
            if let Some(p) = self.partitions.get_mut(tp) {
                p.committed = p.committed.max(*o);
            }
        }
    }

    /// Assigned partitions, sorted.
    pub(crate) fn assigned(&self) -> Vec<TopicPartition> {
        let mut v: Vec<_> = self.partitions.keys().cloned().collect();
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
        let g: Vec<u64> = (10..15).map(|o| t.handed_out(&tp(0), o).unwrap()).collect();
        assert!(t.committable(None).is_empty() || t.committable(None) == vec![(tp(0), 10)]);
        // Out of order: 11 and 13 done; 10 is not, so nothing past 10.
        assert!(t.processed(&tp(0), 11, g[1]));
        assert!(t.processed(&tp(0), 13, g[3]));
        assert_eq!(t.committable(None), vec![(tp(0), 10)]);
        assert!(t.processed(&tp(0), 10, g[0]));
        assert_eq!(t.committable(None), vec![(tp(0), 12)]);
        assert!(t.processed(&tp(0), 12, g[2]));
        assert!(t.processed(&tp(0), 14, g[4]));
        assert_eq!(t.committable(None), vec![(tp(0), 15)]);
        t.committed(&[(tp(0), 15)]);
        assert!(t.committable(None).is_empty());
        assert_eq!(t.pending(&tp(0)), 0);
    }

    #[test]
    fn acks_from_a_revoked_assignment_are_void() {
        let mut t = OffsetTracker::default();
        t.assign([tp(0), tp(1)]);
        let g = t.handed_out(&tp(0), 5).unwrap();
        t.revoke(&[tp(0)]);
        assert!(!t.processed(&tp(0), 5, g));
        t.assign([tp(0)]);
        assert!(!t.processed(&tp(0), 5, g), "old generation must not ack the new assignment");
        assert_eq!(t.assigned(), vec![tp(0), tp(1)]);
        assert!(t.handed_out(&tp(7), 1).is_none());
    }

    #[test]
    fn random_acks_never_commit_an_unprocessed_offset() {
        use rand::{seq::SliceRandom, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let mut t = OffsetTracker::default();
            t.assign([tp(0)]);
            let mut offs: Vec<(i64, u64)> = (0..200).map(|o| (o, t.handed_out(&tp(0), o).unwrap())).collect();
            offs.shuffle(&mut rng);
            let mut done = std::collections::BTreeSet::new();
            for (o, g) in offs {
                t.processed(&tp(0), o, g);
                done.insert(o);
                if let Some((_, c)) = t.committable(None).first() {
                    assert!((0..*c).all(|x| done.contains(&x)), "committed {c} with a gap");
                }
            }
            assert_eq!(t.committable(None), vec![(tp(0), 200)]);
        }
    }
}
