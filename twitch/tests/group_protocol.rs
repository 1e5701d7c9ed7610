//! Group membership and administration on the real broker: members joining
//! and leaving under both group protocols, the classic one (the default) and
//! KIP-848's consumer protocol, which Kafka 4 has on by default; what the
//! warden reports about groups, their lag, and offset resets.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{cluster, init_logging, topic, unique};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use twitch::warden::{GroupProtocol, KafkaCluster};
use twitch::reader::GroupEvent;
use twitch::{Error, ErrorKind, Record, TopicPartition};

/// Every read, in the order the members made them: (member, partition,
/// offset, value).
type ReadLog = Arc<Mutex<Vec<(char, i32, i64, u32)>>>;

/// A member reading on its own task; it publishes its assignment after
/// every read attempt and stops (with a graceful shutdown) when told.
struct Member {
    assignment: watch::Receiver<Vec<TopicPartition>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn start(cluster: &KafkaCluster, group: &str, topic: &str, protocol: GroupProtocol, name: char, log: &ReadLog) -> Member {
    let mut reader = cluster.group_reader(group).topic(topic).group_protocol(protocol).build().unwrap();
    let (assigned, assignment) = watch::channel(Vec::new());
    let (stop, mut stopped) = watch::channel(false);
    let log = Arc::clone(log);
    let task = tokio::spawn(async move {
        while !*stopped.borrow_and_update() {
            if let Ok(item) = timeout(Duration::from_millis(100), reader.next()).await {
                let (record, ack) = item.expect("the stream goes on").expect("a record");
                let value = u32::from_be_bytes(record.payload().try_into().unwrap());
                log.lock().unwrap().push((name, record.partition, record.offset, value));
                ack.ack();
            }
            let mut now = reader.assignment();
            now.sort();
            assigned.send_replace(now);
        }
        reader.shutdown().await.unwrap();
    });
    Member { assignment, stop, task }
}

impl Member {
    fn partitions(&self) -> BTreeSet<i32> {
        self.assignment.borrow().iter().map(|tp| tp.partition).collect()
    }

    async fn leave(self) {
        self.stop.send_replace(true);
        timeout(Duration::from_secs(60), self.task).await.expect("the member stops").unwrap();
    }
}

/// Writes `values` as payloads with keys `k{value}`.
async fn write(cluster: &KafkaCluster, topic: &str, values: std::ops::Range<u32>) {
    let mut w = cluster.keyed_writer(topic).unwrap();
    for i in values {
        w.produce(Record::new(i.to_be_bytes().to_vec()).with_key(format!("k{i}"))).await.unwrap();
    }
    w.flush_async().await.unwrap();
}

/// Waits until `done` holds, failing after 60 s with `what`.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn values_read(log: &ReadLog) -> usize {
    log.lock().unwrap().len()
}

