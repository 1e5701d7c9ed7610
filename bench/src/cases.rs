//! The benchmark cases, each written for raw rdkafka and twitch, and where
//! the peer has the same workload, for rskafka ([`crate::peer`]).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::StreamExt as _;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::BaseRecord;
use serde::{Deserialize, Serialize};
use twitch::reader::Step;
use twitch::{Format, KafkaCluster, Record, TopicPartition};

use crate::peer;
use crate::raw::{self, RawProducer};
use crate::stats::{now_ns, CpuPerRecord, Latency, Meter, Span};
use crate::target::Target;

/// How long a consumer may see nothing before the case fails.
const IDLE: Duration = Duration::from_secs(30);
/// Flush timeout for both sides.
const FLUSH: Duration = Duration::from_secs(120);

/// Who runs a case. twitch is the side every other is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Plain rdkafka with twitch's settings ([`crate::raw`]).
    Raw,
    /// Plain rdkafka storing each processed record's offset
    /// (`store_offset_from_message`) and committing the stored offsets every
    /// second: librdkafka's own way to commit only what was processed
    /// (group reads only).
    RawStored,
    /// twitch with its defaults (idempotent writers).
    Twitch,
    /// twitch's writers with `enable.idempotence=false` (write cases only):
    /// what idempotence costs.
    TwitchNoIdem,
    /// rskafka, another Rust client ([`crate::peer`]; writes and reads).
    Rskafka,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Raw => "raw",
            Side::RawStored => "raw-stored",
            Side::Twitch => "twitch",
            Side::TwitchNoIdem => "twitch-noidem",
            Side::Rskafka => "rskafka",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Partition writer, then `flush`; `blocking` uses twitch's blocking
    /// `flush()` (as the seed code does), else `flush_async()`. `fresh`: as
    /// in the seed, every record is a new `Vec` (twitch: `produce(Record)`;
    /// raw: a new `Vec` sent by reference); else both sides send one reused
    /// buffer (twitch: `produce_ref`).
    PartitionProduce { blocking: bool, fresh: bool },
    /// Keyed writer over the topic's partitions, reused buffers
    /// (`produce_ref`).
    KeyedProduce,
    /// Group reader consuming pre-written records, read as [`GroupReading`]
    /// says.
    GroupRead(GroupReading),
    /// Partition reader consuming pre-written records; `owned` as above.
    PartitionRead { owned: bool },
    /// Encode + produce, then consume + decode. `headers`: both sides also
    /// look at each record's headers (raw's `Message::headers`; twitch's
    /// default, reading values with their metadata through `next_typed`);
    /// else neither does, and both decode values alone (twitch's
    /// `typed_headers(false)` + `next_value`).
    Typed { format: Format, headers: bool },
    /// Fixed-rate produce, consume concurrently; latency per record.
    /// `fetch_wait_ms` sets `fetch.wait.max.ms` on both sides' consumers.
    Latency { rate: u64, fetch_wait_ms: Option<u32> },
}

/// How the group-read cases read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupReading {
    /// In place: twitch's `next_ref` and an ack per record, against raw's
    /// borrowed messages; each record awaited within [`IDLE`] on both sides.
    InPlace,
    /// Owned records: twitch's `next` against raw's `detach()`.
    Owned,
    /// In place, in one call: twitch's `for_each_ref`, against raw's loop
    /// over one message stream; the whole read within [`IDLE`] on both
    /// sides, no timer per record.
    Each,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub what: String,
    pub kind: Kind,
    pub count: u64,
    pub size: usize,
    pub partitions: i32,
    /// On the mock cluster, read `count` records as passes of this many
    /// (each on a fresh topic): librdkafka's mock broker keeps at most
    /// 5 MiB (and 100,000 records) per partition and drops older records.
    pub mock_pass: Option<u64>,
}

impl Case {
    /// Records per pass and number of passes on `target`.
    pub fn passes(&self, target: &Target) -> (u64, u64) {
        match self.mock_pass {
            Some(per) if target.is_mock() && per < self.count => (per, self.count.div_ceil(per)),
            _ => (self.count, 1),
        }
    }

    pub fn is_latency(&self) -> bool {
        matches!(self.kind, Kind::Latency { .. })
    }

