//! Writes a `Reset` and then random data records to one partition, in the
//! style of the original twitch example: create the topic, take a partition
//! writer, `produce` each record, `flush` at the end.
//!
//! `cargo run -p twitch-examples --bin producer -- --count 1000`

use clap::Parser;
use rand::{RngCore, SeedableRng};
use rand_xorshift::XorShiftRng;
use tracing::info;
use twitch::warden::{KafkaCluster, TopicConfiguration};
use twitch::{Format, Record, TopicPartition};
use twitch_examples::{brokers, init_logging, TestMessage, PAYLOAD_SIZE, TEST_SIZE, TOPIC};

#[derive(Parser)]
struct Args {
    /// Topic to write to.
    #[arg(long, default_value = TOPIC)]
    topic: String,
    /// Partition to write to.
    #[arg(long, default_value_t = 0)]
    partition: i32,
    /// Data records after the `Reset`.
    #[arg(long, default_value_t = TEST_SIZE)]
    count: usize,
}

#[tokio::main]
async fn main() {
    init_logging();
    if let Err(e) = run(Args::parse()).await {
        eprintln!("producer: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> twitch::Result<()> {
    let cluster = KafkaCluster::new(brokers(), "example-producer".into());
    cluster.wait_for_brokers().await?;
    cluster.create_topics(&[TopicConfiguration::new_with_default(&args.topic)]).await?;

    let mut writer = cluster.get_writer_for_partition(TopicPartition::new(&args.topic, args.partition))?;
    // Raw bincode bytes, as the original example writes them: no format header.
    writer.produce_and_flush(Record::new(Format::Bincode.encode(&TestMessage::Reset)?)).await?;

    let mut rng = XorShiftRng::seed_from_u64(0);
    let mut data = vec![0u8; PAYLOAD_SIZE];
    for i in 1..=args.count {
        rng.fill_bytes(&mut data);
        let msg = TestMessage::Data(data.clone().into_boxed_slice());
        writer.produce(Record::new(Format::Bincode.encode(&msg)?)).await?;
        if i % 10_000 == 0 {
            info!("queued {i} records");
        }
    }
    let last = writer.flush_async().await?;
    println!("wrote {} records to {}/{}, last offset {:?}", args.count + 1, args.topic, args.partition, last);
    Ok(())
}
