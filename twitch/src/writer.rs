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
//! # Failed deliveries
//!
//! A record that cannot be delivered (the broker refused it, or it was not
//! acknowledged within `message.timeout.ms`) comes back with its reason, as
//! a [`DeliveryFailure`](crate::DeliveryFailure) holding a copy of the record.
//! The writer hands failures back as soon as it learns of them: the next
//! `produce`, `produce_ref`, `send` or `send_keyed` returns
//! [`ErrorKind::Delivery`](crate::ErrorKind::Delivery) with every failure
//! reported so far, *after* queueing the record it was given (that record is
//! in flight; do not send it again). So an application learns of a broker
//! outage within `message.timeout.ms` (plus up to a second: librdkafka looks
//! for expired records every second), and the failures a writer keeps never
//! outgrow librdkafka's queue (`queue.buffering.max.messages`). A flush, or
//! `take_failures`, takes the ones reported since. A flush that ran out of
//! time after some records failed reports both, in one `Delivery` error
//! whose `flush_timed_out` is set. A
//! [`TransactionalWriter`]'s failures belong to its open transaction, which
//! cannot commit then; records dropped by an abort are not reported.
//!
//! # Dropping a writer
//!
//! Each writer owns its producer. A writer dropped with records in flight
//! (queued, not yet acknowledged) flushes them first, for up to its flush
//! timeout (unless its last flush timed out), logging what failed; then the
//! producer closes. Both block, so where they run depends on the caller:
//! outside a Tokio runtime, in the drop; on a multi-thread runtime, the flush
//! in `block_in_place` (the runtime's other tasks move to another thread),
//! so that the records are delivered when the drop returns, and the close on
//! the blocking pool; on a current-thread runtime, both on the blocking pool,
//! so the drop returns at once and the runtime's other tasks go on. The
//! runtime waits for its blocking pool when it shuts down (the end of a
//! `#[tokio::main]`), but not after `shutdown_background`. To know the
//! outcome, flush before dropping.

use std::time::Duration;

mod core;
mod delivery;
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
    /// Records whose delivery failed (each is also handed back by a
    /// `produce`, a flush or `take_failures`, except the records an aborted
    /// transaction dropped).
    pub failed: u64,
    /// Records queued whose delivery report has not come in.
    pub in_flight: u64,
}

/// How long `flush` waits by default.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
