//! Injected faults on librdkafka's in-process mock cluster: transactions
//! whose commit fails in each way, an idempotent writer through request
//! errors and a broker going down. These
//! complement the tests on Apache Kafka (transactions.rs, warden.rs); they do
//! not replace them.

mod common;

use std::time::Duration;

use common::{init_logging, read_to_end, transform};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use twitch::warden::KafkaCluster;
use twitch::writer::TransactionalWriter;
use twitch::{Record, TopicPartition};

fn mock() -> (MockCluster<'static, DefaultProducerContext>, KafkaCluster) {
    let mock = MockCluster::new(3).expect("mock cluster");
    let cluster = KafkaCluster::new(mock.bootstrap_servers(), "mock-tests".into());
    (mock, cluster)
}

/// Consume-transform-produce through both transaction outcomes.
///
/// The mock cluster neither stores offsets sent in a transaction nor filters
/// aborted records for `read_committed` readers, so those halves of the
/// guarantee are checked only against Apache Kafka (see docs/brokers.md);
/// here the client side runs end to end: init, begin, produce, send offsets,
/// commit, abort.
#[tokio::test(flavor = "multi_thread")]
async fn consume_transform_produce_is_exactly_once() {
    init_logging();
    let (mock, cluster) = mock();
    mock.create_topic("in", 1, 1).unwrap();
    mock.create_topic("out", 1, 1).unwrap();
    let mut w = cluster.get_writer_for_partition(TopicPartition::new("in", 0)).unwrap();
    for i in 0..15u8 {
        w.produce(Record::new(vec![i])).await.unwrap();
    }
    w.flush_async().await.unwrap();

    let mut input = cluster.group_reader("eos").topic("in").transactional().build().unwrap();
    let mut out = cluster.transactional_writer("out", "eos-1").await.unwrap();

    transform(&mut input, &mut out, 10).await;
    out.commit().await.unwrap();
    transform(&mut input, &mut out, 5).await;
    out.flush().await.unwrap();
    out.abort().await.unwrap();
    input.shutdown().await.unwrap();

    let written = read_to_end(&cluster, "out", "read_uncommitted").await;
    assert_eq!(&written[..10], &(0..10u8).map(|i| vec![i * 2]).collect::<Vec<_>>()[..]);
    assert_eq!(written.len(), 15, "the aborted transaction's records were written, and marked aborted");
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_need_begin() {
    let (mock, cluster) = mock();
    mock.create_topic("t", 1, 1).unwrap();
    let mut out = cluster.transactional_writer("t", "needs-begin").await.unwrap();
    assert!(matches!(out.produce(Record::new(vec![1])).await.map_err(twitch::Error::into_kind), Err(twitch::ErrorKind::TransactionState { operation: "produce", open: false })));
    assert!(matches!(out.commit().await.map_err(twitch::Error::into_kind), Err(twitch::ErrorKind::TransactionState { operation: "commit", open: false })));
}

/// A transactional writer on topic `t` of the mock cluster, with a short
/// timeout for its transaction calls.
async fn transactional(cluster: &KafkaCluster, id: &str) -> TransactionalWriter {
    let out = cluster.transactional_writer("t", id).await.unwrap();
    out.with_flush_timeout(Duration::from_millis(500))
}

/// A commit that runs out of time is retriable: the transaction stays open
/// and the same commit, called again, completes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_retriable_commit_failure_leaves_the_transaction_open_for_another_commit() {
    init_logging();
    let (mock, cluster) = mock();
    mock.create_topic("t", 1, 1).unwrap();
    let mut out = transactional(&cluster, "retriable").await;
    out.begin().await.unwrap();
    out.produce(Record::new(vec![1])).await.unwrap();
    // The coordinator answers EndTxn "still loading" for a few seconds;
    // librdkafka retries it, for longer than a commit waits.
    mock.request_errors(RDKafkaApiKey::EndTxn, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS; 8]);
    let err = out.commit().await.unwrap_err();
    assert!(err.is_retriable() && !err.requires_abort() && !err.is_fatal(), "{err:?}");
    let mut attempts = 1;
    loop {
        match out.commit().await {
            Ok(()) => break,
            Err(e) if e.is_retriable() && attempts < 60 => attempts += 1,
            Err(e) => panic!("commit attempt {attempts} after a retriable failure: {e:?}"),
        }
    }
    // Committed: the next transaction begins and commits.
    out.begin().await.unwrap();
    out.produce(Record::new(vec![2])).await.unwrap();
    out.commit().await.unwrap();
    assert_eq!(read_to_end(&cluster, "t", "read_uncommitted").await.len(), 2);
}

