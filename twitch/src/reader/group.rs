//! Consumer-group reading, at-least-once by construction.
//!
//! Every record comes with an [`Ack`]. Offsets are committed only up to the
//! first record not yet acked, per partition, so a record is never committed
//! before the application processed it, whatever order acks come in.
//! Commits happen every `commit_interval`, when partitions are revoked (after
//! waiting up to `revoke_grace` for their in-flight records), and on
//! [`GroupReader::shutdown`] or drop. Auto-commit is always off.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, StreamExt};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset as RdOffset, TopicPartitionList};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{decode_ref, decode_value, Decoded, Decoding, StartAt, CONSUMER_DEFAULTS};
use crate::codec::Format;
use crate::config::ClientSettings;
use crate::error::{is_transient, Error, Result, TransientLog};
use crate::reader::offsets::{Cursor, OffsetTracker, TrackedPartition};
use crate::reader::receiver::{Incoming, Receiver};
use crate::record::{ConsumedRecord, RecordRef, TopicPartition};
use crate::rt::block_here;
use crate::config::validate_topic_name;
use crate::writer::KeyedWriter;

/// A change of this member's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupEvent {
    /// These partitions were assigned to this member.
    Assigned(Vec<TopicPartition>),
    /// These partitions were taken away; their processed offsets were
    /// committed first.
    Revoked(Vec<TopicPartition>),
    /// The group coordinator reported a rebalance error.
    Error(String),
}

/// State shared by the reader, its acks and librdkafka's callbacks.
struct Shared {
    tracker: OffsetTracker,
    events: mpsc::UnboundedSender<GroupEvent>,
    revoke_grace: Duration,
    /// False for transactional readers, whose offsets commit with the
    /// producer's transaction.
    commits: bool,
}

/// Marks one record processed. Dropping it without [`Ack::ack`] leaves the
/// record uncommitted, so it is read again after a restart or rebalance.
#[must_use = "a record is committed only once its Ack is acked"]
pub struct Ack {
    /// The record's partition as assigned when it was read: acking touches
    /// only its offsets (and lock), and a revoke voids it.
    tracked: Arc<TrackedPartition>,
    offset: i64,
}

impl Ack {
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
        TopicPartition::new(self.topic(), self.partition())
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

/// What to do with a record that does not decode, in [`GroupReader::typed`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnDecodeError {
    /// Yield [`Error::Decode`] with the record; it stays unprocessed (and so
    /// uncommitted) until the application calls
    /// [`GroupReader::mark_processed`] on it.
    #[default]
    Fail,
    /// Write the raw record to this dead-letter topic, with headers saying
    /// why and where it came from, mark it processed, and go on.
    DeadLetter(String),
}

/// What [`GroupReader::for_each_ref`] does after a record it handed out
/// was processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Go on with the next record.
    Continue,
    /// Stop reading and return.
    Stop,
}

/// The dead-letter writer, and the record on its way there.
struct DeadLetter {
    writer: KeyedWriter,
    parked: Option<(crate::record::Record, Ack)>,
    written: u64,
}

struct GroupContext {
    shared: Arc<Shared>,
}

fn tps_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements().iter().map(|e| TopicPartition::new(e.topic(), e.partition())).collect()
}

