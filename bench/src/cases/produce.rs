//! The write cases: raw rdkafka, twitch's partition and keyed writers, and rskafka.

use anyhow::Result;
use rdkafka::producer::BaseRecord;
use twitch::{Record, TopicPartition};

use super::{keys, payload, stamp, Case, Ctx, Kind, Sample, FLUSH, WARMUP_SEQ};
use crate::peer;

pub(super) async fn raw_produce(ctx: &Ctx, case: &Case) -> Result<Sample> {
    let mut producer = ctx.raw_producer()?;
    let mut buf = payload(case.size);
    let keyed = case.kind == Kind::KeyedProduce;
    let keys = keys();
    stamp(&mut buf, WARMUP_SEQ, 0);
    producer.send(BaseRecord::to(&ctx.topic).payload(&buf[..]).partition(0)).await?;
    producer.flush(FLUSH).await?;

    let fresh = matches!(case.kind, Kind::PartitionProduce { fresh: true, .. });
    let meter = ctx.meter();
    for i in 0..case.count {
        stamp(&mut buf, i, 0);
        // As the seed does: a new Vec per record, like serializing one.
        let owned = fresh.then(|| buf.clone());
        let mut rec = BaseRecord::to(&ctx.topic).payload(owned.as_deref().unwrap_or(&buf[..]));
        if keyed {
            rec = rec.key(&keys[(i % 1024) as usize][..]);
        } else {
            rec = rec.partition(0);
        }
        producer.send(rec).await?;
    }
    producer.flush(FLUSH).await?;
    let span = meter.stop();
    Ok(Sample { records: case.count, bytes: case.count * case.size as u64, span, latency: None })
}

pub(super) async fn twitch_partition_produce(ctx: &Ctx, case: &Case, blocking: bool, fresh: bool) -> Result<Sample> {
    let cluster = ctx.cluster()?;
    let mut writer = cluster.get_writer_for_partition(TopicPartition::new(ctx.topic.as_str(), 0))?;
    let mut buf = payload(case.size);
    stamp(&mut buf, WARMUP_SEQ, 0);
    writer.produce(Record::new(buf.clone())).await?;
    writer.flush_async().await?;

    let mut record = Record::new(buf);
    let meter = ctx.meter();
    for i in 0..case.count {
        stamp(&mut record.payload, i, 0);
        if fresh {
            writer.produce(Record::new(record.payload.clone())).await?;
        } else {
            writer.produce_ref(&record).await?;
        }
    }
    if blocking {
        writer.flush()?;
    } else {
        writer.flush_async().await?;
    }
    let span = meter.stop();
    Ok(Sample { records: case.count, bytes: case.count * case.size as u64, span, latency: None })
}

pub(super) async fn twitch_keyed_produce(ctx: &Ctx, case: &Case) -> Result<Sample> {
    let cluster = ctx.cluster()?;
    let mut writer = cluster.keyed_writer(&ctx.topic)?;
    let mut buf = payload(case.size);
    let keys = keys();
    stamp(&mut buf, WARMUP_SEQ, 0);
    writer.produce_to(0, Record::new(buf.clone())).await?;
    writer.flush_async().await?;

    let mut record = Record::new(buf).with_key(Vec::new());
    let meter = ctx.meter();
    for i in 0..case.count {
        stamp(&mut record.payload, i, 0);
        if let Some(key) = record.key.as_mut() {
            key.clear();
            key.extend_from_slice(&keys[(i % 1024) as usize]);
        }
        writer.produce_ref(&record).await?;
    }
    writer.flush_async().await?;
    let span = meter.stop();
    Ok(Sample { records: case.count, bytes: case.count * case.size as u64, span, latency: None })
}

/// rskafka's side of the write cases: the records each case's twitch side
/// writes (a new `Vec` per record, as rskafka takes values by value; keyed
/// records carry their key), sent as [`peer::Writer`] batches.
pub(super) async fn rskafka_produce(ctx: &Ctx, case: &Case) -> Result<Sample> {
    let parts = peer::partitions(&ctx.brokers, &ctx.topic, case.partitions).await?;
    let keyed = case.kind == Kind::KeyedProduce;
    let keys = keys();
    let mut buf = payload(case.size);
    stamp(&mut buf, WARMUP_SEQ, 0);
    let mut warm = peer::Writer::new(&parts, 1);
    warm.push(0, peer::record(None, buf.clone())).await?;
    warm.finish().await?;

    let meter = ctx.meter();
    let mut writer = peer::Writer::new(&parts, ctx.tuning.rskafka_batch());
    for i in 0..case.count {
        stamp(&mut buf, i, 0);
        let (partition, key) = if keyed {
            let key = &keys[(i % 1024) as usize];
            (peer::partition_of(key, parts.len()), Some(key.clone()))
        } else {
            (0, None)
        };
        writer.push(partition, peer::record(key, buf.clone())).await?;
    }
    writer.finish().await?;
    let span = meter.stop();
    Ok(Sample { records: case.count, bytes: case.count * case.size as u64, span, latency: None })
}
