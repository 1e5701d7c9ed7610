//! Acks: the application's word that a record is processed.

use std::sync::Arc;

use tracing::debug;

use super::offsets::TrackedPartition;
use crate::record::TopicPartition;

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