    /// The sides that run this case: raw and twitch always; the
    /// non-idempotent twitch writer in the write cases; raw-stored in the
    /// group reads; rskafka in the write and read cases (it has no typed
    /// layer to compare, and no linger for the latency cases).
    pub fn sides(&self) -> Vec<Side> {
        match self.kind {
            Kind::PartitionProduce { .. } | Kind::KeyedProduce => vec![Side::Raw, Side::Twitch, Side::TwitchNoIdem, Side::Rskafka],
            Kind::GroupRead(_) => vec![Side::Raw, Side::RawStored, Side::Twitch, Side::Rskafka],
            Kind::PartitionRead { .. } => vec![Side::Raw, Side::Twitch, Side::Rskafka],
            Kind::Typed { .. } | Kind::Latency { .. } => vec![Side::Raw, Side::Twitch],
        }
    }
}

/// The cases; `quick` shrinks the counts for a smoke test.
pub fn all(quick: bool) -> Vec<Case> {
    let n = |full: u64, small: u64| if quick { small } else { full };
    let latency_secs = n(10, 1);
    vec![
        Case {
            name: "seed",
            what: "partition writer, produce(Record::new(vec)) each + blocking flush() (the seed code)".into(),
            kind: Kind::PartitionProduce { blocking: true, fresh: true },
            count: n(100_000, 2_000),
            size: 320,
            partitions: 1,
            mock_pass: None,
        },
        Case {
            name: "seed-async",
            what: "same, but flush_async()".into(),
            kind: Kind::PartitionProduce { blocking: false, fresh: true },
            count: n(100_000, 2_000),
            size: 320,
            partitions: 1,
            mock_pass: None,
        },
        Case {
            name: "keyed",
            what: "keyed writer, produce_ref, 3 partitions, 1024 keys".into(),
            kind: Kind::KeyedProduce,
            count: n(200_000, 5_000),
            size: 320,
            partitions: 3,
            mock_pass: None,
        },
        Case {
            name: "large",
            what: "partition writer, produce_ref, 10 KB records".into(),
            kind: Kind::PartitionProduce { blocking: false, fresh: false },
            count: n(20_000, 500),
            size: 10 * 1024,
            partitions: 1,
            mock_pass: None,
        },
        Case {
            name: "group-read",
            what: "group reader, records read in place (next_ref, ack each), 3 partitions".into(),
            kind: Kind::GroupRead(GroupReading::InPlace),
            count: n(200_000, 5_000),
            size: 320,
            partitions: 3,
            mock_pass: Some(25_000),
        },
        Case {
            name: "group-read-owned",
            what: "same, owned records (next) against raw detach()".into(),
            kind: Kind::GroupRead(GroupReading::Owned),
            count: n(200_000, 5_000),
            size: 320,
            partitions: 3,
            mock_pass: Some(25_000),
        },
        Case {
            name: "group-read-each",
            what: "same, in place in one call (for_each_ref) against raw's loop over one message stream, no timer per record".into(),
            kind: Kind::GroupRead(GroupReading::Each),
            count: n(200_000, 5_000),
            size: 320,
            partitions: 3,
            mock_pass: Some(25_000),
        },
        Case {
            name: "partition-read",
            what: "partition reader, records read in place (next_ref), 1 partition".into(),
            kind: Kind::PartitionRead { owned: false },
            count: n(200_000, 5_000),
            size: 320,
            partitions: 1,
            mock_pass: Some(10_000),
        },
        Case {
            name: "partition-read-owned",
            what: "same, owned records (next) against raw detach()".into(),
            kind: Kind::PartitionRead { owned: true },
            count: n(200_000, 5_000),
            size: 320,
            partitions: 1,
            mock_pass: Some(10_000),
        },
        Case {
            name: "json",
            what: "typed JSON round trip (encode+produce, consume+decode)".into(),
            kind: Kind::Typed { format: Format::Json, headers: false },
            count: n(50_000, 2_000),
            size: 0,
            partitions: 1,
            mock_pass: Some(10_000),
        },
        Case {
            name: "bincode",
            what: "typed bincode round trip (encode+produce, consume+decode)".into(),
            kind: Kind::Typed { format: Format::Bincode, headers: false },
            count: n(50_000, 2_000),
            size: 0,
            partitions: 1,
            mock_pass: Some(10_000),
        },
        Case {
            name: "bincode-headers",
            what: "the same, looking at every record's headers (twitch's default)".into(),
            kind: Kind::Typed { format: Format::Bincode, headers: true },
            count: n(50_000, 2_000),
            size: 0,
            partitions: 1,
            mock_pass: Some(10_000),
        },
        Case {
            name: "latency",
            what: format!("1,000 records/s for {latency_secs} s, produce call -> consumed"),
            kind: Kind::Latency { rate: 1_000, fetch_wait_ms: None },
            count: 1_000 * latency_secs,
            size: 320,
            partitions: 1,
            mock_pass: None,
        },
        Case {
            name: "latency-fetch10",
            what: "same with fetch.wait.max.ms=10 on both consumers (a broker that holds an empty fetch for the \
                   whole fetch.wait.max.ms, 500 ms by default, hides everything else)"
                .into(),
            kind: Kind::Latency { rate: 1_000, fetch_wait_ms: Some(10) },
            count: 1_000 * latency_secs,
            size: 320,
            partitions: 1,
            mock_pass: None,
        },
    ]
}

