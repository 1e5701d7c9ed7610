//! Acks: the application's word that a record is processed.

use std::sync::Arc;

use tracing::debug;

use super::offsets::{OffsetTracker, TrackedPartition};
use crate::record::{ConsumedRecord, TopicPartition};

/// Marks one record processed. Dropping it without [`Ack::ack`] leaves the
/// record uncommitted, so it is read again after a restart or rebalance.
#[must_use = "a record is committed only once its Ack is acked"]
pub struct Ack {
    /// The record's partition as assigned when it was read: a revoke voids
    /// the ack.
    tracked: Arc<TrackedPartition>,
    offset: i64,
}

impl Ack {
    pub(super) fn new(tracked: Arc<TrackedPartition>, offset: i64) -> Self {
        Ack { tracked, offset }
    }

    /// The record is processed: its offset may now be committed (once every
    /// earlier record of its partition is processed too).
    pub fn ack(self) {
        if !self.tracked.processed(self.offset) {
            debug!(ack = ?self, "ack for a partition no longer assigned, or acked before; ignored");
        }
    }

    /// Topic of the record.
    pub fn topic(&self) -> &str {
        self.tracked.topic()
    }

    /// Partition of the record.
    pub fn partition(&self) -> i32 {
        self.tracked.partition()
    }

    /// Topic and partition of the record.
    pub fn topic_partition(&self) -> TopicPartition {
        self.tracked.topic_partition()
    }

    /// Offset of the record.
    pub fn offset(&self) -> i64 {
        self.offset
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ack({}/{}@{})", self.topic(), self.partition(), self.offset)
    }
}

/// Marks records processed by their topic, partition and offset, without
/// their [`Ack`] and without borrowing the reader; from
/// [`GroupReader::acker`](super::GroupReader::acker). Cheap to clone.
#[derive(Clone)]
pub struct Acker {
    tracker: Arc<OffsetTracker>,
}

impl Acker {
    pub(super) fn new(tracker: Arc<OffsetTracker>) -> Self {
        Acker { tracker }
    }

    /// Marks `record` processed: its offset may be committed once every
    /// earlier record of its partition is processed too. False when its
    /// partition is no longer assigned to the reader, or it was processed
    /// already.
    pub fn mark_processed(&self, record: &ConsumedRecord) -> bool {
        self.tracker.mark_processed(&record.topic, record.partition, record.offset)
    }
}

impl std::fmt::Debug for Acker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acker").field("assigned", &self.tracker.assigned()).finish()
    }
}
