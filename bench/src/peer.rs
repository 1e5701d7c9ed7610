//! The peer: rskafka 0.6, a pure-Rust Kafka client (no librdkafka), on the
//! same broker in the same run, written the way a throughput-minded rskafka
//! user would.
//!
//! * Producer: `PartitionClient::produce` of batches of `batch` records
//!   (rskafka always asks for `acks=all`; it has no idempotent producer). One
//!   sender task per partition sends that partition's batches in order, one
//!   request in flight at a time, while the caller builds the next batch:
//!   building overlaps with the round trips, and partitions write in
//!   parallel. rskafka has no buffering or linger of its own on this path;
//!   the batch size is its one throughput setting (`--rskafka-batch`).
//! * Consumer: one `StreamConsumer` per partition from the earliest offset,
//!   with rskafka's defaults (those of librdkafka: 500 ms fetch wait, 50 MB
//!   a fetch), merged into one stream.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use futures::stream::{self, SelectAll};
use rskafka::chrono::{DateTime, Utc};
use rskafka::client::consumer::{StartOffset, StreamConsumer, StreamConsumerBuilder};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::{Record, RecordAndOffset};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Records per produce call unless `--rskafka-batch` says otherwise: the
/// best of 500, 1,000, 2,500 and 10,000 on the broker the bench was first
/// tuned on (320 B records, 1 and 3 partitions; not re-tuned on Kafka).
pub const DEFAULT_BATCH: usize = 1_000;

/// A batch is sent once its records reach this many bytes, whatever its
/// count: the broker refuses a batch over `message.max.bytes` (about 1 MB
/// by default); librdkafka's `batch.size`.
const BATCH_BYTES: usize = 1_000_000;

/// A client and one partition client per partition of `topic`.
pub async fn partitions(brokers: &str, topic: &str, partitions: i32) -> Result<Vec<Arc<PartitionClient>>> {
    let bootstrap = brokers.split(',').map(str::to_owned).collect();
    let client: Client = ClientBuilder::new(bootstrap).client_id("bench-rskafka").build().await.context("connecting rskafka")?;
    let mut out = Vec::new();
    for p in 0..partitions {
        let pc = client.partition_client(topic, p, UnknownTopicHandling::Retry).await.context("rskafka partition client")?;
        out.push(Arc::new(pc));
    }
    Ok(out)
}

/// A record as an rskafka user writes one: owned key and value, stamped now
/// (as librdkafka stamps each record).
pub fn record(key: Option<Vec<u8>>, value: Vec<u8>) -> Record {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let timestamp = DateTime::<Utc>::from_timestamp_millis(i64::try_from(now.as_millis()).unwrap_or(i64::MAX)).unwrap_or_default();
    Record { key, value: Some(value), headers: BTreeMap::new(), timestamp }
}

/// Batches records per partition and sends each partition's batches in
/// order from its own task.
pub struct Writer {
    batch: usize,
    /// Each partition's batch being built, and its bytes.
    pending: Vec<(Vec<Record>, usize)>,
    senders: Vec<mpsc::Sender<Vec<Record>>>,
    tasks: Vec<JoinHandle<Result<()>>>,
}

impl Writer {
    pub fn new(parts: &[Arc<PartitionClient>], batch: usize) -> Self {
        let batch = batch.max(1);
        let (mut senders, mut tasks) = (Vec::new(), Vec::new());
        for part in parts {
            // One batch queued while one is in flight and the next is built.
            let (tx, mut rx) = mpsc::channel::<Vec<Record>>(1);
            let part = Arc::clone(part);
            tasks.push(tokio::spawn(async move {
                while let Some(records) = rx.recv().await {
                    part.produce(records, Compression::NoCompression).await.context("rskafka produce")?;
                }
                Ok(())
            }));
            senders.push(tx);
        }
        Writer { batch, pending: parts.iter().map(|_| (Vec::with_capacity(batch), 0)).collect(), senders, tasks }
    }

    /// Adds a record for `partition`, sending its batch when full.
    pub async fn push(&mut self, partition: usize, record: Record) -> Result<()> {
        let (pending, bytes) = self.pending.get_mut(partition).context("no such partition")?;
        if !pending.is_empty() && *bytes + record.approximate_size() > BATCH_BYTES {
            let full = std::mem::replace(pending, Vec::with_capacity(self.batch));
            *bytes = 0;
            self.send(partition, full).await?;
        }
        let (pending, bytes) = &mut self.pending[partition];
        *bytes += record.approximate_size();
        pending.push(record);
        if pending.len() >= self.batch {
            let full = std::mem::replace(pending, Vec::with_capacity(self.batch));
            *bytes = 0;
            self.send(partition, full).await?;
        }
        Ok(())
    }

    async fn send(&self, partition: usize, records: Vec<Record>) -> Result<()> {
        let tx = self.senders.get(partition).context("no such partition")?;
        // A closed channel means the task failed; `finish` reports why.
        let _ = tx.send(records).await;
        Ok(())
    }

    /// Sends what is left and waits for every batch's acknowledgement.
    pub async fn finish(mut self) -> Result<()> {
        for (p, (records, _)) in std::mem::take(&mut self.pending).into_iter().enumerate() {
            if !records.is_empty() {
                self.send(p, records).await?;
            }
        }
        self.senders.clear();
        for task in self.tasks {
            task.await??;
        }
        Ok(())
    }
}

/// The partition of `key` among `n`: FNV-1a, as cheap as a partitioner gets
/// (rskafka leaves partitioning to its user).
pub fn partition_of(key: &[u8], n: usize) -> usize {
    let hash = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    (hash % n.max(1) as u64) as usize
}

/// One stream over every partition, each read from its earliest offset.
pub fn reader(parts: &[Arc<PartitionClient>]) -> SelectAll<StreamConsumer> {
    stream::select_all(parts.iter().map(|p| StreamConsumerBuilder::new(Arc::clone(p), StartOffset::Earliest).build()))
}

/// The value's length of a record read.
pub fn value_len(record: &RecordAndOffset) -> u64 {
    record.record.value.as_ref().map_or(0, Vec::len) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_partitions() {
        let mut seen = [0u32; 3];
        for i in 0..1024 {
            seen[partition_of(format!("sensor-{i:04}").as_bytes(), 3)] += 1;
        }
        assert!(seen.iter().all(|n| *n > 250), "{seen:?}");
        assert_eq!(partition_of(b"x", 1), 0);
    }
}
