//! One member of the group: its [`TransactionalStage`], the transaction it
//! has open, its running figures, and a new stage when one fails fatally
//! for any reason other than a newer process of the same member (a fence
//! that comes after the transaction outlived the transaction timeout is
//! the coordinator's abort, not a newer process).

use std::time::Duration;

use rdkafka::error::RDKafkaErrorCode;
use temps::{Reading, ASSIGNED_LOG_MESSAGE};
use tokio::time::Instant;
use tracing::{info, warn};
use twitch::stage::TransactionalStage;
use twitch::{Format, KafkaCluster};

use crate::state::{Pending, Running};

/// How a member reads, batches and writes.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Input topic.
    pub topic: String,
    /// Consumer group.
    pub group: String,
    /// Output topic.
    pub output: String,
    /// Transactional id, the same across restarts.
    pub transactional_id: String,
    /// `session.timeout.ms` of the group, if not librdkafka's.
    pub session_timeout: Option<Duration>,
    /// `transaction.timeout.ms`.
    pub transaction_timeout: Duration,
    /// Most records per batch.
    pub batch_max: usize,
    /// How long a batch waits for records.
    pub batch_wait: Duration,
    /// How long a transaction takes batches in.
    pub commit_interval: Duration,
}

/// The open transaction: what its batches derived, and when it began.
#[derive(Debug)]
struct Open {
    pending: Pending,
    began: Instant,
}

/// Transactions of every stage this process built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Committed.
    pub committed: u64,
    /// Aborted.
    pub aborted: u64,
    /// Stages built again after a fatal error.
    pub rebuilds: u64,
}

/// A member of the group.
#[derive(Debug)]
pub struct Member {
    cluster: KafkaCluster,
    settings: Settings,
    stage: TransactionalStage,
    running: Running,
    open: Option<Open>,
    /// Transactions of the stages before this one.
    past: Totals,
    /// Partitions held, as last logged.
    held: Option<Vec<i32>>,
    /// When the transaction that is open (or failed fatally) began.
    began: Option<Instant>,
}

/// Whether a fatal error says that a newer process with the same
/// transactional id took over: this one must stop, not fence it back.
pub fn is_fenced(e: &twitch::Error) -> bool {
    matches!(e.kafka_code(), Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced))
}

impl Member {
    /// Joins the group and initializes the transactions (aborting what an
    /// earlier process of this member left open).
    pub async fn start(cluster: KafkaCluster, settings: Settings, instance: u64) -> twitch::Result<Member> {
        let stage = build(&cluster, &settings).await?;
        let running = Running::new(&settings.transactional_id, instance);
        Ok(Member { cluster, settings, stage, running, open: None, past: Totals::default(), held: None, began: None })
    }

    /// One batch, and a commit when due; a fatal error other than a fence
    /// builds a new stage (the open transaction's readings come again).
    /// Fails when this member was fenced, or no new stage could be built.
    pub async fn step(&mut self) -> twitch::Result<()> {
        match self.try_step().await {
            Err(e) if e.is_fatal() && (!is_fenced(&e) || self.timed_out()) => self.rebuild(e).await,
            other => other,
        }
    }

    /// Whether the transaction that failed was open longer than the
    /// transaction timeout: then the coordinator aborted it and bumped the
    /// producer epoch, and a fence says that, not that a newer process of
    /// this member took over.
    fn timed_out(&self) -> bool {
        self.began.is_some_and(|t| t.elapsed() >= self.settings.transaction_timeout)
    }