fn tpl_of(offsets: &[(TopicPartition, i64)]) -> KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for (tp, o) in offsets {
        tpl.add_partition_offset(&tp.topic, tp.partition, RdOffset::Offset(*o))?;
    }
    Ok(tpl)
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else { return };
        let revoked = tps_of(tpl);
        // Give in-flight work on these partitions a moment to finish.
        let deadline = Instant::now() + self.shared.revoke_grace;
        block_here(|| {
            while revoked.iter().map(|tp| self.shared.tracker.pending(tp)).sum::<usize>() > 0
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let offsets = self.shared.tracker.committable(Some(&revoked));
        if self.shared.commits && !offsets.is_empty() && !consumer.assignment_lost() {
            let res = tpl_of(&offsets).and_then(|tpl| consumer.commit(&tpl, CommitMode::Sync));
            match res {
                Ok(()) => info!(?offsets, "committed processed offsets of revoked partitions"),
                Err(e) => warn!(error = %e, "commit on revoke failed; those records will be read again"),
            }
        }
        let still_pending: usize = revoked.iter().map(|tp| self.shared.tracker.pending(tp)).sum();
        if still_pending > 0 {
            warn!(still_pending, "partitions revoked with unprocessed records; they will be read again");
        }
        self.shared.tracker.revoke(&revoked);
        let _ = self.shared.events.send(GroupEvent::Revoked(revoked));
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let assigned = tps_of(tpl);
                info!(partitions = ?assigned, "partitions assigned");
                self.shared.tracker.assign(assigned.iter().cloned());
                let _ = self.shared.events.send(GroupEvent::Assigned(assigned));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                warn!(error = %e, "rebalance error");
                let _ = self.shared.events.send(GroupEvent::Error(e.to_string()));
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                let done: Vec<(TopicPartition, i64)> = offsets
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        RdOffset::Offset(o) => Some((TopicPartition::new(e.topic(), e.partition()), o)),
                        _ => None,
                    })
                    .collect();
                self.shared.tracker.committed(&done);
            }
            Err(e) => warn!(error = %e, "offset commit failed; will retry"),
        }
    }
}

/// Builds a [`GroupReader`]; get one from
/// [`KafkaCluster::group_reader`](crate::warden::KafkaCluster::group_reader).
#[derive(Debug, Clone)]
pub struct GroupReaderBuilder {
    settings: ClientSettings,
    group_id: String,
    topics: Vec<String>,
    start: StartAt,
    commit_interval: Duration,
    revoke_grace: Duration,
    max_pending_per_partition: usize,
    decoding: Decoding,
    on_decode_error: OnDecodeError,
    transactional: bool,
}

impl GroupReaderBuilder {
    pub(crate) fn new(settings: ClientSettings, group_id: &str) -> Self {
        GroupReaderBuilder {
            settings,
            group_id: group_id.to_owned(),
            topics: Vec::new(),
            start: StartAt::Beginning,
            commit_interval: Duration::from_secs(1),
            revoke_grace: Duration::from_secs(5),
            max_pending_per_partition: 10_000,
            decoding: Decoding::default(),
            on_decode_error: OnDecodeError::Fail,
            transactional: false,
        }
    }

    /// Subscribes to this topic too.
    pub fn topic(mut self, topic: &str) -> Self {
        self.topics.push(topic.to_owned());
        self
    }

    /// Where a group with no committed offset starts: [`StartAt::Beginning`]
    /// (default) or [`StartAt::End`].
    pub fn start(mut self, start: StartAt) -> Self {
        self.start = start;
        self
    }

    /// How often processed offsets are committed (default 1 s). Measured
    /// on the kernel's coarse clock, so to within a few milliseconds.
    pub fn commit_interval(mut self, every: Duration) -> Self {
        self.commit_interval = every;
        self
    }

    /// How long a revoke waits for in-flight records of the revoked
    /// partitions to be acked before committing (default 5 s).
    pub fn revoke_grace(mut self, grace: Duration) -> Self {
        self.revoke_grace = grace;
        self
    }

    /// Unacked records per partition above which fetching of that partition
    /// pauses, until half of them are acked (default 10,000).
    pub fn max_pending_per_partition(mut self, max: usize) -> Self {
        self.max_pending_per_partition = max.max(1);
        self
    }

    /// Format for records that do not name one (default bincode).
    pub fn format(mut self, format: Format) -> Self {
        self.decoding.format = format;
        self
    }

    /// Whether typed reads look at each record's headers (default true): to
    /// follow a [`FORMAT_HEADER`](crate::codec::FORMAT_HEADER) and to carry the
    /// headers in [`RecordMeta::headers`](crate::RecordMeta::headers). Turn it
    /// off when the writers set no headers (twitch's do not, by default):
    /// every record is then decoded with [`format`](Self::format), `headers`
    /// stays empty, and each typed read saves librdkafka's header parse
    /// (about 0.13 µs, a fifth of reading and decoding a small bincode value;
    /// docs/performance.md). Reads of raw records keep their headers either
    /// way.
    pub fn typed_headers(mut self, yes: bool) -> Self {
        self.decoding.headers = yes;
        self
    }

    /// What [`GroupReader::typed`] does with undecodable records.
    pub fn on_decode_error(mut self, policy: OnDecodeError) -> Self {
        self.on_decode_error = policy;
        self
    }

