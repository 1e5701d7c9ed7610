//! Typed group reads, and the dead-letter topic for records that do not
//! decode.

use futures::stream::{BoxStream, StreamExt};
use serde::de::DeserializeOwned;
use tracing::warn;

use super::{Ack, GroupReader};
use crate::error::Result;
use crate::codec::CodecError;
use crate::reader::{dead_letter_record, decode_ref, decode_value, undecodable, Decoded, Decoding};
use crate::record::{Record, RecordRef};
use crate::writer::KeyedWriter;

/// What to do with a record that does not decode, in [`GroupReader::typed`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnDecodeError {
    /// Yield [`ErrorKind::Decode`](crate::ErrorKind::Decode) with the record; it stays unprocessed (and so
    /// uncommitted) until the application calls
    /// [`GroupReader::mark_processed`] on it, or
    /// [`Acker::mark_processed`](super::Acker::mark_processed) while a
    /// [`typed`](GroupReader::typed) stream borrows the reader. Until then
    /// nothing past it in its partition is committed, and once
    /// `max_pending_per_partition` records wait behind it, the partition
    /// pauses (with a warning naming the offset).
    #[default]
    Fail,
    /// Write the raw record to this dead-letter topic, with headers saying
    /// why and where it came from, mark it processed, and go on.
    DeadLetter(String),
}

/// The dead-letter writer, and the record on its way there.
pub(super) struct DeadLetter {
    writer: KeyedWriter,
    parked: Option<(Record, Ack)>,
    pub(super) written: u64,
}

impl DeadLetter {
    pub(super) fn new(writer: KeyedWriter) -> Self {
        DeadLetter { writer, parked: None, written: 0 }
    }

    /// Writes the record waiting for the dead-letter topic, then acks it.
    async fn write_parked(&mut self) -> Result<()> {
        let Some((parked, _)) = self.parked.as_ref() else { return Ok(()) };
        self.writer.produce(parked.clone()).await?;
        self.writer.flush_async().await?;
        if let Some((_, ack)) = self.parked.take() {
            ack.ack();
        }
        self.written += 1;
        Ok(())
    }
}

impl GroupReader {
    /// The next record decoded as `T`, in place (the payload is never
    /// copied), with its [`Ack`]. Undecodable records are handled by the
    /// reader's [`OnDecodeError`] policy.
    ///
    /// Cancel-safe: a record being parked in the dead-letter topic when the
    /// future is dropped stays parked and is written (again) by the next
    /// call, so it is never lost, though it may reach the dead-letter topic
    /// twice.
    pub async fn next_typed<T: DeserializeOwned + Send>(&mut self) -> Option<Result<(Decoded<T>, Ack)>> {
        self.next_decoded(decode_ref::<T>).await
    }

    /// The next record's value alone, decoded in place, with its [`Ack`]:
    /// [`next_typed`](Self::next_typed) without the record's metadata.
    /// Undecodable records are handled by the reader's [`OnDecodeError`]
    /// policy; cancel-safe as `next_typed` is.
    pub async fn next_value<T: DeserializeOwned + Send>(&mut self) -> Option<Result<(T, Ack)>> {
        self.next_decoded(decode_value::<T>).await
    }

    /// Records decoded as `T`, with their acks, as a stream.
    pub fn typed<T: DeserializeOwned + Send>(&mut self) -> BoxStream<'_, Result<(Decoded<T>, Ack)>> {
        futures::stream::unfold(self, |reader| async move { reader.next_typed::<T>().await.map(|r| (r, reader)) }).boxed()
    }

    /// Records sent to the dead-letter topic so far.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_letter.as_ref().map_or(0, |dl| dl.written)
    }

    /// The next record made into `R` by `decode`, with the dead-letter
    /// policy applied to records it cannot make.
    async fn next_decoded<R>(
        &mut self,
        decode: fn(Decoding, &RecordRef<'_>) -> Result<R, CodecError>,
    ) -> Option<Result<(R, Ack)>> {
        loop {
            if let Some(dl) = self.dead_letter.as_mut() {
                if let Err(e) = dl.write_parked().await {
                    return Some(Err(e));
                }
            }
            let (decoding, parks) = (self.decoding, self.dead_letter.is_some());
            let (record, source, ack) = {
                let (record, ack) = match self.next_ref().await? {
                    Ok(pair) => pair,
                    Err(e) => return Some(Err(e)),
                };
                match decode(decoding, &record) {
                    Ok(decoded) => return Some(Ok((decoded, ack))),
                    Err(source) if parks => (record.detach(), source, ack),
                    Err(source) => return Some(Err(undecodable(&record, source))),
                }
            };
            warn!(topic = %record.topic, partition = record.partition, offset = record.offset, error = %source, "undecodable record goes to the dead-letter topic");
            if let Some(dl) = self.dead_letter.as_mut() {
                dl.parked = Some((dead_letter_record(&record, &source), ack));
            }
        }
    }
}
