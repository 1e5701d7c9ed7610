//! The one error type of twitch, [`Error`], and what went wrong,
//! [`ErrorKind`].
//!
//! The kinds are named after the operation that failed and keep the
//! underlying [`KafkaError`] as their source, so the librdkafka error code is
//! never lost (see [`Error::kafka_code`]).

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::codec::CodecError;
use crate::record::{ConsumedRecord, Record};

/// The error a [`RebalanceListener`](crate::reader::RebalanceListener) may
/// return.
pub type ListenerError = Box<dyn std::error::Error + Send + Sync>;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A record that the broker did not accept, with the reason.
#[derive(Debug, Clone)]
pub struct DeliveryFailure {
    /// Topic the record was sent to.
    pub topic: String,
    /// Partition the record was sent to, if known.
    pub partition: Option<i32>,
    /// The record itself, so the application can retry or park it.
    pub record: Record,
    /// Why it was not delivered.
    pub error: KafkaError,
}

/// What a failed transaction call leaves behind, after librdkafka's error
/// classes (`rd_kafka_error_is_retriable`, `_txn_requires_abort`,
/// `_is_fatal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransactionErrorKind {
    /// The transaction is still open; call the same method again.
    Retriable,
    /// The transaction can no longer commit; it is still open and must be
    /// aborted before the next one begins.
    RequiresAbort,
    /// The writer is unusable (for example, a newer writer with the same
    /// transactional id fenced it) and refuses every later call; create a
    /// new one.
    Fatal,
    /// None of these: the call was not valid now (for example `begin` while
    /// a transaction is open); the transaction is as it was.
    Other,
}

impl TransactionErrorKind {
    /// The class librdkafka gave `error`, fatal first.
    pub(crate) fn of(error: &KafkaError) -> Self {
        match error {
            KafkaError::Transaction(e) if e.is_fatal() => TransactionErrorKind::Fatal,
            KafkaError::Transaction(e) if e.txn_requires_abort() => TransactionErrorKind::RequiresAbort,
            KafkaError::Transaction(e) if e.is_retriable() => TransactionErrorKind::Retriable,
            _ => TransactionErrorKind::Other,
        }
    }
}

impl std::fmt::Display for TransactionErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransactionErrorKind::Retriable => "retriable: the transaction is still open, call it again",
            TransactionErrorKind::RequiresAbort => "the transaction cannot commit: abort it",
            TransactionErrorKind::Fatal => "fatal: this writer is unusable, create a new one",
            TransactionErrorKind::Other => "not valid now",
        })
    }
}

/// Everything that can go wrong in twitch: what went wrong is its
/// [`kind`](Error::kind). Boxed, so that every `Result` of twitch (and of the
/// code that passes its errors on) stays the size of its value: a read's
/// `Result` moves a pointer, not a hundred bytes.
///
/// ```no_run
/// # async fn demo(writer: &mut twitch::PartitionWriter) {
/// use twitch::ErrorKind;
///
/// match writer.flush_async().await {
///     Ok(_) => {}
///     Err(e) => match e.kind() {
///         ErrorKind::Delivery { failures, .. } => eprintln!("{} records refused", failures.len()),
///         _ => eprintln!("flush failed: {e}"),
///     },
/// }
/// # }
/// ```
#[derive(thiserror::Error)]
#[error(transparent)]
pub struct Error(Box<ErrorKind>);

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error(Box::new(kind))
    }
}

impl From<CodecError> for Error {
    fn from(source: CodecError) -> Self {
        ErrorKind::Encode { source }.into()
    }
}