/// The cases `filters` pick (all when there are none): a filter that is a
/// case's exact name picks that case alone, any other filter every case
/// whose name contains it.
pub fn select(cases: Vec<Case>, filters: &[String]) -> Vec<Case> {
    let exact = |f: &str| cases.iter().any(|c| c.name == f);
    let picks: Vec<(&str, bool)> = filters.iter().map(|f| (f.as_str(), exact(f))).collect();
    cases
        .into_iter()
        .filter(|c| picks.is_empty() || picks.iter().any(|(f, exact)| if *exact { c.name == *f } else { c.name.contains(f) }))
        .collect()
}

/// Gives every case but the latency ones (which run for a time) `records`
/// records.
pub fn set_records(cases: &mut [Case], records: u64) {
    for case in cases.iter_mut().filter(|c| !c.is_latency()) {
        case.count = records;
    }
}

/// One measured run of one case on one side.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub records: u64,
    pub bytes: u64,
    pub span: Span,
    pub latency: Option<Latency>,
}

impl Sample {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.span.wall.as_secs_f64()
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.span.wall.as_secs_f64()
    }

    /// CPU time per record of the client's threads (and the broker's).
    pub fn cpu_per_record(&self) -> Option<CpuPerRecord> {
        CpuPerRecord::of(&self.span, self.records)
    }
}

/// Settings applied on top of twitch's defaults, to raw and twitch alike
/// (`--producer-set`, `--consumer-set`, the sweep), and rskafka's records
/// per produce call (`--rskafka-batch`; 0: [`peer::DEFAULT_BATCH`]).
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    pub producer: Vec<(String, String)>,
    pub consumer: Vec<(String, String)>,
    pub rskafka_batch: usize,
}

impl Tuning {
    fn rskafka_batch(&self) -> usize {
        if self.rskafka_batch == 0 {
            peer::DEFAULT_BATCH
        } else {
            self.rskafka_batch
        }
    }
}

/// Runs one case for one side, each pass on a fresh topic.
pub async fn run(target: &Target, case: &Case, side: Side, tuning: &Tuning) -> Result<Sample> {
    let (per_pass, passes) = case.passes(target);
    let pass_case = Case { count: per_pass, ..case.clone() };
    let mut total = Sample::default();
    for _ in 0..passes {
        let s = run_pass(target, &pass_case, side, tuning).await?;
        total = Sample { records: total.records + s.records, bytes: total.bytes + s.bytes, span: total.span + s.span, latency: s.latency };
    }
    Ok(total)
}

