//! A consumer kept together with one message stream of its own, so that
//! taking a waiting record costs no waker registration.
//!
//! rdkafka's `StreamConsumer::recv` makes a new `MessageStream` for every
//! record: each registers a waker slot (a mutex and a slab insert) and
//! unregisters it when dropped (the mutex again): about 170 of the 2,200
//! instructions a record costs the group read in the benchmark
//! (docs/performance.md, item 23). [`Receiver`] keeps one stream for the
//! consumer's whole life: a waiting record is taken from it without a waker,
//! and a reader that has to wait registers its waker in the stream's one
//! slot.
//!
//! The stream borrows the consumer it is kept next to, which the borrow
//! checker cannot express; this is the one `unsafe` block of twitch.

#![allow(unsafe_code)]

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::Stream;
use rdkafka::consumer::stream_consumer::MessageStream;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;

/// A consumer and a message stream that polls it.
pub(crate) struct Receiver<C: ConsumerContext + 'static> {
    /// Borrows `consumer` (its lifetime is not `'static`; see `new`), so it
    /// is declared first: fields drop in order, so it is gone (and its
    /// waker slot unregistered) before the consumer is.
    stream: MessageStream<'static, C>,
    /// In an `Arc`, never cloned and never handed out, so that its address
    /// stays put when the receiver moves.
    consumer: Arc<StreamConsumer<C>>,
}

impl<C: ConsumerContext + 'static> Receiver<C> {
    pub(crate) fn new(consumer: StreamConsumer<C>) -> Self {
        let consumer = Arc::new(consumer);
        let stream = consumer.stream();
        // SAFETY: the stream borrows the consumer behind the `Arc`, whose
        // address does not change while the receiver lives and which is
        // dropped only after the stream (field order above; the `Arc` is
        // never cloned, so dropping the receiver drops the consumer). The
        // stream is never handed out, and records taken from it are handed
        // out only with the lifetime of a borrow of the receiver (`split`),
        // so none outlives the consumer. Only the lifetime changes.
        let stream = unsafe { std::mem::transmute::<MessageStream<'_, C>, MessageStream<'static, C>>(stream) };
        Receiver { stream, consumer }
    }

    pub(crate) fn consumer(&self) -> &StreamConsumer<C> {
        &self.consumer
    }

    /// The consumer, and the records coming in, whose borrow is of the
    /// consumer (shared) rather than of [`Incoming`], so the reading loops
    /// can hand one out and still use the consumer and wait for the next.
    pub(crate) fn split(&mut self) -> (Incoming<'_, C>, &StreamConsumer<C>) {
        (Incoming { stream: &mut self.stream }, &self.consumer)
    }
}

/// Takes records from a [`Receiver`]'s stream.
pub(crate) struct Incoming<'c, C: ConsumerContext + 'static> {
    stream: &'c mut MessageStream<'static, C>,
}

impl<'c, C: ConsumerContext + 'static> Incoming<'c, C> {
    /// The next record (or error) if librdkafka has one ready, else `None`
    /// (also when it served an event such as a rebalance instead; the
    /// caller then waits with [`recv`](Self::recv), which looks again at
    /// once). `None` loses nothing: librdkafka's queue gives a record up
    /// only when one is returned.
    #[inline(always)]
    pub(crate) fn take(&mut self) -> Option<KafkaResult<BorrowedMessage<'c>>> {
        // A no-op waker: when the queue is empty the stream stores it in its
        // slot, until `recv` stores a real one there.
        match self.poll_recv(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(msg) => Some(msg),
            Poll::Pending => None,
        }
    }

    /// The next record (or error), waiting for one if none is ready.
    /// Cancel-safe, as `take` is.
    pub(crate) async fn recv(&mut self) -> KafkaResult<BorrowedMessage<'c>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    #[inline(always)]
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<KafkaResult<BorrowedMessage<'c>>> {
        Pin::new(&mut *self.stream).poll_next(cx).map(|msg| {
            // rdkafka's own `recv` expects the same: its message stream
            // yields a message or is pending, and never ends.
            msg.unwrap_or_else(|| unreachable!("rdkafka's message stream never ends"))
        })
    }
}

#[cfg(test)]
mod tests {
    /// The stream kept inside must not take away what the readers offer:
    /// moving to another task or thread, and shared use (`pending`, ...).
    #[test]
    fn readers_stay_send_and_sync() {
        fn send_and_sync<T: Send + Sync>() {}
        send_and_sync::<crate::GroupReader>();
        send_and_sync::<crate::PartitionReader>();
    }
}
