//! The partition reader against the real broker.

mod common;

use common::{cluster, topic};
use futures::StreamExt;
use twitch::reader::StartAt;
use twitch::warden::KafkaCluster;
use twitch::{Error, Format, Record, TopicPartition};

async fn write(cluster: &KafkaCluster, topic: &str, partition: i32, payloads: impl IntoIterator<Item = Vec<u8>>) {
    let mut w = cluster.get_writer_for_partition(TopicPartition::new(topic, partition)).unwrap();
    for p in payloads {
        w.produce(Record::new(p)).await.unwrap();
    }
    w.flush_async().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_from_beginning_from_an_offset_and_stops_at_end() {
    let cluster = cluster();
    let topic = topic(&cluster, "reader-start", 1).await;
    write(&cluster, &topic, 0, (0..50u8).map(|i| vec![i])).await;
    let tp = TopicPartition::new(&topic, 0);

    let mut all = cluster.partition_reader().partition(tp.clone()).stop_at_end(true).build().unwrap();
    let offsets: Vec<i64> = all.stream().map(|r| r.unwrap().offset).collect().await;
    assert_eq!(offsets, (0..50).collect::<Vec<_>>());
    assert_eq!(all.position(&tp), Some(50));

    let mut from = cluster.partition_reader().partition_from(tp.clone(), StartAt::Offset(40)).stop_at_end(true).build().unwrap();
    let payloads: Vec<Vec<u8>> = from.stream().map(|r| r.unwrap().record.payload).collect().await;
    assert_eq!(payloads, (40..50u8).map(|i| vec![i]).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn start_at_end_sees_only_new_records() {
    let cluster = cluster();
    let topic = topic(&cluster, "reader-end", 1).await;
    write(&cluster, &topic, 0, [vec![1], vec![2]]).await;
    let mut reader = cluster
        .partition_reader()
        .partition(TopicPartition::new(&topic, 0))
        .start(StartAt::End)
        .build()
        .unwrap();
    // Let the reader settle at the end before writing more.
    let nothing = tokio::time::timeout(std::time::Duration::from_secs(2), reader.next()).await;
    assert!(nothing.is_err(), "nothing new yet");
    write(&cluster, &topic, 0, [vec![3]]).await;
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), reader.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((next.offset, next.record.payload), (2, vec![3]));
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_several_partitions_and_empty_ones_end_too() {
    let cluster = cluster();
    let topic = topic(&cluster, "reader-multi", 3).await;
    write(&cluster, &topic, 0, (0..10u8).map(|i| vec![i])).await;
    write(&cluster, &topic, 2, (0..5u8).map(|i| vec![i])).await;
    let mut reader = cluster
        .partition_reader()
        .partition(TopicPartition::new(&topic, 0))
        .partition(TopicPartition::new(&topic, 1))
        .partition(TopicPartition::new(&topic, 2))
        .stop_at_end(true)
        .build()
        .unwrap();
    let records: Vec<_> = reader.stream().map(|r| r.unwrap()).collect().await;
    assert_eq!(records.iter().filter(|r| r.partition == 0).count(), 10);
    assert_eq!(records.iter().filter(|r| r.partition == 2).count(), 5);
    assert_eq!(records.len(), 15);
}

#[tokio::test(flavor = "multi_thread")]
async fn undecodable_records_come_back_as_errors_and_the_stream_goes_on() {
    let cluster = cluster();
    let topic = topic(&cluster, "reader-decode", 1).await;
    let good = |v: u64| Format::Bincode.encode(&v).unwrap();
    write(&cluster, &topic, 0, [good(1), b"garbage".to_vec(), vec![], good(4)]).await;
    let mut reader = cluster.partition_reader().partition(TopicPartition::new(&topic, 0)).stop_at_end(true).build().unwrap();
    let items: Vec<_> = reader.typed::<u64>().collect().await;
    assert_eq!(items.len(), 4);
    assert_eq!(items[0].as_ref().unwrap().value, 1);
    match &items[1] {
        Err(Error::Decode { record, .. }) => {
            assert_eq!(record.offset, 1);
            assert_eq!(record.payload(), b"garbage");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert!(matches!(&items[2], Err(Error::Decode { record, .. }) if record.offset == 2));
    assert_eq!(items[3].as_ref().unwrap().value, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_needs_partitions_and_valid_topics() {
    let cluster = cluster();
    assert!(matches!(cluster.partition_reader().build(), Err(Error::InvalidConfig { .. })));
    let bad = cluster.partition_reader().partition(TopicPartition::new("no spaces", 0)).build();
    assert!(matches!(bad, Err(Error::InvalidConfig { .. })));
}
