//! Records, as written and as read back.

use std::fmt;
use std::sync::Arc;

use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Header as RdHeader, Headers, Message, OwnedHeaders};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{CodecError, Format, FORMAT_HEADER};

/// Kafka offset of a record within its partition.
pub type Offset = i64;

/// A topic and one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number, from 0.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic partition from a topic name and a partition number.
    ///
    /// ```
    /// let tp = twitch::TopicPartition::new("readings", 2);
    /// assert_eq!(tp.to_string(), "readings/2");
    /// ```
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }

    /// Same as [`TopicPartition::new`], under the name existing code uses.
    ///
    /// ```
    /// let tp = twitch::TopicPartition::from_str("test_topic", 0);
    /// assert_eq!(tp.partition, 0);
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(topic: &str, partition: i32) -> Self {
        Self::new(topic, partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// One record header. Kafka allows repeated keys and null values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value; `None` is Kafka's null.
    pub value: Option<Vec<u8>>,
}

/// A record to write, or the body of one read back.
///
/// The payload goes to Kafka byte for byte: twitch adds no envelope.
///
/// ```
/// use twitch::Record;
/// let r = Record::new(b"21.5".to_vec())
///     .with_key("sensor-1")
///     .with_header("source", "lab")
///     .with_timestamp(1_700_000_000_000);
/// assert_eq!(r.key.as_deref(), Some(&b"sensor-1"[..]));
/// assert_eq!(r.header("source"), Some(&b"lab"[..]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Optional key; keyed writers choose the partition from it.
    pub key: Option<Vec<u8>>,
    /// The value bytes.
    pub payload: Vec<u8>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Creation time in milliseconds since the Unix epoch; `None` lets the
    /// client stamp it.
    pub timestamp: Option<i64>,
}

impl Record {
    /// A record with this payload and nothing else.
    pub fn new(payload: Vec<u8>) -> Self {
        Record { payload, ..Record::default() }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Appends a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header { key: key.into(), value: Some(value.into()) });
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    pub fn with_timestamp(mut self, millis: i64) -> Self {
        self.timestamp = Some(millis);
        self
    }

    /// The value of the last header named `key`, if any.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers.iter().rev().find(|h| h.key == key).and_then(|h| h.value.as_deref())
    }

    /// Sets header `key`, replacing earlier headers of that name.
    pub fn set_header(&mut self, key: &str, value: impl Into<Vec<u8>>) {
        self.headers.retain(|h| h.key != key);
        self.headers.push(Header { key: key.to_owned(), value: Some(value.into()) });
    }

    /// Bytes this record takes on the wire, roughly: key, payload and headers.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.payload.len() + headers_size(&self.headers)
    }

    /// Copies key, payload, headers and timestamp out of a librdkafka message.
    pub(crate) fn from_message<M: Message>(msg: &M) -> Self {
        Record {
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers: owned_headers(msg.headers(), None),
            timestamp: msg.timestamp().to_millis(),
        }
    }
}

impl Record {
    /// The format the record names in its [`FORMAT_HEADER`], if any.
    ///
    /// ```
    /// use twitch::{codec::Format, Record};
    /// let r = Format::Json.to_record(&21.5).unwrap();
    /// assert_eq!(r.format().unwrap(), Some(Format::Json));
    /// assert_eq!(Record::new(vec![]).format().unwrap(), None);
    /// ```
    pub fn format(&self) -> Result<Option<Format>, CodecError> {
        Format::of_header(self.header(FORMAT_HEADER))
    }

    /// Decodes the payload with the format the record names, or `default`
    /// when it names none.
    pub fn decode<T: DeserializeOwned>(&self, default: Format) -> Result<T, CodecError> {
        self.format()?.unwrap_or(default).decode(&self.payload)
    }
}

/// The record-level helpers of [`Format`]; the byte-level ones are in
/// [`crate::codec`].
impl Format {
    /// The format a record declares in its [`FORMAT_HEADER`], if any (the
    /// same as [`Record::format`]).
    pub fn of_record(record: &Record) -> Result<Option<Format>, CodecError> {
        record.format()
    }

    /// Encodes `value` as a new record that names this format in its headers.
    pub fn to_record<T: Serialize + ?Sized>(self, value: &T) -> Result<Record, CodecError> {
        Ok(Record::new(self.encode(value)?).with_header(FORMAT_HEADER, self.name()))
    }

    /// Decodes a record's payload with the format the record names, or with
    /// `self` when it names none (the same as [`Record::decode`]).
    pub fn decode_record<T: DeserializeOwned>(self, record: &Record) -> Result<T, CodecError> {
        record.decode(self)
    }
}

/// Owned copies of librdkafka's headers, in order, leaving out those named
/// `skip`.
fn owned_headers<H: Headers>(headers: Option<&H>, skip: Option<&str>) -> Vec<Header> {
    let Some(headers) = headers else { return Vec::new() };
    headers
        .iter()
        .filter(|h| skip != Some(h.key))
        .map(|h| Header { key: h.key.to_owned(), value: h.value.map(<[u8]>::to_vec) })
        .collect()
}

