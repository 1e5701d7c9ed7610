//! Rebalances of the group reader against the real broker, on both of
//! Tokio's runtimes: revokes that wait for in-flight work without blocking
//! the thread, the application's rebalance listener, and rebalance events.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{cluster, init_logging, topic, unique};
use futures::future::BoxFuture;
use tokio::time::timeout;
use twitch::reader::{GroupEvent, ListenerError, RebalanceListener, StartAt};
use twitch::warden::KafkaCluster;
use twitch::{ErrorKind, GroupReader, Record, TopicPartition};

async fn write_keyed(cluster: &KafkaCluster, topic: &str, n: u32) {
    let mut w = cluster.keyed_writer(topic).unwrap();
    for i in 0..n {
        w.produce(Record::new(i.to_be_bytes().to_vec()).with_key(format!("k{i}"))).await.unwrap();
    }
    w.flush_async().await.unwrap();
}

fn value(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload.try_into().unwrap())
}

/// Reads and acks until nothing comes for `idle`.
async fn drain(reader: &mut GroupReader, idle: Duration) -> Vec<u32> {
    let mut values = Vec::new();
    while let Ok(Some(item)) = timeout(idle, reader.next()).await {
        let (record, ack) = item.unwrap();
        values.push(value(record.payload()));
        ack.ack();
    }
    values
}

/// Member A acks each record from another task a little later; B joins
/// midway. A's revoke must wait for those acks and commit them, so that B
/// reads none of A's records again. On a current-thread runtime the acking
/// tasks run on the thread that carries the revoke out: a revoke that
/// blocked the thread would wait out its whole grace with no ack coming,
/// and B would read the unacked records again.
async fn in_flight_work_moves_without_rereading() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "revoke", 2).await;
    let group = unique("g-revoke");
    write_keyed(&cluster, &topic, 400).await;

    let mut a = cluster
        .group_reader(&group)
        .topic(&topic)
        .commit_interval(Duration::from_secs(3600))
        .revoke_grace(Duration::from_secs(4))
        .build()
        .unwrap();
    let mut read_by_a = Vec::new();
    let mut b_task = None;
    while let Ok(Some(item)) = timeout(Duration::from_secs(12), a.next()).await {
        let (record, ack) = item.unwrap();
        read_by_a.push(value(record.payload()));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ack.ack();
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        if read_by_a.len() == 50 {
            let mut b = cluster.group_reader(&group).topic(&topic).build().unwrap();
            b_task = Some(tokio::spawn(async move {
                let out = drain(&mut b, Duration::from_secs(12)).await;
                b.shutdown().await.unwrap();
                out
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // the last acks land
    a.shutdown().await.unwrap();
    let read_by_b = b_task.expect("B started").await.unwrap();
    assert!(!read_by_b.is_empty(), "B got a partition");
    let mut all: Vec<u32> = read_by_a.iter().chain(&read_by_b).copied().collect();
    all.sort_unstable();
    let total = all.len();
    all.dedup();
    assert_eq!(all, (0..400).collect::<Vec<_>>(), "nothing lost");
    assert_eq!(total, 400, "{} record(s) read twice", total - 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn in_flight_work_moves_without_rereading_multi_thread() {
    in_flight_work_moves_without_rereading().await;
}

#[tokio::test(flavor = "current_thread")]
async fn in_flight_work_moves_without_rereading_current_thread() {
    in_flight_work_moves_without_rereading().await;
}

/// What the test listener saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Assigned(Vec<TopicPartition>),
    Revoked(Vec<TopicPartition>, bool),
}

/// Starts partition 0 at offset 40, fails its first assignment once, and
/// notes every call.
struct Listener {
    seen: Arc<Mutex<Vec<Seen>>>,
    fail_once: bool,
}

impl RebalanceListener for Listener {
    fn on_assigned<'a>(
        &'a mut self,
        assigned: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<Vec<(TopicPartition, StartAt)>, ListenerError>> {
        Box::pin(async move {
            tokio::task::yield_now().await; // a listener may await
            if std::mem::take(&mut self.fail_once) {
                return Err("the offset store is not reachable yet".into());
            }
            self.seen.lock().unwrap().push(Seen::Assigned(assigned.to_vec()));
            Ok(assigned.iter().map(|tp| (tp.clone(), StartAt::Offset(40))).collect())
        })
    }

    fn on_revoked<'a>(&'a mut self, revoked: &'a [TopicPartition], lost: bool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.seen.lock().unwrap().push(Seen::Revoked(revoked.to_vec(), lost));
        })
    }
}

async fn a_listener_chooses_where_reading_starts() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "listener", 1).await;
    let mut w = cluster.get_writer_for_partition(TopicPartition::new(&topic, 0)).unwrap();
    for i in 0..50u32 {
        w.produce(Record::new(i.to_be_bytes().to_vec())).await.unwrap();
    }
    w.flush_async().await.unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = Listener { seen: Arc::clone(&seen), fail_once: true };
    let mut reader = cluster.group_reader(&unique("g-listener")).topic(&topic).on_rebalance(listener).build().unwrap();
    // The first assignment's listener fails: the read says so, and the next
    // read runs it again.
    match timeout(Duration::from_secs(20), reader.next()).await.unwrap() {
        Some(Err(e)) if matches!(e.kind(), ErrorKind::Listener { stage: "on_assigned", .. }) => {}
        other => panic!("expected the listener's error, got {other:?}"),
    }
    let (record, ack) = timeout(Duration::from_secs(20), reader.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((record.offset, value(record.payload())), (40, 40), "reading starts where the listener said");
    ack.ack();
    reader.shutdown().await.unwrap();
    let tp = TopicPartition::new(&topic, 0);
    assert_eq!(*seen.lock().unwrap(), vec![Seen::Assigned(vec![tp.clone()]), Seen::Revoked(vec![tp], false)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_chooses_where_reading_starts_multi_thread() {
    a_listener_chooses_where_reading_starts().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_listener_chooses_where_reading_starts_current_thread() {
    a_listener_chooses_where_reading_starts().await;
}

/// Events are kept only once asked for: a reader whose events nobody reads
/// keeps none.
#[tokio::test(flavor = "current_thread")]
async fn events_are_kept_only_once_asked_for() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "events", 1).await;
    write_keyed(&cluster, &topic, 5).await;
    let group = unique("g-events");
    let mut reader = cluster.group_reader(&group).topic(&topic).build().unwrap();
    let (_, ack) = timeout(Duration::from_secs(20), reader.next()).await.unwrap().unwrap().unwrap();
    ack.ack();
    let mut events = reader.events();
    assert!(events.try_recv().is_err(), "the assignment before events() was asked for is not kept");
    // A second member joins: this one's revoke and new assignment are events.
    let mut other = cluster.group_reader(&group).topic(&topic).build().unwrap();
    let other_task = tokio::spawn(async move {
        let _ = timeout(Duration::from_secs(12), other.next()).await;
        other.shutdown().await.unwrap();
    });
    // Read on (the rebalance is carried out by the reads) until an event comes.
    let first = timeout(Duration::from_secs(20), async {
        loop {
            tokio::select! {
                event = events.recv() => return event,
                item = reader.next() => {
                    if let Some(Ok((_, ack))) = item {
                        ack.ack();
                    }
                }
            }
        }
    })
    .await
    .unwrap();
    match first {
        Some(GroupEvent::Revoked(tps)) => assert_eq!(tps, vec![TopicPartition::new(&topic, 0)]),
        other => panic!("expected the revoke, got {other:?}"),
    }
    other_task.await.unwrap();
    reader.shutdown().await.unwrap();
}
