//! The read cases: group and partition readers against raw rdkafka's consumer, and rskafka's
//! stream consumer.

use anyhow::{Context, Result};
use futures::StreamExt as _;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use twitch::reader::Step;
use twitch::TopicPartition;

use super::{keys, next_within, payload, stamp, within, Case, Ctx, GroupReading, Sample, Side, FLUSH, IDLE};
use crate::peer;
use crate::raw;
use crate::stats::Span;

/// Writes the records a read case consumes (not measured).
async fn prefill(ctx: &Ctx, case: &Case) -> Result<()> {
    let mut producer = ctx.raw_producer()?;
    let mut buf = payload(case.size);
    let keys = keys();
    for i in 0..case.count {
        stamp(&mut buf, i, 0);
        let rec = BaseRecord::to(&ctx.topic).payload(&buf[..]).key(&keys[(i % 1024) as usize][..]);
        producer.send(rec).await?;
    }
    producer.flush(FLUSH).await
}

/// Records and bytes read, and the span from the first record to the last.
struct ReadOutcome {
    records: u64,
    bytes: u64,
    span: Span,
}

pub(super) async fn group_read(ctx: &Ctx, case: &Case, side: Side, how: GroupReading) -> Result<Sample> {
    prefill(ctx, case).await?;
    let group = format!("{}-group", ctx.topic);
    let out = match side {
        Side::Raw | Side::RawStored => {
            let consumer = raw::group_consumer(&ctx.brokers, &group, &ctx.topic, &ctx.tuning.consumer)?;
            let mut committer = raw::Committer::new(&ctx.topic, case.partitions as usize, side == Side::RawStored);
            let each = |m: &rdkafka::message::BorrowedMessage<'_>| {
                committer.processed(&consumer, m)?;
                committer.maybe_commit(&consumer)
            };
            let out = match how {
                GroupReading::InPlace => raw_read(ctx, &consumer, case.count, RawRead::InPlace, each).await?,
                GroupReading::Owned => raw_read(ctx, &consumer, case.count, RawRead::Owned, each).await?,
                GroupReading::Each => within(raw_read(ctx, &consumer, case.count, RawRead::Untimed, each)).await?,
            };
            committer.commit_now(&consumer)?;
            tokio::task::spawn_blocking(move || drop(consumer)).await?;
            out
        }
        _ => {
            let mut reader = ctx.reader_cluster()?.group_reader(&group).topic(&ctx.topic).build()?;
            let mut bytes = 0;
            let mut meter = None;
            if how == GroupReading::Each {
                let mut left = case.count;
                within(reader.for_each_ref(|record| {
                    bytes += record.payload().len() as u64;
                    // The clock starts at the first record, as on the raw side.
                    meter.get_or_insert_with(|| ctx.meter());
                    left -= 1;
                    Ok::<_, anyhow::Error>(if left == 0 { Step::Stop } else { Step::Continue })
                }))
                .await?;
            } else {
                for _ in 0..case.count {
                    let ack = if how == GroupReading::Owned {
                        let (record, ack) = next_within(reader.next()).await??;
                        bytes += std::hint::black_box(record).payload().len() as u64;
                        ack
                    } else {
                        let (record, ack) = next_within(reader.next_ref()).await??;
                        bytes += record.payload().len() as u64;
                        ack
                    };
                    ack.ack();
                    meter.get_or_insert_with(|| ctx.meter());
                }
            }
            let span = meter.map(|m| m.stop()).unwrap_or_default();
            reader.shutdown().await?;
            ReadOutcome { records: case.count, bytes, span }
        }
    };
    Ok(Sample { records: out.records, bytes: out.bytes, span: out.span, latency: None })
}

pub(super) async fn partition_read(ctx: &Ctx, case: &Case, side: Side, owned: bool) -> Result<Sample> {
    prefill(ctx, case).await?;
    let out = match side {
        Side::Raw => {
            let consumer = raw::partition_consumer(&ctx.brokers, &ctx.topic, &[0], &ctx.tuning.consumer)?;
            raw_read(ctx, &consumer, case.count, if owned { RawRead::Owned } else { RawRead::InPlace }, |_| Ok(())).await?
        }
        _ => {
            let mut reader = ctx.reader_cluster()?.partition_reader().partition(TopicPartition::new(ctx.topic.as_str(), 0)).build()?;
            let mut bytes = 0;
            let mut meter = None;
            for _ in 0..case.count {
                bytes += if owned {
                    std::hint::black_box(next_within(reader.next()).await??).payload().len() as u64
                } else {
                    next_within(reader.next_ref()).await??.payload().len() as u64
                };
                meter.get_or_insert_with(|| ctx.meter());
            }
            ReadOutcome { records: case.count, bytes, span: meter.map(|m| m.stop()).unwrap_or_default() }
        }
    };
    Ok(Sample { records: out.records, bytes: out.bytes, span: out.span, latency: None })
}

/// rskafka's side of the read cases, group and partition alike (rskafka has
/// no consumer groups): every partition's stream, merged; its records are
/// always owned. The clock starts when the streams are made, once the
/// connection is up, not at the first record as on the other sides: an
/// rskafka stream hands out its first record only after fetching and
/// decoding a whole fetch, up to 50 MB (most of a case's records), where
/// librdkafka's first fetch is 1 MB a partition.
pub(super) async fn rskafka_read(ctx: &Ctx, case: &Case) -> Result<Sample> {
    prefill(ctx, case).await?;
    let parts = peer::partitions(&ctx.brokers, &ctx.topic, case.partitions).await?;
    let meter = ctx.meter();
    let mut reader = peer::reader(&parts);
    let mut bytes = 0;
    for _ in 0..case.count {
        let (record, _high_watermark) = next_within(reader.next()).await??;
        bytes += peer::value_len(&record);
    }
    Ok(Sample { records: case.count, bytes, span: meter.stop(), latency: None })
}

/// How [`raw_read`] takes each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawRead {
    /// Borrowed, within [`IDLE`] each.
    InPlace,
    /// Detached into an owned copy, within [`IDLE`] each.
    Owned,
    /// Borrowed, from one message stream for the whole read, with no timer
    /// per message (the caller bounds the whole read): raw rdkafka's
    /// cheapest loop, which registers no waker per message as `recv` does.
    Untimed,
}

/// Reads `count` messages as `how` says; the clock starts at the first one.
async fn raw_read(
    ctx: &Ctx,
    consumer: &StreamConsumer,
    count: u64,
    how: RawRead,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> Result<()>,
) -> Result<ReadOutcome> {
    let mut bytes = 0;
    let mut meter = None;
    let mut stream = (how == RawRead::Untimed).then(|| consumer.stream());
    for i in 0..count {
        let msg = match stream.as_mut() {
            Some(stream) => stream.next().await.context("rdkafka's message stream ended")??,
            None => raw::recv(consumer, IDLE).await.with_context(|| format!("after {i} of {count} records"))?,
        };
        bytes += if how == RawRead::Owned {
            std::hint::black_box(msg.detach()).payload().map_or(0, <[u8]>::len) as u64
        } else {
            msg.payload().map_or(0, <[u8]>::len) as u64
        };
        each(&msg)?;
        meter.get_or_insert_with(|| ctx.meter());
    }
    Ok(ReadOutcome { records: count, bytes, span: meter.map(|m| m.stop()).unwrap_or_default() })
}
