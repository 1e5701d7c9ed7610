//! Consumer-group readers and group administration against the real broker.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{cluster, init_logging, topic, unique};
use tokio::time::timeout;
use twitch::reader::{OnDecodeError, Step};
use twitch::warden::KafkaCluster;
use twitch::{Error, ErrorKind, Format, GroupReader, Record, TopicPartition};

/// Writes `n` records with keys `k0..` (spread by the partitioner); payload = index.
async fn write_keyed(cluster: &KafkaCluster, topic: &str, range: std::ops::Range<u32>) {
    let mut w = cluster.keyed_writer(topic).unwrap();
    for i in range {
        w.produce(Record::new(i.to_be_bytes().to_vec()).with_key(format!("k{i}"))).await.unwrap();
    }
    w.flush_async().await.unwrap();
}

fn value(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload.try_into().unwrap())
}

/// Reads and acks until nothing comes for `idle`; returns values and partitions seen.
async fn drain(reader: &mut GroupReader, idle: Duration) -> (Vec<u32>, BTreeSet<i32>) {
    let (mut values, mut partitions) = (Vec::new(), BTreeSet::new());
    while let Ok(Some(item)) = timeout(idle, reader.next()).await {
        let (record, ack) = item.unwrap();
        values.push(value(record.payload()));
        partitions.insert(record.partition);
        ack.ack();
    }
    (values, partitions)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_members_share_three_partitions_and_read_each_record_once() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "group-share", 3).await;
    let group = unique("g-share");
    let mut readers: Vec<GroupReader> =
        (0..3).map(|_| cluster.group_reader(&group).topic(&topic).build().unwrap()).collect();
    // Records come once every member has its one partition: a member that
    // joined first would otherwise read from all of them until the others
    // join (on a loaded machine, every record).
    let ready = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let tasks: Vec<_> = readers
        .drain(..)
        .map(|mut r| {
            let ready = std::sync::Arc::clone(&ready);
            tokio::spawn(async move {
                while r.assignment().len() != 1 {
                    assert!(timeout(Duration::from_millis(100), r.next()).await.is_err(), "a record before any was written");
                }
                ready.add_permits(1);
                let out = drain(&mut r, Duration::from_secs(12)).await;
                let assignment = r.assignment();
                r.shutdown().await.unwrap();
                (out, assignment)
            })
        })
        .collect();
    let all_ready = timeout(Duration::from_secs(60), ready.acquire_many(3)).await.expect("every member gets a partition");
    drop(all_ready);
    write_keyed(&cluster, &topic, 0..900).await;
    let mut all = Vec::new();
    let mut seen_partitions = Vec::new();
    for t in tasks {
        let ((values, partitions), _) = t.await.unwrap();
        all.extend(values);
        seen_partitions.push(partitions);
    }
    all.sort_unstable();
    assert_eq!(all, (0..900).collect::<Vec<_>>(), "every record exactly once");
    for (i, a) in seen_partitions.iter().enumerate() {
        assert_eq!(a.len(), 1, "member {i} read partitions {a:?}");
        for b in &seen_partitions[i + 1..] {
            assert!(a.is_disjoint(b), "{a:?} and {b:?} overlap");
        }
    }
    // Everything was committed: nothing left for the group.
    let lag = cluster.group_lag(&group, &topic).await.unwrap();
    assert!(lag.iter().all(|p| p.lag == 0), "{lag:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_stop_hands_over_without_rereading() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "group-handover", 2).await;
    let group = unique("g-handover");
    write_keyed(&cluster, &topic, 0..200).await;

    let mut first = cluster.group_reader(&group).topic(&topic).build().unwrap();
    // Read half, then stop gracefully.
    let mut got = Vec::new();
    while got.len() < 100 {
        let (record, ack) = timeout(Duration::from_secs(20), first.next()).await.unwrap().unwrap().unwrap();
        got.push(value(record.payload()));
        ack.ack();
    }
    first.shutdown().await.unwrap();

    let mut second = cluster.group_reader(&group).topic(&topic).build().unwrap();
    let (rest, _) = drain(&mut second, Duration::from_secs(10)).await;
    second.shutdown().await.unwrap();
    let mut all: Vec<u32> = got.iter().chain(&rest).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..200).collect::<Vec<_>>(), "no gap and no record read twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_order_acks_never_commit_an_unprocessed_record() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "group-ooo", 1).await;
    let group = unique("g-ooo");
    write_keyed(&cluster, &topic, 0..50).await;

    let mut reader = cluster.group_reader(&group).topic(&topic).commit_interval(Duration::from_millis(100)).build().unwrap();
    let mut acks = Vec::new();
    for i in 0..50 {
        // Read in place; the acks outlive their records.
        let (record, ack) = timeout(Duration::from_secs(20), reader.next_ref()).await.unwrap().unwrap().unwrap();
        assert_eq!((record.offset(), ack.offset(), value(record.payload())), (i, i, u32::try_from(i).unwrap()));
        assert_eq!((ack.topic(), ack.partition()), (topic.as_str(), 0));
        acks.push(ack);
    }
    assert_eq!(reader.pending(), 50);
    // Ack in reverse order, holding back offset 20.
    let held = acks.remove(20);
    assert_eq!(held.offset(), 20);
    for ack in acks.into_iter().rev() {
        ack.ack();
    }
    assert_eq!(reader.processed_offsets(), vec![(TopicPartition::new(&topic, 0), 20)]);
    reader.commit().await.unwrap();
    let lag = cluster.group_lag(&group, &topic).await.unwrap();
    assert_eq!(lag[0].committed, Some(20), "commit stops at the first unprocessed record");
    assert_eq!(lag[0].lag, 30);
    // Stop without acking 20: a restart begins at 20 again.
    drop(held);
    reader.shutdown().await.unwrap();
    let mut again = cluster.group_reader(&group).topic(&topic).build().unwrap();
    let (record, ack) = timeout(Duration::from_secs(20), again.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(record.offset, 20);
    ack.ack();
    again.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_application_pauses_fetching() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "group-pause", 1).await;
    write_keyed(&cluster, &topic, 0..100).await;
    let mut reader =
        cluster.group_reader(&unique("g-pause")).topic(&topic).max_pending_per_partition(5).build().unwrap();
    let mut acks = Vec::new();
    for _ in 0..5 {
        acks.push(timeout(Duration::from_secs(20), reader.next()).await.unwrap().unwrap().unwrap().1);
    }
    assert!(timeout(Duration::from_secs(2), reader.next()).await.is_err(), "a sixth unacked record was handed out");
    for ack in acks {
        ack.ack();
    }
    let (record, ack) = timeout(Duration::from_secs(10), reader.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(record.offset, 5, "resumes right after the last record handed out");
    ack.ack();
    reader.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_reader_wakes_up_when_acks_come_in() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "group-pause-wake", 1).await;
    write_keyed(&cluster, &topic, 0..20).await;
    // No commit timer to wake the reader: only the acks can.
    let mut reader = cluster
        .group_reader(&unique("g-pause-wake"))
        .topic(&topic)
        .max_pending_per_partition(4)
        .commit_interval(Duration::from_secs(600))
        .build()
        .unwrap();
    let mut acks = Vec::new();
    for _ in 0..4 {
        acks.push(timeout(Duration::from_secs(20), reader.next()).await.unwrap().unwrap().unwrap().1);
    }
    // The reader is already waiting (paused) when the acks come in.
    let acker = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for ack in acks {
            ack.ack();
        }
    });
    let started = std::time::Instant::now();
    let (record, ack) = timeout(Duration::from_secs(10), reader.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(record.offset, 4);
    assert!(started.elapsed() >= Duration::from_millis(500), "a fifth unacked record was handed out");
    ack.ack();
    acker.await.unwrap();
    reader.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn undecodable_records_fail_or_go_to_the_dead_letter_topic() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "group-dlq", 1).await;
    let dlq = topic.clone() + ".dlq";
    cluster.create_topics(&[twitch::TopicConfiguration::new(&dlq, 1)]).await.unwrap();
    // JSON records named as such; the readers' own default is bincode.
    let mut w = cluster.get_writer_for_partition(TopicPartition::new(&topic, 0)).unwrap().with_format(Format::Json).with_format_header(true);
    w.send(&1u32).await.unwrap();
    w.produce(Record::new(b"{not json".to_vec()).with_header("twitch.format", "json")).await.unwrap();
    w.send(&3u32).await.unwrap();
    w.flush_async().await.unwrap();

    // Policy Fail: the error carries the record; nothing is skipped silently.
    let mut strict = cluster.group_reader(&unique("g-strict")).topic(&topic).build().unwrap();
    let first = timeout(Duration::from_secs(20), strict.next_typed::<u32>()).await.unwrap().unwrap().unwrap();
    first.1.ack();
    match timeout(Duration::from_secs(10), strict.next_typed::<u32>()).await.unwrap().unwrap().map_err(Error::into_kind) {
        Err(ErrorKind::Decode { record, .. }) => {
            assert_eq!(record.offset, 1);
            assert_eq!(strict.processed_offsets(), vec![(TopicPartition::new(&topic, 0), 1)], "not committed past it");
            strict.mark_processed(&record);
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    let third = timeout(Duration::from_secs(10), strict.next_typed::<u32>()).await.unwrap().unwrap().unwrap();
    assert_eq!(third.0.value, 3);
    third.1.ack();
    assert_eq!(strict.processed_offsets(), vec![(TopicPartition::new(&topic, 0), 3)]);
    strict.shutdown().await.unwrap();

    // Policy DeadLetter: parked with its origin, the stream goes on.
    let mut lenient = cluster
        .group_reader(&unique("g-lenient"))
        .topic(&topic)
        .on_decode_error(OnDecodeError::DeadLetter(dlq.clone()))
        .build()
        .unwrap();
    let (first, ack) = timeout(Duration::from_secs(20), lenient.next_typed::<u32>()).await.unwrap().unwrap().unwrap();
    ack.ack();
    // Values alone: the named format is followed, the bad record parked on the way.
    let (third, ack) = timeout(Duration::from_secs(20), lenient.next_value::<u32>()).await.unwrap().unwrap().unwrap();
    assert_eq!(ack.offset(), 2);
    ack.ack();
    assert_eq!((first.value, third), (1, 3));
    assert_eq!(lenient.dead_lettered(), 1);
    lenient.shutdown().await.unwrap();
    let mut parked = cluster.partition_reader().partition(TopicPartition::new(&dlq, 0)).stop_at_end(true).build().unwrap();
    let rec = parked.next().await.unwrap().unwrap();
    assert_eq!(rec.payload(), b"{not json");
    assert_eq!(rec.record.header("twitch.dlq.topic"), Some(topic.as_bytes()));
    assert_eq!(rec.record.header("twitch.dlq.offset"), Some(&b"1"[..]));
    assert!(rec.record.header("twitch.dlq.error").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn group_reader_settings_are_checked() {
    let cluster = cluster();
    assert!(matches!(cluster.group_reader("g").build().map_err(Error::into_kind), Err(ErrorKind::InvalidConfig { .. })));
    assert!(matches!(cluster.group_reader("").topic("t").build().map_err(Error::into_kind), Err(ErrorKind::InvalidConfig { .. })));
    let auto = cluster.group_reader("g").topic("t").set("enable.auto.commit", "true").build();
    assert!(matches!(auto.map_err(Error::into_kind), Err(ErrorKind::InvalidConfig { .. })));
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_reader_commits_what_was_processed_and_does_not_hang() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "group-drop", 1).await;
    let group = unique("g-drop");
    write_keyed(&cluster, &topic, 0..20).await;
    let mut reader = cluster.group_reader(&group).topic(&topic).commit_interval(Duration::from_secs(3600)).build().unwrap();
    for _ in 0..12 {
        let (_, ack) = timeout(Duration::from_secs(20), reader.next()).await.unwrap().unwrap().unwrap();
        ack.ack();
    }
    let started = std::time::Instant::now();
    drop(reader);
    assert!(started.elapsed() < Duration::from_secs(10), "drop took {:?}", started.elapsed());
    let lag = cluster.group_lag(&group, &topic).await.unwrap();
    assert_eq!(lag[0].committed, Some(12), "drop commits through the revoke callback");
}

#[tokio::test(flavor = "multi_thread")]
async fn cooperative_members_split_the_topic_too() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "group-coop", 2).await;
    let group = unique("g-coop");
    write_keyed(&cluster, &topic, 0..100).await;
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let mut r = cluster.group_reader(&group).topic(&topic).cooperative().build().unwrap();
            tokio::spawn(async move {
                let out = drain(&mut r, Duration::from_secs(12)).await;
                r.shutdown().await.unwrap();
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap().0);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all, (0..100).collect::<Vec<_>>(), "every record read");
}

