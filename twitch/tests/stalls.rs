//! The group reader's stalls and silent losses, each found by reading the
//! code and shown here on Kafka: a paused partition assigned back, one
//! record never acked, an undecodable record in a typed stream, and a
//! transactional reader at a rebalance.

mod common;

use std::time::Duration;

use common::{cluster, init_logging, topic, unique};
use tokio::time::timeout;
use twitch::warden::KafkaCluster;
use twitch::{Error, ErrorKind, Format, GroupReader, Record, TopicPartition};

async fn write(cluster: &KafkaCluster, topic: &str, partition: i32, range: std::ops::Range<u32>) {
    let mut w = cluster.get_writer_for_partition(TopicPartition::new(topic, partition)).unwrap();
    for i in range {
        w.produce(Record::new(i.to_be_bytes().to_vec())).await.unwrap();
    }
    w.flush_async().await.unwrap();
}

/// The next record within `wait`, or `None` when none came.
async fn next_within(reader: &mut GroupReader, wait: Duration) -> Option<(twitch::ConsumedRecord, twitch::Ack)> {
    match timeout(wait, reader.next()).await {
        Ok(Some(item)) => Some(item.unwrap()),
        _ => None,
    }
}

/// Finding 1: librdkafka keeps the application's pause flag on a partition
/// across assignments. A partition paused for backpressure when a rebalance
/// revoked it was assigned back still paused, and nothing resumed it.
async fn a_paused_partition_assigned_back_is_read_again() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "stall-pause", 1).await;
    write(&cluster, &topic, 0, 0..30).await;
    let mut reader = cluster
        .group_reader(&unique("g-stall-pause"))
        .topic(&topic)
        .max_pending_per_partition(5)
        .revoke_grace(Duration::from_millis(100))
        // The member sees the new partition within half a second.
        .set("topic.metadata.refresh.interval.ms", "500")
        .build()
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(next_within(&mut reader, Duration::from_secs(20)).await.expect("a record").1);
    }
    assert!(next_within(&mut reader, Duration::from_secs(1)).await.is_none(), "paused after 5 unacked records");
    // A second partition makes the group rebalance: partition 0 is revoked
    // (its 5 records unacked, so it is read again from 0) and assigned back.
    let mut events = reader.events();
    cluster.add_partitions(&topic, 2).await.unwrap();
    let mut offsets = Vec::new();
    while offsets.len() < 30 {
        let Some((record, ack)) = next_within(&mut reader, Duration::from_secs(20)).await else {
            panic!("partition 0 stalled after the rebalance; read again: {offsets:?}; events: {:?}", events.try_recv());
        };
        assert_eq!(record.partition, 0);
        offsets.push(record.offset);
        ack.ack();
    }
    assert_eq!(offsets, (0..30).collect::<Vec<i64>>(), "read again from the start, all of it");
    drop(held);
    reader.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_partition_assigned_back_is_read_again_multi_thread() {
    a_paused_partition_assigned_back_is_read_again().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_paused_partition_assigned_back_is_read_again_current_thread() {
    a_paused_partition_assigned_back_is_read_again().await;
}

/// Finding 3: records acked behind one that is never acked were kept for
/// ever (and nothing past it could be committed), but backpressure counted
/// only the one unacked record, so the reader read on without bound. It
/// pauses now, and reads on once that record is acked.
#[tokio::test(flavor = "multi_thread")]
async fn one_unacked_record_pauses_its_partition_instead_of_reading_on() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "stall-stuck", 1).await;
    write(&cluster, &topic, 0, 0..100).await;
    let group = unique("g-stall-stuck");
    let mut reader = cluster.group_reader(&group).topic(&topic).max_pending_per_partition(10).build().unwrap();
    let (_, stuck) = next_within(&mut reader, Duration::from_secs(20)).await.expect("the first record");
    let mut read = 1;
    while let Some((_, ack)) = next_within(&mut reader, Duration::from_secs(2)).await {
        ack.ack();
        read += 1;
    }
    assert_eq!(read, 10, "reads stop once 10 records wait behind the unacked one");
    reader.commit().await.unwrap();
    let lag = cluster.group_lag(&group, &topic).await.unwrap();
    assert_eq!(lag[0].lag, 100, "nothing is committed past the unacked record");
    stuck.ack();
    while read < 100 {
        let (_, ack) = next_within(&mut reader, Duration::from_secs(20)).await.expect("reading resumes");
        ack.ack();
        read += 1;
    }
    reader.commit().await.unwrap();
    assert_eq!(cluster.group_lag(&group, &topic).await.unwrap()[0].lag, 0);
    reader.shutdown().await.unwrap();
}

