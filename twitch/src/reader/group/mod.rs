//! Consumer-group reading, at least once by construction.
//!
//! Every record comes with an [`Ack`]. Offsets are committed only up to the
//! first record not yet acked, per partition, so a record is never committed
//! before the application processed it, whatever order acks come in.
//! Commits happen every `commit_interval`, when partitions are revoked (after
//! waiting up to `revoke_grace` for their in-flight records), and on
//! [`GroupReader::shutdown`] or drop. Auto-commit is always off.
//!
//! * `builder`: settings and joining the group.
//! * `rebalance`: librdkafka's callbacks, the [`RebalanceListener`].
//! * `flow`: what happens between records (rebalances, commits,
//!   backpressure, handing records out).
//! * `offsets`, `ack`: which offsets may be committed.
//! * `typed`: typed reads and the dead-letter topic.

mod ack;
mod builder;
mod flow;
mod monitor;
mod offsets;
mod protocol;
mod rebalance;
mod typed;

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaResult;
use rdkafka::{Offset as RdOffset, TopicPartitionList};
use tokio::sync::mpsc;
use tracing::info;

pub use ack::{Ack, Acker};
pub use builder::{GroupReaderBuilder, GroupStart};
pub use monitor::{PartitionLag, ReaderCounters, ReaderMonitor};
pub use protocol::GroupProtocol;
pub use rebalance::{GroupEvent, ListenerError, RebalanceListener};
pub use typed::OnDecodeError;

use self::flow::{commit_sync, Flow, GroupConsumer};
use self::rebalance::partition_list;
use self::typed::DeadLetter;
use crate::error::{Error, ErrorKind, Result};
use crate::reader::{Decoding, StartAt};
use crate::record::{ConsumedRecord, RecordRef, TopicPartition};

/// Rebalance events kept for an application that reads them late.
const EVENTS_CAPACITY: usize = 64;

/// How long a rewind waits for the committed offsets and the seeks.
const REWIND_TIMEOUT: Duration = Duration::from_secs(30);

/// What [`GroupReader::for_each_ref`] does after a record it handed out
/// was processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Go on with the next record.
    Continue,
    /// Stop reading and return.
    Stop,
}

/// The consumer and the topic names its records borrow.
struct Member {
    /// Taken only when the reader is dropped, to close the consumer.
    consumer: Option<Arc<GroupConsumer>>,
    /// The subscribed topics; records borrow their names from here.
    topics: Vec<Arc<str>>,
}

impl Member {
    fn consumer(&self) -> &Arc<GroupConsumer> {
        match &self.consumer {
            Some(consumer) => consumer,
            None => unreachable!("the consumer is taken only when the reader is dropped"),
        }
    }
}

/// A consumer-group member that commits only what was processed.
///
/// ```no_run
/// # async fn demo() -> twitch::Result<()> {
/// use futures::StreamExt;
/// use twitch::warden::KafkaCluster;
///
/// #[derive(serde::Deserialize)]
/// struct Reading { sensor: String, celsius: f64 }
///
/// let cluster = KafkaCluster::new("127.0.0.1:9092".into(), "docs".into());
/// let mut reader = cluster.group_reader("averagers").topic("temperatures").build()?;
/// {
///     let mut readings = reader.typed::<Reading>();
///     while let Some(item) = readings.next().await {
///         let (reading, ack) = item?;
///         println!("{} {}", reading.value.sensor, reading.value.celsius);
///         ack.ack(); // only now may its offset be committed
///     }
/// }
/// reader.shutdown().await?; // commits and leaves the group at once
/// # Ok(()) }
/// ```
pub struct GroupReader {
    member: Member,
    flow: Flow,
    decoding: Decoding,
    dead_letter: Option<DeadLetter>,
    group_id: String,
    /// Where a partition without a committed offset starts, for
    /// [`rewind`](Self::rewind).
    reset_to: StartAt,
}