    /// How long the coordinator waits for a silent member before giving its
    /// partitions to the others (librdkafka's default is 45 s); heartbeats
    /// go every third of it.
    pub fn session_timeout(self, timeout: Duration) -> Self {
        let ms = timeout.as_millis().max(3);
        self.set("session.timeout.ms", &ms.to_string()).set("heartbeat.interval.ms", &(ms / 3).to_string())
    }

    /// Static membership: a restart with the same id within the session
    /// timeout gets the same partitions back without a rebalance.
    pub fn static_member(self, instance_id: &str) -> Self {
        self.set("group.instance.id", instance_id)
    }

    /// Cooperative-sticky assignment: rebalances move only the partitions
    /// that must move.
    pub fn cooperative(self) -> Self {
        self.set("partition.assignment.strategy", "cooperative-sticky")
    }

    /// Reads only committed transactional records (`true`, librdkafka's
    /// default) or everything (`false`).
    pub fn read_committed(self, yes: bool) -> Self {
        self.set("isolation.level", if yes { "read_committed" } else { "read_uncommitted" })
    }

    /// For consume-transform-produce: the reader never commits by itself;
    /// its processed offsets are committed only through
    /// [`TransactionalWriter::send_offsets`](crate::writer::TransactionalWriter::send_offsets).
    /// Also reads only committed records.
    pub fn transactional(mut self) -> Self {
        self.transactional = true;
        self.read_committed(true)
    }

    /// Any librdkafka consumer setting. `enable.auto.commit` cannot be turned
    /// on: twitch commits only processed records.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.settings = self.settings.set(key, value);
        self
    }

    /// Creates the consumer and subscribes. Partitions arrive with the
    /// first rebalance, while the reader is being read.
    pub fn build(self) -> Result<GroupReader> {
        self.settings.validate()?;
        if self.group_id.trim().is_empty() {
            return Err(Error::config("the consumer group id is empty"));
        }
        if self.topics.is_empty() {
            return Err(Error::config("a group reader needs at least one topic"));
        }
        for t in &self.topics {
            validate_topic_name(t)?;
        }
        for key in ["enable.auto.commit", "enable.auto.offset.store"] {
            if self.settings.get(key).is_some_and(|v| v != "false") {
                return Err(Error::config(format!(
                    "`{key}` cannot be enabled: twitch commits only what the application acked"
                )));
            }
        }
        let reset = match self.start {
            StartAt::Beginning => "earliest",
            StartAt::End => "latest",
            StartAt::Offset(_) => {
                return Err(Error::config("a group starts at the beginning or the end; seek to offsets with a partition reader"))
            }
        };
        let mut config = self.settings.client_config(CONSUMER_DEFAULTS);
        config.set("group.id", &self.group_id).set("auto.offset.reset", reset);
        if self.settings.get("auto.offset.reset").is_some() {
            config.set("auto.offset.reset", self.settings.get("auto.offset.reset").unwrap_or(reset));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let topics: Vec<Arc<str>> = self.topics.iter().map(|t| Arc::from(t.as_str())).collect();
        let shared = Arc::new(Shared {
            tracker: OffsetTracker::new(&topics),
            events: tx,
            revoke_grace: self.revoke_grace,
            commits: !self.transactional,
        });
        let consumer: StreamConsumer<GroupContext> = config
            .create_with_context(GroupContext { shared: Arc::clone(&shared) })
            .map_err(|source| Error::ClientCreation { role: "consumer", source })?;
        let names: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|source| Error::Subscription { operation: "subscribe", source })?;
        let dead_letter = match &self.on_decode_error {
            OnDecodeError::DeadLetter(topic) => {
                Some(DeadLetter { writer: KeyedWriter::new(&self.settings, topic)?, parked: None, written: 0 })
            }
            OnDecodeError::Fail => None,
        };
        info!(group = %self.group_id, topics = ?names, "joined consumer group");
        Ok(GroupReader {
            receiver: Some(Receiver::new(consumer)),
            shared,
            events: Some(rx),
            group_id: self.group_id,
            topics,
            cursor: Cursor::default(),
            decoding: self.decoding,
            flow: Flow {
                commit_every: self.commit_interval.into(),
                last_commit: coarsetime::Instant::now(),
                max_pending: self.max_pending_per_partition,
                full: false,
                paused: HashSet::new(),
                transient: TransientLog::default(),
            },
            dead_letter,
        })
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
    receiver: Option<Receiver<GroupContext>>,
    shared: Arc<Shared>,
    events: Option<mpsc::UnboundedReceiver<GroupEvent>>,
    group_id: String,
    /// The subscribed topics. Records borrow their names from here; with
    /// one topic, a record's topic is known without asking librdkafka for
    /// it (a C string to measure and check as UTF-8 per record).
    topics: Vec<Arc<str>>,
    /// The assigned partitions as the reader last saw them.
    cursor: Cursor,
    decoding: Decoding,
    flow: Flow,
    dead_letter: Option<DeadLetter>,
}