/// Finding 3, second half: with the default `OnDecodeError::Fail`, an
/// undecodable record comes back as an error without its ack, and the typed
/// stream borrows the reader, so its partition could not commit past it
/// any more. An `Acker` taken before streaming marks it processed.
#[tokio::test(flavor = "multi_thread")]
async fn an_undecodable_record_in_a_typed_stream_can_be_skipped() {
    use futures::StreamExt;
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "stall-decode", 1).await;
    let mut w = cluster.get_writer_for_partition(TopicPartition::new(&topic, 0)).unwrap().with_format(Format::Json);
    w.send(&1u32).await.unwrap();
    w.produce(Record::new(b"{not json".to_vec())).await.unwrap();
    w.send(&3u32).await.unwrap();
    w.flush_async().await.unwrap();
    let group = unique("g-stall-decode");
    let mut reader = cluster.group_reader(&group).topic(&topic).format(Format::Json).build().unwrap();
    let acker = reader.acker();
    let (mut values, mut skipped) = (Vec::new(), Vec::new());
    {
        let mut typed = reader.typed::<u32>();
        while values.len() < 2 {
            match timeout(Duration::from_secs(20), typed.next()).await.unwrap().unwrap().map_err(Error::into_kind) {
                Ok((value, ack)) => {
                    values.push(value.value);
                    ack.ack();
                }
                Err(ErrorKind::Decode { record, .. }) => {
                    assert!(acker.mark_processed(&record));
                    skipped.push(record.offset);
                }
                Err(other) => panic!("{other}"),
            }
        }
    }
    assert_eq!((values, skipped), (vec![1, 3], vec![1]));
    assert_eq!(reader.processed_offsets(), vec![(TopicPartition::new(&topic, 0), 3)]);
    reader.commit().await.unwrap();
    assert_eq!(cluster.group_lag(&group, &topic).await.unwrap()[0].lag, 0);
    reader.shutdown().await.unwrap();
}

/// Finding 4 (reader half): `commit()` on a transactional reader returned
/// `Ok` and committed nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_transactional_reader_refuses_to_commit_by_itself() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "stall-txn-commit", 1).await;
    write(&cluster, &topic, 0, 0..3).await;
    let mut reader = cluster.group_reader(&unique("g-stall-txn-commit")).topic(&topic).transactional().build().unwrap();
    let (_, ack) = next_within(&mut reader, Duration::from_secs(20)).await.expect("a record");
    ack.ack();
    let refused = reader.commit().await.map_err(Error::into_kind);
    assert!(matches!(refused, Err(ErrorKind::TransactionalReader { operation: "commit" })), "{refused:?}");
    reader.shutdown().await.unwrap();
}

/// Finding 2: a transactional reader carried a revoke out inside a read and
/// forgot the revoked partitions' offsets, so the open transaction
/// committed its output without its input offsets. It now stops at the
/// revoke, offsets still there, until the transaction ends.
async fn a_transactional_reader_stops_at_a_revoke() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "stall-txn-revoke", 2).await;
    write(&cluster, &topic, 0, 0..10).await;
    write(&cluster, &topic, 1, 0..10).await;
    let group = unique("g-stall-txn-revoke");
    let mut first = cluster.group_reader(&group).topic(&topic).transactional().build().unwrap();
    for _ in 0..20 {
        next_within(&mut first, Duration::from_secs(20)).await.expect("a record").1.ack();
    }
    let before = first.processed_offsets();
    assert_eq!(before, vec![(TopicPartition::new(&topic, 0), 10), (TopicPartition::new(&topic, 1), 10)]);
    // A second member joins: the first's partitions are revoked.
    let mut second = cluster.group_reader(&group).topic(&topic).transactional().build().unwrap();
    let joining = tokio::spawn(async move {
        let _ = timeout(Duration::from_secs(30), second.next()).await;
        second
    });
    let revoking = timeout(Duration::from_secs(30), first.next()).await.expect("the revoke comes").unwrap();
    match revoking.map_err(Error::into_kind) {
        Err(ErrorKind::Revoking { partitions }) => assert_eq!(partitions.len(), 2),
        other => panic!("expected Revoking, got {other:?}"),
    }
    assert_eq!(first.processed_offsets(), before, "the offsets are still there for the transaction");
    // The transaction ends (here: nothing to commit); the next read gives the
    // partitions up, and what it reads next is of the new assignment.
    let _ = timeout(Duration::from_secs(5), first.next()).await;
    assert!(first.processed_offsets().iter().all(|(tp, _)| first.assignment().contains(tp)));
    first.shutdown().await.unwrap();
    joining.await.unwrap().shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transactional_reader_stops_at_a_revoke_multi_thread() {
    a_transactional_reader_stops_at_a_revoke().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_transactional_reader_stops_at_a_revoke_current_thread() {
    a_transactional_reader_stops_at_a_revoke().await;
}
