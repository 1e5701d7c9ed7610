//! Readers: records out of Kafka as async streams.
//!
//! * [`PartitionReader`]: explicitly chosen partitions, no consumer group.
//! * [`GroupReader`]: a consumer-group member; commits only what the
//!   application marked processed.
//!
//! Both yield [`ConsumedRecord`]s, raw or decoded into typed values through a
//! [`Format`]. A record that does not decode comes back
//! as [`ErrorKind::Decode`] carrying the raw record; the
//! stream goes on.

mod group;
mod partition;

pub use group::{
    Ack, Acker, GroupEvent, GroupProtocol, GroupReader, GroupReaderBuilder, GroupStart, ListenerError, OnDecodeError, PartitionLag, ReaderCounters,
    ReaderMonitor, RebalanceListener, Step,
};
pub use partition::{PartitionReader, PartitionReaderBuilder};

use serde::de::DeserializeOwned;

use crate::codec::{CodecError, Format};
use crate::error::{Error, ErrorKind, Result};
use crate::record::{ConsumedRecord, Record, RecordMeta, RecordRef};

/// Consumer settings twitch applies unless the user sets them.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    // librdkafka's 1 s default stalls any reader that processes records more
    // slowly than they arrive, once its prefetch queue fills.
    ("fetch.queue.backoff.ms", "10"),
];

/// The longest a broker holds a fetch back for want of records with
/// [`GroupReaderBuilder::low_latency`] (`fetch.wait.max.ms`).
pub const LOW_LATENCY_FETCH_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// Where a partition reader starts reading a partition (and where a
/// [`RebalanceListener`] starts an assigned one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// The oldest record still stored.
    #[default]
    Beginning,
    /// Only records written from now on.
    End,
    /// This exact offset.
    Offset(i64),
}

impl StartAt {
    pub(crate) fn to_rd(self) -> rdkafka::Offset {
        match self {
            StartAt::Beginning => rdkafka::Offset::Beginning,
            StartAt::End => rdkafka::Offset::End,
            StartAt::Offset(o) => rdkafka::Offset::Offset(o),
        }
    }
}

/// A decoded value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<T> {
    /// The value.
    pub value: T,
    /// Where it came from: topic, partition, offset, key, headers, timestamp
    /// and format; the payload is not kept (the value stands for it).
    pub record: RecordMeta,
}

/// Decodes a consumed record with the format it names, or `default`.
pub fn decode<T: DeserializeOwned>(default: Format, record: ConsumedRecord) -> Result<Decoded<T>> {
    let decoded = Format::of_record(&record.record)
        .map(|named| named.unwrap_or(default))
        .and_then(|format| Ok((format.decode::<T>(&record.record.payload)?, format)));
    match decoded {
        Ok((value, format)) => Ok(Decoded { value, record: RecordMeta::of_record(record, format) }),
        Err(source) => Err(ErrorKind::Decode { record, source }.into()),
    }
}

/// How a reader decodes typed values: the two builder settings both readers
/// share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decoding {
    /// Format for records that do not name one (or for every record,
    /// without `headers`).
    pub format: Format,
    /// Typed reads look at the record's headers: follow a
    /// [`FORMAT_HEADER`](crate::codec::FORMAT_HEADER) and carry the headers in
    /// [`RecordMeta::headers`].
    pub headers: bool,
}

impl Default for Decoding {
    fn default() -> Self {
        Decoding { format: Format::default(), headers: true }
    }
}

/// Decodes a record in place, with where it came from.
pub(crate) fn decode_ref<T: DeserializeOwned>(decoding: Decoding, record: &RecordRef<'_>) -> Result<Decoded<T>, CodecError> {
    let decoded = record.decode_with_meta(decoding.format, decoding.headers);
    decoded.map(|(value, meta)| Decoded { value, record: meta })
}

/// Decodes a record's value alone, in place.
pub(crate) fn decode_value<T: DeserializeOwned>(decoding: Decoding, record: &RecordRef<'_>) -> Result<T, CodecError> {
    record.decode_value(decoding.format, decoding.headers)
}

/// The error of a record that does not decode: it carries an owned copy.
pub(crate) fn undecodable(record: &RecordRef<'_>, source: CodecError) -> Error {
    ErrorKind::Decode { record: record.detach(), source }.into()
}

/// Headers a dead-lettered record carries, besides its own.
pub mod dead_letter_headers {
    /// Topic the record was read from.
    pub const TOPIC: &str = "twitch.dlq.topic";
    /// Partition it was read from.
    pub const PARTITION: &str = "twitch.dlq.partition";
    /// Its offset there.
    pub const OFFSET: &str = "twitch.dlq.offset";
    /// Why it was parked.
    pub const ERROR: &str = "twitch.dlq.error";
}

/// The record to park in a dead-letter topic: the original key, payload,
/// headers and timestamp, plus headers saying where it came from and why.
pub(crate) fn dead_letter_record(consumed: &ConsumedRecord, why: &CodecError) -> Record {
    let mut record = consumed.record.clone();
    record.set_header(dead_letter_headers::TOPIC, consumed.topic.as_bytes());
    record.set_header(dead_letter_headers::PARTITION, consumed.partition.to_string());
    record.set_header(dead_letter_headers::OFFSET, consumed.offset.to_string());
    record.set_header(dead_letter_headers::ERROR, why.to_string());
    record
}
