//! The typed round trips: encode, produce and flush, then consume and decode.

use anyhow::{bail, Result};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::BaseRecord;
use serde::{Deserialize, Serialize};
use twitch::{Format, TopicPartition};

use super::{next_within, Case, Ctx, Sample, FLUSH, IDLE, WARMUP_SEQ};
use crate::raw;
use crate::stats::Span;

/// A typical event: a sensor reading with some strings and numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reading {
    seq: u64,
    sensor: String,
    site: String,
    celsius: f64,
    humidity: f32,
    ok: bool,
    tags: Vec<String>,
    samples: Vec<i32>,
}

impl Reading {
    fn sample(seq: u64) -> Reading {
        Reading {
            seq,
            sensor: format!("sensor-{:04}", seq % 1024),
            site: "plant-7/hall-b".to_owned(),
            celsius: 20.0 + (seq % 100) as f64 / 10.0,
            humidity: 0.41,
            ok: seq % 17 != 0,
            tags: vec!["calibrated".to_owned(), "zone-3".to_owned()],
            samples: (0..12).map(|i| (seq as i32).wrapping_mul(31).wrapping_add(i)).collect(),
        }
    }
}

/// The two halves of a round trip, for `RUST_LOG=twitch_bench=debug`.
fn phases(side: &str, produce: &Span, consume: &Span) {
    tracing::debug!(side, produce_ms = produce.wall.as_secs_f64() * 1e3, consume_ms = consume.wall.as_secs_f64() * 1e3, "round trip");
}

fn encode_raw(format: Format, value: &Reading, buf: &mut Vec<u8>) -> Result<()> {
    buf.clear();
    match format {
        Format::Bincode => bincode::serialize_into(&mut *buf, value)?,
        _ => serde_json::to_writer(&mut *buf, value)?,
    }
    Ok(())
}

fn decode_raw(format: Format, bytes: &[u8]) -> Result<Reading> {
    Ok(match format {
        Format::Bincode => bincode::deserialize(bytes)?,
        _ => serde_json::from_slice(bytes)?,
    })
}

/// Values are built before the clock starts; the measured part is encode +
/// produce + flush, then (clock paused while the consumer starts) consume +
/// decode.
pub(super) async fn raw_typed(ctx: &Ctx, case: &Case, format: Format, headers: bool) -> Result<Sample> {
    let values: Vec<Reading> = (0..case.count).map(Reading::sample).collect();
    let mut producer = ctx.raw_producer()?;
    let mut buf = Vec::new();
    encode_raw(format, &Reading::sample(WARMUP_SEQ), &mut buf)?;
    producer.send(BaseRecord::to(&ctx.topic).payload(&buf[..]).partition(0)).await?;
    producer.flush(FLUSH).await?;

    let meter = ctx.meter();
    for v in &values {
        encode_raw(format, v, &mut buf)?;
        producer.send(BaseRecord::to(&ctx.topic).payload(&buf[..]).partition(0)).await?;
    }
    producer.flush(FLUSH).await?;
    let produce = meter.stop();

    let consumer = raw::partition_consumer(&ctx.brokers, &ctx.topic, &[0], &ctx.tuning.consumer)?;
    let warm = raw::recv(&consumer, IDLE).await?;
    if decode_raw(format, warm.payload().unwrap_or_default())?.seq != WARMUP_SEQ {
        bail!("the first record is not the warm-up record");
    }
    drop(warm);
    let meter = ctx.meter();
    let mut bytes = 0;
    for want in 0..case.count {
        let msg = raw::recv(&consumer, IDLE).await?;
        let bytes_in = msg.payload().unwrap_or_default();
        bytes += bytes_in.len() as u64;
        if headers && msg.headers().is_some_and(|h| h.iter().any(|h| h.key == twitch::codec::FORMAT_HEADER)) {
            bail!("record {want} has a format header");
        }
        let value = decode_raw(format, bytes_in)?;
        if value.seq != want {
            bail!("record {want} came back as {}", value.seq);
        }
    }
    let consume = meter.stop();
    phases("raw", &produce, &consume);
    Ok(Sample { records: case.count, bytes, span: produce + consume, latency: None })
}

/// Bytes of the values encoded, for the twitch side, whose decoded values
/// do not keep their payload; counted before the clock starts. Not inlined,
/// so that scripts/instructions.sh can leave it out of twitch's count.
#[inline(never)]
fn encoded_size(format: Format, values: &[Reading]) -> Result<u64> {
    let mut buf = Vec::new();
    let mut bytes = 0;
    for v in values {
        format.encode_into(v, &mut buf)?;
        bytes += buf.len() as u64;
    }
    Ok(bytes)
}

pub(super) async fn twitch_typed(ctx: &Ctx, case: &Case, format: Format, headers: bool) -> Result<Sample> {
    let values: Vec<Reading> = (0..case.count).map(Reading::sample).collect();
    let cluster = ctx.cluster()?;
    let tp = TopicPartition::new(ctx.topic.as_str(), 0);
    let mut writer = cluster.get_writer_for_partition(tp.clone())?.with_format(format);
    writer.send(&Reading::sample(WARMUP_SEQ)).await?;
    writer.flush_async().await?;

    let meter = ctx.meter();
    for v in &values {
        writer.send(v).await?;
    }
    writer.flush_async().await?;
    let produce = meter.stop();

    let bytes = encoded_size(format, &values)?;
    let mut reader =
        ctx.reader_cluster()?.partition_reader().partition(tp).format(format).typed_headers(headers).build()?;
    // Without headers, values alone (as raw decodes them); with headers, the
    // values with their records' metadata, twitch's full typed read.
    let mut next_seq = async || -> Result<u64> {
        Ok(if headers {
            next_within(reader.next_typed::<Reading>()).await??.value.seq
        } else {
            next_within(reader.next_value::<Reading>()).await??.seq
        })
    };
    if next_seq().await? != WARMUP_SEQ {
        bail!("the first record is not the warm-up record");
    }
    let meter = ctx.meter();
    for want in 0..case.count {
        let seq = next_seq().await?;
        if seq != want {
            bail!("record {want} came back as {seq}");
        }
    }
    let consume = meter.stop();
    phases("twitch", &produce, &consume);
    Ok(Sample { records: case.count, bytes, span: produce + consume, latency: None })
}
