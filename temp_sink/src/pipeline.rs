//! From the group reader to the database: the rebalance listener that
//! resumes partitions where the database says, the read loop that tags each
//! reading with its assignment's epoch, and the writer that batches them and
//! retries with backoff until the database takes them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use twitch::reader::{Ack, ListenerError, RebalanceListener, StartAt};
use twitch::{Decoded, GroupReader, TopicPartition};

use crate::batch::{Row, Verdict};
use crate::{Store, SinkError};

/// The epoch of each partition of the topic assigned to this member now.
type Epochs = Arc<Mutex<HashMap<i32, i64>>>;

/// When the reader last saw a reading or a rebalance; `None` before the
/// group first assigned partitions.
pub type Activity = Arc<Mutex<Option<Instant>>>;

fn touch(activity: &Activity) {
    *activity.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
}

/// A reading on its way to the database, and its ack.
#[derive(Debug)]
pub struct Pending {
    /// The row.
    pub row: Row,
    /// Acked once its transaction committed.
    pub ack: Ack,
}

/// Resumes each assigned partition at the offset stored in the database
/// (from the beginning when it holds none), and records the assignment's
/// epoch for the read loop.
#[derive(Debug)]
pub struct ResumeFromDb {
    store: Store,
    topic: String,
    epochs: Epochs,
    activity: Activity,
}

impl ResumeFromDb {
    /// A listener for `topic`.
    pub fn new(store: Store, topic: &str, activity: Activity) -> Self {
        ResumeFromDb { store, topic: topic.to_owned(), epochs: Epochs::default(), activity }
    }

    /// The epochs it records, for [`read_loop`].
    pub fn epochs(&self) -> Epochs {
        Arc::clone(&self.epochs)
    }

    fn mine(&self, tps: &[TopicPartition]) -> Vec<i32> {
        tps.iter().filter(|tp| tp.topic == self.topic).map(|tp| tp.partition).collect()
    }
}

impl RebalanceListener for ResumeFromDb {
    fn on_assigned<'a>(
        &'a mut self,
        assigned: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<Vec<(TopicPartition, StartAt)>, ListenerError>> {
        Box::pin(async move {
            let partitions = self.mine(assigned);
            let claims = self.store.claim(&self.topic, &partitions).await?;
            let mut epochs = self.epochs.lock().unwrap_or_else(PoisonError::into_inner);
            let mut starts = Vec::new();
            for c in &claims {
                epochs.insert(c.partition, c.epoch);
                let start = c.next_offset.map_or(StartAt::Beginning, StartAt::Offset);
                starts.push((TopicPartition::new(&self.topic, c.partition), start));
            }
            info!(?claims, "resuming partitions from the database");
            touch(&self.activity);
            Ok(starts)
        })
    }

    fn on_revoked<'a>(&'a mut self, revoked: &'a [TopicPartition], lost: bool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let partitions = self.mine(revoked);
            let mut epochs = self.epochs.lock().unwrap_or_else(PoisonError::into_inner);
            for p in &partitions {
                epochs.remove(p);
            }
            info!(?partitions, lost, "partitions revoked");
            touch(&self.activity);
        })
    }
}