/// Commit timing and backpressure: what the reading loop updates while the
/// record it hands out still borrows the consumer.
struct Flow {
    /// The builder's `commit_interval`, on the clock below.
    commit_every: coarsetime::Duration,
    /// When offsets were last committed, on the kernel's coarse monotonic
    /// clock (milliseconds apart): it is read once per record, and costs a
    /// fifth of a precise clock read (5 ns against 25 here).
    last_commit: coarsetime::Instant,
    max_pending: usize,
    /// A partition reached `max_pending` unprocessed records.
    full: bool,
    paused: HashSet<TopicPartition>,
    transient: TransientLog,
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

/// The consumer's receiver (borrowed either way); only `shutdown` (which
/// consumes the reader) and drop take it.
fn present<R>(receiver: Option<R>) -> R {
    receiver.unwrap_or_else(|| unreachable!("consumer present until shutdown"))
}

impl GroupReader {
    fn consumer(&self) -> &StreamConsumer<GroupContext> {
        present(self.receiver.as_ref()).consumer()
    }

    /// What the reading loops use, borrowed apart: the record they hand out
    /// borrows the consumer and a topic name while they update the rest.
    #[allow(clippy::type_complexity)]
    fn reading_parts(
        &mut self,
    ) -> (Incoming<'_, GroupContext>, &StreamConsumer<GroupContext>, &Shared, &mut Flow, &[Arc<str>], &mut Cursor) {
        let (incoming, consumer) = present(self.receiver.as_mut()).split();
        (incoming, consumer, &self.shared, &mut self.flow, &self.topics, &mut self.cursor)
    }

