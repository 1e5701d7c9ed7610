//! Reads back what `producer` (or the seed's producer) wrote: one partition,
//! from an offset to the end, decoding every record as a `TestMessage`.
//!
//! `cargo run -p twitch-examples --bin consumer -- --from 0`

use clap::Parser;
use futures::StreamExt;
use twitch::reader::StartAt;
use twitch::warden::KafkaCluster;
use twitch::{Format, TopicPartition};
use twitch_examples::{brokers, init_logging, TestMessage, PAYLOAD_SIZE, TOPIC};

#[derive(Parser)]
struct Args {
    /// Topic to read.
    #[arg(long, default_value = TOPIC)]
    topic: String,
    /// Partition to read.
    #[arg(long, default_value_t = 0)]
    partition: i32,
    /// First offset to read (default: the beginning).
    #[arg(long)]
    from: Option<i64>,
}

#[derive(Default)]
struct Tally {
    resets: u64,
    data: u64,
    bad_size: u64,
}

#[tokio::main]
async fn main() {
    init_logging();
    match run(Args::parse()).await {
        Ok(t) if t.bad_size == 0 => {
            println!("read {} records: {} reset, {} data", t.resets + t.data, t.resets, t.data)
        }
        Ok(t) => {
            eprintln!("consumer: {} data records do not have {PAYLOAD_SIZE} bytes", t.bad_size);
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("consumer: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(args: Args) -> twitch::Result<Tally> {
    let cluster = KafkaCluster::new(brokers(), "example-consumer".into());
    cluster.wait_for_brokers().await?;
    let start = args.from.map_or(StartAt::Beginning, StartAt::Offset);
    let mut reader = cluster
        .partition_reader()
        .partition_from(TopicPartition::new(&args.topic, args.partition), start)
        .format(Format::Bincode)
        .stop_at_end(true)
        .build()?;
    let mut tally = Tally::default();
    let mut messages = reader.typed::<TestMessage>();
    while let Some(msg) = messages.next().await {
        // An undecodable record ends the run with its offset in the error.
        match msg?.value {
            TestMessage::Reset => tally.resets += 1,
            TestMessage::Data(bytes) => {
                tally.data += 1;
                tally.bad_size += u64::from(bytes.len() != PAYLOAD_SIZE);
            }
        }
    }
    Ok(tally)
}