/// Work in flight on revoked partitions finishes and is committed before the
/// partitions move: the member that takes over reads nothing twice.
/// Acks that come in while the reader waits for records are committed on
/// time, not only when the next record arrives.
#[tokio::test(flavor = "multi_thread")]
async fn acks_are_committed_while_the_reader_waits() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "group-idle", 1).await;
    let group = unique("g-idle");
    write_keyed(&cluster, &topic, 0..10).await;
    let mut reader = cluster.group_reader(&group).topic(&topic).commit_interval(Duration::from_millis(200)).build().unwrap();
    let mut acks = Vec::new();
    for _ in 0..10 {
        acks.push(timeout(Duration::from_secs(20), reader.next()).await.unwrap().unwrap().unwrap().1);
    }
    let waiting = tokio::spawn(async move {
        assert!(timeout(Duration::from_secs(4), reader.next()).await.is_err(), "no record should come");
        reader
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for ack in acks {
        ack.ack();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lag = cluster.group_lag(&group, &topic).await.unwrap();
    assert_eq!(lag[0].committed, Some(10), "committed while the reader was waiting");
    waiting.await.unwrap().shutdown().await.unwrap();
}

/// With records always waiting (no pause in which the reader waits), what
/// was processed is still committed every `commit_interval`, not only at
/// the end.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_reader_commits_on_its_interval() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "group-busy", 1).await;
    let group = unique("g-busy");
    write_keyed(&cluster, &topic, 0..400).await;
    let mut reader = cluster.group_reader(&group).topic(&topic).commit_interval(Duration::from_millis(100)).build().unwrap();
    // 300 records, 3 ms of "processing" each: about a second of reading.
    for _ in 0..300 {
        let (_, ack) = timeout(Duration::from_secs(20), reader.next()).await.unwrap().unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
        ack.ack();
    }
    let committed = cluster.group_lag(&group, &topic).await.unwrap()[0].committed;
    assert!(committed.is_some_and(|c| (100..=300).contains(&c)), "committed {committed:?} while reading, expected 100 to 300");
    reader.shutdown().await.unwrap();
}

/// Why a `for_each_ref` of the test below stopped.
#[derive(Debug)]
enum Stopped {
    #[allow(dead_code)] // Read through Debug.
    Reader(Error),
    Processing(u32),
}

impl From<Error> for Stopped {
    fn from(e: Error) -> Self {
        Stopped::Reader(e)
    }
}

/// `for_each_ref` marks a record processed when its closure returns `Ok`
/// (`Stop` included) and not when it fails; it mixes with `next_ref`.
#[tokio::test(flavor = "multi_thread")]
async fn for_each_ref_commits_what_it_processed_and_not_what_failed() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "group-each", 1).await;
    let group = unique("g-each");
    write_keyed(&cluster, &topic, 0..20).await;
    let mut reader = cluster.group_reader(&group).topic(&topic).commit_interval(Duration::from_secs(3600)).build().unwrap();
    let mut seen = Vec::new();
    let stopped = reader.for_each_ref(|record| {
        let v = value(record.payload());
        assert_eq!(i64::from(v), record.offset(), "one partition: offsets are the values");
        seen.push(v);
        Ok::<_, Stopped>(if v == 9 { Step::Stop } else { Step::Continue })
    });
    timeout(Duration::from_secs(30), stopped).await.unwrap().unwrap();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert_eq!(reader.pending(), 0, "the record it stopped at counts as processed");

    {
        // (In a block: a record still held when the reader shuts down keeps
        // librdkafka's consumer from closing.)
        let (record, ack) = timeout(Duration::from_secs(20), reader.next_ref()).await.unwrap().unwrap().unwrap();
        assert_eq!(value(record.payload()), 10, "next_ref goes on where for_each_ref stopped");
        ack.ack();
    }

    let failed = reader.for_each_ref(|record| match value(record.payload()) {
        14 => Err(Stopped::Processing(14)),
        _ => Ok(Step::Continue),
    });
    let err = timeout(Duration::from_secs(30), failed).await.unwrap().unwrap_err();
    assert!(matches!(err, Stopped::Processing(14)), "{err:?}");
    assert_eq!(reader.pending(), 1, "the failed record stays unprocessed");
    reader.shutdown().await.unwrap();
    let lag = cluster.group_lag(&group, &topic).await.unwrap();
    assert_eq!(lag[0].committed, Some(14), "committed up to the failed record, not past it");

    // The failed record is read again by the group's next reader.
    let mut again = cluster.group_reader(&group).topic(&topic).build().unwrap();
    let (record, _ack) = timeout(Duration::from_secs(30), again.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(value(record.payload()), 14);
    again.shutdown().await.unwrap();
}

