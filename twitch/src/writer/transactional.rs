//! Exactly-once: a transactional writer for consume-transform-produce.

use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::{Offset as RdOffset, TopicPartitionList};
use serde::Serialize;
use tracing::error;

use super::core::{Outgoing, WriterCore};
use super::delivery::DeliveryTracker;
use crate::codec::Format;
use crate::config::ClientSettings;
use crate::error::{DeliveryFailure, Error, ErrorKind, Result, TransactionErrorKind};
use crate::record::{Record, TopicPartition};

/// Writes records to a topic in transactions: all of a transaction's records
/// (and, for consume-transform-produce, the consumed offsets) become visible
/// to `read_committed` readers together, or not at all.
///
/// A failed call says, through [`Error::is_retriable`],
/// [`Error::requires_abort`] and [`Error::is_fatal`], what the transaction
/// needs next, after librdkafka's error classes:
///
/// * retriable: the transaction is still open; call the same method again;
/// * requires abort: the transaction can no longer commit; it is still open
///   and must be [aborted](Self::abort) before the next one [begins](Self::begin);
/// * fatal (for example, a newer writer with the same transactional id fenced
///   this one): the writer is unusable and refuses every later call; create a
///   new one.
///
/// A call made at the wrong time (`produce`, `flush`, `commit`, ... with no
/// transaction open, `begin` with one open) fails with
/// [`ErrorKind::TransactionState`], which names the call to make first, and
/// changes nothing. A record whose delivery failed belongs to its
/// transaction: `produce` hands it back as soon as the writer learns of it
/// (see [`produce`](Self::produce)), and the transaction must be aborted.
///
/// For consume-transform-produce, a
/// [`TransactionalStage`](crate::stage::TransactionalStage) pairs this writer
/// with a transactional group reader and does the bookkeeping below for you.
/// By hand, the input offsets go into the transaction, a revoke ends the
/// transaction first, and an abort rewinds the reader:
///
/// ```no_run
/// # async fn demo(mut input: twitch::GroupReader) -> twitch::Result<()> {
/// use twitch::{warden::KafkaCluster, ErrorKind, Record};
///
/// let cluster = KafkaCluster::new("127.0.0.1:9092".into(), "docs".into());
/// let mut out = cluster.transactional_writer("doubled", "doubler-1").await?;
/// out.begin().await?;
/// for _ in 0..100 {
///     match input.next().await {
///         Some(Ok((record, ack))) => {
///             out.produce(Record::new([record.payload(), record.payload()].concat())).await?;
///             ack.ack();
///         }
///         // Partitions are about to go: end the transaction while they are ours.
///         Some(Err(e)) if matches!(e.kind(), ErrorKind::Revoking { .. }) => break,
///         Some(Err(e)) => return Err(e),
///         None => break,
///     }
/// }
/// // The input offsets commit with the transaction.
/// if let Some(group) = input.group_metadata() {
///     out.send_offsets(&input.processed_offsets(), group).await?;
/// }
/// if let Err(e) = out.commit().await {
///     if e.is_fatal() {
///         return Err(e);
///     }
///     out.abort().await?;
///     input.rewind().await?; // the input of the aborted transaction is read again
/// }
/// # Ok(()) }
/// ```
pub struct TransactionalWriter {
    core: WriterCore,
    state: State,
}

/// Where the writer's transaction stands.
#[derive(Debug)]
enum State {
    /// No transaction is open.
    Idle,
    /// A transaction is open (possibly failed, waiting to be aborted).
    Open,
    /// A call failed fatally with this error; the writer is unusable.
    Failed(KafkaError),
}

impl std::fmt::Debug for TransactionalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalWriter")
            .field("topic", &self.core.topic)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Maps a transaction failure. A broker that refuses the transactional id