/// Reads readings and sends them, tagged with their assignment's epoch, to
/// the writer, until the stream ends, the writer is gone, or an error that
/// retrying cannot fix.
pub async fn read_loop(
    reader: &mut GroupReader,
    epochs: Epochs,
    tx: mpsc::Sender<Pending>,
    activity: Activity,
) -> Result<(), SinkError> {
    let mut backoff = Backoff::new();
    loop {
        match reader.next_typed::<temps::Reading>().await {
            None => return Ok(()),
            Some(Ok((Decoded { value, record }, ack))) => {
                backoff.reset();
                touch(&activity);
                let epoch = epochs.lock().unwrap_or_else(PoisonError::into_inner).get(&record.partition).copied();
                let Some(epoch) = epoch else {
                    // Never claimed (cannot happen): left unacked, read again.
                    warn!(partition = record.partition, offset = record.offset, "reading of an unclaimed partition");
                    continue;
                };
                let seq = match i64::try_from(value.seq) {
                    Ok(seq) if !value.sensor.contains('\0') => seq,
                    _ => {
                        // PostgreSQL cannot store it (a seq past i64, a NUL in
                        // the sensor id); retrying would never end.
                        warn!(partition = record.partition, offset = record.offset, sensor = %value.sensor.escape_debug(),
                            seq = value.seq, "reading cannot be stored; skipped");
                        ack.ack();
                        continue;
                    }
                };
                let row = Row {
                    sensor: value.sensor,
                    seq,
                    celsius: value.celsius,
                    measured_ms: value.timestamp,
                    partition: record.partition,
                    offset: record.offset,
                    epoch,
                };
                if tx.send(Pending { row, ack }).await.is_err() {
                    return Ok(());
                }
            }
            Some(Err(e)) if matches!(e.kind(), twitch::ErrorKind::Listener { .. } | twitch::ErrorKind::Consume { .. }) => {
                let wait = backoff.next();
                warn!(error = %crate::chain(&e), retry_in = ?wait, "reading failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// Batch bounds.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// At most this many readings per transaction.
    pub size: usize,
    /// The first reading of a batch waits at most this long for others.
    pub latency: Duration,
}

/// What the writer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Rows inserted.
    pub inserted: u64,
    /// Rows skipped because their (sensor, seq) was there already.
    pub duplicates: u64,
    /// Records the database held already (delivered again).
    pub already: u64,
    /// Records of a lost assignment, not written.
    pub fenced: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Transactions that failed and were retried.
    pub retries: u64,
    /// From the first reading received to the last commit.
    pub busy: Duration,
}

impl Stats {
    /// Rows inserted per second of `busy`.
    pub fn rate(&self) -> f64 {
        self.inserted as f64 / self.busy.as_secs_f64().max(1e-9)
    }
}

/// Doubling waits from 100 ms to 5 s.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Backoff(Self::FIRST)
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }

    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        wait
    }
}

/// Takes readings from `rx` in batches and writes each in one transaction,
/// retrying a failed one with backoff until it commits; then acks its
/// records (but those of lost assignments). Returns when `rx` is closed and
/// drained.
pub async fn write_loop(store: Store, topic: String, mut rx: mpsc::Receiver<Pending>, limits: BatchLimits, stats: Arc<Mutex<Stats>>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(limits.size);
    let mut started: Option<Instant> = None;
    loop {
        if rx.recv_many(&mut batch, limits.size).await == 0 {
            return;
        }
        let started = *started.get_or_insert_with(Instant::now);
        let deadline = Instant::now() + limits.latency;
        while batch.len() < limits.size {
            let room = limits.size - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let rows: Vec<Row> = batch.iter().map(|p| p.row.clone()).collect();
        let mut backoff = Backoff::new();
        let written = loop {
            match store.write(&topic, &rows).await {
                Ok(written) => break written,
                Err(e) => {
                    let wait = backoff.next();
                    warn!(error = %e, rows = rows.len(), retry_in = ?wait, "writing a batch failed; retrying");
                    stats.lock().unwrap_or_else(PoisonError::into_inner).retries += 1;
                    tokio::time::sleep(wait).await;
                }
            }
        };
        for (pending, verdict) in batch.drain(..).zip(&written.verdicts) {
            if *verdict != Verdict::Fenced {
                pending.ack.ack();
            }
        }
        let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
        let writes = written.count(Verdict::Write);
        s.inserted += written.inserted;
        s.duplicates += writes - written.inserted;
        s.already += written.count(Verdict::Already);
        s.fenced += written.count(Verdict::Fenced);
        s.batches += 1;
        s.busy = started.elapsed();
        debug!(rows = rows.len(), inserted = written.inserted, "batch committed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_seconds_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..8).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(100));
    }
}