impl std::fmt::Debug for GroupReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupReader")
            .field("group_id", &self.group_id)
            .field("assignment", &self.assignment())
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl GroupReader {
    fn consumer(&self) -> &Arc<GroupConsumer> {
        self.member.consumer()
    }

    /// The next record, read in place (no copy), and its [`Ack`]. The record
    /// borrows the reader; the ack does not, and may be acked any time later,
    /// on any task. Rebalances are carried out here, between records.
    ///
    /// ```no_run
    /// # async fn demo(reader: &mut twitch::GroupReader) -> twitch::Result<()> {
    /// while let Some(item) = reader.next_ref().await {
    ///     let (record, ack) = item?;
    ///     println!("{}@{}: {} bytes", record.partition(), record.offset(), record.payload().len());
    ///     ack.ack();
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn next_ref(&mut self) -> Option<Result<(RecordRef<'_>, Ack)>> {
        let (consumer, topics) = (self.member.consumer(), &self.member.topics);
        // A stream per call, as rdkafka's own `recv` makes one.
        let mut stream = consumer.stream();
        // (Not a `match`: its scrutinee, the ready record, would stay in this
        // future across the await; see `a_read_is_a_small_future`.)
        let next = 'next: {
            if let Some(next) = self.flow.ready_record(consumer, topics, &mut stream) {
                break 'next next;
            }
            // Boxed: the wait is large, and callers move this future into a
            // timeout or a select on every read.
            Box::pin(self.flow.wait_for_record(consumer, topics, &mut stream)).await
        };
        let (record, tracked) = match next {
            Ok(next) => next,
            Err(e) => return Some(Err(e)),
        };
        self.flow.handed_out(&tracked, record.offset());
        let ack = Ack::new(tracked, record.offset());
        Some(Ok((record, ack)))
    }

    /// Reads records in place and hands each to `process`, in the order they
    /// come, until `process` returns [`Step::Stop`] or an error. A record
    /// counts as processed (its offset may be committed) once `process`
    /// returns `Ok` for it. When it returns `Err`, that record stays
    /// unprocessed, so it and the records after it in its partition are read
    /// again after a restart or rebalance, and the error is returned; errors
    /// of the reader itself come back through `From<twitch::Error>`.
    ///
    /// ```no_run
    /// # async fn demo(reader: &mut twitch::GroupReader) -> twitch::Result<()> {
    /// use twitch::reader::Step;
    ///
    /// let mut bytes = 0;
    /// reader
    ///     .for_each_ref(|record| {
    ///         bytes += record.payload().len();
    ///         // Stop after a megabyte (this record counts as processed too).
    ///         Ok::<_, twitch::Error>(if bytes < 1 << 20 { Step::Continue } else { Step::Stop })
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn for_each_ref<E: From<Error>>(
        &mut self,
        mut process: impl FnMut(&RecordRef<'_>) -> Result<Step, E>,
    ) -> Result<(), E> {
        let (consumer, topics) = (self.member.consumer(), &self.member.topics);
        // One message stream for the whole call, rather than a receive (which
        // makes one) per record.
        let mut stream = consumer.stream();
        loop {
            let next = match self.flow.ready_record(consumer, topics, &mut stream) {
                Some(next) => next,
                None => self.flow.wait_for_record(consumer, topics, &mut stream).await,
            };
            let (record, tracked) = next?;
            match process(&record) {
                Ok(step) => {
                    tracked.processed_in_place(record.offset());
                    if step == Step::Stop {
                        return Ok(());
                    }
                }
                Err(e) => {
                    self.flow.handed_out(&tracked, record.offset());
                    return Err(e);
                }
            }
        }
    }

    /// The next record, as an owned copy, and its [`Ack`].
    pub async fn next(&mut self) -> Option<Result<(ConsumedRecord, Ack)>> {
        Some(self.next_ref().await?.map(|(record, ack)| (record.detach(), ack)))
    }

    /// Records (owned copies) and their acks as a stream.
    pub fn stream(&mut self) -> BoxStream<'_, Result<(ConsumedRecord, Ack)>> {
        futures::stream::unfold(self, |reader| async move { reader.next().await.map(|r| (r, reader)) }).boxed()
    }

    /// Marks a record processed without its [`Ack`], for example to skip an
    /// undecodable record returned in [`ErrorKind::Decode`](crate::ErrorKind::Decode).
    /// While a stream borrows the reader, use an [`Acker`] from
    /// [`acker`](Self::acker).
    pub fn mark_processed(&self, record: &ConsumedRecord) {
        self.acker().mark_processed(record);
    }

    /// A handle that marks records processed without their [`Ack`] and
    /// without borrowing the reader: take it before streaming with
    /// [`typed`](Self::typed) or [`stream`](Self::stream), to skip the
    /// undecodable records they return.
    ///
    /// ```no_run
    /// # async fn demo(mut reader: twitch::GroupReader) -> twitch::Result<()> {
    /// use futures::StreamExt;
    ///
    /// let acker = reader.acker();
    /// let mut values = reader.typed::<u64>();
    /// while let Some(item) = values.next().await {
    ///     match item {
    ///         Ok((value, ack)) => {
    ///             println!("{}", value.value);
    ///             ack.ack();
    ///         }
    ///         Err(e) => match e.into_kind() {
    ///             twitch::ErrorKind::Decode { record, source } => {
    ///                 eprintln!("skipping {}/{}@{}: {source}", record.topic, record.partition, record.offset);
    ///                 acker.mark_processed(&record);
    ///             }
    ///             other => return Err(other.into()),
    ///         },
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn acker(&self) -> Acker {
        Acker::new(Arc::clone(&self.consumer().context().tracker))
    }

    /// The offsets that may be committed now: per partition, the first
    /// record not yet processed.
    pub fn processed_offsets(&self) -> Vec<(TopicPartition, i64)> {
        self.consumer().context().tracker.committable(None)
    }

    /// The group's metadata, for committing offsets in a transaction.
    pub fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata> {
        self.consumer().group_metadata()
    }

    /// Rebalance events from now on, as the reader carries rebalances out.
    /// Nothing is kept until this is called; a later call replaces the
    /// receiver. Events that find the receiver full (64 unread) are dropped
    /// with a warning.
    pub fn events(&mut self) -> mpsc::Receiver<GroupEvent> {
        let (tx, rx) = mpsc::channel(EVENTS_CAPACITY);
        self.flow.events = Some(tx);
        rx
    }

    /// Partitions assigned to this member now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.consumer().context().tracker.assigned()
    }

    /// Records handed out and not yet acked.
    pub fn pending(&self) -> usize {
        self.consumer().context().tracker.total_pending()
    }

    /// The group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// Commits every processed offset now and waits for the broker (on a
    /// blocking thread: the async runtime is not blocked). A transactional
    /// reader refuses: its offsets commit with the transaction
    /// ([`ErrorKind::TransactionalReader`]).
    pub async fn commit(&mut self) -> Result<()> {
        let consumer = self.member.consumer();
        if !consumer.context().commits {
            return Err(ErrorKind::TransactionalReader { operation: "commit" }.into());
        }
        let offsets = consumer.context().tracker.committable(None);
        if offsets.is_empty() {
            return Ok(());
        }
        commit_sync(consumer, offsets).await?;
        self.flow.committed_now();
        Ok(())
    }

    /// Moves every assigned partition back to its committed offset (where
    /// the group has none, to where the group starts) and forgets the
    /// records handed out since: their acks become void and they are read
    /// again. For a transactional reader, after its transaction was aborted.
    pub async fn rewind(&mut self) -> Result<()> {
        let consumer = Arc::clone(self.member.consumer());
        let tracker = &consumer.context().tracker;
        let assigned = tracker.assigned();
        if assigned.is_empty() {
            return Ok(());
        }
        let member = Arc::clone(&consumer);
        let (reset, list) = (self.reset_to, partition_list(&assigned));
        let committed = tokio::task::spawn_blocking(move || rewind_blocking(&member, list?, reset))
            .await
            .map_err(|e| ErrorKind::Task(e.to_string()))?
            .map_err(|source| ErrorKind::Subscription { operation: "rewind", source })?;
        tracker.assign(&assigned);
        tracker.committed(&committed);
        self.flow.cursor.refresh(tracker);
        info!(?committed, "rewound to the committed offsets");
        Ok(())
    }

    /// Records that these offsets were committed in a transaction.
    pub(crate) fn committed_in_transaction(&self, offsets: &[(TopicPartition, i64)]) {
        self.consumer().context().tracker.committed(offsets);
    }

    /// Waits up to the revoke grace for records in flight, commits what was
    /// processed and leaves the group at once, so the other members take
    /// over without waiting for a session timeout.
    pub async fn shutdown(mut self) -> Result<()> {
        let consumer = Arc::clone(self.member.consumer());
        let context = consumer.context();
        self.flow.hold_revokes = false;
        if let Err(e) = self.flow.carry_out_pending(&consumer).await {
            // What is left is carried out by the close below.
            tracing::warn!(error = %e, "rebalance during shutdown failed");
        }
        let assigned = context.tracker.assigned();
        let outcome = self.flow.give_up(&consumer, &assigned, consumer.assignment_lost()).await;
        drop(consumer);
        // Closing sends LeaveGroup and blocks, so it runs off the async threads.
        crate::rt::spawn_blocking(move || drop(self)).await.map_err(|e| ErrorKind::Task(e.to_string()))?;
        info!("left consumer group");
        outcome
    }
}