/// The value of the last of librdkafka's headers named `key`, if any.
fn last_header<'h, H: Headers>(headers: Option<&'h H>, key: &str) -> Option<&'h [u8]> {
    headers?.iter().filter(|h| h.key == key).last().and_then(|h| h.value)
}

/// The name `topic` as shared by `known` names, or a new one: records and
/// acks of one topic hold one allocation.
pub(crate) fn shared_topic<'a>(mut known: impl Iterator<Item = &'a Arc<str>>, topic: &str) -> Arc<str> {
    known.find(|t| ***t == *topic).map_or_else(|| Arc::from(topic), Arc::clone)
}

/// Bytes of header names and values.
pub(crate) fn headers_size(headers: &[Header]) -> usize {
    headers.iter().map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len)).sum()
}

/// librdkafka headers from ours, plus one `extra` header; `None` when there
/// are none at all.
#[inline]
pub(crate) fn rd_headers(headers: &[Header], extra: Option<(&str, &str)>) -> Option<OwnedHeaders> {
    if headers.is_empty() && extra.is_none() {
        return None;
    }
    let mut out = OwnedHeaders::new_with_capacity(headers.len() + usize::from(extra.is_some()));
    for h in headers {
        out = out.insert(RdHeader { key: &h.key, value: h.value.as_ref() });
    }
    if let Some((key, value)) = extra {
        out = out.insert(RdHeader { key, value: Some(value) });
    }
    Some(out)
}

/// A record read from Kafka, with where it came from: an owned copy, for
/// streams and for keeping. [`RecordRef`] reads the same without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Topic it was read from (shared by every record of the partition).
    pub topic: Arc<str>,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: Offset,
    /// Key, payload, headers and timestamp.
    pub record: Record,
}

impl ConsumedRecord {
    /// The partition this record was read from.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.record.payload
    }

    /// The key bytes, if any.
    pub fn key(&self) -> Option<&[u8]> {
        self.record.key.as_deref()
    }
}

/// A record as librdkafka holds it, read in place: no copy of key, payload or
/// headers. Readers hand one out from `next_ref`; it borrows the reader, so
/// the next one comes once this one is dropped. [`RecordRef::detach`] makes
/// an owned [`ConsumedRecord`] when the record must outlive that.
pub struct RecordRef<'a> {
    msg: BorrowedMessage<'a>,
    /// The reader's copy of the topic name: borrowed, so handing a record
    /// out touches no reference count.
    topic: &'a Arc<str>,
}

impl<'a> RecordRef<'a> {
    pub(crate) fn new(msg: BorrowedMessage<'a>, topic: &'a Arc<str>) -> Self {
        RecordRef { msg, topic }
    }

    /// Topic it was read from.
    pub fn topic(&self) -> &str {
        self.topic
    }

    /// Partition it was read from.
    pub fn partition(&self) -> i32 {
        self.msg.partition()
    }

    /// Its offset in that partition.
    pub fn offset(&self) -> Offset {
        self.msg.offset()
    }

    /// The key bytes, if any.
    pub fn key(&self) -> Option<&[u8]> {
        self.msg.key()
    }

    /// The payload bytes (empty for a null payload).
    pub fn payload(&self) -> &[u8] {
        self.msg.payload().unwrap_or_default()
    }

    /// Creation or log-append time in milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> Option<i64> {
        self.msg.timestamp().to_millis()
    }

    /// The value of the last header named `key`, if any.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        last_header(self.msg.headers(), key)
    }

    /// The format the record names in its [`FORMAT_HEADER`], if any.
    pub fn format(&self) -> Result<Option<Format>, CodecError> {
        Format::of_header(self.header(FORMAT_HEADER))
    }

    /// Decodes the payload in place with the format the record names, or
    /// `default` when it names none.
    pub fn decode<T: DeserializeOwned>(&self, default: Format) -> Result<T, CodecError> {
        self.decode_value(default, true)
    }

    /// An owned copy.
    pub fn detach(&self) -> ConsumedRecord {
        ConsumedRecord {
            topic: Arc::clone(self.topic),
            partition: self.partition(),
            offset: self.offset(),
            record: Record::from_message(&self.msg),
        }
    }

    /// Decodes the payload in place: with `headers`, in the format the
    /// record names or `default`; without, in `default`, headers unread.
    pub(crate) fn decode_value<T: DeserializeOwned>(&self, default: Format, headers: bool) -> Result<T, CodecError> {
        let (format, _) = self.chosen_format(default, headers)?;
        format.decode(self.payload())
    }

    /// The format to decode with, and the headers when `headers` asks for
    /// them (looked up once: librdkafka parses them anew on every look when
    /// a record has none).
    fn chosen_format(&self, default: Format, headers: bool) -> Result<(Format, Option<&BorrowedHeaders>), CodecError> {
        let headers = if headers { self.msg.headers() } else { None };
        let format = Format::of_header(last_header(headers, FORMAT_HEADER))?.unwrap_or(default);
        Ok((format, headers))
    }

    /// Decodes the payload in place and describes where it came from
    /// (without the payload and the format header: the value and `format`
    /// stand for them). With `headers`, the format is the one the record
    /// names, or `default`, and the headers are copied; without, the format
    /// is `default` and the headers are not looked at.
    pub(crate) fn decode_with_meta<T: DeserializeOwned>(
        &self,
        default: Format,
        headers: bool,
    ) -> Result<(T, RecordMeta), CodecError> {
        let (format, headers) = self.chosen_format(default, headers)?;
        let value = format.decode(self.payload())?;
        let headers = owned_headers(headers, Some(FORMAT_HEADER));
        let meta = RecordMeta {
            topic: Arc::clone(self.topic),
            partition: self.partition(),
            offset: self.offset(),
            key: self.key().map(<[u8]>::to_vec),
            timestamp: self.timestamp(),
            headers,
            format,
        };
        Ok((value, meta))
    }
}

