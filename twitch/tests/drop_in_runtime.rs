//! Dropping a writer or a group reader inside a Tokio runtime does not stall
//! the runtime's other tasks, on either runtime flavor, and loses nothing:
//! a writer's records in flight are still flushed, a reader's processed
//! offsets still committed.

mod blackhole;
mod common;

use std::time::{Duration, Instant};

use blackhole::{BlackHole, Ticker};
use common::{cluster, init_logging, topic, unique};
use futures::StreamExt;
use twitch::{Record, TopicPartition};

/// The longest a 10 ms ticker may wait while something is dropped (the
/// machine may be busy: the stalls this catches are 400 ms and more).
const MAX_GAP: Duration = Duration::from_millis(200);

/// A writer with 100 records in flight to a broker that never answers is
/// dropped: its flush waits (up to its 2 s flush timeout), but not on the
/// runtime's threads.
async fn dropping_a_writer_with_records_in_flight() {
    init_logging();
    let hole = BlackHole::start();
    let cluster = hole.cluster(&[]);
    let mut writer = cluster.keyed_writer("drop-stuck").unwrap().with_flush_timeout(Duration::from_secs(2));
    for i in 0..100u8 {
        writer.produce(Record::new(vec![i])).await.unwrap();
    }
    assert_eq!(writer.in_flight(), 100);
    let ticker = Ticker::start().await;
    // Dropped in a task: on a multi-thread runtime, on one of its workers.
    let dropped_in = tokio::spawn(async move {
        let dropping = Instant::now();
        drop(writer);
        dropping.elapsed()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (gap, ticks) = ticker.stop().await;
    eprintln!("drop took {dropped_in:?}; ticker: {ticks} ticks, longest gap {gap:?}");
    assert!(gap < MAX_GAP, "the ticker waited {gap:?} while the writer was dropped (drop took {dropped_in:?})");
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_stuck_writer_does_not_stall_a_multi_thread_runtime() {
    dropping_a_writer_with_records_in_flight().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn dropping_a_stuck_writer_does_not_stall_a_one_worker_runtime() {
    dropping_a_writer_with_records_in_flight().await;
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_a_stuck_writer_does_not_stall_a_current_thread_runtime() {
    dropping_a_writer_with_records_in_flight().await;
}

/// On a current-thread runtime the dropped writer's flush runs on a blocking
/// thread: the records still reach the broker.
#[tokio::test(flavor = "current_thread")]
async fn a_writer_dropped_on_a_current_thread_runtime_still_delivers() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "drop-delivers-ct", 1).await;
    let mut writer = cluster.get_writer_for_partition(TopicPartition::new(&topic, 0)).unwrap();
    for i in 0..100u8 {
        writer.produce(Record::new(vec![i])).await.unwrap();
    }
    drop(writer);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut read = Vec::new();
    while read.len() < 100 && Instant::now() < deadline {
        let mut reader = cluster.partition_reader().partition(TopicPartition::new(&topic, 0)).stop_at_end(true).build().unwrap();
        read = reader.stream().map(|r| r.unwrap().record.payload).collect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(read, (0..100u8).map(|i| vec![i]).collect::<Vec<_>>());
}

/// Group readers dropped in one go.
const READERS: usize = 4;

/// Four group readers (each in its own group) that processed 3 of 10
/// records are dropped one after the other: closing them (commit,
/// LeaveGroup; about 110 ms each) does not stall the runtime, and each
/// group's 3 are committed.
async fn dropping_group_readers(flavor: &str) {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, &format!("drop-reader-{flavor}"), 1).await;
    let mut writer = cluster.get_writer_for_partition(TopicPartition::new(&topic, 0)).unwrap();
    for i in 0..10u8 {
        writer.produce(Record::new(vec![i])).await.unwrap();
    }
    writer.flush_async().await.unwrap();
    drop(writer);
    let groups: Vec<String> = (0..READERS).map(|_| unique("drop-reader-group")).collect();
    let mut readers = Vec::new();
    for group in &groups {
        let mut reader = cluster.group_reader(group).topic(&topic).build().unwrap();
        for i in 0..3u8 {
            let (record, ack) = tokio::time::timeout(Duration::from_secs(30), reader.next()).await.unwrap().unwrap().unwrap();
            assert_eq!(record.payload(), [i]);
            ack.ack();
        }
        readers.push(reader);
    }
    let ticker = Ticker::start().await;
    // Dropped in a task: on a multi-thread runtime, on one of its workers.
    let dropped_in = tokio::spawn(async move {
        let dropping = Instant::now();
        drop(readers);
        dropping.elapsed()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (gap, ticks) = ticker.stop().await;
    eprintln!("{flavor}: dropping {READERS} readers took {dropped_in:?}; ticker: {ticks} ticks, longest gap {gap:?}");
    // The closes committed the 3 processed records of every group.
    for group in &groups {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut lag = cluster.group_lag(group, &topic).await.unwrap();
        while lag[0].committed != Some(3) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            lag = cluster.group_lag(group, &topic).await.unwrap();
        }
        assert_eq!((lag.len(), lag[0].committed, lag[0].lag), (1, Some(3), 7), "{group}: {lag:?}");
    }
    assert!(gap < MAX_GAP, "the ticker waited {gap:?} while the readers were dropped (drop took {dropped_in:?})");
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_group_readers_does_not_stall_a_multi_thread_runtime() {
    dropping_group_readers("mt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn dropping_group_readers_does_not_stall_a_one_worker_runtime() {
    dropping_group_readers("mt1").await;
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_group_readers_does_not_stall_a_current_thread_runtime() {
    dropping_group_readers("ct").await;
}
