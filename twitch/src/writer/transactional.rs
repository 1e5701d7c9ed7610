//! Exactly-once: a transactional writer for consume-transform-produce.

use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;
use rdkafka::{Offset as RdOffset, TopicPartitionList};
use serde::Serialize;

use super::core::{DeliveryTracker, Outgoing, WriterCore};
use crate::config::ClientSettings;
use crate::error::{Error, Result};
use crate::record::{Record, TopicPartition};

/// Writes records to a topic in transactions: all of a transaction's records
/// (and, for consume-transform-produce, the consumed offsets) become visible
/// to `read_committed` readers together, or not at all.
///
/// ```no_run
/// # async fn demo(mut input: twitch::GroupReader) -> twitch::Result<()> {
/// use twitch::{warden::KafkaCluster, Record};
///
/// let cluster = KafkaCluster::new("127.0.0.1:9092".into(), "docs".into());
/// let mut out = cluster.transactional_writer("doubled", "doubler-1").await?;
/// out.begin().await?;
/// while let Some(item) = input.next().await {
///     let (record, ack) = item?;
///     out.produce(Record::new([record.payload(), record.payload()].concat())).await?;
///     ack.ack();
///     if input.pending() == 0 { break; }
/// }
/// // The input offsets commit with the transaction.
/// if let Some(group) = input.group_metadata() {
///     out.send_offsets(&input.processed_offsets(), group).await?;
/// }
/// out.commit().await?;
/// # Ok(()) }
/// ```
pub struct TransactionalWriter {
    core: WriterCore,
    in_transaction: bool,
}

impl std::fmt::Debug for TransactionalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalWriter")
            .field("topic", &self.core.topic)
            .field("in_transaction", &self.in_transaction)
            .finish_non_exhaustive()
    }
}

/// Maps a transaction failure. A broker that refuses the transactional id
/// or does not know the transaction requests cannot run transactions.
fn txn_error(operation: &'static str, source: KafkaError) -> Error {
    match source.rdkafka_error_code() {
        Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed) => Error::Unsupported {
            operation: "transactions",
            detail: format!(
                "{source}: the broker refused the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED): \
                 it has no transaction support, or its ACLs deny this transactional.id"
            ),
        },
        Some(RDKafkaErrorCode::UnsupportedVersion | RDKafkaErrorCode::UnsupportedFeature) => {
            Error::Unsupported { operation: "transactions", detail: source.to_string() }
        }
        _ => Error::Transaction { operation, source },
    }
}

impl TransactionalWriter {
    pub(crate) async fn new(settings: &ClientSettings, topic: &str, transactional_id: &str) -> Result<Self> {
        if transactional_id.trim().is_empty() {
            return Err(Error::config("the transactional id is empty"));
        }
        let settings = settings.clone().set("transactional.id", transactional_id);
        let core = WriterCore::new(&settings, topic)?;
        let producer = core.producer.clone();
        let timeout = core.flush_timeout;
        tokio::task::spawn_blocking(move || producer.init_transactions(timeout))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
            .map_err(|e| txn_error("init", e))?;
        Ok(TransactionalWriter { core, in_transaction: false })
    }

    async fn run<F>(&self, operation: &'static str, f: F) -> Result<()>
    where
        F: FnOnce(&rdkafka::producer::ThreadedProducer<DeliveryTracker>, Duration) -> rdkafka::error::KafkaResult<()>
            + Send
            + 'static,
    {
        let producer = self.core.producer.clone();
        let timeout = self.core.flush_timeout;
        tokio::task::spawn_blocking(move || f(&producer, timeout))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
            .map_err(|e| txn_error(operation, e))
    }

    /// Starts a transaction.
    pub async fn begin(&mut self) -> Result<()> {
        self.core.producer.begin_transaction().map_err(|e| txn_error("begin", e))?;
        self.in_transaction = true;
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.in_transaction {
            Ok(())
        } else {
            Err(Error::config("no transaction is open: call begin() first"))
        }
    }

    /// Queues a record in the open transaction; its key picks the partition.
    pub async fn produce(&mut self, record: Record) -> Result<()> {
        self.check_open()?;
        self.core.enqueue(Outgoing::record(None, &record)).await
    }

    /// Encodes `value` with the writer's format and queues it under `key`.
    pub async fn send_keyed<T: Serialize + ?Sized>(&mut self, key: &[u8], value: &T) -> Result<()> {
        self.check_open()?;
        self.core.send_typed(None, Some(key), value).await
    }

    /// Adds consumed `offsets` (per partition, the next offset to read) to
    /// the transaction, so that they are committed for the consumer `group`
    /// exactly when the transaction is. A [`GroupReader`](crate::GroupReader)
    /// built with `.transactional()` gives both: `processed_offsets()` and
    /// `group_metadata()`.
    pub async fn send_offsets(&mut self, offsets: &[(TopicPartition, i64)], group: ConsumerGroupMetadata) -> Result<()> {
        self.check_open()?;
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
        self.check_open()?;
        self.core.flush().await
    }

    /// Commits the open transaction: flushes its records and makes them (and
    /// any offsets sent) visible at once.
    pub async fn commit(&mut self) -> Result<()> {
        self.check_open()?;
        let res = self.run("commit", |p, t| p.commit_transaction(t)).await;
        self.in_transaction = false;
        let failures = self.core.take_failures();
        if !failures.is_empty() {
            return Err(Error::Delivery { failures });
        }
        res
    }

    /// Aborts the open transaction: none of its records become visible to
    /// `read_committed` readers.
    pub async fn abort(&mut self) -> Result<()> {
        self.check_open()?;
        let res = self.run("abort", |p, t| p.abort_transaction(t)).await;
        self.in_transaction = false;
        self.core.take_failures();
        res
    }

    /// Sets the format [`send_keyed`](Self::send_keyed) encodes with.
    pub fn with_format(mut self, format: crate::codec::Format) -> Self {
        self.core.format = format;
        self
    }
}