impl fmt::Debug for RecordRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordRef")
            .field("topic", &self.topic)
            .field("partition", &self.partition())
            .field("offset", &self.offset())
            .field("payload_len", &self.payload().len())
            .finish_non_exhaustive()
    }
}

/// Where a decoded value came from: everything about its record but the
/// payload, which the value replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    /// Topic it was read from.
    pub topic: Arc<str>,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: Offset,
    /// Key, if any.
    pub key: Option<Vec<u8>>,
    /// Timestamp in milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// Headers, in order, without twitch's [`FORMAT_HEADER`].
    pub headers: Vec<Header>,
    /// The format the payload was decoded with.
    pub format: Format,
}

impl RecordMeta {
    /// The metadata of an owned record, its payload dropped.
    pub(crate) fn of_record(consumed: ConsumedRecord, format: Format) -> Self {
        let ConsumedRecord { topic, partition, offset, record } = consumed;
        let mut headers = record.headers;
        headers.retain(|h| h.key != FORMAT_HEADER);
        RecordMeta { topic, partition, offset, key: record.key, timestamp: record.timestamp, headers, format }
    }

    /// The partition this record was read from.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_takes_the_last_and_set_replaces() {
        let mut r = Record::new(vec![]).with_header("a", "1").with_header("a", "2");
        assert_eq!(r.header("a"), Some(&b"2"[..]));
        r.set_header("a", "3");
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.header("a"), Some(&b"3"[..]));
        assert_eq!(r.header("b"), None);
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    enum Msg {
        Reset,
        Reading { sensor: String, celsius: f64 },
    }

    #[test]
    fn record_names_its_format_and_decodes_by_it() {
        let rec = Format::Json.to_record(&Msg::Reset).unwrap();
        assert_eq!(rec.header(FORMAT_HEADER), Some(&b"json"[..]));
        assert_eq!(rec.payload, br#""Reset""#);
        assert_eq!(Format::of_record(&rec).unwrap(), Some(Format::Json));
        // The header wins over the reader's default.
        assert_eq!(Format::Bincode.decode_record::<Msg>(&rec).unwrap(), Msg::Reset);
        assert_eq!(rec.decode::<Msg>(Format::Bincode).unwrap(), Msg::Reset);
        // No header: the default applies.
        let value = Msg::Reading { sensor: "s-1".into(), celsius: -3.25 };
        let raw = Record::new(bincode::serialize(&value).unwrap());
        assert_eq!(raw.format().unwrap(), None);
        assert_eq!(Format::Bincode.decode_record::<Msg>(&raw).unwrap(), value);
        assert!(Format::Json.decode_record::<Msg>(&raw).is_err());
    }

    #[test]
    fn a_record_naming_an_unknown_format_is_an_error() {
        let rec = Record::new(vec![]).with_header(FORMAT_HEADER, "avro");
        assert!(matches!(rec.format(), Err(CodecError::UnknownFormat(f)) if f == "avro"));
        assert!(matches!(Format::Json.decode_record::<Msg>(&rec), Err(CodecError::UnknownFormat(f)) if f == "avro"));
    }

    #[test]
    fn size_counts_key_payload_and_headers() {
        let r = Record::new(vec![0; 10]).with_key("kk").with_header("h", "vvv");
        assert_eq!(r.size(), 10 + 2 + 1 + 3);
    }

    #[test]
    fn rd_headers_round_trip() {
        let r = Record::new(vec![]).with_header("x", "y");
        let pairs = |h: OwnedHeaders| h.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec))).collect::<Vec<_>>();
        assert_eq!(rd_headers(&r.headers, None).map(pairs), Some(vec![("x".to_owned(), Some(b"y".to_vec()))]));
        assert_eq!(
            rd_headers(&[], Some(("f", "json"))).map(pairs),
            Some(vec![("f".to_owned(), Some(b"json".to_vec()))])
        );
        assert!(rd_headers(&[], None).is_none());
    }
}