/// A record the broker refuses makes the transaction abortable: commit fails
/// with `requires_abort`, and `abort` (which librdkafka then requires) works.
#[tokio::test(flavor = "multi_thread")]
async fn a_commit_failure_that_requires_abort_leaves_the_transaction_open_for_abort() {
    init_logging();
    let (mock, cluster) = mock();
    mock.create_topic("t", 1, 1).unwrap();
    let mut out = transactional(&cluster, "abortable").await;
    out.begin().await.unwrap();
    mock.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED]);
    out.produce(Record::new(vec![1])).await.unwrap();
    let err = out.commit().await.unwrap_err();
    assert!(err.requires_abort() && !err.is_retriable() && !err.is_fatal(), "{err:?}");
    out.abort().await.unwrap();
    assert_eq!(out.in_flight(), 0);
    // The abort ended the transaction: the next one begins.
    out.begin().await.unwrap();
    out.abort().await.unwrap();
}

/// A fenced writer (PRODUCER_FENCED, fatal for librdkafka) is unusable:
/// every later call says so, abort included.
#[tokio::test(flavor = "multi_thread")]
async fn a_fatal_commit_failure_makes_the_writer_refuse_every_later_call() {
    init_logging();
    let (mock, cluster) = mock();
    mock.create_topic("t", 1, 1).unwrap();
    let mut out = transactional(&cluster, "fatal").await;
    out.begin().await.unwrap();
    out.produce(Record::new(vec![1])).await.unwrap();
    mock.request_errors(RDKafkaApiKey::EndTxn, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED]);
    let err = out.commit().await.unwrap_err();
    assert!(err.is_fatal() && !err.is_retriable() && !err.requires_abort(), "{err:?}");
    let abort = out.abort().await.unwrap_err();
    assert!(abort.is_fatal(), "{abort:?}");
    assert!(abort.to_string().contains("unusable"), "{abort}");
    assert!(out.begin().await.unwrap_err().is_fatal());
    assert!(out.produce(Record::new(vec![2])).await.unwrap_err().is_fatal());
    assert!(out.commit().await.unwrap_err().is_fatal());
}

/// Transient produce errors: the idempotent writer retries, and the partition
/// ends up with every record once, in order.
#[tokio::test(flavor = "multi_thread")]
async fn idempotent_writer_survives_request_errors_without_loss_or_duplicates() {
    init_logging();
    let (mock, cluster) = mock();
    mock.create_topic("faults", 1, 3).unwrap();
    let mut w = cluster.get_writer_for_partition(TopicPartition::new("faults", 0)).unwrap();
    w.produce_and_flush(Record::new(0u32.to_be_bytes().to_vec())).await.unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ],
    );
    for i in 1..2_000u32 {
        w.produce(Record::new(i.to_be_bytes().to_vec())).await.unwrap();
    }
    w.flush_async().await.unwrap();
    let values: Vec<u32> = read_to_end(&cluster, "faults", "read_committed")
        .await
        .into_iter()
        .map(|p| u32::from_be_bytes(p.try_into().unwrap()))
        .collect();
    assert_eq!(values, (0..2_000).collect::<Vec<_>>());
}

/// The partition leader goes down mid-stream and comes back: nothing lost,
/// nothing duplicated.
#[tokio::test(flavor = "multi_thread")]
async fn idempotent_writer_survives_a_broker_going_down() {
    init_logging();
    let (mock, cluster) = mock();
    mock.create_topic("down", 1, 3).unwrap();
    mock.partition_leader("down", 0, Some(1)).unwrap();
    let mut w = cluster.get_writer_for_partition(TopicPartition::new("down", 0)).unwrap();
    for i in 0..1_000u32 {
        w.produce(Record::new(i.to_be_bytes().to_vec())).await.unwrap();
    }
    mock.broker_down(1).unwrap();
    for i in 1_000..2_000u32 {
        w.produce(Record::new(i.to_be_bytes().to_vec())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    mock.broker_up(1).unwrap();
    w.flush_async().await.unwrap();
    let values: Vec<u32> = read_to_end(&cluster, "down", "read_committed")
        .await
        .into_iter()
        .map(|p| u32::from_be_bytes(p.try_into().unwrap()))
        .collect();
    assert_eq!(values, (0..2_000).collect::<Vec<_>>());
}