/// Seeks `partitions` back to the group's committed offsets (`reset` where
/// it has none); returns the committed offsets.
fn rewind_blocking(
    consumer: &GroupConsumer,
    partitions: TopicPartitionList,
    reset: StartAt,
) -> KafkaResult<Vec<(TopicPartition, i64)>> {
    let committed = consumer.committed_offsets(partitions, REWIND_TIMEOUT)?;
    let mut seek = TopicPartitionList::new();
    let mut offsets = Vec::new();
    for e in committed.elements() {
        let to = match e.offset() {
            RdOffset::Offset(o) => {
                offsets.push((TopicPartition::new(e.topic(), e.partition()), o));
                RdOffset::Offset(o)
            }
            _ => reset.to_rd(),
        };
        seek.add_partition_offset(e.topic(), e.partition(), to)?;
    }
    for e in consumer.seek_partitions(seek, REWIND_TIMEOUT)?.elements() {
        e.error()?;
    }
    Ok(offsets)
}

impl Drop for GroupReader {
    fn drop(&mut self) {
        if let Some(consumer) = self.member.consumer.take() {
            // Closing commits what was processed (in the revoke callback) and
            // leaves the group; it blocks: inline outside a runtime, in
            // `block_in_place` on a multi-thread runtime, on the blocking
            // pool from a current-thread one (whose other tasks would stall).
            crate::rt::block_or_detach(move || {
                consumer.context().settle(&*consumer);
                drop(consumer);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    /// Readers move to other tasks and threads, and may be shared (`pending`,
    /// `assignment`, ...).
    #[test]
    fn readers_are_send_and_sync() {
        fn send_and_sync<T: Send + Sync>() {}
        send_and_sync::<super::GroupReader>();
        send_and_sync::<crate::PartitionReader>();
    }

    /// Callers move `next_ref`'s future into a timeout or a select on every
    /// read: it holds no record or error, and the wait for one is boxed.
    #[test]
    fn a_read_is_a_small_future() {
        fn size_of_future<'r, F: std::future::Future + 'r>(_: impl FnOnce(&'r mut super::GroupReader) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let (next_ref, next) = (size_of_future(super::GroupReader::next_ref), size_of_future(super::GroupReader::next));
        assert!(next_ref <= 96, "next_ref's future is {next_ref} bytes");
        assert!(next <= 112, "next's future is {next} bytes");
    }
}