    /// The next record, read in place (no copy), and its [`Ack`]. The record
    /// borrows the reader; the ack does not, and may be acked any time later.
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
        let (mut incoming, consumer, shared, flow, topics, cursor) = self.reading_parts();
        'next: loop {
            let msg = 'received: {
                // (A statement of its own, so that its result is gone before
                // the wait below and is not kept in this future.)
                match flow.ready_record(&mut incoming, consumer, shared) {
                    Ok(Some(msg)) => break 'received msg,
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
                match flow.wait_for_record(&mut incoming, shared).await {
                    Some(msg) => *msg,
                    None => continue 'next,
                }
            };
            match msg {
                Ok(msg) => {
                    let Some((topic, tracked)) = flow.hand_out(&msg, topics, &shared.tracker, cursor) else { continue };
                    let ack = Ack { tracked: Arc::clone(tracked), offset: msg.offset() };
                    return Some(Ok((RecordRef::new(msg, topic), ack)));
                }
                Err(source) if is_transient(&source) => flow.transient.report(&source),
                Err(source) => return Some(Err(Error::Consume { source })),
            }
        }
    }

    /// Reads records in place and hands each to `process`, in the order they
    /// come, until `process` returns [`Step::Stop`] or an error. A record
    /// counts as processed (its offset may be committed) once `process`
    /// returns `Ok` for it. When it returns `Err`, that record stays
    /// unprocessed, so it and the records after it in its partition are read
    /// again after a restart or rebalance, and the error is returned; errors
    /// of the reader itself come back through `From<twitch::Error>`.
    ///
    /// The cheapest way to read: no [`Ack`] and no future per record (in the
    /// benchmark, within 3 % of raw rdkafka's cheapest loop, over one message
    /// stream, in instructions per record; docs/performance.md). Use
    /// [`next_ref`](Self::next_ref) or [`next`](Self::next) when processing
    /// awaits, or acks later or on another task. Cancel-safe: it awaits only
    /// while no record is in hand, so dropping the future loses nothing.
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
        let (mut incoming, consumer, shared, flow, topics, cursor) = self.reading_parts();
        'next: loop {
            // As in `next_ref`.
            let msg = 'received: {
                if let Some(msg) = flow.ready_record(&mut incoming, consumer, shared)? {
                    break 'received msg;
                }
                match flow.wait_for_record(&mut incoming, shared).await {
                    Some(msg) => *msg,
                    None => continue 'next,
                }
            };
            match msg {
                Ok(msg) => {
                    let Some((topic, tracked)) = flow.hand_out(&msg, topics, &shared.tracker, cursor) else { continue };
                    let offset = msg.offset();
                    let step = process(&RecordRef::new(msg, topic))?;
                    // The reader's own ack.
                    tracked.processed(offset);
                    if step == Step::Stop {
                        return Ok(());
                    }
                }
                Err(source) if is_transient(&source) => flow.transient.report(&source),
                Err(source) => return Err(Error::Consume { source }.into()),
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

    /// The next record decoded as `T`, in place (the payload is never
    /// copied), with its [`Ack`]. Undecodable records are handled by the
    /// reader's [`OnDecodeError`] policy.
    ///
    /// Cancel-safe: a record being parked in the dead-letter topic when the
    /// future is dropped stays parked and is written (again) by the next
    /// call, so it is never lost, though it may reach the dead-letter topic
    /// twice.
    pub async fn next_typed<T: DeserializeOwned + Send>(&mut self) -> Option<Result<(Decoded<T>, Ack)>> {
        self.next_decoded(decode_ref::<T>).await
    }

    /// The next record's value alone, decoded in place, with its [`Ack`]:
    /// [`next_typed`](Self::next_typed) without the record's metadata, so
    /// the cheapest typed read. Undecodable records are handled by the
    /// reader's [`OnDecodeError`] policy; cancel-safe as `next_typed` is.
    pub async fn next_value<T: DeserializeOwned + Send>(&mut self) -> Option<Result<(T, Ack)>> {
        self.next_decoded(decode_value::<T>).await
    }

    /// The next record made into `R` by `decode`, with the dead-letter
    /// policy applied to records it cannot make.
    async fn next_decoded<R>(&mut self, decode: fn(Decoding, &RecordRef<'_>) -> Result<R>) -> Option<Result<(R, Ack)>> {
        loop {
            if let Err(e) = self.write_parked().await {
                return Some(Err(e));
            }
            let (decoding, parks) = (self.decoding, self.dead_letter.is_some());
            let (record, source, ack) = {
                let (record, ack) = match self.next_ref().await? {
                    Ok(pair) => pair,
                    Err(e) => return Some(Err(e)),
                };
                match decode(decoding, &record) {
                    Ok(decoded) => return Some(Ok((decoded, ack))),
                    Err(Error::Decode { record, source }) if parks => (record, source, ack),
                    Err(e) => return Some(Err(e)),
                }
            };
            warn!(topic = %record.topic, partition = record.partition, offset = record.offset, error = %source, "undecodable record goes to the dead-letter topic");
            if let Some(dl) = self.dead_letter.as_mut() {
                dl.parked = Some((crate::reader::dead_letter_record(&record, &source), ack));
            }
        }
    }

    /// Writes the record waiting for the dead-letter topic, then acks it.
    async fn write_parked(&mut self) -> Result<()> {
        let Some(dl) = self.dead_letter.as_mut() else { return Ok(()) };
        let Some((parked, _)) = dl.parked.as_ref() else { return Ok(()) };
        dl.writer.produce_and_flush(parked.clone()).await?;
        if let Some((_, ack)) = dl.parked.take() {
            ack.ack();
        }
        dl.written += 1;
        Ok(())
    }

    /// Records decoded as `T`, with their acks, as a stream.
    pub fn typed<T: DeserializeOwned + Send>(&mut self) -> BoxStream<'_, Result<(Decoded<T>, Ack)>> {
        futures::stream::unfold(self, |reader| async move { reader.next_typed::<T>().await.map(|r| (r, reader)) }).boxed()
    }

    /// Marks a record processed without its [`Ack`], for example to skip an
    /// undecodable record returned in [`Error::Decode`].
    pub fn mark_processed(&self, record: &ConsumedRecord) {
        self.shared.tracker.mark_processed(&record.topic, record.partition, record.offset);
    }

    /// The offsets that may be committed now: per partition, the first
    /// record not yet processed.
    pub fn processed_offsets(&self) -> Vec<(TopicPartition, i64)> {
        self.shared.tracker.committable(None)
    }

    /// The group's metadata, for committing offsets in a transaction.
    pub fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata> {
        self.consumer().group_metadata()
    }

    /// Rebalance events. Returns the receiver once; later calls get `None`.
    pub fn events(&mut self) -> Option<mpsc::UnboundedReceiver<GroupEvent>> {
        self.events.take()
    }

    /// Partitions assigned to this member now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.shared.tracker.assigned()
    }

    /// Records handed out and not yet acked.
    pub fn pending(&self) -> usize {
        self.shared.tracker.total_pending()
    }

    /// Records sent to the dead-letter topic so far.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_letter.as_ref().map_or(0, |dl| dl.written)
    }

    /// The group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// Commits every processed offset now and waits for the broker.
    pub async fn commit(&mut self) -> Result<()> {
        let offsets = self.shared.tracker.committable(None);
        if offsets.is_empty() || !self.shared.commits {
            return Ok(());
        }
        let tpl = tpl_of(&offsets).map_err(|source| Error::Commit { source })?;
        block_here(|| self.consumer().commit(&tpl, CommitMode::Sync)).map_err(|source| Error::Commit { source })?;
        self.shared.tracker.committed(&offsets);
        self.flow.last_commit = coarsetime::Instant::now();
        Ok(())
    }

    /// Commits what was processed and leaves the group at once, so the other
    /// members take over without waiting for a session timeout.
    pub async fn shutdown(mut self) -> Result<()> {
        let committed = self.commit().await;
        if let Some(receiver) = self.receiver.take() {
            // Closing sends LeaveGroup and runs the revoke callback; it blocks,
            // so it runs off the async threads.
            tokio::task::spawn_blocking(move || drop(receiver)).await.map_err(|e| Error::Task(e.to_string()))?;
        }
        info!(group = %self.group_id, "left consumer group");
        committed
    }
}