/// A, alone, gets all six partitions; B joins and they split them three and
/// three; A leaves and B gets all six. Records are written in each phase,
/// every one is read exactly once, no partition is read by both members at
/// once, and the group commits everything.
async fn join_and_leave(protocol: GroupProtocol) {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "protocol", 6).await;
    let group = unique("g-protocol");
    let log: ReadLog = Arc::default();
    let all: BTreeSet<i32> = (0..6).collect();
    // Kafka's partitioner spreads each batch over all six partitions.
    for batch in [0..120, 120..240, 240..360] {
        let spread: BTreeSet<i32> = batch.map(|i| twitch::partitioner::partition_for_key(format!("k{i}").as_bytes(), 6)).collect();
        assert_eq!(spread, all);
    }

    let a = start(&cluster, &group, &topic, protocol, 'A', &log);
    write(&cluster, &topic, 0..120).await;
    wait_until("A has all six partitions and read every record", || a.partitions() == all && values_read(&log) == 120).await;

    let b = start(&cluster, &group, &topic, protocol, 'B', &log);
    wait_until("A and B split the partitions", || {
        let (pa, pb) = (a.partitions(), b.partitions());
        pa.len() == 3 && pb.len() == 3 && pa.is_disjoint(&pb)
    })
    .await;
    // The coordinator describes both members and what each was given.
    let described = cluster.consumer_group(&group).await.unwrap();
    assert_eq!(described.members.len(), 2, "{described:?}");
    let mut given: Vec<BTreeSet<i32>> =
        described.members.iter().map(|m| m.assignment.iter().map(|tp| tp.partition).collect()).collect();
    given.sort();
    let mut held = vec![a.partitions(), b.partitions()];
    held.sort();
    assert_eq!(given, held, "{described:?}");
    assert!(described.members.iter().all(|m| m.client_id == "twitch-tests" && !m.host.is_empty()), "{described:?}");
    assert_eq!(described.state, "Stable", "{described:?}");
    assert_eq!(described.group_protocol, protocol);
    let assignor = match protocol {
        GroupProtocol::Classic => "range",
        GroupProtocol::Consumer => "uniform",
    };
    assert_eq!(described.protocol, assignor, "{described:?}");
    let listed = cluster.consumer_groups().await.unwrap();
    assert_eq!(listed.iter().find(|g| g.name == group).map(|g| g.members.len()), Some(2));
    // Offsets of a group with members are not reset (under the consumer
    // protocol the classic describe finds no such group: the check must not
    // take that for an empty group).
    let err = cluster.reset_group_offsets(&group, &topic, twitch::StartAt::Beginning).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidConfig { .. }) && err.to_string().contains("2 active"), "{err}");
    write(&cluster, &topic, 120..240).await;
    wait_until("A and B read the second batch", || values_read(&log) == 240).await;

    a.leave().await;
    wait_until("B has all six partitions", || b.partitions() == all).await;
    write(&cluster, &topic, 240..360).await;
    wait_until("B read the third batch", || values_read(&log) == 360).await;
    b.leave().await;

    let log = log.lock().unwrap().clone();
    let mut values: Vec<u32> = log.iter().map(|r| r.3).collect();
    values.sort_unstable();
    assert_eq!(values, (0..360).collect::<Vec<_>>(), "every record exactly once");
    // Per partition, offsets go up in the order of the reads, and the
    // readers take turns at most once (A, then B): never both at once.
    let mut by_partition: BTreeMap<i32, Vec<(char, i64)>> = BTreeMap::new();
    for (member, partition, offset, _) in &log {
        by_partition.entry(*partition).or_default().push((*member, *offset));
    }
    assert_eq!(by_partition.len(), 6);
    let mut moved = 0;
    for (partition, reads) in &by_partition {
        assert!(reads.windows(2).all(|w| w[1].1 == w[0].1 + 1), "partition {partition}: {reads:?}");
        let mut turns: Vec<char> = reads.iter().map(|r| r.0).collect();
        turns.dedup();
        match turns.as_slice() {
            ['A', 'B'] => moved += 1,
            ['A'] | ['B'] => {}
            other => panic!("partition {partition} was read by {other:?} in turn: {reads:?}"),
        }
    }
    assert_eq!(moved, 6, "every partition went from A to B, at once or when A left: {by_partition:?}");
    let lag = cluster.group_lag(&group, &topic).await.unwrap();
    assert_eq!(lag.iter().map(|p| p.lag).sum::<i64>(), 0, "{lag:?}");
    assert_eq!(lag.iter().map(|p| p.committed.unwrap_or(0)).sum::<i64>(), 360, "{lag:?}");
    // Without members the group stays known, and its offsets can be reset.
    let empty = cluster.consumer_group(&group).await.unwrap();
    assert_eq!((empty.state.as_str(), empty.members.len(), empty.group_protocol), ("Empty", 0, protocol), "{empty:?}");
    cluster.reset_group_offsets(&group, &topic, twitch::StartAt::Beginning).await.unwrap();
    let lag = cluster.group_lag(&group, &topic).await.unwrap();
    assert_eq!(lag.iter().map(|p| p.lag).sum::<i64>(), 360, "{lag:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn members_join_and_leave_under_the_consumer_protocol() {
    join_and_leave(GroupProtocol::Consumer).await;
}