/// A reader of two topics, each with a partition 0, keeps their records,
/// acks and commits apart.
#[tokio::test(flavor = "multi_thread")]
async fn one_reader_of_two_topics_commits_each() {
    init_logging();
    let cluster = cluster();
    let (a, b) = (topic(&cluster, "group-two-a", 1).await, topic(&cluster, "group-two-b", 1).await);
    let group = unique("g-two");
    write_keyed(&cluster, &a, 0..3).await;
    write_keyed(&cluster, &b, 0..2).await;
    let mut reader = cluster.group_reader(&group).topic(&a).topic(&b).build().unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (record, ack) = timeout(Duration::from_secs(30), reader.next_ref()).await.unwrap().unwrap().unwrap();
        assert_eq!((record.topic(), record.partition(), record.offset()), (ack.topic(), ack.partition(), ack.offset()));
        seen.push((record.topic().to_owned(), record.offset()));
        ack.ack();
    }
    seen.sort();
    let want: Vec<(String, i64)> = [(&a, 0), (&a, 1), (&a, 2), (&b, 0), (&b, 1)].iter().map(|(t, o)| (t.to_string(), *o)).collect();
    assert_eq!(seen, want);
    reader.shutdown().await.unwrap();
    assert_eq!(cluster.group_lag(&group, &a).await.unwrap()[0].committed, Some(3));
    assert_eq!(cluster.group_lag(&group, &b).await.unwrap()[0].committed, Some(2));
}

/// Applications move a read into a timeout or a select on every record, so
/// its future has to stay small: an error-sized value held across an await
/// once made it 232 bytes, moved with `memcpy` three times a record.
#[tokio::test]
async fn a_read_is_a_small_future() {
    let mut reader = cluster().group_reader(&unique("small-future")).topic(&unique("small-future")).build().unwrap();
    let read = reader.next_ref();
    let bytes = std::mem::size_of_val(&read);
    drop(read);
    assert!(bytes <= 128, "next_ref's future is {bytes} bytes");
    let read = reader.next();
    let bytes = std::mem::size_of_val(&read);
    drop(read);
    assert!(bytes <= 160, "next's future is {bytes} bytes");
}
