//! Writers whose records cannot be delivered: against a "broker" that
//! accepts connections and never answers (see `blackhole`), records stay in
//! flight until `message.timeout.ms`, then fail.

mod blackhole;
mod common;

use std::time::{Duration, Instant};

use blackhole::BlackHole;
use common::init_logging;
use rdkafka::types::RDKafkaErrorCode;
use twitch::{ErrorKind, Record, TopicPartition};

/// A flush that ran out of time after some records failed reports both: the
/// failures, and that it timed out with records still in flight. Having
/// given up once, dropping the writer does not wait again.
#[tokio::test(flavor = "multi_thread")]
async fn a_flush_that_times_out_after_failures_reports_both() {
    init_logging();
    let hole = BlackHole::start();
    let cluster = hole.cluster(&[("message.timeout.ms", "4000")]);
    let mut writer = cluster
        .get_writer_for_partition(TopicPartition::new("faults-both", 0))
        .unwrap()
        .with_flush_timeout(Duration::from_millis(3300));
    let t0 = Instant::now();
    writer.produce(Record::new(b"a".to_vec())).await.unwrap();
    tokio::time::sleep_until((t0 + Duration::from_millis(2500)).into()).await;
    // "a" expires at 4 s and librdkafka reports it by 5 s (it scans for
    // expired records every second); "b" expires at 6.5 s. The flush gives
    // up at 5.8 s: "a" failed, "b" is still in flight.
    writer.produce(Record::new(b"b".to_vec())).await.unwrap();
    let err = writer.flush_async().await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("1 record(s) not delivered; first: "), "{text}");
    assert!(text.ends_with("; the flush also timed out after 3.3s with 1 record(s) still in flight"), "{text}");
    match err.kind() {
        ErrorKind::Delivery { failures, flush_timed_out, in_flight } => {
            assert_eq!(failures.iter().map(|f| f.record.payload.clone()).collect::<Vec<_>>(), vec![b"a".to_vec()]);
            assert_eq!(failures[0].error.rdkafka_error_code(), Some(RDKafkaErrorCode::MessageTimedOut));
            assert_eq!((*flush_timed_out, *in_flight), (Some(Duration::from_millis(3300)), 1));
        }
        other => panic!("expected Delivery, got {other:?}"),
    }
    assert_eq!(writer.in_flight(), 1);
    // The flush gave up: dropping the writer does not wait for "b" again.
    let dropping = Instant::now();
    drop(writer);
    assert!(dropping.elapsed() < Duration::from_millis(500), "drop took {:?}", dropping.elapsed());
}

/// Records that cannot be delivered come back from `produce` as soon as
/// their failure is known, without waiting for a flush, so the failures
/// (each holding a copy of its record) never pile up beyond what librdkafka's
/// queue holds (`queue.buffering.max.messages`, 500 here).
async fn failures_come_back_from_produce(topic: &str) {
    init_logging();
    let hole = BlackHole::start();
    let cluster = hole.cluster(&[("message.timeout.ms", "300"), ("queue.buffering.max.messages", "500")]);
    let mut writer = cluster.get_writer_for_partition(TopicPartition::new(topic, 0)).unwrap();
    let started = Instant::now();
    let mut queued = 0u32;
    let mut returned: Vec<u32> = Vec::new();
    let (mut errors, mut largest, mut first_error_at) = (0, 0, None);
    let index = |r: &Record| u32::from_be_bytes(r.payload[..].try_into().unwrap());
    while started.elapsed() < Duration::from_secs(4) {
        let result = writer.produce(Record::new(queued.to_be_bytes().to_vec())).await;
        // The record is queued either way: an error hands back earlier ones.
        queued += 1;
        if let Err(e) = result {
            match e.into_kind() {
                ErrorKind::Delivery { failures, flush_timed_out: None, .. } => {
                    first_error_at.get_or_insert(started.elapsed());
                    errors += 1;
                    largest = largest.max(failures.len());
                    returned.extend(failures.iter().map(|f| index(&f.record)));
                }
                other => panic!("expected Delivery from produce, got {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let kept = writer.take_failures();
    assert!(
        first_error_at.is_some_and(|t| t < Duration::from_millis(2500)),
        "no failure came back from produce within 2.5 s (first: {first_error_at:?}); {} failures kept in the writer",
        kept.len()
    );
    assert!(kept.len() <= 500, "{} failures kept in the writer", kept.len());
    assert!(largest <= 500, "one error handed back {largest} failures");
    returned.extend(kept.iter().map(|f| index(&f.record)));
    // What is still queued fails within a second and a half.
    match writer.flush_async().await.map_err(twitch::Error::into_kind) {
        Ok(_) => {}
        Err(ErrorKind::Delivery { failures, .. }) => returned.extend(failures.iter().map(|f| index(&f.record))),
        Err(other) => panic!("expected Delivery from the flush, got {other:?}"),
    }
    // Every record failed and was handed back exactly once, in order.
    assert_eq!(returned, (0..queued).collect::<Vec<_>>());
    let c = writer.counters();
    assert_eq!((c.queued, c.delivered, c.failed, c.in_flight), (u64::from(queued), 0, u64::from(queued), 0));
    eprintln!("{queued} records, {errors} errors from produce, the first after {first_error_at:?}, at most {largest} failures in one");
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_come_back_from_produce_multi_thread() {
    failures_come_back_from_produce("faults-produce-mt").await;
}

#[tokio::test(flavor = "current_thread")]
async fn failures_come_back_from_produce_current_thread() {
    failures_come_back_from_produce("faults-produce-ct").await;
}
