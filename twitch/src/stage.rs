//! Exactly once from topic to topic: a consumer group whose results are
//! written in Kafka transactions that also commit the input offsets.
//!
//! A [`TransactionalStage`] pairs a transactional [`GroupReader`] with a
//! [`TransactionalWriter`]. Each batch of input records opens a
//! transaction; the application writes what it derives from them; then
//! [`commit`](TransactionalStage::commit) sends the batch's input offsets
//! (with the group's metadata, so that a member the group has moved on
//! from cannot commit) and commits outputs and offsets at once. Whatever
//! fails before that aborts the transaction and moves the partitions back to
//! their committed offsets, so the batch is read again: each input record
//! counts once in what `read_committed` readers see, even across crashes
//! and rebalances.
//!
//! Known limit (librdkafka 2.12.1): while the node coordinating the
//! *group* is down, sending the offsets can wait in librdkafka for longer
//! than any timeout given, and the group waits for this member meanwhile
//! (`reliability/tests/cluster_exactly_once.rs` has an ignored test that
//! kills that node).
//!
//! Rebalances are carried out only between transactions: when partitions
//! are to be taken away while a transaction is open,
//! [`next_batch`](TransactionalStage::next_batch) returns at once so that
//! the caller commits it while they are still this member's.
//!
//! ```no_run
//! # async fn demo(cluster: twitch::KafkaCluster) -> twitch::Result<()> {
//! use std::time::Duration;
//!
//! let mut stage = cluster
//!     .transactional_stage(cluster.group_reader("doublers").topic("numbers"), "doubled", "doubler-1")
//!     .build()
//!     .await?;
//! loop {
//!     let batch = stage.next_batch(500, Duration::from_millis(200)).await?;
//!     for record in &batch {
//!         let n: u64 = twitch::reader::decode(twitch::Format::Json, record.clone())?.value;
//!         stage.send_keyed(record.key().unwrap_or_default(), &(2 * n)).await?;
//!     }
//!     match stage.commit().await {
//!         Ok(()) => {}
//!         Err(e) if e.is_fatal() => return Err(e), // fenced: another member took over
//!         Err(e) => eprintln!("aborted, the batch comes again: {e}"),
//!     }
//! }
//! # }
//! ```

use std::time::Duration;

use serde::Serialize;
use tracing::{debug, info, warn};

use crate::codec::Format;
use crate::config::ClientSettings;
use crate::error::{Error, ErrorKind, Result};
use crate::reader::{GroupReader, GroupReaderBuilder};
use crate::record::{ConsumedRecord, Record, TopicPartition};
use crate::writer::TransactionalWriter;

/// How many times a commit that failed with a retriable error is tried
/// again before the transaction is aborted.
const COMMIT_ATTEMPTS: u32 = 3;

/// What a stage did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageCounters {
    /// Transactions committed.
    pub committed: u64,
    /// Transactions aborted.
    pub aborted: u64,
    /// Input records whose transaction committed.
    pub records: u64,
}

/// Builds a [`TransactionalStage`]; get one from
/// [`KafkaCluster::transactional_stage`](crate::warden::KafkaCluster::transactional_stage).
#[derive(Debug)]
pub struct TransactionalStageBuilder {
    settings: ClientSettings,
    reader: GroupReaderBuilder,
    output_topic: String,
    transactional_id: String,
    transaction_timeout: Option<Duration>,
    format: Format,
}

impl TransactionalStageBuilder {
    pub(crate) fn new(settings: ClientSettings, reader: GroupReaderBuilder, output_topic: &str, transactional_id: &str) -> Self {
        TransactionalStageBuilder {
            settings,
            reader,
            output_topic: output_topic.to_owned(),
            transactional_id: transactional_id.to_owned(),
            transaction_timeout: None,
            format: Format::default(),
        }
    }

    /// How long the transaction coordinator lets a transaction stay open
    /// before it aborts it (`transaction.timeout.ms`, 60 s by default), and
    /// how long the stage waits for each step of a transaction. A member
    /// that dies with a transaction open holds back the offsets of its
    /// partitions (readers of the group wait for them) until then, or until
    /// it restarts with the same transactional id.
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = Some(timeout);
        self
    }

    /// The format [`TransactionalStage::send_keyed`] encodes with (default
    /// bincode).
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Joins the group and initializes the transactional writer (which
    /// fences an older writer with the same transactional id and aborts
    /// its open transaction).
    pub async fn build(self) -> Result<TransactionalStage> {
        let mut settings = self.settings;
        if let Some(timeout) = self.transaction_timeout {
            settings = settings.set("transaction.timeout.ms", timeout.as_millis().max(1).to_string());
        }
        let mut writer = TransactionalWriter::new(&settings, &self.output_topic, &self.transactional_id).await?;
        if let Some(timeout) = self.transaction_timeout {
            // Waiting longer for a step than the coordinator keeps the
            // transaction open gains nothing.
            writer = writer.with_flush_timeout(timeout);
        }
        let reader = self.reader.transactional().build()?;
        info!(group = reader.group_id(), output = %self.output_topic, transactional_id = %self.transactional_id, "transactional stage ready");
        Ok(TransactionalStage {
            reader,
            writer: writer.with_format(self.format),
            open: false,
            in_transaction: 0,
            revoke_waiting: false,
            counters: StageCounters::default(),
        })
    }
}

/// Reads a consumer group and writes results in transactions that commit
/// the input offsets too; see the [module docs](self).
#[derive(Debug)]
pub struct TransactionalStage {
    reader: GroupReader,
    writer: TransactionalWriter,
    /// A transaction is open.
    open: bool,
    /// Input records handed out in the open transaction.
    in_transaction: u64,
    /// The reader stopped at a revoke that waits for the open transaction
    /// to end.
    revoke_waiting: bool,
    counters: StageCounters,
}

