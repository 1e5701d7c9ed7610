//! The latency cases: records at a steady rate, timed from the produce call to the consuming
//! task.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use twitch::{Record, TopicPartition};

use super::{next_within, payload, read_stamp, stamp, Case, Ctx, Sample, FLUSH, IDLE, WARMUP_SEQ};
use crate::raw;
use crate::stats::{now_ns, Latency};

/// Sends `count` records at `rate` per second, each stamped with the time
/// of its produce call; `send` is the side's produce.
struct Pacer {
    interval: Duration,
    start: tokio::time::Instant,
}

impl Pacer {
    fn new(rate: u64) -> Pacer {
        Pacer { interval: Duration::from_secs(1) / u32::try_from(rate.max(1)).unwrap_or(u32::MAX), start: tokio::time::Instant::now() }
    }

    async fn wait(&self, i: u64) {
        let due = self.start + self.interval * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due).await;
    }
}

/// Latency bookkeeping of a consumer: skips the warm-up record (and
/// reports it through `warm`), records microseconds from the produce call.
struct LatencySink {
    lat: Vec<u64>,
    warm: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LatencySink {
    fn new(count: u64, warm: tokio::sync::oneshot::Sender<()>) -> Self {
        LatencySink { lat: Vec::with_capacity(usize::try_from(count).unwrap_or(0)), warm: Some(warm) }
    }

    fn record(&mut self, payload: &[u8], now: u64) -> Result<()> {
        let Some((seq, ts)) = read_stamp(payload) else { bail!("short payload") };
        if seq == WARMUP_SEQ {
            if let Some(w) = self.warm.take() {
                let _ = w.send(());
            }
        } else {
            self.lat.push(now.saturating_sub(ts) / 1_000);
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.lat.len() as u64
    }
}

pub(super) async fn raw_latency(ctx: &Ctx, case: &Case, rate: u64, fetch_wait_ms: Option<u32>) -> Result<Sample> {
    let mut extra = ctx.tuning.consumer.clone();
    if let Some(ms) = fetch_wait_ms {
        extra.push(("fetch.wait.max.ms".to_owned(), ms.to_string()));
    }
    let consumer = raw::partition_consumer(&ctx.brokers, &ctx.topic, &[0], &extra)?;
    let (warm_tx, warm_rx) = tokio::sync::oneshot::channel();
    let count = case.count;
    let reader = tokio::spawn(async move {
        let mut sink = LatencySink::new(count, warm_tx);
        while sink.len() < count {
            let msg = raw::recv(&consumer, IDLE).await?;
            let now = now_ns();
            sink.record(msg.payload().unwrap_or_default(), now)?;
        }
        Ok::<_, anyhow::Error>(sink.lat)
    });

    let mut producer = ctx.raw_producer()?;
    let mut buf = payload(case.size);
    stamp(&mut buf, WARMUP_SEQ, now_ns());
    producer.send(BaseRecord::to(&ctx.topic).payload(&buf[..]).partition(0)).await?;
    producer.flush(FLUSH).await?;
    tokio::time::timeout(IDLE, warm_rx).await.context("the consumer did not see the warm-up record")??;

    let meter = ctx.meter();
    let pacer = Pacer::new(rate);
    for i in 0..case.count {
        pacer.wait(i).await;
        stamp(&mut buf, i, now_ns());
        producer.send(BaseRecord::to(&ctx.topic).payload(&buf[..]).partition(0)).await?;
    }
    producer.flush(FLUSH).await?;
    let mut lat = reader.await??;
    let span = meter.stop();
    Ok(Sample { records: case.count, bytes: case.count * case.size as u64, span, latency: Some(Latency::from_samples(&mut lat)) })
}

pub(super) async fn twitch_latency(ctx: &Ctx, case: &Case, rate: u64, fetch_wait_ms: Option<u32>) -> Result<Sample> {
    let cluster = ctx.cluster()?;
    let tp = TopicPartition::new(ctx.topic.as_str(), 0);
    let mut builder = ctx.reader_cluster()?.partition_reader().partition(tp.clone());
    if let Some(ms) = fetch_wait_ms {
        builder = builder.set("fetch.wait.max.ms", &ms.to_string());
    }
    let mut reader = builder.build()?;
    let (warm_tx, warm_rx) = tokio::sync::oneshot::channel();
    let count = case.count;
    let consumer = tokio::spawn(async move {
        let mut sink = LatencySink::new(count, warm_tx);
        while sink.len() < count {
            let record = next_within(reader.next()).await??;
            let now = now_ns();
            sink.record(record.payload(), now)?;
        }
        Ok::<_, anyhow::Error>(sink.lat)
    });

    let mut writer = cluster.get_writer_for_partition(tp)?;
    let mut buf = payload(case.size);
    stamp(&mut buf, WARMUP_SEQ, now_ns());
    writer.produce(Record::new(buf.clone())).await?;
    writer.flush_async().await?;
    tokio::time::timeout(IDLE, warm_rx).await.context("the reader did not see the warm-up record")??;

    let meter = ctx.meter();
    let pacer = Pacer::new(rate);
    for i in 0..case.count {
        pacer.wait(i).await;
        stamp(&mut buf, i, now_ns());
        writer.produce(Record::new(buf.clone())).await?;
    }
    writer.flush_async().await?;
    let mut lat = consumer.await??;
    let span = meter.stop();
    Ok(Sample { records: case.count, bytes: case.count * case.size as u64, span, latency: Some(Latency::from_samples(&mut lat)) })
}
