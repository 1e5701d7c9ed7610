//! An at-least-once consumer-group member: joins `--group`, reads `--topic`,
//! processes each record, and only then acknowledges it. The reader commits
//! acknowledged offsets in the background and once more on the way out, so a
//! record is committed only after it was processed: after a crash, the group
//! reads again from the first record not yet processed (some records may be
//! processed twice, none is skipped).
//!
//! Stops after `--count` records, or on Ctrl-C, and leaves the group cleanly.
//!
//! `cargo run -p twitch-examples --bin group_consumer -- --topic test_topic --group demo --count 1000`

use clap::Parser;
use tracing::{debug, info};
use twitch::warden::KafkaCluster;
use twitch::{ConsumedRecord, Format};
use twitch_examples::{init_logging, TestMessage, TOPIC};

#[derive(Parser)]
struct Args {
    /// Comma-separated `host:port` list of brokers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topic to read.
    #[arg(long, default_value = TOPIC)]
    topic: String,
    /// Consumer group to join.
    #[arg(long, default_value = "twitch-example-group")]
    group: String,
    /// Stop after this many records (default: run until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
}

/// What was processed.
#[derive(Default)]
struct Tally {
    records: u64,
    bytes: u64,
    resets: u64,
    data: u64,
    other: u64,
}

#[tokio::main]
async fn main() {
    init_logging();
    let args = Args::parse();
    match run(&args).await {
        Ok(t) => println!(
            "consumed {} records ({} bytes: {} reset, {} data, {} other) from {} as group {}",
            t.records, t.bytes, t.resets, t.data, t.other, args.topic, args.group
        ),
        Err(e) => {
            eprintln!("group_consumer: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(args: &Args) -> twitch::Result<Tally> {
    let cluster = KafkaCluster::new(args.brokers.clone(), "example-group-consumer".into());
    cluster.wait_for_brokers().await?;
    let mut reader = cluster.group_reader(&args.group).topic(&args.topic).build()?;
    info!(group = %args.group, topic = %args.topic, "subscribed; reading");

    let mut tally = Tally::default();
    // One listener for the whole run, so a Ctrl-C during processing counts.
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    let read = async {
        while args.count.is_none_or(|n| tally.records < n) {
            // Ctrl-C may interrupt a wait: a record taken but not processed
            // is not acknowledged, so the group reads it again next time.
            let next = tokio::select! {
                next = reader.next() => next,
                _ = &mut interrupted => {
                    info!("interrupted");
                    break;
                }
            };
            let Some(next) = next else { break };
            let (record, ack) = next?;
            process(&record, &mut tally);
            // Acknowledge only once the record is processed.
            ack.ack();
        }
        Ok::<(), twitch::Error>(())
    }
    .await;
    // Commit what was processed and leave the group, even after an error.
    let left = reader.shutdown().await;
    read.and(left)?;
    Ok(tally)
}

/// The work done on each record: decode it as the producers' message when it
/// is one, and count it.
fn process(record: &ConsumedRecord, tally: &mut Tally) {
    debug!(partition = record.partition, offset = record.offset, len = record.payload().len(), "record");
    tally.records += 1;
    tally.bytes += record.payload().len() as u64;
    match record.record.decode::<TestMessage>(Format::Bincode) {
        Ok(TestMessage::Reset) => tally.resets += 1,
        Ok(TestMessage::Data(_)) => tally.data += 1,
        Err(_) => tally.other += 1,
    }
}