async fn run_pass(target: &Target, case: &Case, side: Side, tuning: &Tuning) -> Result<Sample> {
    if !case.sides().contains(&side) {
        bail!("case {} has no {} side", case.name, side.name());
    }
    let topic = target.fresh_topic(case.name, side.name(), case.partitions).await?;
    let mut tuning = tuning.clone();
    if side == Side::TwitchNoIdem {
        tuning.producer.push(("enable.idempotence".to_owned(), "false".to_owned()));
    }
    let ctx = Ctx { brokers: target.brokers().to_owned(), topic: topic.clone(), broker_pid: target.broker_pid(), tuning };
    // From here the non-idempotent twitch side is twitch with one more
    // setting; `case.sides()` keeps it to the write cases.
    let side = if side == Side::TwitchNoIdem { Side::Twitch } else { side };
    let res = match (case.kind, side) {
        (Kind::PartitionProduce { .. } | Kind::KeyedProduce, Side::Rskafka) => rskafka_produce(&ctx, case).await,
        (Kind::GroupRead(_) | Kind::PartitionRead { .. }, Side::Rskafka) => rskafka_read(&ctx, case).await,
        (Kind::PartitionProduce { .. } | Kind::KeyedProduce, Side::Raw) => raw_produce(&ctx, case).await,
        (Kind::PartitionProduce { blocking, fresh }, _) => twitch_partition_produce(&ctx, case, blocking, fresh).await,
        (Kind::KeyedProduce, _) => twitch_keyed_produce(&ctx, case).await,
        (Kind::GroupRead(how), _) => group_read(&ctx, case, side, how).await,
        (Kind::PartitionRead { owned }, _) => partition_read(&ctx, case, side, owned).await,
        (Kind::Typed { format, headers }, Side::Raw) => raw_typed(&ctx, case, format, headers).await,
        (Kind::Typed { format, headers }, _) => twitch_typed(&ctx, case, format, headers).await,
        (Kind::Latency { rate, fetch_wait_ms }, Side::Raw) => raw_latency(&ctx, case, rate, fetch_wait_ms).await,
        (Kind::Latency { rate, fetch_wait_ms }, _) => twitch_latency(&ctx, case, rate, fetch_wait_ms).await,
    };
    target.drop_topic(&topic).await;
    res.with_context(|| format!("case {} ({}) on {}", case.name, side.name(), target.name()))
}

struct Ctx {
    brokers: String,
    topic: String,
    broker_pid: Option<u32>,
    tuning: Tuning,
}

impl Ctx {
    fn meter(&self) -> Meter {
        Meter::start(self.broker_pid)
    }

    /// A cluster handle for writers (with the producer tuning).
    fn cluster(&self) -> Result<KafkaCluster> {
        self.cluster_with(&self.tuning.producer)
    }

    /// A cluster handle for readers (with the consumer tuning).
    fn reader_cluster(&self) -> Result<KafkaCluster> {
        self.cluster_with(&self.tuning.consumer)
    }

    fn cluster_with(&self, settings: &[(String, String)]) -> Result<KafkaCluster> {
        let mut b = KafkaCluster::builder(self.brokers.as_str()).client_id("bench-twitch");
        for (k, v) in settings {
            b = b.set(k, v);
        }
        Ok(b.build()?)
    }

    fn raw_producer(&self) -> Result<RawProducer> {
        RawProducer::new(&raw::producer_config(&self.brokers, &self.tuning.producer))
    }
}

/// A payload of `size` bytes whose first 16 bytes carry `seq` and a send
/// timestamp.
fn stamp(buf: &mut [u8], seq: u64, ts_ns: u64) {
    if buf.len() >= 16 {
        buf[..8].copy_from_slice(&seq.to_le_bytes());
        buf[8..16].copy_from_slice(&ts_ns.to_le_bytes());
    }
}

fn read_stamp(payload: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let ts = u64::from_le_bytes(payload.get(8..16)?.try_into().ok()?);
    Some((seq, ts))
}

fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

fn keys() -> Vec<Vec<u8>> {
    (0..1024).map(|i| format!("sensor-{i:04}").into_bytes()).collect()
}

/// The warm-up record each producer sends (and waits for) before the clock
/// starts, so connection setup and the idempotent producer's id request are
/// not measured.
const WARMUP_SEQ: u64 = u64::MAX;

// ---------------------------------------------------------------------------
// Producing