    /// Reads a batch and writes its outputs in the open transaction (one
    /// begins with the batch); commits the transaction once it is
    /// `commit_interval` old, or when the batch is empty (nothing more to
    /// read now, or partitions wait to be revoked). A failed transaction is
    /// aborted and its readings read again; only fatal errors come out.
    async fn try_step(&mut self) -> twitch::Result<()> {
        let records = match self.stage.next_batch(self.settings.batch_max, self.settings.batch_wait).await {
            Ok(records) => records,
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => {
                warn!(error = %e, "reading a batch failed; aborting the open transaction, if any, and trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
                return self.abort().await;
            }
        };
        let empty = records.is_empty();
        if !empty {
            let txn = self.open.get_or_insert_with(|| Open { pending: Pending::default(), began: Instant::now() });
            self.began = Some(txn.began);
            let mut readings = Vec::with_capacity(records.len());
            for record in records {
                match twitch::reader::decode::<Reading>(Format::Json, record) {
                    Ok(d) => readings.push((d.record.partition, d.record.offset, d.value)),
                    Err(e) => {
                        warn!(error = %e, "not a reading; skipped");
                        txn.pending.undecodable();
                    }
                }
            }
            for output in self.running.derive(&mut txn.pending, readings) {
                if let Err(e) = self.stage.send_keyed(output.sensor.as_bytes(), &output).await {
                    if e.is_fatal() {
                        return Err(e);
                    }
                    warn!(error = %e, "writing an output failed; aborting the transaction, its readings will be read again");
                    return self.abort().await;
                }
            }
        }
        let due = self.open.as_ref().is_some_and(|txn| empty || txn.began.elapsed() >= self.settings.commit_interval);
        if due || (self.open.is_none() && self.stage.in_transaction()) {
            self.commit().await?;
        }
        self.log_assignment();
        Ok(())
    }

    /// Commits the open transaction, if any; on success its figures join
    /// the running ones, otherwise (the stage aborted it) they are dropped.
    /// Fails only with a fatal error.
    pub async fn commit(&mut self) -> twitch::Result<()> {
        let pending = self.open.take().map(|txn| txn.pending);
        match self.stage.commit().await {
            Ok(()) => {
                self.began = None;
                if let Some(pending) = pending {
                    self.running.apply(pending);
                }
                Ok(())
            }
            Err(e) if e.is_fatal() => Err(e),
            Err(e) => {
                self.began = None;
                let readings = pending.map_or(0, |p| p.readings());
                warn!(error = %e, readings, "transaction aborted; its readings will be read again");
                Ok(())
            }
        }
    }

    /// Aborts the open transaction, if any: its readings come again.
    async fn abort(&mut self) -> twitch::Result<()> {
        self.open = None;
        self.began = None;
        match self.stage.abort().await {
            Err(e) if e.is_fatal() => Err(e),
            Err(e) => {
                warn!(error = %e, "aborting the transaction failed");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Replaces a stage that failed fatally with `error`: leaves the group,
    /// and builds a new one with the same transactional id (which aborts
    /// the open transaction), trying again every second for up to the
    /// transaction timeout and a minute.
    async fn rebuild(&mut self, error: twitch::Error) -> twitch::Result<()> {
        warn!(%error, "the transactional stage failed; building a new one (the open transaction's readings come again)");
        self.open = None;
        self.began = None;
        let deadline = Instant::now() + self.settings.transaction_timeout + Duration::from_secs(60);
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match build(&self.cluster, &self.settings).await {
                Ok(stage) => {
                    let old = std::mem::replace(&mut self.stage, stage);
                    let c = old.counters();
                    self.past.committed += c.committed;
                    self.past.aborted += c.aborted;
                    self.past.rebuilds += 1;
                    if let Err(e) = old.shutdown().await {
                        warn!(error = %e, "the failed stage did not leave the group cleanly");
                    }
                    self.held = None;
                    info!(rebuilds = self.past.rebuilds, "new transactional stage ready");
                    return Ok(());
                }
                Err(e) if Instant::now() < deadline && !is_fenced(&e) => {
                    warn!(error = %e, "cannot build a new transactional stage yet; trying again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Logs the partitions the member holds whenever they change between
    /// two batches (target `average_stage`: `average_stage: assigned
    /// partitions partitions=0,2`, `average_stage: partitions revoked`).
    fn log_assignment(&mut self) {
        let mut now: Vec<i32> = self.stage.assignment().into_iter().map(|tp| tp.partition).collect();
        now.sort_unstable();
        if self.held.as_ref() == Some(&now) {
            return;
        }
        if now.is_empty() {
            info!(target: "average_stage", "partitions revoked");
        } else {
            let list = now.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            info!(target: "average_stage", partitions = %list, "{ASSIGNED_LOG_MESSAGE}");
        }
        self.held = Some(now);
    }

    /// Transactions so far, over every stage.
    pub fn totals(&self) -> Totals {
        let c = self.stage.counters();
        Totals { committed: self.past.committed + c.committed, aborted: self.past.aborted + c.aborted, ..self.past }
    }

    /// The running figures.
    pub fn running(&self) -> &Running {
        &self.running
    }

    /// Logs the figures so far, as `what`.
    pub fn log(&self, what: &str) {
        let t = self.totals();
        let sensors = self
            .running
            .sensors()
            .map(|(s, f)| format!("{s}={:.3}(n={})", f.mean.mean().unwrap_or(f64::NAN), f.mean.count()))
            .collect::<Vec<_>>()
            .join(" ");
        info!(
            transactions = t.committed,
            aborted = t.aborted,
            rebuilds = t.rebuilds,
            readings = self.running.readings(),
            outputs = self.running.outputs(),
            undecodable = self.running.undecodable(),
            averages = %sensors,
            "{what}"
        );
    }

    /// Aborts the open transaction, if any, and leaves the group.
    pub async fn shutdown(self) -> twitch::Result<()> {
        self.stage.shutdown().await
    }
}

/// A stage for `settings`.
async fn build(cluster: &KafkaCluster, settings: &Settings) -> twitch::Result<TransactionalStage> {
    let mut reader = cluster.group_reader(&settings.group).topic(&settings.topic).low_latency();
    if let Some(timeout) = settings.session_timeout {
        reader = reader.session_timeout(timeout);
    }
    cluster
        .transactional_stage(reader, &settings.output, &settings.transactional_id)
        .transaction_timeout(settings.transaction_timeout)
        .format(Format::Json)
        .build()
        .await
}