/// What went wrong: the [`kind`](Error::kind) of an [`Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A setting was rejected before anything reached the broker.
    #[error("invalid configuration: {message}")]
    InvalidConfig {
        /// What is wrong and how to fix it.
        message: String,
    },

    /// librdkafka refused to create a client with the given settings.
    #[error("cannot create the Kafka {role}: {source}")]
    ClientCreation {
        /// `producer`, `consumer` or `admin client`.
        role: &'static str,
        /// The librdkafka error.
        source: KafkaError,
    },

    /// No broker answered within the configured time.
    #[error("no Kafka broker answered at {brokers} within {waited:.1?} (last error: {source})")]
    BrokersUnavailable {
        /// The bootstrap servers that were tried.
        brokers: String,
        /// How long twitch waited.
        waited: Duration,
        /// The last error seen.
        source: KafkaError,
    },

    /// Fetching cluster or topic metadata failed.
    #[error("fetching metadata failed: {source}")]
    Metadata {
        /// The librdkafka error.
        source: KafkaError,
    },

    /// The topic does not exist on the cluster.
    #[error("topic `{topic}` does not exist")]
    UnknownTopic {
        /// Topic name.
        topic: String,
    },

    /// The topic exists, but not every partition had a leader within the
    /// wait (a cluster short of brokers, or one still electing leaders).
    #[error("topic `{topic}` exists but not every partition had a leader within {waited:?}{}", last.as_deref().map(|l| format!(" (last seen: {l})")).unwrap_or_default())]
    TopicNotReady {
        /// Topic name.
        topic: String,
        /// How long it was waited for.
        waited: Duration,
        /// What the last metadata answer said of the topic.
        last: Option<String>,
    },

    /// The consumer group is not known to the cluster.
    #[error("consumer group `{group}` does not exist")]
    UnknownGroup {
        /// Group id.
        group: String,
    },

    /// An admin operation on a topic failed.
    #[error("{operation} of topic `{topic}` failed: {code}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    TopicAdmin {
        /// `creation`, `deletion`, ...
        operation: &'static str,
        /// Topic name.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
        /// Extra detail, for example a hint that the broker lacks the feature.
        detail: Option<String>,
    },

    /// A request to the admin API failed as a whole.
    #[error("admin request `{operation}` failed: {source}")]
    Admin {
        /// The request.
        operation: &'static str,
        /// The librdkafka error.
        source: KafkaError,
    },

    /// The topic exists with another partition count than required.
    #[error("topic `{topic}` has {actual} partitions, but {expected} are required; delete it or use another topic")]
    PartitionCountMismatch {
        /// Topic name.
        topic: String,
        /// Partitions asked for.
        expected: i32,
        /// Partitions it has.
        actual: i32,
    },

    /// The broker does not implement a feature twitch needs for this call.
    #[error("`{operation}` is not supported by this broker: {detail}")]
    Unsupported {
        /// What was attempted.
        operation: &'static str,
        /// What the broker said.
        detail: String,
    },

    /// A record could not be queued for sending.
    #[error("cannot produce to {topic}{}: {source}", partition.map(|p| format!("/{p}")).unwrap_or_default())]
    Produce {
        /// Topic.
        topic: String,
        /// Partition, if the writer targets one.
        partition: Option<i32>,
        /// The librdkafka error.
        source: KafkaError,
    },

    /// A record is larger than the producer (or broker) accepts: librdkafka
    /// counts its key, value and headers plus its framing (a few dozen
    /// bytes) against `message.max.bytes`.
    #[error("record of {size} bytes is over the limit of {limit} bytes with its framing (raise `message.max.bytes` on the client and the broker's `max.message.bytes`)")]
    RecordTooLarge {
        /// Size of the record, key and headers included.
        size: usize,
        /// The limit that applies.
        limit: usize,
    },

    /// Some records were not delivered; each comes back with its reason.
    ///
    /// A flush returns it with every failure since the failures were last
    /// taken; a writer's `produce` (or `send`) returns it as soon as earlier
    /// records failed, without waiting for a flush: the record passed to
    /// that call was queued all the same. A flush that also ran out of time
    /// says so in `flush_timed_out`, with the records it gave up on in
    /// `in_flight` (what [`FlushTimeout`](Self::FlushTimeout) says alone).
    #[error("{} record(s) not delivered; first: {}{}", failures.len(), failures.first().map(|f| f.error.to_string()).unwrap_or_default(),
        flush_timed_out.map(|t| format!("; the flush also timed out after {t:?} with {in_flight} record(s) still in flight")).unwrap_or_default())]
    Delivery {
        /// The records that failed, in the order they failed.
        failures: Vec<DeliveryFailure>,
        /// The timeout of the flush that returned this error, if it ran out
        /// of time as well: records were still in flight.
        flush_timed_out: Option<Duration>,
        /// Records still in flight (neither acknowledged nor failed) when
        /// this error was made: a later flush may deliver them.
        in_flight: u64,
    },

    /// Flushing did not finish in time; records are still in flight.
    #[error("flush timed out after {timeout:?} with {in_flight} record(s) in flight")]
    FlushTimeout {
        /// The timeout used.
        timeout: Duration,
        /// Records still not acknowledged.
        in_flight: u64,
    },

    /// Consuming failed.
    #[error("consuming failed: {source}")]
    Consume {
        /// The librdkafka error.
        source: KafkaError,
    },

    /// Assigning partitions or subscribing to topics failed.
    #[error("cannot {operation}: {source}")]
    Subscription {
        /// `assign`, `subscribe`, `seek`, ...
        operation: &'static str,
        /// The librdkafka error.
        source: KafkaError,
    },

    /// Committing offsets failed.
    #[error("committing offsets failed: {source}")]
    Commit {
        /// The librdkafka error.
        source: KafkaError,
    },

    /// A transaction step failed; `kind` says what the transaction needs
    /// next (also through [`Error::is_retriable`], [`Error::requires_abort`]
    /// and [`Error::is_fatal`]).
    #[error("transaction {operation} failed ({kind}): {source}")]
    Transaction {
        /// `init`, `begin`, `produce`, `send offsets`, `flush`, `commit`,
        /// `abort`.
        operation: &'static str,
        /// The librdkafka error.
        source: KafkaError,
        /// librdkafka's class of the error.
        kind: TransactionErrorKind,
    },

    /// A [`TransactionalWriter`](crate::writer::TransactionalWriter) call
    /// came at the wrong time: `produce`, `send_keyed`, `send_offsets`,
    /// `flush`, `commit` or `abort` with no transaction open, or `begin`
    /// with one open. Nothing changed: call what the message says, then
    /// this again.
    #[error("cannot {operation}: {}", if *open { "a transaction is already open; call commit() or abort() first" } else { "no transaction is open; call begin() first" })]
    TransactionState {
        /// The call: `begin`, `produce`, `send`, `send offsets`, `flush`,
        /// `commit` or `abort`.
        operation: &'static str,
        /// Whether a transaction was open.
        open: bool,
    },

    /// A value could not be encoded.
    #[error("cannot encode value: {source}")]
    Encode {
        /// The codec's error.
        source: CodecError,
    },

    /// A consumed record could not be decoded; the raw record comes back.
    #[error("cannot decode record at {}/{}@{}: {source}", record.topic, record.partition, record.offset)]
    Decode {
        /// The raw record, untouched.
        record: ConsumedRecord,
        /// The codec's error.
        source: CodecError,
    },

    /// A [`RebalanceListener`](crate::reader::RebalanceListener) failed; the
    /// rebalance waits, and the next read runs the listener again.
    #[error("rebalance listener failed in {stage}: {source}")]
    Listener {
        /// `on_assigned`.
        stage: &'static str,
        /// The listener's error.
        source: ListenerError,
    },

    /// A blocking task could not run to completion.
    #[error("background task failed: {0}")]
    Task(String),

    /// A transactional group reader was asked to do what only its
    /// transaction does: its offsets commit with the transaction
    /// ([`TransactionalWriter::send_offsets`](crate::writer::TransactionalWriter::send_offsets)).
    #[error("a transactional group reader cannot {operation}: its offsets commit with the transaction (send_offsets)")]
    TransactionalReader {
        /// What was asked, such as `commit`.
        operation: &'static str,
    },

    /// Returned by a read of a transactional group reader (built with
    /// `.transactional()`) when partitions are about to be taken away: end
    /// the open transaction first (send the processed offsets and commit,
    /// or abort and [`rewind`](crate::GroupReader::rewind)), then read on;
    /// the next read gives the partitions up. A
    /// [`TransactionalStage`](crate::stage::TransactionalStage) does this by
    /// itself.
    #[error("partitions {partitions:?} are being revoked: end the open transaction, then read on")]
    Revoking {
        /// The partitions about to be revoked.
        partitions: Vec<crate::record::TopicPartition>,
    },
}

