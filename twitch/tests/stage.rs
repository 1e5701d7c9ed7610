//! The transactional stage on Kafka: each input record counts once in what
//! `read_committed` readers of the output see, across aborts, rebalances
//! and fencing.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{cluster, init_logging, read_to_end, topic, unique};
use tokio::time::timeout;
use twitch::warden::KafkaCluster;
use twitch::{Record, TopicPartition, TransactionalStage};

const BATCH_WAIT: Duration = Duration::from_millis(200);

async fn write(cluster: &KafkaCluster, topic: &str, partitions: i32, per_partition: u32) {
    for p in 0..partitions {
        let mut w = cluster.get_writer_for_partition(TopicPartition::new(topic, p)).unwrap();
        for i in 0..per_partition {
            w.produce(Record::new(i.to_be_bytes().to_vec())).await.unwrap();
        }
        w.flush_async().await.unwrap();
    }
}

async fn stage(cluster: &KafkaCluster, group: &str, input: &str, output: &str, id: &str) -> TransactionalStage {
    let reader = cluster.group_reader(group).topic(input).session_timeout(Duration::from_secs(10));
    cluster
        .transactional_stage(reader, output, id)
        .transaction_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap()
}

/// Writes one output record per input record, naming it: `partition:offset`.
async fn forward(stage: &mut TransactionalStage, batch: &[twitch::ConsumedRecord]) {
    for record in batch {
        let name = format!("{}:{}", record.partition, record.offset);
        stage.produce(Record::new(name.into_bytes())).await.unwrap();
    }
}

/// How often each input record is named in the output.
fn tally(output: &[Vec<u8>]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for payload in output {
        *seen.entry(String::from_utf8(payload.clone()).unwrap()).or_insert(0) += 1;
    }
    seen
}

