//! The baseline: plain rdkafka, written the way a careful user would, with
//! exactly twitch's client settings.
//!
//! * Producer: a `ThreadedProducer` whose context only counts delivery
//!   reports; `send` retries on `QueueFull` once a report came in; `flush`
//!   waits for the last report (woken by the delivery callback, not by
//!   rdkafka's 100 ms `flush` polling).
//! * Consumer: a `StreamConsumer`, reading borrowed messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Notify;

/// Bootstrap servers, client id and log level as twitch sets them, then
/// `defaults` (twitch's, so both sides match), then `overrides`.
fn config_with(brokers: &str, defaults: &[(&str, &str)], overrides: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("client.id", "bench-raw").set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in defaults {
        config.set(*k, *v);
    }
    for (k, v) in overrides {
        config.set(k, v);
    }
    config
}

/// twitch's producer settings (`twitch::writer::PRODUCER_DEFAULTS`), then
/// `overrides`.
pub fn producer_config(brokers: &str, overrides: &[(String, String)]) -> ClientConfig {
    config_with(brokers, twitch::writer::PRODUCER_DEFAULTS, overrides)
}

/// twitch's consumer settings (`twitch::reader::CONSUMER_DEFAULTS`), then
/// `overrides`.
pub fn consumer_config(brokers: &str, overrides: &[(String, String)]) -> ClientConfig {
    config_with(brokers, twitch::reader::CONSUMER_DEFAULTS, overrides)
}

/// Counts delivery reports and wakes a waiter once `wake_at` is reached.
struct Counter {
    done: AtomicU64,
    failed: AtomicU64,
    wake_at: AtomicU64,
    notify: Notify,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Counter {}

impl ProducerContext for Counter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((err, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            first.get_or_insert_with(|| err.to_string());
        }
        let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.wake_at.load(Ordering::SeqCst) {
            self.wake_at.store(u64::MAX, Ordering::SeqCst);
            self.notify.notify_one();
        }
    }
}

/// A producer with precise flushes.
pub struct RawProducer {
    producer: ThreadedProducer<Counter>,
    sent: u64,
}

impl RawProducer {
    pub fn new(config: &ClientConfig) -> Result<Self> {
        let counter = Counter {
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            notify: Notify::new(),
            first_error: Mutex::new(None),
        };
        let producer = config.create_with_context(counter).context("creating the raw producer")?;
        Ok(RawProducer { producer, sent: 0 })
    }

    fn counter(&self) -> &Counter {
        self.producer.context()
    }

    /// Waits until `target` delivery reports came in (or `limit` passed).
    async fn wait_for(&self, target: u64, limit: Duration) {
        let c = self.counter();
        c.wake_at.store(target, Ordering::SeqCst);
        if c.done.load(Ordering::SeqCst) < target {
            let _ = tokio::time::timeout(limit, c.notify.notified()).await;
        }
    }

    /// Queues a record, waiting for room when librdkafka's queue is full.
    pub async fn send(&mut self, mut record: BaseRecord<'_, [u8], [u8]>) -> Result<()> {
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    let done = self.counter().done.load(Ordering::SeqCst);
                    self.wait_for(done + 1, Duration::from_millis(10)).await;
                }
                Err((e, _)) => bail!("raw produce failed: {e}"),
            }
        }
    }

    /// Waits for every queued record's delivery report; fails if any failed.
    pub async fn flush(&mut self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        // A zero-timeout rd_kafka_flush sends lingering batches now (it
        // returns at once; the wait below is precise, not rdkafka's 100 ms
        // polling).
        let _ = self.producer.flush(Duration::ZERO);
        while self.counter().done.load(Ordering::SeqCst) < self.sent {
            if tokio::time::Instant::now() >= deadline {
                bail!("raw flush timed out with {} records in flight", self.producer.in_flight_count());
            }
            self.wait_for(self.sent, Duration::from_millis(100)).await;
        }
        let failed = self.counter().failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = self.counter().first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            bail!("{failed} records not delivered (first error: {})", first.unwrap_or_default());
        }
        Ok(())
    }
}

/// A consumer of explicitly assigned partitions, from the beginning.
pub fn partition_consumer(brokers: &str, topic: &str, partitions: &[i32], extra: &[(String, String)]) -> Result<StreamConsumer> {
    let mut config = consumer_config(brokers, extra);
    // librdkafka's assign() needs a group id even without subscribing;
    // nothing is committed under it.
    config.set("enable.partition.eof", "false").set("group.id", format!("bench-raw-partition-{}", std::process::id()));
    let consumer: StreamConsumer = config.create().context("creating the raw consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// A consumer-group member subscribed to `topic`.
pub fn group_consumer(brokers: &str, group: &str, topic: &str, extra: &[(String, String)]) -> Result<StreamConsumer> {
    let mut config = consumer_config(brokers, extra);
    config.set("group.id", group).set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer = config.create().context("creating the raw group consumer")?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// The next message, or an error after `idle` without one.
pub async fn recv<'c>(consumer: &'c StreamConsumer, idle: Duration) -> Result<BorrowedMessage<'c>> {
    match tokio::time::timeout(idle, consumer.recv()).await {
        Ok(msg) => Ok(msg?),
        Err(_) => bail!("no record for {idle:?}"),
    }
}

/// Commits what was processed every second, like twitch's group reader:
/// either the next offset per partition, kept here, or (`stored`) the
/// offsets stored in librdkafka per message.
pub struct Committer {
    topic: String,
    next: Vec<i64>,
    stored: bool,
    last: std::time::Instant,
}

impl Committer {
    pub fn new(topic: &str, partitions: usize, stored: bool) -> Self {
        Committer { topic: topic.to_owned(), next: vec![-1; partitions], stored, last: std::time::Instant::now() }
    }

    /// `msg` is processed.
    pub fn processed(&mut self, consumer: &StreamConsumer, msg: &BorrowedMessage<'_>) -> Result<()> {
        if self.stored {
            consumer.store_offset_from_message(msg)?;
        } else if let Some(slot) = usize::try_from(msg.partition()).ok().and_then(|p| self.next.get_mut(p)) {
            *slot = (*slot).max(msg.offset() + 1);
        }
        Ok(())
    }

    fn tpl(&self) -> Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in self.next.iter().enumerate() {
            if *o >= 0 {
                tpl.add_partition_offset(&self.topic, i32::try_from(p)?, Offset::Offset(*o))?;
            }
        }
        Ok(tpl)
    }

    /// Commits asynchronously when a second has passed.
    pub fn maybe_commit(&mut self, consumer: &StreamConsumer) -> Result<()> {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = std::time::Instant::now();
            self.commit(consumer, CommitMode::Async)?;
        }
        Ok(())
    }

    /// Commits synchronously.
    pub fn commit_now(&self, consumer: &StreamConsumer) -> Result<()> {
        tokio::task::block_in_place(|| self.commit(consumer, CommitMode::Sync))
    }

    fn commit(&self, consumer: &StreamConsumer, mode: CommitMode) -> Result<()> {
        if self.stored {
            return match consumer.commit_consumer_state(mode) {
                // Nothing stored since the last commit.
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
                other => Ok(other?),
            };
        }
        let tpl = self.tpl()?;
        if tpl.count() > 0 {
            consumer.commit(&tpl, mode)?;
        }
        Ok(())
    }
}