/// or does not know the transaction requests cannot run transactions.
fn txn_error(operation: &'static str, source: KafkaError) -> Error {
    match source.rdkafka_error_code() {
        Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed) => ErrorKind::Unsupported {
            operation: "transactions",
            detail: format!(
                "{source}: the broker refused the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED): \
                 it has no transaction support, or its ACLs deny this transactional.id"
            ),
        }.into(),
        Some(RDKafkaErrorCode::UnsupportedVersion | RDKafkaErrorCode::UnsupportedFeature) => {
            ErrorKind::Unsupported { operation: "transactions", detail: source.to_string() }.into()
        }
        _ => ErrorKind::Transaction { operation, kind: TransactionErrorKind::of(&source), source }.into(),
    }
}

type TxnProducer = ThreadedProducer<DeliveryTracker>;

/// Runs one of librdkafka's blocking transaction calls on the blocking pool.
async fn call_blocking<F>(producer: &TxnProducer, timeout: Duration, f: F) -> Result<KafkaResult<()>>
where
    F: FnOnce(&TxnProducer, Duration) -> KafkaResult<()> + Send + 'static,
{
    let producer = producer.clone();
    crate::rt::spawn_blocking(move || f(&producer, timeout)).await.map_err(|e| ErrorKind::Task(e.to_string()).into())
}

/// The error of any call after `source` made the writer unusable.
fn unusable(operation: &'static str, source: &KafkaError) -> Error {
    ErrorKind::Transaction { operation, source: source.clone(), kind: TransactionErrorKind::Fatal }.into()
}

impl TransactionalWriter {
    pub(crate) async fn new(settings: &ClientSettings, topic: &str, transactional_id: &str) -> Result<Self> {
        if transactional_id.trim().is_empty() {
            return Err(Error::config("the transactional id is empty"));
        }
        let settings = settings.clone().set("transactional.id", transactional_id);
        let core = WriterCore::new(&settings, topic)?;
        call_blocking(&core.producer, core.flush_timeout, |p, t| p.init_transactions(t))
            .await?
            .map_err(|e| txn_error("init", e))?;
        Ok(TransactionalWriter { core, state: State::Idle })
    }

    /// Remembers a fatal error, after which the writer refuses every call.
    fn note_failure(&mut self, result: KafkaResult<()>) -> KafkaResult<()> {
        if let Err(source) = &result {
            if TransactionErrorKind::of(source) == TransactionErrorKind::Fatal {
                error!(topic = %self.core.topic, error = %source, "transactional writer failed fatally; it is unusable now");
                self.state = State::Failed(source.clone());
            }
        }
        result
    }

