//! Writers against the real broker.

mod common;

use std::time::Duration;

use common::{cluster, init_logging, topic};
use futures::StreamExt;
use twitch::codec::{Format, FORMAT_HEADER};
use twitch::partitioner::partition_for_key;
use twitch::warden::KafkaCluster;
use rdkafka::types::RDKafkaErrorCode;
use twitch::{ConsumedRecord, Error, ErrorKind, Record, TopicPartition};

/// Reads every record of `partitions` of `topic` from the beginning.
async fn read_all(cluster: &KafkaCluster, topic: &str, partitions: i32) -> Vec<ConsumedRecord> {
    let mut builder = cluster.partition_reader().stop_at_end(true);
    for p in 0..partitions {
        builder = builder.partition(TopicPartition::new(topic, p));
    }
    let mut reader = builder.build().unwrap();
    let records: Vec<_> = reader.stream().map(|r| r.unwrap()).collect().await;
    records
}

#[tokio::test(flavor = "multi_thread")]
async fn partition_writer_delivers_in_order_with_key_headers_and_timestamp() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "writer-order", 2).await;
    let mut writer = cluster.get_writer_for_partition(TopicPartition::new(&topic, 1)).unwrap();
    for i in 0..500u32 {
        let rec = Record::new(i.to_be_bytes().to_vec())
            .with_key(format!("k{i}"))
            .with_header("n", i.to_string())
            .with_timestamp(1_700_000_000_000 + i64::from(i));
        writer.produce(rec).await.unwrap();
    }
    let last = writer.flush_async().await.unwrap();
    assert_eq!(last, Some(499));
    assert_eq!(writer.delivered(), 500);

    let records = read_all(&cluster, &topic, 2).await;
    assert_eq!(records.len(), 500);
    for (i, r) in records.iter().enumerate() {
        let i = i as u32;
        assert_eq!((r.partition, r.offset), (1, i64::from(i)));
        assert_eq!(r.payload(), i.to_be_bytes());
        assert_eq!(r.key(), Some(format!("k{i}").as_bytes()));
        assert_eq!(r.record.header("n"), Some(i.to_string().as_bytes()));
        assert_eq!(r.record.timestamp, Some(1_700_000_000_000 + i64::from(i)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_payloads_go_out_byte_for_byte() {
    let cluster = cluster();
    let topic = topic(&cluster, "writer-raw", 1).await;
    let mut writer = cluster.get_writer_for_partition(TopicPartition::new(&topic, 0)).unwrap();
    let payload = vec![0u8, 255, 1, 2, 3];
    let offset = writer.produce_and_flush(Record::new(payload.clone())).await.unwrap();
    assert_eq!(offset, Some(0));
    let records = read_all(&cluster, &topic, 1).await;
    assert_eq!(records[0].payload(), &payload[..]);
    assert!(records[0].record.headers.is_empty(), "no envelope, no headers added");
}

#[tokio::test(flavor = "multi_thread")]
async fn keyed_writer_places_keys_like_the_java_client() {
    let cluster = cluster();
    let topic = topic(&cluster, "writer-keyed", 3).await;
    let mut writer = cluster.keyed_writer(&topic).unwrap();
    let keys: Vec<String> = (0..60).map(|i| format!("sensor-{i}")).collect();
    for k in &keys {
        writer.produce(Record::new(k.clone().into_bytes()).with_key(k.as_str())).await.unwrap();
    }
    writer.flush_async().await.unwrap();
    let records = read_all(&cluster, &topic, 3).await;
    assert_eq!(records.len(), keys.len());
    let mut used = std::collections::BTreeSet::new();
    for r in &records {
        let key = r.key().unwrap();
        assert_eq!(r.partition, partition_for_key(key, 3), "key {}", String::from_utf8_lossy(key));
        used.insert(r.partition);
    }
    assert_eq!(used.len(), 3, "60 keys should cover 3 partitions");
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_waits_when_the_queue_is_full_instead_of_failing() {
    let cluster = KafkaCluster::builder(common::brokers())
        .set("queue.buffering.max.messages", "16")
        .build()
        .unwrap();
    let topic = topic(&cluster, "writer-backpressure", 1).await;
    let mut writer = cluster.get_writer_for_partition(TopicPartition::new(&topic, 0)).unwrap();
    for i in 0..3_000u32 {
        writer.produce(Record::new(i.to_le_bytes().to_vec())).await.unwrap();
        assert!(writer.in_flight() <= 16, "queue bound exceeded: {}", writer.in_flight());
    }
    assert_eq!(writer.flush_async().await.unwrap(), Some(2_999));
    assert_eq!(read_all(&cluster, &topic, 1).await.len(), 3_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_deliveries_come_back_with_their_records() {
    let cluster = KafkaCluster::builder(common::brokers()).set("message.timeout.ms", "3000").build().unwrap();
    let topic = topic(&cluster, "writer-fail", 1).await;
    // Partition 7 does not exist. Usually librdkafka learns that only after
    // the record is queued, and it comes back from the flush; when it knows
    // the topic's partitions already, `produce` refuses the record at once.
    // Both are clear; the loop makes sure the delivery path is the one tested.
    for _ in 0..5 {
        let mut writer = cluster.get_writer_for_partition(TopicPartition::new(&topic, 7)).unwrap();
        match writer.produce(Record::new(b"lost?".to_vec()).with_key("k")).await {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::Produce { partition: Some(7), .. }) => {
                assert_eq!(e.kafka_code(), Some(RDKafkaErrorCode::UnknownPartition), "{e}");
                assert_eq!(writer.in_flight(), 0, "a refused record is not queued");
                continue;
            }
            Err(other) => panic!("expected the record queued or refused as UnknownPartition, got {other:?}"),
        }
        match writer.flush_async().await.map_err(Error::into_kind) {
            Err(ErrorKind::Delivery { failures, flush_timed_out: None, in_flight: 0 }) => {
                assert_eq!(failures.len(), 1);
                assert_eq!(failures[0].record.payload, b"lost?");
                assert_eq!(failures[0].record.key.as_deref(), Some(&b"k"[..]));
                assert_eq!(failures[0].topic, topic);
                return;
            }
            other => panic!("expected a delivery error, got {other:?}"),
        }
    }
    panic!("five writers in a row had the record refused at once; the delivery path went untested");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_records_are_refused_with_size_and_limit() {
    let cluster = KafkaCluster::builder(common::brokers()).set("message.max.bytes", "10000").build().unwrap();
    let topic = topic(&cluster, "writer-big", 1).await;
    let mut writer = cluster.get_writer_for_partition(TopicPartition::new(&topic, 0)).unwrap();
    match writer.produce(Record::new(vec![7; 20_000])).await.map_err(Error::into_kind) {
        Err(ErrorKind::RecordTooLarge { size, limit }) => assert_eq!((size, limit), (20_000, 10_000)),
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    // The writer still works afterwards.
    writer.produce_and_flush(Record::new(vec![1; 100])).await.unwrap();
}

#[test]
fn sync_flush_works_on_a_current_thread_runtime_and_outside_any_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cluster = cluster();
    let topic = rt.block_on(topic(&cluster, "writer-syncflush", 1));
    let mut writer = cluster.get_writer_for_partition(TopicPartition::new(&topic, 0)).unwrap();
    rt.block_on(async {
        writer.produce(Record::new(b"a".to_vec())).await.unwrap();
        // The seed's synchronous flush, called inside the runtime.
        assert_eq!(writer.flush().unwrap(), Some(0));
    });
    rt.block_on(writer.produce(Record::new(b"b".to_vec()))).unwrap();
    assert_eq!(writer.flush().unwrap(), Some(1));
}

/// The seed's synchronous flush inside a current-thread runtime: it blocks
/// the runtime's only thread while it waits, but does not deadlock, since
/// delivery reports come in on librdkafka's own thread.
#[tokio::test(flavor = "current_thread")]
async fn sync_flush_inside_a_current_thread_test() {
    let cluster = cluster();
    let topic = topic(&cluster, "writer-syncflush-ct", 1).await;
    let mut writer = cluster.get_writer_for_partition(TopicPartition::new(&topic, 0)).unwrap();
    for i in 0..10u8 {
        writer.produce(Record::new(vec![i])).await.unwrap();
    }
    assert_eq!(writer.flush().unwrap(), Some(9));
    assert_eq!((writer.delivered(), writer.in_flight()), (10, 0));
    assert_eq!(read_all(&cluster, &topic, 1).await.len(), 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_sends_are_plain_json_and_name_their_format() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Reading {
        sensor: String,
        celsius: f64,
    }
    let cluster = cluster();
    let topic = topic(&cluster, "writer-typed", 1).await;
    let tp = TopicPartition::new(&topic, 0);
    let mut named = cluster.get_writer_for_partition(tp.clone()).unwrap().with_format(Format::Json).with_format_header(true);
    let value = Reading { sensor: "s1".into(), celsius: 21.5 };
    named.send(&value).await.unwrap();
    named.flush_async().await.unwrap();
    let mut plain = cluster.get_writer_for_partition(tp).unwrap().with_format(Format::Json);
    plain.send(&value).await.unwrap();
    plain.flush_async().await.unwrap();

    let records = read_all(&cluster, &topic, 1).await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].payload(), br#"{"sensor":"s1","celsius":21.5}"#);
    assert_eq!(records[0].record.header(FORMAT_HEADER), Some(&b"json"[..]));
    // A reader whose default is bincode still decodes it, by the header.
    let decoded: Reading = Format::Bincode.decode_record(&records[0].record).unwrap();
    assert_eq!(decoded, value);
    // By default the header is left out: the same bytes, nothing else.
    assert_eq!(records[1].payload(), records[0].payload());
    assert!(records[1].record.headers.is_empty());
    assert!(Format::Bincode.decode_record::<Reading>(&records[1].record).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_an_unflushed_writer_still_delivers() {
    let cluster = cluster();
    let topic = topic(&cluster, "writer-drop", 1).await;
    {
        let mut writer = cluster.get_writer_for_partition(TopicPartition::new(&topic, 0)).unwrap();
        for i in 0..100u8 {
            writer.produce(Record::new(vec![i])).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(read_all(&cluster, &topic, 1).await.len(), 100);
}

/// "In flight" means records whose delivery report has not come in, the
/// same count that flush waits for: after a flush it is zero, so dropping the
/// writer has nothing to flush (it flushes, and warns, only when
/// `in_flight() > 0`). librdkafka's own queue length counts a batch's records
/// until it has handled their reports, a moment after the flush returned.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_in_flight_after_a_flush() {
    let cluster = cluster();
    let topic = topic(&cluster, "writer-in-flight", 1).await;
    let mut writer = cluster.get_writer_for_partition(TopicPartition::new(&topic, 0)).unwrap();
    let mut record = Record::new(Vec::new());
    let mut produced = 0u64;
    for round in 0..20 {
        for i in 0..20_000u32 {
            record.payload.clear();
            record.payload.extend_from_slice(&i.to_le_bytes());
            writer.produce_ref(&record).await.unwrap();
        }
        produced += 20_000;
        writer.flush_async().await.unwrap();
        assert_eq!(writer.in_flight(), 0, "round {round}: in flight after flush_async");
        assert_eq!(writer.delivered(), produced);
        writer.produce_ref(&record).await.unwrap();
        produced += 1;
        writer.flush().unwrap();
        assert_eq!(writer.in_flight(), 0, "round {round}: in flight after flush");
        assert_eq!(writer.delivered(), produced);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn librdkafka_settings_pass_through_unchanged() {
    // librdkafka itself refuses a bad value, so the setting reached it.
    let cluster = KafkaCluster::builder(common::brokers()).set("security.protocol", "carrier-pigeon").build().unwrap();
    match cluster.get_writer_for_partition(TopicPartition::new("any", 0)).map_err(Error::into_kind) {
        Err(ErrorKind::ClientCreation { role: "producer", source }) => {
            assert!(source.to_string().contains("security.protocol"), "{source}")
        }
        other => panic!("expected the client to refuse the setting, got {other:?}"),
    }
    // A valid one is accepted and used.
    let cluster = KafkaCluster::builder(common::brokers()).set("compression.type", "lz4").build().unwrap();
    let topic = topic(&cluster, "writer-lz4", 1).await;
    let mut w = cluster.get_writer_for_partition(TopicPartition::new(&topic, 0)).unwrap();
    w.produce_and_flush(Record::new(vec![42; 1000])).await.unwrap();
    assert_eq!(read_all(&cluster, &topic, 1).await[0].payload(), &[42; 1000][..]);
}
