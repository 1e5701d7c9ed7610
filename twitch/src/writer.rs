//! Writers: records in, acknowledged by the broker.
//!
//! * [`PartitionWriter`] writes to one partition (what the seed code uses).
//! * [`KeyedWriter`] spreads records over a topic's partitions by key, with
//!   Kafka's default murmur2 partitioner, so other clients agree.
//! * [`TransactionalWriter`] writes in transactions, for exactly-once
//!   consume-transform-produce.
//!
//! All are idempotent by default (`enable.idempotence=true`, `acks=all`).
//! `produce` returns once librdkafka has queued the record; when that queue is
//! full it waits (backpressure) instead of failing. `flush` waits for the
//! broker's acknowledgements and returns every record that was not delivered,
//! with its reason, as [`ErrorKind::Delivery`](crate::ErrorKind::Delivery).
//!
//! Each writer owns its producer. A writer dropped with records in flight
//! (queued, not yet acknowledged) flushes them first, blocking.

use std::time::Duration;

mod core;
mod keyed;
mod partition;
mod transactional;

pub use keyed::KeyedWriter;
pub use partition::PartitionWriter;
pub use transactional::TransactionalWriter;

/// Producer settings twitch applies unless the user sets them.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("compression.type", "none"),
    ("partitioner", "murmur2_random"),
];

/// What a writer counted so far; see `counters()` on
/// [`KeyedWriter`] and [`PartitionWriter`]. Reading them costs a few atomic
/// loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WriterCounters {
    /// Records handed to librdkafka.
    pub queued: u64,
    /// Records the broker acknowledged.
    pub delivered: u64,
    /// Records whose delivery failed (each is also returned by a flush).
    pub failed: u64,
    /// Records queued whose delivery report has not come in.
    pub in_flight: u64,
}

/// How long `flush` waits by default.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