/// The error code of a librdkafka error, admin-request errors included.
pub(crate) fn code_of(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    match error {
        KafkaError::AdminOp(code) => Some(*code),
        other => other.rdkafka_error_code(),
    }
}

/// Errors librdkafka recovers from by itself (it reconnects and retries):
/// readers log them instead of handing them to the application.
pub(crate) fn is_transient(error: &KafkaError) -> bool {
    matches!(
        code_of(error),
        Some(
            RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::NotCoordinator
        )
    )
}

/// Logs transient errors as a warning at most every ten seconds.
#[derive(Debug, Default)]
pub(crate) struct TransientLog {
    last_warning: Option<std::time::Instant>,
    suppressed: u64,
}

impl TransientLog {
    pub(crate) fn report(&mut self, error: &KafkaError) {
        let due = self.last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if due {
            tracing::warn!(%error, suppressed = self.suppressed, "transient Kafka error; librdkafka retries");
            self.last_warning = Some(std::time::Instant::now());
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
            tracing::debug!(%error, "transient Kafka error");
        }
    }
}

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// What went wrong, owned: to take a refused record or batch out of it.
    pub fn into_kind(self) -> ErrorKind {
        *self.0
    }

    /// The librdkafka / broker error code behind this error, if there is one.
    pub fn kafka_code(&self) -> Option<RDKafkaErrorCode> {
        match self.kind() {
            ErrorKind::TopicAdmin { code, .. } => Some(*code),
            ErrorKind::ClientCreation { source, .. }
            | ErrorKind::BrokersUnavailable { source, .. }
            | ErrorKind::Metadata { source }
            | ErrorKind::Admin { source, .. }
            | ErrorKind::Produce { source, .. }
            | ErrorKind::Consume { source }
            | ErrorKind::Subscription { source, .. }
            | ErrorKind::Commit { source }
            | ErrorKind::Transaction { source, .. } => code_of(source),
            ErrorKind::Delivery { failures, .. } => failures.first().and_then(|f| code_of(&f.error)),
            _ => None,
        }
    }

    /// A transaction call failed but may succeed if called again: the
    /// transaction is still open.
    pub fn is_retriable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Transaction { kind: TransactionErrorKind::Retriable, .. })
    }

    /// The transaction can no longer commit and must be aborted.
    pub fn requires_abort(&self) -> bool {
        matches!(self.kind(), ErrorKind::Transaction { kind: TransactionErrorKind::RequiresAbort, .. })
    }

    /// The transactional writer is unusable; create a new one.
    pub fn is_fatal(&self) -> bool {
        matches!(self.kind(), ErrorKind::Transaction { kind: TransactionErrorKind::Fatal, .. })
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        ErrorKind::InvalidConfig { message: message.into() }.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_one_pointer() {
        // Every `Result` of the crate (and of its users) carries an `Error`:
        // a read's result moves a pointer beside its record, not the kind.
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
        assert_eq!(std::mem::size_of::<Result<()>>(), std::mem::size_of::<usize>());
    }
}
