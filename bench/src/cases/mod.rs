//! The benchmark cases, each written for raw rdkafka and twitch, and where
//! the peer has the same workload, for rskafka ([`crate::peer`]).
//!
//! This file holds the list of cases, what a run returns, and the helpers
//! the cases share; the cases themselves are in `produce`, `consume`,
//! `typed` and `latency`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use twitch::{Format, KafkaCluster};

use crate::peer;
use crate::raw::{self, RawProducer};
use crate::stats::{CpuPerRecord, Latency, Meter, Span};
use crate::target::Target;

mod consume;
mod latency;
mod produce;
mod typed;

use consume::{group_read, partition_read, rskafka_read};
use latency::{raw_latency, twitch_latency};
use produce::{raw_produce, rskafka_produce, twitch_keyed_produce, twitch_partition_produce};
use typed::{raw_typed, twitch_typed};

/// The lowest paired ratio of twitch over its like-for-like raw side
/// ([`Case::like_for_like`]) that twitch accepts.
pub const FLOOR: f64 = 0.95;

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

    /// The raw side that does what twitch's side promises, against which
    /// twitch's floor (a paired ratio of [`FLOOR`]) holds: raw-stored for
    /// the group reads that ack each record, as those commit only what was
    /// acked while plain raw commits the highest offset read (right only for
    /// a record processed before the next is read, which `for_each_ref`
    /// guarantees); plain raw everywhere else.
    pub fn like_for_like(&self) -> Side {
        match self.kind {
            Kind::GroupRead(GroupReading::InPlace | GroupReading::Owned) => Side::RawStored,
            _ => Side::Raw,
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

#[cfg(test)]
mod tests;