impl TransactionalStage {
    /// Up to `max` input records: waits up to `wait` for them, and returns
    /// what came by then (maybe nothing). Records returned belong to the
    /// open transaction (one begins if none is open): they count as
    /// processed once it commits. Rebalances are carried out here while no
    /// transaction is open; when partitions are to be revoked while one is,
    /// this returns at once, and returns no records until the transaction
    /// is committed or aborted.
    pub async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<ConsumedRecord>> {
        let mut batch = Vec::new();
        if self.open && self.revoke_waiting {
            // Reading on would give the partitions up under the open
            // transaction: it has to end first.
            debug!("a revoke waits for the open transaction to end; no records until it does");
            return Ok(batch);
        }
        let deadline = tokio::time::Instant::now() + wait;
        while batch.len() < max {
            let next = match tokio::time::timeout_at(deadline, self.reader.next()).await {
                Err(_) | Ok(None) => break,
                Ok(Some(next)) => next,
            };
            match next {
                Ok((record, ack)) => {
                    self.revoke_waiting = false;
                    // Processed as far as the reader goes: the transaction
                    // decides whether that holds.
                    ack.ack();
                    batch.push(record);
                }
                Err(e) if matches!(e.kind(), ErrorKind::Revoking { .. }) => {
                    if self.open || !batch.is_empty() {
                        debug!(error = %e, "revoke waits for the open transaction");
                        self.revoke_waiting = true;
                        break;
                    }
                    // Nothing is open: the next read gives them up.
                }
                Err(e) if batch.is_empty() => return Err(e),
                Err(e) => {
                    // The records taken so far are returned; the error, if it
                    // lasts, comes back from the next call.
                    warn!(error = %e, "read failed; returning the batch so far");
                    break;
                }
            }
        }
        if !batch.is_empty() {
            if !self.open {
                self.writer.begin().await?;
                self.open = true;
            }
            self.in_transaction += batch.len() as u64;
        }
        Ok(batch)
    }

    /// Queues a record of the open transaction; its key picks the
    /// partition.
    pub async fn produce(&mut self, record: Record) -> Result<()> {
        self.writer.produce(record).await
    }

    /// Encodes `value` with the stage's format and queues it under `key`
    /// in the open transaction.
    pub async fn send_keyed<T: Serialize + ?Sized>(&mut self, key: &[u8], value: &T) -> Result<()> {
        self.writer.send_keyed(key, value).await
    }

    /// Commits the open transaction: its records and the input offsets of
    /// every record handed out in it, at once. Nothing to do when none is
    /// open. On failure the transaction is aborted and the partitions go
    /// back to their committed offsets, so its input records are read
    /// again (here, or at the member that owns them after a rebalance):
    /// drop what was derived from them. After a [fatal](Error::is_fatal)
    /// error the stage is unusable: another writer with the same
    /// transactional id took over, or the coordinator fenced this one (it
    /// timed a transaction out, say while a node was down); build a new
    /// stage.
    pub async fn commit(&mut self) -> Result<()> {
        if !self.open {
            return Ok(());
        }
        match self.try_commit().await {
            Ok(offsets) => {
                self.reader.committed_in_transaction(&offsets);
                self.counters.committed += 1;
                self.counters.records += self.in_transaction;
                debug!(records = self.in_transaction, ?offsets, "transaction committed");
                self.open = false;
                self.in_transaction = 0;
                Ok(())
            }
            Err(e) if e.is_fatal() => Err(e),
            Err(e) => {
                warn!(error = %e, records = self.in_transaction, "transaction failed; aborting it");
                self.abort().await?;
                Err(e)
            }
        }
    }

    /// Sends the offsets and commits; the offsets committed.
    async fn try_commit(&mut self) -> Result<Vec<(TopicPartition, i64)>> {
        let offsets = self.reader.processed_offsets();
        if !offsets.is_empty() {
            let group = self
                .reader
                .group_metadata()
                .ok_or_else(|| Error::config("the stage's reader has no group metadata"))?;
            self.writer.send_offsets(&offsets, group).await?;
        }
        let mut attempt = 1;
        loop {
            match self.writer.commit().await {
                Err(e) if e.is_retriable() && attempt < COMMIT_ATTEMPTS => {
                    warn!(error = %e, attempt, "commit failed; trying again");
                    attempt += 1;
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(offsets),
            }
        }
    }

    /// Aborts the open transaction and moves the partitions back to their
    /// committed offsets: the transaction's input records are read again.
    pub async fn abort(&mut self) -> Result<()> {
        if !self.open {
            return Ok(());
        }
        self.writer.abort().await?;
        self.open = false;
        self.counters.aborted += 1;
        info!(records = self.in_transaction, "transaction aborted; its input will be read again");
        self.in_transaction = 0;
        self.reader.rewind().await
    }

    /// What the stage did so far.
    pub fn counters(&self) -> StageCounters {
        self.counters
    }

    /// Partitions assigned to this member now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.reader.assignment()
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.open
    }

    /// The stage's reader, for its group id, lag and telemetry.
    pub fn reader(&self) -> &GroupReader {
        &self.reader
    }

    /// Aborts the open transaction, if any, and leaves the group.
    pub async fn shutdown(mut self) -> Result<()> {
        if self.open {
            if let Err(e) = self.writer.abort().await {
                warn!(error = %e, "abort at shutdown failed; the coordinator aborts it at its timeout");
            }
            self.counters.aborted += 1;
        }
        info!(counters = ?self.counters, "transactional stage stopped");
        self.reader.shutdown().await
    }
}