async fn raw_produce(ctx: &Ctx, case: &Case) -> Result<Sample> {
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

async fn twitch_partition_produce(ctx: &Ctx, case: &Case, blocking: bool, fresh: bool) -> Result<Sample> {
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

async fn twitch_keyed_produce(ctx: &Ctx, case: &Case) -> Result<Sample> {
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
async fn rskafka_produce(ctx: &Ctx, case: &Case) -> Result<Sample> {
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

// ---------------------------------------------------------------------------
// Consuming

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

async fn group_read(ctx: &Ctx, case: &Case, side: Side, how: GroupReading) -> Result<Sample> {
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

async fn partition_read(ctx: &Ctx, case: &Case, side: Side, owned: bool) -> Result<Sample> {
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
async fn rskafka_read(ctx: &Ctx, case: &Case) -> Result<Sample> {
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

/// `read`, or an error after [`IDLE`]: for reads with no timer per record.
async fn within<T, E: Into<anyhow::Error>>(read: impl std::future::Future<Output = Result<T, E>>) -> Result<T> {
    match tokio::time::timeout(IDLE, read).await {
        Ok(out) => out.map_err(Into::into),
        Err(_) => bail!("the read took longer than {IDLE:?}"),
    }
}

/// A reader's next item, or an error after [`IDLE`] or at the stream's end.
async fn next_within<T>(next: impl std::future::Future<Output = Option<T>>) -> Result<T> {
    match tokio::time::timeout(IDLE, next).await {
        Ok(Some(item)) => Ok(item),
        Ok(None) => bail!("the reader ended early"),
        Err(_) => bail!("no record for {IDLE:?}"),
    }
}

// ---------------------------------------------------------------------------
// Typed round trips

/// A typical event: a sensor reading with some strings and numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub seq: u64,
    pub sensor: String,
    pub site: String,
    pub celsius: f64,
    pub humidity: f32,
    pub ok: bool,
    pub tags: Vec<String>,
    pub samples: Vec<i32>,
}

impl Reading {
    pub fn sample(seq: u64) -> Reading {
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
async fn raw_typed(ctx: &Ctx, case: &Case, format: Format, headers: bool) -> Result<Sample> {
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
pub fn encoded_size(format: Format, values: &[Reading]) -> Result<u64> {
    let mut buf = Vec::new();
    let mut bytes = 0;
    for v in values {
        format.encode_into(v, &mut buf)?;
        bytes += buf.len() as u64;
    }
    Ok(bytes)
}

async fn twitch_typed(ctx: &Ctx, case: &Case, format: Format, headers: bool) -> Result<Sample> {
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

// ---------------------------------------------------------------------------
// Latency

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

async fn raw_latency(ctx: &Ctx, case: &Case, rate: u64, fetch_wait_ms: Option<u32>) -> Result<Sample> {
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

async fn twitch_latency(ctx: &Ctx, case: &Case, rate: u64, fetch_wait_ms: Option<u32>) -> Result<Sample> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(cases: &[Case]) -> Vec<&'static str> {
        cases.iter().map(|c| c.name).collect()
    }

    #[test]
    fn an_exact_name_picks_one_case_other_text_every_match() {
        let pick = |f: &[&str]| names(&select(all(true), &f.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
        assert_eq!(pick(&["group-read"]), ["group-read"]);
        assert_eq!(pick(&["group"]), ["group-read", "group-read-owned", "group-read-each"]);
        assert_eq!(pick(&["seed", "latency-fetch10"]), ["seed", "latency-fetch10"]);
        assert_eq!(pick(&[]).len(), all(true).len());
        assert!(pick(&["nothing"]).is_empty());
    }

    #[test]
    fn records_override_every_case_but_latency() {
        let mut cases = all(false);
        set_records(&mut cases, 7);
        for c in &cases {
            assert_eq!(c.count == 7, !c.is_latency(), "{}", c.name);
        }
    }

    /// raw-stored and twitch-noidem are variants of raw and twitch that
    /// `run_pass` knows only for the group reads and the writes.
    #[test]
    fn each_side_runs_only_where_it_has_code() {
        for c in all(false) {
            let sides = c.sides();
            assert_eq!(sides.contains(&Side::RawStored), matches!(c.kind, Kind::GroupRead(_)), "{}", c.name);
            assert_eq!(
                sides.contains(&Side::TwitchNoIdem),
                matches!(c.kind, Kind::PartitionProduce { .. } | Kind::KeyedProduce),
                "{}",
                c.name
            );
        }
    }
}