impl Flow {
    /// Commits when due, applies backpressure, and takes the next record if
    /// one is waiting. A record usually is; taking it without an await point
    /// keeps a receive future out of the reader's futures (a future is moved
    /// by value, with a memcpy, each time a caller wraps it), and taking it
    /// from the receiver's own stream registers no waker (item 23).
    #[inline(always)]
    fn ready_record<'c>(
        &mut self,
        incoming: &mut Incoming<'c, GroupContext>,
        consumer: &StreamConsumer<GroupContext>,
        shared: &Shared,
    ) -> Result<Option<KafkaResult<BorrowedMessage<'c>>>> {
        self.commit_if_due(consumer, shared);
        self.apply_backpressure(consumer, shared)?;
        Ok(incoming.take())
    }

    /// Waits for a record, or for a reason to look again: `None` when a
    /// commit is due (to commit acks that come in while no record does) or,
    /// while partitions are paused, at an ack (to resume as soon as one
    /// comes). Boxed, and so is what it returns: waiting is the rare path,
    /// and its timer, notification and result would otherwise make the
    /// future of every read several times larger.
    fn wait_for_record<'w, 'c>(
        &self,
        incoming: &'w mut Incoming<'c, GroupContext>,
        shared: &'w Shared,
    ) -> Pin<Box<impl Future<Output = Option<Box<KafkaResult<BorrowedMessage<'c>>>>> + 'w>> {
        let until_commit = Duration::from(self.commit_every).saturating_sub(self.last_commit.elapsed().into());
        let commit_at = tokio::time::Instant::now() + until_commit;
        let paused = !self.paused.is_empty();
        Box::pin(async move {
            tokio::select! {
                msg = incoming.recv() => Some(Box::new(msg)),
                _ = shared.tracker.signal().acked(), if paused => None,
                _ = tokio::time::sleep_until(commit_at), if shared.commits => None,
            }
        })
    }

    /// Records that `msg` is handed to the application and returns the topic
    /// name to hand it out with (the reader's copy; with one topic, known
    /// without asking librdkafka) and its partition, for its ack; `None` for
    /// a record of a partition not (yet) tracked, which is skipped and read
    /// again later. Always inlined: called as a function, it cost the group
    /// read about 26 instructions per record more.
    #[inline(always)]
    fn hand_out<'t, 'c>(
        &mut self,
        msg: &BorrowedMessage<'_>,
        topics: &'t [Arc<str>],
        tracker: &OffsetTracker,
        cursor: &'c mut Cursor,
    ) -> Option<(&'t Arc<str>, &'c Arc<TrackedPartition>)> {
        let (partition, offset) = (msg.partition(), msg.offset());
        let topic = match topics {
            [only] => Some(only),
            all => all.iter().find(|t| ***t == *msg.topic()),
        };
        let handed = topic.and_then(|topic| tracker.handed_out(cursor, topic, partition, offset));
        let (Some(topic), Some((tracked, unprocessed))) = (topic, handed) else {
            debug!(topic = msg.topic(), partition, offset, "record of a partition not (yet) tracked; skipped, it will be read again");
            return None;
        };
        self.full |= unprocessed >= self.max_pending;
        Some((topic, tracked))
    }

    #[inline]
    fn commit_if_due(&mut self, consumer: &StreamConsumer<GroupContext>, shared: &Shared) {
        if shared.commits && self.last_commit.elapsed() >= self.commit_every {
            self.commit_now(consumer, shared);
        }
    }

    #[cold]
    fn commit_now(&mut self, consumer: &StreamConsumer<GroupContext>, shared: &Shared) {
        self.last_commit = coarsetime::Instant::now();
        let offsets = shared.tracker.committable(None);
        if offsets.is_empty() {
            return;
        }
        match tpl_of(&offsets).and_then(|tpl| consumer.commit(&tpl, CommitMode::Async)) {
            Ok(()) => debug!(?offsets, "commit sent"),
            Err(e) => warn!(error = %e, "periodic commit failed; will retry"),
        }
    }

    #[inline]
    fn apply_backpressure(&mut self, consumer: &StreamConsumer<GroupContext>, shared: &Shared) -> Result<()> {
        // The common case, without a lock: nothing paused, and no partition
        // reached the limit since the last look.
        if self.paused.is_empty() && !self.full {
            return Ok(());
        }
        self.pause_or_resume(consumer, shared)
    }

    #[cold]
    fn pause_or_resume(&mut self, consumer: &StreamConsumer<GroupContext>, shared: &Shared) -> Result<()> {
        self.full = false;
        // Acks from now on wake the reader, so none that could resume a
        // partition after the counts below is missed.
        shared.tracker.signal().set_waiting(true);
        let assigned = shared.tracker.pending_by_partition();
        self.paused.retain(|tp| assigned.iter().any(|(a, _)| a == tp));
        let (mut pause, mut resume) = (Vec::new(), Vec::new());
        for (tp, pending) in assigned {
            if !self.paused.contains(&tp) && pending >= self.max_pending {
                pause.push(tp);
            } else if self.paused.contains(&tp) && pending <= self.max_pending / 2 {
                resume.push(tp);
            }
        }
        let tpl_for = |tps: &[TopicPartition]| {
            let mut tpl = TopicPartitionList::new();
            for tp in tps {
                tpl.add_partition(&tp.topic, tp.partition);
            }
            tpl
        };
        if !pause.is_empty() {
            debug!(partitions = ?pause, "pausing: too many unprocessed records");
            consumer.pause(&tpl_for(&pause)).map_err(|source| Error::Subscription { operation: "pause", source })?;
            self.paused.extend(pause);
        }
        if !resume.is_empty() {
            debug!(partitions = ?resume, "resuming");
            consumer.resume(&tpl_for(&resume)).map_err(|source| Error::Subscription { operation: "resume", source })?;
            for tp in &resume {
                self.paused.remove(tp);
            }
        }
        // Only a reader with paused partitions waits for acks.
        shared.tracker.signal().set_waiting(!self.paused.is_empty());
        Ok(())
    }
}

impl Drop for GroupReader {
    fn drop(&mut self) {
        if let Some(receiver) = self.receiver.take() {
            // The consumer's own drop commits through the revoke callback and
            // leaves the group.
            block_here(|| drop(receiver));
        }
    }
}