#[tokio::test(flavor = "current_thread")]
async fn members_join_and_leave_under_the_consumer_protocol_current_thread() {
    join_and_leave(GroupProtocol::Consumer).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn members_join_and_leave_under_the_classic_protocol() {
    join_and_leave(GroupProtocol::Classic).await;
}

/// librdkafka refuses classic-only settings under the consumer protocol;
/// twitch says so before creating the consumer.
#[tokio::test(flavor = "multi_thread")]
async fn classic_settings_are_refused_under_the_consumer_protocol() {
    let cluster = cluster();
    let topic = unique("protocol-settings");
    let consumer = || cluster.group_reader("g").topic(&topic).group_protocol(GroupProtocol::Consumer);
    let err = consumer().session_timeout(Duration::from_secs(10)).build().unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidConfig { .. }) && err.to_string().contains("session.timeout.ms"), "{err}");
    let err = consumer().set("partition.assignment.strategy", "range").build().unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidConfig { .. }) && err.to_string().contains("group.remote.assignor"), "{err}");
    // cooperative() asks for what the consumer protocol always does.
    let reader = consumer().cooperative().build().unwrap();
    reader.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn warden_reports_members_assignments_and_lag() {
    init_logging();
    let cluster = cluster();
    let topic = topic(&cluster, "group-lag", 3).await;
    let group = unique("g-lag");
    write(&cluster, &topic, 0..90).await;

    let mut reader = cluster.group_reader(&group).topic(&topic).build().unwrap();
    let mut events = reader.events();
    for _ in 0..30 {
        let (_, ack) = timeout(Duration::from_secs(20), reader.next()).await.unwrap().unwrap().unwrap();
        ack.ack();
    }
    reader.commit().await.unwrap();
    match events.try_recv() {
        Ok(GroupEvent::Assigned(tps)) => assert_eq!(tps.len(), 3),
        other => panic!("expected an assignment event, got {other:?}"),
    }

    let lag = cluster.group_lag(&group, &topic).await.unwrap();
    let left: i64 = lag.iter().map(|p| p.lag).sum();
    assert_eq!(left, 60, "{lag:?}");
    let info = cluster.consumer_group(&group).await.unwrap();
    assert_eq!(info.members.len(), 1);
    assert!(!info.protocol.is_empty(), "{info:?}");
    assert_eq!(info.members[0].assignment.len(), 3, "{info:?}");
    assert!(cluster.consumer_groups().await.unwrap().iter().any(|g| g.name == group));

    reader.shutdown().await.unwrap();
    // Reset to the beginning once the group is empty: everything is lag again.
    cluster.reset_group_offsets(&group, &topic, twitch::StartAt::Beginning).await.unwrap();
    let lag = cluster.group_lag(&group, &topic).await.unwrap();
    assert_eq!(lag.iter().map(|p| p.lag).sum::<i64>(), 90, "{lag:?}");
    assert!(matches!(cluster.consumer_group(&unique("nobody")).await.map_err(Error::into_kind), Err(ErrorKind::UnknownGroup { .. })));
}

/// A reset whose group cannot be described is refused with the describe's
/// error: the no-active-members check is never skipped (it once was, for
/// any describe error; then the reset failed later, on the topic).
#[tokio::test(flavor = "multi_thread")]
async fn a_reset_is_refused_when_the_group_cannot_be_described() {
    // Nothing listens on port 1.
    let cluster = KafkaCluster::builder("127.0.0.1:1").request_timeout(Duration::from_secs(2)).build().unwrap();
    let err = cluster.reset_group_offsets("g", "t", twitch::StartAt::Beginning).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Admin { operation: "describe groups", .. }), "{err}");
}