/// An aborted batch is read again, from the same offsets; only the
/// committed copy is visible to `read_committed`.
async fn an_aborted_batch_is_read_again() {
    init_logging();
    let cluster = cluster();
    let (input, output) = (topic(&cluster, "stage-abort-in", 1).await, topic(&cluster, "stage-abort-out", 1).await);
    write(&cluster, &input, 1, 10).await;
    let mut stage = stage(&cluster, &unique("g-stage-abort"), &input, &output, &unique("stage-abort")).await;
    let mut first = Vec::new();
    while first.len() < 10 {
        first.extend(stage.next_batch(10 - first.len(), Duration::from_secs(20)).await.unwrap());
    }
    forward(&mut stage, &first).await;
    stage.abort().await.unwrap();
    assert!(!stage.in_transaction());
    let mut again = Vec::new();
    while again.len() < 10 {
        again.extend(stage.next_batch(10 - again.len(), Duration::from_secs(20)).await.unwrap());
    }
    let offsets = |b: &[twitch::ConsumedRecord]| b.iter().map(|r| r.offset).collect::<Vec<_>>();
    assert_eq!(offsets(&again), offsets(&first), "the aborted batch comes again");
    forward(&mut stage, &again).await;
    stage.commit().await.unwrap();
    let counters = stage.counters();
    assert_eq!((counters.committed, counters.aborted, counters.records), (1, 1, 10));
    stage.shutdown().await.unwrap();
    let committed = tally(&read_to_end(&cluster, &output, "read_committed").await);
    assert_eq!((committed.len(), committed.values().max()), (10, Some(&1)));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aborted_batch_is_read_again_multi_thread() {
    an_aborted_batch_is_read_again().await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_aborted_batch_is_read_again_current_thread() {
    an_aborted_batch_is_read_again().await;
}

/// Forwards batches until `stop`, committing each; returns the stage.
async fn run(mut stage: TransactionalStage, stop: Arc<AtomicBool>) -> TransactionalStage {
    while !stop.load(Ordering::SeqCst) {
        let batch = stage.next_batch(100, BATCH_WAIT).await.unwrap();
        forward(&mut stage, &batch).await;
        if let Err(e) = stage.commit().await {
            assert!(!e.is_fatal(), "{e}");
        }
    }
    stage
}

/// Three members share the input; the second and third join mid-stream, so
/// partitions are revoked while members gather batches. Every input record
/// is named exactly once in the committed output. (When the reader gave
/// partitions up in the middle of a batch, 1 run in 4 of a two-member
/// version of this test found 20 records twice.)
async fn a_handover_mid_stream_counts_each_record_once() {
    init_logging();
    let cluster = cluster();
    let (input, output) = (topic(&cluster, "stage-handover-in", 4).await, topic(&cluster, "stage-handover-out", 1).await);
    // A trickle of input: each batch is gathered over its whole wait, so the
    // second member's join finds the first with records in hand.
    let trickle = {
        let (cluster, input) = (cluster.clone(), input.clone());
        tokio::spawn(async move {
            let mut w = cluster.keyed_writer(&input).unwrap();
            for i in 0..1000u32 {
                w.produce(Record::new(i.to_be_bytes().to_vec()).with_key(format!("k{i}"))).await.unwrap();
                w.flush_async().await.unwrap();
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
        })
    };
    let group = unique("g-stage-handover");
    let stop = Arc::new(AtomicBool::new(false));
    let first = tokio::spawn(run(stage(&cluster, &group, &input, &output, &unique("stage-a")).await, Arc::clone(&stop)));
    // The second member joins while the first is mid-stream.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = tokio::spawn(run(stage(&cluster, &group, &input, &output, &unique("stage-b")).await, Arc::clone(&stop)));
    // And a third: every member's partitions are revoked again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let third = tokio::spawn(run(stage(&cluster, &group, &input, &output, &unique("stage-c")).await, Arc::clone(&stop)));
    trickle.await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let committed = loop {
        let committed = tally(&read_to_end(&cluster, &output, "read_committed").await);
        if committed.len() == 1000 || tokio::time::Instant::now() >= deadline {
            break committed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.store(true, Ordering::SeqCst);
    let (first, second, third) = (first.await.unwrap(), second.await.unwrap(), third.await.unwrap());
    let (a, b, c) = (first.counters(), second.counters(), third.counters());
    assert!(a.records > 0 && b.records > 0 && c.records > 0, "every member committed work: {a:?} {b:?} {c:?}");
    for member in [first, second, third] {
        member.shutdown().await.unwrap();
    }
    let duplicates: Vec<_> = committed.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!((committed.len(), duplicates.len()), (1000, 0), "duplicates: {duplicates:?}");
    assert_eq!(a.records + b.records + c.records, 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handover_mid_stream_counts_each_record_once_multi_thread() {
    a_handover_mid_stream_counts_each_record_once().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_handover_mid_stream_counts_each_record_once_current_thread() {
    a_handover_mid_stream_counts_each_record_once().await;
}

/// A newer stage with the same transactional id fences the older one: its
/// open transaction can no longer commit, and nothing of it is visible.
#[tokio::test(flavor = "multi_thread")]
async fn a_stage_with_the_same_transactional_id_fences_the_older_one() {
    init_logging();
    let cluster = cluster();
    let (input, output) = (topic(&cluster, "stage-fence-in", 1).await, topic(&cluster, "stage-fence-out", 1).await);
    write(&cluster, &input, 1, 5).await;
    let (group, id) = (unique("g-stage-fence"), unique("stage-fence"));
    let mut old = stage(&cluster, &group, &input, &output, &id).await;
    let mut batch = Vec::new();
    while batch.is_empty() {
        batch = old.next_batch(5, Duration::from_secs(20)).await.unwrap();
    }
    forward(&mut old, &batch).await;
    let newer = stage(&cluster, &unique("g-stage-fence-other"), &input, &output, &id).await;
    let fenced = timeout(Duration::from_secs(60), old.commit()).await.unwrap().unwrap_err();
    assert!(fenced.is_fatal(), "{fenced}");
    drop(old);
    newer.shutdown().await.unwrap();
    assert!(read_to_end(&cluster, &output, "read_committed").await.is_empty());
}
