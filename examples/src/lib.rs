//! Shared bits of the examples: the message type the seed's producer writes.

use serde::{Deserialize, Serialize};

/// Topic the seed's producer writes to.
pub const TOPIC: &str = "test_topic";
/// Data records the seed's producer writes after its `Reset`.
pub const TEST_SIZE: usize = 30_000;
/// Bytes of random data per record.
pub const PAYLOAD_SIZE: usize = 320;

/// The seed's message type, bincode-encoded without a format header.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub enum TestMessage {
    /// Written first: readers reset their state.
    Reset,
    /// Random bytes.
    Data(Box<[u8]>),
}

/// Logging to stderr, `RUST_LOG` or `info` by default.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// `KAFKA_BROKERS`, or the local broker.
pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}
