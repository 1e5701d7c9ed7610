//! The partition reader against the real broker.

mod common;

use std::time::Duration;

use common::{cluster, topic};
use futures::StreamExt;
use twitch::reader::StartAt;
use twitch::warden::KafkaCluster;
use twitch::{Error, ErrorKind, Format, Record, TopicPartition};

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

#[tokio::test]
async fn reads_the_same_partition_number_of_two_topics_apart() {
    let cluster = cluster();
    let (a, b) = (topic(&cluster, "reader-two-a", 1).await, topic(&cluster, "reader-two-b", 1).await);
    write(&cluster, &a, 0, (0..4u8).map(|i| vec![i])).await;
    write(&cluster, &b, 0, (0..2u8).map(|i| vec![i])).await;
    let (ta, tb) = (TopicPartition::new(&a, 0), TopicPartition::new(&b, 0));
    let both = || cluster.partition_reader().partition(ta.clone()).partition(tb.clone());
    // The end of "partition 0" would be ambiguous: refused.
    match both().stop_at_end(true).build().map_err(Error::into_kind) {
        Err(ErrorKind::InvalidConfig { message }) => assert!(message.contains("partition 0"), "{message}"),
        other => panic!("stop_at_end over two partitions 0 was accepted: {other:?}"),
    }
    let mut reader = both().build().unwrap();
    let mut records = Vec::new();
    while records.len() < 6 {
        let record = tokio::time::timeout(Duration::from_secs(20), reader.next()).await.unwrap().unwrap().unwrap();
        records.push(record);
    }
    assert_eq!(records.iter().filter(|r| *r.topic == *a).count(), 4);
    assert_eq!(records.iter().filter(|r| *r.topic == *b).count(), 2);
    assert_eq!((reader.position(&ta), reader.position(&tb)), (Some(4), Some(2)));
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
    match items[1].as_ref().map_err(Error::kind) {
        Err(ErrorKind::Decode { record, .. }) => {
            assert_eq!(record.offset, 1);
            assert_eq!(record.payload(), b"garbage");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert!(matches!(items[2].as_ref().map_err(Error::kind), Err(ErrorKind::Decode { record, .. }) if record.offset == 2));
    assert_eq!(items[3].as_ref().unwrap().value, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_needs_partitions_and_valid_topics() {
    let cluster = cluster();
    assert!(matches!(cluster.partition_reader().build().map_err(Error::into_kind), Err(ErrorKind::InvalidConfig { .. })));
    let bad = cluster.partition_reader().partition(TopicPartition::new("no spaces", 0)).build();
    assert!(matches!(bad.map_err(Error::into_kind), Err(ErrorKind::InvalidConfig { .. })));
}

#[tokio::test(flavor = "multi_thread")]
async fn next_ref_reads_in_place_what_next_copies() {
    let cluster = cluster();
    let topic = topic(&cluster, "reader-ref", 1).await;
    let tp = TopicPartition::new(&topic, 0);
    let mut w = cluster.get_writer_for_partition(tp.clone()).unwrap();
    for i in 0..20u8 {
        let record = Record::new(vec![i; usize::from(i)]).with_key(format!("k{i}")).with_header("n", [i]).with_timestamp(1_000 + i64::from(i));
        w.produce(record).await.unwrap();
    }
    w.flush_async().await.unwrap();

    let mut copies = cluster.partition_reader().partition(tp.clone()).stop_at_end(true).build().unwrap();
    let owned: Vec<_> = copies.stream().map(|r| r.unwrap()).collect().await;
    let mut reader = cluster.partition_reader().partition(tp.clone()).stop_at_end(true).build().unwrap();
    let mut seen = 0;
    while let Some(record) = reader.next_ref().await {
        let record = record.unwrap();
        let i = u8::try_from(record.offset()).unwrap();
        assert_eq!((record.topic(), record.partition()), (topic.as_str(), 0));
        assert_eq!(record.payload(), &vec![i; usize::from(i)][..]);
        assert_eq!(record.key(), Some(format!("k{i}").as_bytes()));
        assert_eq!(record.header("n"), Some(&[i][..]));
        assert_eq!(record.timestamp(), Some(1_000 + i64::from(i)));
        assert_eq!(record.format().unwrap(), None);
        assert_eq!(record.detach(), owned[usize::from(i)], "detach gives what next() gives");
        seen += 1;
    }
    assert_eq!(seen, 20);
    assert_eq!(reader.position(&tp), Some(20));
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_values_carry_their_origin_but_not_the_format_header() {
    let cluster = cluster();
    let topic = topic(&cluster, "reader-meta", 1).await;
    let tp = TopicPartition::new(&topic, 0);
    let mut json = cluster.get_writer_for_partition(tp.clone()).unwrap().with_format(Format::Json).with_format_header(true);
    json.send(&Reading { sensor: "a".into(), celsius: 1.5 }).await.unwrap();
    json.produce(Record::new(br#"{"sensor":"b","celsius":2.5}"#.to_vec()).with_key("kb").with_header("site", "lab")).await.unwrap();
    json.flush_async().await.unwrap();
    let mut bare = cluster.get_writer_for_partition(tp.clone()).unwrap().with_format(Format::Json).with_format_header(false);
    bare.send(&Reading { sensor: "c".into(), celsius: 3.5 }).await.unwrap();
    bare.flush_async().await.unwrap();

    // The first record names JSON in its header; the others name nothing
    // and are read with the reader's default format.
    let mut reader = cluster.partition_reader().partition(tp.clone()).format(Format::Json).stop_at_end(true).build().unwrap();
    let decoded: Vec<_> = reader.typed::<Reading>().map(|r| r.unwrap()).collect().await;
    assert_eq!(decoded.len(), 3);
    assert_eq!((decoded[2].value.sensor.as_str(), decoded[2].record.format), ("c", Format::Json));
    let mut raw = cluster.partition_reader().partition(tp).stop_at_end(true).build().unwrap();
    let mut named = Vec::new();
    while let Some(record) = raw.next_ref().await {
        named.push(record.unwrap().format().unwrap());
    }
    assert_eq!(named, [Some(Format::Json), None, None]);
    assert_eq!(decoded[0].value, Reading { sensor: "a".into(), celsius: 1.5 });
    assert_eq!((decoded[0].record.offset, decoded[0].record.format), (0, Format::Json));
    assert!(decoded[0].record.headers.is_empty(), "the format header is not repeated: {:?}", decoded[0].record.headers);
    assert_eq!(decoded[1].value.sensor, "b");
    assert_eq!(decoded[1].record.key.as_deref(), Some(&b"kb"[..]));
    assert_eq!(decoded[1].record.headers.len(), 1);
    assert_eq!(&*decoded[1].record.topic, topic.as_str());
}

#[tokio::test]
async fn typed_reads_without_headers_decode_every_record_with_the_reader_format() {
    let cluster = cluster();
    let topic = topic(&cluster, "reader-no-headers", 1).await;
    let tp = TopicPartition::new(&topic, 0);
    let mut named = cluster.get_writer_for_partition(tp.clone()).unwrap().with_format(Format::Bincode).with_format_header(true);
    named.send(&Reading { sensor: "a".into(), celsius: 1.5 }).await.unwrap();
    named.produce(Record::new(br#"{"sensor":"b","celsius":2.5}"#.to_vec()).with_header("site", "lab")).await.unwrap();
    named.flush_async().await.unwrap();

    // Following headers: the first record decodes as the bincode it names,
    // the second as JSON, with its header.
    let read = |headers: bool| {
        let cluster = cluster.clone();
        let tp = tp.clone();
        async move {
            let mut reader = cluster
                .partition_reader()
                .partition(tp)
                .format(Format::Json)
                .typed_headers(headers)
                .stop_at_end(true)
                .build()
                .unwrap();
            reader.typed::<Reading>().collect::<Vec<_>>().await
        }
    };
    let followed = read(true).await;
    assert_eq!(followed.len(), 2);
    assert_eq!(followed[0].as_ref().unwrap().value.sensor, "a");
    assert_eq!(followed[1].as_ref().unwrap().record.headers.len(), 1);

    // Without: every record is JSON to this reader, so the bincode one fails
    // (and comes back whole), and no headers are copied.
    let ignored = read(false).await;
    assert_eq!(ignored.len(), 2);
    match ignored[0].as_ref().map_err(Error::kind) {
        Err(ErrorKind::Decode { record, .. }) => assert_eq!(record.offset, 0),
        other => panic!("the bincode record decoded as JSON: {other:?}"),
    }
    let second = ignored[1].as_ref().unwrap();
    assert_eq!((second.value.sensor.as_str(), second.record.format), ("b", Format::Json));
    assert!(second.record.headers.is_empty(), "headers were read: {:?}", second.record.headers);

    // Values alone follow the same rule.
    for headers in [true, false] {
        let mut reader = cluster.partition_reader().partition(tp.clone()).format(Format::Json).typed_headers(headers).stop_at_end(true).build().unwrap();
        let mut values = Vec::new();
        while let Some(value) = reader.next_value::<Reading>().await {
            values.push(value.map(|r| r.sensor).map_err(|e| matches!(e.kind(), ErrorKind::Decode { .. })));
        }
        let first = if headers { Ok("a".to_owned()) } else { Err(true) };
        assert_eq!(values, vec![first, Ok("b".to_owned())], "typed_headers({headers})");
    }
}
