#![doc = include_str!("../../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod codec;
pub mod config;
pub mod error;
pub mod partitioner;
pub mod reader;
pub mod record;
mod rt;
pub mod stage;
pub mod telemetry;
pub mod warden;
pub mod writer;

pub use codec::Format;
pub use error::{DeliveryFailure, Error, ErrorKind, Result, TransactionErrorKind};
pub use reader::{Ack, Acker, Decoded, GroupReader, PartitionReader, StartAt};
pub use record::{ConsumedRecord, Header, Offset, Record, RecordMeta, RecordRef, TopicPartition};
pub use stage::TransactionalStage;
pub use warden::{KafkaCluster, TopicConfiguration};
pub use writer::{KeyedWriter, PartitionWriter};