    /// Runs one of librdkafka's blocking transaction calls.
    async fn run<F>(&mut self, operation: &'static str, f: F) -> Result<()>
    where
        F: FnOnce(&TxnProducer, Duration) -> KafkaResult<()> + Send + 'static,
    {
        let result = call_blocking(&self.core.producer, self.core.flush_timeout, f).await?;
        self.note_failure(result).map_err(|e| txn_error(operation, e))
    }

    /// Checks that a transaction is open for `operation`.
    fn check_open(&self, operation: &'static str) -> Result<()> {
        match &self.state {
            State::Open => Ok(()),
            State::Idle => Err(ErrorKind::TransactionState { operation, open: false }.into()),
            State::Failed(source) => Err(unusable(operation, source)),
        }
    }

    /// Starts a transaction. With one open already, fails with
    /// [`ErrorKind::TransactionState`] and leaves it open.
    pub async fn begin(&mut self) -> Result<()> {
        match &self.state {
            State::Failed(source) => return Err(unusable("begin", source)),
            State::Open => return Err(ErrorKind::TransactionState { operation: "begin", open: true }.into()),
            State::Idle => {}
        }
        let result = self.core.producer.begin_transaction();
        self.note_failure(result).map_err(|e| txn_error("begin", e))?;
        self.state = State::Open;
        Ok(())
    }

    /// Queues a record in the open transaction; its key picks the partition.
    ///
    /// Like every writer's, it hands back the transaction's records whose
    /// delivery failed as soon as it learns of them, as
    /// [`ErrorKind::Delivery`] (the record passed in was queued all the
    /// same); the transaction cannot commit then: [abort](Self::abort) it.
    /// The records an abort drops are not failures to report.
    pub async fn produce(&mut self, record: Record) -> Result<()> {
        self.check_open("produce")?;
        self.core.enqueue(Outgoing::record(None, &record)).await
    }

    /// Encodes `value` with the writer's format and queues it under `key`;
    /// fails as [`produce`](Self::produce) does.
    pub async fn send_keyed<T: Serialize + ?Sized>(&mut self, key: &[u8], value: &T) -> Result<()> {
        self.check_open("send")?;
        self.core.send_typed(None, Some(key), value).await
    }

    /// Adds consumed `offsets` (per partition, the next offset to read) to
    /// the transaction, so that they are committed for the consumer `group`
    /// exactly when the transaction is. A [`GroupReader`](crate::GroupReader)
    /// built with `.transactional()` gives both: `processed_offsets()` and
    /// `group_metadata()`.
    pub async fn send_offsets(&mut self, offsets: &[(TopicPartition, i64)], group: ConsumerGroupMetadata) -> Result<()> {
        self.check_open("send offsets")?;
        if offsets.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (tp, offset) in offsets {
            list.add_partition_offset(&tp.topic, tp.partition, RdOffset::Offset(*offset))
                .map_err(|e| txn_error("send offsets", e))?;
        }
        self.run("send offsets", move |p, t| p.send_offsets_to_transaction(&list, &group, t)).await
    }

    /// Waits until the transaction's records so far are on the broker (still
    /// invisible to `read_committed` readers until [`commit`](Self::commit)).
    pub async fn flush(&mut self) -> Result<()> {
        self.check_open("flush")?;
        self.core.flush().await
    }

    /// Commits the open transaction: flushes its records and makes them (and
    /// any offsets sent) visible at once. On failure the transaction stays
    /// open: call `commit` again if the error
    /// [is retriable](Error::is_retriable), [`abort`](Self::abort) if it
    /// [requires abort](Error::requires_abort).
    pub async fn commit(&mut self) -> Result<()> {
        self.check_open("commit")?;
        self.run("commit", |p, t| p.commit_transaction(t)).await?;
        self.state = State::Idle;
        Ok(())
    }

    /// Aborts the open transaction: none of its records become visible to
    /// `read_committed` readers, and its records not yet delivered are
    /// dropped. On a [retriable](Error::is_retriable) failure the
    /// transaction stays open: call `abort` again.
    pub async fn abort(&mut self) -> Result<()> {
        self.check_open("abort")?;
        self.run("abort", |p, t| p.abort_transaction(t)).await?;
        self.state = State::Idle;
        // The aborted transaction's failed (or purged) records are moot.
        self.core.take_failures();
        Ok(())
    }

    /// Takes the delivery failures of the open transaction, without
    /// waiting; for example after a commit failed, before aborting.
    pub fn take_failures(&mut self) -> Vec<DeliveryFailure> {
        self.core.take_failures()
    }

    /// Records handed to librdkafka whose delivery report has not come in.
    pub fn in_flight(&self) -> u64 {
        self.core.in_flight()
    }

    /// Sets the format [`send_keyed`](Self::send_keyed) encodes with.
    pub fn with_format(mut self, format: Format) -> Self {
        self.core.format = format;
        self
    }

    /// Sets how long [`flush`](Self::flush), [`commit`](Self::commit),
    /// [`abort`](Self::abort) and [`send_offsets`](Self::send_offsets) wait
    /// (default [`DEFAULT_FLUSH_TIMEOUT`](super::DEFAULT_FLUSH_TIMEOUT)). A
    /// commit or abort that runs out of time fails with a retriable error.
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.core.flush_timeout = timeout;
        self
    }

    /// The topic written to.
    pub fn topic(&self) -> &str {
        &self.core.topic
    }
}
